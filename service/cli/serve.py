"""`callrate serve` and `callrate db upgrade`: the database migrated, the HTTP API served."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from service.cli.errors import check_database_url, database_errors, positive_int
from service.config import LOG_FORMATS, Settings, get_settings


def settings_of(args: argparse.Namespace) -> Settings:
    settings = get_settings()
    if getattr(args, "tariffs", None) is not None:
        settings = settings.model_copy(update={"tariffs_dir": args.tariffs})
    if getattr(args, "log_format", None) is not None:
        settings = settings.model_copy(update={"log_format": args.log_format})
    return settings


def uvicorn_options(*, host: str, port: int) -> dict[str, Any]:
    """How `callrate serve` runs uvicorn."""
    return {
        "host": host,
        "port": port,
        # With --workers > 1 uvicorn binds the listener itself with proto 0, and asyncio's own
        # loop then never sets TCP_NODELAY on accepted connections (uvicorn issue 3149): the
        # body, written after the headers, waits for the client's delayed ACK, ~40 ms on every
        # keep-alive request. uvloop sets TCP_NODELAY on every TCP connection; naming it here
        # makes a missing uvloop stop the start instead of silently costing those 40 ms.
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,  # uvicorn's access log holds raw paths, and paths hold numbers
        "log_level": "info",
    }


@contextmanager
def worker_metrics_dir(configured: Path | None) -> Iterator[Path]:
    """Where worker processes write their metrics: the configured directory, emptied of a
    previous run's files (they would be summed in), or a temporary one removed after."""
    if configured is not None:
        configured.mkdir(parents=True, exist_ok=True)
        for stale in configured.glob("*.db"):
            stale.unlink()
        yield configured
        return
    with tempfile.TemporaryDirectory(prefix="callrate-metrics-") as created:
        yield Path(created)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.api.app import create_app, print_new_keys
    from service.clock import utcnow
    from service.db.migrate import upgrade
    from service.db.session import make_engine, make_sessionmaker
    from service.flows.tariffs import load_published_rater
    from service.security import ensure_keys, parse_api_keys

    settings = settings_of(args)
    url = settings.effective_database_url
    try:
        parse_api_keys(settings.api_keys)
        with database_errors():
            # the tariff directory's new versions are published; a bad file stops the start
            done = upgrade(
                url=url, migrations_dir=settings.migrations_dir, tariffs_dir=settings.tariffs_dir
            )
            engine = make_engine(url, pool_size=1, sqlite_synchronous=settings.sqlite_synchronous)
            with make_sessionmaker(engine).begin() as session:
                rater = load_published_rater(session, settings.tariffs_dir)
                if not settings.api_keys:
                    print_new_keys(ensure_keys(session, now=utcnow()))
            engine.dispose()
    except ValueError as exc:  # TariffError, NumberingError, a bad CALLRATE_API_KEYS
        print(f"callrate: cannot start: {exc}", file=sys.stderr)
        return 2
    for message in done.differing:
        print(f"callrate: kept the published version: {message}", file=sys.stderr)
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    workers = args.workers or settings.workers
    options = uvicorn_options(host=host, port=port)
    if workers > 1:
        # each worker process builds its own app from the same environment
        os.environ["CALLRATE_TARIFFS_DIR"] = str(settings.tariffs_dir)
        os.environ["CALLRATE_LOG_FORMAT"] = settings.log_format
        with worker_metrics_dir(settings.prometheus_multiproc_dir) as metrics_dir:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
            uvicorn.run("service.api.app:create_app", factory=True, workers=workers, **options)
    else:
        uvicorn.run(create_app(settings, rater=rater), **options)
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from service.db.migrate import upgrade

    settings = settings_of(args)
    url = args.url or settings.effective_database_url
    check_database_url(url, create=args.create)
    with database_errors():
        done = upgrade(
            url=url, migrations_dir=settings.migrations_dir, tariffs_dir=settings.tariffs_dir
        )
    applied = done.applied
    for revision in applied:
        print(f"callrate: applied revision {revision.revision}: {revision.summary}")
    newest = f" ({applied[-1].revision})" if applied else ""
    already = "" if applied else " already"
    print(f"callrate: database is{already} at the newest revision{newest}")
    for published in done.published:
        if published.new:
            print(f"callrate: published tariff {published.version} ({published.digest})")
    for message in done.differing:
        print(f"callrate: kept the published version: {message}", file=sys.stderr)
    return 0


def add_parser(commands: Any) -> None:
    """Add `serve` and `db upgrade` to the `callrate` subcommands."""
    serve = commands.add_parser(
        "serve",
        help="migrate the database, load the tariffs and serve the HTTP API",
        description="Migrate the database (CALLRATE_DATABASE_URL, else SQLite in "
        "CALLRATE_DATA_DIR), load the tariffs and serve the HTTP API. Without "
        "CALLRATE_API_KEYS, the first start makes one key per role and prints them once.",
    )
    serve.add_argument(
        "--host",
        default=None,
        metavar="ADDRESS",
        help="bind address, e.g. 0.0.0.0 for every interface "
        "(default: CALLRATE_HOST, else 127.0.0.1)",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=None,
        metavar="PORT",
        help="TCP port (default: CALLRATE_PORT, else 8000)",
    )
    serve.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="worker processes (default: CALLRATE_WORKERS, else 1)",
    )
    serve.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=None,
        help="request log lines on stderr: text or json (default: CALLRATE_LOG_FORMAT, text)",
    )
    serve.set_defaults(handler=_serve)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    db_upgrade = db_commands.add_parser(
        "upgrade", help="run the Alembic migrations up to the newest revision"
    )
    db_upgrade.add_argument(
        "--url",
        default=None,
        metavar="URL",
        help="SQLAlchemy database URL, e.g. postgresql+psycopg://user@host:5432/callrate "
        "(default: CALLRATE_DATABASE_URL, else sqlite:///CALLRATE_DATA_DIR/callrate.sqlite3)",
    )
    db_upgrade.add_argument(
        "--create",
        action="store_true",
        help="make the SQLite database (and its folder) if missing (default: refuse)",
    )
    db_upgrade.set_defaults(handler=_db_upgrade)
