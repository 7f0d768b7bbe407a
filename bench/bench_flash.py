"""Screen-light challenge: per-frame cost of the skin-chroma meter, cost of the judge,
and how often the judge accepts (simulated reflection, see tests/liveness/reflect.py).

Cost, same run, same 640x480 frames: ours = ``measure_light`` (what every analysed
frame pays for the light check); baselines = detect + mesh (``FaceEngine.analyse``,
which every frame pays anyway) and the passive pixel cues (``pixel_cues``).

Acceptance, on a bona fide clip sampled at the flash rate (8 fps) whose face is lit by
a SIMULATED reflection (no camera here): own sequence at two strengths, the same clip
unlit, and lit by another session's sequence (a replayed recording), each judged
against many random sequences. Prints tables, writes JSON to bench/out/.

    .venv/bin/python bench/bench_flash.py [--clip NAME] [--frames N] [--sequences N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.face.engine import FaceEngine  # noqa: E402
from server.liveness.cues import pixel_cues  # noqa: E402
from server.liveness.flash import FlashConfig, draw_sequence, judge  # noqa: E402
from server.liveness.lightmeter import measure_light  # noqa: E402
from tests.liveness.reflect import (  # noqa: E402
    Reflection,
    boxed,
    pick,
    read_clip,
    sample_times,
    tint,
)

DATA = Path(os.environ.get("VIDEOGATE_TEST_DATA", REPO.parent / "shared" / "data"))


def ms(f: object, *args: object, repeat: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        f(*args)  # type: ignore[operator]
    return (time.perf_counter() - t0) * 1000 / repeat


def cost(engine: FaceEngine, clip: Path, count: int) -> dict[str, float]:
    frames = []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            frames.append(cv2.resize(rgb, (640, 480)))
            if len(frames) >= count:
                break
    base, cues, ours = [], [], []
    for rgb in frames:
        t0 = time.perf_counter()
        faces = engine.analyse(rgb, mesh=True, embed=False).faces
        t1 = time.perf_counter()
        if len(faces) != 1 or faces[0].measures is None:
            continue
        face = faces[0]
        cues.append(ms(pixel_cues, rgb, face.box, face.measures.roll))
        ours.append(ms(measure_light, rgb, face.box, repeat=5))
        base.append((t1 - t0) * 1000)
    return {
        "frames": len(ours),
        "detect_mesh_ms": statistics.median(base),
        "pixel_cues_ms": statistics.median(cues),
        "measure_light_ms": statistics.median(ours),
        "measure_light_p90_ms": float(np.percentile(ours, 90)),
    }


def acceptance(engine: FaceEngine, clip: Path, sequences: int) -> dict[str, object]:
    cfg = FlashConfig()
    start = 1.0
    seconds = start + cfg.max_flashes * cfg.max_step_ms / 1000 + cfg.max_lag_s + 0.5

    def detect(rgb: np.ndarray) -> tuple[float, float, float, float] | None:
        faces = engine.analyse(rgb, mesh=False, embed=False).faces
        return faces[0].box if len(faces) == 1 else None

    frames = boxed(pick(read_clip(clip, seconds), sample_times(seconds, 8.0, random.Random(7))),
                   detect)  # fmt: skip

    def measured(seq: object, refl: Reflection, seed: int) -> list:  # type: ignore[type-arg]
        shot = tint(frames, seq, start, refl, random.Random(seed))  # type: ignore[arg-type]
        out = []
        for (t, rgb), (_, _, box) in zip(shot, frames, strict=True):
            sample = measure_light(rgb, detect(rgb) or box)
            if sample is not None:
                out.append((t, sample))
        return out

    rng = random.Random(2026)
    others = [draw_sequence(rng, cfg) for _ in range(sequences)]
    rows: dict[str, object] = {}
    judge_ms: list[float] = []
    own_pass = {0.08: 0, 0.05: 0}
    replay_pass = 0
    trials = 4
    for k in range(trials):
        seq = draw_sequence(rng, cfg)
        for strength in own_pass:
            data = measured(seq, Reflection(strength=strength), 100 + k)
            t0 = time.perf_counter()
            own_pass[strength] += judge(seq, start, data, cfg).passed
            judge_ms.append((time.perf_counter() - t0) * 1000)
        # The clip lit by `seq` replayed into sessions that drew other sequences.
        data = measured(seq, Reflection(strength=0.08), 200 + k)
        replay_pass += sum(judge(o, start, data, cfg).passed for o in others)
    unlit = measured(None, Reflection(), 300)
    unlit_pass = sum(judge(o, start, unlit, cfg).passed for o in others)
    rows["own_sequence_strength_0.08"] = f"{own_pass[0.08]}/{trials}"
    rows["own_sequence_strength_0.05"] = f"{own_pass[0.05]}/{trials}"
    rows["replayed_other_sequence"] = f"{replay_pass}/{trials * sequences}"
    rows["unlit"] = f"{unlit_pass}/{sequences}"
    rows["judge_ms_median"] = statistics.median(judge_ms)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clip", default="liveportrait_d10.mp4")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--sequences", type=int, default=100)
    args = parser.parse_args()
    clip = DATA / "faces" / "videos" / args.clip
    engine = FaceEngine.load()
    c = cost(engine, clip, args.frames)
    print(f"{'per frame (640x480)':30s} {'median ms':>10s}")
    print(f"{'detect + mesh (baseline)':30s} {c['detect_mesh_ms']:10.3f}")
    print(f"{'passive pixel cues (baseline)':30s} {c['pixel_cues_ms']:10.3f}")
    print(f"{'measure_light (ours)':30s} {c['measure_light_ms']:10.3f}   "
          f"p90 {c['measure_light_p90_ms']:.3f}")  # fmt: skip
    print(f"ratio ours / detect+mesh = {c['measure_light_ms'] / c['detect_mesh_ms']:.3f}; "
          f"ours / pixel cues = {c['measure_light_ms'] / c['pixel_cues_ms']:.3f}")  # fmt: skip
    a = acceptance(engine, clip, args.sequences)
    print(f"\n{'judge (simulated reflection)':34s} {'passed':>10s}")
    for key, value in a.items():
        print(f"{key:34s} {value!s:>10s}")
    result = {
        "clip": args.clip,
        "cost": c,
        "acceptance": a,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "load": os.getloadavg()},
    }  # fmt: skip
    out = REPO / "bench" / "out" / f"bench_flash-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
