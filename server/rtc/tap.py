"""Tap an aiortc ``RTCRtpReceiver`` for its reassembled encoded frames, before decoding.

Why: forwarding encoded frames costs almost nothing per viewer, while aiortc's own
path (``MediaRelay``) decodes once and re-encodes per viewer (~10 % of a core each).
aiortc has no public hook for encoded frames, so this module is the single place that
reaches into the receiver. Everything else in ``server.rtc`` works with the
``(codec, frame)`` pairs delivered here.

How: ``RTCRtpReceiver._handle_rtp_packet`` depayloads RTP, reassembles frames in its
jitter buffer, then puts ``(codec, JitterFrame)`` on the decoder thread's
``queue.Queue`` (attribute ``_RTCRtpReceiver__decoder_queue``, looked up on every
put). We swap that attribute for a small object whose ``put`` hands the frame to our
callback instead. aiortc's own decoder thread keeps the original queue (it captured it
when the receiver started), so it never sees a frame: no decoding cost and no
unconsumed frames piling up in the receiver's ``RemoteStreamTrack``. (If the tap is
installed before the receiver starts, aiortc's thread is handed our stand-in and
reads the original queue through it.) The ``None``
that aiortc puts to stop its decoder (RTCP BYE, disconnect, ``stop()``) is passed
through so that thread still exits, and is reported to us as "source ended".

Keyframe requests also go through the receiver's RTCP path
(``RTCRtpReceiver._send_rtcp_pli``), addressed to the publisher's *media* SSRC. The
receiver also sees the RTX SSRC (retransmissions) among its synchronization sources,
possibly first; a PLI addressed to the RTX SSRC is ignored by the sender, so RTX
SSRCs (``_RTCRtpReceiver__rtx_ssrc``, RTX SSRC -> media SSRC, from the SDP) are
excluded.

aiortc internals used (pinned ``aiortc==1.16.0``; ``tests/rtc`` covers each):
``_RTCRtpReceiver__decoder_queue``, ``_RTCRtpReceiver__rtx_ssrc``,
``_RTCRtpReceiver__jitter_buffer`` (its ``_prefetch``, and its class, swapped for
``EarlyJitterBuffer``: ``_origin``, ``_packets``, ``_capacity``, ``_is_video``,
``remove``), ``RTCRtpReceiver._send_rtcp_pli``, ``aiortc.jitterbuffer.JitterFrame``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

import aiortc
from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

logger = logging.getLogger(__name__)

SUPPORTED_AIORTC = "1.16.0"
_QUEUE_ATTR = "_RTCRtpReceiver__decoder_queue"
_RTX_ATTR = "_RTCRtpReceiver__rtx_ssrc"
_JITTER_ATTR = "_RTCRtpReceiver__jitter_buffer"

FrameSink = Callable[[RTCRtpCodecParameters, JitterFrame], None]

if aiortc.__version__ != SUPPORTED_AIORTC:  # pragma: no cover - guarded by the pin
    logger.warning(
        "server.rtc.tap relies on aiortc %s internals, found %s: run tests/rtc",
        SUPPORTED_AIORTC,
        aiortc.__version__,
    )


class EarlyJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, releasing a frame as soon as all its packets are in."""

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        if self._origin is None:
            return None
        packets: list[RtpPacket] = []
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None or (packets and packet.timestamp != packets[0].timestamp):
                break
            packets.append(packet)
            if packet.marker or not self._is_video:
                if not self._is_video and self._prefetch:
                    break  # audio with a prefetch keeps aiortc's smoothing
                self.remove(count + 1)
                return JitterFrame(
                    data=b"".join(p._data for p in packets),  # type: ignore[attr-defined]
                    timestamp=packets[0].timestamp,
                )
        return super()._remove_frame(sequence_number)


class _TapQueue:
    """Duck-typed stand-in for the receiver's decoder queue.

    ``put`` (called by the receiver) goes to the tap. ``get`` (called by aiortc's
    decoder thread when the tap was installed before the receiver started, which is
    the usual case) reads the original queue, where only the stop marker ever
    arrives: the thread idles, then exits cleanly.
    """

    def __init__(self, tap: ReceiverTap) -> None:
        self._tap = tap

    def put(self, item: Any, *args: Any, **kwargs: Any) -> None:
        self._tap._put(item)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._tap._original.get(*args, **kwargs)


class ReceiverTap:
    """Delivers every reassembled encoded frame of one receiver to ``on_frame``.

    ``on_frame`` and ``on_end`` run on the event loop, synchronously inside aiortc's
    packet handling: keep them short and non-blocking.
    """

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        on_frame: FrameSink,
        on_end: Callable[[], None],
    ) -> None:
        original = getattr(receiver, _QUEUE_ATTR, None)
        if original is None or not hasattr(original, "put"):
            raise RuntimeError(
                f"aiortc {aiortc.__version__}: RTCRtpReceiver has no decoder queue; "
                f"server.rtc.tap supports aiortc {SUPPORTED_AIORTC}"
            )
        if isinstance(original, _TapQueue):
            raise RuntimeError("receiver is already tapped")
        self._receiver = receiver
        self._original: Any = original
        self._on_frame = on_frame
        self._on_end = on_end
        self._ended = False
        self.frames = 0
        setattr(receiver, _QUEUE_ATTR, _TapQueue(self))
        self._release_frames_early()

    def _release_frames_early(self) -> None:
        """Hand over each frame as soon as it is complete, not one frame later.

        aiortc's jitter buffer only knows a frame is complete when the first packet
        of the *next* frame arrives: a full frame interval (33 ms at 30 fps) of added
        latency on every forwarded frame. ``EarlyJitterBuffer`` also releases on the
        RTP marker bit (video: last packet of a frame) and releases audio packets (one
        Opus frame each) at once. The buffer's class is swapped in place, so packets
        it already holds are kept.
        """
        buffer = getattr(self._receiver, _JITTER_ATTR, None)
        if type(buffer) is JitterBuffer:
            buffer.__class__ = EarlyJitterBuffer
        else:
            logger.warning("aiortc %s: jitter buffer not recognised", aiortc.__version__)

    @property
    def receiver(self) -> RTCRtpReceiver:
        return self._receiver

    @property
    def ended(self) -> bool:
        return self._ended

    def _put(self, item: Any) -> None:
        if item is None:
            # aiortc is stopping its decoder thread: let it exit, then report the end.
            self._original.put(None)
            if not self._ended:
                self._ended = True
                self._on_end()
            return
        codec, frame = item
        self.frames += 1
        try:
            self._on_frame(codec, frame)
        except Exception:  # never let a forwarding bug break aiortc's receive path
            logger.exception("encoded frame handler failed")

    def media_ssrcs(self) -> list[int]:
        """The publisher's media SSRCs, RTX excluded, most recently active first."""
        rtx_map: dict[int, int] = dict(getattr(self._receiver, _RTX_ATTR, {}))
        active = [
            (s.source, s.timestamp.timestamp()) for s in self._receiver.getSynchronizationSources()
        ]
        return choose_media_ssrcs(active, rtx_map)

    def set_jitter_prefetch(self, frames: int) -> None:
        """How many later frames aiortc's jitter buffer waits for before releasing one.

        aiortc holds audio back by 4 frames (80 ms) to smooth its own decoder's input.
        A forwarded frame goes on to the viewer's jitter buffer, which smooths again,
        so for forwarding that delay is pure latency; the publisher sets it to 0
        (a frame then leaves as soon as the next one starts, as for video).
        """
        buffer = getattr(self._receiver, _JITTER_ATTR, None)
        if buffer is None or not hasattr(buffer, "_prefetch"):
            logger.warning("aiortc %s: cannot tune the jitter buffer", aiortc.__version__)
            return
        buffer._prefetch = frames

    async def send_pli(self) -> bool:
        """Send a Picture Loss Indication to the publisher; False if no SSRC is known yet."""
        ssrcs = self.media_ssrcs()
        for ssrc in ssrcs:
            await self._receiver._send_rtcp_pli(ssrc)
        return bool(ssrcs)


def choose_media_ssrcs(active: Iterable[tuple[int, float]], rtx_map: dict[int, int]) -> list[int]:
    """Pick the SSRCs a PLI must name.

    :param active: ``(ssrc, last_seen)`` for every SSRC the receiver saw recently; this
        includes RTX SSRCs, which may even come first.
    :param rtx_map: RTX SSRC -> media SSRC, as declared in the remote description.
    :returns: media SSRCs, most recently seen first; declared media SSRCs that were
        not seen yet come last (a PLI to them is harmless and may be needed).
    """
    rtx = set(rtx_map)
    seen = [ssrc for ssrc, _ in sorted(active, key=lambda x: -x[1]) if ssrc not in rtx]
    declared = [ssrc for ssrc in dict.fromkeys(rtx_map.values()) if ssrc not in seen]
    return seen + declared


def schedule(coro: Any, tasks: set[asyncio.Task[Any]]) -> asyncio.Task[Any]:
    """Run ``coro`` as a task whose reference is held in ``tasks`` until it finishes."""
    task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task
