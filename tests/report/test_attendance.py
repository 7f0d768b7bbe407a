"""The attendance list a teacher reads: minutes present, present / late / absent, the
invited people who never came, camera off apart from absence, and a CSV that opens
cleanly in a spreadsheet."""

from __future__ import annotations

import csv
import io
from typing import Any

from server.report import build_report
from server.report.attendance import BOM, attendance_csv, zone
from server.store.records import AuditRecord, Meeting

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC
MEETING = Meeting("m1", "r1", T0, T0 + 3600)
ROSTER = [("ada", "Ada"), ("bob", "=Bob"), ("cyd", "Cyd"), ("dee", "Dée")]


def rec(t: float, event: str, pid: str | None, person: str | None, **d: object) -> AuditRecord:
    return AuditRecord(T0 + t, "r1", person, pid, event, dict(d))


RECORDS = [
    # Ada: on time, 50 minutes, camera off for 10 of them
    rec(0, "participant.joined", "p1", "ada", name="Ada"),
    rec(20, "participant.admitted", "p1", "ada", name="Ada", distance=0.3, kind="admission"),
    rec(600, "presence.camera_off", "p1", "ada", name="Ada", faces=0),
    rec(1200, "presence.restored", "p1", "ada", name="Ada", cleared=["presence.camera_off"]),
    rec(3020, "participant.left", "p1", "ada", name="Ada", by_choice=True),
    # Bob: 15 minutes late, two sessions (a dropped connection), sent to the lobby once
    rec(900, "participant.joined", "p2", "bob", name="=Bob"),
    rec(900, "participant.admitted", "p2", "bob", name="=Bob", distance=0.2, kind="admission"),
    rec(1500, "participant.left", "p2", "bob", name="=Bob", by_choice=False),
    rec(1560, "participant.joined", "p3", "bob", name="=Bob"),
    rec(1560, "participant.admitted", "p3", "bob", name="=Bob", distance=0.2, kind="admission"),
    rec(1800, "host.sent_to_lobby", "p3", "bob", name="=Bob", host_reason="check"),
    rec(1860, "participant.admitted", "p3", "bob", name="=Bob", distance=0.2, kind="admission"),
    # Cyd: someone else used Cyd's link, refused twice
    rec(100, "participant.joined", "p4", "cyd", name="Cyd"),
    rec(110, "attempt.failed", "p4", "cyd", name="Cyd", reason="not_recognised"),
    rec(130, "participant.denied", "p4", "cyd", name="Cyd", reason="not_recognised"),
    # a stranger in the open link, never let in
    rec(200, "participant.joined", "p5", None, name="Guest"),
    rec(230, "participant.denied", "p5", None, name="Guest", reason="not_recognised"),
    rec(3600, "meeting.ended", None, None),
]  # fmt: skip


def report() -> dict[str, Any]:
    return build_report(MEETING, "Maths", RECORDS, generated=T0 + 4000, roster=ROSTER)


def people() -> dict[str, dict[str, Any]]:
    return {str(r["name"]): r for r in report()["attendance"]["people"]}


def test_minutes_present_and_status_per_person() -> None:
    rows = people()
    ada, bob, cyd, dee, guest = (rows[n] for n in ("Ada", "=Bob", "Cyd", "Dée", "Guest"))
    assert (ada["status"], ada["minutes_present"]) == ("present", 50.0)
    assert ada["camera_off_s"] == 600.0  # camera off is counted apart, not as absence
    # Bob: 600 s + (1800 - 1560) s + from 1860 until the meeting ended (3600)
    assert bob["present_s"] == 600 + 240 + 1740 and bob["visits"] == 2
    assert bob["status"] == "late" and bob["note"] == "15 min after the start"
    assert (cyd["status"], cyd["note"], cyd["refused_attempts"]) == (
        "absent", "came but was not let in", 2
    )  # fmt: skip
    assert (dee["status"], dee["note"], dee["visits"]) == ("absent", "never came", 0)
    assert guest["status"] == "refused" and not guest["enrolled"]
    order = [r["name"] for r in report()["attendance"]["people"]]
    assert order == ["Ada", "=Bob", "Cyd", "Dée", "Guest"]


def test_a_host_override_is_noted() -> None:
    records = [
        rec(0, "participant.joined", "p1", "ada", name="Ada"),
        rec(5, "participant.admitted", "p1", "ada", name="Ada", distance=None,
            kind="host_override", liveness="not judged", host="t@x", host_reason="glasses"),
    ]  # fmt: skip
    r = build_report(MEETING, "Maths", records, generated=T0 + 60, roster=ROSTER[:1])
    (ada,) = r["attendance"]["people"]
    assert ada["status"] == "present" and ada["note"] == "let in by the host"
    (v,) = r["participants"][0]["verifications"]
    assert (v["kind"], v["host_reason"]) == ("host_override", "glasses")
    assert v["liveness"] == "not judged"


def test_csv_opens_cleanly_in_a_spreadsheet() -> None:
    text = attendance_csv(report(), zone("Asia/Jakarta"))
    assert text.startswith(BOM) and "\r\n" in text
    rows = list(csv.reader(io.StringIO(text[len(BOM) :])))
    assert rows[0][:5] == [
        "Name", "Status", "Minutes present", "Arrived (Asia/Jakarta)", "Left (Asia/Jakarta)"
    ]  # fmt: skip
    by_name = {r[0]: r for r in rows[1:]}
    assert by_name["Ada"][1:5] == ["present", "50.0", "2026-01-01 07:00", "2026-01-01 07:50"]
    assert "'=Bob" in by_name  # formulas neutralised
    assert by_name["Dée"][1] == "absent" and by_name["Dée"][9] == "never came"
    assert '"Dée","absent"' in text  # text cells quoted, UTF-8 kept


def test_unknown_time_zone_falls_back_to_utc() -> None:
    assert str(zone("Mars/Olympus")) == "UTC" and str(zone(None)) == "UTC"
    assert "Arrived (UTC)" in attendance_csv(report())
