"""The gate's light policies, sans-IO: a real clip goes through the real face checker and
the gate; once the gate sends ``Flash``, the following frames are lit along that
sequence by the SIMULATED reflection (tests/liveness/reflect.py), or not at all.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from server import gate as g
from server.face.engine import FaceEngine
from server.liveness import LivenessPolicy
from server.liveness.flash import FlashSequence
from server.verify import CheckTarget, FaceChecker

from .reflect import Camera, Reflection, read_clip

CLIP = "liveportrait_d9.mp4"
FPS = 8.0


def run_gate(
    engine: FaceEngine, faces_dir: Path, policy: LivenessPolicy, *, lit: bool, seed: int = 5
) -> tuple[list[g.Action], FlashSequence | None]:
    """Drive a gate with the clip at ``FPS``; returns every action and the sequence sent."""
    clip = read_clip(faces_dir / "videos" / CLIP, 14.0)
    first = engine.analyse(clip[0][1], mesh=False, embed=True).faces[0]
    assert first.embedding is not None
    checker = FaceChecker(engine, CheckTarget("p", {"p": first.embedding[None, :]}, 0.6))
    gate = g.Gate(g.GatePolicy(liveness=policy), g.LockoutTracker(), rng=random.Random(seed))
    camera = Camera(Reflection(strength=0.08, lag_s=0.4), random.Random(seed))
    actions = gate.handle(g.Start(0.0))
    sequence: FlashSequence | None = None
    start = 0.0
    clip_times = np.array([t for t, _ in clip])
    t = 0.05
    while t < clip[-1][0] and not any(isinstance(a, g.Admitted | g.Refused) for a in actions):
        rgb = clip[int(np.searchsorted(clip_times, t, side="right")) - 1][1]
        faces = engine.analyse(rgb, mesh=False, embed=False).faces
        box = faces[0].box if faces else (0.0, 0.0, 1.0, 1.0)
        now, shot = camera.shoot(rgb, box, t, sequence if lit else None, start)
        needs = gate.frame_needs  # as the server's sampler asks: light only when collected
        obs = checker.observe(shot, embed=needs.embed, light=needs.light)
        new = gate.handle(g.FrameAnalysed(now, obs))
        for action in new:
            if isinstance(action, g.Flash):
                sequence = FlashSequence(action.steps)
                # The page shows the first colour lead_s after the gate's message; the
                # camera's clock is the gate's minus the latency Camera adds back.
                start = now + action.lead_s - camera.reflection.lag_s
        actions += new
        t += 1 / FPS
    return actions, sequence


def test_light_policy_admits_a_face_lit_by_its_sequence(
    engine: FaceEngine, faces_dir: Path
) -> None:
    actions, sequence = run_gate(engine, faces_dir, LivenessPolicy.LIGHT, lit=True)
    flashes = [a for a in actions if isinstance(a, g.Flash)]
    assert len(flashes) == 1 and sequence is not None
    assert flashes[0].sample_fps >= FPS and flashes[0].lead_s > 0
    assert sequence.max_changes_per_s() <= 3
    # No pose prompt under `light`: the flash, then "look at the camera", then admitted.
    assert [a.action for a in actions if isinstance(a, g.Prompt)] == [None]
    assert isinstance(actions[-1], g.Admitted), actions[-3:]


def test_light_policy_refuses_the_same_clip_unlit(engine: FaceEngine, faces_dir: Path) -> None:
    actions, _ = run_gate(engine, faces_dir, LivenessPolicy.LIGHT, lit=False)
    refused = [a for a in actions if isinstance(a, g.Refused)]
    assert not any(isinstance(a, g.Admitted) for a in actions)
    assert len(refused) == 1 and refused[0].reason is g.Reason.LIVENESS
    assert refused[0].detail in ("light:no_answer", "light:too_weak"), refused[0]


def test_active_light_policy_goes_on_to_the_pose_challenge(
    engine: FaceEngine, faces_dir: Path
) -> None:
    actions, _ = run_gate(engine, faces_dir, LivenessPolicy.ACTIVE_LIGHT_PASSIVE, lit=True)
    kinds = [type(a) for a in actions]
    assert g.Flash in kinds
    after = actions[kinds.index(g.Flash) :]
    prompts = [a for a in after if isinstance(a, g.Prompt)]
    # The light check passed: the first pose prompt follows the flash.
    assert prompts and prompts[0].action is not None
    assert not any(isinstance(a, g.Refused) and a.detail.startswith("light") for a in actions)


@pytest.mark.parametrize(
    ("policy", "without"),
    [
        ("light", "active"),
        ("light+passive", "active+passive"),
        ("active+light", "active"),
        ("active+light+passive", "active+passive"),
        ("active+passive", "active+passive"),
        ("off", "off"),
    ],
)
def test_rooms_that_never_flash_run_the_pose_challenge_instead(policy: str, without: str) -> None:
    parsed = LivenessPolicy.parse(policy)
    assert parsed.without_light().value == without
    assert not parsed.without_light().light
    assert parsed.light == ("light" in policy)
