"""Continuous presence while admitted: a pure monitor and the face check it is fed by.

``monitor.PresenceMonitor`` is sans-IO like the gate (checks in, events out, time
passed in); ``check.presence_check`` turns one decoded keyframe into a
``PresenceCheck`` in the executor; the asyncio scheduling lives in
``server/participant.py``. See docs/presence.md.
"""

from __future__ import annotations

from .monitor import (
    PresenceCheck,
    PresenceConfig,
    PresenceEvent,
    PresenceMonitor,
    PresenceStats,
)

__all__ = [
    "PresenceCheck",
    "PresenceConfig",
    "PresenceEvent",
    "PresenceMonitor",
    "PresenceStats",
]
