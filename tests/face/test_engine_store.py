"""Templates per engine in the store: migration 4 from a pre-SFace database, enrolment
with every engine, the SFace back-fill from kept photos and the "re-enrol for sface"
flag for people whose photos were not kept; presence honours the room's engine."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from pathlib import Path

import numpy as np

from server.backfill import backfill_templates, blocking_engines, reenrol_needed
from server.face.engine import FaceEngine
from server.presence.check import presence_check
from server.store import open_store
from server.store.crypto import Sealer, load_or_create_key
from server.store.migrations import MIGRATIONS
from server.verify import CheckTarget, FaceChecker, load_target

OBAMA = ["faces/obama/1.jpg", "faces/obama/2.jpg"]
BIDEN = "faces/biden/1.jpg"


def _v3_database(tmp_path: Path, engine: FaceEngine, faces_dir: Path) -> dict[str, str]:
    """A database as the release before SFace left it: schema 3, dlib templates named
    after the embedder, one room keeping photos (Obama) and one person without (Biden)."""
    db = sqlite3.connect(tmp_path / "videogate.sqlite3")
    for script in MIGRATIONS[:3]:
        for statement in filter(str.strip, script.split(";")):
            db.execute(statement)
    db.execute("PRAGMA user_version=3")
    sealer = Sealer(load_or_create_key(tmp_path))
    now = time.time()
    db.execute(
        "INSERT INTO rooms (id, slug, name, mode, threshold, created, retain_photos) "
        "VALUES ('r1', 'course', 'Course', 'open', NULL, ?, 1)",
        (now,),
    )
    ids = {"obama": "p-obama", "biden": "p-biden"}
    for pid, name in ((ids["obama"], "Obama"), (ids["biden"], "Biden")):
        db.execute("INSERT INTO persons VALUES (?, 'r1', ?, NULL, ?)", (pid, name, now))
    names = {ids["obama"]: "dlib_resnet_v1_onnx", ids["biden"]: "onnx"}  # as stored before
    for rel, pid, keep in [(OBAMA[0], ids["obama"], True), (BIDEN, ids["biden"], False)]:
        data = (faces_dir / rel).read_bytes()
        result = engine.enrol_photo(data)
        assert result.embedding is not None
        cur = db.execute(
            "INSERT INTO templates (person_id, engine, sealed, created) VALUES (?,?,?,?)",
            (pid, names[pid], sealer.seal(result.embedding.tobytes(), pid), now),
        )
        if keep:
            db.execute(
                "INSERT INTO photos VALUES (?,?,?,?,?,?)",
                (f"ph-{pid}", cur.lastrowid, pid, "image/jpeg",
                 sealer.seal(data, f"photo:{pid}"), now),
            )  # fmt: skip
    db.commit()
    db.close()
    return ids


def test_migration_backfill_and_reenrol_flag(
    engine: FaceEngine,
    faces_dir: Path,
    tmp_path: Path,
    load_photo,  # type: ignore[no-untyped-def]
) -> None:
    ids = _v3_database(tmp_path, engine, faces_dir)
    store = open_store(tmp_path)
    assert store.schema_version == len(MIGRATIONS) >= 4
    faces = store.faces(ids["obama"])
    assert [f.engine for f in faces] == ["dlib"] and faces[0].engines == ("dlib",)
    assert store.templates(ids["obama"]).shape == (1, 128)  # dlib by default
    assert store.templates(ids["biden"]).shape == (1, 128)  # any old name was dlib
    assert store.templates(ids["obama"], engine="sface").shape == (0, 128)
    assert reenrol_needed(store, "r1") == {ids["obama"]: ("sface",), ids["biden"]: ("sface",)}

    report = backfill_templates(store, engine, "sface")
    assert (report.added, report.skipped, report.failed) == (1, 0, [])
    assert backfill_templates(store, engine, "sface").added == 0  # idempotent
    assert store.faces(ids["obama"])[0].engines == ("dlib", "sface")
    missing = reenrol_needed(store, "r1")
    assert missing == {ids["obama"]: (), ids["biden"]: ("sface",)}
    assert blocking_engines(missing[ids["biden"]], "dlib") == ()
    assert blocking_engines(missing[ids["biden"]], "fused") == ("sface",)

    # the back-filled template is Obama's: it verifies his other photo under SFace
    sface_room = dataclasses.replace(store.room("r1"), engine="sface")
    target = load_target(store, sface_room, ids["obama"], threshold=0.6)
    assert target.enrolled
    observation = FaceChecker(engine, target).observe(load_photo(OBAMA[1]))
    assert observation.match is not None and observation.match.accepted
    # deleting the face (its primary template) deletes its SFace template with it
    with sqlite3.connect(tmp_path / "videogate.sqlite3") as raw:
        raw.execute("PRAGMA foreign_keys=ON")
        raw.execute("DELETE FROM templates WHERE id=?", (faces[0].id,))
    assert store.templates(ids["obama"], engine="sface").shape == (0, 128)
    store.close()


def test_enrolment_stores_every_engine_and_presence_follows_the_room(
    engine: FaceEngine,
    faces_dir: Path,
    tmp_path: Path,
    load_photo,  # type: ignore[no-untyped-def]
) -> None:
    store = open_store(tmp_path)
    room = store.create_room("Fused", "invite", settings={"engine": "fused"})
    person = store.add_person(room.id, "Obama")
    result = engine.enrol_photo((faces_dir / OBAMA[0]).read_bytes())
    assert set(result.embeddings) == {"dlib", "sface"}
    (face,) = store.add_faces(person.id, None, [(result.embeddings, None, "image/jpeg")], "dlib")
    assert face.engines == ("dlib", "sface")
    assert store.face_counts(room.id) == {person.id: 1}  # one photo, two templates
    target = load_target(store, room, person.id, threshold=0.6)
    assert set(target.templates_of(person.id)) == {"dlib", "sface"}
    for rel, expected in ((OBAMA[1], True), (BIDEN, False)):
        check = FaceChecker(engine, target).presence(load_photo(rel), person.id, 1.0)
        assert check.faces == 1 and check.matched is expected, rel
    # the same templates without SFace: the fused room cannot match (nothing silently
    # falls back to one engine)
    dlib_only = CheckTarget(person.id, {person.id: store.templates(person.id)}, 0.6, engine="fused")
    assert not dlib_only.enrolled
    check = presence_check(engine, load_photo(OBAMA[1]), dlib_only.templates_of(person.id), 0.6,
                           1.0, scorer=dlib_only.scorer)  # fmt: skip
    assert check.faces == 1 and not check.matched and check.distance is None
    store.close()


def test_sface_room_liveness_sample_carries_a_same_face_vector(
    engine: FaceEngine,
    faces_dir: Path,
    tmp_path: Path,
    load_photo,  # type: ignore[no-untyped-def]
) -> None:
    """The gate's end-of-challenge check compares start and end embeddings in dlib's
    distance: an sface room (no dlib run) must still provide one, in the same unit."""
    store = open_store(tmp_path)
    room = store.create_room("SFace only", "invite", settings={"engine": "sface"})
    result = engine.enrol_photo((faces_dir / OBAMA[0]).read_bytes())
    person = store.enrol_person(
        room.id, "Obama", {e: v[None] for e, v in result.embeddings.items()}, "dlib"
    )
    checker = FaceChecker(engine, load_target(store, room, person.id, threshold=0.6))
    first = checker.observe(load_photo(OBAMA[0]))
    second = checker.observe(load_photo(OBAMA[1]))
    other = checker.observe(load_photo(BIDEN))
    samples = [o.liveness for o in (first, second, other)]
    assert all(s is not None and s.embedding is not None for s in samples)
    assert first.match is not None and first.match.accepted
    a, b, c = (s.embedding for s in samples)  # type: ignore[union-attr]
    same, different = float(np.linalg.norm(a - b)), float(np.linalg.norm(a - c))
    # the liveness same-face limit is 0.5 in dlib's unit (ActiveConfig.same_face_distance)
    assert same < 0.5 < different
    store.close()


def test_each_room_setting_runs_only_the_engines_it_needs(
    engine: FaceEngine,
    load_photo,  # type: ignore[no-untyped-def]
) -> None:
    """dlib rooms keep today's cost (no SFace pass, dlib chip + mirror); both / fused
    probes run dlib on one chip plus SFace."""
    rgb = load_photo(OBAMA[0])
    (dlib_face,) = engine.analyse(rgb, engines=("dlib",)).faces
    (fused_face,) = engine.analyse(rgb, engines=("dlib", "sface")).faces
    (sface_face,) = engine.analyse(rgb, engines=("sface",)).faces
    assert set(dlib_face.embeddings) == {"dlib"}
    assert set(fused_face.embeddings) == {"dlib", "sface"}
    assert set(sface_face.embeddings) == {"sface"} and sface_face.embedding is None
    # flip-averaged for dlib rooms, one chip for both / fused probes: close, not equal
    gap = float(np.linalg.norm(dlib_face.embeddings["dlib"] - fused_face.embeddings["dlib"]))
    assert 0.0 < gap < 0.2
    np.testing.assert_allclose(
        sface_face.embeddings["sface"], fused_face.embeddings["sface"], atol=1e-6
    )
