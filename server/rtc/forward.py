"""Encoded forwarding: one ``Publisher`` per participant, one ``ForwardedTrack`` per viewer leg.

Why: viewers must see each other without the server decoding and re-encoding per
viewer. A ``Publisher`` taps the participant's receivers (see ``tap.py``) and fans each
reassembled encoded frame out, as an ``av.Packet``, to per-viewer ``ForwardedTrack``s.
aiortc's ``RTCRtpSender`` treats a track that yields ``av.Packet`` as pre-encoded and
only re-packetises it (``Encoder.pack``), so a viewer costs RTP packetisation, SRTP
and a socket write, no codec work.

Per-leg behaviour (what a real SFU must get right):

* Codec: a viewer leg is negotiated with exactly the publisher's codec (the room does
  that with ``codecs.forwarding_preferences``); a frame in another codec is dropped.
* Keyframes: a viewer leg starts when its sender first reads the track (i.e. once the
  renegotiation that added it has completed). From then on it drops frames until a
  keyframe, and the publisher is sent a PLI. Viewers' own PLI/FIR (RTCP addressed to
  their leg's sender) are forwarded to the publisher as PLI. Requests are throttled
  (``keyframe_min_interval``) so N viewers do not cause N keyframes; while any viewer
  still waits, every inter frame re-arms the request, so a lost PLI is retried.
* Loss: NACK/RTX are per leg. The publisher leg is repaired by aiortc's receiver
  (NACK) and the publisher's retransmissions; each viewer leg by aiortc's sender,
  which keeps the RTP history of what it sent and answers that viewer's NACKs (RTX
  when negotiated).
* Back-pressure: a viewer queue holds at most ``max_queue`` frames; on overflow a
  video leg discards its backlog and waits for a keyframe, an audio leg drops the
  oldest frame.

The decoded picture for the gate: ``Publisher.decoded_video`` is a
``DecodedVideoTrack`` fed by our own decoder while decoding is on
(``start_decoding``/``stop_decoding``); aiortc's decoder never runs.

Usage (the lead's signalling)::

    pc = create_peer_connection(loopback=cfg.loopback)
    publisher = Publisher(participant_id, pc)  # before setRemoteDescription(offer)
    await pc.setRemoteDescription(offer)
    restrict_answer_codecs(pc)                  # optional: have the browser send VP8
    await pc.setLocalDescription(await pc.createAnswer())
    track = publisher.decoded_video             # sampler: await track.recv()
    ...
    publisher.stop_decoding()                   # once admitted
    await room.admit(participant_id, pc, publisher)
    ...
    await room.remove(participant_id); await publisher.close(); await pc.close()
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpTransceiver
from aiortc.codecs import is_rtx
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from .decode import DecodedVideoTrack, VideoDecoder
from .forwarded import ForwardedTrack
from .framesize import FrameCheck, FrameSizeLimit, Verdict, check_frame
from .keyframes import is_keyframe
from .tap import ReceiverTap, schedule

logger = logging.getLogger(__name__)

KINDS = ("audio", "video")



@dataclass
class _Source:
    """One tapped receiver (the participant's camera or microphone)."""

    kind: str
    transceiver: RTCRtpTransceiver
    tap: ReceiverTap | None = None
    codec: RTCRtpCodecParameters | None = None
    frames: int = 0
    subscribers: set[ForwardedTrack] = field(default_factory=set)


@dataclass(frozen=True)
class PublisherStats:
    """Counters for tests, the bench and the lead's metrics."""

    video_frames: int
    audio_frames: int
    keyframe_requests: int
    plis_sent: int
    decoder_frames_fed: int
    frames_decoded: int
    decoding: bool
    subscribers: int


class Publisher:
    """A participant's published camera + microphone, tapped before decoding.

    Build it right after the peer connection, before ``setRemoteDescription`` of the
    client's offer: it hooks ``pc.on("track")`` (receivers that already have a track
    are picked up too). Only the first audio and the first video receiver are used.

    :param decode_video: start with decoding on (the gate needs pictures before
        admission).
    :param keyframe_min_interval: seconds between two PLIs sent to the publisher.
    :param decoded_maxsize: decoded frames kept for a slow sampler (newest win).
    :param max_queue: encoded frames buffered per viewer leg.
    :param audio_prefetch: frames aiortc's audio jitter buffer holds back before
        releasing one (aiortc's default 4 adds 80 ms; viewers buffer anyway).
    :param frame_limit: largest picture a video header may claim (``framesize.py``);
        checked on every frame before the decoder or a viewer gets it.
    :param on_bad_media: called once (on the event loop) when a frame is over the
        limit or in a codec whose size cannot be read. From then on nothing of this
        publisher is decoded or forwarded; the session must end it (``bad_media``).
    """

    def __init__(
        self,
        participant_id: str,
        pc: RTCPeerConnection,
        *,
        decode_video: bool = True,
        keyframe_min_interval: float = 0.5,
        decoded_maxsize: int = 2,
        max_queue: int = 60,
        audio_prefetch: int = 0,
        frame_limit: FrameSizeLimit | None = None,
        on_bad_media: Callable[[FrameCheck], None] | None = None,
    ) -> None:
        self.participant_id = participant_id
        self._frame_limit = frame_limit or FrameSizeLimit()
        self._on_bad_media = on_bad_media
        #: why this publisher's media was refused (None: it was not)
        self.bad_media: FrameCheck | None = None
        self.frames_dropped = 0
        self._pc = pc
        self._sources: dict[str, _Source] = {}
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keyframe_min_interval = keyframe_min_interval
        self._last_pli = -math.inf
        self._decoded_maxsize = decoded_maxsize
        self._max_queue = max_queue
        self._audio_prefetch = audio_prefetch
        self._decoder: VideoDecoder | None = None
        self._decoded: DecodedVideoTrack | None = (
            DecodedVideoTrack(decoded_maxsize) if decode_video else None
        )
        self._decoder_frames_fed = 0
        self._frames_decoded = 0
        self.keyframe_requests = 0
        self.plis_sent = 0
        self._paused = False
        pc.on("track", self._on_track)
        for transceiver in pc.getTransceivers():
            if transceiver.receiver.track is not None:
                self._attach(transceiver)

    # -- attaching -------------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        for transceiver in self._pc.getTransceivers():
            if transceiver.receiver.track is track:
                self._attach(transceiver)
                return

    def _attach(self, transceiver: RTCRtpTransceiver) -> None:
        kind = transceiver.kind
        if self._closed or kind not in KINDS:
            return
        if kind in self._sources:
            if self._sources[kind].transceiver is not transceiver:
                logger.info("%s: ignoring extra %s track", self.participant_id, kind)
            return
        source = _Source(kind=kind, transceiver=transceiver)
        source.tap = ReceiverTap(
            transceiver.receiver,
            on_frame=lambda codec, frame: self._on_frame(source, codec, frame),
            on_end=lambda: self._on_source_end(source),
        )
        self._sources[kind] = source
        if kind == "audio":
            source.tap.set_jitter_prefetch(self._audio_prefetch)
        if kind == "video" and self._decoded is not None:
            self._start_decoder()

    # -- frames ----------------------------------------------------------------------

    def _on_frame(self, source: _Source, codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
        if self._closed or self.bad_media is not None:
            return
        if source.kind == "video" and not self._frame_allowed(codec, frame):
            return
        source.codec = codec
        source.frames += 1
        keyframe = source.kind == "audio" or is_keyframe(codec.mimeType, frame.data)
        if source.kind == "video":
            decoder = self._decoder
            if decoder is not None and not decoder.stopped:
                if not decoder.feed(codec, frame, keyframe):
                    self.request_keyframe()
        if not source.subscribers or self._paused:
            return
        packet = av.Packet(frame.data)
        packet.pts = frame.timestamp
        packet.time_base = fractions.Fraction(1, codec.clockRate)
        waiting = False
        # The same packet object goes to every viewer: senders only read it.
        for track in list(source.subscribers):
            track._offer(packet, codec, keyframe)
            waiting = waiting or track.waiting_for_keyframe
        if waiting and not keyframe:
            self.request_keyframe()

    def _frame_allowed(self, codec: RTCRtpCodecParameters, frame: JitterFrame) -> bool:
        """The size check, before any decoder or viewer sees the frame."""
        check = check_frame(codec.mimeType, frame.data, self._frame_limit)
        if check.verdict is Verdict.OK:
            return True
        if check.verdict is Verdict.DROP:
            self.frames_dropped += 1
            return False
        logger.warning("%s: media refused: %s %s", self.participant_id, check.detail, check.size)
        self.bad_media = check
        self.stop_decoding()
        for source in self._sources.values():
            for track in list(source.subscribers):
                track.stop()
        if self._on_bad_media is not None:
            try:
                self._on_bad_media(check)
            except Exception:
                logger.exception("bad media handler failed")
        return False

    def _on_source_end(self, source: _Source) -> None:
        logger.info("%s: %s source ended", self.participant_id, source.kind)
        for track in list(source.subscribers):
            track.stop()
        if source.kind == "video":
            self.stop_decoding()

    # -- keyframes -------------------------------------------------------------------

    def request_keyframe(self) -> bool:
        """Ask the publisher for a keyframe (RTCP PLI), unless one was asked recently.

        Returns True if a request was issued. Safe to call from any event-loop code,
        including aiortc's RTCP handling (it only schedules the send).
        """
        source = self._sources.get("video")
        if self._closed or source is None or source.tap is None:
            return False
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now - self._last_pli < self._keyframe_min_interval:
            return False
        self._last_pli = now
        self.keyframe_requests += 1
        schedule(self._send_pli(source.tap), self._tasks)
        return True

    async def _send_pli(self, tap: ReceiverTap) -> None:
        if await tap.send_pli():
            self.plis_sent += 1
        else:
            self._last_pli = -math.inf  # no SSRC seen yet: retry on the next frame

    # -- decoding for the gate -------------------------------------------------------

    @property
    def decoded_video(self) -> DecodedVideoTrack | None:
        """The decoded video while decoding is on, else None. Ends on stop_decoding()."""
        return self._decoded

    @property
    def decoding(self) -> bool:
        return self._decoded is not None

    def start_decoding(self) -> DecodedVideoTrack:
        """(Re)start decoding (e.g. for a re-verification); returns the new track.

        The decoder starts at the next keyframe, which is requested now.
        """
        if self._decoded is None:
            self._decoded = DecodedVideoTrack(self._decoded_maxsize)
            if "video" in self._sources:
                self._start_decoder()
        return self._decoded

    def stop_decoding(self) -> None:
        """Stop decoding this participant's video; forwarding continues.

        The decoder thread exits, its pending frames are dropped, and
        ``decoded_video`` ends (``recv`` raises ``MediaStreamError``).
        """
        decoder, self._decoder = self._decoder, None
        if decoder is not None:
            self._fold_decoder_counts(decoder)
            decoder.stop()
        track, self._decoded = self._decoded, None
        if track is not None:
            track.stop()

    def _start_decoder(self) -> None:
        assert self._decoded is not None
        if self._decoder is None and not self._closed and self.bad_media is None:
            self._decoder = VideoDecoder(self._decoded, on_error=self._on_decode_error)
            self.request_keyframe()

    def _on_decode_error(self) -> None:
        self.request_keyframe()

    def _fold_decoder_counts(self, decoder: VideoDecoder) -> None:
        self._decoder_frames_fed += decoder.frames_fed
        self._frames_decoded += decoder.frames_decoded

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def has_video(self) -> bool:
        """Whether a camera track is tapped (presence spot checks: ``spotcheck.py``)."""
        return "video" in self._sources

    # -- pausing (e.g. while the participant re-verifies) ----------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    def pause_forwarding(self) -> None:
        """Stop sending this participant's media to viewers; legs stay negotiated."""
        self._paused = True

    def resume_forwarding(self) -> None:
        """Forward again; video legs wait for a keyframe, which is requested now."""
        if not self._paused:
            return
        self._paused = False
        source = self._sources.get("video")
        if source is not None:
            for track in source.subscribers:
                track._hold_for_keyframe()
        self._last_pli = -math.inf
        self.request_keyframe()

    # -- viewers ---------------------------------------------------------------------

    def codec(self, kind: str) -> RTCRtpCodecParameters | None:
        """The codec this publisher sends ``kind`` in (seen on the wire, else negotiated)."""
        source = self._sources.get(kind)
        if source is None:
            return None
        if source.codec is not None:
            return source.codec
        negotiated: list[RTCRtpCodecParameters] = source.transceiver._codecs
        return next((c for c in negotiated if not is_rtx(c)), None)

    def subscribe(self, kind: str) -> ForwardedTrack | None:
        """A new viewer leg of ``kind``; None if this publisher does not send that kind."""
        source = self._sources.get(kind)
        codec = self.codec(kind)
        if self._closed or source is None or codec is None or self.bad_media is not None:
            return None
        if source.tap is not None and source.tap.ended:
            return None
        track = ForwardedTrack(kind, codec, self, max_queue=self._max_queue)
        source.subscribers.add(track)
        return track

    def _unsubscribe(self, track: ForwardedTrack) -> None:
        source = self._sources.get(track.kind)
        if source is not None:
            source.subscribers.discard(track)

    @property
    def subscribers(self) -> int:
        return sum(len(s.subscribers) for s in self._sources.values())

    def stats(self) -> PublisherStats:
        decoder = self._decoder
        return PublisherStats(
            video_frames=self._sources["video"].frames if "video" in self._sources else 0,
            audio_frames=self._sources["audio"].frames if "audio" in self._sources else 0,
            keyframe_requests=self.keyframe_requests,
            plis_sent=self.plis_sent,
            decoder_frames_fed=self._decoder_frames_fed + (decoder.frames_fed if decoder else 0),
            frames_decoded=self._frames_decoded + (decoder.frames_decoded if decoder else 0),
            decoding=self.decoding,
            subscribers=self.subscribers,
        )

    async def close(self) -> None:
        """End every viewer leg and the decoder. The pc itself is the caller's to close.

        The receiver stays tapped (frames are dropped) so aiortc's decoder never
        starts consuming an unread track.
        """
        if self._closed:
            return
        self.stop_decoding()
        self._closed = True
        self._pc.remove_listener("track", self._on_track)
        for source in self._sources.values():
            for track in list(source.subscribers):
                track.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
