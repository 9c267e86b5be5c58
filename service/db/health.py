"""Whether the database takes writes: the newest write outcome its engines saw.

`/readyz` runs a `SELECT`, which a database with a full disk (or one gone read-only) still
answers while every write fails; readiness must tell what the clients get (SPEC §6.2). A
write failing for want of room, or on a read-only or unwritable file, marks writes failing;
a later commit of a transaction that wrote marks them working again. While they fail,
`/readyz` answers 503 for at most HOLD_S after the last failure, so that a server no write
has reached since is tried again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection, ExceptionContext

HOLD_S = 30.0

# SQLite's messages of a disk that takes no more (full, I/O error, read-only, unwritable)
_SQLITE_STORAGE = ("full", "disk i/o", "readonly", "read-only", "unable to open")
# PostgreSQL SQLSTATE 53100 disk_full, 58030 io_error, 25006 read_only_sql_transaction
_PG_STORAGE = ("53100", "58030", "25006")
_WRITES = ("INSERT", "UPDATE", "DELETE", "COPY")
WROTE = "callrate_wrote"  # in a connection's info: its transaction wrote


def mark_written(info: dict[Any, Any]) -> None:
    """Note in a connection's `info` that its transaction wrote through the driver itself
    (COPY, SQLite's executemany), which SQLAlchemy's events do not see."""
    info[WROTE] = True


def is_storage_failure(exc: BaseException | None) -> bool:
    """An error that says the database cannot store anything now (no room, read-only), or
    one raised while handling such an error (SQLite rolls the whole transaction back on a
    full disk: the savepoint's rollback that follows fails with "no such savepoint")."""
    for _ in range(8):
        if exc is None:
            return False
        if type(exc).__module__ == "sqlite3":
            if any(word in str(exc).lower() for word in _SQLITE_STORAGE):
                return True
        elif (getattr(exc, "sqlstate", None) or "") in _PG_STORAGE:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class WriteHealth:
    """The newest write outcome on the engines it watches (module docstring)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._failed_at: float | None = None
        self._ok_at = float("-inf")
        self.reason = ""

    def watch(self, engine: Engine) -> None:
        """Follow `engine`'s writes: a storage failure, and commits of transactions that wrote."""

        @event.listens_for(engine, "after_cursor_execute")
        def _wrote(conn: Connection, _cursor: object, statement: str, *_: object) -> None:
            if statement.lstrip()[:6].upper().startswith(_WRITES):
                mark_written(conn.info)

        @event.listens_for(engine, "commit")
        def _committing(conn: Connection) -> None:
            # before the commit: one that fails is seen by handle_error after this
            if _taken(conn):
                self.succeeded()

        @event.listens_for(engine, "rollback")
        def _rolled_back(conn: Connection) -> None:
            _taken(conn)

        @event.listens_for(engine, "handle_error")
        def _on_error(context: ExceptionContext) -> None:
            if is_storage_failure(context.original_exception):
                self.failed(type(context.original_exception).__name__)

    def failed(self, reason: str) -> None:
        """A write failed for want of room or a writable file."""
        with self._lock:
            self._failed_at = self._clock()
            self.reason = reason

    def succeeded(self) -> None:
        """A transaction that wrote is being committed."""
        with self._lock:
            self._ok_at = self._clock()

    def failing(self) -> bool:
        """Whether the newest write outcome is a storage failure less than HOLD_S old."""
        with self._lock:
            failed_at = self._failed_at
            return (
                failed_at is not None
                and failed_at > self._ok_at
                and self._clock() - failed_at < HOLD_S
            )


def _taken(conn: Connection) -> bool:
    """Whether the transaction wrote, the mark taken off; False on an invalidated
    connection (its `info` is out of reach until it is rolled back)."""
    if conn.invalidated:
        return False
    try:
        return bool(conn.info.pop(WROTE, False))
    except Exception:  # a lost connection: nothing to take
        return False
