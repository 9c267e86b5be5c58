"""Command-line mistakes: each becomes one line on stderr and exit code 2 (`callrate` main).

Checks here run before a command starts its work; nothing in this module loads SQLAlchemy
or the rating core at import time, so `callrate quote` stays quick to start.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from service.config import get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from service.rating.scalar import Rater

USAGE_EXIT = 2


class UsageError(Exception):
    """A mistake the user can fix: shown as `callrate: <message>`, exit code 2."""


def one_line(text: object) -> str:
    """The first non-empty line of an error's text."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return type(text).__name__ if isinstance(text, BaseException) else "unknown error"


def positive_int(text: str) -> int:
    """argparse type: a whole number above zero."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a whole number above 0, not {text!r}")
    return value


def load_rater_or_refuse(tariffs_dir: Path) -> Rater:
    """The tariffs and numbering tables of `tariffs_dir`, or a UsageError naming the problem."""
    from service.rating import load_rater
    from service.rating.tariff import TariffError

    try:
        return load_rater(tariffs_dir)
    except (TariffError, OSError) as exc:
        raise UsageError(f"cannot load the tariffs: {one_line(exc)}") from exc


def check_plan(rater: Rater, plan: str | None, *, source: str) -> None:
    """Refuse a default plan that no tariff version knows (it would reject every record)."""
    plans = rater.book.plans
    if plan is not None and plan not in plans:
        known = ", ".join(plans)
        raise UsageError(f"{source} {plan!r} is not a plan of the tariffs (one of {known})")


def check_database_url(url: str, *, create: bool, can_create: bool = True) -> None:
    """Refuse a URL that is not one, and a SQLite file (or its folder) that does not exist
    unless `create`: a typo must not silently make an empty database. `can_create`: whether
    the command has a --create option to suggest."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UsageError(
            "the database URL is not one (e.g. sqlite:////var/lib/callrate/callrate.sqlite3 "
            "or postgresql+psycopg://user@host:5432/name)"
        ) from exc
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or create or not database:
        return
    if database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    hint = "--create makes it" if can_create else "callrate serve makes it"
    if not path.parent.is_dir():
        raise UsageError(f"no directory {path.parent} for the SQLite database ({hint})")
    if not path.is_file():
        raise UsageError(f"no SQLite database at {path} ({hint})")


def migrated_rater(url: str, sessions: sessionmaker[Session], tariffs_dir: Path) -> Rater:
    """Migrate the database, publish `tariffs_dir`'s versions not published yet (saying so
    on stderr), and the rater of the published set (SPEC §7: every process that works on
    the database rates with it); a UsageError for a bad tariff file."""
    from service.db.migrate import upgrade
    from service.flows.tariffs import load_published_rater
    from service.rating.tariff import TariffError

    settings = get_settings()
    try:
        done = upgrade(url=url, migrations_dir=settings.migrations_dir, tariffs_dir=tariffs_dir)
        with sessions() as session:
            rater = load_published_rater(session, tariffs_dir)
    except TariffError as exc:
        raise UsageError(f"cannot load the tariffs: {one_line(exc)}") from exc
    for outcome in done.published:
        if outcome.new:
            said = f"callrate: published tariff {outcome.version} ({outcome.digest})"
            print(said, file=sys.stderr)
    for message in done.differing:
        print(f"callrate: kept the published version: {message}", file=sys.stderr)
    return rater


@contextmanager
def database_errors() -> Iterator[None]:
    """A database that cannot be reached or used becomes a UsageError naming why."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

    try:
        yield
    except (OperationalError, ArgumentError, NoSuchModuleError) as exc:
        cause = exc.orig if isinstance(exc, OperationalError) else exc
        raise UsageError(f"cannot use the database: {one_line(cause)}") from exc


def spark_missing(command: str) -> bool:
    """True, having said how to get it, when PySpark is not installed."""
    from service.jobs.spark_engine import SparkUnavailable, require_pyspark

    try:
        require_pyspark()
    except SparkUnavailable as missing:
        print(f"callrate {command}: {missing}", file=sys.stderr)
        return True
    return False
