"""Domain errors carry no HTTP knowledge; STATUS is the one table mapping them to statuses."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel

from service.api.json import OrjsonResponse


class DomainError(Exception):
    """Base of every error a caller can cause; `code` is stable, `message` is for humans."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthenticated(DomainError):
    """No key, or a key that is not known."""

    code = "auth.unauthenticated"


class Forbidden(DomainError):
    """The key's role may not do this."""

    code = "auth.forbidden"


class NotFound(DomainError):
    """The thing asked for does not exist."""

    code = "not_found"


class BadBody(DomainError):
    """The request body is not JSON (or not NDJSON) at all."""

    code = "body.not_json"


class BodyTooLarge(DomainError):
    """The body has more bytes or more records than allowed."""

    code = "body.too_large"


class InvalidInput(DomainError):
    """Well-formed JSON whose content is not acceptable."""

    code = "input.invalid"


STATUS: dict[type[DomainError], int] = {
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    BadBody: 400,
    BodyTooLarge: 413,
    InvalidInput: 422,
}


class ErrorBody(BaseModel):
    """Every error response: a stable code and a message."""

    error: str
    message: str


def error_responses(*errors: type[DomainError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the domain errors an endpoint can raise."""
    return {
        STATUS[error]: {"model": ErrorBody, "description": error.__doc__ or error.code}
        for error in errors
    }


def _handle(_request: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, DomainError)
    status = STATUS[type(exc)]
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return OrjsonResponse(
        ErrorBody(error=exc.code, message=exc.message).model_dump(),
        status_code=status,
        headers=headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the one handler for every domain error."""
    for error in STATUS:
        app.add_exception_handler(error, _handle)
