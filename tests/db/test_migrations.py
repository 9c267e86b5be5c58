"""The schema comes only from Alembic: the migrated database matches the models exactly,
and every revision downgrades cleanly (SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, pool

from service.db.migrate import alembic_config
from service.db.models import Base
from tests.conftest_db import MIGRATIONS


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = create_engine(database_url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert differences == []


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
