"""Run the Alembic migrations programmatically (serve, `callrate db upgrade`, tests)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from service.db.session import is_sqlite


def alembic_config(*, url: str, migrations_dir: Path) -> Config:
    """An Alembic Config for this URL, independent of the working directory."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("path_separator", "os")
    # ConfigParser interpolation would read '%' in a URL-encoded password as a reference.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


class Applied(NamedTuple):
    """A revision an upgrade applied."""

    revision: str
    summary: str  # the first line of its docstring


def upgrade(*, url: str, migrations_dir: Path) -> list[Applied]:
    """Migrate the database at `url` to the newest revision, creating a SQLite file's folder;
    the revisions applied, oldest first (none when it was at the newest already)."""
    if is_sqlite(url):
        database = create_engine(url).url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as connection:
            config = alembic_config(url=url, migrations_dir=migrations_dir)
            config.attributes["connection"] = connection
            current = MigrationContext.configure(connection).get_current_revision()
            pending = ScriptDirectory.from_config(config).iterate_revisions("heads", current)
            applied = [Applied(r.revision, r.doc.splitlines()[0]) for r in reversed([*pending])]
            command.upgrade(config, "head")
    finally:
        engine.dispose()
    return applied


@contextmanager
def throwaway_schema(database_url: str, *, prefix: str, migrations_dir: Path) -> Iterator[str]:
    """A new, migrated PostgreSQL schema and the URL that uses it; dropped afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = create_engine(database_url, poolclass=pool.NullPool)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = (
        make_url(database_url)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )
    try:
        upgrade(url=url, migrations_dir=migrations_dir)
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
