"""Verification benchmark over a folder of face photos and labelled pairs.

Layout (as /work/shared/data/faces and /work/shared/data/lfw): ``faces/<identity>/*``,
``pairs.csv`` (``img_a,img_b,same``, paths relative to the folder) and optionally
``pairs_folds.csv`` (same plus ``fold``), which enables the standard LFW 10-fold accuracy
(each fold's threshold chosen on the other nine).

Every image named by a pair is embedded once (in ``--workers`` processes); with several
faces in a photo the one nearest the image centre is used. A pair with an image in which
no face was found counts as a rejection (distance = inf) in every metric.

    python -m server.face eval --data DIR [--json OUT] [--threshold T] [--workers N]
                                [--limit N] [--align dlib|mesh] [--no-flip] [--save NPZ]
                                [--embedder onnx|dlib] [--backend litert|onnx]

Each image is embedded as the engine does it: the mean of the descriptors of the aligned
chip and of its mirror image (``--no-flip``: one chip). ``--embedder dlib`` runs dlib
itself instead of the ONNX port (same descriptors, ~20x slower).
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .matcher import DEFAULT_THRESHOLD

T = TypeVar("T")


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    same: bool
    fold: int | None


def load_pairs(data: Path) -> list[Pair]:
    folds = data / "pairs_folds.csv"
    path = folds if folds.is_file() else data / "pairs.csv"
    with path.open(newline="") as fh:
        return [
            Pair(
                r["img_a"],
                r["img_b"],
                r["same"].strip() == "1",
                int(r["fold"]) if r.get("fold") not in (None, "") else None,
            )
            for r in csv.DictReader(fh)
        ]


# -- per-image work (runs in worker processes) -------------------------------------------

_ENGINE: Any = None
_ROOT: Path = Path(".")


_FLIP = True


def _init_worker(
    root: str, cache: str | None, align: str, flip: bool, embedder: str, backend: str | None
) -> None:
    global _ENGINE, _ROOT, _FLIP
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)
    from .engine import FaceEngine

    _ENGINE = FaceEngine.load(
        Path(cache) if cache else None,
        point_source=align,  # type: ignore[arg-type]
        embedder=embedder,  # type: ignore[arg-type]
        backend=backend,  # type: ignore[arg-type]
    )
    _ROOT = Path(root)
    _FLIP = flip


@dataclass(frozen=True)
class ImageResult:
    rel: str
    embedding: np.ndarray | None
    error: str | None
    faces: int
    timings_ms: dict[str, float]


def _embed_image(rel: str) -> ImageResult:
    from .imageio import ImageError, decode_image

    eng = _ENGINE
    t0 = time.perf_counter()
    try:
        rgb = decode_image((_ROOT / rel).read_bytes())
    except (OSError, ImageError) as exc:
        return ImageResult(rel, None, f"decode: {exc}", 0, {})
    t1 = time.perf_counter()
    dets = eng.detector.detect(rgb)
    t2 = time.perf_counter()
    timings = {"decode": (t1 - t0) * 1000, "detect": (t2 - t1) * 1000}
    if not dets:
        return ImageResult(rel, None, "no face", 0, timings)
    h, w = rgb.shape[:2]
    det = min(
        dets,
        key=lambda d: (
            ((d.box[0] + d.box[2]) / 2 - w / 2) ** 2 + ((d.box[1] + d.box[3]) / 2 - h / 2) ** 2
        ),
    )
    mesh_points = None
    if eng.aligner.source == "mesh":
        mesh_points = eng.mesh.run(rgb, det).points
        t3 = time.perf_counter()
        timings["mesh"] = (t3 - t2) * 1000
        t2 = t3
    chip = eng.aligner.chip(rgb, eng.aligner.five_points(rgb, det, mesh_points))
    t3 = time.perf_counter()
    emb = eng.embed_chip(chip, flip=_FLIP)
    t4 = time.perf_counter()
    timings["align"] = (t3 - t2) * 1000
    timings["embed"] = (t4 - t3) * 1000
    return ImageResult(rel, emb, None, len(dets), timings)


def _progress(items: Iterable[T], total: int, label: str) -> Iterator[T]:
    """A plain progress bar on stderr (only when there is enough work to wait for)."""
    show = total >= 50
    start = time.monotonic()
    done = 0
    last = 0.0
    for item in items:
        done += 1
        now = time.monotonic()
        if show and (now - last > 0.5 or done == total):
            last = now
            frac = done / max(total, 1)
            rate = done / max(now - start, 1e-9)
            eta = (total - done) / max(rate, 1e-9)
            bar = "#" * int(frac * 30)
            sys.stderr.write(f"\r{label} [{bar:<30}] {done}/{total} {rate:5.1f}/s eta {eta:4.0f}s ")
            sys.stderr.flush()
        yield item
    if show:
        sys.stderr.write("\n")


def embed_images(
    root: Path,
    rels: list[str],
    workers: int,
    cache: Path | None,
    align: str,
    flip: bool,
    embedder: str = "onnx",
    backend: str | None = None,
) -> dict[str, ImageResult]:
    args = (str(root), str(cache) if cache else None, align, flip, embedder, backend)
    if workers <= 1:
        _init_worker(*args)
        it: Iterable[ImageResult] = map(_embed_image, rels)
        return {r.rel: r for r in _progress(it, len(rels), "embedding")}
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=args) as pool:
        it = pool.imap_unordered(_embed_image, rels, chunksize=4)
        return {r.rel: r for r in _progress(it, len(rels), "embedding")}


# -- metrics ------------------------------------------------------------------------------


def roc_point(same: np.ndarray, diff: np.ndarray, far: float) -> tuple[float, float] | None:
    """(TAR, threshold) at the largest threshold whose FAR <= ``far``; None if too few
    negatives to measure that FAR (fewer than 1/far)."""
    if len(diff) < int(round(1.0 / far)):
        return None
    diff_sorted = np.sort(diff)
    allowed = int(np.floor(far * len(diff)))  # impostor pairs that may be accepted
    # accept d <= t: choose t just under the (allowed+1)-th smallest impostor distance
    cut = diff_sorted[allowed] if allowed < len(diff_sorted) else np.inf
    tar = float(np.mean(same < cut))
    below = diff_sorted[allowed - 1] if allowed > 0 else -np.inf
    thr = float((cut + below) / 2) if np.isfinite(below) and np.isfinite(cut) else float(cut)
    return tar, thr


def eer(same: np.ndarray, diff: np.ndarray) -> tuple[float, float]:
    """(EER, threshold): where false rejects of ``same`` equal false accepts of ``diff``."""
    cand = np.unique(np.concatenate([same, diff, [-np.inf, np.inf]]))
    cand = cand[np.isfinite(cand)]
    if not len(cand):
        return 1.0, float("nan")
    ts = np.concatenate([[cand[0] - 1e-6], cand])
    frr = np.array([np.mean(same > t) for t in ts])
    far = np.array([np.mean(diff <= t) for t in ts])
    i = int(np.argmin(np.abs(frr - far)))
    return float((frr[i] + far[i]) / 2), float(ts[i])


def best_threshold(d: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy of ``d <= threshold`` on these pairs."""
    fin = np.sort(np.unique(d[np.isfinite(d)]))
    if not len(fin):
        return 0.0, float(np.mean(~same))
    cand = np.concatenate([[fin[0] - 1e-3], (fin[:-1] + fin[1:]) / 2, [fin[-1] + 1e-3]])
    acc = np.array([np.mean((d <= t) == same) for t in cand])
    i = int(np.argmax(acc))
    return float(cand[i]), float(acc[i])


def percentiles(x: np.ndarray) -> dict[str, float]:
    x = x[np.isfinite(x)]
    if not len(x):
        return {}
    qs = (0, 1, 5, 25, 50, 75, 95, 99, 100)
    return {f"p{q}": round(float(np.percentile(x, q)), 4) for q in qs}


def evaluate(
    pairs: list[Pair], results: dict[str, ImageResult], threshold: float
) -> dict[str, Any]:
    d = np.full(len(pairs), np.inf)
    for i, p in enumerate(pairs):
        ea, eb = results[p.a].embedding, results[p.b].embedding
        if ea is not None and eb is not None:
            d[i] = float(np.linalg.norm(ea.astype(np.float64) - eb.astype(np.float64)))
    same = np.array([p.same for p in pairs])
    ds, dd = d[same], d[~same]
    e, e_thr = eer(ds, dd)
    r1 = roc_point(ds, dd, 0.01)
    r01 = roc_point(ds, dd, 0.001)
    acc = float(np.mean((d <= threshold) == same))
    thr_all, acc_all = best_threshold(d, same)
    out: dict[str, Any] = {
        "images": len(results),
        "pairs": len(pairs),
        "same_pairs": int(same.sum()),
        "different_pairs": int((~same).sum()),
        "detection_failures": sum(1 for r in results.values() if r.embedding is None),
        "failed_images": sorted(r.rel for r in results.values() if r.embedding is None),
        "pairs_with_failure": int(np.sum(~np.isfinite(d))),
        "eer": e,
        "eer_threshold": e_thr,
        "tar_at_far_1pct": None if r1 is None else r1[0],
        "threshold_at_far_1pct": None if r1 is None else r1[1],
        "tar_at_far_0_1pct": None if r01 is None else r01[0],
        "threshold_at_far_0_1pct": None if r01 is None else r01[1],
        "threshold": threshold,
        "accuracy": acc,
        "false_rejects": int(np.sum(ds > threshold)),
        "false_accepts": int(np.sum(dd <= threshold)),
        "best_threshold_all_pairs": thr_all,
        "best_accuracy_all_pairs": acc_all,
        "same_distances": percentiles(ds),
        "different_distances": percentiles(dd),
    }
    folds = sorted({p.fold for p in pairs if p.fold is not None})
    if len(folds) >= 2 and all(p.fold is not None for p in pairs):
        fold_of = np.array([p.fold for p in pairs])
        accs, thrs = [], []
        for f in folds:
            train, test = fold_of != f, fold_of == f
            t, _ = best_threshold(d[train], same[train])
            thrs.append(t)
            accs.append(float(np.mean((d[test] <= t) == same[test])))
        out["accuracy_10fold"] = float(np.mean(accs))
        out["accuracy_10fold_std"] = float(np.std(accs))
        out["fold_thresholds"] = [round(t, 4) for t in thrs]
        out["fold_accuracies"] = [round(a, 4) for a in accs]
    stages: dict[str, list[float]] = {}
    for r in results.values():
        for k, v in r.timings_ms.items():
            stages.setdefault(k, []).append(v)
    out["ms_per_stage_median"] = {k: round(float(np.median(v)), 2) for k, v in stages.items()}
    return out


def _fmt(x: float | None, pct: bool = True) -> str:
    if x is None:
        return "n/a (too few negatives)"
    return f"{100 * x:.2f}%" if pct else f"{x:.4f}"


def print_report(r: dict[str, Any]) -> None:
    p = print
    p(
        f"images               {r['images']}  (pairs {r['pairs']}: {r['same_pairs']} same, "
        f"{r['different_pairs']} different)"
    )
    p(
        f"detection failures   {r['detection_failures']} images, {r['pairs_with_failure']} pairs"
        + (f"  {r['failed_images'][:10]}" if r["failed_images"] else "")
    )
    p(f"EER                  {_fmt(r['eer'])} (at distance {r['eer_threshold']:.4f})")
    p(f"TAR @ FAR 1%         {_fmt(r['tar_at_far_1pct'])}")
    p(f"TAR @ FAR 0.1%       {_fmt(r['tar_at_far_0_1pct'])}")
    p(
        f"threshold            {r['threshold']:.4f}: accuracy {_fmt(r['accuracy'])}, "
        f"{r['false_rejects']} false rejects, {r['false_accepts']} false accepts"
    )
    p(
        f"best on all pairs    {r['best_threshold_all_pairs']:.4f}: "
        f"accuracy {_fmt(r['best_accuracy_all_pairs'])}"
    )
    if "accuracy_10fold" in r:
        p(
            f"10-fold accuracy     {_fmt(r['accuracy_10fold'])} "
            f"(std {100 * r['accuracy_10fold_std']:.2f}%), fold thresholds "
            f"{min(r['fold_thresholds']):.3f}-{max(r['fold_thresholds']):.3f}"
        )
    for name in ("same", "different"):
        q = r[f"{name}_distances"]
        p(f"{name + ' distances':<20} " + " ".join(f"{k}={v:.3f}" for k, v in q.items()))
    p("ms per stage (median) " + " ".join(f"{k}={v}" for k, v in r["ms_per_stage_median"].items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m server.face eval", description=__doc__)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N pairs")
    ap.add_argument("--align", choices=("dlib", "mesh"), default=None)
    ap.add_argument("--cache", type=Path, default=None, help="model cache directory")
    ap.add_argument(
        "--no-flip",
        action="store_true",
        help="one chip per image (the live-frame pipeline) instead of the enrolment "
        "pipeline's mean of the chip and its mirror image",
    )
    ap.add_argument("--embedder", choices=("onnx", "dlib"), default="onnx")
    ap.add_argument(
        "--backend", choices=("litert", "onnx"), default=None, help="MediaPipe model runtime"
    )
    ap.add_argument("--save", type=Path, default=None, help="save embeddings (.npz)")
    args = ap.parse_args(argv)
    from .engine import DEFAULT_POINT_SOURCE

    pairs = load_pairs(args.data)
    if args.limit:
        pairs = pairs[: args.limit]
    rels = sorted({p.a for p in pairs} | {p.b for p in pairs})
    t0 = time.monotonic()
    results = embed_images(
        args.data,
        rels,
        max(1, args.workers),
        args.cache,
        args.align or DEFAULT_POINT_SOURCE,
        not args.no_flip,
        args.embedder,
        args.backend,
    )
    if args.save:
        ok = [r for r in results.values() if r.embedding is not None]
        np.savez_compressed(
            args.save,
            names=np.array([r.rel for r in ok]),
            embeddings=np.stack([r.embedding for r in ok if r.embedding is not None]),
        )
    report = evaluate(pairs, results, args.threshold)
    report["flip_average"] = not args.no_flip
    report["embedder"] = args.embedder
    from .runtime import default_backend

    report["backend"] = args.backend or default_backend()
    report["data"] = str(args.data)
    report["align"] = args.align or DEFAULT_POINT_SOURCE
    report["workers"] = args.workers
    report["wall_seconds"] = round(time.monotonic() - t0, 1)
    print_report(report)
    print(f"wall time            {report['wall_seconds']} s with {args.workers} workers")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0
