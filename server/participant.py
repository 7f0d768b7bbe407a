"""One participant's session: websocket in, gate decisions, media plumbing out.

This is the asyncio edge around the sans-IO ``Gate``: it turns websocket
messages, sampled frames and a ticker into gate events, and carries out the
actions the gate returns (messages, audit records, SFU admission).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from . import gate as g
from .presence import PresenceCheck, PresenceEvent, PresenceMonitor
from .presence.check import presence_check
from .rtc.codecs import restrict_answer_codecs
from .rtc.forward import Publisher
from .rtc.peer import create_peer_connection
from .rtc.sampler import FrameSampler
from .signalling import Answer, Candidate, ClientMessage, Leave, MediaState, Offer, Ready
from .verify import FaceChecker

if TYPE_CHECKING:
    from .hub import Hub, RoomRuntime

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
NEGOTIATION_TIMEOUT_S = 10.0
TICK_S = 0.5


class Participant:
    def __init__(
        self,
        hub: Hub,
        runtime: RoomRuntime,
        send: Send,
        checker: FaceChecker,
        *,
        policy: g.GatePolicy,
        name: str,
        person_id: str | None,
        lockout_keys: tuple[str, ...],
        ip: str,
    ) -> None:
        self.id = secrets.token_hex(8)
        self.rejoin_token = secrets.token_urlsafe(18)
        self.hub = hub
        self.runtime = runtime
        self.send = send
        self.checker = checker
        self.name = name
        self.claimed_person = person_id
        self.ip = ip
        self.gate = g.Gate(policy, hub.lockout, lockout_keys, rng=hub.challenge_rng())
        self.pc: RTCPeerConnection | None = None
        self.publisher: Publisher | None = None
        self.sampler: FrameSampler | None = None
        self.audio_on = True
        self.video_on = True
        self._ticker: asyncio.Task[None] | None = None
        self._negotiation = asyncio.Lock()
        self._answer: asyncio.Future[str] | None = None
        self._resume: tuple[str | None, float] | None = None
        self._closed = False
        self.joined_at = time.time()
        # Certified presence (docs/presence.md): sparse keyframe checks while admitted.
        self.presence = PresenceMonitor(hub.presence_config(runtime.room))
        self._presence_task: asyncio.Task[None] | None = None
        self._reverifying = False
        self._ever_admitted = False

    @property
    def admitted(self) -> bool:
        return self.gate.state is g.State.ADMITTED

    @property
    def closed(self) -> bool:
        """True once ``close`` ran: pc, tasks and the room seat are (being) released."""
        return self._closed

    def resume_after_blip(self, person_id: str | None, distance: float) -> None:
        """Admit on connect without re-verifying: a rejoin inside the grace window."""
        self._resume = (person_id, distance)

    # -- messages from the client --

    async def handle(self, msg: ClientMessage) -> None:
        if isinstance(msg, Offer):
            await self._on_offer(msg.sdp)
        elif isinstance(msg, Answer):
            if self._answer is not None and not self._answer.done():
                self._answer.set_result(msg.sdp)
            else:
                await self.error("unexpected_answer", "no offer is waiting for an answer")
        elif isinstance(msg, Candidate):
            await self._on_candidate(msg)
        elif isinstance(msg, Ready):
            await self._apply(self.gate.handle(g.Start(time.monotonic())))
        elif isinstance(msg, MediaState):
            self.audio_on, self.video_on = msg.audio, msg.video
            await self.runtime.broadcast_peers()
        elif isinstance(msg, Leave):
            await self.close(left=True)
        else:
            await self.error("unexpected_message", "already joined")

    async def error(self, code: str, message: str, *, fatal: bool = False) -> None:
        await self.send({"type": "error", "code": code, "message": message, "fatal": fatal})

    async def _on_offer(self, sdp: str) -> None:
        if self.pc is not None:
            await self.error("unexpected_offer", "media is already connected")
            return
        pc = create_peer_connection(loopback=self.hub.settings.server.loopback)
        self.pc = pc
        self.publisher = Publisher(self.id, pc)

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState in ("failed", "closed") and not self._closed:
                await self.close(left=False)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            # VP8 everywhere: every browser decodes it, so one encoded stream fits all viewers.
            restrict_answer_codecs(pc)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # aiortc raises ValueError and friends on bad SDP
            log.info("participant %s sent an unusable offer: %s", self.id, exc)
            await self.error("bad_sdp", f"offer rejected: {exc}", fatal=True)
            await self.close(left=False)
            return
        await self.send({"type": "answer", "sdp": pc.localDescription.sdp})
        if self._resume is not None:
            person_id, distance = self._resume
            await self._apply(self.gate.resume_admitted(person_id, distance))
            return
        video = self.publisher.decoded_video
        has_video = any(
            t.kind == "video" and t.receiver.track is not None for t in pc.getTransceivers()
        )
        if video is None or not has_video:
            await self.error("no_video", "a camera track is required to be verified", fatal=True)
            # Fatal: free the pc (and its ICE sockets) now, not when the socket closes.
            await self.close(left=False)
            return
        self.sampler = FrameSampler(video, self.hub.settings.gate.sample_fps, self._on_frame)
        self.sampler.start()
        self._ticker = asyncio.create_task(self._tick(), name=f"tick-{self.id}")

    async def _on_candidate(self, msg: Candidate) -> None:
        if self.pc is None or not msg.candidate:
            return
        try:
            candidate = candidate_from_sdp(msg.candidate.removeprefix("candidate:"))
        except (ValueError, IndexError):
            await self.error("bad_candidate", "ICE candidate could not be parsed")
            return
        candidate.sdpMid = msg.sdp_mid
        candidate.sdpMLineIndex = msg.sdp_mline_index
        await self.pc.addIceCandidate(candidate)

    # -- frames and time --

    async def _on_frame(self, frame: Any, received_at: float) -> None:
        if self.gate.state is g.State.LOBBY:
            await self._apply(self.gate.handle(g.Start(time.monotonic())))
        if self.gate.state not in (g.State.CHECKING, g.State.REVERIFYING, g.State.CHALLENGE):
            return
        loop = asyncio.get_running_loop()
        embed = self.gate.wants_embedding
        observation = await loop.run_in_executor(self.hub.executor, self._observe, frame, embed)
        observation = dataclasses.replace(observation, taken_at=received_at)
        if not self._closed:
            await self._apply(self.gate.handle(g.FrameAnalysed(time.monotonic(), observation)))

    def _observe(self, frame: Any, embed: bool = True) -> g.Observation:
        rgb = frame.to_ndarray(format="rgb24")
        return self.checker.observe(rgb, embed=embed)

    async def _tick(self) -> None:
        while not self._closed:
            await asyncio.sleep(TICK_S)
            await self._apply(self.gate.handle(g.Tick(time.monotonic())))

    # -- carrying out the gate's actions --

    async def _apply(self, actions: list[g.Action]) -> None:
        for action in actions:
            if isinstance(action, g.StateChanged):
                await self.send({"type": "state", "state": action.state.value})
                await self.runtime.notify_dashboard()
            elif isinstance(action, g.Prompt):
                await self.send(
                    {
                        "type": "prompt",
                        "text": action.text,
                        "action": action.action,
                        "step": action.step,
                        "steps": action.steps,
                        "time_limit_s": action.time_limit_s,
                    }
                )
            elif isinstance(action, g.Flash):
                # Screen-light challenge (docs/protocol.md `flash`): the page shows the
                # colours; the sampler analyses more frames until the gate decides.
                if self.sampler is not None:
                    self.sampler.boost(action.sample_fps, action.deadline)
                await self.send(
                    {
                        "type": "flash",
                        "sequence": [{"color": s.css, "ms": s.ms} for s in action.steps],
                        "lead_ms": round(action.lead_s * 1000),
                    }
                )
            elif isinstance(action, g.Progress):
                await self._progress(action)
            elif isinstance(action, g.Admitted):
                await self._admitted(action)
            elif isinstance(action, g.Refused):
                await self._refused(action)
            elif isinstance(action, g.LockedOut):
                await self._locked(action)

    async def _progress(self, action: g.Progress) -> None:
        message = g.MESSAGES[action.hold] if action.hold else ""
        if action.detail:
            message = f"{message} ({action.detail})"
        await self.send(
            {
                "type": "progress",
                "frames": action.frames,
                "required": action.required,
                "hold": action.hold.value if action.hold else None,
                "message": message or f"Checking… {action.frames} of {action.required}",
            }
        )

    async def _admitted(self, action: g.Admitted) -> None:
        await self._stop_sampling()
        kind = "reverify" if action.reverify else "rejoin" if self._resume else "admission"
        self.hub.audit(
            self,
            "reverify.passed" if action.reverify else "participant.admitted",
            {
                "distance": round(action.distance, 4),
                "reverify": action.reverify,
                "kind": kind,
                "liveness": "skipped" if kind == "rejoin" else self.gate.policy.liveness.value,
            },
            person_id=action.person_id,
        )
        self._reverifying = False
        self._ever_admitted = True
        if action.person_id and self.claimed_person is None:
            self.name = self.hub.person_name(action.person_id, self.name)
        await self.send(
            {
                "type": "verdict",
                "admitted": True,
                "reason": None,
                "message": f"Welcome, {self.name}.",
                "attempts_left": self.gate.attempts_left,
                "final": False,
            }
        )
        assert self.pc is not None and self.publisher is not None
        if not action.reverify:
            await self.runtime.admit(self)
        else:
            self.publisher.resume_forwarding()
            await self.runtime.broadcast_peers()
        self._start_presence()

    async def _refused(self, action: g.Refused) -> None:
        # The distance goes to the audit log only: a refusal never tells the
        # person how close they came or whom they resemble.
        if self._reverifying:
            event = "reverify.failed"
        else:
            event = "participant.denied" if action.final else "attempt.failed"
        self.hub.audit(
            self,
            event,
            {
                "reverify": self._reverifying,
                "reason": action.reason.value,
                "attempts_left": action.attempts_left,
                "distance": None if action.distance is None else round(action.distance, 4),
                # Which liveness check failed (audit only; the person sees the reason).
                "detail": action.detail,
            },
            person_id=self.claimed_person,
        )
        await self.send(
            {
                "type": "verdict",
                "admitted": False,
                "reason": action.reason.value,
                "message": g.MESSAGES[action.reason],
                "attempts_left": action.attempts_left,
                "final": action.final,
            }
        )
        if action.final:
            await self.close(left=False)

    async def _locked(self, action: g.LockedOut) -> None:
        minutes = max(1, round((action.until - time.monotonic()) / 60))
        await self.send(
            {
                "type": "verdict",
                "admitted": False,
                "reason": g.Reason.LOCKED_OUT.value,
                "message": f"{g.MESSAGES[g.Reason.LOCKED_OUT]} Locked for about {minutes} min.",
                "attempts_left": 0,
                "final": True,
            }
        )
        await self.close(left=False)

    async def _stop_sampling(self) -> None:
        if self.sampler is not None:
            await self.sampler.stop()
            self.sampler = None
        if self.publisher is not None:
            self.publisher.stop_decoding()

    # -- host re-verification (docs/presence.md) --

    async def request_reverify(self) -> bool:
        """The host asks this admitted participant to verify again, now.

        Decoding and the sampler restart for the attempt (the presence checks stop
        first: they share the decoder), the participant's media to the others is
        paused if configured, and the gate runs a normal attempt (challenge included).
        Passing resumes everything; failing removes them from the room with the reason.
        """
        if self._closed or self.publisher is None or self.gate.state is not g.State.ADMITTED:
            return False
        actions = self.gate.handle(g.ReverifyRequested(time.monotonic()))
        if not actions:
            return False
        self._reverifying = True
        await self._stop_presence()
        self.hub.audit(self, "reverify.requested", {})
        if self.hub.settings.presence.pause_media_on_reverify:
            self.publisher.pause_forwarding()
        await self.send({"type": "reverify", "paused": self.publisher.paused})
        video = self.publisher.start_decoding()
        self.sampler = FrameSampler(video, self.hub.settings.gate.sample_fps, self._on_frame)
        self.sampler.start()
        if self._ticker is None:  # a rejoined session never ran one: timeouts need it
            self._ticker = asyncio.create_task(self._tick(), name=f"tick-{self.id}")
        await self._apply(actions)
        await self.runtime.broadcast_peers()
        return True

    # -- continuous presence (docs/presence.md) --

    def _start_presence(self) -> None:
        if self.presence.config.interval_s <= 0 or self._closed:
            return
        self.presence.start(time.monotonic())
        if self._presence_task is None or self._presence_task.done():
            self._presence_task = asyncio.create_task(
                self._presence_loop(), name=f"presence-{self.id}"
            )

    async def _stop_presence(self) -> None:
        task, self._presence_task = self._presence_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _presence_loop(self) -> None:
        """Every interval: one keyframe decoded, one face check in the executor."""
        loop = asyncio.get_running_loop()
        timeout = self.hub.settings.presence.keyframe_timeout_s
        while not self._closed:
            now = time.monotonic()
            if not self.presence.due(now):
                await asyncio.sleep(min(0.5, self.presence.config.interval_s))
                continue
            publisher = self.publisher
            if publisher is None or self.gate.state is not g.State.ADMITTED:
                return
            frame = await publisher.decode_keyframe(timeout)
            if self._closed or self.gate.state is not g.State.ADMITTED:
                return
            if frame is None:
                check = PresenceCheck(time.monotonic(), made=False)
            else:
                check = await loop.run_in_executor(
                    self.hub.executor, self._presence_check, frame, time.monotonic()
                )
            if self._closed:
                return
            for event in self.presence.feed(check):
                self._presence_event(event)
            await self.runtime.notify_dashboard()

    def _presence_check(self, frame: Any, now: float) -> PresenceCheck:
        """Executor: faces in the keyframe and their distance to this person's templates."""
        target = self.checker.target
        person = self.gate.person_id or target.claimed
        templates = target.gallery.get(person) if person else None
        if templates is None:
            templates = np.empty((0, 128), dtype=np.float32)
        rgb = frame.to_ndarray(format="rgb24")
        return presence_check(self.checker.engine, rgb, templates, target.threshold, now)

    def _presence_event(self, event: PresenceEvent) -> None:
        details: dict[str, Any] = {
            "faces": event.faces,
            "checks": event.checks,
            "distance": None if event.distance is None else round(event.distance, 4),
        }
        if event.cleared:
            details["cleared"] = list(event.cleared)
        self.hub.audit(self, event.kind, details)

    # -- renegotiation, driven by the SFU room --

    async def renegotiate(self) -> None:
        """Server-side offer to add or remove forwarded tracks; waits for the answer."""
        pc = self.pc
        if pc is None or self._closed:
            return
        async with self._negotiation:
            # The factory's createOffer keeps the numbering the browser negotiated.
            await pc.setLocalDescription(await pc.createOffer())
            loop = asyncio.get_running_loop()
            self._answer = loop.create_future()
            await self.send({"type": "offer", "sdp": pc.localDescription.sdp})
            try:
                sdp = await asyncio.wait_for(self._answer, NEGOTIATION_TIMEOUT_S)
            finally:
                self._answer = None
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))

    # -- teardown --

    async def close(self, *, left: bool, grace: bool = True, reason: str | None = None) -> None:
        """Free everything; ``grace=False`` gives no rejoin window (the seat was taken over).

        ``reason`` overrides the ``bye`` reason (default ``left`` / ``closed``).
        """
        if self._closed:
            return
        was_admitted = self.admitted
        self._closed = True
        self.gate.handle(g.Leave(time.monotonic()))
        # close() can run inside the ticker (a tick-driven final refusal): cancelling the
        # current task would abort this teardown at its next await and leak the pc. The
        # loop ends by itself on ``_closed``.
        if self._ticker is not None and self._ticker is not asyncio.current_task():
            self._ticker.cancel()
        await self._stop_presence()
        await self._stop_sampling()
        await self.runtime.remove(self, grace=was_admitted and not left and grace)
        if self.publisher is not None:
            with contextlib.suppress(Exception):
                await self.publisher.close()
        if self.pc is not None:
            with contextlib.suppress(Exception):
                await self.pc.close()
        stats = self.presence.stats
        if stats.made or stats.skipped:
            summary = {"checks": stats.made, "passed": stats.passed, "skipped": stats.skipped}
            self.hub.audit(self, "presence.summary", summary)
        if was_admitted or left or self._ever_admitted:
            self.hub.audit(self, "participant.left", {"by_choice": left})
        with contextlib.suppress(Exception):
            await self.send({"type": "bye", "reason": reason or ("left" if left else "closed")})

