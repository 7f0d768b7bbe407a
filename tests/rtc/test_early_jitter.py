"""EarlyJitterBuffer releases a frame when its last packet arrives, not one frame later."""

from __future__ import annotations

from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from server.rtc.tap import EarlyJitterBuffer


def packet(seq: int, ts: int, payload: bytes, marker: bool = False) -> RtpPacket:
    p = RtpPacket(sequence_number=seq, timestamp=ts, marker=int(marker))
    p._data = payload  # type: ignore[attr-defined]
    return p


def test_video_frame_leaves_on_its_marker_packet() -> None:
    early = EarlyJitterBuffer(capacity=16, is_video=True)
    plain = JitterBuffer(capacity=16, is_video=True)
    for buffer in (early, plain):
        assert buffer.add(packet(1, 100, b"a"))[1] is None
    _, frame = early.add(packet(2, 100, b"b", marker=True))
    assert frame is not None and (frame.data, frame.timestamp) == (b"ab", 100)
    # aiortc's own buffer needs the next frame's first packet to release it.
    assert plain.add(packet(2, 100, b"b", marker=True))[1] is None
    assert plain.add(packet(3, 200, b"c"))[1] is not None
    # The next frame is assembled independently.
    assert early.add(packet(3, 200, b"c"))[1] is None
    _, frame = early.add(packet(4, 200, b"d", marker=True))
    assert frame is not None and frame.data == b"cd"


def test_missing_packet_holds_the_frame() -> None:
    early = EarlyJitterBuffer(capacity=16, is_video=True)
    early.add(packet(1, 100, b"a"))
    assert early.add(packet(3, 100, b"c", marker=True))[1] is None
    _, frame = early.add(packet(2, 100, b"b"))
    assert frame is not None and frame.data == b"abc"


def test_without_marker_falls_back_to_next_timestamp() -> None:
    early = EarlyJitterBuffer(capacity=16, is_video=True)
    assert early.add(packet(1, 100, b"a"))[1] is None
    _, frame = early.add(packet(2, 200, b"b"))
    assert frame is not None and frame.data == b"a"


def test_audio_without_prefetch_leaves_at_once_with_prefetch_is_smoothed() -> None:
    early = EarlyJitterBuffer(capacity=16, prefetch=0)
    _, frame = early.add(packet(1, 960, b"opus"))
    assert frame is not None and frame.data == b"opus"
    smoothed = EarlyJitterBuffer(capacity=16, prefetch=4)
    assert smoothed.add(packet(1, 960, b"opus"))[1] is None
