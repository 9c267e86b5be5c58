"""The schema comes only from Alembic: the migrated database matches the models exactly,
and every revision downgrades cleanly (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, pool, text

from service.db.migrate import alembic_config
from service.db.models import Base
from tests.conftest_db import MIGRATIONS


def _but_the_replaced_foreign_key(
    item: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """PostgreSQL checks ratings.cdr_id by triggers instead (migration 0005)."""
    return not (
        type_ == "foreign_key_constraint"
        and getattr(item, "parent", None) is not None
        and item.parent.name == "ratings"
    )  # type: ignore[attr-defined]


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = create_engine(database_url, poolclass=pool.NullPool)
    postgres = engine.dialect.name == "postgresql"
    opts: dict[str, object] = {"compare_type": True}
    if postgres:
        opts["include_object"] = _but_the_replaced_foreign_key
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts=opts)
        differences = compare_metadata(context, Base.metadata)
        triggers = (
            connection.execute(
                text(  # of this schema's tables: other schemas (other tests) may hold theirs
                    "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                    " WHERE c.relnamespace = current_schema()::regnamespace"
                    " AND t.tgname LIKE '%rat%' AND NOT t.tgisinternal"
                )
            ).scalar()
            if postgres
            else None
        )
    engine.dispose()
    assert differences == []
    assert triggers in (None, 4)  # what replaces the foreign key there


def test_downgrade_to_base_and_back(database_url: str) -> None:
    engine = create_engine(database_url, poolclass=pool.NullPool)
    with engine.begin() as connection:
        config = alembic_config(url=database_url, migrations_dir=MIGRATIONS)
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
        assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
        command.upgrade(config, "head")
        assert "rerate_jobs" in inspect(connection).get_table_names()
    engine.dispose()


def test_0003_keeps_suspense_text_as_bytes_and_merges_duplicate_open_rows(
    database_url: str,
) -> None:
    engine = create_engine(database_url, poolclass=pool.NullPool)
    insert = text(
        "INSERT INTO suspense (record_id, raw, field, code, reason, received_at, resolved_at)"
        " VALUES (:record_id, :raw, 'plan', 'plan.missing', 'r', :at, :resolved_at)"
    )
    at = datetime(2026, 11, 1, tzinfo=UTC)
    with engine.begin() as connection:
        config = alembic_config(url=database_url, migrations_dir=MIGRATIONS)
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
        rows = [
            ("a", '{"id":"a","note":"中"}', None),
            ("a", '{"id":"a","note":"中"}', None),  # concurrent retries made these two
            ("a", '{"id":"a","note":"中"}', at),  # resolved earlier: stays as it was
            ("b", '{"id":"b"}', None),
        ]
        for record_id, raw, resolved_at in rows:
            connection.execute(
                insert, {"record_id": record_id, "raw": raw, "at": at, "resolved_at": resolved_at}
            )
        command.upgrade(config, "head")
        stored = connection.execute(
            text("SELECT raw, raw_sha256, resolved_at, resolution FROM suspense ORDER BY id")
        ).all()
    engine.dispose()
    assert [bytes(row[0]) for row in stored] == [raw.encode() for _, raw, _ in rows]
    assert [row[1] for row in stored] == [
        hashlib.sha256(raw.encode()).hexdigest() for _, raw, _ in rows
    ]
    assert [row[2] is None for row in stored] == [True, False, False, True]
    assert [row[3] for row in stored] == [None, "merged", None, None]
