"""``python -m server verify-report FILE``: check a signed attendance report offline.

Exit 0 when the report is intact, 1 when it was altered (each altered section is
printed), 2 when the file cannot be read. ``--key`` pins the server's public key
(PEM, base64, or the JSON of /.well-known/videogate-signing-key); ``--data-dir``
takes it from a server's data dir. Without either, the key embedded in the report
is used: that proves the report is intact, not who signed it.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .keys import KEY_FILE, SigningKeyError, load_or_create_signing_key, load_public_key
from .signing import verify_report


def run(path: str, key_file: str | None = None, data_dir: str | None = None) -> int:
    try:
        envelope = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"{path}: cannot read a JSON report ({exc})")
        return 2
    pinned: Ed25519PublicKey | None = None
    try:
        if key_file:
            pinned = load_public_key(Path(key_file).read_text(encoding="utf-8"))
        elif data_dir:
            if not (Path(data_dir) / KEY_FILE).exists():
                print(f"{data_dir}: no {KEY_FILE} here")
                return 2
            pinned = load_or_create_signing_key(Path(data_dir)).public_key()
    except (OSError, ValueError, SigningKeyError) as exc:
        print(f"cannot load the public key: {exc}")
        return 2
    result = verify_report(envelope, pinned)
    source = "pinned key" if pinned is not None else "key embedded in the report (not pinned)"
    if result.ok:
        meeting = envelope["report"].get("meeting", {})
        people = len(envelope["report"].get("participants", []))
        print(
            f"OK: signature valid ({source}, key id {result.key_id}); meeting "
            f"{meeting.get('id')} of {meeting.get('room_name')!r}, {people} participant(s)"
        )
        return 0
    print(f"TAMPERED: {len(result.problems)} problem(s) ({source}):")
    for problem in result.problems:
        print(f"  - {problem}")
    return 1
