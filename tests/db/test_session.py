"""Engines: CDR writes wait for the disk; audit-only writes (quotes) do not (SQLite and
PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import Engine, text

from service.db.session import is_sqlite, make_engine

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
