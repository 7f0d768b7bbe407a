"""Active challenges scheduled from each shared clip's observed actions, mesh vs landmarker.

For every bona fide clip with observed actions in ``video_observations.json`` (blinks;
head turns from its yaw range, as ``python -m server.liveness eval`` derives them) a
:class:`Challenge` of those actions (at most three) is fed the clip as the server's
sampler would take it: ``--fps`` (default ``[gate] sample_fps``), raised during
expression steps to ``--expression-fps`` (default ``[liveness] expression_fps``; 0 =
never raised) by the challenge itself (``Challenge.sample_fps``), frames picked by
``server.rtc.sampler.SamplerClock``. ``--fps 0`` feeds every frame.

A recording does not answer prompts: it blinks and turns when it does, and the
challenge rightly fails a turn made before the prompted one (``wrong``) or a blink
that falls outside a step's time. Two ways to feed it:

- ``loop`` (the eval's, ``python -m server.liveness eval``): the clip from its start,
  looped like a fake camera, actions in a fixed order (blink, turn left, turn right).
  A clip passes only if its own timing happens to fit the draw.
- ``prompted`` (default): a person answering the prompts, simulated with the clip's own
  frames. After the baseline (the first frames), each step is fed the stretch of the
  clip where the clip performs that action, up to 0.8 s after it: for a blink the
  candidate times in ``video_observations.json`` (from 1 s before), for a turn the
  onsets where the clip's yaw passes the turn threshold (from the last frame, at most
  2 s before, where the head faced the camera as at the baseline: a prompted person
  starts from there); the next stretch of the same action is tried while the step is
  still open. The challenge's own rules (thresholds, closing and
  reopening, wrong turns inside the stretch, continuity, step time) decide.

Both engines run in the same process on the same frames: the 468-point mesh with the
EAR rules (``[face] landmarks = "mesh"``) and the face landmarker with blendshapes (the
default). Prints a table and writes JSON to bench/out/.

    .venv/bin/python bench/bench_active.py [--fps 4] [--expression-fps 15] [--mode prompted|loop]
        [--track]   # adds a column: the landmarker with landmark tracking ([face]
                    # track_landmarks, the default): pose steps on tracked frames, the
                    # baseline and expression steps on detector frames (FrameNeeds.detect);
                    # prompted mode only
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.config import load_settings  # noqa: E402
from server.face.engine import FaceEngine  # noqa: E402
from server.face.tracking import FaceTracker  # noqa: E402
from server.liveness import (  # noqa: E402
    ActiveConfig,
    Baseline,
    Challenge,
    ChallengeAction,
    LivenessSample,
    StepStatus,
    sample_from_face,
)
from server.liveness.challenge import EXPRESSION_ACTIONS, detect  # noqa: E402
from server.liveness.evaluate import observed_actions, run_active  # noqa: E402
from server.rtc.sampler import SamplerClock  # noqa: E402

DATA = Path(os.environ.get("VIDEOGATE_TEST_DATA", REPO.parent / "shared" / "data")) / "faces"
Track = list[tuple[float, LivenessSample]]
A = ChallengeAction


def observed(obs: dict[str, Any]) -> list[ChallengeAction]:
    """The eval's reading of the observations (``observed_actions``), at most three."""
    return observed_actions(obs)[:3]


def tracks(engines: dict[str, FaceEngine], path: Path) -> dict[str, Track]:
    """Every frame's one face, per engine (the sampling happens when it is fed). An
    engine named ``tracking`` tracks the landmarks between detector frames (every
    frame of the clip in order, so its region comes from the clip's previous frame,
    closer than the sampler's: server/face/tracking.py)."""
    out: dict[str, Track] = {name: [] for name in engines}
    trackers = {name: FaceTracker(e) for name, e in engines.items() if name == "tracking"}
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            t = float(frame.time or 0.0)
            rgb = frame.to_ndarray(format="rgb24")
            for name, engine in engines.items():
                if name in trackers:
                    found = trackers[name].analyse(rgb, t, embed=False, engines=("dlib",))
                    faces = found.faces
                else:
                    faces = engine.analyse(rgb, mesh=True, embed=False).faces
                if len(faces) == 1:
                    s = sample_from_face(rgb, faces[0], pixels=False)
                    assert s is not None
                    out[name].append((t, s))
    return out


def turn_stretches(
    track: Track, action: ChallengeAction, cfg: ActiveConfig
) -> list[tuple[float, float]]:
    """(start, onset) of each turn: the rule fires after >= 1 s without firing, starting
    from the last frame (<= 2 s before) where the head was back at its baseline yaw."""
    base = Baseline.of([s for _, s in track[: cfg.baseline_frames]])
    out: list[tuple[float, float]] = []
    last = -1e9
    for i, (t, s) in enumerate(track):
        if not detect(action, s, base, cfg):
            continue
        if t - last > 1.0:
            neutral = [
                u
                for u, p in track[:i]
                if t - 2.0 <= u and abs(p.measures.yaw - base.yaw) < cfg.wrong_turn_deg / 2
            ]
            if neutral:
                out.append((neutral[-1], t))
        last = t
    return out


def at_rate(stretch: Track, challenge: Challenge, base: float) -> Iterator[tuple[float, Any]]:
    """The frames of ``stretch`` the sampler would take (every frame when ``base`` is 0)."""
    if base <= 0:
        yield from stretch
        return
    clock = SamplerClock([t for t, _ in stretch])
    for n, _ in clock.frames(stretch[0][0], lambda: challenge.sample_fps(base)):
        yield stretch[n]


def run_prompted(
    track: Track, actions: list[ChallengeAction], blinks: list[float], cfg: ActiveConfig,
    base: float, detected: Track | None = None,
) -> tuple[str, str]:
    """Each step fed the stretches of the clip where it performs that action.
    ``detected``: the detector's track of the same clip, for the baseline (the gate's
    identity frames) and expression steps, when ``track`` is a tracking one (the gate
    asks for the detector there: ``FrameNeeds.detect``)."""
    detected = track if detected is None else detected
    if len(detected) < cfg.baseline_frames + 1:
        return "fail", "no usable face"
    challenge = Challenge(tuple(actions), cfg)
    now = detected[cfg.baseline_frames - 1][0]
    challenge.start([s for _, s in detected[: cfg.baseline_frames]], now)
    for step, action in enumerate(actions):
        source = detected if action in EXPRESSION_ACTIONS else track
        spans = (
            [(c - 1.0, c) for c in blinks]
            if action is A.BLINK
            else turn_stretches(source, action, cfg)
        )
        for begin, centre in spans:
            stretch = [(t, s) for t, s in source if begin <= t <= centre + 0.8]
            if not stretch:
                continue
            challenge._last = None  # the cut between stretches is not a face swap
            start, fed = stretch[0][0], now
            for t, sample in at_rate(stretch, challenge, base):
                fed = now + (t - start)
                outcome = challenge.feed(sample, fed)
                if outcome.status is StepStatus.DONE:
                    return "pass", ""
                if outcome.status not in (StepStatus.WAITING, StepStatus.PASSED):
                    return "fail", f"{outcome.status.value}:{outcome.detail}"
                if outcome.status is StepStatus.PASSED:
                    break
            # The next stretch follows on the challenge's clock.
            now = fed + 1.0 / challenge.sample_fps(base or 30.0)
            if challenge.step > step:
                break
        if challenge.step <= step:
            return "fail", f"not_seen:{action.value}"
    return "fail", "unfinished"


def run(
    track: Track, actions: list[ChallengeAction], cfg: ActiveConfig, base: float
) -> tuple[str, str]:
    """The eval's loop (``server.liveness.evaluate.run_active``): baseline from the first
    frames, the clip looped until time is up."""
    return run_active([(t, 1, sample) for t, sample in track], actions, cfg, base or 1e3)


def main() -> None:
    parser = argparse.ArgumentParser()
    settings = load_settings()
    parser.add_argument("--fps", type=float, default=settings.gate.sample_fps,
                        help="base rate (default [gate] sample_fps); 0 = every frame")
    parser.add_argument("--expression-fps", type=float,
                        default=settings.liveness.expression_fps,
                        help="rate during expression steps (default [liveness] "
                             "expression_fps); 0 = the base rate throughout")
    parser.add_argument("--mode", choices=("prompted", "loop", "both"), default="prompted")
    parser.add_argument("--no-mesh", action="store_true", help="the landmarker alone")
    parser.add_argument("--track", action="store_true",
                        help="also the landmarker with landmark tracking ([face] track_landmarks)")
    args = parser.parse_args()
    engines = {"landmarker": FaceEngine.load(landmarks="landmarker")}
    if args.track:
        engines["tracking"] = engines["landmarker"]
    if not args.no_mesh:
        engines = {"mesh": FaceEngine.load(landmarks="mesh"), **engines}
    modes = ("prompted", "loop") if args.mode == "both" else (args.mode,)
    cfg = dataclasses.replace(ActiveConfig(), expression_fps=args.expression_fps or 1e-3)
    cases = [
        row for row in (DATA / "video_cases.csv").read_text().splitlines()[1:] if "bona_fide" in row
    ]
    videos = json.loads((DATA / "video_observations.json").read_text())["videos"]
    rows: list[dict[str, Any]] = []
    columns = [f"{name}/{mode}" for name in engines for mode in modes]
    passed = dict.fromkeys(columns, 0)
    print(f"{'clip':34s} " + " ".join(f"{c:32s}" for c in columns))
    for line in cases:
        rel = line.split(",")[0]
        actions = observed(videos.get(rel, {}))
        if not actions:
            continue
        per = tracks(engines, DATA / rel)
        row: dict[str, Any] = {"clip": rel}
        cells = []
        blinks = list(videos.get(rel, {}).get("blink_times_s") or [])
        for name, track in per.items():
            for mode in modes:
                detected = per["landmarker"] if name == "tracking" else None
                if mode == "loop" and detected is not None:
                    verdict, detail = "n/a", "loop: one track per run"
                elif mode == "loop":
                    verdict, detail = run(track, actions, cfg, args.fps)
                else:
                    verdict, detail = run_prompted(
                        track, actions, blinks, cfg, args.fps, detected
                    )
                passed[f"{name}/{mode}"] += verdict == "pass"
                row[f"{name}/{mode}"] = {"verdict": verdict, "detail": detail}
                cells.append(f"{verdict} {detail}"[:32])
        row["actions"] = [a.value for a in actions]
        rows.append(row)
        print(f"{rel:34s} " + " ".join(f"{c:32s}" for c in cells) + ",".join(row["actions"]))
    total = len(rows)
    print(f"{'passed':34s} " + " ".join(f"{f'{passed[c]}/{total}':32s}" for c in columns))
    out = REPO / "bench" / "out" / f"bench_active-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"fps": args.fps, "expression_fps": args.expression_fps, "mode": args.mode,
              "passed": passed, "cases": rows}
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
