"""Make aiortc's server-side re-offers acceptable to browsers.

Why this exists: the room adds m-lines by having the *server* offer to a peer whose
first negotiation the *browser* offered. aiortc's ``createOffer`` rebuilds every
m-line from aiortc's own defaults: payload types (opus 96, VP8 97, ...) and header
extension ids (mid 1, audio-level 2, abs-send-time 3). A browser numbers them its
own way (Chromium: opus 111, VP8 96, rtx 97, ...; ssrc-audio-level 1, ..., mid 4),
and its first offer set the numbering for the whole BUNDLE group. Chromium then
rejects the re-offer: "RTP extension ID reassignment not supported", or a payload
type collision inside the bundle. (aiortc issue #686; in-process aiortc clients
never notice because both sides use the same defaults.)

What we do, in :func:`rewrite_offer`, right after aiortc's ``createOffer``:

* m-lines already negotiated keep exactly their negotiated codecs and header
  extensions (aiortc had overwritten the transceiver's lists; we restore them);
* new m-lines are renumbered into the bundle's numbering: a codec or extension the
  peer already uses (or ever offered) keeps the peer's number, anything else gets a
  number nobody in the bundle has used;
* the SDP is regenerated from those lists with aiortc's own SDP writer.

``PayloadRegistry`` remembers every payload type and extension id the peer ever
declared (``setRemoteDescription`` feeds it), so a number the peer once bound to
another codec, even one we declined, is never reused for something else.

aiortc internals used: ``RTCRtpTransceiver._codecs`` / ``_headerExtensions`` (the
lists aiortc writes each m-line from), ``RTCRtpTransceiver._get_mline_index``,
``aiortc.sdp.SessionDescription`` (parse and serialise).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from aiortc import RTCRtpTransceiver, RTCSessionDescription, sdp
from aiortc.codecs import is_rtx
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters

DYNAMIC_PAYLOAD_TYPES = list(range(96, 128)) + list(range(35, 64))
EXTENSION_IDS = range(1, 15)

CodecKey = tuple[str, int, str, str]


def codec_key(codec: RTCRtpCodecParameters, apt: int | None = None) -> CodecKey:
    """What makes two codec entries "the same codec" for payload-type purposes.

    RTX is identified by the payload type it repairs (``apt``, already in the bundle's
    numbering); H.264 by packetization mode and profile; others by name, clock, channels.
    """
    mime = codec.mimeType.lower()
    if is_rtx(codec):
        base = apt if apt is not None else codec.parameters.get("apt")
        return (mime, codec.clockRate, "apt", str(base))
    if mime == "video/h264":
        params = codec.parameters
        return (
            mime,
            codec.clockRate,
            str(params.get("packetization-mode", "0")),
            str(params.get("profile-level-id", "42e01f")).lower(),
        )
    return (mime, codec.clockRate, str(codec.channels or 1), "")


@dataclass
class PayloadRegistry:
    """Per peer connection: which numbers the bundle has bound to what."""

    payload_types: dict[int, CodecKey] = field(default_factory=dict)
    extension_ids: dict[int, str] = field(default_factory=dict)

    def learn_description(self, description: str) -> None:
        """Record the numbering a (remote) SDP declares."""
        parsed = sdp.SessionDescription.parse(description)
        for media in parsed.media:
            if media.kind in ("audio", "video"):
                self.learn(media.rtp.codecs, media.rtp.headerExtensions)

    def learn(
        self,
        codecs: Iterable[RTCRtpCodecParameters],
        extensions: Iterable[RTCRtpHeaderExtensionParameters],
    ) -> None:
        for codec in codecs:
            if codec.payloadType is not None:
                self.payload_types.setdefault(codec.payloadType, codec_key(codec))
        for extension in extensions:
            self.extension_ids.setdefault(extension.id, extension.uri)


class _Numbering:
    """Allocates payload types and extension ids for new m-lines of one offer."""

    def __init__(self, registry: PayloadRegistry) -> None:
        self._pt_owner = dict(registry.payload_types)
        self._pt_for: dict[CodecKey, int] = {}
        for pt, key in registry.payload_types.items():
            self._pt_for.setdefault(key, pt)
        self._ext_owner = dict(registry.extension_ids)
        self._ext_for = {uri: ext_id for ext_id, uri in registry.extension_ids.items()}

    def payload_type(self, codec: RTCRtpCodecParameters, apt: int | None) -> int:
        assert codec.payloadType is not None
        key = codec_key(codec, apt)
        if key in self._pt_for:
            return self._pt_for[key]
        if codec.payloadType not in DYNAMIC_PAYLOAD_TYPES:
            return codec.payloadType  # static assignment (PCMU 0, G722 9, ...)
        candidates = [codec.payloadType] + DYNAMIC_PAYLOAD_TYPES
        pt = next((p for p in candidates if p not in self._pt_owner), None)
        if pt is None:
            raise ValueError("no free RTP payload type left in this bundle")
        self._pt_owner[pt] = key
        self._pt_for[key] = pt
        return pt

    def extension_id(self, uri: str, preferred: int) -> int:
        if uri in self._ext_for:
            return self._ext_for[uri]
        candidates: list[int] = [preferred, *EXTENSION_IDS]
        ext_id = next((i for i in candidates if i not in self._ext_owner), None)
        if ext_id is None:
            raise ValueError("no free RTP header extension id left in this bundle")
        self._ext_owner[ext_id] = uri
        self._ext_for[uri] = ext_id
        return ext_id

    def renumber(self, codecs: Sequence[RTCRtpCodecParameters]) -> list[RTCRtpCodecParameters]:
        mapping: dict[int, int] = {}
        out: list[RTCRtpCodecParameters] = []
        for codec in codecs:
            if not is_rtx(codec):
                assert codec.payloadType is not None
                mapping[codec.payloadType] = self.payload_type(codec, None)
                out.append(replace(codec, payloadType=mapping[codec.payloadType]))
        for codec in codecs:
            if is_rtx(codec):
                apt = codec.parameters.get("apt")
                if not isinstance(apt, int) or apt not in mapping:
                    continue
                pt = self.payload_type(codec, mapping[apt])
                params = {**codec.parameters, "apt": mapping[apt]}
                out.append(replace(codec, payloadType=pt, parameters=params))
        return out


def rewrite_offer(
    offer: RTCSessionDescription,
    transceivers: Sequence[RTCRtpTransceiver],
    negotiated: dict[
        RTCRtpTransceiver, tuple[list[RTCRtpCodecParameters], list[RTCRtpHeaderExtensionParameters]]
    ],
    registry: PayloadRegistry,
) -> RTCSessionDescription:
    """Restore negotiated m-lines, renumber new ones, and rewrite the offer's SDP.

    :param negotiated: codecs and extensions of already-negotiated transceivers, as
        they were before ``createOffer`` overwrote them.
    """
    if not negotiated:
        return offer  # first offer: aiortc's numbering defines the bundle
    for transceiver, (codecs, extensions) in negotiated.items():
        transceiver._codecs = codecs
        transceiver._headerExtensions = extensions
        registry.learn(codecs, extensions)
    numbering = _Numbering(registry)
    for transceiver in transceivers:
        if transceiver in negotiated or transceiver.stopped:
            continue
        transceiver._codecs = numbering.renumber(transceiver._codecs)
        transceiver._headerExtensions = [
            RTCRtpHeaderExtensionParameters(id=numbering.extension_id(e.uri, e.id), uri=e.uri)
            for e in transceiver._headerExtensions
        ]
    # createOffer gave every transceiver its m-line index (new ones get their mid
    # only in setLocalDescription)
    by_index = {t._get_mline_index(): t for t in transceivers if not t.stopped}
    description = sdp.SessionDescription.parse(offer.sdp)
    description.type = "offer"
    for index, media in enumerate(description.media):
        owner = by_index.get(index)
        if media.kind not in ("audio", "video") or owner is None:
            continue
        media.rtp.codecs = owner._codecs
        media.fmt = [c.payloadType for c in owner._codecs]
        media.rtp.headerExtensions = owner._headerExtensions
    return RTCSessionDescription(sdp=str(description), type="offer")
