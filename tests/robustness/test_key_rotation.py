"""Keys at rest: every ciphertext names its key, and a leaked template key can be
replaced (``python -m server rotate-keys``) without losing data, even when the
rotation is cut short."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.__main__ import main
from server.store import open_store
from server.store.crypto import MAGIC, Sealer, TemplateKeyError, key_id

ROWS = (
    ("templates", "sealed"),
    ("photos", "sealed"),
    ("webhooks", "sealed_secret"),
)


def blobs(data_dir: Path) -> list[bytes]:
    db = sqlite3.connect(data_dir / "videogate.sqlite3")
    try:
        return [
            bytes(b) for table, col in ROWS for (b,) in db.execute(f"SELECT {col} FROM {table}")
        ]
    finally:
        db.close()


def populate(data_dir: Path) -> dict[str, object]:
    store = open_store(data_dir)
    try:
        owner = store.create_owner("keys@example.org", "x")
        room = store.create_room("Keys", owner_id=owner.id, settings={"retain_photos": True})
        person = store.add_person(room.id, "Ada", owner_id=owner.id)
        vector = np.random.default_rng(3).standard_normal(128).astype(np.float32)
        photo = [(vector, b"photo-bytes", "image/jpeg")]
        (face,) = store.add_faces(person.id, owner.id, photo, "dlib")
        hook, secret = store.create_webhook(room.id, "https://hooks.example.org/x")
        assert face.photo_id is not None
        return {"room": room.id, "person": person.id, "photo": face.photo_id, "hook": hook.id,
                "secret": secret, "vector": vector, "owner": owner.id}  # fmt: skip
    finally:
        store.close()


def check_readable(data_dir: Path, expected: dict[str, object]) -> None:
    store = open_store(data_dir)
    try:
        person = str(expected["person"])
        assert np.array_equal(store.templates(person)[0], expected["vector"])
        photo = store.photo(person, str(expected["photo"]), str(expected["owner"]))
        assert photo == (b"photo-bytes", "image/jpeg")
        ((_, secret),) = store.webhook_targets(str(expected["room"]), "meeting.ended")
        assert secret == expected["secret"]
    finally:
        store.close()


def test_ciphertexts_name_their_key(tmp_path: Path) -> None:
    populate(tmp_path)
    kid = key_id((tmp_path / "template.key").read_bytes())
    found = blobs(tmp_path)
    assert len(found) == 3
    assert all(b.startswith(MAGIC + kid) for b in found)


def test_rotate_keys_reencrypts_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = populate(tmp_path)
    old_key = (tmp_path / "template.key").read_bytes()
    assert main(["rotate-keys", "--data-dir", str(tmp_path)]) == 0
    assert "1 templates, 1 photos, 1 webhooks" in capsys.readouterr().out
    new_key = (tmp_path / "template.key").read_bytes()
    assert new_key != old_key and not (tmp_path / "template.key.next").exists()
    assert oct((tmp_path / "template.key").stat().st_mode & 0o777) == "0o600"
    assert all(b.startswith(MAGIC + key_id(new_key)) for b in blobs(tmp_path))
    old = Sealer(old_key)
    with pytest.raises(TemplateKeyError):  # the old key opens nothing any more
        old.open(blobs(tmp_path)[0], str(expected["person"]))
    check_readable(tmp_path, expected)


def test_values_from_before_key_ids_open_and_are_rotated(tmp_path: Path) -> None:
    expected = populate(tmp_path)
    key = (tmp_path / "template.key").read_bytes()
    nonce = os.urandom(12)
    vector = np.asarray(expected["vector"], np.float32).tobytes()
    legacy = nonce + AESGCM(key).encrypt(nonce, vector, str(expected["person"]).encode())
    db = sqlite3.connect(tmp_path / "videogate.sqlite3")
    db.execute("UPDATE templates SET sealed=?", (legacy,))
    db.commit()
    db.close()
    check_readable(tmp_path, expected)  # the old layout still opens
    assert main(["rotate-keys", "--data-dir", str(tmp_path)]) == 0
    new_id = key_id((tmp_path / "template.key").read_bytes())
    assert all(b.startswith(MAGIC + new_id) for b in blobs(tmp_path))
    check_readable(tmp_path, expected)


def test_rotation_cut_short_after_commit_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = populate(tmp_path)

    def crash(*_args: object) -> None:
        raise OSError("power cut")

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", crash)
        assert main(["rotate-keys", "--data-dir", str(tmp_path)]) == 2
    pending = (tmp_path / "template.key.next").read_bytes()
    assert all(b.startswith(MAGIC + key_id(pending)) for b in blobs(tmp_path))
    check_readable(tmp_path, expected)  # the server opens both keys meanwhile
    assert main(["rotate-keys", "--data-dir", str(tmp_path)]) == 0  # and finishes
    assert (tmp_path / "template.key").read_bytes() == pending
    check_readable(tmp_path, expected)


def test_env_key_rotation_needs_the_new_key_in_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    old, new = os.urandom(32), os.urandom(32)
    monkeypatch.setenv("VIDEOGATE_TEMPLATE_KEY", base64.b64encode(old).decode())
    expected = populate(tmp_path)
    assert main(["rotate-keys", "--data-dir", str(tmp_path)]) == 2  # no new key given
    monkeypatch.setenv("VIDEOGATE_TEMPLATE_KEY_NEW", base64.b64encode(new).decode())
    assert main(["rotate-keys", "--data-dir", str(tmp_path)]) == 0
    assert all(b.startswith(MAGIC + key_id(new)) for b in blobs(tmp_path))
    monkeypatch.setenv("VIDEOGATE_TEMPLATE_KEY", base64.b64encode(new).decode())
    check_readable(tmp_path, expected)
