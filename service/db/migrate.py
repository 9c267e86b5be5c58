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
from sqlalchemy.orm import Session

from service.clock import utcnow
from service.config import PROJECT_ROOT
from service.db.session import is_sqlite
from service.db.tariffs import Published, publish
from service.errors import Conflict
from service.rating.tariff import load_tariff

BUNDLED_TARIFFS = PROJECT_ROOT / "tariffs"


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


class Upgraded(NamedTuple):
    """What an upgrade did: revisions applied (oldest first), tariff versions published, and
    the directory's versions left as they were published because their content differs."""

    applied: list[Applied]
    published: list[Published]
    differing: list[str]


def upgrade(*, url: str, migrations_dir: Path, tariffs_dir: Path = BUNDLED_TARIFFS) -> Upgraded:
    """Migrate the database at `url` to the newest revision, creating a SQLite file's folder,
    then publish the versions of `tariffs_dir` that are not published yet (SPEC §7)."""
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
        with Session(engine) as session, session.begin():
            published, differing = _publish_directory(session, tariffs_dir)
    finally:
        engine.dispose()
    return Upgraded(applied, published, differing)


def _publish_directory(session: Session, directory: Path) -> tuple[list[Published], list[str]]:
    """Publish each tariff file of `directory`; one whose version is published with other
    content stays as published (a published version never changes): its message is kept."""
    published: list[Published] = []
    differing: list[str] = []
    now = utcnow()
    paths = sorted(directory.glob("*.toml"), key=lambda p: load_tariff(p).from_epoch_s)
    for path in paths:
        try:  # publish refuses before it writes anything
            published.append(
                publish(
                    session,
                    source=path.read_text(encoding="utf-8"),
                    origin=str(path),
                    by="db upgrade",
                    now=now,
                )
            )
        except Conflict as conflict:
            differing.append(f"{path}: {conflict.message}")
    return published, differing


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
