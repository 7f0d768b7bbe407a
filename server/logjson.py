"""Log set-up: readable text, or one JSON object per line (``[server] log_format``).

Why the standard library and not ``python-json-logger``: what a collector needs
(time, level, logger, message, the exception, and whatever ``extra={...}`` fields a
call site attached, e.g. ``room`` or ``participant``) is one small ``Formatter``
subclass; a dependency would add nothing we use, and one more pin to keep.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One line per record: ``{"time", "level", "logger", "message", ...extra}``."""

    def __init__(self, static: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._static = dict(static or {})

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **self._static,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _iso(created: float) -> str:
    """UTC, millisecond precision, ``Z``: sortable and unambiguous across nodes."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def setup_logging(log_format: str, *, node_id: str = "", level: int = logging.INFO) -> None:
    """Configure the root logger once per process (``serve`` and each worker).

    In JSON, every line of a worker carries its ``node`` and ``pid`` so the lines of N
    workers sharing one stream can be told apart.
    """
    handler = logging.StreamHandler()
    if log_format == "json":
        static: dict[str, Any] = {"pid": os.getpid()}
        if node_id:
            static["node"] = node_id
        handler.setFormatter(JsonFormatter(static))
    else:
        prefix = f"[{node_id}] " if node_id else ""
        handler.setFormatter(logging.Formatter(prefix + TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
