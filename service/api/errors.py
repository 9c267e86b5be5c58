"""STATUS is the one table mapping domain errors to HTTP statuses, and the handlers that give
every error answer one body.

Every error answer, whoever raises it (a domain error, FastAPI's request validation,
Starlette's routing 404/405, a database that does not answer), has one body:
`{"error": code, "message": str}` plus `field` where one field is at fault (SPEC §6.2).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.api.json import OrjsonResponse
from service.errors import (
    BadBody,
    BodyTimeout,
    BodyTooLarge,
    Conflict,
    DatabaseUnavailable,
    DomainError,
    EmptyBody,
    Forbidden,
    InSuspense,
    InvalidInput,
    NotFound,
    Unauthenticated,
    is_database_unavailable,
)

log = logging.getLogger("callrate")

RETRY_AFTER_S = 2


STATUS: dict[type[DomainError], int] = {
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    InSuspense: 404,
    BadBody: 400,
    EmptyBody: 400,
    BodyTooLarge: 413,
    BodyTimeout: 408,
    InvalidInput: 422,
    Conflict: 409,
    DatabaseUnavailable: 503,
}


class ErrorBody(BaseModel):
    """Every error response: a stable code, a message, and the field at fault if one is."""

    error: str
    message: str
    field: str | None = None


def error_responses(*errors: type[DomainError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the domain errors an endpoint can raise."""
    return {
        STATUS[error]: {"model": ErrorBody, "description": error.__doc__ or error.code}
        for error in errors
    }


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> OrjsonResponse:
    """The one error envelope."""
    body: dict[str, str] = {"error": code, "message": message}
    if field is not None:
        body["field"] = field
    return OrjsonResponse(body, status_code=status, headers=headers)


def database_unavailable() -> OrjsonResponse:
    """503 database_unavailable with Retry-After (SPEC §6.2)."""
    return error_response(
        503,
        DatabaseUnavailable.code,
        "the database does not answer; retry later",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


# --- handlers -------------------------------------------------------------------------------


def _handle_domain(_request: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, DomainError)
    return domain_answer(exc)


def domain_answer(exc: DomainError) -> OrjsonResponse:
    """The one envelope of a domain error, with its status (and headers: 401, 408, 503)."""
    if isinstance(exc, DatabaseUnavailable):
        return database_unavailable()
    status = STATUS[type(exc)]
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 408:  # the rest of the body may still come: not on this connection
        headers = {"Connection": "close"}
    return error_response(status, exc.code, exc.message, field=exc.field, headers=headers)


def _field_of(location: Sequence[int | str]) -> str:
    """("body", "packages", 0) -> "packages[0]"; ("query", "limit") -> "limit"."""
    parts = list(location[1:]) if location and location[0] in _LOCATIONS else list(location)
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or str(location[0] if location else "body")


_LOCATIONS = ("body", "query", "path", "header", "cookie")


def _handle_validation(_request: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if not errors:
        return error_response(422, InvalidInput.code, "the request is not valid")
    first = errors[0]
    field = _field_of(first.get("loc", ()))
    message = f"{field}: {first.get('msg', 'not valid')}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return error_response(422, InvalidInput.code, message, field=field)


_HTTP_CODES = {
    400: BadBody.code,
    401: Unauthenticated.code,
    403: Forbidden.code,
    404: NotFound.code,
    405: "method_not_allowed",
    408: BodyTimeout.code,
    413: BodyTooLarge.code,
}


def _handle_http(_request: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    headers = dict(exc.headers or {})
    if status == 404:
        message = "there is no such resource"
    elif status == 405:
        message = f"method not allowed here; allowed: {headers.get('Allow', 'none')}"
    else:
        message = str(exc.detail)
    return error_response(
        status, _HTTP_CODES.get(status, f"http.{status}"), message, headers=headers or None
    )


def _handle_database(_request: Request, exc: Exception) -> OrjsonResponse:
    return _database_answer(exc)


def _database_answer(exc: Exception) -> OrjsonResponse:
    if is_database_unavailable(exc):
        # the class only: the message may hold a statement (its parameters are hidden)
        log.warning("database unavailable: %s", type(exc).__name__)
        return database_unavailable()
    log.error("database error while serving a request", exc_info=exc)
    return _internal()


def _handle_unexpected(_request: Request, exc: Exception) -> OrjsonResponse:
    # Starlette re-raises after this answer, so the server logs the traceback once.
    return _unexpected_answer(exc)


def _unexpected_answer(exc: Exception) -> OrjsonResponse:
    return database_unavailable() if is_database_unavailable(exc) else _internal()


def _internal() -> OrjsonResponse:
    return error_response(500, "internal", "internal error; the server log has the details")


# sqlite3's own errors too: the SQLite writer lock (service.db.session) raises them outside
# SQLAlchemy; unhandled, they would reach the outermost handler, answered 503 but logged
# and counted as a 500 with a traceback.
DATABASE_ERRORS = (sa_exc.DBAPIError, sa_exc.TimeoutError, psycopg.Error, sqlite3.Error)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the one envelope."""
    for error in STATUS:
        app.add_exception_handler(error, _handle_domain)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StarletteHTTPException, _handle_http)
    for database_error in DATABASE_ERRORS:
        app.add_exception_handler(database_error, _handle_database)
    app.add_exception_handler(Exception, _handle_unexpected)


def error_answer(exc: Exception) -> tuple[OrjsonResponse, bool]:
    """What these handlers answer `exc` with, for a route served outside them (the quote
    route, service.api.quote), and whether to raise it again after answering: an unexpected
    error is answered 500 (503 if the database is unavailable) and raised again, so the
    server logs its traceback, as Starlette's outermost handler does."""
    if isinstance(exc, DomainError):
        return domain_answer(exc), False
    if isinstance(exc, DATABASE_ERRORS):
        return _database_answer(exc), False
    return _unexpected_answer(exc), True
