"""PostgreSQL schema migrations, applied in order, the version kept in ``schema_version``.

Append only, like ``migrations.py`` (SQLite's): a released migration is never edited.
Version 1 is SQLite's schema at its version 8 in one step (PostgreSQL started there,
so it has no history to replay). Differences from SQLite, and why:

- ``DOUBLE PRECISION`` where SQLite says ``REAL``: PostgreSQL's ``REAL`` is 4 bytes
  and would round ``time.time()`` to minutes.
- ``BYTEA`` for sealed values (SQLite ``BLOB``).
- Template and audit ids are identities (never reused).
- ``webhook_deliveries.seq`` stands in for SQLite's ``rowid`` (insertion order).
- Flags stay ``INTEGER`` 0/1 so the shared SQL (``revoked=0``) reads the same.

Statements are separated by ``;`` (no functions or triggers).
"""

from __future__ import annotations

PG_MIGRATIONS: list[str] = [
    # 1: everything SQLite has at its migration 8.
    """
    CREATE TABLE owners (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        session_version INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        created DOUBLE PRECISION NOT NULL,
        last_used DOUBLE PRECISION,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX api_keys_owner ON api_keys(owner_id);
    CREATE TABLE rooms (
        id TEXT PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('invite', 'open')),
        threshold DOUBLE PRECISION,
        created DOUBLE PRECISION NOT NULL,
        owner_id TEXT REFERENCES owners(id) ON DELETE CASCADE,
        liveness_policy TEXT NOT NULL DEFAULT 'active+passive',
        max_attempts INTEGER,
        retain_photos INTEGER NOT NULL DEFAULT 0,
        engine TEXT NOT NULL DEFAULT 'dlib',
        presence_interval_s DOUBLE PRECISION,
        link_token TEXT UNIQUE,
        legacy_link INTEGER NOT NULL DEFAULT 0,
        no_flashing INTEGER NOT NULL DEFAULT 0,
        gallery_rev INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX rooms_owner ON rooms(owner_id);
    CREATE TABLE persons (
        id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        external_id TEXT,
        created DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX persons_room ON persons(room_id);
    CREATE TABLE templates (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        person_id TEXT NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
        engine TEXT NOT NULL,
        sealed BYTEA NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        source_id BIGINT REFERENCES templates(id) ON DELETE CASCADE
    );
    CREATE INDEX templates_person ON templates(person_id);
    CREATE INDEX templates_source ON templates(source_id);
    CREATE INDEX templates_person_engine ON templates(person_id, engine);
    CREATE TABLE photos (
        id TEXT PRIMARY KEY,
        template_id BIGINT NOT NULL REFERENCES templates(id) ON DELETE CASCADE,
        person_id TEXT NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
        mime TEXT NOT NULL,
        sealed BYTEA NOT NULL,
        created DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX photos_person ON photos(person_id);
    CREATE TABLE invites (
        token_hash TEXT PRIMARY KEY,
        room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        person_id TEXT REFERENCES persons(id) ON DELETE CASCADE,
        expires DOUBLE PRECISION,
        revoked INTEGER NOT NULL DEFAULT 0,
        created DOUBLE PRECISION NOT NULL,
        id TEXT UNIQUE
    );
    CREATE INDEX invites_room ON invites(room_id);
    CREATE TABLE audit (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        ts DOUBLE PRECISION NOT NULL,
        room_id TEXT,
        person_id TEXT,
        participant_id TEXT,
        event TEXT NOT NULL,
        details TEXT NOT NULL
    );
    CREATE INDEX audit_room ON audit(room_id, ts);
    CREATE TABLE meetings (
        id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        started DOUBLE PRECISION NOT NULL,
        ended DOUBLE PRECISION
    );
    CREATE INDEX meetings_room ON meetings(room_id, started);
    CREATE TABLE webhooks (
        id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        url TEXT NOT NULL,
        sealed_secret BYTEA NOT NULL,
        events TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX webhooks_room ON webhooks(room_id);
    CREATE TABLE webhook_deliveries (
        id TEXT PRIMARY KEY,
        webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
        room_id TEXT NOT NULL,
        event TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_code INTEGER,
        last_error TEXT,
        created DOUBLE PRECISION NOT NULL,
        updated DOUBLE PRECISION NOT NULL,
        seq BIGINT GENERATED ALWAYS AS IDENTITY
    );
    CREATE INDEX webhook_deliveries_hook ON webhook_deliveries(webhook_id, created)
    """,
    # 2: SQLite's 9: invite hints and last use, each template's source file name and
    # quality (what the owner sees when photos are not kept).
    """
    ALTER TABLE invites ADD COLUMN hint TEXT;
    ALTER TABLE invites ADD COLUMN last_used DOUBLE PRECISION;
    ALTER TABLE templates ADD COLUMN source_name TEXT;
    ALTER TABLE templates ADD COLUMN quality TEXT
    """,
    # 3: SQLite's 10: the media plane a room uses (NULL = the server's [media] backend).
    """
    ALTER TABLE rooms ADD COLUMN media_backend TEXT
    """,
]
