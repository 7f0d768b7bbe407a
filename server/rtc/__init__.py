"""WebRTC media path: peer connections, encoded forwarding, the SFU room.

Public API (see ``docs/rtc.md``):

* :func:`create_peer_connection` - server pc factory (no STUN, max-bundle, re-offers
  that keep the browser's payload types / extension ids, optional loopback).
* :class:`Publisher` - a participant's tapped camera/mic: decoded video for the gate
  while decoding is on, encoded fan-out to viewers, keyframe requests.
* :class:`SfuRoom` - admitted participants and who receives whom; renegotiates
  through a callback.
* :func:`restrict_answer_codecs` - have a browser publish VP8 (call before
  ``createAnswer``).
"""

from .codecs import restrict_answer_codecs
from .decode import DecodedVideoTrack
from .forward import Publisher, PublisherStats
from .forwarded import ForwardedTrack
from .negotiation import Renegotiate
from .peer import ServerPeerConnection, create_peer_connection
from .room import Leg, SfuRoom, stream_id_for

__all__ = [
    "DecodedVideoTrack",
    "ForwardedTrack",
    "Leg",
    "Publisher",
    "PublisherStats",
    "Renegotiate",
    "ServerPeerConnection",
    "SfuRoom",
    "create_peer_connection",
    "restrict_answer_codecs",
    "stream_id_for",
]
