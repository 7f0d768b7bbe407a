"""What one client may cost the server: message rate per socket and time to media.

Two abuse cases the gate must survive without a human noticing:

- a socket that floods messages (1000/s of valid JSON still costs a parse, a
  dispatch and often a reply each) -- :class:`MessageRateLimiter`, a token bucket
  per websocket, pure like the gate (time passed in);
- a participant that joins but whose media never arrives (ICE never completes,
  no offer, a camera that never delivers a frame): it holds a peer connection,
  ICE sockets and tasks for as long as the websocket lives. :func:`media_ready`
  says when media counts as arrived and :func:`watch_media` frees the participant
  when it has not after ``[limits] media_timeout_s``.

Policy, documented in docs/security.md and docs/protocol.md: a socket over its
rate gets exactly one ``rate_limited`` error (fatal) and is closed with 1008
(policy violation); a participant without media gets one ``media_timeout`` error
(fatal), then ``bye``, and the socket closes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MessageRateLimiter:
    """Token bucket: ``rate`` messages per second sustained, ``burst`` at once.

    A bucket rather than a fixed window so a browser's legitimate burst at join
    (join, offer, a few candidates) never trips it while a flood does within a
    fraction of a second.
    """

    rate: float
    burst: int
    _tokens: float = field(init=False)
    _last: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._tokens = float(self.burst)

    def allow(self, now: float) -> bool:
        """Spend one token for a message received at ``now``; False when over the rate."""
        if self._last is not None:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
