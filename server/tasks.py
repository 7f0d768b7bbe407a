"""Background tasks whose failure is logged, never lost, and that are kept referenced.

asyncio keeps only weak references to tasks, so a fire-and-forget task must be held
somewhere until it ends; an exception nobody awaits would surface only as "Task
exception was never retrieved" at garbage collection. Rooms and the Janus plane
spawn such tasks (renegotiations, feed watchers) and cancel what is left on close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any


def spawn_logged(
    tasks: set[asyncio.Task[Any]],
    coro: Coroutine[Any, Any, None],
    name: str,
    log: logging.Logger,
    failure: str,
) -> asyncio.Task[None]:
    """Run ``coro`` as a task held in ``tasks`` until it ends; an exception is logged
    with ``failure`` (cancellation is not a failure)."""

    async def guarded() -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s", failure)

    task = asyncio.create_task(guarded(), name=name)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task
