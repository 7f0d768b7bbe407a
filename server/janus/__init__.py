"""Janus VideoRoom as the media plane for rooms configured so (docs/janus.md).

``protocol`` builds and checks requests (no I/O), ``client`` carries them over
Janus's HTTP API, ``plane`` keeps rooms, one-time passes, removal and the sweep.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..media_settings import MediaSettings
from .plane import JanusPass, JanusPlane, stable_placement
from .protocol import JanusError, Member

if TYPE_CHECKING:
    from ..audit import AuditTrail
    from ..cluster.bridge import ClusterBridge

__all__ = ["JanusError", "JanusPass", "JanusPlane", "Member", "janus_plane"]


def janus_plane(
    media: MediaSettings, audit: AuditTrail, cluster: ClusterBridge | None
) -> JanusPlane | None:
    """The server's Janus plane (None without ``janus_urls``): rooms placed by the
    cluster's registry when there is one, intruders the sweep kicks audited."""
    if not media.urls:
        return None

    def intruder(room_id: str, member: Member) -> None:
        details = {"feed": member.feed, "display": member.display[:64]}
        audit.room_event("janus.intruder_kicked", details, room_id, None)

    place = cluster.node.registry.janus_instance if cluster else stable_placement
    return JanusPlane(media, on_intruder=intruder, placement=place)
