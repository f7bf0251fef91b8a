"""Every error becomes {"error": {"code", "message"}} with a fitting status; never a trace."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from knowra_worker.errors import KnowraError
from knowra_worker.models import ErrorBody

log = logging.getLogger(__name__)


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


async def _knowra_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KnowraError)
    return error_response(exc.http_status, exc.code, exc.message)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(
        exc.status_code, "HTTP_ERROR"
    )
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "INTERNAL_ERROR", "internal error; see the service log")


def install(app: FastAPI) -> None:
    app.add_exception_handler(KnowraError, _knowra_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


def documented(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses` for the error statuses a route may answer."""
    return {status: {"model": ErrorBody, "description": _MEANING[status]} for status in statuses}


_MEANING = {
    400: "a body that is not JSON (BAD_REQUEST), or a file that is not there (FILE_NOT_FOUND)",
    401: "missing or wrong API key (UNAUTHORIZED)",
    403: "path outside the allowed roots (PATH_NOT_ALLOWED)",
    404: "unknown task (TASK_NOT_FOUND)",
    409: "the task's state does not allow it (INVALID_TRANSITION), the task_id exists with "
    "other parameters (TASK_CONFLICT), or the page's generation is no longer the readable one "
    "(GENERATION_CHANGED)",
    503: "Redis or the broker is unreachable (STORE_UNAVAILABLE)",
}
