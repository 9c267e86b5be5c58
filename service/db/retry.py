"""One statement retried once on a fresh connection when its pooled one was dead.

The quote engine has no pool pre-ping (a round trip before every checkout): a connection
the server closed meanwhile (restart, pg_terminate_backend, idle timeout) fails its first
statement instead, SQLAlchemy invalidates the pool, and the work runs once more on a new
connection. A statement that ran out of its deadline (a frozen server) is not retried: its
time is spent (service.db.session.DbTimeouts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from psycopg import errors as pg_errors
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")


def is_dead_connection(exc: BaseException) -> bool:
    """The pooled connection was found closed (not: the server was too slow)."""
    if not isinstance(exc, DBAPIError) or not exc.connection_invalidated:
        return False
    cause = exc.orig.__cause__ if exc.orig is not None else None
    return not isinstance(cause, pg_errors._WaitTimeout)


def run_retrying(engine: Engine, work: Callable[[Connection], T]) -> T:
    """`work(connection)` committed (autocommit engines: statement by statement); run once
    more on a fresh connection if the first one turned out dead."""
    try:
        with engine.begin() as connection:
            return work(connection)
    except DBAPIError as exc:
        if not is_dead_connection(exc):
            raise
    with engine.begin() as connection:
        return work(connection)
