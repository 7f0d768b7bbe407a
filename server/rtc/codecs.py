"""Codec choices per leg: the publisher's codec decides every viewer leg's codec.

Why: encoded forwarding never transcodes, so a viewer leg must be negotiated with the
exact codec the publisher sends (aiortc's sender only re-packetises what it gets,
using the first negotiated codec of its m-line). We therefore offer viewers a single
codec per forwarded m-line (plus RTX for video, so NACK/RTX works on the viewer leg).

Publisher legs: VP8 and H.264 (packetization-mode 1, constrained baseline) both
forward. The default policy is still to have browsers publish VP8, because every
browser decodes VP8 while H.264 support varies by browser build;
:func:`restrict_answer_codecs` does that on the answer to the browser's first offer.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiortc import RTCPeerConnection
from aiortc.codecs import is_rtx
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.rtcrtpsender import RTCRtpSender

DEFAULT_VIDEO_CODECS = ("video/VP8",)


def codec_capability(codec: RTCRtpCodecParameters) -> RTCRtpCodecCapability:
    """The capability (as accepted by ``setCodecPreferences``) matching ``codec``."""
    return RTCRtpCodecCapability(
        mimeType=codec.mimeType,
        clockRate=codec.clockRate,
        channels=codec.channels,
        parameters=dict(codec.parameters),
    )


def forwarding_preferences(codec: RTCRtpCodecParameters) -> list[RTCRtpCodecCapability]:
    """Codec preferences for a viewer m-line that forwards a stream sent in ``codec``.

    The capability must equal one of aiortc's own (same parameters); the publisher's
    negotiated codec is a copy of aiortc's entry, so it does. RTX is added for video.
    """
    kind = codec.mimeType.split("/")[0].lower()
    wanted = codec_capability(codec)
    preferences: list[RTCRtpCodecCapability] = []
    rtx: RTCRtpCodecCapability | None = None
    capabilities = RTCRtpSender.getCapabilities(kind)
    for capability in capabilities.codecs:
        if is_rtx(capability):
            rtx = capability
        elif _same_codec(capability, wanted) and not preferences:
            preferences.append(capability)
    if not preferences:
        raise ValueError(f"codec {codec.mimeType} {codec.parameters} cannot be forwarded")
    if kind == "video" and rtx is not None:
        preferences.append(rtx)
    return preferences


def _same_codec(a: RTCRtpCodecCapability, b: RTCRtpCodecCapability) -> bool:
    return (
        a.mimeType.lower() == b.mimeType.lower()
        and a.clockRate == b.clockRate
        and dict(a.parameters) == dict(b.parameters)
    )


def restrict_answer_codecs(
    pc: RTCPeerConnection, video: Iterable[str] = DEFAULT_VIDEO_CODECS
) -> None:
    """Limit the video codecs of the answer we are about to create to ``video``.

    Call between ``setRemoteDescription(offer)`` and ``createAnswer()`` on a
    publisher's first negotiation. ``setCodecPreferences`` cannot do this in aiortc:
    the transceivers are created inside ``setRemoteDescription`` and preferences are
    applied there and in ``createOffer``, not in ``createAnswer``. So this filters the
    transceiver's negotiated list (internal ``RTCRtpTransceiver._codecs``) in place,
    keeping the RTX entries of the kept codecs. If the offer has none of the wanted
    codecs the list is left alone (the peer then publishes what it offered, which
    forwarding supports as long as aiortc supports it).
    """
    allowed = {m.lower() for m in video}
    for transceiver in pc.getTransceivers():
        if transceiver.kind != "video" or transceiver.currentDirection is not None:
            continue
        codecs: list[RTCRtpCodecParameters] = transceiver._codecs
        kept = [c for c in codecs if not is_rtx(c) and c.mimeType.lower() in allowed]
        if not kept:
            continue
        kept_pts = {c.payloadType for c in kept}
        transceiver._codecs = [
            c for c in codecs if c in kept or (is_rtx(c) and c.parameters.get("apt") in kept_pts)
        ]
