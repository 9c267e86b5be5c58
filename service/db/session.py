"""Engines and sessions: SQLite (WAL, BEGIN IMMEDIATE) or PostgreSQL (psycopg 3).

The service's engines are bounded in time (DbTimeouts): a database that is down, frozen or
too slow makes a statement fail within a known time, never hang (SPEC §6.2); the error
handlers answer such failures 503 database_unavailable.
"""

from __future__ import annotations

import fcntl
import math
import os
import select
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000  # tools without DbTimeouts (CLI re-rating, key commands)
SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
WRITER = "callrate.writer"  # Connection.info key: the SqliteWriterLock its transaction holds
# A frozen server never answers, so its own statement_timeout never fires: the client stops
# waiting this long after it.
CLIENT_GRACE_S = 0.5
LIBPQ_MIN_CONNECT_TIMEOUT_S = 2  # libpq and psycopg round connect_timeout up to 2 s


@dataclass(frozen=True, slots=True)
class DbTimeouts:
    """How long one request may wait for the database (settings CALLRATE_DB_*_TIMEOUT_S).

    connect_s: to open a connection (PostgreSQL connect_timeout; at least 2 s in libpq).
    statement_s: one statement or commit: PostgreSQL statement_timeout on the server and, for
        a server that does not answer at all (frozen), the same plus CLIENT_GRACE_S in the
        client; SQLite busy_timeout (waiting for another writer's lock).
    pool_s: to get a pooled connection when all are in use.
    """

    connect_s: float = 2.0
    statement_s: float = 5.0
    pool_s: float = 2.0


class DeadlineConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every wait on the server (statement, fetch, COPY, commit,
    the pool's ping) ends after `io_timeout_s`: the connection is then closed and the wait
    raises OperationalError, which SQLAlchemy sees as a disconnect (the pool drops it)."""

    io_timeout_s: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        """Consume a generator on the connection, within io_timeout_s unless told otherwise."""
        try:
            return super().wait(
                gen, interval, timeout if timeout is not None else self.io_timeout_s
            )
        except pg_errors._WaitTimeout as exc:
            self.pgconn.finish()  # the server's state is unknown: never reuse this connection
            raise psycopg.OperationalError(
                f"the database did not answer within {self.io_timeout_s} s"
            ) from exc


class SqliteWriterLock:
    """One writing transaction at a time on a SQLite database, across this machine's
    processes, handed over as soon as it is released.

    SQLite's own busy handler waits by sleeping (1, 2, 5 ... up to 100 ms a try), so a
    writer waiting for another's commit mostly sleeps past it: two workers ingesting got
    28k CDRs/s with a batch p99 of 1.3 s. Writers queue here instead: a thread lock inside
    the process, then flock(2) on a file beside the database, tried every millisecond.
    The wait is bounded like SQLite's (`timeout_s`); past it, sqlite3's "database is
    locked" error, as the busy handler would give. A process that dies releases its flock.
    """

    POLL_S = 0.001

    def __init__(self, path: Path, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._threads = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        weakref.finalize(self, os.close, self._fd)  # with the engine whose listeners hold it

    def acquire(self) -> None:
        """Wait for the lock; sqlite3.OperationalError after `timeout_s`."""
        deadline = time.monotonic() + self.timeout_s
        if not self._threads.acquire(timeout=self.timeout_s):
            raise sqlite3.OperationalError("database is locked")
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self._threads.release()
                    raise sqlite3.OperationalError("database is locked") from None
                time.sleep(self.POLL_S)

    def release(self) -> None:
        """Let the next writer in."""
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()


def is_sqlite(url: str) -> bool:
    """True when the URL names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(
    url: str,
    *,
    pool_size: int = 8,
    sqlite_synchronous: str = "FULL",
    audit_only: bool = False,
    timeouts: DbTimeouts | None = None,
    pre_ping: bool = True,
) -> Engine:
    """An engine configured for this service's durability and concurrency needs.

    `audit_only`: for work that writes nothing but an audit row (a quote). Each statement
    commits on its own (autocommit): the registry read needs no transaction and the audit
    insert is one statement, so no BEGIN/COMMIT round trips and, on SQLite, the write lock is
    held for the insert alone instead of across the read and the rating (other writers sleep
    in SQLite's busy handler meanwhile). Its commit does not wait for the disk: PostgreSQL
    `synchronous_commit = off`, SQLite `synchronous=NORMAL`. A committed row survives a crash
    of this process; a crash of the PostgreSQL server, or of the machine, within the WAL
    writer's delay (3 x wal_writer_delay, 0.6 s by default; SQLite: until the next
    checkpoint) can lose it. CDRs, ratings, suspense and the registry never go through this
    engine: a 2xx batch stays durable (SPEC §6.2).

    `timeouts`: bound every wait on the database (the service passes its settings); None
    for tools that may run long statements (`callrate rerate`). `pre_ping`: a pooled
    PostgreSQL connection is checked at checkout without a round trip (`closed_by_server`;
    SQLAlchemy's pre-ping was a statement per checkout, one round trip per request); one
    found dead is replaced. `pre_ping=False` (the quote engine): no check; its callers retry
    a statement once on a fresh connection when the pooled one was dead (service.db.retry).
    Every engine hides the parameters of a failed statement from its error messages, so logs
    never show a record.
    """
    options: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": 0,  # bounded: PostgreSQL backends <= workers x the engines' pools
        "hide_parameters": True,  # error messages and logs would otherwise print raw records
    }
    if audit_only:
        options["isolation_level"] = "AUTOCOMMIT"
    if timeouts is not None:
        options["pool_timeout"] = timeouts.pool_s
    if not is_sqlite(url):
        return _postgres_engine(
            url, options=options, audit_only=audit_only, timeouts=timeouts, pre_ping=pre_ping
        )
    synchronous = "NORMAL" if audit_only else sqlite_synchronous.upper()
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"sqlite_synchronous must be one of {', '.join(SQLITE_SYNCHRONOUS)}")
    busy_ms = SQLITE_BUSY_TIMEOUT_MS if timeouts is None else round(timeouts.statement_s * 1000)
    engine = create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling would begin DEFERRED; we issue BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")  # first: the next ones may wait too
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    if audit_only:
        return engine

    database = make_url(url).database
    writers = (
        SqliteWriterLock(Path(f"{database}-writer.lock"), busy_ms / 1000)
        if database and database != ":memory:"
        else None
    )

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front, so a read-then-write transaction never
        # fails with SQLITE_BUSY_SNAPSHOT when another writer committed in between. A
        # connection asked for AUTOCOMMIT (a read outside the write lock) gets no BEGIN.
        if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        if writers is not None:
            writers.acquire()
            connection.info[WRITER] = writers
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _end(connection, commit=False)
            raise

    @event.listens_for(engine, "commit")
    def _commit(connection: Any) -> None:
        _end(connection, commit=True)

    @event.listens_for(engine, "rollback")
    def _rollback(connection: Any) -> None:
        _end(connection, commit=False)

    @event.listens_for(engine, "checkin")
    @event.listens_for(engine, "invalidate")
    def _returned(_dbapi_connection: Any, record: Any, *_: Any) -> None:
        # A connection back in the pool (or dropped from it) holds no transaction: a lock
        # its transaction still held (not ended by commit or rollback events) goes too.
        held = record.info.pop(WRITER, None) if record is not None else None
        if held is not None:
            held.release()

    def _end(connection: Any, *, commit: bool = False) -> None:
        held = connection.info.pop(WRITER, None)
        if held is None:
            return
        try:
            # These events come before SQLAlchemy ends the transaction: end it here, so the
            # next writer does not find SQLite's own lock still held (SQLAlchemy's commit
            # or rollback that follows finds no transaction: a no-op in sqlite3).
            driver = connection.connection.driver_connection
            driver.commit() if commit else driver.rollback()
        finally:
            held.release()

    return engine


def closed_by_server(connection: psycopg.Connection[Any]) -> bool:
    """Whether an idle pooled connection is dead, known without a round trip: closed, broken,
    or anything to read on its socket. A server that ends a session (a restart,
    pg_terminate_backend, an idle timeout) sends an error and closes it; an idle session is
    sent nothing else (these engines never LISTEN). Not seen: a peer gone without a word
    (a host down, a network cut); then the first statement waits out its deadline (503)."""
    if connection.closed or connection.broken:
        return True
    poller = select.poll()
    poller.register(connection.fileno(), select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


def _postgres_engine(
    url: str,
    *,
    options: dict[str, Any],
    audit_only: bool,
    timeouts: DbTimeouts | None,
    pre_ping: bool,
) -> Engine:
    settings: list[str] = []
    if audit_only:
        settings.append("SET synchronous_commit = off")
    if timeouts is not None:
        connect_s = max(LIBPQ_MIN_CONNECT_TIMEOUT_S, math.ceil(timeouts.connect_s))
        options["connect_args"] = {"connect_timeout": connect_s}
        settings.append(f"SET statement_timeout = {round(timeouts.statement_s * 1000)}")
    engine = create_engine(url, **options)
    if timeouts is not None:
        io_timeout_s = timeouts.statement_s + CLIENT_GRACE_S

        @event.listens_for(engine, "do_connect")
        def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
            connection = DeadlineConnection.connect(*cargs, **cparams)
            connection.io_timeout_s = io_timeout_s
            return connection

    if pre_ping:

        @event.listens_for(engine, "checkout")
        def _alive(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            if closed_by_server(dbapi_connection):  # the pool replaces it (up to 3 tries)
                raise DisconnectionError("the server closed this pooled connection")

    if settings:

        @event.listens_for(engine, "connect")
        def _configure(dbapi_connection: Any, _record: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                for statement in settings:
                    cursor.execute(statement)
            dbapi_connection.commit()

    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded rows usable after commit (responses are built after it)."""
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)
