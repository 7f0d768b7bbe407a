"""Build a meeting's attendance report from its audit records (pure: no store, no clock).

Why from the audit log: every admission, refusal, re-verification, presence event
and departure is already written there, one transaction each, as it happens, so
the report can be rebuilt at any time (during the meeting too) and never drifts
from what the owner saw. ``live`` adds the presence counters of participants
still in the room (their ``presence.summary`` record is written when they leave).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..store.records import AuditRecord, Meeting
from .attendance import attendance

FORMAT = "videogate-attendance/1"
PRESENCE_EVENTS = (
    "presence.camera_off",
    "presence.lost",
    "identity.mismatch",
    "extra.person",
    "presence.unverifiable",
    "presence.restored",
)
ROOM_EVENTS = ("meeting.ended", "reverify.requested")


def _t(ts: float | None) -> float | None:
    return None if ts is None else round(ts, 3)


def _new_participant(record: AuditRecord) -> dict[str, Any]:
    return {
        "participant_id": record.participant_id,
        "name": record.details.get("name"),
        "person_id": record.person_id,
        "joined": None,
        "admitted": None,
        "left": None,
        "present_s": 0.0,
        "camera_off_s": 0.0,  # admitted with the camera switched off (not absence)
        "verifications": [],
        "presence": {"checks": 0, "passed": 0, "skipped": 0, "ratio": None},
        "events": [],
    }


def build_report(
    meeting: Meeting,
    room_name: str,
    records: Iterable[AuditRecord],
    *,
    generated: float,
    live: Mapping[str, Mapping[str, int]] | None = None,
    roster: Sequence[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """``roster``: (person id, name) of everyone enrolled, so the attendance list names
    the invited people who never came."""
    people: dict[str, dict[str, Any]] = {}
    room_events: list[dict[str, Any]] = []
    in_room_since: dict[str, float] = {}
    camera_off_since: dict[str, float] = {}
    for record in records:
        d = record.details
        pid = record.participant_id
        if pid is None:
            if record.event in ROOM_EVENTS:
                room_events.append({"ts": _t(record.ts), "event": record.event})
            continue
        person = people.get(pid)
        if person is None:
            person = people[pid] = _new_participant(record)
        if record.person_id and not person["person_id"]:
            person["person_id"] = record.person_id
        if d.get("name"):
            person["name"] = d["name"]
        event = record.event
        if event == "participant.joined":
            person["joined"] = _t(record.ts)
        elif event in ("participant.admitted", "reverify.passed"):
            reverify = d.get("reverify") or event == "reverify.passed"
            kind = d.get("kind") or ("reverify" if reverify else "admission")
            person["verifications"].append(
                {
                    "ts": _t(record.ts),
                    "kind": kind,
                    "result": "passed",
                    "distance": d.get("distance"),
                    "liveness": d.get("liveness", "passed"),
                    "reason": None,
                    # let in by the host, not by the check: who and why
                    **({"host": d.get("host"), "host_reason": d.get("host_reason")}
                       if kind == "host_override" else {}),
                }  # fmt: skip
            )
            if kind != "reverify":
                if person["admitted"] is None:
                    person["admitted"] = _t(record.ts)
                in_room_since[pid] = record.ts
        elif event in ("attempt.failed", "participant.denied", "reverify.failed"):
            reason = d.get("reason")
            detail = d.get("detail") or ""
            person["verifications"].append(
                {
                    "ts": _t(record.ts),
                    "kind": "reverify" if d.get("reverify") else "admission",
                    "result": "failed" if event == "attempt.failed" else "denied",
                    "distance": d.get("distance"),
                    "liveness": f"failed:{detail}" if reason == "liveness" else "not judged",
                    "reason": reason,
                }
            )
        elif event in PRESENCE_EVENTS:
            person["events"].append(
                {
                    "ts": _t(record.ts),
                    "event": event,
                    "faces": d.get("faces"),
                    "distance": d.get("distance"),
                }
            )
            if event == "presence.camera_off":
                camera_off_since.setdefault(pid, record.ts)
            elif "presence.camera_off" in (d.get("cleared") or ()):
                _add_span(person, "camera_off_s", camera_off_since.pop(pid, None), record.ts)
        elif event == "host.sent_to_lobby":
            # out of the room until admitted again: not present meanwhile
            person["events"].append({"ts": _t(record.ts), "event": event})
            _add_span(person, "present_s", in_room_since.pop(pid, None), record.ts)
            _add_span(person, "camera_off_s", camera_off_since.pop(pid, None), record.ts)
        elif event == "reverify.requested":
            person["events"].append({"ts": _t(record.ts), "event": event})
        elif event == "presence.summary":
            _add_counts(person["presence"], d)
        elif event == "participant.left":
            person["left"] = _t(record.ts)
            _add_span(person, "present_s", in_room_since.pop(pid, None), record.ts)
            _add_span(person, "camera_off_s", camera_off_since.pop(pid, None), record.ts)
    end = meeting.ended if meeting.ended is not None else generated
    for pid, since in in_room_since.items():  # still in the room
        _add_span(people[pid], "present_s", since, end)
    for pid, since in camera_off_since.items():
        _add_span(people[pid], "camera_off_s", since, end)
    for pid, counts in (live or {}).items():
        if pid in people:
            _add_counts(people[pid]["presence"], counts)
    for person in people.values():
        stats = person["presence"]
        stats["ratio"] = round(stats["passed"] / stats["checks"], 4) if stats["checks"] else None
    participants = sorted(
        people.values(), key=lambda p: (p["joined"] or 0.0, p["participant_id"] or "")
    )
    started = meeting.started
    return {
        "format": FORMAT,
        "meeting": {
            "id": meeting.id,
            "room_id": meeting.room_id,
            "room_name": room_name,
            "started": _t(meeting.started),
            "ended": _t(meeting.ended),
            "generated": _t(generated),
        },
        "participants": participants,
        "events": room_events,
        "attendance": attendance(participants, roster or (), started),
    }


def _add_span(person: dict[str, Any], key: str, since: float | None, until: float) -> None:
    if since is not None:
        person[key] = round(person[key] + max(0.0, until - since), 3)


def _add_counts(stats: dict[str, Any], counts: Mapping[str, Any]) -> None:
    for key in ("checks", "passed", "skipped"):
        value = counts.get(key, 0)
        stats[key] += int(value) if isinstance(value, int | float) else 0


CSV_COLUMNS = (
    "participant_id", "name", "person_id", "joined", "admitted", "left", "present_s",
    "presence_checks", "presence_passed", "presence_ratio", "verifications",
    "failed_verifications", "events",
)  # fmt: skip


def report_csv(report: Mapping[str, Any]) -> str:
    """One row per participant (the JSON is the signed, complete record)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for p in report["participants"]:
        verifications = p["verifications"]
        writer.writerow(
            [
                p["participant_id"],
                _cell(p["name"]),
                p["person_id"] or "",
                _iso(p["joined"]),
                _iso(p["admitted"]),
                _iso(p["left"]),
                p["present_s"],
                p["presence"]["checks"],
                p["presence"]["passed"],
                "" if p["presence"]["ratio"] is None else p["presence"]["ratio"],
                "; ".join(
                    f"{_iso(v['ts'])} {v['kind']} {v['result']}"
                    + ("" if v["distance"] is None else f" d={v['distance']}")
                    + (f" ({v['reason']})" if v["reason"] else "")
                    for v in verifications
                ),
                sum(1 for v in verifications if v["result"] != "passed"),
                "; ".join(f"{_iso(e['ts'])} {e['event']}" for e in p["events"]),
            ]
        )
    return out.getvalue()


def _cell(value: Any) -> str:
    """Neutralise spreadsheet formulas in names (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _iso(ts: float | None) -> str:
    if ts is None:
        return ""
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")
