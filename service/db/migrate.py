"""Run the Alembic migrations programmatically (serve, `callrate db upgrade`, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool

from service.db.session import is_sqlite


def alembic_config(*, url: str, migrations_dir: Path) -> Config:
    """An Alembic Config for this URL, independent of the working directory."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("path_separator", "os")
    # ConfigParser interpolation would read '%' in a URL-encoded password as a reference.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(*, url: str, migrations_dir: Path) -> None:
    """Migrate the database at `url` to the newest revision, creating a SQLite file's folder."""
    if is_sqlite(url):
        database = create_engine(url).url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as connection:
            config = alembic_config(url=url, migrations_dir=migrations_dir)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()
