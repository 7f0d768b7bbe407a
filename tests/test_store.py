"""The SQLite store: encryption at rest, invites, deletion, restart durability."""

from __future__ import annotations

import sqlite3
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from server.store import StoreError, TemplateKeyError, open_store


def test_templates_roundtrip_encrypted_and_survive_restart(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    room = store.create_room("Maths 101")
    person = store.add_person(room.id, "Ada")
    vecs = np.random.default_rng(0).normal(size=(2, 128)).astype(np.float32)
    assert store.add_templates(person.id, vecs, "dlib") == 2
    store.close()
    key_mode = stat.S_IMODE((tmp_path / "template.key").stat().st_mode)
    assert key_mode == 0o600
    raw = (tmp_path / "videogate.sqlite3").read_bytes()
    assert vecs[0].tobytes()[:16] not in raw
    store = open_store(tmp_path)
    assert np.array_equal(store.templates(person.id), vecs)
    assert set(store.gallery(room.id)) == {person.id}
    assert store.integrity_ok()


def test_template_moved_to_another_person_does_not_decrypt(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    room = store.create_room("R")
    a, b = store.add_person(room.id, "A"), store.add_person(room.id, "B")
    store.add_templates(a.id, np.ones((1, 128), np.float32), "dlib")
    store.close()
    db = sqlite3.connect(tmp_path / "videogate.sqlite3")
    db.execute("UPDATE templates SET person_id=?", (b.id,))
    db.commit()
    db.close()
    store = open_store(tmp_path)
    with pytest.raises(TemplateKeyError):
        store.templates(b.id)


def test_invites_resolve_expire_and_revoke(tmp_path: Path) -> None:
    store = open_store(tmp_path)
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


def test_delete_person_removes_everything_and_keeps_tombstone(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    room = store.create_room("R")
    person = store.add_person(room.id, "Eve")
    store.add_templates(person.id, np.ones((3, 128), np.float32), "dlib")
    token = store.create_invite(room.id, person.id)
    store.delete_person(person.id)
    assert store.gallery(room.id) == {}
    with pytest.raises(StoreError):
        store.resolve_invite(room.slug, token)
    assert [r.event for r in store.audit_log(room.id)] == ["person.deleted"]


def test_bad_names_and_duplicate_slugs_are_refused(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.create_room("Same")
    with pytest.raises(StoreError) as err:
        store.create_room("same")
    assert err.value.code == "slug_taken"
    with pytest.raises(StoreError):
        store.create_room("   ")
    with pytest.raises(StoreError):
        store.add_person("nope", "X")


def test_names_with_markup_and_sql_are_stored_verbatim(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    room = store.create_room("R")
    name = "<script>alert(1)</script>'; DROP TABLE persons; --"
    store.add_person(room.id, name)
    assert [p.name for p in store.persons(room.id)] == [name]
