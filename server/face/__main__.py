"""``python -m server.face eval ...`` and ``python -m server.face models ...``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m server.face {eval,models} ...")
        return 0 if args else 2
    cmd, rest = args[0], args[1:]
    if cmd == "eval" and any(a == "--engine" or a.startswith("--engine=") for a in rest):
        from .eval_engines import main as engines_main

        return engines_main(rest)
    if cmd == "eval":
        from .eval import main as eval_main

        return eval_main(rest)
    if cmd == "models":
        from .models import _main as models_main

        return models_main(rest)
    print(f"unknown command {cmd!r}; expected eval or models", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
