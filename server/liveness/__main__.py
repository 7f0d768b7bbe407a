"""``python -m server.liveness eval --data DIR [--json OUT]``: measure the liveness checks."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..face.engine import FaceEngine
from .evaluate import evaluate, print_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.liveness")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="APCER/BPCER of the passive and active checks on a folder")
    ev.add_argument("--data", type=Path, required=True, help="folder with video_cases.csv")
    ev.add_argument("--json", type=Path, default=None, help="write the report here")
    ev.add_argument("--fps", type=float, default=5.0, help="sampling rate (the gate's)")
    args = parser.parse_args(argv)
    if not (args.data / "video_cases.csv").is_file():
        print(f"{args.data}/video_cases.csv not found", file=sys.stderr)
        return 2
    report = evaluate(args.data, FaceEngine.load(), fps=args.fps)
    print_report(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
