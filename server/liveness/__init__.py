"""Liveness: randomised active challenges and passive anti-spoofing (docs/liveness.md).

Pure, sans-IO building blocks fed per-frame :class:`LivenessSample` objects with the
time passed in; the gate (``server/gate.py``) drives them, ``server/verify.py`` builds
the samples in the executor, ``python -m server.liveness eval`` measures them.
"""

from .challenge import (
    PROMPTS,
    ActiveConfig,
    Baseline,
    Challenge,
    ChallengeAction,
    StepOutcome,
    StepStatus,
    draw_actions,
)
from .cues import PixelCues, pixel_cues
from .passive import PassiveCheck, PassiveConfig, PassiveVerdict
from .sample import LivenessPolicy, LivenessSample, sample_from_face

__all__ = [
    "PROMPTS",
    "ActiveConfig",
    "Baseline",
    "Challenge",
    "ChallengeAction",
    "LivenessPolicy",
    "LivenessSample",
    "PassiveCheck",
    "PassiveConfig",
    "PassiveVerdict",
    "PixelCues",
    "StepOutcome",
    "StepStatus",
    "draw_actions",
    "pixel_cues",
    "sample_from_face",
]
