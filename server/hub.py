"""Live server state: the rooms in use, their participants and shared services.

``Hub`` owns what every participant shares (settings, store, face engine,
executor, lockout tracker, rejoin grace entries); ``RoomRuntime`` owns one
room's participants and its SFU. Only admitted participants are ever handed to
the SFU, so nobody unverified receives room media.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .config import Settings
from .face.engine import FaceEngine
from .face.gallery import GalleryIndex
from .face.matcher import DEFAULT_THRESHOLD
from .gate import GatePolicy, LockoutTracker, State
from .liveness import ActiveConfig, LivenessPolicy, PassiveConfig
from .participant import Participant
from .presence import PresenceConfig
from .report import build_report, load_or_create_signing_key, sign_report
from .rtc.room import SfuRoom
from .seats import take_seat
from .store import Room, SqliteStore, StoreError
from .store.records import WEBHOOK_EVENTS
from .webhooks import WebhookDispatcher

log = logging.getLogger(__name__)

# An owner dashboard's websocket, as a send function (see server/owner/live.py).
DashboardSink = Callable[[dict[str, Any]], Awaitable[None]]
DASHBOARD_EVENTS = ("participant.admitted", "participant.denied", "attempt.failed",
                    "participant.left", "reverify.requested", "reverify.passed",
                    "reverify.failed", "presence.lost", "identity.mismatch", "extra.person",
                    "presence.restored")  # fmt: skip
# Audit details that stay in the audit log: never sent to a webhook.
PRIVATE_DETAILS = ("ip",)
DASHBOARD_SEND_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class GraceEntry:
    room_id: str
    ip: str
    name: str
    person_id: str | None
    distance: float
    expires: float


class RoomRuntime:
    def __init__(self, hub: Hub, room: Room) -> None:
        self.hub = hub
        self.room = room
        self.participants: dict[str, Participant] = {}
        self.sfu = SfuRoom(self._renegotiate)
        # A meeting is one live session of the room: it ends when the room empties.
        self.meeting_id = hub.start_meeting(room.id)

    async def _renegotiate(self, participant_id: str) -> None:
        participant = self.participants.get(participant_id)
        if participant is not None:
            await participant.renegotiate()
        await self.broadcast_peers()

    def add(self, participant: Participant) -> None:
        self.participants[participant.id] = participant
        self.hub.audit(participant, "participant.joined", {})

    async def admit(self, participant: Participant) -> None:
        assert participant.pc is not None and participant.publisher is not None
        await take_seat(self, participant)  # one admitted session per person (seats.py)
        await self.sfu.admit(participant.id, participant.pc, participant.publisher)
        await self.broadcast_peers()

    async def remove(self, participant: Participant, *, grace: bool) -> None:
        if self.participants.pop(participant.id, None) is None:
            return
        if grace:
            self.hub.remember_for_rejoin(participant)
        with contextlib.suppress(Exception):
            await self.sfu.remove(participant.id)
        await self.broadcast_peers()
        if not self.participants:
            self.hub.forget_room(self)

    def admitted(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.admitted]

    async def broadcast_peers(self) -> None:
        """Tell each admitted participant who else is in, and which media lines are theirs."""
        admitted = self.admitted()
        for viewer in admitted:
            mids: dict[str, list[str]] = {}
            for leg in self.sfu.legs(viewer_id=viewer.id):
                if leg.mid is not None:
                    mids.setdefault(leg.publisher_id, []).append(leg.mid)
            peers = [
                {
                    "id": other.id,
                    "name": other.name,
                    "mids": mids.get(other.id, []),
                    "audio": other.audio_on,
                    "video": other.video_on,
                }
                for other in admitted
                if other is not viewer
            ]
            with contextlib.suppress(Exception):
                await viewer.send({"type": "peers", "peers": peers})
        await self.notify_dashboard()

    async def notify_dashboard(self) -> None:
        """Push this room's live state to the owner dashboards watching it (if any)."""
        await self.hub.push_dashboard(self.room.id)


class Hub:
    def __init__(self, settings: Settings, store: SqliteStore, engine: FaceEngine) -> None:
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
        self.lockout = LockoutTracker(
            gate.lockout_failures, gate.lockout_window_s, gate.lockout_duration_s
        )
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="face")
        self.rooms: dict[str, RoomRuntime] = {}
        self.grace: dict[str, GraceEntry] = {}
        self._galleries: dict[str, tuple[tuple[int, int], GalleryIndex]] = {}
        self._gallery_locks: dict[str, asyncio.Lock] = {}
        self.dashboards: dict[str, set[DashboardSink]] = {}
        self.webhooks = WebhookDispatcher(store, settings.webhooks)
        # Ed25519 key for attendance reports: <data_dir>/signing.key, made on first run.
        self.signing_key = load_or_create_signing_key(settings.data_path)

    async def room_gallery(self, room_id: str) -> GalleryIndex:
        """The room's templates decrypted and packed once, rebuilt (in the executor,
        off the event loop) only when the room's gallery changed."""
        # One build per room at a time: twenty people joining at once share it.
        async with self._gallery_locks.setdefault(room_id, asyncio.Lock()):
            version = self.store.gallery_version(room_id)
            cached = self._galleries.get(room_id)
            if cached is not None and cached[0] == version:
                return cached[1]
            loop = asyncio.get_running_loop()
            index = await loop.run_in_executor(
                self.executor, lambda: GalleryIndex(self.store.gallery(room_id))
            )
            self._galleries[room_id] = (version, index)
            return index

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

    def runtime(self, room: Room) -> RoomRuntime:
        runtime = self.rooms.get(room.id)
        if runtime is None:
            runtime = self.rooms[room.id] = RoomRuntime(self, room)
        return runtime

    # -- owner dashboards (subscribers per room id; the owner UI checks ownership) --

    def subscribe_dashboard(self, room_id: str, sink: DashboardSink) -> None:
        self.dashboards.setdefault(room_id, set()).add(sink)

    def unsubscribe_dashboard(self, room_id: str, sink: DashboardSink) -> None:
        sinks = self.dashboards.get(room_id)
        if sinks is not None:
            sinks.discard(sink)
            if not sinks:
                del self.dashboards[room_id]

    def dashboard_snapshot(self, room_id: str) -> dict[str, Any]:
        """Who is in the lobby or the room now, and the latest decisions with scores."""
        runtime = self.rooms.get(room_id)
        participants = []
        for p in list(runtime.participants.values()) if runtime else []:
            distance = p.gate.distance
            stats = p.presence.stats
            participants.append(
                {
                    "id": p.id,
                    "name": p.name,
                    "state": p.gate.state.value,
                    "distance": None if distance is None else round(distance, 3),
                    "since": round(p.joined_at, 1),
                    "presence": {
                        "checks": stats.made,
                        "passed": stats.passed,
                        "ratio": None if stats.ratio is None else round(stats.ratio, 3),
                        "flags": list(p.presence.flags),
                    },
                    "paused": p.publisher is not None and p.publisher.paused,
                    "can_reverify": p.gate.state is State.ADMITTED,
                }
            )
        recent = []
        try:
            records = self.store.audit_log(room_id, limit=100)
        except Exception:  # the dashboard must never take the media path down
            log.exception("dashboard audit read failed")
            records = []
        for record in reversed(records):
            if record.event not in DASHBOARD_EVENTS:
                continue
            distance = record.details.get("distance")
            recent.append(
                {
                    "ts": round(record.ts, 1),
                    "event": record.event,
                    "name": record.details.get("name"),
                    "reason": record.details.get("reason"),
                    "distance": None if distance is None else round(float(distance), 3),
                    "participant_id": record.participant_id,
                }
            )
            if len(recent) >= 20:
                break
        return {"type": "room", "participants": participants, "recent": recent}

    async def push_dashboard(self, room_id: str) -> None:
        sinks = list(self.dashboards.get(room_id, ()))
        if not sinks:
            return
        snapshot = self.dashboard_snapshot(room_id)
        for sink in sinks:
            try:
                await asyncio.wait_for(sink(snapshot), DASHBOARD_SEND_TIMEOUT_S)
            except Exception:  # a slow or closed dashboard is dropped, never blocks the gate
                self.unsubscribe_dashboard(room_id, sink)

    def forget_room(self, runtime: RoomRuntime) -> None:
        if self.rooms.get(runtime.room.id) is runtime:
            del self.rooms[runtime.room.id]
        self.end_meeting(runtime)

    # -- meetings, reports, host actions (certified presence, docs/presence.md) --

    def start_meeting(self, room_id: str) -> str:
        try:
            return self.store.start_meeting(room_id).id
        except Exception:  # the meeting record must never keep anyone out of a room
            log.exception("meeting start failed for room %s", room_id)
            return "unrecorded"

    def end_meeting(self, runtime: RoomRuntime) -> None:
        meeting_id = runtime.meeting_id
        try:
            self.store.end_meeting(meeting_id)
            self.store.audit("meeting.ended", {"meeting": meeting_id}, room_id=runtime.room.id)
        except Exception:
            log.exception("meeting end failed for %s", meeting_id)
        self.webhooks.emit(
            runtime.room.id, "meeting.ended", {"meeting": meeting_id, "room": runtime.room.name}
        )

    def presence_config(self, room: Room) -> PresenceConfig:
        p = self.settings.presence
        interval = room.presence_interval_s if room.presence_interval_s else p.interval_s
        return PresenceConfig(interval, p.lost_checks, p.mismatch_checks, p.extra_checks)

    async def reverify(self, room_id: str, participant_id: str | None = None) -> list[str]:
        """Ask one admitted participant (or all) to verify again; returns who was asked."""
        runtime = self.rooms.get(room_id)
        if runtime is None:
            return []
        targets = [
            p
            for p in list(runtime.participants.values())
            if participant_id is None or p.id == participant_id
        ]
        asked = []
        for participant in targets:
            if await participant.request_reverify():
                asked.append(participant.id)
        return asked

    def signed_report(self, room: Room, meeting_id: str) -> dict[str, Any]:
        """The meeting's attendance report, signed (raises StoreError if unknown)."""
        meeting = self.store.meeting(meeting_id, room.id)
        live: dict[str, dict[str, int]] = {}
        runtime = self.rooms.get(room.id)
        if runtime is not None and runtime.meeting_id == meeting_id:
            for p in runtime.participants.values():
                stats = p.presence.stats
                live[p.id] = {
                    "checks": stats.made, "passed": stats.passed, "skipped": stats.skipped
                }  # fmt: skip
        records = self.store.meeting_audit(meeting_id)
        report = build_report(meeting, room.name, records, generated=time.time(), live=live)
        return sign_report(report, self.signing_key)

    def remember_for_rejoin(self, participant: Participant) -> None:
        now = time.monotonic()
        self.grace = {k: v for k, v in self.grace.items() if v.expires > now}
        self.grace[participant.rejoin_token] = GraceEntry(
            participant.runtime.room.id,
            participant.ip,
            participant.name,
            participant.gate.person_id,
            participant.gate.distance or 0.0,
            now + self.settings.gate.rejoin_grace_s,
        )

    def claim_rejoin(self, token: str | None, room_id: str, ip: str) -> GraceEntry | None:
        """A rejoin token is single-use, bound to the room and the client address."""
        if not token:
            return None
        entry = self.grace.pop(token, None)
        if entry is None or entry.expires < time.monotonic():
            return None
        if entry.room_id != room_id or entry.ip != ip:
            return None
        return entry

    def person_name(self, person_id: str, fallback: str) -> str:
        try:
            return self.store.person(person_id).name
        except StoreError:
            return fallback

    def audit(
        self,
        participant: Participant,
        event: str,
        details: dict[str, Any],
        person_id: str | None = None,
    ) -> None:
        meeting_id = participant.runtime.meeting_id
        person = person_id or participant.gate.person_id or participant.claimed_person
        record = {"name": participant.name, "ip": participant.ip, "meeting": meeting_id, **details}
        try:
            self.store.audit(
                event,
                record,
                room_id=participant.runtime.room.id,
                person_id=person,
                participant_id=participant.id,
            )
        except Exception:  # the audit must never take the media path down
            log.exception("audit write failed for %s", event)
        if event in WEBHOOK_EVENTS:
            # Webhooks get the event without the client address (privacy).
            data = {k: v for k, v in record.items() if k not in PRIVATE_DETAILS}
            data.update(participant_id=participant.id, person_id=person)
            self.webhooks.emit(participant.runtime.room.id, event, data)

    async def close(self) -> None:
        for runtime in list(self.rooms.values()):
            for participant in list(runtime.participants.values()):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(participant.close(left=False), 5)
        await self.webhooks.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
