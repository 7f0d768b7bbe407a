"""Blendshape names and the scores liveness reads, free of model imports.

The gate and the liveness state machines import this (they never load models); the
scores themselves come from :mod:`.landmarker`.
"""

from __future__ import annotations

import numpy as np

# Output order of the blendshape graph (ARKit names; "Left" is the person's own left).
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight",
    "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft",
    "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)  # fmt: skip
BLENDSHAPE_INDEX: dict[str, int] = {name: i for i, name in enumerate(BLENDSHAPE_NAMES)}


EYE_BLINK = (BLENDSHAPE_INDEX["eyeBlinkLeft"], BLENDSHAPE_INDEX["eyeBlinkRight"])
MOUTH_SMILE = (BLENDSHAPE_INDEX["mouthSmileLeft"], BLENDSHAPE_INDEX["mouthSmileRight"])
JAW_OPEN = BLENDSHAPE_INDEX["jawOpen"]


def blink_score(scores: np.ndarray) -> float:
    """Both eyes' closure (0 open, 1 shut): a blink closes both."""
    return float(scores[list(EYE_BLINK)].mean())


def smile_score(scores: np.ndarray) -> float:
    return float(scores[list(MOUTH_SMILE)].mean())


def jaw_open_score(scores: np.ndarray) -> float:
    return float(scores[JAW_OPEN])
