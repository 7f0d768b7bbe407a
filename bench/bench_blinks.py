"""Blink detection by the challenge's own rule: shared clips' blink candidates, print attacks.

For every blink candidate c in ``video_observations.json`` BLINK steps run from c - 1.2 s
to c + 0.6 s, as the gate runs them: the gate first takes its identity frames at its base
rate, ``[gate] frames_required`` (3) one-face frames (``Gate._frame``), and the challenge
starts on the last of them with the last ``ActiveConfig.baseline_frames`` (3) of them as
its baseline (``ChallengeSteps._start_pose``: ``challenge.start(attempt.samples[-3:],
now)``), so the identity frames come *before* the prompt. Here they are the three
one-face frames the sampler takes at the base rate ending at c - 1.2 (at 4 fps
c - 1.7, c - 1.45, c - 1.2; fewer faces: earlier), and the step runs from there at the
challenge's rate (``Challenge.sample_fps``). When the clip has too few frames before
c - 1.2 (a candidate in its first 1.7 s at 4 fps), the identity frames are the clip's
first ones and the step starts after them, late (``late_start_s``, counted in the
"step started > 0.05 s late" line). Until 2026-12-02 12:30 the identity frames were the
window's first three faces (``--baseline-in-window`` still runs that), at 4 fps its
first 0.5 s: the prompt came 0.7 s before the candidate, and a blink 0.2-0.5 s after another
fell in the baseline. Every column follows the same model, at its own rate: a fixed
rate ``N fps`` is a gate with ``[gate] sample_fps = N`` that does not raise it for the
step, ``all`` one analysing every frame (its identity frames are the three frames just
before c - 1.2), ``gate`` the configured one: ``[gate] sample_fps`` for the identity
frames, then ``[liveness] expression_fps``. Frames are picked by the server sampler's
rule (``server.rtc.sampler.SamplerClock``; the rate is read after each frame, so the
step's first interval is already the fast one: the live sampler may still wait one
base interval there, docs/liveness.md "Sampling rate"). Frames without exactly one face
only tick the challenge, as in the gate (a gap over ``max_gap_s`` loses the face).

Two counts per candidate: ``detected``, a blink step completed in the window (what the
gate's one-step challenge would do); ``own``, a completion (the reopening frame) at or
after c - 0.1 s (``OWN_S``): the window is 1.8 s wide and often holds an earlier blink,
which completes the step without saying anything about c. For ``own`` the run goes on
with further BLINK steps after each completion (the rule's own step change). ``own`` is
approximate: candidates 0.2 s apart cannot be told apart, and it moves with ``OWN_S``.
Each miss has a one-line reason from the score trace (rise over the open level, closure,
steadiness, lost track).

Print attacks: every shared photo and spoof still, warped as a flat print moved in front
of a camera (perspective tilt up to 40 degrees both ways, in-plane rotation, zoom and
pan, 48 frames at 12 fps), fed to a BLINK challenge (identity frames: the first three
faces, every frame); any completion is a false blink.
``--attacks DIR``: every clip of the print-attack generator's set
(``python -m server.liveness.attacks``) fed whole to a BLINK challenge, at every
``--fps`` rate and at the gate's rate (identity frames: the clip's first faces); any
completion is a false blink.
Counts, not timings: this is a measurement script, not a test.

    .venv/bin/python bench/bench_blinks.py [--mesh] [--fps 0 8 4] [--no-gate]
        [--no-candidates] [--no-prints] [--attacks var/attacks] [--baseline-in-window]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.config import load_settings  # noqa: E402
from server.face.engine import FaceEngine  # noqa: E402
from server.face.imageio import decode_image  # noqa: E402
from server.liveness import (  # noqa: E402
    ActiveConfig,
    Challenge,
    ChallengeAction,
    LivenessSample,
    StepStatus,
    sample_from_face,
)
from server.liveness.sample import box_change  # noqa: E402
from server.rtc.sampler import SamplerClock  # noqa: E402

DATA = Path(os.environ.get("VIDEOGATE_TEST_DATA", REPO.parent / "shared" / "data")) / "faces"
Track = list[tuple[float, LivenessSample | None]]


def clip_track(engine: FaceEngine, path: Path) -> Track:
    """(time, sample of the one face or None) for every decoded frame."""
    out: Track = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            faces = engine.analyse(rgb, mesh=True, embed=False).faces
            one = sample_from_face(rgb, faces[0], pixels=False) if len(faces) == 1 else None
            out.append((float(frame.time or 0.0), one))
    return out


Rate = tuple[str, float, ActiveConfig]  # (label, base fps or 0 = every frame, config)
BEFORE_S, AFTER_S = 1.2, 0.6  # the step's window around a candidate c: [c - 1.2, c + 0.6]
# A blink completed (the eyes reopened) before c - 0.1 is an earlier one, not c: the
# reopening comes after the closure; 0.1 s allows for the candidates' timing (EAR dips).
OWN_S = 0.1
STEPS = 20  # BLINK steps per candidate run: later blinks in the window are still seen


@dataclasses.dataclass
class Run:
    """One run of BLINK steps: when the first step started (the last identity frame,
    None: never), the times of the frames that completed a step (the reopening), how it
    ended, and a reason from the score trace after the last completion."""

    started: float | None
    status: str
    why: str = ""
    blinks: list[float] = dataclasses.field(default_factory=list)

    @property
    def detected(self) -> bool:
        return bool(self.blinks)


def identity_frames(
    track: Track, base: float, frames: int, prompt: float | None
) -> tuple[SamplerClock, list[int], float] | None:
    """The gate's identity frames: the first ``frames`` one-face frames the sampler takes
    at ``base`` fps (0: every frame) from some start, on whose last one the challenge
    starts (``Gate._frame``: ``frames_required`` matched frames, then
    ``ChallengeSteps._start_pose``: ``challenge.start(attempt.samples[-baseline_frames:],
    now)``). With ``prompt``, the latest start whose identity frames end at or before
    it, so that the step starts at ``prompt``; without, or when the clip has too few faces
    before ``prompt``, the clip's first frames (the step then starts late). The clock,
    left after the last identity frame, the identity frames' indices and the time the
    last one was analysed; None if the clip never shows ``frames`` one-face frames."""
    times = [t for t, _ in track]

    def run(start: float) -> tuple[SamplerClock, list[int], float] | None:
        clock = SamplerClock(times)
        got: list[int] = []
        for n, at in clock.frames(start, lambda: base or 1e3):
            if track[n][1] is not None:
                got.append(n)
                if len(got) == frames:
                    return clock, got, at
        return None

    if prompt is not None:
        # Candidate starts, latest first: whole sampling intervals before the prompt
        # (every frame: the frames themselves).
        if base:
            starts = (prompt - k / base for k in range(frames - 1, 10**6))
        else:
            last = max((i for i, t in enumerate(times) if t <= prompt + 1e-9), default=-1)
            starts = (times[i] for i in range(last, -1, -1))
        for start in starts:
            if start < times[0] - 1e-9:
                break
            found = run(start)
            if found is not None and times[found[1][-1]] <= prompt + 1e-9:
                return found
    return run(times[0])


def blink_run(
    track: Track,
    config: ActiveConfig,
    base: float = 0.0,
    frames: int = 3,
    prompt: float | None = None,
    end: float | None = None,
    steps: int = 1,
) -> Run:
    """A challenge of ``steps`` BLINK steps as the gate runs it on ``track``: the
    sampler takes frames at ``base`` fps (0: every frame) until the identity frames are
    in (``frames`` one-face frames, the last ``config.baseline_frames`` of them the
    baseline: :func:`identity_frames`), then at the challenge's rate
    (``Challenge.sample_fps``, read after each frame as ``Gate.sample_fps`` is) up to
    ``end``. Frames without exactly one face are ``Challenge.tick`` only, as
    ``ChallengeSteps._challenge_frame`` does (a gap over ``max_gap_s`` loses the face).
    More than one step: after a blink the next BLINK step goes on (the rule's own step
    change), so a later blink in the window is still seen."""
    if not track:
        return Run(None, "no frames")
    found = identity_frames(track, base, frames, prompt)
    if found is None:
        return Run(None, "no identity", f"fewer than {frames} one-face frames")
    clock, ids, at = found
    challenge = Challenge((ChallengeAction.BLINK,) * steps, config)
    samples = [s for n in ids if (s := track[n][1]) is not None]
    started = track[ids[-1]][0]
    challenge.start(samples[-config.baseline_frames :], started)
    trace: list[tuple[float, LivenessSample | None, float | None, bool]] = []
    blinks: list[float] = []
    last = samples[-1]

    def rate() -> float:  # the gate's rule once the challenge runs
        return challenge.sample_fps(base) if base else 1e3

    outcome = None
    for n, _ in clock.frames(at + 1.0 / rate(), rate):
        t, s = track[n]
        if end is not None and t > end + 1e-9:
            break
        if s is None:
            outcome = challenge.tick(t)
            trace.append((t, None, None, challenge.eyes_closed))
        else:
            # the level the rule compares this score to (None while the eyes are closed,
            # or when no recent frame is framed like this one: server/liveness/blink.py)
            level = None if challenge.eyes_closed else challenge.open_level(t, s)
            outcome = challenge.feed(s, t)
            trace.append((t, s, level, challenge.eyes_closed))
        if outcome.status in (StepStatus.PASSED, StepStatus.DONE):
            blinks.append(t)
            trace, last = [], s or last
            if outcome.status is StepStatus.DONE:
                return Run(started, "done", blinks=blinks)
            continue
        if outcome.status is not StepStatus.WAITING:
            break
    status = outcome.status.value if outcome is not None else "no frames"
    if outcome is not None and outcome.status is not StepStatus.WAITING:
        status += f":{outcome.detail}"
    why = _why(trace, last, config, status)
    if blinks:
        why = f"blink at {', '.join(f'{b:.2f}' for b in blinks)}; after it: {why}"
    return Run(started, status, why, blinks)


def _why(
    trace: list[tuple[float, LivenessSample | None, float | None, bool]],
    last: LivenessSample,
    cfg: ActiveConfig,
    status: str,
) -> str:
    """One line on why a run did not complete, from its score trace."""
    faceless = sum(1 for _, s, _, _ in trace if s is None)
    notes = [f"{len(trace)} frames" + (f", {faceless} without one face" if faceless else "")]
    if status != "waiting":
        notes.append(status)
    closed_at = None
    prev = last
    best: tuple[float, float, float, float, LivenessSample, LivenessSample] | None = None
    for t, s, level, closed in trace:
        if s is None:
            continue
        if closed and closed_at is None:
            closed_at = t
            notes.append(f"closed at {t:.2f} (score {s.blink:.2f}, level {level:.2f})")
        elif not closed and closed_at is not None:
            notes.append(f"not reopened within {cfg.blink_max_closed_s:g} s (score "
                         f"{s.blink:.2f} at {t:.2f}): long closure")
            closed_at = None
        if level is not None and s.blink is not None and not closed:
            rise = s.blink - level
            if best is None or rise > best[1]:
                best = (t, rise, level, s.blink, s, prev)
        prev = s
    unframed = sum(1 for _, s, level, closed in trace if s is not None and level is None
                   and not closed and s.blink is not None)
    if unframed:
        notes.append(f"{unframed} with no recent frame framed alike")
    if closed_at is not None:
        end = next(s for _, s, _, _ in reversed(trace) if s is not None)
        notes.append(f"still closed at the window's end (score {end.blink:.2f})")
    if best is not None:
        t, rise, level, score, s, p = best
        text = f"largest rise {rise:.3f} at {t:.2f} (level {level:.2f}, score {score:.2f})"
        if rise >= cfg.blink_rise:
            scale, jump = box_change(s, p)
            turn = max(abs(s.measures.yaw - p.measures.yaw),
                       abs(s.measures.pitch - p.measures.pitch))
            failed = [
                f"face {s.width_px:.0f} px < {cfg.blink_min_face_px:g}"
                if 0 < s.width_px < cfg.blink_min_face_px else "",
                f"jump {jump:.2f}" if jump >= cfg.blink_steady_jump else "",
                f"scale {scale:.2f}"
                if not 1 / cfg.blink_steady_scale < scale < cfg.blink_steady_scale else "",
                f"turn {turn:.0f} deg" if turn >= cfg.blink_steady_deg else "",
            ]
            text += f" not steady ({', '.join(f for f in failed if f)})"
        else:
            text += f" < {cfg.blink_rise:g}"
        notes.append(text)
    return "; ".join(notes)


def candidates(
    engine: FaceEngine, rates: list[Rate], frames: int, in_window: bool = False
) -> dict[str, Any]:
    """Every candidate c at every rate: BLINK steps from c - 1.2 to c + 0.6 after the
    identity frames taken before c - 1.2 (``in_window``: the first frames of the window,
    the model of the runs before 2026-12-02 12:30). ``detected``: a blink completed in
    the window (the first step, as a one-step challenge); ``own``: one completed at or
    after c - OWN_S (not only an earlier blink in the window)."""
    videos = json.loads((DATA / "video_observations.json").read_text())["videos"]
    rows: dict[str, Any] = {}
    for rel, obs in videos.items():
        times = obs.get("blink_times_s") or []
        if not times:
            continue
        track = clip_track(engine, DATA / rel)
        row: dict[str, Any] = {"candidates": times}
        for key in ("detected", "own", "late_start_s", "blinks", "why"):
            row[key] = {}
        for label, base, config in rates:
            runs = []
            for c in times:
                if in_window:
                    window = [(t, s) for t, s in track if c - BEFORE_S <= t <= c + AFTER_S]
                    runs.append(blink_run(window, config, base, frames, steps=STEPS))
                else:
                    runs.append(blink_run(track, config, base, frames, c - BEFORE_S,
                                          c + AFTER_S, STEPS))  # fmt: skip
            own = [any(b >= c - OWN_S for b in r.blinks) for r, c in zip(runs, times, strict=True)]
            row["detected"][label] = [r.detected for r in runs]
            row["own"][label] = own
            row["late_start_s"][label] = [
                None if r.started is None else round(max(0.0, r.started - (c - BEFORE_S)), 3)
                for r, c in zip(runs, times, strict=True)
            ]
            row["blinks"][label] = [[round(b, 3) for b in r.blinks] for r in runs]
            row["why"][label] = [None if o else r.why for r, o in zip(runs, own, strict=True)]
        rows[rel] = row
    return rows


def warp_print(
    photo: np.ndarray,
    tilt_x: float,
    tilt_y: float,
    roll: float,
    zoom: float,
    pan: tuple[float, float],
    size: tuple[int, int] = (640, 480),
) -> np.ndarray:
    """The photo as a flat print seen by a pinhole camera (degrees; zoom 1 = 80 % fit)."""
    h, w = photo.shape[:2]
    f = 1.2 * max(size)
    s = min(size[0] / w, size[1] / h) * 0.8 * zoom
    corners = np.array([[-w, -h, 0], [w, -h, 0], [w, h, 0], [-w, h, 0]], float) * s / 2
    ax, ay, az = (math.radians(v) for v in (tilt_x, tilt_y, roll))
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    p = corners @ (rz @ ry @ rx).T
    p[:, 2] += f
    cx, cy = size[0] / 2 + pan[0] * size[0], size[1] / 2 + pan[1] * size[1]
    dst = np.stack([p[:, 0] * f / p[:, 2] + cx, p[:, 1] * f / p[:, 2] + cy], 1)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    hom = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    return cv2.warpPerspective(photo, hom, size, borderValue=(96, 104, 112))


def print_attack(engine: FaceEngine, photo: np.ndarray, frames: int = 48) -> Track:
    track: Track = []
    for i in range(frames):
        a = 2 * math.pi * i / frames
        tilt_x, tilt_y = 40 * math.sin(a), 40 * math.sin(2 * a + 1.0)
        roll, zoom = 20 * math.sin(3 * a), 1.0 + 0.3 * math.sin(a + 0.5)
        pan = (0.08 * math.cos(a), 0.05 * math.sin(2 * a))
        rgb = warp_print(photo, tilt_x, tilt_y, roll, zoom, pan)
        faces = engine.analyse(rgb, mesh=True, embed=False).faces
        track.append(
            (i / 12.0, sample_from_face(rgb, faces[0], pixels=False) if len(faces) == 1 else None)
        )
    return track


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mesh", action="store_true", help="468-point mesh, EAR (old rule)")
    parser.add_argument(
        "--fps",
        type=float,
        nargs="*",
        default=[0.0, 8.0, 4.0],
        help="sampling rates (0 = every frame)",
    )
    parser.add_argument("--no-prints", action="store_true")
    parser.add_argument("--no-gate", action="store_true", help="skip the gate's-rate column")
    parser.add_argument("--no-candidates", action="store_true")
    parser.add_argument(
        "--baseline-in-window",
        action="store_true",
        help="identity frames from the start of each candidate's window (the old model)",
    )
    parser.add_argument("--attacks", type=Path, default=None, help="generated print clips")
    parser.add_argument("--every", type=int, default=1, help="every n-th generated clip")
    args = parser.parse_args()
    engine = FaceEngine.load(landmarks="mesh" if args.mesh else "landmarker")
    settings = load_settings()
    frames = settings.gate.frames_required
    config = dataclasses.replace(ActiveConfig(), expression_fps=settings.liveness.expression_fps)
    fixed = dataclasses.replace(config, expression_fps=1e-3)  # never raised
    rates: list[Rate] = [("all" if f == 0 else f"{f:g} fps", f, fixed) for f in args.fps]
    if not args.no_gate:
        gate = f"gate {settings.gate.sample_fps:g}/{config.expression_fps:g}"
        rates.append((gate, settings.gate.sample_fps, config))
    t0 = time.perf_counter()
    rows = {} if args.no_candidates else candidates(engine, rates, frames, args.baseline_in_window)
    labels = [label for label, _, _ in rates]
    if rows:
        print(f"{'clip (detected, own)':34s} " + " ".join(f"{label:>13s}" for label in labels))
    totals = dict.fromkeys(labels, 0)
    owns = dict.fromkeys(labels, 0)
    late = dict.fromkeys(labels, 0)
    count = 0
    for rel, row in rows.items():
        n = len(row["candidates"])
        count += n
        cells = []
        for label in labels:
            hit, own = sum(row["detected"][label]), sum(row["own"][label])
            totals[label] += hit
            owns[label] += own
            late[label] += sum(1 for v in row["late_start_s"][label] if v is None or v > 0.05)
            cells.append(f"{hit:>3d} {own:>3d}/{n:<4d}")
        print(f"{Path(rel).stem:34s} " + " ".join(cells))
    if rows:
        print(f"{'total':34s} "
              + " ".join(f"{totals[k]:>3d} {owns[k]:>3d}/{count:<4d}" for k in labels))
        print(f"{'step started > 0.05 s late':34s} " + " ".join(f"{late[k]:>13d}" for k in labels))
        for label in (labels[0], labels[-1]):
            print(f"not detected as their own blink at {label}:")
            for rel, row in rows.items():
                for c, gap, why in zip(
                    row["candidates"], row["late_start_s"][label], row["why"][label], strict=True
                ):
                    if why is not None:
                        start = "never" if gap is None else f"{gap:+.2f} s"
                        print(f"  {Path(rel).stem} {c:.2f} (step start {start}): {why}")
    prints: dict[str, bool] = {}
    if not args.no_prints:
        photos = (
            sorted((DATA / "faces").glob("*/*"))
            + sorted((DATA / "spoof").glob("*"))
            + sorted((DATA / "videos" / "stills").glob("*/*"))
        )
        for photo in photos:
            track = print_attack(engine, decode_image(photo.read_bytes()))
            prints[str(photo.relative_to(DATA))] = blink_run(track, config, 0, frames).detected
        false = [k for k, v in prints.items() if v]
        print(
            f"print attacks (flat photo moved, 48 frames each): {len(false)} false blinks "
            f"of {len(prints)}" + (f": {false}" if false else "")
        )
    generated: dict[str, dict[str, bool]] = {}
    if args.attacks is not None:
        for clip in sorted(args.attacks.glob("*.mp4"))[:: args.every]:
            track = clip_track(engine, clip)
            generated[clip.name] = {
                label: blink_run(track, config, base, frames).detected
                for label, base, config in rates
            }
            print(clip.name, generated[clip.name], file=sys.stderr)
        for label in labels:
            false = [k for k, v in generated.items() if v[label]]
            print(f"generated prints at {label}: {len(false)} false blinks of {len(generated)}"
                  + (f": {false}" if false else ""))
    result = {
        "generated_prints": generated,
        "landmarks": "mesh" if args.mesh else "landmarker",
        "rates": labels,
        "expression_fps": config.expression_fps,
        "identity_frames": frames,
        "baseline": "in window" if args.baseline_in_window else "before window",
        "clips": rows,
        "detected": totals,
        "own": owns,
        "own_s": OWN_S,
        "late_starts": late,
        "candidates": count,
        "print_attacks": prints,
        "seconds": round(time.perf_counter() - t0, 1),
        "load": os.getloadavg(),
    }
    out = REPO / "bench" / "out" / f"bench_blinks-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
