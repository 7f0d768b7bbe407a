"""People, their templates per engine and (opt-in) photos, in the SQLite store."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .records import (
    Face,
    Person,
    StoreError,
    clean_external_id,
    clean_name,
    engine_family,
)
from .sql import Conn, Row, StoreBase
from .sqlite_rows import (
    EMBEDDING_DIM,
    FaceInput,
    _audit,
    _bump_gallery,
    _owned_person,
    _owned_room,
    _per_engine,
    _person,
)


class PeopleMixin(StoreBase):
    # -- persons, templates and photos --

    def add_person(
        self,
        room_id: str,
        name: str,
        external_id: str | None = None,
        *,
        owner_id: str | None = None,
    ) -> Person:
        with self._tx() as db:
            if owner_id is None:
                if not db.execute("SELECT 1 FROM rooms WHERE id=?", (room_id,)).fetchone():
                    raise StoreError("unknown_room", "no such room")
            else:
                _owned_room(db, room_id, owner_id)
            name = clean_name(name, "person name")
            external_id = clean_external_id(external_id)
            person = Person(uuid.uuid4().hex, room_id, name, external_id, time.time())
            db.execute(
                "INSERT INTO persons VALUES (?,?,?,?,?)",
                (person.id, room_id, person.name, external_id, person.created),
            )
        return person

    def person(self, person_id: str, owner_id: str | None = None) -> Person:
        """A person by id; with ``owner_id`` another owner's person is ``unknown_person``."""
        rows = self._rows(
            "SELECT p.*, r.owner_id FROM persons p JOIN rooms r ON r.id=p.room_id WHERE p.id=?",
            (person_id,),
        )
        if not rows or (owner_id is not None and rows[0]["owner_id"] != owner_id):
            raise StoreError("unknown_person", "no such person")
        return _person(rows[0])

    def persons(self, room_id: str) -> list[Person]:
        rows = self._rows("SELECT * FROM persons WHERE room_id=? ORDER BY created", (room_id,))
        return [_person(r) for r in rows]

    def update_person(self, person_id: str, owner_id: str, changes: Mapping[str, Any]) -> Person:
        with self._tx() as db:
            _owned_person(db, person_id, owner_id)
            values: dict[str, Any] = {}
            for key, value in changes.items():
                if key == "name":
                    values["name"] = clean_name(value, "person name")
                elif key == "external_id":
                    values["external_id"] = clean_external_id(value)
                else:
                    raise StoreError("bad_field", f"unknown person field '{key}'")
            for column, value in values.items():
                db.execute(f"UPDATE persons SET {column}=? WHERE id=?", (value, person_id))
            return _person(db.execute("SELECT * FROM persons WHERE id=?", (person_id,)).fetchone())

    def face_counts(self, room_id: str) -> dict[str, int]:
        """Templates per person of a room (enrolment status at a glance)."""
        rows = self._rows(
            "SELECT p.id, COUNT(t.id) AS n FROM persons p LEFT JOIN templates t "
            "ON t.person_id=p.id AND t.source_id IS NULL WHERE p.room_id=? GROUP BY p.id",
            (room_id,),
        )
        return {r["id"]: int(r["n"]) for r in rows}

    def add_templates(self, person_id: str, embeddings: np.ndarray, engine: str) -> int:
        vectors = np.asarray(embeddings, dtype=np.float32).reshape(-1, EMBEDDING_DIM)
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM persons WHERE id=?", (person_id,)).fetchone():
                raise StoreError("unknown_person", "no such person")
            for vector in vectors:
                self._insert_template(db, person_id, vector, engine, time.time())
        return len(vectors)

    def _insert_template(
        self,
        db: Conn,
        person_id: str,
        vector: np.ndarray,
        engine: str,
        now: float,
        source_id: int | None = None,
    ) -> int:
        sealed = self._sealer.seal(np.asarray(vector, np.float32).tobytes(), person_id)
        _bump_gallery(db, person_id)
        row = db.execute(
            "INSERT INTO templates (person_id, engine, sealed, created, source_id) "
            "VALUES (?,?,?,?,?) RETURNING id",
            (person_id, engine_family(engine), sealed, now, source_id),
        ).fetchone()
        return int(row[0])

    def _insert_face(
        self,
        db: Conn,
        person_id: str,
        embedding: np.ndarray | Mapping[str, np.ndarray],
        engine: str,
        now: float,
    ) -> tuple[int, tuple[str, ...]]:
        """One photo's templates: the primary one, then one per other engine."""
        items = _per_engine(embedding, engine)
        primary = self._insert_template(db, person_id, items[0][1], items[0][0], now)
        for other, vector in items[1:]:
            self._insert_template(db, person_id, vector, other, now, source_id=primary)
        return primary, tuple(e for e, _ in items)

    def add_faces(
        self, person_id: str, owner_id: str | None, faces: Sequence[FaceInput], engine: str
    ) -> list[Face]:
        """Enrol several photos of one person at once: all stored or none.

        A photo is kept (sealed) only when given and the room retains photos.
        """
        now = time.time()
        added: list[Face] = []
        with self._tx() as db:
            if owner_id is None:
                row = db.execute(
                    "SELECT r.retain_photos FROM persons p JOIN rooms r ON r.id=p.room_id "
                    "WHERE p.id=?",
                    (person_id,),
                ).fetchone()
                if row is None:
                    raise StoreError("unknown_person", "no such person")
                retain = bool(row["retain_photos"])
            else:
                retain = _owned_person(db, person_id, owner_id).retain_photos
            for embedding, photo, mime in faces:
                template_id, engines = self._insert_face(db, person_id, embedding, engine, now)
                photo_id = None
                if retain and photo is not None:
                    photo_id = uuid.uuid4().hex
                    db.execute(
                        "INSERT INTO photos VALUES (?,?,?,?,?,?)",
                        (
                            photo_id,
                            template_id,
                            person_id,
                            mime,
                            self._sealer.seal(photo, f"photo:{person_id}"),
                            now,
                        ),
                    )
                added.append(Face(template_id, person_id, engines[0], now, photo_id, engines))
            _audit(
                db,
                "person.enrolled",
                {"photos": len(faces)},
                person_id=person_id,
                room_id=db.execute(
                    "SELECT room_id FROM persons WHERE id=?", (person_id,)
                ).fetchone()["room_id"],
            )
        return added

    def faces(self, person_id: str, owner_id: str | None = None) -> list[Face]:
        self.person(person_id, owner_id)
        rows = self._rows(
            "SELECT t.id, t.person_id, t.engine, t.created, t.source_name, t.quality, "
            "ph.id AS photo_id, "
            f"(SELECT {self.dialect.group_concat.format('d.engine')} FROM templates d "
            "WHERE d.source_id=t.id) AS more "
            "FROM templates t LEFT JOIN photos ph ON ph.template_id=t.id "
            "WHERE t.person_id=? AND t.source_id IS NULL ORDER BY t.id",
            (person_id,),
        )
        return [
            Face(
                r["id"],
                r["person_id"],
                r["engine"],
                r["created"],
                r["photo_id"],
                (r["engine"], *sorted(set((r["more"] or "").split(",")) - {""})),
                r["source_name"],
                r["quality"],
            )  # fmt: skip
            for r in rows
        ]

    def label_faces(self, labels: Sequence[tuple[int, str, str]]) -> None:
        """(template id, source file name, quality summary) of freshly enrolled photos:
        what the owner sees of a photo that is not kept."""
        with self._tx() as db:
            for face_id, name, quality in labels:
                db.execute(
                    "UPDATE templates SET source_name=?, quality=? WHERE id=?",
                    (name[:200], quality[:200], face_id),
                )

    def delete_face(self, person_id: str, face_id: int, owner_id: str) -> None:
        with self._tx() as db:
            _owned_person(db, person_id, owner_id)
            cur = db.execute(
                "DELETE FROM templates WHERE id=? AND person_id=? AND source_id IS NULL",
                (face_id, person_id),
            )
            if cur.rowcount == 0:
                raise StoreError("unknown_face", "no such face")
            _bump_gallery(db, person_id)

    def photo(self, person_id: str, photo_id: str, owner_id: str) -> tuple[bytes, str]:
        """A retained photo, decrypted: (bytes, mime type)."""
        self.person(person_id, owner_id)
        rows = self._rows(
            "SELECT mime, sealed FROM photos WHERE id=? AND person_id=?", (photo_id, person_id)
        )
        if not rows:
            raise StoreError("unknown_photo", "no such photo")
        return self._sealer.open(rows[0]["sealed"], f"photo:{person_id}"), str(rows[0]["mime"])

    def enrol_person(
        self,
        room_id: str,
        name: str,
        embeddings: np.ndarray | Mapping[str, np.ndarray],
        engine: str,
        external_id: str | None = None,
    ) -> Person:
        """Create a person with their templates in one transaction: all or nothing.

        ``embeddings``: (N, 128) of ``engine``, or engine -> (N, 128) with row i of every
        engine coming from photo i."""
        if isinstance(embeddings, Mapping):
            per = {e: np.asarray(v, np.float32).reshape(-1, EMBEDDING_DIM)
                   for e, v in embeddings.items()}  # fmt: skip
            counts = {len(v) for v in per.values()}
            if len(counts) > 1:
                raise StoreError("bad_templates", "every engine needs one vector per photo")
            n = counts.pop() if counts else 0
            faces: list[np.ndarray | Mapping[str, np.ndarray]] = [
                {e: v[i] for e, v in per.items()} for i in range(n)
            ]
        else:
            faces = list(np.asarray(embeddings, dtype=np.float32).reshape(-1, EMBEDDING_DIM))
        if len(faces) == 0:
            raise StoreError("no_templates", "at least one usable photo is needed to enrol")
        name = clean_name(name, "person name")
        person = Person(uuid.uuid4().hex, room_id, name, clean_external_id(external_id))
        now = time.time()
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM rooms WHERE id=?", (room_id,)).fetchone():
                raise StoreError("unknown_room", "no such room")
            db.execute(
                "INSERT INTO persons VALUES (?,?,?,?,?)",
                (person.id, room_id, person.name, person.external_id, now),
            )
            for face in faces:
                self._insert_face(db, person.id, face, engine, now)
        return person

    def templates(self, person_id: str, engine: str = "dlib") -> np.ndarray:
        """The person's templates of one engine, (T, 128)."""
        rows = self._rows(
            "SELECT sealed FROM templates WHERE person_id=? AND engine=? ORDER BY id",
            (person_id, engine_family(engine)),
        )
        return self._open_rows(person_id, rows)

    def gallery(self, room_id: str, engine: str = "dlib") -> dict[str, np.ndarray]:
        """Person -> (T, 128) templates of one engine, for the room's people who have any."""
        rows = self._rows(
            "SELECT t.person_id, t.sealed FROM templates t JOIN persons p "
            "ON p.id = t.person_id WHERE p.room_id=? AND t.engine=? ORDER BY t.id",
            (room_id, engine_family(engine)),
        )
        grouped: dict[str, list[Row]] = {}
        for row in rows:
            grouped.setdefault(row["person_id"], []).append(row)
        return {pid: self._open_rows(pid, group) for pid, group in grouped.items()}

    def gallery_version(self, room_id: str) -> tuple[int, int]:
        """(gallery revision, 0) for the room: changes whenever the room's gallery does,
        so callers can cache the decrypted gallery. The revision is bumped in the same
        transaction as every template insert or delete (``_bump_gallery``), so it holds
        across processes and nodes sharing the database (docs/scale.md, "Store"), even
        when SQLite reuses a deleted template's id; and it is one indexed row, where a
        count of the room's templates cost milliseconds per join at 10 000 templates
        (``bench/bench_store.py``). The second element keeps the interface's shape."""
        rows = self._rows("SELECT gallery_rev FROM rooms WHERE id=?", (room_id,))
        return (int(rows[0][0]), 0) if rows else (0, 0)

    def engine_coverage(self, room_id: str) -> dict[str, tuple[str, ...]]:
        """Person -> the template engines they have templates for (enrolled people only)."""
        rows = self._rows(
            "SELECT DISTINCT t.person_id, t.engine FROM templates t JOIN persons p "
            "ON p.id = t.person_id WHERE p.room_id=? ORDER BY t.engine",
            (room_id,),
        )
        out: dict[str, tuple[str, ...]] = {}
        for r in rows:
            out[r["person_id"]] = (*out.get(r["person_id"], ()), r["engine"])
        return out

    def photos_missing_engine(
        self, engine: str, room_id: str | None = None
    ) -> list[tuple[str, int, bytes]]:
        """Kept photos whose face has no template of ``engine``: (person id, face id,
        decrypted photo), for the template back-fill."""
        family = engine_family(engine)
        rows = self._rows(
            "SELECT ph.person_id, ph.template_id, ph.sealed FROM photos ph "
            "JOIN persons p ON p.id = ph.person_id "
            "WHERE (CAST(? AS TEXT) IS NULL OR p.room_id = ?) AND NOT EXISTS "
            "(SELECT 1 FROM templates t WHERE t.engine = ? "
            "AND (t.id = ph.template_id OR t.source_id = ph.template_id)) "
            "ORDER BY ph.created",
            (room_id, room_id, family),
        )
        return [
            (r["person_id"], int(r["template_id"]),
             self._sealer.open(r["sealed"], f"photo:{r['person_id']}"))
            for r in rows
        ]  # fmt: skip

    def add_engine_template(self, face_id: int, engine: str, vector: np.ndarray) -> bool:
        """Add ``engine``'s template to an enrolled face (a primary template); False when
        the face is gone or already has one (back-fills may race with deletions)."""
        family = engine_family(engine)
        with self._tx() as db:
            row = db.execute(
                "SELECT person_id, engine FROM templates WHERE id=? AND source_id IS NULL",
                (face_id,),
            ).fetchone()
            if row is None or row["engine"] == family:
                return False
            if db.execute(
                "SELECT 1 FROM templates WHERE source_id=? AND engine=?", (face_id, family)
            ).fetchone():
                return False
            vec = np.asarray(vector, np.float32).reshape(EMBEDDING_DIM)
            self._insert_template(db, row["person_id"], vec, family, time.time(), face_id)
        return True

    def _open_rows(self, person_id: str, rows: list[Row]) -> np.ndarray:
        vectors = [
            np.frombuffer(self._sealer.open(r["sealed"], person_id), dtype=np.float32) for r in rows
        ]
        if not vectors:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return np.stack(vectors)

    def delete_person(self, person_id: str, owner_id: str | None = None) -> None:
        """Remove the person with templates, photos and invites; the audit keeps a tombstone."""
        with self._tx() as db:
            if owner_id is None:
                row = db.execute("SELECT room_id FROM persons WHERE id=?", (person_id,)).fetchone()
                if row is None:
                    raise StoreError("unknown_person", "no such person")
                room_id = str(row["room_id"])
            else:
                room_id = _owned_person(db, person_id, owner_id).id
            _bump_gallery(db, person_id)
            db.execute("DELETE FROM persons WHERE id=?", (person_id,))
            _audit(db, "person.deleted", {}, room_id=room_id, person_id=person_id)
