"""Versioned schema migrations, applied in order and recorded in ``PRAGMA user_version``.

Append only: a released migration is never edited, because databases in the field
already carry its version number. Statements are separated by ``;`` (no triggers).
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: rooms, persons, encrypted templates, hashed invites, audit.
    """
    CREATE TABLE rooms (
        id TEXT PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('invite', 'open')),
        threshold REAL,
        created REAL NOT NULL
    );
    CREATE TABLE persons (
        id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        external_id TEXT,
        created REAL NOT NULL
    );
    CREATE INDEX persons_room ON persons(room_id);
    CREATE TABLE templates (
        id INTEGER PRIMARY KEY,
        person_id TEXT NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
        engine TEXT NOT NULL,
        sealed BLOB NOT NULL,
        created REAL NOT NULL
    );
    CREATE INDEX templates_person ON templates(person_id);
    CREATE TABLE invites (
        token_hash TEXT PRIMARY KEY,
        room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        person_id TEXT REFERENCES persons(id) ON DELETE CASCADE,
        expires REAL,
        revoked INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        room_id TEXT,
        person_id TEXT,
        participant_id TEXT,
        event TEXT NOT NULL,
        details TEXT NOT NULL
    );
    CREATE INDEX audit_room ON audit(room_id, ts);
    """,
    # 2: owner accounts, API keys, per-room settings, retained photos, invite ids.
    # Rooms made by the CLI keep owner_id NULL: they work for participants but no
    # owner account sees them in the web UI or the API.
    """
    CREATE TABLE owners (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created REAL NOT NULL
    );
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        created REAL NOT NULL,
        last_used REAL,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX api_keys_owner ON api_keys(owner_id);
    ALTER TABLE rooms ADD COLUMN owner_id TEXT REFERENCES owners(id) ON DELETE CASCADE;
    ALTER TABLE rooms ADD COLUMN liveness_policy TEXT NOT NULL DEFAULT 'active+passive';
    ALTER TABLE rooms ADD COLUMN max_attempts INTEGER;
    ALTER TABLE rooms ADD COLUMN retain_photos INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rooms ADD COLUMN engine TEXT NOT NULL DEFAULT 'dlib';
    CREATE INDEX rooms_owner ON rooms(owner_id);
    CREATE TABLE photos (
        id TEXT PRIMARY KEY,
        template_id INTEGER NOT NULL REFERENCES templates(id) ON DELETE CASCADE,
        person_id TEXT NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
        mime TEXT NOT NULL,
        sealed BLOB NOT NULL,
        created REAL NOT NULL
    );
    CREATE INDEX photos_person ON photos(person_id);
    ALTER TABLE invites ADD COLUMN id TEXT;
    UPDATE invites SET id = substr(token_hash, 1, 16);
    CREATE UNIQUE INDEX invites_id ON invites(id);
    CREATE INDEX invites_room ON invites(room_id)
    """,
    # 3: certified presence -- meetings (one per live session of a room), webhooks with
    # sealed secrets and their delivery log, the per-room presence check interval.
    """
    CREATE TABLE meetings (
        id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        started REAL NOT NULL,
        ended REAL
    );
    CREATE INDEX meetings_room ON meetings(room_id, started);
    CREATE TABLE webhooks (
        id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        url TEXT NOT NULL,
        sealed_secret BLOB NOT NULL,
        events TEXT NOT NULL,
        created REAL NOT NULL
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
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE INDEX webhook_deliveries_hook ON webhook_deliveries(webhook_id, created);
    ALTER TABLE rooms ADD COLUMN presence_interval_s REAL
    """,
    # 4: templates per face engine (dlib, sface). Every template stored so far is a dlib
    # ResNet vector, whatever embedder name it was stored under ('dlib_resnet_v1', its
    # ONNX port 'dlib_resnet_v1_onnx', 'onnx'...): they all become 'dlib'.
    # One enrolled photo is one "face": its first template (source_id NULL) plus one
    # template per other engine pointing at it, deleted with it. SFace templates for
    # kept photos are computed by `python -m server backfill-templates` (and at start).
    """
    UPDATE templates SET engine = 'dlib';
    ALTER TABLE templates ADD COLUMN source_id INTEGER REFERENCES templates(id) ON DELETE CASCADE;
    CREATE INDEX templates_source ON templates(source_id);
    CREATE INDEX templates_person_engine ON templates(person_id, engine)
    """,
    # 5: owner session versions ("sign out everywhere", password change end old cookies).
    """
    ALTER TABLE owners ADD COLUMN session_version INTEGER NOT NULL DEFAULT 0
    """,
    # 6: unguessable room links (/r/<slug>-<link_token>). Rooms that exist already get a
    # token too, and keep their old /r/<slug> link working (legacy_link = 1) until the
    # owner makes a new link; rooms created from now on answer only with the token.
    """
    ALTER TABLE rooms ADD COLUMN link_token TEXT;
    ALTER TABLE rooms ADD COLUMN legacy_link INTEGER NOT NULL DEFAULT 0;
    UPDATE rooms SET link_token = lower(hex(randomblob(8))), legacy_link = 1;
    CREATE UNIQUE INDEX rooms_link_token ON rooms(link_token)
    """,
    # 7: rooms that never flash the screen (photosensitive participants): the
    # screen-light liveness challenge is replaced by the pose challenge.
    """
    ALTER TABLE rooms ADD COLUMN no_flashing INTEGER NOT NULL DEFAULT 0
    """,
    # 8: a per-room gallery revision, bumped with every template insert or delete, so
    # cached galleries are invalidated reliably (gallery_version), also across nodes.
    """
    ALTER TABLE rooms ADD COLUMN gallery_rev INTEGER NOT NULL DEFAULT 0
    """,
    # 9: invites the owner can tell apart: the first characters of the token (also on
    # the link; 6 of 32 characters, the rest stays secret) and when it was last opened;
    # each enrolled photo's file name and quality, shown when the photo is not kept.
    """
    ALTER TABLE invites ADD COLUMN hint TEXT;
    ALTER TABLE invites ADD COLUMN last_used REAL;
    ALTER TABLE templates ADD COLUMN source_name TEXT;
    ALTER TABLE templates ADD COLUMN quality TEXT
    """,
    # 10: which media plane forwards a room's media (issue 18): NULL = the server's
    # ``[media] backend``; 'builtin' (our SFU) or 'janus' (Janus VideoRoom, docs/janus.md).
    """
    ALTER TABLE rooms ADD COLUMN media_backend TEXT
    """,
]
