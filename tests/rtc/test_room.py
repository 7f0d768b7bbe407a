"""SfuRoom + Publisher end to end, with in-process aiortc clients on loopback."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiortc import sdp

from server.rtc import Publisher, create_peer_connection

from .conftest import (
    CLIP_SIZE,
    Harness,
    Participant,
    assert_bundle_numbering_consistent,
    wait_until,
)


async def test_two_admitted_publishers_see_and_hear_each_other(harness: Harness) -> None:
    a = await harness.join("alice")
    b = await harness.join("bob")
    await harness.room.admit("alice", a.server, a.publisher)
    await harness.room.admit("bob", b.server, b.publisher)

    for viewer in (a, b):

        def decoded_both(v: Participant = viewer) -> bool:
            video = any(r.frames >= 10 for r in v.incoming("video"))
            return video and any(r.frames >= 20 for r in v.incoming("audio"))

        await wait_until(decoded_both, what=f"{viewer.pid} to decode the other's video and audio")
        (video,) = viewer.incoming("video")
        (audio,) = viewer.incoming("audio")
        assert video.sizes == {CLIP_SIZE}
        assert audio.sample_rates == {48000}

    # aiortc's 80 ms audio prefetch is dropped on tapped receivers (pure latency here)
    (audio_receiver,) = [
        t.receiver for t in a.server.getTransceivers() if t.kind == "audio" and t.receiver.track
    ]
    assert audio_receiver._RTCRtpReceiver__jitter_buffer._prefetch == 0  # type: ignore[attr-defined]

    # The browser groups a publisher's tracks by msid stream id = participant id.
    assert "msid:alice " in b.server.localDescription.sdp
    assert {(leg.publisher_id, leg.viewer_id) for leg in harness.room.legs()} == {
        ("alice", "bob"),
        ("bob", "alice"),
    }


async def _inbound_packets(pc: object) -> int:
    from aiortc import RTCPeerConnection

    assert isinstance(pc, RTCPeerConnection)
    stats = await pc.getStats()
    return sum(s.packetsReceived for s in stats.values() if s.type == "inbound-rtp")


async def test_unadmitted_peer_receives_no_media(harness: Harness) -> None:
    a = await harness.join("alice")
    b = await harness.join("bob")
    c = await harness.join("carol")  # connected and publishing, never admitted
    await harness.room.admit("alice", a.server, a.publisher)
    await harness.room.admit("bob", b.server, b.publisher)
    await wait_until(
        lambda: any(r.frames >= 10 for r in b.incoming("video")),
        what="bob to see alice",
    )
    await asyncio.sleep(0.5)

    assert c.received == []  # no track event at all
    assert await _inbound_packets(c.client) == 0  # and not one RTP packet
    assert all(s.track is None for s in c.server.getSenders())
    assert harness.room.legs(viewer_id="carol") == []
    assert harness.room.legs(publisher_id="carol") == []
    assert c.publisher.subscribers == 0
    assert "carol" not in harness.negotiations
    # carol's own media reaches the server (the gate can look at it) but nobody else
    assert c.publisher.stats().video_frames > 0
    assert all(len(p.received) == 2 for p in (a, b))


async def test_late_viewer_starts_on_a_keyframe_requested_by_pli(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    a = await harness.join("alice", decode_video=False)
    await harness.room.admit("alice", a.server, a.publisher)
    # aiortc's encoder only makes keyframes at start and on request (gop 3000): after
    # a while of streaming, a new viewer can only decode if the PLI path works.
    await wait_until(lambda: a.publisher.stats().video_frames >= 20, what="alice streaming")
    requests_before = a.keyframe_requests
    plis_before = a.publisher.stats().plis_sent

    b = await harness.join("bob", publish=False)
    caplog.set_level(logging.WARNING, logger="aiortc.rtcrtpreceiver")
    await harness.room.admit("bob", b.server, b.publisher)
    await wait_until(
        lambda: any(r.frames >= 10 for r in b.incoming("video")),
        what="bob to decode alice's video",
    )

    (leg,) = [leg for leg in harness.room.legs(viewer_id="bob") if leg.kind == "video"]
    assert leg.track.first_was_keyframe is True
    assert a.publisher.stats().plis_sent > plis_before
    assert a.keyframe_requests > requests_before  # the PLI reached alice's encoder
    assert b.incoming("video")[0].sizes == {CLIP_SIZE}
    assert not [r for r in caplog.records if "failed to decode" in r.getMessage()]


async def test_viewer_pli_is_forwarded_to_the_publisher(harness: Harness) -> None:
    a = await harness.join("alice", decode_video=False)
    b = await harness.join("bob", publish=False)
    await harness.room.admit("alice", a.server, a.publisher)
    await harness.room.admit("bob", b.server, b.publisher)
    await wait_until(lambda: any(r.frames >= 5 for r in b.incoming("video")), what="video")
    await asyncio.sleep(0.6)  # past the publisher's PLI throttle
    before = a.keyframe_requests

    # bob's client reports picture loss on the forwarded video, as a browser would
    (transceiver,) = [
        t
        for t in b.client.getTransceivers()
        if t.kind == "video" and t.receiver.track and t.currentDirection == "recvonly"
    ]
    ssrcs = [s.source for s in transceiver.receiver.getSynchronizationSources()]
    await transceiver.receiver._send_rtcp_pli(ssrcs[0])
    await wait_until(lambda: a.keyframe_requests > before, what="PLI to reach alice")


async def test_remove_ends_viewer_tracks_and_stops_senders(harness: Harness) -> None:
    a = await harness.join("alice", decode_video=False)
    b = await harness.join("bob", decode_video=False)
    await harness.room.admit("alice", a.server, a.publisher)
    await harness.room.admit("bob", b.server, b.publisher)
    await wait_until(
        lambda: (
            all(r.frames >= 5 for p in (a, b) for r in p.received if r.track.kind == "video")
            and len(a.received) == len(b.received) == 2
        ),
        what="both ways flowing",
    )
    legs = harness.room.legs()
    assert len(legs) == 4

    await harness.room.remove("alice")

    assert harness.room.participants == ["bob"]
    assert harness.room.legs() == []
    # bob's tracks from alice end, and so do alice's tracks from bob
    await wait_until(lambda: all(r.ended for p in (a, b) for r in p.received), what="tracks to end")
    for leg in legs:
        sender = leg.transceiver.sender
        assert leg.track.readyState == "ended"
        assert sender.track is None
        assert sender._RTCRtpSender__rtp_task.done()
        assert sender._RTCRtpSender__rtcp_task.done()
        assert leg.transceiver.currentDirection == "inactive"
    assert a.publisher.subscribers == 0
    assert b.publisher.subscribers == 0
    assert not a.publisher._tasks
    # and nothing flows any more
    counts = await _inbound_packets(b.client), await _inbound_packets(a.client)
    await asyncio.sleep(0.5)
    assert (await _inbound_packets(b.client), await _inbound_packets(a.client)) == counts


async def test_stop_decoding_stops_feeding_the_decoder_but_not_forwarding(
    harness: Harness,
) -> None:
    from aiortc.mediastreams import MediaStreamError

    a = await harness.join("alice")
    b = await harness.join("bob", publish=False)
    track = a.publisher.decoded_video
    assert track is not None
    async with asyncio.timeout(10):
        frame = await track.recv()
    assert (frame.width, frame.height) == CLIP_SIZE

    await harness.room.admit("alice", a.server, a.publisher)
    await harness.room.admit("bob", b.server, b.publisher)
    decoder = a.publisher._decoder
    assert decoder is not None
    a.publisher.stop_decoding()
    assert a.publisher.decoded_video is None
    await wait_until(lambda: not decoder.alive, what="decoder thread to exit")
    with pytest.raises(MediaStreamError):
        async with asyncio.timeout(2):
            while True:
                await track.recv()

    fed = a.publisher.stats().decoder_frames_fed
    frames_in = a.publisher.stats().video_frames
    await wait_until(lambda: any(r.frames >= 10 for r in b.incoming("video")), what="video")
    seen = b.incoming("video")[0].frames
    await asyncio.sleep(1.0)
    assert a.publisher.stats().decoder_frames_fed == fed
    assert a.publisher.stats().video_frames > frames_in + 5  # the tap keeps going
    assert b.incoming("video")[0].frames > seen + 5  # and so does forwarding

    # decoding can restart (re-verification): it begins at a requested keyframe
    restarted = a.publisher.start_decoding()
    async with asyncio.timeout(10):
        frame = await restarted.recv()
    assert (frame.width, frame.height) == CLIP_SIZE


async def test_h264_publisher_is_forwarded_in_h264(harness: Harness) -> None:
    a = await harness.join("alice", video_codec="video/H264", decode_video=False)
    b = await harness.join("bob", publish=False)
    await harness.room.admit("alice", a.server, a.publisher)
    await harness.room.admit("bob", b.server, b.publisher)
    await wait_until(
        lambda: any(r.frames >= 10 for r in b.incoming("video")), what="bob to decode H.264"
    )
    codec = a.publisher.codec("video")
    assert codec is not None and codec.mimeType.lower() == "video/h264"
    (leg,) = [leg for leg in harness.room.legs(viewer_id="bob") if leg.kind == "video"]
    assert leg.transceiver._codecs[0].mimeType.lower() == "video/h264"
    assert b.incoming("video")[0].sizes == {CLIP_SIZE}


async def test_publisher_built_after_the_offer_still_taps(harness: Harness) -> None:
    """The Publisher may also be created after setRemoteDescription (tracks exist)."""
    p = await harness.join("alice", late_publisher=True)
    await wait_until(lambda: p.publisher.stats().video_frames >= 5, what="tap after offer")
    assert p.publisher.codec("video") is not None
    assert p.publisher.codec("audio") is not None
    with pytest.raises(RuntimeError, match="already tapped"):
        Publisher("again", p.server)


async def test_restrict_answer_codecs_makes_an_h264_first_client_send_vp8(
    harness: Harness,
) -> None:
    a = await harness.join("alice", video_codec="video/H264", restrict_to_vp8=True)
    answer = a.server.localDescription.sdp
    video_section = answer[answer.index("m=video") :]
    assert "VP8/90000" in video_section and "H264/90000" not in video_section
    await wait_until(lambda: a.publisher.stats().video_frames >= 3, what="video")
    codec = a.publisher.codec("video")
    assert codec is not None and codec.mimeType.lower() == "video/vp8"


async def test_concurrent_admissions_all_see_each_other(harness: Harness) -> None:
    people = [await harness.join(pid, decode_video=False) for pid in ("ann", "ben", "cid")]
    await asyncio.gather(*(harness.room.admit(p.pid, p.server, p.publisher) for p in people))
    assert len(harness.room.legs()) == 3 * 2 * 2  # 3 viewers x 2 publishers x 2 kinds
    await wait_until(
        lambda: all(
            len(p.incoming("video")) == 2 and all(r.frames >= 3 for r in p.incoming("video"))
            for p in people
        ),
        what="everyone to decode both others",
    )
    for p in people:
        assert all(r.sizes == {CLIP_SIZE} for r in p.incoming("video"))


async def test_publisher_hanging_up_ends_its_forwarded_tracks(harness: Harness) -> None:
    a = await harness.join("alice", decode_video=False)
    b = await harness.join("bob", publish=False)
    await harness.room.admit("alice", a.server, a.publisher)
    await harness.room.admit("bob", b.server, b.publisher)
    await wait_until(lambda: any(r.frames >= 3 for r in b.incoming("video")), what="video")
    legs = harness.room.legs(publisher_id="alice")
    await a.client.close()  # RTCP BYE from alice's senders
    # the server notices at once: alice's forwarded tracks end, nothing is sent to bob
    await wait_until(
        lambda: all(leg.track.readyState == "ended" for leg in legs), what="legs to end"
    )
    assert a.publisher.subscribers == 0
    # the signalling then takes alice out; bob's tracks end (BYE from the stopped senders)
    await harness.room.remove("alice")
    assert harness.room.legs() == []
    await wait_until(lambda: all(r.ended for r in b.received), what="bob's tracks to end")


async def test_reoffers_keep_a_browsers_payload_types_and_extension_ids(
    harness: Harness,
) -> None:
    """aiortc alone would re-offer with its own numbering, which Chromium rejects."""
    a = await harness.join("alice", decode_video=False, browser_numbering=True)
    b = await harness.join("bob", decode_video=False, browser_numbering=True)
    initial = {p.pid: p.server.localDescription.sdp for p in (a, b)}
    await harness.room.admit("alice", a.server, a.publisher)
    await harness.room.admit("bob", b.server, b.publisher)
    await wait_until(
        lambda: all(any(r.frames >= 5 for r in p.incoming("video")) for p in (a, b)),
        what="video both ways with browser numbering",
    )
    assert harness.offers
    for offer in harness.offers:
        assert_bundle_numbering_consistent(offer)
        parsed = sdp.SessionDescription.parse(offer)
        for media in parsed.media:
            pts = {c.mimeType.lower(): c.payloadType for c in media.rtp.codecs}
            ids = {e.uri.rsplit(":", 1)[-1]: e.id for e in media.rtp.headerExtensions}
            # the browser's numbers, on old and new m-lines alike
            assert pts.get("audio/opus", 111) == 111
            assert pts.get("video/vp8", 96) == 96
            assert ids["mid"] == 4
    # the m-lines of the first negotiation are re-offered unchanged
    for p in (a, b):
        first = sdp.SessionDescription.parse(initial[p.pid]).media
        now = sdp.SessionDescription.parse(p.server.localDescription.sdp).media
        for old, new in zip(first, now, strict=False):
            assert [c.payloadType for c in old.rtp.codecs] == [
                c.payloadType for c in new.rtp.codecs
            ]
            assert old.rtp.headerExtensions == new.rtp.headerExtensions


async def test_admit_skips_a_member_that_hung_up_before_remove(harness: Harness) -> None:
    a = await harness.join("alice", decode_video=False)
    b = await harness.join("bob", decode_video=False)
    c = await harness.join("cid", publish=False)
    await harness.room.admit("alice", a.server, a.publisher)
    await harness.room.admit("bob", b.server, b.publisher)
    await b.server.close()  # bob's connection died; the signalling has not removed him yet
    await harness.room.admit("cid", c.server, c.publisher)
    await wait_until(lambda: any(r.frames >= 3 for r in c.incoming("video")), what="cid sees")
    assert {leg.publisher_id for leg in harness.room.legs(viewer_id="cid")} == {"alice"}
    closed = create_peer_connection(loopback=True)
    await closed.close()
    with pytest.raises(ValueError, match="closed"):
        await harness.room.admit("dan", closed, Publisher("dan", closed))
    await harness.room.remove("bob")


async def test_removed_participant_can_be_admitted_again(harness: Harness) -> None:
    """Re-verification: taken out (pc stays up, back to the lobby), then let back in."""
    a = await harness.join("alice", decode_video=False)
    b = await harness.join("bob", decode_video=False)
    await harness.room.admit("alice", a.server, a.publisher)
    await harness.room.admit("bob", b.server, b.publisher)
    await wait_until(lambda: any(r.frames >= 3 for r in b.incoming("video")), what="first")
    negotiated = len(harness.negotiations)
    await harness.room.remove("alice")
    await wait_until(lambda: all(r.ended for r in b.received), what="first legs to end")
    # her pc is still up (back in the lobby): it was renegotiated too
    assert "alice" in harness.negotiations[negotiated:]

    await harness.room.admit("alice", a.server, a.publisher)
    await wait_until(
        lambda: any(r.frames >= 3 and not r.ended for r in b.incoming("video")),
        what="bob to see alice again",
    )
    assert len(b.incoming("video")) == 2  # a new m-line; the old one stays inactive
