"""Fast unit tests of the pure pieces: keyframe checks, PLI SSRC choice, negotiation."""

from __future__ import annotations

import asyncio

import pytest

from server.rtc.keyframes import is_h264_keyframe, is_keyframe, is_vp8_keyframe
from server.rtc.negotiation import Negotiator
from server.rtc.room import stream_id_for
from server.rtc.tap import choose_media_ssrcs

VP8_KEY = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00, 0x00])
VP8_DELTA = bytes([0x11, 0x02, 0x00]) + b"\x00" * 8


def test_vp8_keyframe_needs_tag_bit_and_start_code() -> None:
    assert is_vp8_keyframe(VP8_KEY)
    assert not is_vp8_keyframe(VP8_DELTA)
    assert not is_vp8_keyframe(VP8_KEY[:5])
    assert not is_vp8_keyframe(bytes([0x10, 0, 0]) + b"\x00" * 8)  # no start code


def test_h264_keyframe_is_an_idr_slice() -> None:
    sps, pps = b"\x00\x00\x00\x01\x67\x42", b"\x00\x00\x00\x01\x68\xce"
    idr, non_idr = b"\x00\x00\x00\x01\x65\x88", b"\x00\x00\x00\x01\x41\x9a"
    assert is_h264_keyframe(sps + pps + idr)
    assert not is_h264_keyframe(non_idr)
    assert not is_h264_keyframe(sps + pps)
    assert is_h264_keyframe(b"\x00\x00\x01\x65\x88")  # 3-byte start code


def test_is_keyframe_by_mime_type() -> None:
    assert is_keyframe("audio/opus", b"\x01")
    assert is_keyframe("video/VP8", VP8_KEY)
    assert not is_keyframe("video/VP9", VP8_KEY)  # unknown video never starts a viewer


def test_pli_ssrc_excludes_rtx_even_when_rtx_was_seen_first() -> None:
    media, rtx = 1111, 2222
    active = [(rtx, 10.0), (media, 5.0)]  # the RTX SSRC is the most recent source
    assert choose_media_ssrcs(active, {rtx: media}) == [media]
    assert choose_media_ssrcs([(rtx, 10.0)], {rtx: media}) == [media]  # declared, unseen
    assert choose_media_ssrcs([(media, 1.0), (3333, 2.0)], {}) == [3333, media]
    assert choose_media_ssrcs([], {}) == []


def test_stream_ids_are_msid_safe() -> None:
    assert stream_id_for("alice_1") == "alice_1"
    weird = stream_id_for("alice smith <a@b>")
    assert weird.startswith("vg-") and weird == stream_id_for("alice smith <a@b>")
    assert stream_id_for("x" * 65) != "x" * 65


async def test_negotiations_are_serialised_and_coalesced() -> None:
    running = 0
    max_running = 0
    rounds = 0
    gate = asyncio.Event()

    async def renegotiate(pid: str) -> None:
        nonlocal running, max_running, rounds
        running += 1
        max_running = max(max_running, running)
        await gate.wait()
        rounds += 1
        running -= 1

    n = Negotiator("p", renegotiate, timeout=5)
    first = asyncio.ensure_future(n.negotiate())
    await asyncio.sleep(0)
    # three changes arrive while the first round is in flight
    later = [asyncio.ensure_future(n.negotiate()) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert not first.done()
    gate.set()
    async with asyncio.timeout(2):
        await asyncio.gather(first, *later)
    assert max_running == 1
    assert rounds == 2  # the three late requests share one extra round
    assert not n.busy


async def test_negotiation_failure_reaches_its_waiters_and_next_round_runs() -> None:
    calls = 0

    async def renegotiate(pid: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("client went away")

    n = Negotiator("p", renegotiate, timeout=5)
    with pytest.raises(ConnectionError):
        await n.negotiate()
    await n.negotiate()
    assert calls == 2


async def test_negotiation_timeout() -> None:
    async def renegotiate(pid: str) -> None:
        await asyncio.sleep(10)

    n = Negotiator("p", renegotiate, timeout=0.05)
    with pytest.raises(TimeoutError):
        await n.negotiate()


def test_new_mlines_take_the_peers_numbers_or_unused_ones() -> None:
    from aiortc.codecs import CODECS
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from server.rtc.offers import PayloadRegistry, _Numbering

    registry = PayloadRegistry()
    registry.learn(
        [
            RTCRtpCodecParameters("video/VP8", 90000, payloadType=96),
            RTCRtpCodecParameters("video/rtx", 90000, payloadType=97, parameters={"apt": 96}),
            RTCRtpCodecParameters("video/VP9", 90000, payloadType=98),  # declined, still bound
            RTCRtpCodecParameters("video/rtx", 90000, payloadType=99, parameters={"apt": 98}),
            RTCRtpCodecParameters("audio/opus", 48000, channels=2, payloadType=111),
        ],
        [],
    )
    numbering = _Numbering(registry)
    video = numbering.renumber(CODECS["video"])  # aiortc: VP8 97, rtx 98, H264 99.., rtx
    pts = {(c.mimeType, str(c.parameters.get("apt", ""))): c.payloadType for c in video}
    assert pts[("video/VP8", "")] == 96
    assert pts[("video/rtx", "96")] == 97
    taken = {96, 97, 98, 99, 111}
    new = [c.payloadType for c in video if c.payloadType not in (96, 97)]
    assert len(set(new)) == len(new) and not taken & set(new)
    audio = numbering.renumber(CODECS["audio"])
    assert audio[0].mimeType == "audio/opus" and audio[0].payloadType == 111
    assert {c.payloadType for c in audio[1:]} == {9, 0, 8}  # static types untouched
    assert numbering.extension_id("urn:ietf:params:rtp-hdrext:sdes:mid", 1) == 1
