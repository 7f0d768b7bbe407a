"""Server re-offers (the peer factory's createOffer) keep the browser's numbering."""

from __future__ import annotations

from aiortc import AudioStreamTrack, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc import sdp as aiosdp

from server.rtc.peer import create_peer_connection

# Chromium's numbering, which differs from aiortc's (Opus 96, VP8 97, mid on id 1).
CHROME_PT = {96: 111, 97: 96, 98: 97, 99: 102, 100: 103, 101: 104, 102: 107}
CHROME_EXT = {
    "urn:ietf:params:rtp-hdrext:sdes:mid": 4,
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level": 1,
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time": 2,
}


def as_chrome(text: str) -> str:
    description = aiosdp.SessionDescription.parse(text)
    for media in description.media:
        for codec in media.rtp.codecs:
            codec.payloadType = CHROME_PT.get(codec.payloadType, codec.payloadType)
            if "apt" in codec.parameters:
                codec.parameters["apt"] = CHROME_PT[int(codec.parameters["apt"])]
        media.fmt = [c.payloadType for c in media.rtp.codecs]
        for ext in media.rtp.headerExtensions:
            ext.id = CHROME_EXT[ext.uri]
    return str(description)


def codecs_by_pt(text: str) -> dict[int, set[str]]:
    seen: dict[int, set[str]] = {}
    for media in aiosdp.SessionDescription.parse(text).media:
        for codec in media.rtp.codecs:
            seen.setdefault(codec.payloadType, set()).add(codec.mimeType.lower())
    return seen


async def negotiated_server() -> tuple[RTCPeerConnection, RTCPeerConnection]:
    browser = RTCPeerConnection()
    browser.addTrack(AudioStreamTrack())
    browser.addTrack(VideoStreamTrack())
    offer = await browser.createOffer()
    server = create_peer_connection(loopback=False)
    await server.setRemoteDescription(RTCSessionDescription(as_chrome(offer.sdp), "offer"))
    await server.setLocalDescription(await server.createAnswer())
    # The SFU adds forwarded legs to an admitted participant's connection.
    server.addTransceiver(AudioStreamTrack(), direction="sendonly")
    server.addTransceiver(VideoStreamTrack(), direction="sendonly")
    return browser, server


async def test_reoffer_keeps_negotiated_numbers_and_reuses_them_for_new_lines() -> None:
    browser, server = await negotiated_server()
    try:
        reoffer = await server.createOffer()
        media = aiosdp.SessionDescription.parse(reoffer.sdp).media
        assert [m.kind for m in media] == ["audio", "video", "audio", "video"]
        for m in media:
            pts = {c.mimeType.lower(): c.payloadType for c in m.rtp.codecs}
            if m.kind == "audio":
                assert pts["audio/opus"] == 111
            else:
                assert pts["video/vp8"] == 96
                rtx = [c for c in m.rtp.codecs if c.mimeType.lower() == "video/rtx"]
                assert any(c.parameters["apt"] == 96 and c.payloadType == 97 for c in rtx)
            ids = {e.uri: e.id for e in m.rtp.headerExtensions}
            for uri, ext_id in ids.items():
                assert CHROME_EXT[uri] == ext_id
        # No payload type stands for two codecs anywhere in the BUNDLE.
        assert all(len(names) == 1 for names in codecs_by_pt(reoffer.sdp).values())
        # The answer to the re-offer applies cleanly.
        await server.setLocalDescription(reoffer)
    finally:
        await browser.close()
        await server.close()

