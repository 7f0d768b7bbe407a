"""Picture size from encoded frame headers, checked before any decoder sees the frame.

Why: a decoder reserves its picture buffers from the size the bitstream claims. A
38-byte VP8 keyframe claiming 16383x16383 made libvpx reserve (and touch) about
0.9 GB per decoder; three such frames took the server from 380 MB to 1.6 GB. The
size is in a few header bytes, so it is read here, on the event loop, for every
video frame the tap delivers, and a frame over the limit never reaches a decoder
(nor a viewer: a viewer's browser would reserve the same memory).

What is read, per codec (those aiortc can negotiate: VP8 and H.264):

* VP8 (RFC 6386 9.1): a keyframe carries its width and height (14 bits each) after
  the start code. Inter frames carry no size: they reuse the keyframe's.
* H.264 (ITU-T H.264 7.3.2.1.1): the size is in the sequence parameter set (SPS,
  NAL type 7), which may come in any frame, so every SPS in every frame is read.

Verdicts: ``OK``; ``DROP`` for a frame a decoder cannot start on and that may be a
transmission accident (a VP8 keyframe flag without its start code, a truncated
SPS): not decoded, not forwarded; ``REFUSE`` for a size over the limit, which no
camera we accept sends by accident: the caller ends the session (``bad_media``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

_VP8_START_CODE = b"\x9d\x01\x2a"
_H264_SPS = 7
# profile_idc values whose SPS carries chroma format, bit depths and scaling lists.
_H264_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


class MalformedHeader(ValueError):
    """The header is cut short or holds values no encoder writes."""


@dataclass(frozen=True)
class FrameSizeLimit:
    """Largest picture accepted, in either orientation (a portrait phone sends
    1080x1920): the long side may not exceed the larger of ``width``/``height``,
    the short side not the smaller."""

    width: int = 1920
    height: int = 1080

    def allows(self, width: int, height: int) -> bool:
        long_max, short_max = max(self.width, self.height), min(self.width, self.height)
        return (
            width > 0
            and height > 0
            and max(width, height) <= long_max
            and min(width, height) <= short_max
        )


class Verdict(enum.Enum):
    OK = "ok"
    DROP = "drop"
    REFUSE = "refuse"


@dataclass(frozen=True)
class FrameCheck:
    verdict: Verdict
    #: the size the header claims (None: this frame carries none, or it is unreadable)
    size: tuple[int, int] | None = None
    detail: str = ""


def vp8_keyframe_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a VP8 keyframe; None for an inter frame.

    Raises ``MalformedHeader`` for a frame flagged as a keyframe whose header is
    short or lacks the start code (libvpx would refuse it, but only after the
    frame reached it).
    """
    if not data:
        raise MalformedHeader("empty VP8 frame")
    if data[0] & 0x01:
        return None  # inter frame: no size
    if len(data) < 10 or data[3:6] != _VP8_START_CODE:
        raise MalformedHeader("VP8 keyframe without its start code")
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return width, height


def h264_nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B stream (start codes removed)."""
    units: list[bytes] = []
    starts: list[int] = []
    pos = data.find(b"\x00\x00\x01")
    while pos != -1:
        starts.append(pos + 3)
        pos = data.find(b"\x00\x00\x01", pos + 3)
    for index, start in enumerate(starts):
        end = starts[index + 1] - 3 if index + 1 < len(starts) else len(data)
        unit = data[start:end]
        # a 4-byte start code leaves a zero at the end of the previous unit
        while index + 1 < len(starts) and unit.endswith(b"\x00"):
            unit = unit[:-1]
        if unit:
            units.append(unit)
    return units


class _Bits:
    """Exp-Golomb reader over an RBSP (emulation prevention bytes already removed)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def u(self, count: int) -> int:
        value = 0
        for _ in range(count):
            byte = self._pos >> 3
            if byte >= len(self._data):
                raise MalformedHeader("SPS cut short")
            value = (value << 1) | ((self._data[byte] >> (7 - (self._pos & 7))) & 1)
            self._pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise MalformedHeader("SPS exp-Golomb code too long")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def _rbsp(nal: bytes) -> bytes:
    """Remove emulation prevention bytes (``00 00 03`` -> ``00 00``)."""
    out = bytearray()
    zeros = 0
    for byte in nal:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = next_scale = 8
    for _ in range(size):
        if next_scale != 0:
            next_scale = (last + bits.se() + 256) % 256
        last = last if next_scale == 0 else next_scale


def h264_sps_size(nal: bytes) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(coded, cropped)`` picture sizes of one SPS NAL unit (header byte included).

    The decoder allocates the coded size (whole 16x16 macroblocks); the cropped size
    is what a viewer sees (1080p is coded as 1088 rows).
    """
    bits = _Bits(_rbsp(nal[1:]))
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    chroma_format = 1
    if profile in _H264_HIGH_PROFILES:
        chroma_format = bits.ue()
        if chroma_format > 3:
            raise MalformedHeader("SPS chroma format")
        if chroma_format == 3:
            bits.u(1)  # separate_colour_plane_flag
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.u(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format != 3 else 12):
                if bits.u(1):
                    _skip_scaling_list(bits, 16 if index < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.u(1)
        bits.se()
        bits.se()
        cycle = bits.ue()
        if cycle > 255:
            raise MalformedHeader("SPS POC cycle")
        for _ in range(cycle):
            bits.se()
    elif poc_type != 2:
        raise MalformedHeader("SPS POC type")
    bits.ue()  # max_num_ref_frames
    bits.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_units = bits.ue() + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.u(1)  # mb_adaptive_frame_field_flag
    bits.u(1)  # direct_8x8_inference_flag
    coded = (width_mbs * 16, (2 - frame_mbs_only) * height_units * 16)
    crop = (0, 0, 0, 0)
    if bits.u(1):  # frame_cropping_flag
        crop = (bits.ue(), bits.ue(), bits.ue(), bits.ue())
    sub_w = 1 if chroma_format in (0, 3) else 2
    sub_h = 2 if chroma_format == 1 else 1
    unit_x = sub_w if chroma_format else 1
    unit_y = (sub_h if chroma_format else 1) * (2 - frame_mbs_only)
    cropped = (
        coded[0] - unit_x * (crop[0] + crop[1]),
        coded[1] - unit_y * (crop[2] + crop[3]),
    )
    if cropped[0] <= 0 or cropped[1] <= 0:
        raise MalformedHeader("SPS cropping exceeds the picture")
    return coded, cropped


def _fits(limit: FrameSizeLimit, coded: tuple[int, int], cropped: tuple[int, int]) -> bool:
    """Cropped within the limit, and coded within it once rounded up to macroblocks
    (32 rows for field coding): cropping cannot hide an oversized allocation."""
    if not limit.allows(*cropped):
        return False
    rounded = FrameSizeLimit(_round_up(limit.width, 32), _round_up(limit.height, 32))
    return rounded.allows(*coded)


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def check_frame(mime_type: str, data: bytes, limit: FrameSizeLimit) -> FrameCheck:
    """Whether a tapped video frame may go on to a decoder and to viewers."""
    mime = mime_type.lower()
    if mime == "video/vp8":
        try:
            size = vp8_keyframe_size(data)
        except MalformedHeader as exc:
            return FrameCheck(Verdict.DROP, None, str(exc))
        if size is None:
            return FrameCheck(Verdict.OK)
        if not limit.allows(*size):
            return FrameCheck(Verdict.REFUSE, size, "VP8 keyframe over the size limit")
        return FrameCheck(Verdict.OK, size)
    if mime == "video/h264":
        result = FrameCheck(Verdict.OK)
        for nal in h264_nal_units(data):
            if nal[0] & 0x1F != _H264_SPS:
                continue
            try:
                coded, cropped = h264_sps_size(nal)
            except MalformedHeader as exc:
                return FrameCheck(Verdict.DROP, None, str(exc))
            if not _fits(limit, coded, cropped):
                return FrameCheck(Verdict.REFUSE, coded, "H.264 SPS over the size limit")
            result = FrameCheck(Verdict.OK, cropped)
        return result
    if mime.startswith("video/"):
        # A codec we cannot read the size of is never decoded or forwarded.
        return FrameCheck(Verdict.REFUSE, None, f"unsupported video codec {mime_type}")
    return FrameCheck(Verdict.OK)
