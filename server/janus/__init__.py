"""Janus VideoRoom as the media plane for rooms configured so (docs/janus.md).

``protocol`` builds and checks requests (no I/O), ``client`` carries them over
Janus's HTTP API, ``plane`` keeps rooms, one-time passes, removal and the sweep.
"""

from __future__ import annotations

from .plane import JanusPass, JanusPlane
from .protocol import JanusError, Member

__all__ = ["JanusError", "JanusPass", "JanusPlane", "Member"]
