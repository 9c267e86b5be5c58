"""Domain errors: what a caller can get wrong, with no HTTP knowledge (service.api.errors maps
them to statuses), and which driver errors mean that the database is not available."""

from __future__ import annotations

import psycopg
from sqlalchemy import exc as sa_exc


class DomainError(Exception):
    """Base of every error a caller can cause; `code` is stable, `message` is for humans."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Unauthenticated(DomainError):
    """No key, or a key that is not known."""

    code = "auth.unauthenticated"


class Forbidden(DomainError):
    """The key's role may not do this."""

    code = "auth.forbidden"


class NotFound(DomainError):
    """The thing asked for does not exist."""

    code = "not_found"


class InSuspense(NotFound):
    """The CDR asked for was rejected: it is not stored, it waits in suspense."""

    code = "cdr.in_suspense"


class BadBody(DomainError):
    """The request body is not JSON (or not NDJSON) at all."""

    code = "body.not_json"


class EmptyBody(BadBody):
    """A switch's file or document endpoint was posted no bytes (SPEC §3.4)."""

    code = "body.empty"


class BodyTooLarge(DomainError):
    """The body has more bytes or more records than allowed."""

    code = "body.too_large"


class BodyTimeout(DomainError):
    """The request body did not arrive whole within the body timeout."""

    code = "body.timeout"


class InvalidInput(DomainError):
    """Well-formed JSON whose content is not acceptable."""

    code = "input.invalid"


class Conflict(DomainError):
    """What was sent contradicts what is stored and may never change (a published tariff)."""

    code = "conflict"


class DatabaseUnavailable(DomainError):
    """The database is unreachable, frozen or too slow: retry after Retry-After seconds."""

    code = "database_unavailable"


# --- which driver errors mean "the database is not available" ---------------------------

# SQLite messages of a database that exists but cannot be used now (another writer holds
# the lock past busy_timeout, the file cannot be opened or read).
_SQLITE_UNAVAILABLE = ("locked", "busy", "unable to open", "disk i/o", "readonly", "full")


def is_database_unavailable(exc: BaseException) -> bool:
    """True for errors that say the database cannot answer now (connection refused or lost,
    timeouts of connect, statement or pool, SQLite busy or full), False for bugs and bad SQL.
    A database error raised while handling one that says so says so too: SQLite rolls a
    whole transaction back on a full disk, and the savepoint's own rollback then fails with
    "no such savepoint"."""
    if _unavailable(exc):
        return True
    seen = 0
    while _is_database_error(exc) and seen < 8:
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            return False
        if _unavailable(inner):
            return True
        exc, seen = inner, seen + 1
    return False


def _is_database_error(exc: BaseException) -> bool:
    return isinstance(exc, sa_exc.DBAPIError | psycopg.Error) or type(exc).__module__ == "sqlite3"


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection free within pool_timeout
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        return _unavailable(exc.orig) if exc.orig is not None else False
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        # class 54 (program limit exceeded) is a property of the statement, not an outage
        sqlstate = getattr(exc, "sqlstate", None) or ""
        return not sqlstate.startswith("54")
    if type(exc).__module__ == "sqlite3" and type(exc).__name__ == "OperationalError":
        return any(word in str(exc).lower() for word in _SQLITE_UNAVAILABLE)
    return False
