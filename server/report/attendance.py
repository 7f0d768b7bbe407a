"""The attendance list a teacher reads: one row per person, present / late / absent.

Why per person and not per session: a person may open the link twice (a refused try,
a dropped connection); the report's ``participants`` keep every session, the
attendance list adds them up. Everyone enrolled in the room is on the list, so the
invited people who never came are there too ("absent, never came"). Pure: the
signed report carries the list (``build_report``), so a printed certificate can be
checked against the signature.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Admitted more than this after the meeting's first arrival: "late".
LATE_AFTER_S = 300.0


def attendance(
    participants: Iterable[dict[str, Any]],
    roster: Sequence[tuple[str, str]],
    started: float,
    *,
    late_after_s: float = LATE_AFTER_S,
) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    for person_id, name in roster:
        rows[person_id] = _row(person_id, name, enrolled=True)
    for p in participants:
        key = p["person_id"] or f"visit:{p['participant_id']}"
        row = rows.get(key)
        if row is None:
            row = rows[key] = _row(p["person_id"], p["name"], enrolled=False)
        row["visits"] += 1
        row["participant_ids"].append(p["participant_id"])
        if row["name"] is None:
            row["name"] = p["name"]
        if p["admitted"] is not None:
            row["arrived"] = min(row["arrived"] or p["admitted"], p["admitted"])
        if p["left"] is not None:
            row["left"] = max(row["left"] or p["left"], p["left"])
        row["present_s"] = round(row["present_s"] + p["present_s"], 3)
        row["camera_off_s"] = round(row["camera_off_s"] + p.get("camera_off_s", 0.0), 3)
        row["refused_attempts"] += sum(1 for v in p["verifications"] if v["result"] != "passed")
        row["host_override"] = row["host_override"] or any(
            v["kind"] == "host_override" for v in p["verifications"]
        )
        stats = p["presence"]
        row["checks"] += stats["checks"]
        row["checks_passed"] += stats["passed"]
    out = []
    for row in rows.values():
        row["status"], row["note"] = _status(row, started, late_after_s)
        row["minutes_present"] = round(row["present_s"] / 60.0, 1)
        out.append(row)
    order = {"present": 0, "late": 1, "absent": 2, "refused": 3}
    out.sort(key=lambda r: (order[r["status"]], str(r["name"] or "").lower()))
    return {"late_after_s": late_after_s, "people": out}


def _row(person_id: str | None, name: str | None, *, enrolled: bool) -> dict[str, Any]:
    return {
        "person_id": person_id,
        "name": name,
        "enrolled": enrolled,
        "participant_ids": [],
        "visits": 0,
        "arrived": None,
        "left": None,
        "present_s": 0.0,
        "camera_off_s": 0.0,
        "checks": 0,
        "checks_passed": 0,
        "refused_attempts": 0,
        "host_override": False,
    }


def _status(row: dict[str, Any], started: float, late_after_s: float) -> tuple[str, str]:
    """(present / late / absent / refused, a note in plain words)."""
    if row["arrived"] is None:
        if not row["enrolled"]:
            return "refused", "not let in (not recognised as anyone enrolled)"
        if row["visits"]:
            return "absent", "came but was not let in"
        return "absent", "never came"
    note = "let in by the host" if row["host_override"] else ""
    minutes = (row["arrived"] - started) / 60.0
    if row["arrived"] - started > late_after_s:
        return "late", f"{minutes:.0f} min after the start" + (f"; {note}" if note else "")
    return "present", note


# -- the spreadsheet --

BOM = "\ufeff"  # so Excel opens UTF-8 (names with accents) correctly
CSV_HEADER = (
    "Name", "Status", "Minutes present", "Arrived", "Left", "Minutes with camera off",
    "Presence checks passed", "Presence checks", "Refused attempts", "Note",
)  # fmt: skip


def zone(name: str | None) -> tzinfo:
    """The owner's time zone (their browser's, passed as ``tz``), else UTC."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return dt.UTC


def local_time(ts: float | None, tz: tzinfo) -> str:
    """``2026-03-04 09:05`` in ``tz``: a spreadsheet reads it as a date and time."""
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M")


def attendance_csv(report: Mapping[str, Any], tz: tzinfo = dt.UTC) -> str:
    """One row per person; UTF-8 with a BOM, CRLF rows, every text cell quoted, formulas
    neutralised; times local to ``tz`` (named in the header of the time columns)."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r\n")
    label = str(tz)
    writer.writerow(
        [f"{h} ({label})" if h in ("Arrived", "Left") else h for h in CSV_HEADER]
    )
    for row in report.get("attendance", {}).get("people", []):
        writer.writerow(
            [
                safe_cell(row["name"]),
                row["status"],
                row["minutes_present"],
                local_time(row["arrived"], tz),
                local_time(row["left"], tz),
                round(row["camera_off_s"] / 60.0, 1),
                row["checks_passed"],
                row["checks"],
                row["refused_attempts"],
                row["note"],
            ]
        )
    return BOM + out.getvalue()


def safe_cell(value: Any) -> str:
    """Neutralise spreadsheet formulas in names (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
