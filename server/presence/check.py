"""One presence check on one decoded keyframe (runs in the hub's executor).

Unlike the gate's ``FaceChecker.observe`` this embeds *every* face in the frame:
presence asks "is the participant among the faces?" and "how many are there?",
so a second face does not hide the first.
"""

from __future__ import annotations

import numpy as np

from ..face.engine import FaceEngine
from ..face.matcher import verify
from .monitor import PresenceCheck


def presence_check(
    engine: FaceEngine, rgb: np.ndarray, templates: np.ndarray, threshold: float, now: float
) -> PresenceCheck:
    """Faces in the frame and the best distance of any of them to ``templates``."""
    analysis = engine.analyse(rgb, mesh=False, embed=True)
    best: float | None = None
    matched = False
    for face in analysis.faces:
        if face.embedding is None or len(templates) == 0:
            continue
        result = verify(face.embedding[None, :], templates, threshold=threshold)
        best = result.distance if best is None else min(best, result.distance)
        matched = matched or result.accepted
    return PresenceCheck(now, len(analysis.faces), best, matched)
