"""Janus as the media plane: rooms on Janus, one-time passes, removal, the sweep.

The server is the only admission authority (docs/janus.md, security model):

* each videogate room maps to one VideoRoom on one Janus instance (a stable hash of
  the room id over ``[media] janus_urls``; ``placement`` is the hook where a shared
  registry can decide instead), created by the server with a secret only it knows,
  a token check (``allowed``) and ``require_pvtid``;
* an admitted participant gets a *pass*: a fresh token added to the room's allowed
  list and a feed id chosen by the server. The token is removed again as soon as
  that feed appears in the room (or after ``janus_token_ttl_s``), so it opens the
  door once;
* removal (refusal, revoked invite, deleted person, a left or replaced session)
  removes the token and kicks the feed; ``kick`` alone would not stop a rejoin;
* the sweep lists every room the server placed and kicks any feed that holds no
  current pass, reporting it to ``on_intruder`` (the audit trail).

Plain asyncio around ``JanusClient``; no participant or room objects in here, only
ids, so it is tested against a real Janus with nothing else running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ..media_settings import MediaSettings
from ..rtc.forward import Publisher
from ..tasks import spawn_logged
from . import protocol as jp
from .client import JanusClient
from .watch import EventSession, FeedWatch

log = logging.getLogger(__name__)

WATCH_POLL_S = 0.25
ROOM_PUBLISHERS = 100

IntruderHook = Callable[[str, jp.Member], None]
#: told the server's own subscription to a participant's feed (presence checks)
WatchHook = Callable[[Publisher], None]
MONITOR = "__videogate_monitor__"
PUBLISH_WAIT_S = 30.0
# Which of the configured Janus URLs carries a room: the stable hash by default, the
# cluster's registry when Redis is configured (every node then agrees on the first
# placement even if their janus_urls lists differ in order).
Placement = Callable[[str, Sequence[str]], Awaitable[int]]


async def stable_placement(room_id: str, urls: Sequence[str]) -> int:
    return jp.instance_index(room_id, len(urls))


@dataclass(frozen=True)
class JanusPass:
    """What the browser needs to enter the Janus room once (sent as ``janus``)."""

    url: str
    room: int
    token: str
    feed: int


@dataclass
class _Grant:
    participant_id: str
    feed: int
    token: str
    expires: float
    used: bool = False
    on_watch: WatchHook | None = None


@dataclass
class _Room:
    number: int
    secret: str
    client: JanusClient
    public_url: str
    grants: dict[str, _Grant] = field(default_factory=dict)
    #: the server's silent publisher (its private_id) and its subscriptions, per feed
    events: EventSession | None = None
    private_id: int = 0
    watches: dict[str, FeedWatch] = field(default_factory=dict)
    monitor_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def feeds(self) -> set[int]:
        return {g.feed for g in self.grants.values()}


class JanusPlane:
    def __init__(
        self,
        media: MediaSettings,
        *,
        on_intruder: IntruderHook | None = None,
        placement: Placement = stable_placement,
    ) -> None:
        self.media = media
        self.on_intruder = on_intruder
        self.placement = placement
        self._http: aiohttp.ClientSession | None = None
        self._clients: list[JanusClient] = []
        self._rooms: dict[str, _Room] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Called on the running loop (the HTTP session belongs to it)."""
        self._http = aiohttp.ClientSession()
        timeout = self.media.janus_timeout_s
        self._clients = [JanusClient(u, self._http, timeout_s=timeout) for u in self.media.urls]
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="janus-sweep")

    async def close(self) -> None:
        tasks = [t for t in (self._sweeper, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for room_id in list(self._rooms):
            with contextlib.suppress(Exception):
                await self.forget(room_id)
        for client in self._clients:
            await client.close()
        if self._http is not None:
            await self._http.close()

    # -- rooms --

    async def _room(self, room_id: str, description: str) -> _Room:
        async with self._locks.setdefault(room_id, asyncio.Lock()):
            room = self._rooms.get(room_id)
            if room is not None:
                return room
            urls = self.media.urls
            index = await self.placement(room_id, urls)
            if not 0 <= index < len(self._clients):  # a registry answer this node lacks
                index = jp.instance_index(room_id, len(self._clients))
            client = self._clients[index]
            number = jp.room_number(room_id)
            secret = jp.room_secret(self.media.janus_admin_key, room_id)
            create = jp.create_room(
                number, secret, self.media.janus_admin_key,
                publishers=ROOM_PUBLISHERS, description=description[:100] or "videogate",
            )  # fmt: skip
            try:
                await client.request(create)
            except jp.JanusError as err:
                if err.code != jp.ERR_ROOM_EXISTS:
                    raise
                # Left by an earlier run of this server: its allowed list and its
                # members rest on passes we no longer know. Start clean.
                await client.request(jp.destroy_room(number, secret))
                await client.request(create)
            room = _Room(number, secret, client, self.media.public_urls[index])
            self._rooms[room_id] = room
            return room

    async def forget(self, room_id: str) -> None:
        """The live room ended: destroy it on Janus (everyone still there is out)."""
        room = self._rooms.pop(room_id, None)
        self._locks.pop(room_id, None)
        if room is None:
            return
        for watch in room.watches.values():
            await watch.close(None)
        room.watches.clear()
        with contextlib.suppress(jp.JanusError):
            await room.client.request(jp.destroy_room(room.number, room.secret))
        if room.events is not None:
            await room.events.close()

    # -- passes --

    async def admit(
        self, room_id: str, description: str, participant_id: str,
        on_watch: WatchHook | None = None,
    ) -> JanusPass:  # fmt: skip
        """A fresh pass for an admitted participant; an older one of theirs is revoked.
        ``on_watch`` gets the server's subscription to the feed once it publishes."""
        await self.revoke(room_id, participant_id)
        room = await self._room(room_id, description)
        grant = _Grant(
            participant_id, jp.new_feed_id(), jp.new_token(),
            time.monotonic() + self.media.janus_token_ttl_s, on_watch=on_watch,
        )  # fmt: skip
        room.grants[participant_id] = grant
        await room.client.request(jp.allowed(room.number, room.secret, "add", [grant.token]))
        self._spawn(self._watch(room_id, room, grant))
        return JanusPass(room.public_url, room.number, grant.token, grant.feed)

    async def revoke(self, room_id: str, participant_id: str) -> bool:
        """Remove the pass: its token first (no rejoin), then kick its feed."""
        room = self._rooms.get(room_id)
        grant = room.grants.pop(participant_id, None) if room is not None else None
        if room is None or grant is None:
            return False
        watch = room.watches.pop(participant_id, None)
        if watch is not None:
            await watch.close(room.events)
        if not grant.used:
            await room.client.request(jp.allowed(room.number, room.secret, "remove", [grant.token]))
        grant.used = True
        await self._kick(room, grant.feed)
        return True

    async def _kick(self, room: _Room, feed: int) -> None:
        try:
            await room.client.request(jp.kick(room.number, room.secret, feed))
        except jp.JanusError as err:
            if err.code != jp.ERR_NO_SUCH_FEED:  # never joined, or already gone
                raise

    async def _consume(self, room: _Room, grant: _Grant) -> None:
        if grant.used:
            return
        grant.used = True
        await room.client.request(jp.allowed(room.number, room.secret, "remove", [grant.token]))

    async def _watch(self, room_id: str, room: _Room, grant: _Grant) -> None:
        """One use: the token goes as soon as its feed is in the room, or at expiry."""
        while not grant.used and time.monotonic() < grant.expires:
            await asyncio.sleep(WATCH_POLL_S)
            if self._rooms.get(room_id) is not room:
                return
            try:
                listed = await self.members(room_id)
            except (jp.JanusError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning("janus watch %s: %s", room_id, exc)
                continue
            # While a pass is open, a feed without one means a token was used under
            # another id (Janus does not bind tokens to ids): out at once.
            for intruder in (m for m in listed if m.feed not in room.feeds()):
                await self._kick(room, intruder.feed)
                if self.on_intruder is not None:
                    self.on_intruder(room_id, intruder)
            if any(m.feed == grant.feed for m in listed):
                break
        if self._rooms.get(room_id) is not room:
            return
        await self._consume(room, grant)
        if grant.on_watch is not None:
            await self._watch_feed(room_id, room, grant)

    async def _watch_feed(self, room_id: str, room: _Room, grant: _Grant) -> None:
        """Once the feed publishes, the server subscribes to it (presence checks)."""
        deadline = time.monotonic() + PUBLISH_WAIT_S
        while time.monotonic() < deadline:
            if room.grants.get(grant.participant_id) is not grant:
                return  # revoked meanwhile
            if any(m.feed == grant.feed and m.publisher for m in await self.members(room_id)):
                break
            await asyncio.sleep(WATCH_POLL_S)
        else:
            return
        events, private_id = await self._monitor(room)
        watch = FeedWatch(grant.participant_id, grant.feed)
        await watch.start(events, room.number, private_id)
        if room.grants.get(grant.participant_id) is not grant:
            await watch.close(events)
            return
        room.watches[grant.participant_id] = watch
        if grant.on_watch is not None:
            grant.on_watch(watch.publisher)

    async def _monitor(self, room: _Room) -> tuple[EventSession, int]:
        """The server's silent publisher in the room: its private_id lets it subscribe."""
        async with room.monitor_lock:
            if room.events is None:
                await self._join_monitor(room)
        assert room.events is not None
        return room.events, room.private_id

    async def _join_monitor(self, room: _Room) -> None:
        assert self._http is not None
        events = EventSession(self._http, room.client.url, self.media.janus_timeout_s)
        await events.open()
        grant = _Grant(MONITOR, jp.new_feed_id(), jp.new_token(), 0.0, used=True)
        room.grants[MONITOR] = grant
        await room.client.request(jp.allowed(room.number, room.secret, "add", [grant.token]))
        try:
            handle = await events.attach()
            joined = await events.request(
                handle,
                {
                    "request": "join",
                    "ptype": "publisher",
                    "room": room.number,
                    "id": grant.feed,
                    "display": MONITOR,
                    "token": grant.token,
                },  # fmt: skip
                lambda d: d.get("videoroom") == "joined",
            )
        finally:
            await room.client.request(jp.allowed(room.number, room.secret, "remove", [grant.token]))
        room.events, room.private_id = events, int(joined["private_id"])

    async def members(self, room_id: str) -> list[jp.Member]:
        room = self._rooms.get(room_id)
        if room is None:
            return []
        return jp.members(await room.client.request(jp.list_participants(room.number)))

    def holds_pass(self, room_id: str, participant_id: str) -> bool:
        room = self._rooms.get(room_id)
        return room is not None and participant_id in room.grants

    # -- the sweep --

    async def sweep(self, room_id: str) -> list[jp.Member]:
        """Kick every feed in the room that holds no current pass; returns them."""
        room = self._rooms.get(room_id)
        if room is None:
            return []
        intruders = [m for m in await self.members(room_id) if m.feed not in room.feeds()]
        for member in intruders:
            await self._kick(room, member.feed)
            if self.on_intruder is not None:
                self.on_intruder(room_id, member)
        return intruders

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.media.janus_sweep_s)
            for room_id in list(self._rooms):
                try:
                    await self.sweep(room_id)
                except (jp.JanusError, aiohttp.ClientError, TimeoutError) as exc:
                    log.warning("janus sweep %s: %s", room_id, exc)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        spawn_logged(self._tasks, coro, "janus-watch", log, "janus task failed")
