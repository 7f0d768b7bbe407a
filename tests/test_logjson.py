"""``[server] log_format = "json"``: one parseable object per line (server/logjson.py)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from server.config import ConfigError, load_settings
from server.logjson import JsonFormatter, setup_logging


def _emit(formatter: logging.Formatter) -> list[dict[str, object]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("videogate.test.json")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("participant %s refused", "p-1", extra={"room": "r-9", "participant": "p-1"})
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            logger.exception("analysis failed")
    finally:
        logger.removeHandler(handler)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_record_is_one_json_line_with_extra_fields() -> None:
    first, second = _emit(JsonFormatter({"node": "n1/0"}))
    assert first["level"] == "warning" and first["logger"] == "videogate.test.json"
    assert first["message"] == "participant p-1 refused"
    assert first["room"] == "r-9" and first["participant"] == "p-1"
    assert first["node"] == "n1/0"
    assert str(first["time"]).endswith("Z") and "T" in str(first["time"])
    assert "args" not in first and "msg" not in first  # LogRecord internals stay out
    # A multi-line traceback stays inside one line of output.
    assert second["level"] == "error" and "ValueError: boom" in str(second["exception"])


def test_setup_logging_json_replaces_the_root_handlers() -> None:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        setup_logging("json", node_id="host:8080/1")
        (handler,) = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        setup_logging("text")
        (handler,) = root.handlers
        assert not isinstance(handler.formatter, JsonFormatter)
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved:
            root.addHandler(h)
        root.setLevel(level)


def test_log_format_is_validated() -> None:
    assert load_settings(env={}).server.log_format == "text"
    env = {"VIDEOGATE_SERVER_LOG_FORMAT": "json"}
    assert load_settings(env=env).server.log_format == "json"
    with pytest.raises(ConfigError, match="log_format"):
        load_settings(env={"VIDEOGATE_SERVER_LOG_FORMAT": "xml"})
