"""Keyframe detection on reassembled encoded frames (no decoding).

Why: a viewer that joins mid-stream, or a decoder that (re)starts, can only begin on a
keyframe; everything before it is undecodable and must be dropped rather than sent.
These checks run on every forwarded video frame, so they only look at a few header
bytes.

The input is what aiortc's jitter buffer hands its decoder: for VP8 the raw frame
(payload descriptors already stripped), for H.264 an Annex-B byte stream (aiortc's
depayloader prefixes each NAL unit with ``00 00 00 01``).
"""

from __future__ import annotations

_VP8_START_CODE = b"\x9d\x01\x2a"
_H264_IDR = 5


def is_vp8_keyframe(data: bytes) -> bool:
    """RFC 6386 section 9.1: bit 0 of the frame tag is 0 on key frames, which also
    carry the start code ``9d 01 2a`` right after the 3-byte tag. Checking both
    guards against a frame whose first packets were lost."""
    return len(data) >= 10 and not data[0] & 0x01 and data[3:6] == _VP8_START_CODE


def is_h264_keyframe(data: bytes) -> bool:
    """True if the Annex-B stream holds an IDR slice (NAL type 5)."""
    pos = data.find(b"\x00\x00\x01")
    while pos != -1 and pos + 3 < len(data):
        if data[pos + 3] & 0x1F == _H264_IDR:
            return True
        pos = data.find(b"\x00\x00\x01", pos + 3)
    return False


def is_keyframe(mime_type: str, data: bytes) -> bool:
    """Whether a decoder (or a new viewer) can start on this frame.

    Audio frames are all independent. Unknown video codecs are reported as never
    starting a stream, so a viewer is never sent something it cannot decode.
    """
    mime = mime_type.lower()
    if mime.startswith("audio/"):
        return True
    if mime == "video/vp8":
        return is_vp8_keyframe(data)
    if mime == "video/h264":
        return is_h264_keyframe(data)
    return False
