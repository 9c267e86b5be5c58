"""`callrate tariffs`: publish tariff versions into the database and list what is published."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from service.cli.errors import UsageError, check_database_url, database_errors
from service.cli.serve import settings_of


def _url(args: argparse.Namespace) -> str:
    url: str = args.url or settings_of(args).effective_database_url
    return url


def _publish(args: argparse.Namespace) -> int:
    """`callrate tariffs publish FILE...`: validate and publish, all or none."""
    from service.clock import utcnow
    from service.db.migrate import upgrade
    from service.db.session import make_engine, make_sessionmaker
    from service.db.tariffs import publish_files
    from service.errors import Conflict
    from service.rating.tariff import TariffError

    settings = settings_of(args)
    url = _url(args)
    check_database_url(url, create=False, can_create=False)
    try:
        with database_errors():
            upgrade(
                url=url, migrations_dir=settings.migrations_dir, tariffs_dir=settings.tariffs_dir
            )
            engine = make_engine(url, pool_size=1)
            try:
                with make_sessionmaker(engine).begin() as session:
                    outcomes = publish_files(session, paths=args.files, by="cli", now=utcnow())
            finally:
                engine.dispose()
    except TariffError as exc:
        raise UsageError(f"tariffs publish: {exc}") from exc
    except Conflict as exc:
        print(f"callrate tariffs publish: refused: {exc.message}", file=sys.stderr)
        return 1
    for outcome in outcomes:
        said = "published" if outcome.new else "already published, unchanged:"
        print(
            f"callrate: {said} {outcome.version} ({outcome.digest}), "
            f"from {outcome.effective_from.isoformat()}"
        )
    print("callrate: running servers rate with the published set within 5 s")
    return 0


def _list(args: argparse.Namespace) -> int:
    """`callrate tariffs list`: one line per published version."""
    from service.db.session import make_engine, make_sessionmaker
    from service.flows.tariffs import catalogue

    url = _url(args)
    check_database_url(url, create=False, can_create=False)
    with database_errors():
        engine = make_engine(url, pool_size=1)
        with make_sessionmaker(engine)() as session:
            versions = catalogue(session)
        engine.dispose()
    for t in versions:
        until = t.in_force_until.isoformat() if t.in_force_until else "open"
        print(
            f"{t.version}  {t.effective_from.isoformat()} .. {until}  {t.digest}  "
            f"published {t.published_at.isoformat()} by {t.published_by}"
        )
    return 0


def add_parser(commands: Any) -> None:
    """Add `tariffs publish` and `tariffs list` to the `callrate` subcommands."""
    tariffs = commands.add_parser(
        "tariffs", help="publish tariff versions into the database, list the published ones"
    )
    sub = tariffs.add_subparsers(dest="tariffs_command", required=True, metavar="COMMAND")
    url_help = (
        "SQLAlchemy database URL (default: CALLRATE_DATABASE_URL, else the embedded SQLite file)"
    )
    publish = sub.add_parser(
        "publish",
        help="validate tariff TOML files and publish them (a published version never changes)",
        description="Validate each file and publish it with its digest, all in one "
        "transaction. A version id published already with other content is refused with "
        "the keys that differ (exit 1): a correction is a new version with a later "
        "effective_from. Every process on the database rates with the published set.",
    )
    publish.add_argument("files", nargs="+", type=Path, metavar="FILE", help="tariff .toml file")
    publish.add_argument("--url", default=None, metavar="URL", help=url_help)
    publish.set_defaults(handler=_publish)
    listing = sub.add_parser("list", help="the published versions, windows, digests")
    listing.add_argument("--url", default=None, metavar="URL", help=url_help)
    listing.set_defaults(handler=_list)
