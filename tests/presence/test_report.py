"""Attendance reports: built from audit records, signed, and tampering named precisely."""

from __future__ import annotations

import copy
import json
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.__main__ import main
from server.report import build_report, report_csv, sign_report, verify_report
from server.report.keys import load_or_create_signing_key, public_key_info
from server.store.records import AuditRecord, Meeting

MEETING = Meeting("m1", "r1", 1000.0, 1100.0)


def rec(ts: float, event: str, pid: str | None, **details: object) -> AuditRecord:
    return AuditRecord(ts, "r1", "person-" + pid if pid else None, pid, event, dict(details))


RECORDS = [
    rec(1000.0, "participant.joined", "p1", name="Ada"),
    rec(1003.0, "attempt.failed", "p1", name="Ada", reason="liveness", distance=0.3,
        detail="timed_out:blink"),
    rec(1005.0, "participant.admitted", "p1", name="Ada", distance=0.31, kind="admission",
        liveness="active+passive"),
    rec(1001.0, "participant.joined", "p2", name="=Bob"),
    rec(1008.0, "participant.admitted", "p2", name="=Bob", distance=0.2),
    rec(1020.0, "reverify.requested", "p1", name="Ada"),
    rec(1025.0, "reverify.passed", "p1", name="Ada", distance=0.29, reverify=True),
    rec(1040.0, "presence.lost", "p2", name="=Bob", faces=0),
    rec(1060.0, "presence.summary", "p2", name="=Bob", checks=5, passed=3, skipped=1),
    rec(1060.0, "participant.left", "p2", name="=Bob", by_choice=True),
    rec(1100.0, "meeting.ended", None),
]  # fmt: skip


def report() -> dict:  # type: ignore[type-arg]
    return build_report(MEETING, "Maths", RECORDS, generated=1200.0, live={"p1": {"checks": 10,
                        "passed": 9, "skipped": 0}})  # fmt: skip


def test_report_contents() -> None:
    r = report()
    assert r["meeting"]["room_name"] == "Maths" and r["meeting"]["ended"] == 1100.0
    ada, bob = r["participants"]
    assert (ada["joined"], ada["admitted"], ada["left"]) == (1000.0, 1005.0, None)
    assert [(v["kind"], v["result"]) for v in ada["verifications"]] == [
        ("admission", "failed"), ("admission", "passed"), ("reverify", "passed")
    ]  # fmt: skip
    assert ada["verifications"][0]["liveness"] == "failed:timed_out:blink"
    assert ada["presence"] == {"checks": 10, "passed": 9, "skipped": 0, "ratio": 0.9}
    assert ada["present_s"] == 95.0  # admitted until the meeting ended
    assert bob["presence"]["ratio"] == 0.6 and bob["left"] == 1060.0 and bob["present_s"] == 52.0
    assert [e["event"] for e in bob["events"]] == ["presence.lost"]
    assert [e["event"] for e in r["events"]] == ["meeting.ended"]
    csv_text = report_csv(r)
    assert csv_text.splitlines()[0].startswith("participant_id,name")
    assert "'=Bob" in csv_text  # spreadsheet formulas neutralised


def test_signed_report_verifies_and_survives_reformatting() -> None:
    key = Ed25519PrivateKey.generate()
    envelope = sign_report(report(), key)
    reparsed = json.loads(json.dumps(envelope, indent=4))
    result = verify_report(reparsed, key.public_key())
    assert result.ok, result.problems


def test_tampering_is_named() -> None:
    key = Ed25519PrivateKey.generate()
    envelope = sign_report(report(), key)

    changed = copy.deepcopy(envelope)
    changed["report"]["participants"][1]["presence"]["ratio"] = 1.0
    problems = verify_report(changed, key.public_key()).problems
    assert problems == ["changed: participants[p2].presence (=Bob)"]

    removed = copy.deepcopy(envelope)
    del removed["report"]["participants"][1]
    problems = verify_report(removed).problems
    assert "removed: participant p2" in problems and "changed: participants" in problems

    times = copy.deepcopy(envelope)
    times["report"]["meeting"]["ended"] = 2000.0
    assert verify_report(times).problems == ["changed: meeting.ended"]

    forged = copy.deepcopy(envelope)
    forged["signature"]["sections"]["meeting.ended"] = "0" * 64
    problems = verify_report(forged).problems
    assert any("signature does not match" in p for p in problems)

    other = Ed25519PrivateKey.generate()
    resigned = sign_report(times["report"], other)
    assert verify_report(resigned).ok  # integrity alone...
    problems = verify_report(resigned, key.public_key()).problems
    assert any("signed with another key" in p for p in problems)  # ...but not our key


def test_key_file_is_private_and_stable(tmp_path: Path) -> None:
    key = load_or_create_signing_key(tmp_path)
    mode = stat.S_IMODE(os.stat(tmp_path / "signing.key").st_mode)
    assert mode == 0o600
    again = load_or_create_signing_key(tmp_path)
    assert public_key_info(key) == public_key_info(again)


def test_verify_report_command(tmp_path: Path, capsys: object) -> None:
    key = load_or_create_signing_key(tmp_path)
    envelope = sign_report(report(), key)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(envelope))
    assert main(["verify-report", str(good), "--data-dir", str(tmp_path)]) == 0
    envelope["report"]["participants"][0]["left"] = 1001.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(envelope))
    assert main(["verify-report", str(bad)]) == 1
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "OK: signature valid" in out and "changed: participants[p1].left (Ada)" in out
    pub = tmp_path / "pub.json"
    pub.write_text(json.dumps(public_key_info(Ed25519PrivateKey.generate())))
    assert main(["verify-report", str(good), "--key", str(pub)]) == 1


def test_unverifiable_presence_is_in_the_report() -> None:
    records = [
        *RECORDS[:5],
        rec(1030.0, "presence.unverifiable", "p2", name="=Bob", faces=0, checks=2),
        rec(
            1045.0,
            "presence.restored",
            "p2",
            name="=Bob",
            faces=1,
            cleared=["presence.unverifiable"],
        ),
    ]
    r = build_report(MEETING, "Maths", records, generated=1200.0)
    bob = next(p for p in r["participants"] if p["participant_id"] == "p2")
    assert [e["event"] for e in bob["events"]] == ["presence.unverifiable", "presence.restored"]
