"""Rejoin grace tokens in Redis, so the node a participant comes back to honours them.

A token is stored when its session is admitted and renewed by the node's heartbeat
while the session lives (a node killed without warning has no time to store
anything): it outlives the node by the lease plus the grace window. When the
connection drops the token is cut to the grace window; a session that ends for
good (left, replaced, refused) deletes it.

What is kept is what rebuilds the pinned identity from the store
(``Hub.identity_from``): the person, the name, the distance and the time of
admission, the room's threshold and margin; never templates (they stay encrypted
in the store). A token is single-use across the cluster (``GETDEL``) and expires
with the grace window; per-room and per-person index sets let a revocation drop
every token resting on the revoked grant.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

PREFIX = "vg:grace:"


@dataclass(frozen=True)
class GraceRecord:
    room_id: str
    ip: str
    device: str | None
    person_id: str | None
    name: str
    distance: float
    admitted_at: float
    threshold: float
    margin: float


class RedisGrace:
    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def put(self, token: str, record: GraceRecord, ttl_s: float) -> None:
        ms = max(1, int(ttl_s * 1000))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(PREFIX + token, json.dumps(asdict(record)), px=ms)
            for index in self._indexes(record):
                pipe.sadd(index, token)
                pipe.pexpire(index, ms)
            await pipe.execute()

    async def renew(self, tokens: list[str], ttl_s: float) -> None:
        """Extend tokens that exist (never bring back a claimed one)."""
        if not tokens:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for token in tokens:
                pipe.pexpire(PREFIX + token, max(1, int(ttl_s * 1000)))
            await pipe.execute()

    async def forget(self, token: str) -> None:
        await self.redis.delete(PREFIX + token)

    async def claim(self, token: str) -> GraceRecord | None:
        raw = await self.redis.getdel(PREFIX + token)
        return None if raw is None else GraceRecord(**json.loads(raw))

    async def drop(self, *, room_id: str | None = None, person_id: str | None = None) -> int:
        """Forget every token of a room or a person (the grant behind them is gone)."""
        index = f"{PREFIX}room:{room_id}" if room_id else f"{PREFIX}person:{person_id}"
        tokens = [str(t) for t in await self.redis.smembers(index)]
        if not tokens:
            return 0
        return int(await self.redis.delete(*(PREFIX + t for t in tokens), index)) - 1

    @staticmethod
    def _indexes(record: GraceRecord) -> list[str]:
        out = [f"{PREFIX}room:{record.room_id}"]
        if record.person_id:
            out.append(f"{PREFIX}person:{record.person_id}")
        return out
