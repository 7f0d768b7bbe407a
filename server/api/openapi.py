"""The OpenAPI 3 document for /api/v1, built here and served as /api/v1/openapi.json.

It is the single description of the API: tests check that every route the app
registers is documented (and nothing else), and schemathesis checks the running
implementation against it. Shapes mirror ``jsonio.py``.
"""

from __future__ import annotations

from typing import Any

from ..store.records import (
    ENGINES,
    EXTERNAL_ID_MAX,
    LIVENESS_POLICIES,
    MAX_ATTEMPTS_RANGE,
    NAME_MAX,
    PRESENCE_INTERVAL_RANGE,
    ROOM_MODES,
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
    "description": "The photo's bytes (JPEG, PNG, WebP, BMP, GIF, TIFF); at most 20 MB.",
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


def op(summary: str, responses: J, *, body: J | None = None, tag: str = "") -> J:
    out: J = {"summary": summary, "responses": {**responses, "401": E401}}
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
    "engine": {"type": "string", "enum": list(ENGINES)},
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
            "link": {"type": "string"},
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
            "presence_interval_s",
            "no_flashing",
            "link",
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
            "created": {"type": "number"},
        },
        ["id", "room_id", "name", "external_id", "faces", "created"],
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
            "photo_retained": {"type": "boolean"},
            "created": {"type": "number"},
        },
        ["id", "person_id", "engine", "photo_retained", "created"],
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
            "box": {"type": "array", "items": {"type": "number"}},
            "quality": {"type": "array", "items": {"type": "string"}},
        },
        ["person_id", "distance", "decision", "threshold", "box", "quality"],
    ),
    "SearchResult": obj(
        {
            "room_id": {"type": "string"},
            "threshold": {"type": "number"},
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
        ["room_id", "threshold", "faces"],
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


def build_openapi() -> J:
    paths: J = {
        "/rooms": {
            "get": op("List your rooms", {"200": ok("RoomList")}, tag="rooms"),
            "post": op(
                "Create a room",
                {"201": ok("Room", "Created"), **json_errors()},
                body=json_body("RoomCreate"),
                tag="rooms",
            ),
        },
        "/rooms/{room_id}": {
            "parameters": path_params("room_id"),
            "get": op("Get a room", {"200": ok("Room"), "404": E404}, tag="rooms"),
            "patch": op(
                "Rename a room or change its settings",
                {"200": ok("Room"), "404": E404, **json_errors()},
                body=json_body("RoomUpdate"),
                tag="rooms",
            ),
            "delete": op(
                "Delete a room with its people, templates, photos and invites",
                {"204": {"description": "Deleted"}, "404": E404},
                tag="rooms",
            ),
        },
        "/rooms/{room_id}/persons": {
            "parameters": path_params("room_id"),
            "get": op("List a room's people", {"200": ok("PersonList"), "404": E404},
                      tag="persons"),
            "post": op(
                "Add a person",
                {"201": ok("Person", "Created"), "404": E404, **json_errors()},
                body=json_body("PersonCreate"),
                tag="persons",
            ),
        },
        "/persons/{person_id}": {
            "parameters": path_params("person_id"),
            "get": op("Get a person", {"200": ok("Person"), "404": E404}, tag="persons"),
            "patch": op(
                "Change a person's name or external id",
                {"200": ok("Person"), "404": E404, **json_errors()},
                body=json_body("PersonUpdate"),
                tag="persons",
            ),
            "delete": op(
                "Delete a person with templates, photos and invites (the audit keeps a tombstone)",
                {"204": {"description": "Deleted"}, "404": E404},
                tag="persons",
            ),
        },
        "/persons/{person_id}/faces": {
            "parameters": path_params("person_id"),
            "get": op("List a person's enrolled faces", {"200": ok("FaceList"), "404": E404},
                      tag="faces"),
            "post": op(
                "Enrol one photo through the quality gate",
                {"201": ok("FaceAdded", "Enrolled"), "404": E404, "413": E413, "422": E422},
                body=IMAGE_BODY,
                tag="faces",
            ),
        },
        "/persons/{person_id}/faces/{face_id}": {
            "parameters": path_params("person_id", "face_id"),
            "delete": op("Delete one enrolled face", {"204": {"description": "Deleted"},
                                                       "404": E404}, tag="faces"),
        },
        "/persons/{person_id}/verify": {
            "parameters": path_params("person_id"),
            "post": op(
                "1:1: does the single face in this photo match the person?",
                {"200": ok("Verification"), "404": E404, "413": E413, "422": E422},
                body=IMAGE_BODY,
                tag="recognition",
            ),
        },
        "/rooms/{room_id}/search": {
            "parameters": path_params("room_id"),
            "post": op(
                "1:N: every face in the photo against the room's people",
                {"200": ok("SearchResult"), "404": E404, "413": E413, "422": E422},
                body=IMAGE_BODY,
                tag="recognition",
            ),
        },
        "/rooms/{room_id}/invites": {
            "parameters": path_params("room_id"),
            "get": op("List a room's invites", {"200": ok("InviteList"), "404": E404},
                      tag="invites"),
            "post": op(
                "Create an invite link (the token is returned once)",
                {"201": ok("Invite", "Created"), "404": E404, **json_errors()},
                body=json_body("InviteCreate"),
                tag="invites",
            ),
        },
        "/rooms/{room_id}/reverify": {
            "parameters": path_params("room_id"),
            "post": op(
                "Ask one admitted participant, or everyone, to verify again now",
                {"200": ok("ReverifyResult"), "404": E404, **json_errors()},
                body=json_body("Reverify"),
                tag="presence",
            ),
        },
        "/rooms/{room_id}/meetings": {
            "parameters": path_params("room_id"),
            "get": op("List the room's meetings, newest first",
                      {"200": ok("MeetingList"), "404": E404}, tag="presence"),
        },
        "/rooms/{room_id}/meetings/{meeting_id}/report": {
            "parameters": path_params("room_id", "meeting_id"),
            "get": op("The meeting's attendance report, signed with Ed25519",
                      {"200": ok("SignedReport"), "404": E404}, tag="presence"),
        },
        "/rooms/{room_id}/meetings/{meeting_id}/report.csv": {
            "parameters": path_params("room_id", "meeting_id"),
            "get": op(
                "The meeting's attendance report as CSV (one row per participant)",
                {
                    "200": {"description": "CSV",
                            "content": {"text/csv": {"schema": {"type": "string"}}}},
                    "404": E404,
                },
                tag="presence",
            ),
        },
        "/rooms/{room_id}/webhooks": {
            "parameters": path_params("room_id"),
            "get": op("List the room's webhooks", {"200": ok("WebhookList"), "404": E404},
                      tag="webhooks"),
            "post": op(
                "Add a webhook (the signing secret is returned once)",
                {"201": ok("Webhook", "Created"), "404": E404, **json_errors()},
                body=json_body("WebhookCreate"),
                tag="webhooks",
            ),
        },
        "/webhooks/{webhook_id}": {
            "parameters": path_params("webhook_id"),
            "delete": op("Delete a webhook", {"204": {"description": "Deleted"}, "404": E404},
                         tag="webhooks"),
        },
        "/webhooks/{webhook_id}/deliveries": {
            "parameters": path_params("webhook_id"),
            "get": op("The webhook's delivery log, newest first",
                      {"200": ok("DeliveryList"), "404": E404}, tag="webhooks"),
        },
        "/invites/{invite_id}": {
            "parameters": path_params("invite_id"),
            "delete": op("Revoke an invite", {"204": {"description": "Revoked"}, "404": E404},
                         tag="invites"),
        },
    }  # fmt: skip
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "videogate API",
            "version": "1.0.0",
            "description": "Rooms, people, faces, 1:1 verify, 1:N search and invites. "
            "Authenticate with `Authorization: Bearer <API key>` (created in the owner UI). "
            'Errors: `{"error": {"code", "message"}}` with stable codes.',
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"apiKey": []}],
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
        "paths": paths,
    }
