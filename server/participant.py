"""One participant's session: one task, one input queue, the gate's actions applied in order.

Everything that can happen to a participant -- a websocket message, an analysed
frame, a presence result, a deadline, the host asking for a re-verification, the
room asking for a renegotiation, a close -- arrives on ``inputs`` (see
``server/inputs.py``) and is handled by :meth:`Participant.run`, one at a time. So
no two tasks ever act on one participant at once, and nothing this task does
waits on input that only it could read: a renegotiation sends the offer and
returns; the answer is a later input. Timers are deadlines: the gate says when
it next needs time (``Gate.next_deadline``), as do the media watchdog, a pending
answer, an idle lobby and the presence schedule; the task sleeps until the
earliest of them or the next input, whichever comes first.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from aiortc import RTCPeerConnection, RTCSessionDescription

from . import gate as g
from .host import apply_host_decision
from .identity import AdmittedIdentity
from .inputs import (
    AnalysisError,
    CloseRequest,
    FrameResult,
    HostAdmit,
    HostDecision,
    HostReset,
    HostSendToLobby,
    Input,
    PcStateChanged,
    PresenceResult,
    PresenceSource,
    RenegotiateRequest,
    ReverifyRequest,
)
from .liveness.parallax import PairMaker
from .liveness.sample import paired
from .media_link import MediaError, MediaLink
from .messages import Bye, Error, OutMessage, SdpAnswer, SdpOffer
from .netinfo import record_netinfo
from .presence import PresenceMonitor
from .roles import CloseReason, RoomHandle
from .rtc.forward import Publisher
from .rtc.sampler import FrameSampler
from .session_actions import (
    apply_actions,
    dashboard_row,
    media_state,
    on_presence,
    probe_presence,
    start_reverify,
)
from .signalling import Answer, Candidate, Leave, MediaState, NetInfo, Offer, Ready
from .verify import FaceChecker

if TYPE_CHECKING:
    from .outbox import Outbox
    from .roles import SessionServices

log = logging.getLogger(__name__)

NEGOTIATION_TIMEOUT_S = 10.0
_BUSY = (g.State.LOBBY, g.State.CHECKING, g.State.CHALLENGE, g.State.REVERIFYING)


class Participant:
    def __init__(
        self,
        services: SessionServices,
        runtime: RoomHandle,
        outbox: Outbox,
        checker: FaceChecker,
        *,
        policy: g.GatePolicy,
        name: str,
        person_id: str | None,
        lockout_keys: tuple[str, ...],
        ip: str,
        invite_id: str | None = None,
        device: str | None = None,
    ) -> None:
        self.id = secrets.token_hex(8)
        self.rejoin_token = secrets.token_urlsafe(18)
        self.services = services
        self.runtime = runtime
        self.outbox = outbox
        self.checker = checker
        self.pairs = PairMaker()  # the parallax cue's image work, in checker_observe only
        self.name = name
        self.claimed_person = person_id
        self.ip = ip
        self.invite_id = invite_id
        self.device = device  # signed per-browser id (server/device.py), if the page has one
        self.gate = g.Gate(policy, services.lockout, lockout_keys, rng=services.challenge_rng())
        self.inputs: asyncio.Queue[Input] = asyncio.Queue()
        settings = services.settings
        self.media = MediaLink(self.id, self.enqueue, services.executor, settings)
        self.audio_on = True
        self.video_on = True
        self.joined_at = time.time()
        self.identity: AdmittedIdentity | None = None
        self.presence = PresenceMonitor(services.presence_config(runtime.room))
        self.resume: AdmittedIdentity | None = None
        self.reverifying = False
        self.ever_admitted = False
        self._closed = False
        self._finished = asyncio.Event()
        now = time.monotonic()
        self._media_deadline: float | None = now + settings.limits.media_timeout_s
        self._idle_deadline: float | None = None
        self._negotiation: tuple[asyncio.Future[None], float] | None = None

    # -- what others see (RoomMember) --

    @property
    def admitted(self) -> bool:
        return self.gate.state is g.State.ADMITTED

    @property
    def closed(self) -> bool:
        """True once teardown started: pc, tasks and the room seat are (being) released."""
        return self._closed

    @property
    def pc(self) -> RTCPeerConnection | None:
        return self.media.pc

    @property
    def publisher(self) -> Publisher | None:
        return self.media.publisher

    @property
    def sampler(self) -> FrameSampler | None:
        return self.media.sampler

    def send(self, message: OutMessage) -> None:
        self.outbox.put(message)

    def dashboard_row(self) -> dict[str, object]:
        return dashboard_row(self)

    def error(self, code: str, message: str, *, fatal: bool = False) -> None:
        self.send(Error(code, message, fatal))

    def enqueue(self, item: Input) -> None:
        """The only way in: producers and other tasks put, this participant's task acts."""
        if not self._closed:
            self.inputs.put_nowait(item)

    def request_close(
        self, reason: CloseReason, *, grace: bool = True, code: str | None = None, message: str = ""
    ) -> None:
        self.enqueue(CloseRequest(reason, grace, code, message))

    async def renegotiate(self) -> None:
        """Called by the room (its own task): one offer/answer round on our pc."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._closed:
            return
        self.enqueue(RenegotiateRequest(done))
        await done

    def watch_presence(self, publisher: Publisher) -> None:
        """Janus rooms: presence checks sample this stream (what Janus forwards)."""
        self.enqueue(PresenceSource(publisher))

    async def request_reverify(self) -> bool:
        """The host asks this admitted participant to verify again (dashboard, API)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._closed:
            return False
        self.enqueue(ReverifyRequest(done))
        return await done

    async def request_host(self, decision: HostDecision) -> bool:
        """The host decides (server/host.py); ``decision.done`` says whether it applied."""
        if self._closed:
            return False
        self.enqueue(decision)
        return await decision.done

    async def wait_closed(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._finished.wait(), timeout_s)
        except TimeoutError:
            log.warning("participant %s did not finish within %.0f s", self.id, timeout_s)

    # -- the task --

    async def run(self) -> None:
        """Drain inputs until closed; the only task that changes this participant."""
        try:
            while not self._closed:
                item = await self._next_input()
                try:
                    if item is None:
                        await self._on_time(time.monotonic())
                    else:
                        await self._dispatch(item)
                except Exception as exc:
                    log.exception("participant %s: handling %r failed", self.id, type(item))
                    await self._internal(f"{type(exc).__name__}: {exc}")
        finally:
            if not self._closed:
                await self.teardown(CloseReason.DISCONNECTED, grace=True)
            self._finished.set()

    async def _next_input(self) -> Input | None:
        deadline = self._next_deadline()
        if deadline is None:
            return await self.inputs.get()
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            return None if self.inputs.empty() else self.inputs.get_nowait()
        try:
            return await asyncio.wait_for(self.inputs.get(), timeout)
        except TimeoutError:
            return None

    def _next_deadline(self) -> float | None:
        deadlines = [
            self.gate.next_deadline(),
            self._media_deadline,
            self._idle_deadline,
            self._negotiation[1] if self._negotiation else None,
        ]
        if self.admitted and self.identity is not None and not self.media.probing:
            deadlines.append(self.presence.next_due)
        return min((d for d in deadlines if d is not None), default=None)

    async def _on_time(self, now: float) -> None:
        deadline = self.gate.next_deadline()
        if deadline is not None and now >= deadline:
            await self._apply(self.gate.handle(g.Tick(now)))
        if self._negotiation is not None and now >= self._negotiation[1]:
            future, _ = self._negotiation
            self._negotiation = None
            if not future.done():
                future.set_exception(TimeoutError("no answer to the server's offer"))
        if self._media_deadline is not None and now >= self._media_deadline:
            log.info("participant %s: no media in time, closing", self.id)
            self.error(
                "media_timeout",
                "Your camera's video did not reach the server in time. Check the camera "
                "and the network, then reload the page.",
                fatal=True,
            )
            await self.teardown(CloseReason.MEDIA_TIMEOUT, grace=False)
            return
        if self._idle_deadline is not None and now >= self._idle_deadline:
            self.error("idle", "Nothing happened for a while; the session was closed.", fatal=True)
            await self.teardown(CloseReason.IDLE, grace=False)
            return
        due = self.presence.next_due
        if self.admitted and self.identity is not None and due is not None and now >= due:
            probe_presence(self)

    async def _dispatch(self, item: Input) -> None:
        if isinstance(item, FrameResult):
            await self._on_frame(item)
        elif isinstance(item, AnalysisError):
            if self.gate.state is g.State.LOBBY:
                await self._apply(self.gate.handle(g.Start(item.now)))
            await self._apply(self.gate.handle(g.AnalysisFailed(item.now, item.detail)))
        elif isinstance(item, PresenceResult):
            on_presence(self, item)
        elif isinstance(item, PresenceSource):
            self.media.presence_source = item.publisher
        elif isinstance(item, PcStateChanged):
            if item.state in ("failed", "closed"):
                await self.teardown(CloseReason.DISCONNECTED, grace=True)
            else:
                self._check_media_ready()
        elif isinstance(item, RenegotiateRequest):
            await self._offer(item.done)
        elif isinstance(item, ReverifyRequest):
            started = await start_reverify(self)
            if not item.done.done():
                item.done.set_result(started)
        elif isinstance(item, HostAdmit | HostSendToLobby | HostReset):
            applied = await apply_host_decision(self, item)
            if not item.done.done():
                item.done.set_result(applied)
        elif isinstance(item, CloseRequest):
            if item.code is not None:
                self.error(item.code, item.message, fatal=True)
            await self.teardown(item.reason, grace=item.grace)
        else:
            await self._on_message(item)

    # -- client messages --

    async def _on_message(self, msg: Input) -> None:
        if isinstance(msg, Offer):
            await self._on_offer(msg.sdp)
        elif isinstance(msg, Answer):
            await self._on_answer(msg.sdp)
        elif isinstance(msg, Candidate):
            try:
                await self.media.add_candidate(msg)
            except MediaError as err:
                self.error(err.code, err.message)
        elif isinstance(msg, Ready):
            self._idle_deadline = None
            await self.services.sync_lockout(self.gate.lockout_keys, failed=False)
            await self._apply(self.gate.handle(g.Start(time.monotonic())))
            if self.gate.state is g.State.CHECKING and self.media.sampler is None:
                self.media.start_sampling(
                    self.checker_observe, self.wants_frame, self.gate.sample_fps
                )
        elif isinstance(msg, MediaState):
            media_state(self, msg.audio, msg.video)
        elif isinstance(msg, Leave):
            await self.teardown(CloseReason.LEFT, grace=False)
        elif isinstance(msg, NetInfo):
            record_netinfo(self, msg)
        else:
            self.error("already_joined", "joined")

    async def _on_offer(self, sdp: str) -> None:
        if self.media.pc is not None:
            self.error("unexpected_offer", "media is already connected")
            return
        try:
            answer = await self.media.answer(sdp)
            if self.resume is None and not self.media.has_video():
                raise MediaError("no_video", "a camera track is required to be verified")
        except MediaError as err:
            self.error(err.code, err.message, fatal=True)
            # Fatal: free the pc (and its ICE sockets) now, not when the socket closes.
            await self.teardown(CloseReason.BAD_REQUEST, grace=False)
            return
        self.send(SdpAnswer(answer))
        if self.resume is not None:
            identity = self.resume
            await self._apply(self.gate.resume_admitted(identity.person_id, identity.distance))
            return
        self.media.start_sampling(self.checker_observe, self.wants_frame, self.gate.sample_fps)

    def checker_observe(self, frame: object, needs: g.FrameNeeds) -> g.Observation:
        """Executor: decode to RGB, analyse (``server/verify.py``) and measure the
        parallax pair, so the gate does no image work on the event loop."""
        rgb = frame.to_ndarray(format="rgb24")  # type: ignore[attr-defined]
        obs = self.checker.observe_needs(rgb, needs, time.monotonic())
        return replace(obs, liveness=paired(obs.liveness, self.pairs, time.monotonic()))

    def wants_frame(self) -> g.FrameNeeds | None:
        """Read by the sampler before each analysis: None skips the frame."""
        if self._closed or self.gate.state not in _BUSY:
            return None
        return self.gate.frame_needs

    async def _on_answer(self, sdp: str) -> None:
        pc, pending = self.media.pc, self._negotiation
        if pc is None or pending is None:
            self.error("unexpected_answer", "no offer is waiting for an answer")
            return
        self._negotiation = None
        future, _ = pending
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            self.error("bad_sdp", f"answer rejected: {exc}")
            return
        if not future.done():
            future.set_result(None)

    async def _offer(self, done: asyncio.Future[None]) -> None:
        """Server-side offer to add or retire forwarded tracks; the answer comes later."""
        pc = self.media.pc
        if pc is None or self._closed or pc.signalingState == "closed":
            if not done.done():
                done.set_result(None)
            return
        if self._negotiation is not None:  # the room serialises rounds; be safe anyway
            done.set_exception(RuntimeError("a negotiation is already in flight"))
            return
        # The factory's createOffer keeps the numbering the browser negotiated.
        await pc.setLocalDescription(await pc.createOffer())
        self._negotiation = (done, time.monotonic() + NEGOTIATION_TIMEOUT_S)
        self.send(SdpOffer(pc.localDescription.sdp))

    # -- frames, presence, media readiness --

    async def _on_frame(self, item: FrameResult) -> None:
        if self.gate.state is g.State.LOBBY:
            await self._apply(self.gate.handle(g.Start(item.now)))
        await self._apply(self.gate.handle(g.FrameAnalysed(item.now, item.observation)))
        self._check_media_ready()

    def _check_media_ready(self) -> None:
        """Media counts as arrived once ICE/DTLS connected and a frame was analysed
        (a resumed participant needs only the connection)."""
        if self._media_deadline is None or not self.media.connected:
            return
        if self.resume is not None or self.gate.state is not g.State.LOBBY:
            self._media_deadline = None

    # -- gate actions --

    async def _apply(self, actions: list[g.Action]) -> None:
        await apply_actions(self, actions)

    async def _internal(self, detail: str) -> None:
        """An unexpected failure in this task: end the attempt as ``internal``."""
        if self._closed:
            return
        actions = self.gate.handle(g.AnalysisFailed(time.monotonic(), detail))
        if actions:
            await self._apply(actions)

    def arm_idle(self, on: bool = True) -> None:
        """After a non-final refusal the person has a while to try again, not forever."""
        limit = self.services.settings.limits.idle_timeout_s
        self._idle_deadline = time.monotonic() + limit if on else None

    # -- teardown --

    async def teardown(self, reason: CloseReason, *, grace: bool) -> None:
        """Free everything; ``grace`` keeps a rejoin window (only for an admitted session
        whose connection dropped)."""
        if self._closed:
            return
        was_admitted = self.admitted
        self._closed = True
        self.gate.handle(g.Leave(time.monotonic()))
        if self._negotiation is not None and not self._negotiation[0].done():
            self._negotiation[0].cancel()
        self._negotiation = None
        self.runtime.remove(self, grace=was_admitted and grace and reason is not CloseReason.LEFT)
        await self.media.close()
        stats = self.presence.stats
        if stats.made or stats.skipped:
            summary = {"checks": stats.made, "passed": stats.passed, "skipped": stats.skipped}
            self.services.audit(self, "presence.summary", summary)
        if self.ever_admitted:
            self.services.audit(self, "participant.left", {"by_choice": reason is CloseReason.LEFT})
        await self.services.audit_settled()
        self.send(Bye(reason.bye))
        self.runtime.notify_dashboard()
