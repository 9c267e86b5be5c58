"""Engines and sessions: SQLite (WAL, BEGIN IMMEDIATE) or PostgreSQL (psycopg 3)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def is_sqlite(url: str) -> bool:
    """True when the URL names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(
    url: str, *, pool_size: int = 8, sqlite_synchronous: str = "FULL", audit_only: bool = False
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
    """
    isolation = {"isolation_level": "AUTOCOMMIT"} if audit_only else {}
    if not is_sqlite(url):
        engine = create_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, **isolation
        )
        if audit_only:

            @event.listens_for(engine, "connect")
            def _asynchronous_commit(dbapi_connection: Any, _record: Any) -> None:
                with dbapi_connection.cursor() as cursor:
                    cursor.execute("SET synchronous_commit = off")
                dbapi_connection.commit()

        return engine
    synchronous = "NORMAL" if audit_only else sqlite_synchronous.upper()
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"sqlite_synchronous must be one of {', '.join(SQLITE_SYNCHRONOUS)}")
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, **isolation)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling would begin DEFERRED; we issue BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    if audit_only:
        return engine

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front, so a read-then-write transaction never
        # fails with SQLITE_BUSY_SNAPSHOT when another writer committed in between.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded rows usable after commit (responses are built after it)."""
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)
