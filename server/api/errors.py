"""JSON errors with stable codes, and the middleware that makes every API failure one.

Body: ``{"error": {"code": "...", "message": "..."}}`` (plus ``details`` for photo
verdicts). Unknown ids and another owner's ids give the same 404, so the API never
tells whether something exists elsewhere.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from ..store import StoreError, TemplateKeyError
from ..workpool import Busy

log = logging.getLogger(__name__)

# StoreError codes that mean "no such thing (for you)".
NOT_FOUND_CODES = {
    "unknown_room",
    "unknown_person",
    "unknown_invite",
    "unknown_face",
    "unknown_photo",
    "unknown_key",
    "unknown_owner",
    "unknown_meeting",
    "unknown_webhook",
}


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return web.json_response({"error": body}, status=status)


def busy_response(err: Busy) -> web.Response:
    """503 ``busy``: the face workers' queue for this kind of request is full."""
    response = error_response(
        503, "busy", f"the server is busy analysing faces; retry in {err.retry_after_s} s"
    )
    response.headers["Retry-After"] = str(err.retry_after_s)
    return response


def store_error_status(err: StoreError) -> int:
    if err.code in NOT_FOUND_CODES:
        return 404
    if err.code in ("email_taken", "slug_taken"):
        return 409
    return 422


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err.status, err.code, err.message, err.details)
    except Busy as err:
        return busy_response(err)
    except StoreError as err:
        return error_response(store_error_status(err), err.code, err.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "too_large",
            415: "unsupported_media_type",
        }.get(exc.status, "http_error")
        return error_response(exc.status, code, exc.reason)
    except TemplateKeyError:
        log.exception("template key problem")
        return error_response(500, "key_error", "stored templates cannot be decrypted")
    except Exception:
        log.exception("API request failed: %s %s", request.method, request.path)
        return error_response(500, "internal", "internal server error")
