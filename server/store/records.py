"""Value objects the store hands out, and the validation rules every backend shares.

Kept apart from the SQLite code so a PostgreSQL store returns the very same types
and refuses the very same input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Same values as server.liveness.LivenessPolicy (not imported: the store stays model-free).
LIVENESS_POLICIES = ("off", "passive", "active", "active+passive",
                     "light", "light+passive", "active+light", "active+light+passive")  # fmt: skip
DEFAULT_LIVENESS_POLICY = "active+passive"
ROOM_MODES = ("invite", "open")  # invite = 1:1 claimed identity, open = 1:N identify
# A room's engine setting (server.face.scoring): one engine, both must accept, or fused.
ENGINES = ("dlib", "sface", "both", "fused")
#: media planes a room can use (docs/janus.md); a room's None means the server default
MEDIA_BACKENDS = ("builtin", "janus")
# The descriptor engines templates are stored for (one template per engine per photo).
TEMPLATE_ENGINES = ("dlib", "sface")


def engine_family(name: str) -> str:
    """The template engine of an embedder name: dlib's ResNet and its ONNX port give the
    same vectors ('dlib_resnet_v1', 'dlib_resnet_v1_onnx', the ``[face] embedder`` kinds
    'onnx' and 'dlib' -> 'dlib')."""
    if name == "onnx":
        return "dlib"
    for family in TEMPLATE_ENGINES:
        if name == family or name.startswith(family + "_"):
            return family
    raise StoreError("bad_engine", f"unknown template engine '{name}'")


def room_engines(engine: str) -> tuple[str, ...]:
    """The template engines a room's engine setting needs."""
    return TEMPLATE_ENGINES if engine in ("both", "fused") else (engine,)


MAX_ATTEMPTS_RANGE = (1, 10)
PRESENCE_INTERVAL_RANGE = (1.0, 3600.0)
WEBHOOK_EVENTS = (
    "participant.admitted",
    "participant.denied",
    "participant.left",
    "reverify.passed",
    "reverify.failed",
    "presence.lost",
    "identity.mismatch",
    "extra.person",
    "presence.unverifiable",
    "meeting.ended",
)
WEBHOOK_URL_MAX = 2000
NAME_MAX = 120
EXTERNAL_ID_MAX = 200


class StoreError(LookupError):
    """A lookup or change the store refuses; ``code`` is stable for APIs and the UI."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Room:
    """A room and its admission settings; ``None`` settings mean the server default."""

    id: str
    slug: str
    name: str
    mode: str
    threshold: float | None
    owner_id: str | None = None
    liveness_policy: str = DEFAULT_LIVENESS_POLICY
    max_attempts: int | None = None
    retain_photos: bool = False
    engine: str = "dlib"
    created: float = 0.0
    presence_interval_s: float | None = None
    # Never flash the screen (photosensitive participants): light policies run the pose
    # challenge instead (LivenessPolicy.without_light).
    no_flashing: bool = False
    #: the unguessable part of the room's link (docs/security.md, room links)
    link_token: str = ""
    #: the room predates link tokens: its bare ``/r/<slug>`` link still works
    legacy_link: bool = False
    #: 'builtin' or 'janus' (docs/janus.md); None = the server's ``[media] backend``
    media_backend: str | None = None

    @property
    def link(self) -> str:
        """The path part after ``/r/``: ``<slug>-<link_token>``."""
        return f"{self.slug}-{self.link_token}" if self.link_token else self.slug


@dataclass(frozen=True)
class Person:
    id: str
    room_id: str
    name: str
    external_id: str | None
    created: float = 0.0


@dataclass(frozen=True)
class Invite:
    room: Room
    person: Person | None
    expires: float | None
    id: str = ""  # the owner's handle on it (InviteInfo.id): revoking it ends live sessions


@dataclass(frozen=True)
class InviteInfo:
    """An invite as the owner sees it: the token itself is never stored, only its hash."""

    id: str
    room_id: str
    person_id: str | None
    expires: float | None
    revoked: bool
    created: float
    hint: str | None = None  # the token's first characters, as on the link (migration 8)
    last_used: float | None = None

    def status(self, now: float) -> str:
        if self.revoked:
            return "revoked"
        if self.expires is not None and self.expires < now:
            return "expired"
        return "active"


@dataclass(frozen=True)
class Face:
    """One enrolled template (and, if the room retains photos, the photo it came from)."""

    id: int
    person_id: str
    engine: str
    created: float
    photo_id: str | None
    # every engine with a template from this photo (the first one is ``engine``)
    engines: tuple[str, ...] = ()
    source_name: str | None = None  # the uploaded file's name (migration 8)
    quality: str | None = None  # the quality gate's summary, e.g. "face 212 px wide"


@dataclass(frozen=True)
class Owner:
    id: str
    email: str
    created: float
    # Bumped by "sign out everywhere" and a password change: session cookies carry the
    # version they were issued under and stop working once it moves on.
    session_version: int = 0


@dataclass(frozen=True)
class ApiKey:
    id: str
    owner_id: str
    name: str
    created: float
    last_used: float | None
    revoked: bool


@dataclass(frozen=True)
class AuditRecord:
    ts: float
    room_id: str | None
    person_id: str | None
    participant_id: str | None
    event: str
    details: dict[str, Any]


@dataclass(frozen=True)
class Meeting:
    """One live session of a room: from its first participant until the room is empty."""

    id: str
    room_id: str
    started: float
    ended: float | None


@dataclass(frozen=True)
class Webhook:
    """An owner's endpoint for a room's events; the secret is sealed at rest."""

    id: str
    room_id: str
    url: str
    events: tuple[str, ...]
    created: float


@dataclass(frozen=True)
class Delivery:
    """One event sent (or being sent) to one webhook: the owner's delivery log."""

    id: str
    webhook_id: str
    room_id: str
    event: str
    status: str  # pending | delivered | failed | dropped
    attempts: int
    last_code: int | None
    last_error: str | None
    created: float
    updated: float


def clean_webhook(url: object, events: object) -> tuple[str, tuple[str, ...]]:
    """An http(s) URL and a non-empty subset of ``WEBHOOK_EVENTS`` (None = all)."""
    if not isinstance(url, str) or not 0 < len(url) <= WEBHOOK_URL_MAX:
        raise StoreError("bad_url", "url must be an http(s) URL")
    if not url.lower().startswith(("http://", "https://")) or any(ord(c) <= 32 for c in url):
        raise StoreError("bad_url", "url must be an http(s) URL")
    if events is None:
        return url, WEBHOOK_EVENTS
    if (
        not isinstance(events, list | tuple)
        or not events
        or any(e not in WEBHOOK_EVENTS for e in events)
    ):
        raise StoreError("bad_events", f"events must be a non-empty subset of {WEBHOOK_EVENTS}")
    return url, tuple(dict.fromkeys(events))


def clean_name(value: object, what: str = "name") -> str:
    if not isinstance(value, str):
        raise StoreError("bad_name", f"{what} must be text")
    name = value.strip()
    if not name or len(name) > NAME_MAX or any(ord(c) < 32 for c in name):
        raise StoreError("bad_name", f"{what} must be 1-{NAME_MAX} printable characters")
    return name


def clean_external_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > EXTERNAL_ID_MAX:
        raise StoreError(
            "bad_external_id", f"external id must be text of at most {EXTERNAL_ID_MAX} characters"
        )
    return value.strip() or None


def clean_room_settings(changes: dict[str, Any]) -> dict[str, Any]:
    """Validate a partial settings change; returns column -> stored value."""
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "name":
            out["name"] = clean_name(value, "room name")
        elif key == "mode":
            if value not in ROOM_MODES:
                raise StoreError("bad_mode", "room mode must be 'invite' (1:1) or 'open' (1:N)")
            out["mode"] = value
        elif key == "threshold":
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not 0 < value < 2
            ):
                raise StoreError("bad_threshold", "threshold must be empty or between 0 and 2")
            out["threshold"] = None if value is None else float(value)
        elif key == "liveness_policy":
            if value not in LIVENESS_POLICIES:
                raise StoreError(
                    "bad_liveness_policy", f"liveness policy must be one of {LIVENESS_POLICIES}"
                )
            out["liveness_policy"] = value
        elif key == "max_attempts":
            low, high = MAX_ATTEMPTS_RANGE
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high
            ):
                raise StoreError(
                    "bad_max_attempts", f"maximum attempts must be empty or {low}-{high}"
                )
            out["max_attempts"] = value
        elif key == "retain_photos":
            if not isinstance(value, bool):
                raise StoreError("bad_retain_photos", "retain_photos must be true or false")
            out["retain_photos"] = int(value)
        elif key == "no_flashing":
            if not isinstance(value, bool):
                raise StoreError("bad_no_flashing", "no_flashing must be true or false")
            out["no_flashing"] = int(value)
        elif key == "presence_interval_s":
            low_s, high_s = PRESENCE_INTERVAL_RANGE
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not low_s <= value <= high_s
            ):
                raise StoreError(
                    "bad_presence_interval",
                    f"presence interval must be empty or {low_s:g}-{high_s:g} seconds",
                )
            out["presence_interval_s"] = None if value is None else float(value)
        elif key == "media_backend":
            if value is not None and value not in MEDIA_BACKENDS:
                raise StoreError(
                    "bad_media_backend", f"media backend must be empty or one of {MEDIA_BACKENDS}"
                )
            out["media_backend"] = value
        elif key == "engine":
            if value not in ENGINES:
                raise StoreError("bad_engine", f"engine must be one of {ENGINES}")
            out["engine"] = value
        else:
            raise StoreError("bad_setting", f"unknown room setting '{key}'")
    return out
