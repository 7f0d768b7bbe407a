"""Templates for an engine added after people were enrolled (the SFace data migration).

The schema migration (store migration 4) cannot compute vectors: that needs the model.
This step can, wherever the room kept the enrolment photos (sealed): each kept photo
whose face has no template of the engine goes through the same quality gate and
pipeline as a new upload, and the new template joins that face (deleted with it).
People without kept photos cannot be back-filled; :func:`reenrol_needed` names them
and the engines they lack, so the owner UI and API say "re-enrol for sface" instead of
leaving them silently unmatched by SFace rooms.

    python -m server backfill-templates [--engine sface] [--room ROOM_ID]

Idempotent (a face that gained the template is skipped next time) and safe to run
while the server runs (each template is one transaction; a face deleted meanwhile is
skipped). ``backfill_templates`` is the function to call at start-up in the executor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .face.engine import FaceEngine
from .store.records import TEMPLATE_ENGINES, room_engines
from .store.repository import Repository

log = logging.getLogger(__name__)


@dataclass
class BackfillReport:
    engine: str
    added: int = 0
    skipped: int = 0  # the face was deleted or filled meanwhile
    failed: list[tuple[str, int, str]] = field(default_factory=list)  # person, face, reason


def backfill_templates(
    store: Repository,
    engine: FaceEngine,
    template_engine: str = "sface",
    room_id: str | None = None,
) -> BackfillReport:
    """Compute ``template_engine`` templates from every kept photo that lacks one."""
    report = BackfillReport(template_engine)
    if template_engine not in engine.engines:
        raise ValueError(
            f"the face engine does not run {template_engine!r} (loaded: {engine.engines})"
        )
    for person_id, face_id, photo in store.photos_missing_engine(template_engine, room_id):
        result = engine.enrol_photo(photo)
        vector = result.embeddings.get(template_engine)
        if vector is None:
            reason = "; ".join(result.reasons) or "no usable face"
            report.failed.append((person_id, face_id, reason))
            log.warning(
                "backfill %s: face %d of %s: %s", template_engine, face_id, person_id, reason
            )
            continue
        if store.add_engine_template(face_id, template_engine, vector):
            report.added += 1
        else:
            report.skipped += 1
    return report


def reenrol_needed(store: Repository, room_id: str) -> dict[str, tuple[str, ...]]:
    """Enrolled people of the room -> the template engines they have no template for
    (empty tuple: nothing missing). A person listed with "sface" must be re-enrolled
    (new photos) before an sface, both or fused room can match them."""
    coverage = store.engine_coverage(room_id)
    return {
        pid: tuple(e for e in TEMPLATE_ENGINES if e not in have) for pid, have in coverage.items()
    }


def blocking_engines(missing: tuple[str, ...], room_engine: str) -> tuple[str, ...]:
    """Of a person's missing engines, those the room's engine setting needs now."""
    return tuple(e for e in missing if e in room_engines(room_engine))
