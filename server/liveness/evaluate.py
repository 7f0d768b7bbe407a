"""Evaluate the liveness checks on a folder of clips and stills (``python -m server.liveness``).

Every clip in ``DIR/video_cases.csv`` is decoded, sampled as the gate samples
(``--fps``, default 5), analysed by the real face engine and fed to
:class:`PassiveCheck`; the stills in ``DIR/spoof/`` are judged on their single frame
(pixel cues only). Clips whose ``video_observations.json`` entry lists observed actions
(blinks, head turns) are also run through an active :class:`Challenge` scheduled from
those actions, looping the clip as the tests do and sampling it as the server's sampler
would (``--fps``, raised during expression steps). Prints APCER per attack type and
BPCER (ISO/IEC 30107-3 style: attacks accepted / bona fide refused) and each case's
verdict and deciding cue.
"""

from __future__ import annotations

import csv
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from ..face.engine import FaceEngine
from ..face.imageio import decode_image
from ..rtc.sampler import SamplerClock
from .challenge import ActiveConfig, Challenge, ChallengeAction, StepStatus
from .gate_eval import species_of
from .passive import PassiveCheck, PassiveConfig
from .sample import LivenessSample, sample_from_face

STILL_KINDS = {"print": "spoof_print", "screen": "spoof_screen", "live": "bona_fide_still"}


@dataclass
class CaseResult:
    case: str
    kind: str  # bona_fide | replay_attack | spoof_print | spoof_screen | bona_fide_still
    frames: int
    face_frames: int
    passive: str  # live | attack | undecided | no_face
    cue: str | None
    score: float
    cues: dict[str, float] = field(default_factory=dict)
    active: str | None = None  # pass | fail | None (not scheduled)
    active_actions: list[str] = field(default_factory=list)
    active_detail: str = ""

    @property
    def attack(self) -> bool:
        return not self.kind.startswith("bona_fide")

    @property
    def accepted(self) -> bool:
        """Passive acceptance: a face was seen and no cue fired."""
        return self.passive == "live"


def sample_clip(
    engine: FaceEngine, path: Path, fps: float
) -> tuple[int, list[tuple[float, int, LivenessSample | None]]]:
    """(decoded frames, [(time, faces, sample)]) at ``fps`` from the clip."""
    out: list[tuple[float, int, LivenessSample | None]] = []
    decoded = 0
    next_t = 0.0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            decoded += 1
            t = float(frame.time or 0.0)
            if t + 1e-6 < next_t:
                continue
            next_t = t + 1.0 / fps
            rgb = frame.to_ndarray(format="rgb24")
            faces = engine.analyse(rgb, mesh=True, embed=False).faces
            sample = sample_from_face(rgb, faces[0]) if len(faces) == 1 else None
            out.append((t, len(faces), sample))
    return decoded, out


def observed_actions(obs: dict[str, Any]) -> list[ChallengeAction]:
    """Actions the clip is estimated to perform (blinks; head turns from the yaw ratio)."""
    actions: list[ChallengeAction] = []
    if obs.get("blink_times_s"):
        actions.append(ChallengeAction.BLINK)
    lo, hi = obs.get("yaw_ratio_min"), obs.get("yaw_ratio_max")
    if isinstance(lo, int | float) and isinstance(hi, int | float):
        if hi >= 0.75:
            actions.append(ChallengeAction.TURN_LEFT)
        if lo <= 0.25:
            actions.append(ChallengeAction.TURN_RIGHT)
    return actions


def run_active(
    samples: list[tuple[float, int, LivenessSample | None]],
    actions: list[ChallengeAction],
    config: ActiveConfig,
    base_fps: float,
) -> tuple[str, str]:
    """Feed the looped clip to a challenge of ``actions``; ('pass'|'fail', detail).

    ``samples`` are the clip's analysed frames (every frame, or a denser sampling than
    the gate's); the challenge sees the ones the server's sampler would take at
    ``base_fps`` raised as the challenge asks (``Challenge.sample_fps``: expression
    steps), by the sampler's own rule (``SamplerClock``). The baseline is the first
    usable frames at ``base_fps``, as the gate's identity frames are.
    """
    if sum(1 for _, n, s in samples if n == 1 and s is not None) < config.baseline_frames + 1:
        return "fail", "no usable face"
    times = [t for t, _, _ in samples]
    steps = np.diff(times) if len(times) > 1 else np.array([1.0 / base_fps])
    clock = SamplerClock(times, times[-1] + float(np.median(steps)))
    challenge = Challenge(tuple(actions), config)
    baseline: list[LivenessSample] = []
    limit = config.step_time_s * len(actions) + 1.0
    started: float | None = None
    loop = 0

    def rate() -> float:  # the gate's: base until the challenge runs, then what it asks
        return challenge.sample_fps(base_fps) if started is not None else base_fps

    for n, now in clock.frames(times[0], rate):
        _, faces, sample = samples[n % len(samples)]
        if started is not None and now - started > limit:
            break
        if n // len(samples) != loop:
            loop = n // len(samples)
            challenge._last = None  # the loop's jump back is the clip's seam, not a swap
        if faces != 1 or sample is None:
            continue
        if started is None:
            baseline.append(sample)
            if len(baseline) == config.baseline_frames:
                challenge.start(baseline, now)
                started = now
            continue
        outcome = challenge.feed(sample, now)
        if outcome.status is StepStatus.DONE:
            return "pass", ""
        if outcome.status not in (StepStatus.WAITING, StepStatus.PASSED):
            return "fail", f"{outcome.status.value}:{outcome.detail}"
    return "fail", "timed_out"


def judge(check: PassiveCheck) -> tuple[str, str | None, float, dict[str, float]]:
    verdict = check.verdict()
    if verdict.live is None:
        return "undecided", verdict.cue, verdict.score, verdict.cues
    return ("live" if verdict.live else "attack"), verdict.cue, verdict.score, verdict.cues


def evaluate(
    data: Path, engine: FaceEngine, fps: float = 5.0, passive: PassiveConfig | None = None
) -> dict[str, Any]:
    passive = passive or PassiveConfig()
    active_cfg = ActiveConfig()
    cases: list[CaseResult] = []
    obs_path = data / "video_observations.json"
    observations: dict[str, Any] = (
        json.loads(obs_path.read_text()).get("videos", {}) if obs_path.exists() else {}
    )
    ms_per_frame: list[float] = []
    with (data / "video_cases.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        rel = row["video"]
        kind = species_of(row["presentation"])  # anything but bona_fide is an attack
        t0 = time.perf_counter()
        decoded, samples = sample_clip(engine, data / rel, fps)
        ms_per_frame.append((time.perf_counter() - t0) * 1000 / max(len(samples), 1))
        check = PassiveCheck(passive)
        for t, n, sample in samples:
            if n == 1 and sample is not None:
                check.add(sample, t)
        face_frames = sum(1 for _, n, s in samples if n == 1 and s is not None)
        status, cue, score, cues = judge(check) if face_frames else ("no_face", None, 0.0, {})
        result = CaseResult(rel, kind, len(samples), face_frames, status, cue, score, cues)
        actions = observed_actions(observations.get(rel, {}))
        if actions:
            # Dense enough for the expression steps' rate; the challenge takes from it
            # what the sampler would at ``fps`` (raised during expression steps).
            dense = sample_clip(engine, data / rel, active_cfg.expression_fps * 2)[1]
            result.active_actions = [a.value for a in actions[:3]]
            result.active, result.active_detail = run_active(
                dense, actions[:3], active_cfg, fps
            )
        cases.append(result)
    for still in sorted((data / "spoof").glob("*.*")):
        kind = next((k for key, k in STILL_KINDS.items() if key in still.stem), "spoof_unknown")
        rgb = decode_image(still.read_bytes())
        faces = engine.analyse(rgb, mesh=True, embed=False).faces
        still_cfg = {**passive.__dict__, "min_frames": 1, "temporal": False}  # pixels only
        check = PassiveCheck(PassiveConfig(**still_cfg))
        if len(faces) == 1:
            sample = sample_from_face(rgb, faces[0])
            assert sample is not None
            check.add(sample, 0.0)
            status, cue, score, cues = judge(check)
        else:
            status, cue, score, cues = "no_face", None, 0.0, {}
        seen = int(len(faces) == 1)
        cases.append(CaseResult(f"spoof/{still.name}", kind, 1, seen, status, cue, score, cues))
    return summarise(cases, ms_per_frame)


def summarise(cases: list[CaseResult], ms_per_frame: list[float]) -> dict[str, Any]:
    by_type: dict[str, list[CaseResult]] = defaultdict(list)
    for case in cases:
        if case.attack:
            by_type[case.kind].append(case)
    apcer = {k: sum(c.accepted for c in v) / len(v) for k, v in sorted(by_type.items())}
    bona = [c for c in cases if not c.attack]
    bpcer = sum(not c.accepted for c in bona) / len(bona) if bona else 0.0
    active_runs = [c for c in cases if c.active is not None]
    return {
        "apcer": apcer,
        "apcer_max": max(apcer.values(), default=0.0),
        "bpcer": bpcer,
        "active": {
            "bona_fide_pass": sum(c.active == "pass" for c in active_runs if not c.attack),
            "bona_fide_runs": sum(1 for c in active_runs if not c.attack),
            "attack_pass": sum(c.active == "pass" for c in active_runs if c.attack),
            "attack_runs": sum(1 for c in active_runs if c.attack),
        },
        "analysis_ms_per_sampled_frame": float(np.median(ms_per_frame)) if ms_per_frame else 0.0,
        "per_case": [
            {
                "case": c.case,
                "kind": c.kind,
                "frames": c.frames,
                "face_frames": c.face_frames,
                "passive": c.passive,
                "accepted": c.accepted,
                "cue": c.cue,
                "score": round(c.score, 3),
                "cues": {k: round(v, 3) for k, v in c.cues.items()},
                "active": c.active,
                "active_actions": c.active_actions,
                "active_detail": c.active_detail,
            }
            for c in cases
        ],
    }


def print_report(report: dict[str, Any]) -> None:
    head = f"{'case':44s} {'kind':16s} {'faces':>9s} {'passive':10s} {'cue':8s} {'score':>6s}"
    print(f"{head}  active")
    for c in report["per_case"]:
        active = "-" if c["active"] is None else f"{c['active']} {','.join(c['active_actions'])}"
        if c["active_detail"]:
            active += f" ({c['active_detail']})"
        print(
            f"{c['case']:44s} {c['kind']:16s} {c['face_frames']:>4d}/{c['frames']:<4d} "
            f"{c['passive']:10s} {str(c['cue'] or '-'):8s} {c['score']:6.2f}  {active}"
        )
    print()
    for kind, value in report["apcer"].items():
        print(f"APCER {kind:16s} {value:.3f}")
    print(f"BPCER {'(bona fide)':16s} {report['bpcer']:.3f}")
    act = report["active"]
    print(
        f"active: bona fide passed {act['bona_fide_pass']}/{act['bona_fide_runs']}, "
        f"attacks passed {act['attack_pass']}/{act['attack_runs']}"
    )
