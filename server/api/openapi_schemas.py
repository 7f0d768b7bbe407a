"""Building blocks of the OpenAPI document (``openapi.py``): shared shapes and schemas."""

from __future__ import annotations

from typing import Any

from ..store.records import (
    ENGINES,
    EXTERNAL_ID_MAX,
    LIVENESS_POLICIES,
    MAX_ATTEMPTS_RANGE,
    MEDIA_BACKENDS,
    NAME_MAX,
    PRESENCE_INTERVAL_RANGE,
    ROOM_MODES,
    TEMPLATE_ENGINES,
    WEBHOOK_EVENTS,
    WEBHOOK_URL_MAX,
)

J = dict[str, Any]
# Printable text that is not blank (the store strips and refuses control characters).
NAME: J = {
    "type": "string",
    "minLength": 1,
    "maxLength": NAME_MAX,
    "pattern": r"^[^\s\x00-\x1f][^\x00-\x1f]*$",
}
ID: J = {"type": "string", "minLength": 1, "maxLength": 64}
NULLABLE_NUMBER: J = {"type": "number", "nullable": True}


def ref(name: str) -> J:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: J, required: list[str] | None = None) -> J:
    out: J = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def error(description: str) -> J:
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


def ok(schema: str, description: str = "OK") -> J:
    return {"description": description, "content": {"application/json": {"schema": ref(schema)}}}


def json_body(schema: str) -> J:
    return {"required": True, "content": {"application/json": {"schema": ref(schema)}}}


IMAGE_BODY: J = {
    "required": True,
    "description": "The photo's bytes (JPEG, PNG, WebP, BMP or GIF); at most 20 MB.",
    "content": {
        mime: {"schema": {"type": "string", "format": "binary"}}
        for mime in ("image/jpeg", "image/png", "application/octet-stream")
    },
}

E401 = error("Missing, invalid or revoked API key")
E404 = error("No such resource for this owner (another owner's ids look the same)")
E422 = error("Invalid input or unusable photo; `code` says why")
E400 = error("Malformed JSON")
E415 = error("The body must be application/json")
E413 = error("The body is too large")
E429 = error(
    "`rate_limited`: too many requests for this API key; wait `Retry-After` seconds"
)
E503 = error(
    "`busy`: the face workers' queue is full (the gate comes first); "
    "retry after `Retry-After` seconds"
)


def op(summary: str, responses: J, *, body: J | None = None, tag: str = "") -> J:
    out: J = {"summary": summary, "responses": {**responses, "401": E401, "429": E429}}
    if body is not None:
        out["requestBody"] = body
    if tag:
        out["tags"] = [tag]
    return out


def json_errors() -> J:
    return {"400": E400, "413": E413, "415": E415, "422": E422}


def path_params(*names: str) -> list[J]:
    params = []
    for name in names:
        schema = {"type": "integer", "minimum": 1, "maximum": 10**17} if name == "face_id" else ID
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


ROOM_SETTINGS: J = {
    "mode": {
        "type": "string",
        "enum": list(ROOM_MODES),
        "description": "invite = 1:1 (per-person invite links, claimed identity); "
        "open = 1:N (one open link, identify among the room's people)",
    },
    "threshold": {
        **NULLABLE_NUMBER,
        "exclusiveMinimum": True,
        "minimum": 0,
        "exclusiveMaximum": True,
        "maximum": 2,
        "description": "face distance threshold; null = the calibrated default",
    },
    "liveness_policy": {"type": "string", "enum": list(LIVENESS_POLICIES)},
    "max_attempts": {
        "type": "integer",
        "nullable": True,
        "minimum": MAX_ATTEMPTS_RANGE[0],
        "maximum": MAX_ATTEMPTS_RANGE[1],
        "description": "failed attempts per join; null = the server default",
    },
    "retain_photos": {
        "type": "boolean",
        "description": "keep enrolment photos (encrypted); turning it off deletes them",
    },
    "engine": {
        "type": "string",
        "enum": list(ENGINES),
        "description": "face engine: dlib, sface, both (both must accept) or fused "
        "(one calibrated score from both); see docs/face.md",
    },
    "presence_interval_s": {
        **NULLABLE_NUMBER,
        "minimum": PRESENCE_INTERVAL_RANGE[0],
        "maximum": PRESENCE_INTERVAL_RANGE[1],
        "description": "seconds between presence checks; null = the server default",
    },
    "no_flashing": {
        "type": "boolean",
        "description": "never flash the participant's screen (photosensitive people): "
        "light policies run the head-movement challenge instead",
    },
    "media_backend": {
        "type": "string",
        "enum": [*MEDIA_BACKENDS, None],
        "nullable": True,
        "description": "media plane: builtin (our SFU) or janus (docs/janus.md); "
        "null = the server's [media] backend",
    },
}

# Loose on purpose: the signed report's shape is documented in docs/presence.md and
# versioned by its own ``format`` field; the API only promises the envelope.
ANY_OBJECT: J = {"type": "object", "additionalProperties": True}
NULLABLE_STRING: J = {"type": "string", "nullable": True}

SCHEMAS: J = {
    "Error": obj(
        {
            "error": obj(
                {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": ref("Verdict"),
                },
                ["code", "message"],
            )
        },
        ["error"],
    ),
    "Room": obj(
        {
            "id": {"type": "string"},
            "slug": {"type": "string"},
            "name": {"type": "string"},
            **ROOM_SETTINGS,
            "effective_threshold": {"type": "number"},
            "calibration": {
                "type": "object",
                "description": "per engine setting: LFW FAR / FRR at effective_threshold "
                "(null = not measured there), see docs/face.md",
                "additionalProperties": obj(
                    {
                        "far": {"type": "number", "nullable": True},
                        "frr": {"type": "number", "nullable": True},
                        "set": {"type": "string"},
                    },
                    ["far", "frr", "set"],
                ),
            },
            "link": {"type": "string"},
            "legacy_link": {"type": "boolean"},
            "created": {"type": "number"},
        },
        [
            "id",
            "slug",
            "name",
            "mode",
            "threshold",
            "effective_threshold",
            "liveness_policy",
            "max_attempts",
            "retain_photos",
            "engine",
            "calibration",
            "presence_interval_s",
            "no_flashing",
            "media_backend",
            "link",
            "legacy_link",
            "created",
        ],
    ),  # fmt: skip
    "RoomCreate": obj({"name": NAME, **ROOM_SETTINGS}, ["name"]),
    "RoomUpdate": obj({"name": NAME, **ROOM_SETTINGS}),
    "RoomList": obj({"rooms": {"type": "array", "items": ref("Room")}}, ["rooms"]),
    "Person": obj(
        {
            "id": {"type": "string"},
            "room_id": {"type": "string"},
            "name": {"type": "string"},
            "external_id": {"type": "string", "nullable": True},
            "faces": {"type": "integer", "description": "enrolled templates"},
            "engines": {
                "type": "array",
                "items": {"type": "string", "enum": list(TEMPLATE_ENGINES)},
                "description": "face engines the person has templates for",
            },
            "reenrol_for": {
                "type": "array",
                "items": {"type": "string", "enum": list(TEMPLATE_ENGINES)},
                "description": "engines without templates (enrolled before the engine "
                "existed, photos not kept): re-enrol before a room using them can match",
            },
            "created": {"type": "number"},
        },
        ["id", "room_id", "name", "external_id", "faces", "engines", "reenrol_for", "created"],
    ),
    "PersonCreate": obj(
        {
            "name": NAME,
            "external_id": {"type": "string", "nullable": True, "maxLength": EXTERNAL_ID_MAX},
        },
        ["name"],
    ),  # fmt: skip
    "PersonUpdate": obj(
        {
            "name": NAME,
            "external_id": {"type": "string", "nullable": True, "maxLength": EXTERNAL_ID_MAX},
        }
    ),  # fmt: skip
    "PersonList": obj({"persons": {"type": "array", "items": ref("Person")}}, ["persons"]),
    "Face": obj(
        {
            "id": {"type": "integer"},
            "person_id": {"type": "string"},
            "engine": {"type": "string"},
            "engines": {"type": "array", "items": {"type": "string"}},
            "photo_retained": {"type": "boolean"},
            "created": {"type": "number"},
        },
        ["id", "person_id", "engine", "engines", "photo_retained", "created"],
    ),
    "FaceList": obj({"faces": {"type": "array", "items": ref("Face")}}, ["faces"]),
    "Verdict": obj(
        {
            "filename": {"type": "string"},
            "ok": {"type": "boolean"},
            "code": {"type": "string", "description": "ok, or why the photo was refused"},
            "reasons": {"type": "array", "items": {"type": "string"}},
            "thumbnail": {"type": "string", "nullable": True},
            "box": {"type": "array", "items": {"type": "number"}, "nullable": True},
        },
        ["filename", "ok", "code", "reasons", "thumbnail", "box"],
    ),
    "FaceAdded": obj({"face": ref("Face"), "verdict": ref("Verdict")}, ["face", "verdict"]),
    "Verification": obj(
        {
            "person_id": {"type": "string"},
            "distance": {"type": "number"},
            "decision": {"type": "string", "enum": ["match", "no_match"]},
            "threshold": {"type": "number"},
            "engine": ROOM_SETTINGS["engine"],
            "box": {"type": "array", "items": {"type": "number"}},
            "quality": {"type": "array", "items": {"type": "string"}},
        },
        ["person_id", "distance", "decision", "threshold", "engine", "box", "quality"],
    ),
    "SearchResult": obj(
        {
            "room_id": {"type": "string"},
            "threshold": {"type": "number"},
            "engine": ROOM_SETTINGS["engine"],
            "faces": {
                "type": "array",
                "items": obj(
                    {
                        "box": {"type": "array", "items": {"type": "number"}},
                        "status": {"type": "string", "enum": ["match", "unknown", "ambiguous"]},
                        "person_id": {"type": "string", "nullable": True},
                        "name": {"type": "string", "nullable": True},
                        "distance": NULLABLE_NUMBER,
                    },
                    ["box", "status", "person_id", "name", "distance"],
                ),
            },
        },
        ["room_id", "threshold", "engine", "faces"],
    ),
    "Invite": obj(
        {
            "id": {"type": "string"},
            "room_id": {"type": "string"},
            "person_id": {"type": "string", "nullable": True},
            "expires": NULLABLE_NUMBER,
            "status": {"type": "string", "enum": ["active", "expired", "revoked"]},
            "created": {"type": "number"},
            "token": {"type": "string", "description": "only in the creation response"},
            "url": {"type": "string", "description": "only in the creation response"},
        },
        ["id", "room_id", "person_id", "expires", "status", "created"],
    ),
    "InviteCreate": obj(
        {
            "person_id": {**ID, "nullable": True, "description": "null = a room-wide (1:N) link"},
            "ttl_s": {
                **NULLABLE_NUMBER,
                "minimum": 60,
                "maximum": 365 * 86400,
                "description": "lifetime in seconds; null = never expires",
            },
        }
    ),  # fmt: skip
    "InviteList": obj({"invites": {"type": "array", "items": ref("Invite")}}, ["invites"]),
    "Reverify": obj(
        {"participant_id": {**ID, "nullable": True, "description": "null or absent = everyone"}}
    ),
    "ReverifyResult": obj(
        {"asked": {"type": "array", "items": {"type": "string"}}}, ["asked"]
    ),
    "HostDecision": obj(
        {
            "participant_id": ID,
            "action": {"type": "string", "enum": ["admit", "lobby", "reset"],
                       "description": "admit: let in; lobby: send back; reset: attempts back"},
            "reason": {"type": "string", "maxLength": 300,
                       "description": "why (kept in the audit log); required to admit"},
        },
        ["participant_id", "action"],
    ),  # fmt: skip
    "HostDecisionResult": obj(
        {"applied": {"type": "boolean", "description": "false: not in a state it applies to"}},
        ["applied"],
    ),
    "Meeting": obj(
        {
            "id": {"type": "string"},
            "room_id": {"type": "string"},
            "started": {"type": "number"},
            "ended": NULLABLE_NUMBER,
        },
        ["id", "room_id", "started", "ended"],
    ),
    "MeetingList": obj({"meetings": {"type": "array", "items": ref("Meeting")}}, ["meetings"]),
    "SignedReport": obj(
        {
            "report": ANY_OBJECT,
            "signature": obj(
                {
                    "alg": {"type": "string", "enum": ["Ed25519"]},
                    "key_id": {"type": "string"},
                    "public_key": {"type": "string"},
                    "sections": {"type": "object", "additionalProperties": {"type": "string"}},
                    "value": {"type": "string"},
                },
                ["alg", "key_id", "public_key", "sections", "value"],
            ),
        },
        ["report", "signature"],
    ),
    "Webhook": obj(
        {
            "id": {"type": "string"},
            "room_id": {"type": "string"},
            "url": {"type": "string"},
            "events": {"type": "array", "items": {"type": "string", "enum": list(WEBHOOK_EVENTS)}},
            "created": {"type": "number"},
            "secret": {"type": "string", "description": "only in the creation response"},
        },
        ["id", "room_id", "url", "events", "created"],
    ),
    "WebhookCreate": obj(
        {
            "url": {
                "type": "string",
                "maxLength": WEBHOOK_URL_MAX,
                "pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://[^\x00-\x20]*$",
            },
            "events": {
                "type": "array",
                "nullable": True,
                "minItems": 1,
                "items": {"type": "string", "enum": list(WEBHOOK_EVENTS)},
                "description": "null or absent = every event",
            },
        },
        ["url"],
    ),
    "WebhookList": obj({"webhooks": {"type": "array", "items": ref("Webhook")}}, ["webhooks"]),
    "Delivery": obj(
        {
            "id": {"type": "string"},
            "event": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "retrying", "delivered", "failed",
                                                   "dropped"]},
            "attempts": {"type": "integer"},
            "last_code": {"type": "integer", "nullable": True},
            "last_error": NULLABLE_STRING,
            "created": {"type": "number"},
            "updated": {"type": "number"},
        },
        ["id", "event", "status", "attempts", "last_code", "last_error", "created", "updated"],
    ),  # fmt: skip
    "DeliveryList": obj(
        {"deliveries": {"type": "array", "items": ref("Delivery")}}, ["deliveries"]
    ),
}
