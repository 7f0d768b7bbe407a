"""Serialised, coalescing renegotiation of one peer connection.

Why: offer/answer is a strict two-state exchange per peer connection; a second
``createOffer`` while one is outstanding breaks it. Room changes, however, arrive at
any time (two participants admitted at once, one leaving during another's
negotiation). A ``Negotiator`` runs at most one negotiation at a time per pc; changes
requested while one runs are folded into exactly one more round afterwards, which
picks up every change made meanwhile (aiortc builds each offer from the current
transceivers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)

Renegotiate = Callable[[str], Awaitable[None]]


class Negotiator:
    """Runs ``renegotiate(participant_id)`` rounds one after another.

    :param after_round: awaited after every round (success or failure), e.g. to free
        senders the round made inactive.
    :param timeout: seconds allowed per round; a round that takes longer fails with
        ``TimeoutError`` for its waiters and the next round (if any) still runs.
    """

    def __init__(
        self,
        participant_id: str,
        renegotiate: Renegotiate,
        *,
        timeout: float,
        after_round: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.participant_id = participant_id
        self._renegotiate = renegotiate
        self._timeout = timeout
        self._after_round = after_round
        self._waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0

    @property
    def busy(self) -> bool:
        return self._task is not None

    async def negotiate(self) -> None:
        """Return once a round that started after this call has finished.

        Raises what that round raised (the callback's error or ``TimeoutError``).
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        await future

    async def _run(self) -> None:
        try:
            while self._waiters:
                waiters, self._waiters = self._waiters, []
                error: BaseException | None = None
                try:
                    async with asyncio.timeout(self._timeout):
                        await self._renegotiate(self.participant_id)
                except asyncio.CancelledError:
                    for waiter in waiters + self._waiters:
                        waiter.cancel()
                    raise
                except Exception as exc:
                    error = exc
                self.rounds += 1
                if self._after_round is not None:
                    try:
                        await self._after_round()
                    except Exception:
                        logger.exception(
                            "%s: cleanup after negotiation failed", self.participant_id
                        )
                for waiter in waiters:
                    if not waiter.done():
                        if error is None:
                            waiter.set_result(None)
                        else:
                            waiter.set_exception(error)
        finally:
            self._task = None

    async def close(self) -> None:
        """Cancel a running round and every waiter."""
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for waiter in self._waiters:
            waiter.cancel()
        self._waiters = []


def log_failures(results: list[Any], what: str) -> None:
    for result in results:
        if isinstance(result, BaseException):
            logger.warning("%s failed: %r", what, result)
