"""Engines: CDR writes wait for the disk; audit-only writes (quotes) do not (SQLite and
PostgreSQL)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, pool, text

from service.db.session import (
    DbTimeouts,
    SqliteWriterLock,
    closed_by_server,
    is_sqlite,
    make_engine,
)
from tests.conftest_db import fresh_database

SQLITE_LEVELS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def _commit_durability(engine: Engine, url: str) -> str:
    with engine.connect() as connection:
        if is_sqlite(url):
            level = connection.execute(text("PRAGMA synchronous")).scalar_one()
            return SQLITE_LEVELS[level]
        return str(connection.execute(text("SHOW synchronous_commit")).scalar_one())


def test_the_default_engine_commits_durably(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        expected = "FULL" if is_sqlite(database_url) else "on"
        assert _commit_durability(engine, database_url) == expected
    finally:
        engine.dispose()


def test_the_audit_only_engine_does_not_wait_for_the_disk(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1, audit_only=True)
    try:
        expected = "NORMAL" if is_sqlite(database_url) else "off"
        # every pooled connection, not only the first: the setting is made on connect
        for _ in range(2):
            assert _commit_durability(engine, database_url) == expected
            engine.dispose()
    finally:
        engine.dispose()


def test_audit_only_statements_commit_one_by_one(database_url: str) -> None:
    """No BEGIN/COMMIT round trips, and on SQLite no write lock held across the work."""
    audit = make_engine(database_url, pool_size=1, audit_only=True)
    other = make_engine(database_url, pool_size=1)
    insert = text(
        "INSERT INTO audit_log (at, key_id, role, action) "
        "VALUES (CURRENT_TIMESTAMP, 'k', 'agent', 'quote')"
    )
    try:
        with audit.begin() as connection:
            connection.execute(insert)
            # visible to another connection before the unit of work ends
            with other.connect() as reader:
                count = reader.execute(text("SELECT count(*) FROM audit_log")).scalar_one()
            assert count == 1
    finally:
        audit.dispose()
        other.dispose()


def test_sqlite_writers_queue_on_the_writer_lock_and_time_out_like_busy(tmp_path: Path) -> None:
    """One writing transaction at a time across engines (processes): a second writer waits,
    gets in as soon as the first commits, and past its timeout gets "database is locked"."""
    url = f"sqlite:///{tmp_path / 'w.sqlite3'}"
    first = make_engine(url, timeouts=DbTimeouts(statement_s=0.3))
    second = make_engine(url, timeouts=DbTimeouts(statement_s=3.0))
    with first.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
    waited: list[float] = []

    def write() -> None:
        started = time.monotonic()
        with second.begin() as connection:
            waited.append(time.monotonic() - started)
            connection.execute(text("INSERT INTO t VALUES (2)"))

    with first.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.5)
        assert not waited  # still queued behind the open transaction
    writer.join(timeout=5)
    assert len(waited) == 1
    assert 0.4 < waited[0] < 1.0  # in right after the commit, not after a busy-handler sleep
    with second.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (3)"))
        with pytest.raises(sqlite3.OperationalError, match="database is locked"), first.begin():
            pass
    with first.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 3
    first.dispose()
    second.dispose()


def test_a_writer_lock_held_by_a_killed_process_is_free(tmp_path: Path) -> None:
    lock_file = tmp_path / "x.sqlite3-writer.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(lock_file)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == b"held\n"
    lock = SqliteWriterLock(lock_file, timeout_s=0.2)
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        lock.acquire()
    holder.kill()
    holder.wait()
    holder.stdout.close()
    lock.acquire()
    lock.release()


def test_a_connection_the_server_ended_is_replaced_at_checkout(tmp_path: Path) -> None:
    """No round trip checks a pooled PostgreSQL connection (closed_by_server looks at its
    socket): one whose backend was terminated is found dead at checkout and replaced, so the
    statement after it succeeds; a healthy idle one is kept."""
    with fresh_database("postgresql", tmp_path) as url:
        engine = make_engine(url, pool_size=1, timeouts=DbTimeouts())
        admin = create_engine(url, poolclass=pool.NullPool)
        with engine.connect() as connection:
            first = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
            driver = connection.connection.driver_connection
        assert not closed_by_server(driver)  # idle, healthy: nothing to read
        with engine.connect() as connection:  # kept: the same backend
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() == first
        with admin.connect() as connection:  # waits until the backend is gone
            connection.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": first})
        assert closed_by_server(driver)
        with engine.connect() as connection:
            second = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert second != first
        engine.dispose()
        admin.dispose()
