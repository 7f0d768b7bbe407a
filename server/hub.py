"""Live server state shared by every session: rooms in use, rejoin grace, galleries,
lockout, the audit trail, dashboards; plus periodic housekeeping that keeps all of
it bounded.

``Hub`` is what participants see as ``SessionServices`` (``server/roles.py``) and
what rooms (``server/room_runtime.py``) call back into. It owns no participant
state: each participant's own task does (``server/participant.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import random
import time
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .audit import AuditTrail
from .cluster.counters import MirroredLockout
from .config import Settings
from .dashboard import Dashboards, DashboardSink
from .device import load_device_ids
from .face.engine import FaceEngine
from .face.gallery import GalleryIndex
from .face.matcher import DEFAULT_THRESHOLD
from .face.multimatch import EngineGallery
from .gate import GatePolicy
from .identity import GraceEntry
from .janus import janus_plane
from .liveness import ActiveConfig, LivenessPolicy, PassiveConfig
from .lockout import LockoutTracker
from .node_metrics import NodeMetrics
from .presence import PresenceConfig
from .report import load_or_create_signing_key
from .roles import CloseReason, RoomMember
from .room_runtime import RoomRuntime
from .store import Repository, Room, StoreError
from .verify import build_room_index
from .webhooks import WebhookDispatcher
from .workpool import WorkPool

if TYPE_CHECKING:
    from .cluster.bridge import ClusterBridge

__all__ = ["GraceEntry", "Hub"]

HOST_DECISION_S = 10.0  # a host decision waits this long for the participant's task

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 60.0
ROOM_DELETED = "The organiser closed this room. You have left it."
PERSON_DELETED = "The organiser removed your enrolment from this room. You have left it."
INVITE_REVOKED = "The organiser revoked this invite link. You have left the room."
# Room galleries kept decrypted in memory: the most recently used, at most this many,
# and none unused for longer than GALLERY_IDLE_S.
GALLERY_CACHE_ROOMS = 64
GALLERY_IDLE_S = 600.0


@dataclass
class _CachedGallery:
    version: tuple[tuple[int, int], str]
    index: GalleryIndex | EngineGallery
    used: float


class Hub:
    def __init__(self, settings: Settings, store: Repository, engine: FaceEngine) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        gate = settings.gate
        self.policy = GatePolicy(
            attempt_timeout_s=gate.attempt_timeout_s,
            max_attempts=gate.max_attempts,
            frames_required=gate.frames_required,
            min_motion=gate.min_motion,
        )
        # A cluster node (docs/scale.md) mirrors the shared locks into the gate's tracker.
        tracker = MirroredLockout if settings.cluster.redis_url else LockoutTracker
        self.lockout = tracker(
            gate.lockout_failures,
            gate.lockout_window_s,
            gate.lockout_duration_s,
            thresholds={"ip": gate.address_failures},
        )
        self.executor = WorkPool.from_settings(settings.workers)
        self.rooms: dict[str, RoomRuntime] = {}
        self.grace: dict[str, GraceEntry] = {}
        self._galleries: OrderedDict[str, _CachedGallery] = OrderedDict()
        self._gallery_locks: dict[str, asyncio.Lock] = {}
        self.webhooks = WebhookDispatcher(store, settings.webhooks)
        self.audit_trail = AuditTrail(store, self.webhooks)
        self.dashboard = Dashboards(self)
        # Ed25519 key for attendance reports: <data_dir>/signing.key, made on first run.
        self.signing_key = load_or_create_signing_key(settings.data_path)
        self.devices = load_device_ids(settings.data_path, os.environ.get("VIDEOGATE_DEVICE_KEY"))
        self._housekeeping: asyncio.Task[None] | None = None
        self.cluster: ClusterBridge | None = None
        if settings.cluster.redis_url:
            from .cluster.bridge import ClusterBridge  # imports redis: only on a cluster

            self.cluster = ClusterBridge(self)
            self.dashboard.cluster = self.cluster
        # Prometheus registry of this node (server/node_metrics.py); /readyz reads draining.
        self.metrics = NodeMetrics(self)
        self.executor.on_job_done = self.metrics.job_done
        self.draining = False
        # Janus as the media plane for rooms configured so (docs/janus.md).
        self.janus = janus_plane(settings.media, self.audit_trail, self.cluster)

    def start(self) -> None:
        self._housekeeping = asyncio.create_task(self._housekeeping_loop(), name="housekeeping")
        self.metrics.start()
        if self.janus is not None:
            self.janus.start()

    # -- galleries (1:N) --

    async def room_gallery(self, room: Room) -> GalleryIndex | EngineGallery:
        """The room's templates decrypted and packed once for its engine setting, rebuilt
        (in the executor, off the event loop) only when the gallery or engine changed."""
        # One build per room at a time: twenty people joining at once share it.
        room_id = room.id
        async with self._gallery_locks.setdefault(room_id, asyncio.Lock()):
            version = (self.store.gallery_version(room_id), room.engine)
            cached = self._galleries.get(room_id)
            if cached is not None and cached.version == version:
                cached.used = time.monotonic()
                self._galleries.move_to_end(room_id)
                return cached.index
            loop = asyncio.get_running_loop()
            index = await loop.run_in_executor(
                self.executor, build_room_index, self.store, room_id, room.engine
            )
            self._galleries[room_id] = _CachedGallery(version, index, time.monotonic())
            self._galleries.move_to_end(room_id)
            while len(self._galleries) > GALLERY_CACHE_ROOMS:
                self.forget_gallery(next(iter(self._galleries)))
            return index

    def forget_gallery(self, room_id: str) -> None:
        """Drop a room's cached gallery (room deleted, evicted, idle)."""
        self._galleries.pop(room_id, None)
        lock = self._gallery_locks.get(room_id)
        if lock is not None and not lock.locked():
            del self._gallery_locks[room_id]

    def housekeeping(self, now: float) -> None:
        """Bound what memory holds: expired lockouts, grace entries, idle galleries."""
        self.lockout.forget_expired(now)
        self.grace = {k: v for k, v in self.grace.items() if v.expires > now}
        for room_id in [r for r, c in self._galleries.items() if now - c.used > GALLERY_IDLE_S]:
            if room_id not in self.rooms:
                self.forget_gallery(room_id)

    async def _housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            try:
                self.housekeeping(time.monotonic())
            except Exception:
                log.exception("housekeeping failed")

    # -- what sessions share (SessionServices) --

    def gate_policy(self, room: Room) -> GatePolicy:
        """The server's gate settings with this room's own choices on top."""
        live = self.settings.liveness
        return dataclasses.replace(
            self.policy,
            max_attempts=room.max_attempts or self.policy.max_attempts,
            liveness=(
                LivenessPolicy.parse(room.liveness_policy).without_light()
                if room.no_flashing  # photosensitive participants: the pose challenge instead
                else LivenessPolicy.parse(room.liveness_policy)
            ),
            active=dataclasses.replace(
                ActiveConfig(),
                step_time_s=live.step_time_s,
                min_steps=live.min_steps,
                max_steps=live.max_steps,
                expression_fps=live.expression_fps,
            ),
            passive=dataclasses.replace(PassiveConfig(), threshold=live.passive_threshold),
        )

    def challenge_rng(self) -> random.Random | None:
        """TEST ONLY seeded draw ([liveness] test_seed >= 0); None = the gate's CSPRNG."""
        seed = self.settings.liveness.test_seed
        if seed < 0:
            return None
        log.warning("liveness challenges use the TEST seed %d: never in production", seed)
        return random.Random(seed)

    @property
    def default_threshold(self) -> float:
        return self.settings.gate.threshold or DEFAULT_THRESHOLD

    def presence_config(self, room: Room) -> PresenceConfig:
        p = self.settings.presence
        interval = room.presence_interval_s if room.presence_interval_s else p.interval_s
        return PresenceConfig(
            interval, p.lost_checks, p.mismatch_checks, p.extra_checks,
            p.unverifiable_checks, p.check_jitter,
        )  # fmt: skip

    def person_name(self, person_id: str, fallback: str) -> str:
        try:
            return self.store.person(person_id).name
        except StoreError:
            return fallback

    def audit(
        self,
        member: RoomMember,
        event: str,
        details: Mapping[str, object],
        person_id: str | None = None,
    ) -> None:
        runtime = member.runtime
        identity = member.identity
        person = person_id or (identity.person_id if identity else member.claimed_person)
        record = {"name": member.name, "ip": member.ip, "meeting": runtime.meeting_id, **details}
        self.audit_trail.record(
            event, record, room_id=runtime.room.id, person_id=person, participant_id=member.id
        )

    # -- rooms --

    async def audit_settled(self) -> None:
        await self.audit_trail.settled()

    def runtime(self, room: Room) -> RoomRuntime:
        runtime = self.rooms.get(room.id)
        if runtime is None:
            runtime = self.rooms[room.id] = RoomRuntime(self, room)
        return runtime

    def forget_room(self, runtime: RoomRuntime) -> None:
        if self.rooms.get(runtime.room.id) is runtime:
            del self.rooms[runtime.room.id]
            if self.cluster is not None:
                self.cluster.released(runtime.room.id)
        self.end_meeting(runtime)

    def start_meeting(self, room_id: str) -> str | None:
        try:
            return self.store.start_meeting(room_id).id
        except Exception:  # the meeting record must never keep anyone out of a room
            log.exception("meeting start failed for room %s", room_id)
            return None

    def end_meeting(self, runtime: RoomRuntime) -> None:
        meeting_id = runtime.meeting_id
        if meeting_id is None:
            return
        try:
            self.store.end_meeting(meeting_id)
        except Exception:
            log.exception("meeting end failed for %s", meeting_id)
        # A stranger's refused visit is not a meeting to report to webhooks.
        hook = {"meeting": meeting_id, "room": runtime.room.name} if runtime.had_admission else None
        self.audit_trail.room_event("meeting.ended", {"meeting": meeting_id}, runtime.room.id, hook)

    # -- owner dashboards --

    def subscribe_dashboard(self, room_id: str, sink: DashboardSink) -> None:
        self.dashboard.subscribe(room_id, sink)

    def unsubscribe_dashboard(self, room_id: str, sink: DashboardSink) -> None:
        self.dashboard.unsubscribe(room_id, sink)

    def dashboard_snapshot(self, room_id: str) -> dict[str, Any]:
        return self.dashboard.snapshot(room_id)

    async def push_dashboard(self, room_id: str) -> None:
        await self.dashboard.push(room_id)

    # -- host actions and reports (certified presence, docs/presence.md) --

    async def reverify(self, room_id: str, participant_id: str | None = None) -> list[str]:
        """Ask one admitted participant (or all) to verify again; returns who was asked."""
        runtime = self.rooms.get(room_id)
        if runtime is None:
            if self.cluster is not None:  # the room may live on another node: ask it there
                self.cluster.node.publish("reverify", room=room_id, participant=participant_id)
            return []
        asked = []
        for member in list(runtime.participants.values()):
            if participant_id is not None and member.id != participant_id:
                continue
            if await member.request_reverify():
                asked.append(member.id)
        return asked

    def end_sessions(
        self,
        *,
        room_id: str | None = None,
        person_id: str | None = None,
        invite_id: str | None = None,
        message: str,
        local: bool = False,
    ) -> int:
        """The grant is gone (room or person deleted, invite revoked): end the live
        sessions that rest on it now, with a reason; returns how many were asked here.
        On a cluster every other node is told too (``local``: told by another node)."""
        if self.cluster is not None and not local:
            scope = {"room_id": room_id, "person_id": person_id, "invite_id": invite_id}
            self.cluster.end_sessions(**scope, message=message)
            self.cluster.drop_grace(room_id=room_id, person_id=person_id)
        ended = 0
        for runtime in list(self.rooms.values()):
            if room_id is not None and runtime.room.id != room_id:
                continue
            for member in list(runtime.participants.values()):
                identity = member.identity
                person = identity.person_id if identity else member.claimed_person
                if person_id is not None and person != person_id:
                    continue
                if invite_id is not None and member.invite_id != invite_id:
                    continue
                member.request_close(
                    CloseReason.REVOKED, grace=False, code="revoked", message=message
                )
                ended += 1
        self.grace = {
            token: entry
            for token, entry in self.grace.items()
            if not (
                (room_id is not None and entry.room_id == room_id)
                or (person_id is not None and entry.identity.person_id == person_id)
            )
        }
        if room_id is not None:
            self.forget_gallery(room_id)
        return ended

    # The live-session consequences of an owner's deletions and revocations.
    def room_deleted(self, room_id: str) -> int:
        return self.end_sessions(room_id=room_id, message=ROOM_DELETED)

    def person_deleted(self, person_id: str) -> int:
        return self.end_sessions(person_id=person_id, message=PERSON_DELETED)

    def invite_revoked(self, invite_id: str) -> int:
        return self.end_sessions(invite_id=invite_id, message=INVITE_REVOKED)

    # -- rejoin after a blip --

    def remember_for_rejoin(self, runtime: RoomRuntime, member: RoomMember) -> None:
        identity = member.identity
        if identity is None:
            return
        if self.cluster is not None:  # in Redis since admission: now the grace window only
            self.cluster.dropped(member.rejoin_token)
            return
        now = time.monotonic()
        self.grace = {k: v for k, v in self.grace.items() if v.expires > now}
        self.grace[member.rejoin_token] = GraceEntry(
            runtime.room.id,
            member.ip,
            identity,
            member.device,
            now + self.settings.gate.rejoin_grace_s,
        )

    def keep_for_rejoin(self, token: str, entry: GraceEntry) -> None:
        """Put back a token claimed by the wrong person: it stays valid for its owner."""
        if self.cluster is not None:
            self.cluster.remember(token, entry)
        else:
            self.grace[token] = entry

    def claim_rejoin(
        self, token: str | None, room_id: str, ip: str, device: str | None = None
    ) -> GraceEntry | None:
        """A rejoin token is single-use and bound to the room and to the browser: its
        signed device cookie when the session had one (it survives a move from Wi-Fi to
        cellular, docs/deploy.md), else the client address."""
        if not token:
            return None
        entry = self.grace.pop(token, None)
        return entry if entry is not None and entry.fits(room_id, ip, device) else None

    async def claim_rejoin_shared(
        self, token: str | None, room_id: str, ip: str, device: str | None = None
    ) -> GraceEntry | None:
        """:meth:`claim_rejoin`, from Redis on a cluster (single-use cluster-wide)."""
        if self.cluster is None or not token:
            return self.claim_rejoin(token, room_id, ip, device)
        entry = await self.cluster.claim(token)
        return entry if entry is not None and entry.fits(room_id, ip, device) else None

    async def sync_lockout(self, keys: Sequence[Hashable], *, failed: bool) -> None:
        """The shared lockout's round trip around the gate (nothing on a single node)."""
        if self.cluster is not None:
            await self.cluster.sync_lockout(keys, failed=failed)

    async def release_for_rejoin(
        self, token: str | None, room_id: str, ip: str, device: str | None
    ) -> None:
        """A rejoin that arrives before the server noticed the old connection died (its
        socket is only found dead at the next heartbeat): end that session into its
        grace window now, so the rejoin resumes it instead of verifying again."""
        runtime = self.rooms.get(room_id)
        if not token or runtime is None:
            return
        for member in list(runtime.participants.values()):
            if member.rejoin_token != token or not member.admitted:
                continue
            same = member.device == device if member.device is not None else member.ip == ip
            if same:
                member.request_close(CloseReason.DISCONNECTED, grace=True)
                await member.wait_closed(5.0)

    async def start_cluster(self) -> None:
        if self.cluster is not None:
            await self.cluster.start()

    async def close(self) -> None:
        self.draining = True
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        await self.metrics.close()
        for runtime in list(self.rooms.values()):
            for member in list(runtime.participants.values()):
                member.request_close(CloseReason.SHUTDOWN, grace=False)
            for member in list(runtime.participants.values()):
                await member.wait_closed(5.0)
            await runtime.close()
        await self.dashboard.close()
        if self.janus is not None:
            await self.janus.close()
        await asyncio.get_running_loop().run_in_executor(None, self.audit_trail.close)
        await self.webhooks.close()
        if self.cluster is not None:
            await self.cluster.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
