"""The OpenAPI 3 document for /api/v1, built here and served as /api/v1/openapi.json.

It is the single description of the API: tests check that every route the app
registers is documented (and nothing else), and schemathesis checks the running
implementation against it. Shapes mirror ``jsonio.py``.
"""

from __future__ import annotations

from .openapi_schemas import (
    E404,
    E413,
    E422,
    E503,
    IMAGE_BODY,
    SCHEMAS,
    J,
    json_body,
    json_errors,
    ok,
    op,
    path_params,
)


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
        "/rooms/{room_id}/link": {
            "parameters": path_params("room_id"),
            "post": op(
                "Make a new unguessable room link; the current one (and invite links sent "
                "with it) stops working",
                {"200": ok("Room"), "404": E404},
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
                {
                    "201": ok("FaceAdded", "Enrolled"),
                    "404": E404,
                    "413": E413,
                    "422": E422,
                    "503": E503,
                },
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
                {"200": ok("Verification"), "404": E404, "413": E413, "422": E422, "503": E503},
                body=IMAGE_BODY,
                tag="recognition",
            ),
        },
        "/rooms/{room_id}/search": {
            "parameters": path_params("room_id"),
            "post": op(
                "1:N: every face in the photo against the room's people",
                {"200": ok("SearchResult"), "404": E404, "413": E413, "422": E422, "503": E503},
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
        "/rooms/{room_id}/host": {
            "parameters": path_params("room_id"),
            "post": op(
                "The host decides: let a waiting or refused participant in (with a reason), "
                "send an admitted one back to the lobby, or give their attempts back",
                {"200": ok("HostDecisionResult"), "404": E404, **json_errors()},
                body=json_body("HostDecision"),
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
