"""``python -m server.liveness eval --policy P [--json OUT]``: the gate's liveness decisions.

With ``--policy`` (any liveness policy; several comma-separated) every shared clip, every
generated print attack (``--attacks DIR``, rendered there first if missing) and every
still is run through the real gate (:mod:`server.liveness.gate_eval`). Without it, the
older cue-level report (:mod:`server.liveness.evaluate`) scores whole clips and runs
challenges scheduled from each clip's observed actions. ``--shard i/n`` runs every n-th
case (parallel processes, stills in shard 0 only); ``report A.json B.json ...`` prints
the shards' reports combined.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from ..config import REPO_ROOT, load_settings
from ..face.engine import FaceEngine
from .evaluate import evaluate, print_report
from .sample import LivenessPolicy

DEFAULT_DATA = Path(
    os.environ.get("VIDEOGATE_TEST_DATA", str(REPO_ROOT.parent / "shared" / "data"))
) / "faces"
DEFAULT_ATTACKS = REPO_ROOT / "var" / "attacks"


def _gate_eval(args: argparse.Namespace) -> int:
    from . import gate_eval as ge
    from .attacks import generate_set

    settings = load_settings()
    policies = [ge.gate_policy(settings, LivenessPolicy.parse(p)) for p in args.policy.split(",")]
    if args.parallax_only:  # ablation: the pixel cues never fire
        policies = [dataclasses.replace(p, passive=dataclasses.replace(
            p.passive, enclosure=math.inf, glare=math.inf, moire=math.inf, gamut=math.inf))
            for p in policies]
    fps = args.fps or settings.gate.sample_fps
    track = settings.face.track_landmarks if args.track is None else args.track == "on"
    engine = FaceEngine.load(settings.model_cache, embedder=settings.face.embedder,
                             track_landmarks=track)
    cases = ge.read_cases(args.data)
    if args.attacks is not None:
        if not (args.attacks / "video_cases.csv").is_file():
            print(f"rendering print attacks into {args.attacks}", file=sys.stderr)
            generate_set(args.data, args.attacks)
        generated = ge.read_cases(args.attacks)
        cases += generated[: args.limit] if args.limit else generated
    shard, shards = (int(x) for x in args.shard.split("/"))
    cases = [c for k, c in enumerate(cases) if k % shards == shard]
    reports = [ge.Report(p.liveness.value, fps) for p in policies]
    galleries: dict[Path, tuple[np.ndarray | None, str]] = {}
    for n, case in enumerate(cases, 1):
        results = ge.run_case_policies(engine, case, policies, fps, args.seed, galleries)
        for report, result in zip(reports, results, strict=True):
            report.cases.append(result)
        if args.progress:
            said = "; ".join(f"{r.verdict} {r.reason or ''} {r.detail}".strip() for r in results)
            print(f"[{n}/{len(cases)}] {case.name}: {said}", file=sys.stderr)
    summaries = []
    for policy, report in zip(policies, reports, strict=True):
        if policy.liveness.passive and shard == 0:
            for still in sorted((args.data / "spoof").glob("*.*")):
                report.cases.append(ge.run_still(engine, still, policy.passive))
        summary = report.summary()
        ge.print_report(summary, all_cases=not args.brief)
        print()
        summaries.append(summary)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summaries[0] if len(summaries) == 1 else summaries,
                                        indent=2))
    return 0


def _report(paths: list[Path], brief: bool) -> int:
    """The shards' JSON reports combined, one per policy."""
    from . import gate_eval as ge

    reports: dict[str, ge.Report] = {}
    for path in paths:
        loaded = json.loads(path.read_text())
        for summary in loaded if isinstance(loaded, list) else [loaded]:
            report = reports.setdefault(
                summary["policy"], ge.Report(summary["policy"], summary["sample_fps"])
            )
            report.cases += [ge.CaseResult(**c) for c in summary["per_case"]]
    for report in reports.values():
        ge.print_report(report.summary(), all_cases=not brief)
        print()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.liveness")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="APCER per attack species and BPCER on a folder")
    ev.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with video_cases.csv")
    ev.add_argument("--json", type=Path, default=None, help="write the report here")
    ev.add_argument("--policy", default=None,
                    help="run the real gate with this liveness policy (off, passive, active, "
                         "active+passive; several comma-separated share one analysis); "
                         "without it: the cue-level report")
    ev.add_argument("--attacks", type=Path, default=DEFAULT_ATTACKS,
                    help="generated print attacks (rendered here when missing)")
    ev.add_argument("--no-attacks", dest="attacks", action="store_const", const=None)
    ev.add_argument("--limit", type=int, default=0, help="only the first N generated attacks")
    ev.add_argument("--seed", type=int, default=0, help="challenge draw (gate eval)")
    ev.add_argument("--brief", action="store_true", help="omit refused generated prints")
    ev.add_argument("--track", choices=("on", "off"),
                    help="landmark tracking between detector frames (default: [face] "
                         "track_landmarks)")
    ev.add_argument("--parallax-only", action="store_true",
                    help="ablation: switch the passive pixel cues off (gate eval)")
    ev.add_argument("--progress", action="store_true", help="one line per case on stderr")
    ev.add_argument("--fps", type=float, default=None,
                    help="sampling rate (default: [gate] sample_fps; 5 for the cue report)")
    ev.add_argument("--shard", default="0/1", help="i/n: every n-th case (gate eval)")
    rp = sub.add_parser("report", help="combine gate-eval JSON reports (shards)")
    rp.add_argument("json", type=Path, nargs="+")
    rp.add_argument("--brief", action="store_true", help="omit refused generated prints")
    args = parser.parse_args(argv)
    if args.command == "report":
        return _report(args.json, args.brief)
    if not (args.data / "video_cases.csv").is_file():
        print(f"{args.data}/video_cases.csv not found", file=sys.stderr)
        return 2
    if args.policy is not None:
        return _gate_eval(args)
    report = evaluate(args.data, FaceEngine.load(), fps=args.fps or 5.0)
    print_report(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
