"""`callrate rerate`: re-rate the stored CDRs of a window (SPEC §6.3), here or on Spark."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from service.cli.errors import UsageError, check_plan, migrated_rater
from service.config import get_settings


def run(args: argparse.Namespace) -> int:
    """`callrate rerate`: run (or export for Spark, or apply) a re-rating job; print it."""
    from service.cli.errors import check_database_url, database_errors
    from service.db.session import make_engine, make_sessionmaker
    from service.jobs.rerate import (
        apply_results,
        epoch_s,
        export_window,
        job_out,
        run_job,
        start_job,
    )
    from service.security import Actor

    if epoch_s(args.window_from) >= epoch_s(args.window_to):
        raise UsageError("--from must be before --to")
    settings = get_settings()
    url = args.url or settings.effective_database_url
    check_database_url(url, create=args.create)
    with database_errors():
        engine = make_engine(url, pool_size=2)
        sessions = make_sessionmaker(engine)
        rater = migrated_rater(url, sessions, args.tariffs)  # the published set (SPEC §7)
    check_plan(rater, settings.default_plan, source="CALLRATE_DEFAULT_PLAN")
    actor = Actor(key_id="cli", role="admin")
    if args.export is not None:
        try:
            with database_errors():
                count = export_window(
                    sessions,
                    window_from=args.window_from,
                    window_to=args.window_to,
                    directory=args.export,
                    actor=actor,
                )
        finally:
            engine.dispose()
        print(f"{count:,} CDRs exported to {args.export}")
        return 0
    try:
        with database_errors(), sessions.begin() as session:
            job = start_job(
                session,
                window_from=args.window_from,
                window_to=args.window_to,
                dry_run=args.dry_run,
                actor=actor,
            )
        if args.apply is not None:
            job = apply_results(
                sessions,
                job_id=job.id,
                rater=rater,
                default_plan=settings.default_plan,
                results=args.apply,
            )
        else:
            job = run_job(sessions, job_id=job.id, rater=rater, default_plan=settings.default_plan)
        print(job_out(job).model_dump_json(by_alias=True))
    finally:
        engine.dispose()
    return 0 if job.status == "done" else 1


def _instant(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"not an RFC 3339 timestamp (e.g. 2010-03-01T00:00:00+08:00): {text!r}"
        ) from exc


def add_parser(commands: Any) -> None:
    """Add `rerate` to the `callrate` subcommands."""
    rerate = commands.add_parser(
        "rerate",
        help="re-rate stored CDRs that started in [--from, --to) (SPEC §6.3)",
        description="Re-rate stored CDRs whose start is in [--from, --to) under the tariffs "
        "now in TARIFFS; a changed charge or version appends a rating, history stays. Prints "
        "the job as JSON; exit 1 if the job failed.",
    )
    rerate.add_argument(
        "--from",
        dest="window_from",
        type=_instant,
        required=True,
        metavar="TIME",
        help="window start, inclusive: RFC 3339, e.g. 2010-01-01T00:00:00+08:00 "
        "(no offset means +08:00) (required)",
    )
    rerate.add_argument(
        "--to",
        dest="window_to",
        type=_instant,
        required=True,
        metavar="TIME",
        help="window end, exclusive: RFC 3339 like --from (required)",
    )
    rerate.add_argument(
        "--dry-run", action="store_true", help="count and sum the changes, write nothing"
    )
    rerate.add_argument(
        "--url",
        metavar="URL",
        help="SQLAlchemy database URL, e.g. postgresql+psycopg://user@host:5432/callrate "
        "(default: CALLRATE_DATABASE_URL, else sqlite:///CALLRATE_DATA_DIR/callrate.sqlite3)",
    )
    rerate.add_argument(
        "--create",
        action="store_true",
        help="make the SQLite database if it does not exist (default: refuse, a typo "
        "would rate an empty database)",
    )
    cluster = rerate.add_mutually_exclusive_group()
    cluster.add_argument(
        "--export",
        type=Path,
        metavar="DIR",
        help="write the window's CDRs and registry profiles as Parquet for "
        "`callrate rate DIR -o OUT --engine spark` (docs/scale.md)",
    )
    cluster.add_argument(
        "--apply",
        type=Path,
        metavar="OUT",
        help="append the ratings of that Spark output (OUT and OUT.rejected) that changed, "
        "checked by the per-call path",
    )
    rerate.set_defaults(handler=run)
