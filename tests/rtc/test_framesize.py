"""Frame sizes read from encoded headers: real encoder output and crafted attacks."""

from __future__ import annotations

import fractions
import struct

import av
import numpy as np
import pytest

from server.rtc.framesize import (
    FrameSizeLimit,
    MalformedHeader,
    Verdict,
    check_frame,
    h264_nal_units,
    h264_sps_size,
    vp8_keyframe_size,
)

LIMIT = FrameSizeLimit()


def vp8_keyframe(width: int, height: int, *, start_code: bytes = b"\x9d\x01\x2a") -> bytes:
    """A 38-byte VP8 keyframe header claiming ``width`` x ``height`` (the attack)."""
    tag = (1 << 4) | (10 << 5)  # keyframe, version 0, shown, first partition 10 bytes
    return tag.to_bytes(3, "little") + start_code + struct.pack("<HH", width, height) + bytes(28)


def encode(codec: str, width: int, height: int, **options: str) -> list[bytes]:
    """Real encoder output: a few frames of noise at ``width`` x ``height``."""
    context = av.CodecContext.create(codec, "w")
    context.width, context.height = width, height
    context.pix_fmt = "yuv420p"
    context.time_base = fractions.Fraction(1, 30)
    context.options = options
    rng = np.random.default_rng(1)
    packets: list[bytes] = []
    for index in range(3):
        frame = av.VideoFrame.from_ndarray(
            rng.integers(0, 255, (height, width, 3), dtype=np.uint8), format="rgb24"
        ).reformat(format="yuv420p")
        frame.pts = index
        packets += [bytes(p) for p in context.encode(frame)]
    packets += [bytes(p) for p in context.encode(None)]
    return packets


class BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, count: int, value: int) -> None:
        self.bits += [(value >> (count - 1 - i)) & 1 for i in range(count)]

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(code.bit_length() - 1, 0)
        self.u(code.bit_length(), code)

    def rbsp(self) -> bytes:
        bits = [*self.bits, 1]
        bits += [0] * (-len(bits) % 8)
        raw = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
        out = bytearray()
        zeros = 0
        for byte in raw:  # emulation prevention, as an encoder writes it
            if zeros >= 2 and byte <= 3:
                out.append(3)
                zeros = 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes(out)


def baseline_sps(width_mbs: int, height_mbs: int, crop_bottom: int = 0) -> bytes:
    """A constrained-baseline SPS NAL unit (header byte 0x67) of the given macroblocks."""
    w = BitWriter()
    w.u(8, 66)  # profile_idc baseline
    w.u(8, 0xC0)
    w.u(8, 31)
    w.ue(0)  # sps id
    w.ue(0)  # log2_max_frame_num_minus4
    w.ue(2)  # poc type 2
    w.ue(1)  # max_num_ref_frames
    w.u(1, 0)
    w.ue(width_mbs - 1)
    w.ue(height_mbs - 1)
    w.u(1, 1)  # frame_mbs_only
    w.u(1, 1)  # direct_8x8_inference
    w.u(1, 1 if crop_bottom else 0)
    if crop_bottom:
        for value in (0, 0, 0, crop_bottom):
            w.ue(value)
    w.u(1, 0)  # no VUI
    return b"\x67" + w.rbsp()


def annex_b(*units: bytes) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + unit for unit in units)


# -- VP8 --


@pytest.mark.parametrize("size", [(640, 480), (1280, 720), (1920, 1080), (320, 240)])
def test_vp8_encoder_keyframes_are_read_and_allowed(size: tuple[int, int]) -> None:
    packets = encode("libvpx", *size)
    assert vp8_keyframe_size(packets[0]) == size
    for packet in packets:
        check = check_frame("video/VP8", packet, LIMIT)
        assert check.verdict is Verdict.OK
    assert check_frame("video/VP8", packets[0], LIMIT).size == size


def test_vp8_portrait_1080p_is_allowed_but_2k_is_not() -> None:
    assert check_frame("video/VP8", vp8_keyframe(1080, 1920), LIMIT).verdict is Verdict.OK
    for size in [(1921, 1080), (1920, 1081), (2560, 1440), (1200, 1200)]:
        assert check_frame("video/VP8", vp8_keyframe(*size), LIMIT).verdict is Verdict.REFUSE


def test_vp8_memory_bomb_header_is_refused() -> None:
    bomb = vp8_keyframe(16383, 16383)
    assert len(bomb) == 38
    check = check_frame("video/VP8", bomb, LIMIT)
    assert check.verdict is Verdict.REFUSE and check.size == (16383, 16383)
    # The two scaling bits are not part of the size.
    scaled = vp8_keyframe(0xC000 | 640, 0x4000 | 480)
    assert check_frame("video/VP8", scaled, LIMIT).size == (640, 480)


def test_vp8_malformed_keyframes_are_dropped_not_decoded() -> None:
    assert check_frame("video/VP8", vp8_keyframe(0, 480), LIMIT).verdict is Verdict.REFUSE
    assert check_frame("video/VP8", b"", LIMIT).verdict is Verdict.DROP
    assert check_frame("video/VP8", b"\x10\x02", LIMIT).verdict is Verdict.DROP
    bad_start = vp8_keyframe(640, 480, start_code=b"\x00\x00\x00")
    assert check_frame("video/VP8", bad_start, LIMIT).verdict is Verdict.DROP
    with pytest.raises(MalformedHeader):
        vp8_keyframe_size(bad_start)
    # An inter frame carries no size and passes.
    assert check_frame("video/VP8", b"\x31" + bytes(20), LIMIT).verdict is Verdict.OK


def test_a_larger_limit_admits_4k() -> None:
    assert check_frame("video/VP8", vp8_keyframe(3840, 2160), FrameSizeLimit(3840, 2160)).verdict \
        is Verdict.OK  # fmt: skip


# -- H.264 --


@pytest.mark.parametrize(
    ("size", "options"),
    [
        ((640, 480), {"profile": "baseline"}),
        ((1920, 1080), {"profile": "high"}),
        ((1280, 720), {"profile": "main"}),
        ((1080, 1920), {"profile": "high"}),
        ((352, 288), {"profile": "high444", "x264-params": "cqm=jvt"}),
    ],
)
def test_h264_encoder_sps_is_read_and_allowed(
    size: tuple[int, int], options: dict[str, str]
) -> None:
    pix = {"pix_fmt": "yuv420p"} if options["profile"] != "high444" else {}
    packets = encode("libx264", *size, preset="ultrafast", **options, **pix)
    sps = [n for n in h264_nal_units(packets[0]) if n[0] & 0x1F == 7]
    assert sps, "the first access unit carries an SPS"
    _coded, cropped = h264_sps_size(sps[0])
    assert cropped == size
    check = check_frame("video/H264", packets[0], LIMIT)
    assert check.verdict is Verdict.OK and check.size == size


def test_h264_oversized_sps_is_refused_wherever_it_comes() -> None:
    idr = b"\x65\x88\x84\x00"
    huge = baseline_sps(1024, 1024)  # 16384 x 16384
    assert h264_sps_size(huge)[0] == (16384, 16384)
    assert check_frame("video/H264", annex_b(huge, idr), LIMIT).verdict is Verdict.REFUSE
    # In a non-IDR access unit too: ffmpeg takes an SPS from any frame.
    inter = annex_b(baseline_sps(40, 30), b"\x41\x9a", huge, b"\x41\x9a")
    assert check_frame("video/H264", inter, LIMIT).verdict is Verdict.REFUSE
    # Cropping cannot hide an oversized allocation.
    cropped = baseline_sps(120, 200, crop_bottom=(200 * 16 - 1080) // 2)
    coded, shown = h264_sps_size(cropped)
    assert coded == (1920, 3200) and shown == (1920, 1080)
    assert check_frame("video/H264", annex_b(cropped, idr), LIMIT).verdict is Verdict.REFUSE
    # 1080p coded as 1088 rows is fine.
    ok = baseline_sps(120, 68, crop_bottom=4)
    assert check_frame("video/H264", annex_b(ok, idr), LIMIT).verdict is Verdict.OK


def test_h264_malformed_sps_is_dropped() -> None:
    truncated = baseline_sps(40, 30)[:4]
    assert check_frame("video/H264", annex_b(truncated), LIMIT).verdict is Verdict.DROP
    endless = b"\x67\x42\xc0\x1f" + bytes(12)  # exp-Golomb code with no end
    assert check_frame("video/H264", annex_b(endless), LIMIT).verdict is Verdict.DROP
    # Frames without an SPS carry no size and pass.
    assert check_frame("video/H264", annex_b(b"\x41\x9a\x00"), LIMIT).verdict is Verdict.OK


def test_unknown_video_codecs_are_refused_audio_passes() -> None:
    assert check_frame("video/VP9", b"\x82\x49\x83", LIMIT).verdict is Verdict.REFUSE
    assert check_frame("audio/opus", b"\xff" * 10, LIMIT).verdict is Verdict.OK
