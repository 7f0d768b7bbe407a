"""Decode one publisher's tapped video for the frame sampler, and only while needed.

Why our own decoder instead of aiortc's: aiortc's receiver decodes every frame for
the life of the connection. We decode only while the gate needs pictures (before
admission, and again during a re-verification); after admission the tap keeps
feeding forwarders and no CPU is spent on decoding. Decoding can stop and restart:
a restarted decoder waits for a keyframe (the caller asks the publisher for one).

Threading: decoding runs on one dedicated thread per decoder (frames of a stream
must be decoded in order, and libvpx/ffmpeg release the GIL). Frames go back to the
event loop with ``call_soon_threadsafe``.

Back-pressure, latency over completeness: the sampler only wants recent pictures.
The output track keeps the newest ``maxsize`` frames and drops older ones. If
decoding falls behind by more than ``max_pending`` encoded frames, the backlog is
discarded and decoding resumes at the next keyframe (inter frames cannot be skipped
individually).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable

import av
from aiortc import MediaStreamTrack
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av import VideoFrame
from av.video.frame import PictureType

logger = logging.getLogger(__name__)

_STOP = object()


class DecodedVideoTrack(MediaStreamTrack):
    """Decoded frames of one publisher; ``recv()`` returns the oldest kept frame.

    Ends (``recv`` raises ``MediaStreamError``) when decoding stops.
    """

    kind = "video"

    def __init__(self, maxsize: int = 2) -> None:
        super().__init__()
        self._frames: asyncio.Queue[VideoFrame | None] = asyncio.Queue()
        self._maxsize = maxsize
        self.dropped = 0

    def _push(self, frame: VideoFrame | None) -> None:
        if frame is not None:
            while self._frames.qsize() >= self._maxsize:
                self._frames.get_nowait()
                self.dropped += 1
        self._frames.put_nowait(frame)

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._frames.get()
        if frame is None:
            super().stop()
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        if self.readyState == "live":
            self._frames.put_nowait(None)
        super().stop()


class VideoDecoder:
    """A decoding thread fed with ``(codec, JitterFrame)`` from a ``ReceiverTap``."""

    def __init__(
        self,
        track: DecodedVideoTrack,
        on_error: Callable[[], None],
        *,
        max_pending: int = 30,
    ) -> None:
        self.track = track
        self.frames_fed = 0
        self.frames_decoded = 0
        self._loop = asyncio.get_running_loop()
        self._on_error = on_error
        self._max_pending = max_pending
        self._need_keyframe = True
        self._stopped = False
        self._input: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="videogate-decoder", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def feed(self, codec: RTCRtpCodecParameters, frame: JitterFrame, keyframe: bool) -> bool:
        """Queue a frame for decoding. Returns False when a keyframe is needed first."""
        if self._stopped:
            return True
        if self._need_keyframe and not keyframe:
            return False
        if self._input.qsize() >= self._max_pending:
            self._drain()
            logger.warning("video decoder fell behind; waiting for a keyframe")
            self._need_keyframe = True
            if not keyframe:
                return False
        self._need_keyframe = False
        self.frames_fed += 1
        # The tapped frame is shared with forwarders: copy before the thread touches it.
        copied = JitterFrame(data=frame.data, timestamp=frame.timestamp)
        self._input.put((codec, copied, keyframe))
        return True

    def stop(self) -> None:
        """Stop decoding now; pending frames are dropped and the track ends."""
        if self._stopped:
            return
        self._stopped = True
        self._drain()
        self._input.put(_STOP)

    def _drain(self) -> None:
        try:
            while True:
                self._input.get_nowait()
        except queue.Empty:
            pass

    def _deliver(self, frame: VideoFrame | None) -> None:
        try:
            self._loop.call_soon_threadsafe(self.track._push, frame)
        except RuntimeError:  # event loop already closed (shutdown)
            pass

    def _report_error(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._on_error)
        except RuntimeError:
            pass

    def _run(self) -> None:
        decoder = None
        codec_name = None
        while True:
            item = self._input.get()
            if item is _STOP:
                break
            assert isinstance(item, tuple)
            codec, frame, keyframe = item
            if codec.name != codec_name:
                decoder = get_decoder(codec)
                codec_name = codec.name
            assert decoder is not None
            try:
                frames = decoder.decode(frame)
            except av.FFmpegError as exc:
                logger.warning("failed to decode %s frame: %s", codec.name, exc)
                self._report_error()
                continue
            for decoded in frames:
                if isinstance(decoded, VideoFrame):
                    self.frames_decoded += 1
                    # aiortc's decoder leaves the type unset; presence spot checks
                    # must tell pictures decoded from a keyframe (spotcheck.py).
                    decoded.pict_type = PictureType.I if keyframe else PictureType.NONE
                    self._deliver(decoded)
        del decoder
        self._deliver(None)
