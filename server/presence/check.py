"""One presence check on one decoded keyframe (runs in the hub's executor).

Unlike the gate's ``FaceChecker.observe`` this embeds *every* face in the frame:
presence asks "is the participant among the faces?" and "how many are there?",
so a second face does not hide the first. The room's engine setting applies as at the
gate: ``templates`` maps engine -> the person's templates and ``scorer`` combines the
engines (a bare array means dlib templates, as before).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..face.engine import FaceEngine
from ..face.matcher import verify
from ..face.multimatch import has_engines, verify_engines
from ..face.scoring import DLIB_SCORER, Scorer
from .monitor import PresenceCheck


def presence_check(
    engine: FaceEngine,
    rgb: np.ndarray,
    templates: np.ndarray | Mapping[str, np.ndarray],
    threshold: float,
    now: float,
    *,
    scorer: Scorer = DLIB_SCORER,
) -> PresenceCheck:
    """Faces in the frame and the best distance of any of them to ``templates``."""
    per_engine = templates if isinstance(templates, Mapping) else {"dlib": templates}
    usable = has_engines(per_engine, scorer)
    analysis = engine.analyse(rgb, mesh=False, embed=usable, engines=scorer.engines)
    best: float | None = None
    matched = False
    for face in analysis.faces:
        if not usable or any(e not in face.embeddings for e in scorer.engines):
            continue
        probes = {e: face.embeddings[e][None, :] for e in scorer.engines}
        if scorer.mode == "dlib":
            result = verify(probes["dlib"], per_engine["dlib"], threshold=threshold)
        else:
            result = verify_engines(probes, per_engine, scorer, threshold=threshold)
        best = result.distance if best is None else min(best, result.distance)
        matched = matched or result.accepted
    return PresenceCheck(now, len(analysis.faces), best, matched)
