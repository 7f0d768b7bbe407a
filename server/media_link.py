"""One participant's media: peer connection, publisher tap, frame sampler, presence probe.

Owned by the participant's task (``server/participant.py``), which calls these
methods; the only code here that runs in other tasks are the *producers* -- the
sampler's worker and the presence probe -- and they never touch session state:
they put their results on the participant's input queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription

from .config import Settings
from .face.engine import FaceEngine
from .gate import FrameNeeds, Observation
from .identity import AdmittedIdentity
from .inputs import (
    AnalysisError,
    CloseRequest,
    FrameResult,
    Input,
    PcStateChanged,
    PresenceResult,
)
from .presence import PresenceCheck
from .roles import CloseReason
from .rtc.candidates import CandidateFilter, CandidatePolicy, Outcome
from .rtc.codecs import restrict_answer_codecs
from .rtc.forward import Publisher
from .rtc.framesize import FrameCheck, FrameSizeLimit
from .rtc.nat import PeerNetwork
from .rtc.peer import create_peer_connection
from .rtc.sampler import FrameSampler
from .rtc.spotcheck import decode_run
from .signalling import Candidate
from .verify import FaceChecker

log = logging.getLogger(__name__)

Observe = Callable[[Any, FrameNeeds], Observation]


class MediaError(Exception):
    """The client's media cannot be used (bad SDP, no camera track): fatal for the join."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MediaLink:
    def __init__(
        self,
        participant_id: str,
        enqueue: Callable[[Input], None],
        executor: Executor,
        settings: Settings,
    ) -> None:
        self.participant_id = participant_id
        self._enqueue = enqueue
        self._executor = executor
        self._settings = settings
        self._loopback = settings.server.loopback
        self._sample_fps = settings.gate.sample_fps
        limits = settings.limits
        # Typed checks on every remote candidate (docs/security.md): nothing unvetted,
        # and no internal address, reaches aioice.
        self.candidates = CandidateFilter(
            CandidatePolicy(
                max_candidates=limits.max_ice_candidates,
                allow_private=limits.allow_private_candidates or self._loopback,
            )
        )
        self._rng = random.SystemRandom()
        self.pc: RTCPeerConnection | None = None
        self.publisher: Publisher | None = None
        self.sampler: FrameSampler | None = None
        self._probe: asyncio.Task[None] | None = None
        # Janus rooms: the server's subscription to this participant's feed on Janus;
        # presence checks judge it while it lasts (docs/janus.md).
        self.presence_source: Publisher | None = None

    @property
    def connected(self) -> bool:
        return self.pc is not None and self.pc.connectionState == "connected"

    @property
    def probing(self) -> bool:
        return self._probe is not None and not self._probe.done()

    async def answer(self, sdp: str) -> str:
        """Accept the client's offer; returns our answer (raises ``MediaError``)."""
        # STUN/TURN, announced address and port range ([ice], server/rtc/nat.py).
        network = PeerNetwork.from_settings(self._settings, self.participant_id, time.time())
        pc = create_peer_connection(loopback=self._loopback, network=network)
        self.pc = pc
        limits = self._settings.limits
        self.publisher = Publisher(
            self.participant_id,
            pc,
            frame_limit=FrameSizeLimit(limits.max_video_width, limits.max_video_height),
            on_bad_media=self._on_bad_media,
        )

        @pc.on("connectionstatechange")
        def _state() -> None:
            self._enqueue(PcStateChanged(pc.connectionState))

        try:
            sdp = self.candidates.filter_sdp(sdp)
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            # VP8 everywhere: every browser decodes it, so one encoded stream fits all.
            restrict_answer_codecs(pc)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # aiortc raises ValueError and friends on bad SDP
            log.info("participant %s sent an unusable offer: %s", self.participant_id, exc)
            raise MediaError("bad_sdp", f"offer rejected: {exc}") from exc
        return str(pc.localDescription.sdp)

    def has_video(self) -> bool:
        pc, publisher = self.pc, self.publisher
        if pc is None or publisher is None or publisher.decoded_video is None:
            return False
        return any(
            t.kind == "video" and t.receiver.track is not None for t in pc.getTransceivers()
        )

    def _on_bad_media(self, check: FrameCheck) -> None:
        """The rtc layer refused this camera's stream (docs/security.md, decoder bomb):
        nothing more of it is decoded or forwarded; the session ends (fatal)."""
        size = f" ({check.size[0]}x{check.size[1]})" if check.size else ""
        self._enqueue(
            CloseRequest(
                CloseReason.BAD_MEDIA, False, "bad_media", f"video refused: {check.detail}{size}"
            )
        )

    async def add_candidate(self, msg: Candidate) -> None:
        """A trickled candidate; raises ``MediaError`` for one the client should hear of."""
        if self.pc is None or not msg.candidate:
            return
        unplaced = msg.sdp_mid is None and msg.sdp_mline_index is None
        decision = self.candidates.judge(msg.candidate) if not unplaced else None
        if decision is None or decision.outcome is Outcome.MALFORMED:
            raise MediaError("bad_candidate", "ICE candidate could not be parsed")
        if decision.outcome is Outcome.OVER_CAP and self.candidates.over_cap_first_time():
            raise MediaError("too_many_candidates", "further ICE candidates are ignored")
        if decision.outcome is not Outcome.ACCEPTED or decision.candidate is None:
            return
        try:
            await self.pc.addIceCandidate(
                decision.candidate.to_rtc(msg.sdp_mid, msg.sdp_mline_index)
            )
        except ValueError as exc:  # aiortc refuses it
            log.info("participant %s: candidate refused by aiortc: %s", self.participant_id, exc)
            raise MediaError("bad_candidate", "ICE candidate could not be used") from exc

    # -- sampling for the gate --

    def start_sampling(
        self,
        observe: Observe,
        wants: Callable[[], FrameNeeds | None],
        rate: Callable[[float, float], float] | None = None,
    ) -> None:
        """Decode and analyse up to ``sample_fps`` frames a second.

        ``wants()`` is read before each analysis: None = skip this frame (nothing is
        being checked), else what the frame's analysis must include. ``rate(now, base)``
        (``Gate.sample_fps``) is read after each: the gate asks for more frames while
        the screen flashes and during expression steps.
        """
        assert self.publisher is not None
        video = self.publisher.start_decoding()
        loop = asyncio.get_running_loop()

        async def analyse(frame: Any, received_at: float) -> None:
            needs = wants()
            if needs is None:
                return
            try:
                observation = await loop.run_in_executor(self._executor, observe, frame, needs)
            except Exception as exc:
                log.exception("frame analysis failed for participant %s", self.participant_id)
                self._enqueue(AnalysisError(time.monotonic(), f"{type(exc).__name__}: {exc}"))
                return
            # Timed by arrival: the light challenge matches the skin's answer to it.
            observation = dataclasses.replace(observation, taken_at=received_at)
            self._enqueue(FrameResult(time.monotonic(), observation))

        base = self._sample_fps
        wanted = None if rate is None else (lambda now: rate(now, base))
        self.sampler = FrameSampler(video, base, analyse, rate=wanted)
        self.sampler.start()

    async def stop_sampling(self) -> None:
        if self.sampler is not None:
            await self.sampler.stop()
            self.sampler = None
        if self.publisher is not None:
            self.publisher.stop_decoding()

    # -- presence: one keyframe, one check, off the session's task --

    def probe_presence(self, engine: FaceEngine, identity: AdmittedIdentity) -> None:
        """Decode a short run from a requested keyframe and check a random frame of it
        against the admitted person (1:1, the room's engines) in the executor (a stream
        that shows the face only in keyframes is caught); the result goes on the queue."""
        source = self.presence_source
        publisher = source if source is not None and not source.closed else self.publisher
        if self.probing or publisher is None:
            return
        checker = FaceChecker(engine, identity.target)
        presence = self._settings.presence
        loop = asyncio.get_running_loop()

        async def probe() -> None:
            spot = await decode_run(
                publisher, presence.keyframe_timeout_s, presence.run_frames, self._rng
            )
            frame = spot.frame
            if frame is None:
                self._enqueue(PresenceResult(PresenceCheck(time.monotonic(), made=False)))
                return
            rgb = frame.to_ndarray(format="rgb24")
            try:
                check = await loop.run_in_executor(
                    self._executor, checker.presence, rgb, identity.person_id, time.monotonic()
                )
            except Exception:
                log.exception("presence check failed for participant %s", self.participant_id)
                check = PresenceCheck(time.monotonic(), made=False)
            self._enqueue(PresenceResult(check))

        self._probe = asyncio.create_task(probe(), name=f"presence-{self.participant_id}")

    async def stop_probe(self) -> None:
        task, self._probe = self._probe, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        await self.stop_probe()
        await self.stop_sampling()
        if self.publisher is not None:
            try:
                await self.publisher.close()
            except Exception:
                log.exception("publisher close failed for %s", self.participant_id)
        if self.pc is not None:
            try:
                await self.pc.close()
            except Exception:
                log.exception("peer connection close failed for %s", self.participant_id)
