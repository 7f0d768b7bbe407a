"""The store on SQLite and PostgreSQL alike (``backend``, tests/store_backends.py):
encryption at rest, invites, deletion, restart durability; SQLite's migrations."""

from __future__ import annotations

import sqlite3
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from server.store import StoreError, TemplateKeyError, open_store
from tests.store_backends import Backend


def test_templates_roundtrip_encrypted_and_survive_restart(backend: Backend) -> None:
    store = backend.open()
    room = store.create_room("Maths 101")
    person = store.add_person(room.id, "Ada")
    vecs = np.random.default_rng(0).normal(size=(2, 128)).astype(np.float32)
    assert store.add_templates(person.id, vecs, "dlib") == 2
    store.close()
    key_mode = stat.S_IMODE((backend.data_dir / "template.key").stat().st_mode)
    assert key_mode == 0o600
    raw = backend.raw_bytes()
    assert vecs[0].tobytes()[:16] not in raw
    store = backend.open()
    assert np.array_equal(store.templates(person.id), vecs)
    assert set(store.gallery(room.id)) == {person.id}
    assert store.integrity_ok()


def test_template_moved_to_another_person_does_not_decrypt(backend: Backend) -> None:
    store = backend.open()
    room = store.create_room("R")
    a, b = store.add_person(room.id, "A"), store.add_person(room.id, "B")
    store.add_templates(a.id, np.ones((1, 128), np.float32), "dlib")
    store.close()
    backend.execute("UPDATE templates SET person_id=?", (b.id,))
    store = backend.open()
    with pytest.raises(TemplateKeyError):
        store.templates(b.id)


def test_invites_resolve_expire_and_revoke(backend: Backend) -> None:
    store = backend.open()
    room = store.create_room("Room A")
    person = store.add_person(room.id, "Bob")
    token = store.create_invite(room.id, person.id, ttl_s=60)
    invite = store.resolve_invite(room.slug, token)
    assert invite.person == person and invite.room.id == room.id
    with pytest.raises(StoreError) as err:
        store.resolve_invite(room.slug, token, now=time.time() + 120)
    assert err.value.code == "expired_invite"
    other = store.create_room("Room B")
    with pytest.raises(StoreError) as err:
        store.resolve_invite(other.slug, token)
    assert err.value.code == "unknown_invite"
    store.revoke_invite(token)
    with pytest.raises(StoreError) as err:
        store.resolve_invite(room.slug, token)
    assert err.value.code == "revoked_invite"


def test_delete_person_removes_everything_and_keeps_tombstone(backend: Backend) -> None:
    store = backend.open()
    room = store.create_room("R")
    person = store.add_person(room.id, "Eve")
    store.add_templates(person.id, np.ones((3, 128), np.float32), "dlib")
    token = store.create_invite(room.id, person.id)
    store.delete_person(person.id)
    assert store.gallery(room.id) == {}
    with pytest.raises(StoreError):
        store.resolve_invite(room.slug, token)
    assert [r.event for r in store.audit_log(room.id)] == ["person.deleted"]


def test_bad_names_and_duplicate_slugs_are_refused(backend: Backend) -> None:
    store = backend.open()
    store.create_room("Same")
    with pytest.raises(StoreError) as err:
        store.create_room("same")
    assert err.value.code == "slug_taken"
    with pytest.raises(StoreError):
        store.create_room("   ")
    with pytest.raises(StoreError):
        store.add_person("nope", "X")


def test_names_with_markup_and_sql_are_stored_verbatim(backend: Backend) -> None:
    store = backend.open()
    room = store.create_room("R")
    name = "<script>alert(1)</script>'; DROP TABLE persons; --"
    store.add_person(room.id, name)
    assert [p.name for p in store.persons(room.id)] == [name]


# -- migration 2: owners, API keys, per-room settings, photos --


def test_version_1_database_migrates_and_keeps_working(tmp_path: Path) -> None:
    from server.store.migrations import MIGRATIONS

    db = sqlite3.connect(tmp_path / "videogate.sqlite3")
    db.executescript(MIGRATIONS[0])
    db.execute("INSERT INTO rooms VALUES ('r1', 'old-room', 'Old', 'invite', NULL, 0)")
    db.execute("INSERT INTO persons VALUES ('p1', 'r1', 'Pat', NULL, 0)")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    store = open_store(tmp_path)
    assert store.schema_version == len(MIGRATIONS) >= 2
    room = store.room_by_slug("old-room")
    assert room.owner_id is None and room.liveness_policy == "active+passive"
    assert room.max_attempts is None and room.retain_photos is False and room.engine == "dlib"
    token = store.create_invite(room.id, "p1")
    assert store.resolve_invite("old-room", token).person.name == "Pat"  # type: ignore[union-attr]
    assert store.integrity_ok()
    store.close()
    assert open_store(tmp_path).schema_version == len(MIGRATIONS)  # idempotent


def test_owner_scoping_hides_other_owners_things(backend: Backend) -> None:
    store = backend.open()
    alice = store.create_owner("Alice@Example.org", "hash-a")
    bob = store.create_owner("bob@example.org", "hash-b")
    with pytest.raises(StoreError) as err:
        store.create_owner("alice@example.org", "again")
    assert err.value.code == "email_taken"
    room = store.create_room("Shared Name", owner_id=alice.id)
    twin = store.create_room("Shared Name", owner_id=bob.id)
    assert twin.slug != room.slug  # owners get a unique link name, no "taken" leak
    person = store.add_person(room.id, "P", owner_id=alice.id)
    for call in (
        lambda: store.room(room.id, bob.id),
        lambda: store.update_room(room.id, bob.id, {"name": "x"}),
        lambda: store.update_room(room.id, bob.id, {"threshold": 99}),  # 404 before 422
        lambda: store.delete_room(room.id, bob.id),
        lambda: store.add_person(room.id, "M", owner_id=bob.id),
        lambda: store.person(person.id, bob.id),
        lambda: store.delete_person(person.id, bob.id),
        lambda: store.issue_invite(room.id, None, owner_id=bob.id),
    ):
        with pytest.raises(StoreError) as err:
            call()
        assert err.value.code in ("unknown_room", "unknown_person")
    assert [r.id for r in store.rooms(bob.id)] == [twin.id]
    assert store.room(room.id, alice.id).name == "Shared Name"


def test_room_settings_are_validated(backend: Backend) -> None:
    store = backend.open()
    owner = store.create_owner("o@example.org", "h")
    room = store.create_room("R", owner_id=owner.id)
    changed = store.update_room(
        room.id,
        owner.id,
        {"threshold": 0.5, "max_attempts": 4, "liveness_policy": "off", "mode": "open"},
    )
    assert (changed.threshold, changed.max_attempts, changed.liveness_policy, changed.mode) == (
        0.5,
        4,
        "off",
        "open",
    )
    for bad in (
        {"threshold": 0},
        {"threshold": float("nan")},
        {"max_attempts": 11},
        {"liveness_policy": "sometimes"},
        {"engine": "x"},
        {"retain_photos": "yes"},
        {"owner_id": "me"},
        {"name": "a\x00b"},
    ):
        with pytest.raises(StoreError):
            store.update_room(room.id, owner.id, bad)
    assert store.room(room.id) == changed  # refusals changed nothing


def test_add_faces_is_all_or_nothing_and_photos_are_sealed(backend: Backend) -> None:
    store = backend.open()
    owner = store.create_owner("o@example.org", "h")
    room = store.create_room("R", owner_id=owner.id, settings={"retain_photos": True})
    person = store.add_person(room.id, "P", owner_id=owner.id)
    good = np.ones(128, np.float32)
    photo = b"PHOTO-BYTES-" * 50
    with pytest.raises(ValueError):
        store.add_faces(
            person.id, owner.id, [(good, photo, "image/png"), (np.ones(5), None, "")], "dlib"
        )
    assert store.faces(person.id) == []  # the first insert was rolled back
    (face,) = store.add_faces(person.id, owner.id, [(good, photo, "image/png")], "dlib")
    assert face.photo_id is not None
    assert store.photo(person.id, face.photo_id, owner.id) == (photo, "image/png")
    store.close()
    raw = backend.raw_bytes()
    assert b"PHOTO-BYTES-" not in raw
    store = backend.open()
    store.update_room(room.id, owner.id, {"retain_photos": False})
    assert [f.photo_id for f in store.faces(person.id)] == [None]
    assert len(store.templates(person.id)) == 1


def test_api_keys_are_stored_hashed_and_revocable(backend: Backend) -> None:
    store = backend.open()
    owner = store.create_owner("o@example.org", "h")
    key, secret = store.create_api_key(owner.id, "CI")
    assert store.owner_by_api_key(secret) == owner
    assert store.api_keys(owner.id)[0].last_used is not None
    store.close()
    assert secret.encode() not in backend.raw_bytes()
    store = backend.open()
    store.revoke_api_key(owner.id, key.id)
    with pytest.raises(StoreError):
        store.owner_by_api_key(secret)
    with pytest.raises(StoreError):
        store.owner_by_api_key("not-a-key")


def test_delete_room_cascades_and_keeps_tombstone(backend: Backend) -> None:
    store = backend.open()
    owner = store.create_owner("o@example.org", "h")
    room = store.create_room("R", owner_id=owner.id, settings={"retain_photos": True})
    person = store.add_person(room.id, "P", owner_id=owner.id)
    store.add_faces(person.id, owner.id, [(np.ones(128), b"img", "image/png")], "dlib")
    info, token = store.issue_invite(room.id, person.id, owner_id=owner.id)
    store.delete_room(room.id, owner.id)
    with pytest.raises(StoreError):
        store.resolve_invite(room.slug, token)
    for table in ("persons", "templates", "photos", "invites"):
        assert store._rows(f"SELECT COUNT(*) FROM {table}")[0][0] == 0, table
    assert store.audit_log(room.id)[-1].event == "room.deleted"


def test_faces_list_their_engines_and_backfill_finds_the_missing_ones(backend: Backend) -> None:
    store = backend.open()
    owner = store.create_owner("o@example.org", "h")
    room = store.create_room("R", owner_id=owner.id, settings={"retain_photos": True})
    person = store.add_person(room.id, "P", owner_id=owner.id)
    both = {"dlib": np.ones(128, np.float32), "sface": np.full(128, 2, np.float32)}
    dlib_only = np.full(128, 3, np.float32)
    store.add_faces(
        person.id, owner.id, [(both, b"a", "image/png"), (dlib_only, b"b", "image/png")], "dlib"
    )
    assert [f.engines for f in store.faces(person.id)] == [("dlib", "sface"), ("dlib",)]
    missing = store.photos_missing_engine("sface")
    assert [(p, photo) for p, _, photo in missing] == [(person.id, b"b")]
    assert store.photos_missing_engine("sface", room.id) == missing
    assert store.photos_missing_engine("sface", "another-room") == []
    assert store.add_engine_template(missing[0][1], "sface", np.zeros(128, np.float32))
    assert store.photos_missing_engine("sface") == []
    assert store.engine_coverage(room.id) == {person.id: ("dlib", "sface")}
    assert len(store.gallery(room.id, "sface")[person.id]) == 2
