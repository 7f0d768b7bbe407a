"""Small helpers shared by test packages."""

from __future__ import annotations

import random

from server.liveness import ActiveConfig, ChallengeAction, draw_actions


def liveness_seed_for(*wanted: ChallengeAction) -> int:
    """The TEST-ONLY challenge seed whose draw is exactly ``wanted``."""
    for seed in range(10_000):
        if draw_actions(random.Random(seed), ActiveConfig()) == wanted:
            return seed
    raise AssertionError(f"no seed below 10000 draws {wanted}")
