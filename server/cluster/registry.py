"""Nodes and rooms in Redis: who is alive, which node hosts which room.

LiveKit's rule, ours too: a room lives on one node. A node announces itself with a
key that expires after ``lease_s`` and renews it (with its load) from a heartbeat;
each room it hosts has a key naming it, with the same lease. The first join places
a room on the least-loaded live node; a room whose node stopped renewing (killed,
partitioned) is placed again by the next join, atomically (one Lua script: the
first node to place it wins, everyone else gets that answer).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..janus.protocol import instance_index

log = logging.getLogger(__name__)

PREFIX = "vg:"
NODES = PREFIX + "nodes"
# How long a room -> Janus instance entry outlives its last use (renewed on each).
JANUS_PLACEMENT_S = 86_400

# KEYS[1] room key; ARGV: candidate, lease ms, node key prefix. The owner if alive,
# else the candidate (now the owner).
_PLACE = """
local cur = redis.call('GET', KEYS[1])
if cur and redis.call('EXISTS', ARGV[3] .. cur) == 1 then return cur end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""
# KEYS: room keys; ARGV: node id, lease ms. Renew the rooms still ours, claim those
# nobody holds (Redis restarted empty); returns the rooms another node holds now.
_RENEW = """
local lost = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if cur == ARGV[1] then redis.call('PEXPIRE', key, ARGV[2])
  elseif not cur then redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else lost[#lost + 1] = key end
end
return lost
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    url: str  # http(s) base URL browsers and nodes reach it on
    load: int

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/ws"


def node_key(node_id: str) -> str:
    return f"{PREFIX}node:{node_id}"


def room_key(room_id: str) -> str:
    return f"{PREFIX}room:{room_id}"


class Registry:
    def __init__(self, redis: Any, node_id: str, url: str, lease_s: float) -> None:
        self.redis = redis
        self.node_id = node_id
        self.url = url
        self.lease_ms = int(lease_s * 1000)
        self.instance = secrets.token_hex(8)  # this process, as opposed to the node id
        self._beats = 0
        self._place = redis.register_script(_PLACE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def janus_instance(self, room_id: str, urls: Sequence[str]) -> int:
        """Which of ``urls`` carries the room's Janus VideoRoom (docs/janus.md): the
        first node to ask places it (the stable hash's choice), every other node gets
        that answer; an instance no longer configured here is replaced."""
        key = PREFIX + "janus:" + room_id
        suggested = urls[instance_index(room_id, len(urls))]
        if not await self.redis.set(key, suggested, nx=True, ex=JANUS_PLACEMENT_S):
            current = await self.redis.get(key)
            if current in urls:
                await self.redis.expire(key, JANUS_PLACEMENT_S)
                return list(urls).index(current)
            await self.redis.set(key, suggested, ex=JANUS_PLACEMENT_S)
        return list(urls).index(suggested)

    async def heartbeat(self, load: int, rooms: list[str]) -> None:
        """Renew this node's lease (with its load) and its rooms' leases."""
        info = json.dumps({"url": self.url, "load": load, "instance": self.instance})
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(node_key(self.node_id), info, px=self.lease_ms, get=True)
            pipe.sadd(NODES, self.node_id)
            previous, _ = await pipe.execute()
        other = json.loads(previous).get("instance") if previous else None
        if self._beats and other not in (None, self.instance):
            # Two processes with one node id would each think they host its rooms.
            log.error("another process announces itself as node %s: give each its own "
                      "[cluster] node_id and advertise_url", self.node_id)  # fmt: skip
        self._beats += 1
        if rooms:
            lost = await self._renew(
                keys=[room_key(r) for r in rooms], args=[self.node_id, self.lease_ms]
            )
            for key in lost:  # this node was cut off longer than its lease (docs/scale.md)
                log.warning("room %s is hosted here and on another node", key)

    async def live_nodes(self) -> list[NodeInfo]:
        ids = sorted(str(i) for i in await self.redis.smembers(NODES))
        if not ids:
            return []
        values = await self.redis.mget([node_key(i) for i in ids])
        nodes, dead = [], []
        for node_id, raw in zip(ids, values, strict=True):
            if raw is None:
                dead.append(node_id)
                continue
            data = json.loads(raw)
            nodes.append(NodeInfo(node_id, str(data["url"]), int(data["load"])))
        if dead:
            await self.redis.srem(NODES, *dead)
        return nodes

    async def place(self, room_id: str) -> NodeInfo:
        """The node hosting ``room_id``: its live owner, or the least-loaded live node."""
        nodes = await self.live_nodes()
        me = NodeInfo(self.node_id, self.url, 0)
        # Ties go to this node: no redirect when nothing is gained by one.
        candidate = min(nodes, key=lambda n: (n.load, n.node_id != self.node_id), default=me)
        owner = str(
            await self._place(
                keys=[room_key(room_id)],
                args=[candidate.node_id, self.lease_ms, f"{PREFIX}node:"],
            )
        )
        if owner == self.node_id:
            return me
        found = next((n for n in nodes if n.node_id == owner), None)
        if found is None:  # placed by another node a moment ago: read its record
            raw = await self.redis.get(node_key(owner))
            if raw is None:
                return me
            data = json.loads(raw)
            found = NodeInfo(owner, str(data["url"]), int(data["load"]))
        return found

    async def release(self, room_id: str) -> None:
        """The room emptied here: the next join places it again by load."""
        await self._release(keys=[room_key(room_id)], args=[self.node_id])

    async def leave(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(node_key(self.node_id))
            pipe.srem(NODES, self.node_id)
            await pipe.execute()
