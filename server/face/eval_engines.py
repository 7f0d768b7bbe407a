"""Verification benchmark of every room engine mode in one run, with an embedding cache.

    python -m server.face eval --data DIR --engine dlib|sface|both|fused [--json OUT]
                               [--workers N] [--limit N] [--embeddings NPZ] [--refresh]

Each image named by a pair is analysed once (detect, mesh) and embedded four ways: dlib's
ResNet (ONNX port) on its chip and on the mirror image, SFace on its chip and on the
mirror image. The vectors go to a cache file outside git (default
``var/eval/<set>-<hash>.npz``, keyed by the data folder, the image list and
:data:`CACHE_VERSION`), so refitting and reporting rerun in a second without the
CPU-heavy pass. All four modes are reported in the same run (``--engine`` picks the
one summarised first and in the JSON's ``headline``); the engines run as in the server:
dlib on chip + mirror, SFace on one chip, unless ``--sface-flip`` / ``--no-dlib-flip``.

Protocol with folds (LFW View 2): for every fold, anything with parameters (SFace's
threshold, the ``both`` rescaling, the fusion) is fitted on the other nine folds and the
fold's accuracy uses the accuracy-optimal cut on those nine, as for dlib alone. EER and
TAR at a FAR pool the ten folds' out-of-fold distances. ``deployed`` lines use the
server's calibrated constants (:mod:`.scoring`) at 0.60; on LFW the JSON also gives the
constants fitted on all pairs (``calibration``), which is where :mod:`.scoring`'s come from.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .eval import Pair, _progress, eer, load_pairs, roc_point
from .fusion import REFERENCE_THRESHOLD, best_cut, fit_calibrated, fit_folds
from .models import REPO_ROOT
from .scoring import ROOM_ENGINES, Scorer

CACHE_VERSION = "sface-1"
VECTORS = ("dlib", "dlib_mirror", "sface", "sface_mirror")
CACHE_ENV = "VIDEOGATE_EVAL_CACHE"

_ENGINE: Any = None
_ROOT = Path(".")


def _init_worker(root: str, model_cache: str | None) -> None:
    global _ENGINE, _ROOT
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)
    from .engine import FaceEngine

    _ENGINE = FaceEngine.load(Path(model_cache) if model_cache else None)
    _ROOT = Path(root)


def _embed_image(rel: str) -> tuple[str, np.ndarray | None, dict[str, float]]:
    """(rel, (4, 128) vectors in VECTORS order or None, stage timings in ms)."""
    from .align import arcface_points
    from .imageio import ImageError, decode_image
    from .sface import align_chip

    eng = _ENGINE
    try:
        rgb = decode_image((_ROOT / rel).read_bytes())
    except (OSError, ImageError):
        return rel, None, {}
    t0 = time.perf_counter()
    dets = eng.detector.detect(rgb)
    if not dets:
        return rel, None, {}
    h, w = rgb.shape[:2]
    det = min(
        dets,
        key=lambda d: (
            ((d.box[0] + d.box[2]) / 2 - w / 2) ** 2 + ((d.box[1] + d.box[3]) / 2 - h / 2) ** 2
        ),
    )
    t1 = time.perf_counter()
    mesh = eng.mesh.run(rgb, det).points
    t2 = time.perf_counter()
    chip = eng.aligner.chip(rgb, eng.aligner.five_points(rgb, det, mesh))
    t3 = time.perf_counter()
    dlib = eng.embedder.embed([chip, np.ascontiguousarray(chip[:, ::-1])])
    t4 = time.perf_counter()
    schip = align_chip(rgb, arcface_points(mesh))
    t5 = time.perf_counter()
    s1 = eng.sface.embed([schip])
    t6 = time.perf_counter()
    s2 = eng.sface.embed([np.ascontiguousarray(schip[:, ::-1])])
    timings = {
        "detect": t1 - t0,
        "mesh": t2 - t1,
        "align_dlib": t3 - t2,
        "embed_dlib_2chips": t4 - t3,
        "align_sface": t5 - t4,
        "embed_sface_1chip": t6 - t5,
    }
    vectors = np.stack([dlib[0], dlib[1], s1[0], s2[0]]).astype(np.float32)
    return rel, vectors, {k: v * 1000 for k, v in timings.items()}


def default_cache_path(data: Path, rels: list[str]) -> Path:
    key = hashlib.sha256(
        "\n".join([CACHE_VERSION, str(data.resolve()), *rels]).encode()
    ).hexdigest()[:12]
    base = Path(os.environ.get(CACHE_ENV) or REPO_ROOT / "var" / "eval")
    return base / f"{data.resolve().name}-{key}.npz"


def embed_all(
    data: Path, rels: list[str], workers: int, model_cache: Path | None
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Vectors per image (failed images left out) and median stage timings."""
    args = (str(data), str(model_cache) if model_cache else None)
    out: dict[str, np.ndarray] = {}
    stages: dict[str, list[float]] = {}

    def collect(it: Iterable[tuple[str, np.ndarray | None, dict[str, float]]]) -> None:
        for rel, vectors, timings in _progress(it, len(rels), "embedding"):
            if vectors is not None:
                out[rel] = vectors
            for k, v in timings.items():
                stages.setdefault(k, []).append(v)

    if workers <= 1:
        _init_worker(*args)
        collect(map(_embed_image, rels))
    else:
        with mp.get_context("spawn").Pool(workers, _init_worker, args) as pool:
            collect(pool.imap_unordered(_embed_image, rels, chunksize=4))
    return out, {k: round(float(np.median(v)), 2) for k, v in stages.items()}


def load_or_embed(
    data: Path,
    rels: list[str],
    *,
    workers: int,
    model_cache: Path | None,
    path: Path | None = None,
    refresh: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, float], Path, bool]:
    """(vectors, timings, cache file, came from the cache)."""
    path = path or default_cache_path(data, rels)
    if path.is_file() and not refresh:
        z = np.load(path, allow_pickle=False)
        vectors = {str(n): v for n, v in zip(z["names"], z["vectors"], strict=True)}
        timings = json.loads(str(z["timings"]))
        return vectors, timings, path, True
    vectors, timings = embed_all(data, rels, workers, model_cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = sorted(vectors)
    stacked = np.stack([vectors[n] for n in names]) if names else np.zeros((0, 4, 128))
    np.savez_compressed(
        path, names=np.array(names), vectors=stacked, timings=np.array(json.dumps(timings))
    )
    return vectors, timings, path, False


def _unit(v: np.ndarray) -> np.ndarray:
    return np.asarray(v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12))


def pair_distances(
    pairs: list[Pair],
    vectors: dict[str, np.ndarray],
    *,
    dlib_flip: bool = True,
    sface_flip: bool = False,
    live_probe: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(dlib distances, SFace distances) per pair; inf where an image has no face.

    ``live_probe``: the pair's second image is embedded as a probe of a both / fused
    room is (dlib on one chip, ``FaceEngine.fused_dlib_flip``), the first as a template."""
    d1 = np.full(len(pairs), np.inf)
    d2 = np.full(len(pairs), np.inf)

    def engines(rel: str) -> tuple[np.ndarray, np.ndarray] | None:
        v = vectors.get(rel)
        if v is None:
            return None
        dl = v[:2].mean(axis=0) if dlib_flip else v[0]
        sf = _unit(v[2:].mean(axis=0)) if sface_flip else _unit(v[2])
        return dl.astype(np.float64), sf.astype(np.float64)

    for i, p in enumerate(pairs):
        a, b = engines(p.a), engines(p.b)
        if a is not None and b is not None:
            probe = vectors[p.b][0].astype(np.float64) if live_probe else b[0]
            d1[i] = float(np.linalg.norm(a[0] - probe))
            d2[i] = float(np.linalg.norm(a[1] - b[1]))
    return d1, d2


ScoreFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def fit_mode(mode: str, d1: np.ndarray, d2: np.ndarray, same: np.ndarray) -> tuple[ScoreFn, Any]:
    """A decision-distance function (dlib's unit) fitted on these pairs, and its params."""
    if mode == "dlib":
        return (lambda a, b: np.asarray(a)), {}
    t2 = best_cut(d2, same)
    if mode == "sface":
        return (lambda a, b: np.asarray(b) * (REFERENCE_THRESHOLD / t2)), {"sface_threshold": t2}
    if mode == "both":
        t1 = best_cut(d1, same)
        return (
            lambda a, b: REFERENCE_THRESHOLD * np.maximum(np.asarray(a) / t1, np.asarray(b) / t2)
        ), {"dlib_threshold": t1, "sface_threshold": t2}
    fusion = fit_calibrated(d1, d2, same)
    return fusion.distance, {"fusion": fusion.as_dict()}


CURVE = [round(0.40 + 0.02 * i, 2) for i in range(21)]  # thresholds in dlib's unit


def report_mode(
    mode: str, d1: np.ndarray, d2: np.ndarray, same: np.ndarray, folds: np.ndarray | None
) -> dict[str, Any]:
    deployed = Scorer(mode).combine({"dlib": d1, "sface": d2})
    out: dict[str, Any] = {"mode": mode}
    if folds is not None:
        oof = np.full(len(same), np.inf)
        accs, params = [], []
        for f in sorted(set(folds.tolist())):
            train, test = folds != f, folds == f
            fn, p = fit_mode(mode, d1[train], d2[train], same[train])
            cut = best_cut(fn(d1[train], d2[train]), same[train])
            oof[test] = fn(d1[test], d2[test])
            accs.append(float(np.mean((oof[test] <= cut) == same[test])))
            params.append({"fold": f, "cut": round(cut, 4), **p})
        out["accuracy_10fold"] = float(np.mean(accs))
        out["accuracy_10fold_std"] = float(np.std(accs))
        out["fold_accuracies"] = [round(a, 4) for a in accs]
        out["fold_params"] = params
        scores = oof
        _, out["calibration"] = fit_mode(mode, d1, d2, same)
        if mode == "fused":
            out["fold_fusion_spread"] = _spread(fit_folds(d1, d2, same, folds))
    else:
        scores = deployed
    ds, dd = scores[same], scores[~same]
    out["eer"], _ = eer(ds, dd)
    r1, r01 = roc_point(ds, dd, 0.01), roc_point(ds, dd, 0.001)
    out["tar_at_far_1pct"] = None if r1 is None else r1[0]
    out["tar_at_far_0_1pct"] = None if r01 is None else r01[0]
    out["curve"] = [
        [
            t,
            round(float(np.mean(deployed[~same] <= t)), 5),
            round(float(np.mean(deployed[same] > t)), 5),
        ]
        for t in CURVE
    ]
    accept = deployed <= REFERENCE_THRESHOLD
    out["deployed"] = {
        "threshold": REFERENCE_THRESHOLD,
        "accuracy": float(np.mean(accept == same)),
        "far": float(np.mean(accept[~same])),
        "frr": float(np.mean(~accept[same])),
        "false_accepts": int(np.sum(accept[~same])),
        "false_rejects": int(np.sum(~accept[same])),
    }
    return out


def _spread(fits: dict[int, Any]) -> dict[str, list[float]]:
    rows = [f.as_dict() for f in fits.values()]
    return {k: [min(r[k] for r in rows), max(r[k] for r in rows)] for k in rows[0]}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def print_table(reports: dict[str, dict[str, Any]]) -> None:
    print(f"{'engine':10s} {'10-fold':>9s} {'EER':>7s} {'TAR@1%':>8s} {'TAR@0.1%':>9s}"
          f" {'acc@0.60':>9s} {'FAR':>7s} {'FRR':>7s}")  # fmt: skip
    for mode, r in reports.items():
        dep = r["deployed"]
        print(
            f"{mode:10s} {_pct(r.get('accuracy_10fold')):>9s} {_pct(r['eer']):>7s} "
            f"{_pct(r['tar_at_far_1pct']):>8s} {_pct(r['tar_at_far_0_1pct']):>9s} "
            f"{_pct(dep['accuracy']):>9s} {_pct(dep['far']):>7s} {_pct(dep['frr']):>7s}"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m server.face eval --engine", description=__doc__)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--engine", choices=ROOM_ENGINES, required=True)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N pairs")
    ap.add_argument("--cache", type=Path, default=None, help="model cache directory")
    ap.add_argument("--embeddings", type=Path, default=None, help="embedding cache (.npz)")
    ap.add_argument("--refresh", action="store_true", help="recompute the embedding cache")
    ap.add_argument("--no-dlib-flip", action="store_true")
    ap.add_argument("--sface-flip", action="store_true")
    args = ap.parse_args(argv)
    pairs = load_pairs(args.data)[: args.limit] if args.limit else load_pairs(args.data)
    rels = sorted({p.a for p in pairs} | {p.b for p in pairs})
    t0 = time.monotonic()
    vectors, timings, path, cached = load_or_embed(
        args.data, rels, workers=max(1, args.workers), model_cache=args.cache,
        path=args.embeddings, refresh=args.refresh,
    )  # fmt: skip
    d1, d2 = pair_distances(
        pairs, vectors, dlib_flip=not args.no_dlib_flip, sface_flip=args.sface_flip
    )
    same = np.array([p.same for p in pairs])
    has_folds = all(p.fold is not None for p in pairs) and len({p.fold for p in pairs}) > 1
    folds = np.array([p.fold for p in pairs]) if has_folds else None
    order = [args.engine, *[m for m in ROOM_ENGINES if m != args.engine]]
    reports = {m: report_mode(m, d1, d2, same, folds) for m in order}
    live = pair_distances(pairs, vectors, sface_flip=args.sface_flip, live_probe=True)
    for mode in ("both", "fused"):
        reports[f"{mode}-live"] = report_mode(mode, *live, same, folds)
    print(
        f"{len(rels)} images ({len(rels) - len(vectors)} without a face), {len(pairs)} pairs; "
        f"embeddings {'from cache' if cached else 'computed'}: {path}"
    )
    print_table(reports)
    print("(-live: probe as in both/fused rooms, dlib on one chip, vs flip-averaged templates)")
    print("ms per image (median): " + " ".join(f"{k}={v}" for k, v in timings.items()))
    result = {
        "data": str(args.data),
        "headline": args.engine,
        "images": len(rels),
        "failed_images": len(rels) - len(vectors),
        "pairs": len(pairs),
        "dlib_flip": not args.no_dlib_flip,
        "sface_flip": args.sface_flip,
        "embedding_cache": str(path),
        "ms_per_image_median": timings,
        "modes": reports,
        "wall_seconds": round(time.monotonic() - t0, 1),
    }
    curves = {m: reports[m]["curve"] for m in ROOM_ENGINES}
    line = {"set": f"{args.data.resolve().name} ({len(pairs)} pairs)", "curves": curves,
            "params": {"sface_threshold": Scorer().sface_threshold,
                       "fusion": Scorer().fusion.as_dict()}}  # fmt: skip
    result["calibration_line"] = line
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0
