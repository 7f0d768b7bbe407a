"""One viewer's leg of encoded forwarding: a ``ForwardedTrack`` per publisher and kind.

The publisher side (``Publisher``, the taps, decoding for the gate) is in
``forward.py``; this is what one viewer's sender reads. See ``forward.py`` for the
per-leg behaviour (keyframes, loss, back-pressure) and why frames are forwarded
encoded.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av.packet import Packet

if TYPE_CHECKING:
    from .forward import Publisher

    #: a packet not tied to a demuxer stream (PyAV's stubs make Packet generic)
    EncodedPacket = Packet[Any]
else:
    EncodedPacket = Packet


class ForwardedTrack(MediaStreamTrack):
    """One viewer's copy of one publisher's encoded stream; ``recv()`` yields ``av.Packet``.

    States: ``idle`` until the viewer's sender first reads it (nothing is buffered
    before the leg is negotiated), ``waiting`` (video: held until a keyframe),
    ``flowing``. Ends when stopped or when the publisher's source ends. Frames in a
    codec other than the leg's (the publisher switched codecs) are dropped, never sent.
    """

    def __init__(
        self,
        kind: str,
        codec: RTCRtpCodecParameters,
        publisher: Publisher,
        *,
        max_queue: int,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.codec = codec
        self.publisher_id = publisher.participant_id
        self._publisher: Publisher | None = publisher
        self._queue: asyncio.Queue[tuple[EncodedPacket, bool] | None] = asyncio.Queue()
        self._max_queue = max_queue
        self._state = "idle"
        #: frames handed to the viewer's sender
        self.delivered = 0
        #: whether the first frame handed to the sender was a keyframe (None: none yet)
        self.first_was_keyframe: bool | None = None
        #: frames dropped on overflow or codec mismatch
        self.dropped = 0
        #: the viewer may not receive room media now (it is being re-verified)
        self.viewer_paused = False

    @property
    def state(self) -> str:
        return "ended" if self.readyState != "live" else self._state

    @property
    def waiting_for_keyframe(self) -> bool:
        return self._state == "waiting" and self.readyState == "live"

    def _offer(self, packet: EncodedPacket, codec: RTCRtpCodecParameters, keyframe: bool) -> None:
        """Called by the publisher for every encoded frame (event loop, synchronous)."""
        if self._state == "idle" or self.readyState != "live" or self.viewer_paused:
            return
        if codec.mimeType.lower() != self.codec.mimeType.lower():
            self.dropped += 1
            return
        if self._state == "waiting":
            if not keyframe:
                return
            self._state = "flowing"
        if self._queue.qsize() >= self._max_queue:
            if self.kind == "video":
                self.dropped += self._drain()
                if not keyframe:
                    self._state = "waiting"
                    self._request_keyframe()
                    return
            else:
                self._queue.get_nowait()
                self.dropped += 1
        self._queue.put_nowait((packet, keyframe))

    def _drain(self) -> int:
        count = 0
        while not self._queue.empty():
            if self._queue.get_nowait() is not None:
                count += 1
        return count

    def _hold_for_keyframe(self) -> None:
        """After a pause in forwarding, resume only at a keyframe (video legs)."""
        if self.kind == "video" and self._state == "flowing":
            self._state = "waiting"

    def pause_viewer(self) -> None:
        """Send this viewer nothing until ``resume_viewer`` (what is queued is dropped)."""
        self.viewer_paused = True
        self.dropped += self._drain()

    def resume_viewer(self) -> None:
        if self.viewer_paused:
            self.viewer_paused = False
            self._hold_for_keyframe()
            if self.kind == "video":
                self._request_keyframe()

    def _request_keyframe(self) -> None:
        if self._publisher is not None:
            self._publisher.request_keyframe()

    async def recv(self) -> EncodedPacket:
        if self.readyState != "live":
            raise MediaStreamError
        if self._state == "idle":
            # The leg's sender just started: only now is a keyframe worth asking for.
            self._state = "waiting" if self.kind == "video" else "flowing"
            if self.kind == "video":
                self._request_keyframe()
        item = await self._queue.get()
        if item is None:
            self.stop()
            raise MediaStreamError
        packet, keyframe = item
        if self.first_was_keyframe is None:
            self.first_was_keyframe = keyframe
        self.delivered += 1
        return packet

    def stop(self) -> None:
        if self.readyState == "live":
            self._drain()
            self._queue.put_nowait(None)
        super().stop()
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher._unsubscribe(self)
