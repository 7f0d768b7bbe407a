"""Several store instances on one database, as several nodes (or worker processes)
sharing it: a cached gallery must be invalidated on every node when templates change,
concurrent writers must keep the store's rules, and PostgreSQL's schema is versioned."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from server.config import ConfigError, load_settings
from server.store import StoreError, open_store, pg
from server.store.pg import PgStore
from server.store.pg_migrations import PG_MIGRATIONS
from server.store.rotate import rotate_keys
from tests.pgserver import PgServer
from tests.store_backends import Backend


def _vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=128).astype(np.float32)


def test_another_node_sees_every_template_change(backend: Backend) -> None:
    node_a, node_b = backend.open(), backend.open()
    owner = node_a.create_owner("o@example.org", "h")
    room = node_a.create_room("R", owner_id=owner.id)
    person = node_a.add_person(room.id, "P", owner_id=owner.id)
    seen = [node_b.gallery_version(room.id)]

    def changed() -> bool:
        version = node_b.gallery_version(room.id)
        fresh = version not in seen
        seen.append(version)
        return fresh

    first, second = node_a.add_faces(
        person.id, owner.id, [(_vec(1), None, ""), (_vec(2), None, "")], "dlib"
    )
    assert changed()
    assert set(node_b.gallery(room.id)) == {person.id}
    # The newest face deleted, then one added: SQLite may give the new template the
    # deleted one's id, so (count, newest id) alone would repeat an earlier version.
    node_a.delete_face(person.id, second.id, owner.id)
    assert changed()
    (third,) = node_a.add_faces(person.id, owner.id, [(_vec(3), None, "")], "dlib")
    assert changed()
    assert np.array_equal(node_b.templates(person.id)[-1], _vec(3))
    assert node_a.add_engine_template(first.id, "sface", _vec(4))
    assert changed()
    node_a.delete_person(person.id, owner.id)
    assert changed()
    assert node_b.gallery(room.id) == {}
    assert third.id != first.id


def test_concurrent_writers_on_two_nodes_keep_unique_rules(backend: Backend) -> None:
    """Check-then-insert (unique e-mail) holds when two nodes race: one account, and the
    other node gets the store's own error, not a database exception."""
    nodes = [backend.open(), backend.open()]
    results: list[str] = []
    barrier = threading.Barrier(2)

    def sign_up(index: int) -> None:
        barrier.wait()
        for n in range(20):
            try:
                nodes[index].create_owner(f"user{n}@example.org", "h")
                results.append("created")
            except StoreError as err:
                results.append(err.code)

    threads = [threading.Thread(target=sign_up, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(set(results)) == ["created", "email_taken"]
    assert results.count("created") == 20 and results.count("email_taken") == 20


def test_postgres_schema_is_versioned_and_migrations_run_once(
    postgres_url: str, tmp_path: Path
) -> None:
    backend = Backend("postgres", tmp_path, postgres_url)
    try:
        stores: list[PgStore] = []
        errors: list[BaseException] = []

        def start() -> None:  # nodes starting together: one migrates, the rest wait
            try:
                stores.append(backend.open())
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=start) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == [] and len(stores) == 3
        assert all(s.schema_version == len(PG_MIGRATIONS) for s in stores)
        assert stores[0].integrity_ok()
        rows = stores[0]._rows("SELECT version FROM schema_version ORDER BY version")
        assert [r[0] for r in rows] == list(range(1, len(PG_MIGRATIONS) + 1))
    finally:
        backend.close_all()


def test_store_url_must_be_postgres(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        open_store(tmp_path, "mysql://db.example.org/videogate")
    with pytest.raises(ConfigError):
        load_settings(env={"VIDEOGATE_STORE_URL": "sqlite:///tmp/x"})
    assert load_settings(env={}).store.url == ""  # the embedded default


def test_store_recovers_when_the_database_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pooled connections die with the server; the next calls get fresh ones instead
    of failing, and nothing committed before the restart is lost."""
    monkeypatch.setattr(pg, "IDLE_CHECK_S", 0.0)  # every lent connection is checked
    server = PgServer()
    try:
        server.start()
        store = open_store(tmp_path, server.create_database(), pool_size=2)
        try:
            room = store.create_room("Before")
            server.restart(signal.SIGKILL)
            assert [r.id for r in store.rooms()] == [room.id]
            store.create_room("After")
            assert sorted(r.name for r in store.rooms()) == ["After", "Before"]
        finally:
            store.close()
    finally:
        server.stop()


def test_rotate_keys_reseals_every_value_on_both_engines(backend: Backend) -> None:
    store = backend.open()
    owner = store.create_owner("keys@example.org", "x")
    room = store.create_room("Keys", owner_id=owner.id, settings={"retain_photos": True})
    person = store.add_person(room.id, "P", owner_id=owner.id)
    store.add_faces(person.id, owner.id, [(_vec(5), b"photo", "image/png")], "dlib")
    hook, secret = store.create_webhook(room.id, "https://h.example/x", owner_id=owner.id)
    old_key = (backend.data_dir / "template.key").read_bytes()
    store.close()
    done = rotate_keys(backend.data_dir, env={}, url=backend.url)
    assert done.counts == {"templates": 1, "photos": 1, "webhooks": 1}
    assert (backend.data_dir / "template.key").read_bytes() != old_key
    fresh = backend.open()  # opens with the new key alone
    assert np.array_equal(fresh.templates(person.id), _vec(5)[None, :])
    assert fresh.webhook_targets(room.id, "meeting.ended") == [(hook, secret)]
