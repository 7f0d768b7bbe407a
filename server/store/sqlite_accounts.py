"""Owners and their API keys, in the SQLite store."""

from __future__ import annotations

import secrets
import time
import uuid

from .records import (
    ApiKey,
    Owner,
    StoreError,
    clean_name,
)
from .sql import StoreBase
from .sqlite_rows import (
    API_KEY_PREFIX,
    _api_key,
    _hash_token,
    _owner,
)


class AccountsMixin(StoreBase):
    # -- owners and API keys --

    def create_owner(self, email: str, password_hash: str) -> Owner:
        owner = Owner(uuid.uuid4().hex, email.strip().lower(), time.time())
        with self._tx() as db:
            if db.execute("SELECT 1 FROM owners WHERE email=?", (owner.email,)).fetchone():
                raise StoreError("email_taken", "an account with this email exists")
            db.execute(
                "INSERT INTO owners (id, email, password_hash, created) VALUES (?,?,?,?)",
                (owner.id, owner.email, password_hash, owner.created),
            )
        return owner

    def owner_credentials(self, email: str) -> tuple[Owner, str]:
        """The owner and their password hash, for sign-in only."""
        rows = self._rows("SELECT * FROM owners WHERE email=?", (email.strip().lower(),))
        if not rows:
            raise StoreError("unknown_owner", "no such account")
        return _owner(rows[0]), str(rows[0]["password_hash"])

    def set_password_hash(self, owner_id: str, password_hash: str) -> None:
        """Same password, new hash parameters (rehash at sign-in): sessions stay valid."""
        with self._tx() as db:
            db.execute("UPDATE owners SET password_hash=? WHERE id=?", (password_hash, owner_id))

    def change_password(self, owner_id: str, password_hash: str) -> Owner:
        """A new password ends every session issued before it (the version moves on)."""
        with self._tx() as db:
            db.execute(
                "UPDATE owners SET password_hash=?, session_version=session_version+1 WHERE id=?",
                (password_hash, owner_id),
            )
        return self.owner(owner_id)

    def end_sessions(self, owner_id: str) -> Owner:
        """Sign out everywhere: cookies issued under the old version stop working."""
        with self._tx() as db:
            db.execute(
                "UPDATE owners SET session_version=session_version+1 WHERE id=?", (owner_id,)
            )
        return self.owner(owner_id)

    def owner(self, owner_id: str) -> Owner:
        rows = self._rows("SELECT * FROM owners WHERE id=?", (owner_id,))
        if not rows:
            raise StoreError("unknown_owner", "no such account")
        return _owner(rows[0])

    def create_api_key(self, owner_id: str, name: str) -> tuple[ApiKey, str]:
        """A new key; the secret is returned once and only its SHA-256 is kept."""
        name = clean_name(name, "key name")
        key_id = secrets.token_hex(6)
        secret = f"{API_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(key_id, owner_id, name, time.time(), None, False)
        with self._tx() as db:
            db.execute(
                "INSERT INTO api_keys (id, owner_id, name, key_hash, created) VALUES (?,?,?,?,?)",
                (key.id, owner_id, name, _hash_token(secret), key.created),
            )
        return key, secret

    def api_keys(self, owner_id: str) -> list[ApiKey]:
        rows = self._rows("SELECT * FROM api_keys WHERE owner_id=? ORDER BY created", (owner_id,))
        return [_api_key(r) for r in rows]

    def revoke_api_key(self, owner_id: str, key_id: str) -> None:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE api_keys SET revoked=1 WHERE id=? AND owner_id=?", (key_id, owner_id)
            )
            if cur.rowcount == 0:
                raise StoreError("unknown_key", "no such API key")

    def owner_by_api_key(self, secret: str) -> Owner:
        """Authenticate a bearer key (constant work per lookup: one indexed hash match)."""
        if not secret.startswith(API_KEY_PREFIX) or len(secret) > 200:
            raise StoreError("bad_key", "invalid API key")
        with self._tx() as db:
            row = db.execute(
                "SELECT o.*, k.id AS key_id FROM api_keys k JOIN owners o ON o.id=k.owner_id "
                "WHERE k.key_hash=? AND k.revoked=0",
                (_hash_token(secret),),
            ).fetchone()
            if row is None:
                raise StoreError("bad_key", "invalid or revoked API key")
            db.execute("UPDATE api_keys SET last_used=? WHERE id=?", (time.time(), row["key_id"]))
        return Owner(row["id"], row["email"], row["created"])
