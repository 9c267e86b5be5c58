"""`callrate ingest`: CDR files from disk (SPEC §3.4): native §3.1 NDJSON/JSON, FreeSWITCH
documents (as its err-log-dir keeps them), MSC files in 3GPP TS 32.298."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from service.cli.errors import UsageError, check_plan, migrated_rater
from service.config import get_settings


def run(args: argparse.Namespace) -> int:
    """`callrate ingest`: each file ingested and committed; a summary line; exit 1 when
    records went to suspense or a file could not be read whole."""
    from service.cli.errors import check_database_url, database_errors
    from service.db.session import make_engine, make_sessionmaker
    from service.ingest.mediation_file import MediationFileError, load_mediation
    from service.jobs.pickup import FORMATS, FileResult, Pickup, fail, files_of, settle
    from service.jobs.rerate import warm_batch_kernels
    from service.rating.batch import BatchRater

    assert args.format in FORMATS
    settings = get_settings()
    url = args.url or settings.effective_database_url
    check_database_url(url, create=args.create)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file or directory: {', '.join(missing)}")
    try:
        mediation = load_mediation(settings.mediation_file)
    except MediationFileError as exc:
        raise UsageError(f"CALLRATE_MEDIATION_FILE: {exc}") from exc
    with database_errors():
        engine = make_engine(url, pool_size=2)
        # the published tariff set (SPEC §7), the tariff directory's new versions published
        rater = migrated_rater(url, make_sessionmaker(engine), args.tariffs)
    check_plan(rater, settings.default_plan, source="CALLRATE_DEFAULT_PLAN")
    kernels: list[BatchRater] = []

    def batch() -> BatchRater:
        if not kernels:
            kernels.append(warm_batch_kernels(rater))
        return kernels[0]

    pickup = Pickup(
        sessions=make_sessionmaker(engine),
        rater=rater,
        mediation=mediation,
        default_plan=settings.default_plan,
        batch=batch,
    )
    progress = sys.stderr.isatty() and not args.quiet
    results: list[FileResult] = []
    try:
        for number, (path, picked) in enumerate(files_of(args.paths), start=1):
            if progress:
                print(f"\r{number} files, {_records(results):,} records …", end="", file=sys.stderr)
            try:
                data = path.read_bytes()
            except OSError as exc:
                if picked:
                    fail(path, f"cannot read: {exc}")
                results.append(FileResult(path, "unknown", failure=f"cannot read: {exc}"))
                continue
            with database_errors():
                result = pickup.ingest(path, data, args.format)
            results.append(result)
            if picked:
                settle(path, result)
            if args.verbose or result.failure:
                print(_file_line(result), file=sys.stderr)
    finally:
        engine.dispose()
        if progress:
            print("\r\033[K", end="", file=sys.stderr)
    print(_summary(results))
    rejected = sum(r.counts["rejected"] for r in results)
    return 1 if rejected or any(r.failure for r in results) else 0


def _records(results: list[Any]) -> int:
    return sum(sum(r.counts.values()) + r.held for r in results)


def _file_line(result: Any) -> str:
    counts = ", ".join(f"{n} {k}" for k, n in result.counts.items())
    line = f"{result.path}: {result.format}: {counts}, {result.held} held"
    if result.codes:
        line += " (" + ", ".join(f"{c} {n}" for c, n in sorted(result.codes.items())) + ")"
    if result.failure:
        line += f"; FAILED: {result.failure}"
    return line


def _summary(results: list[Any]) -> str:
    """The one line at the end: files, records per result, what went to suspense."""
    totals = {"rated": 0, "duplicate": 0, "rejected": 0}
    codes: dict[str, int] = {}
    for result in results:
        for key in totals:
            totals[key] += result.counts[key]
        for code, count in result.codes.items():
            codes[code] = codes.get(code, 0) + count
    failed = sum(1 for r in results if r.failure)
    held = sum(r.held for r in results)
    line = (
        f"callrate ingest: {len(results)} files ({failed} failed), "
        f"{totals['rated']:,} rated, {totals['duplicate']:,} duplicate, "
        f"{totals['rejected']:,} rejected to suspense, {held:,} partial held"
    )
    if codes:
        line += " (" + ", ".join(f"{c} {n}" for c, n in sorted(codes.items())) + ")"
    return line


def add_parser(commands: Any) -> None:
    """Add `ingest` to the `callrate` subcommands."""
    from service.jobs.pickup import FORMATS

    ingest = commands.add_parser(
        "ingest",
        help="ingest CDR files: native NDJSON/JSON, FreeSWITCH, 3GPP TS 32.298 (SPEC §3.4)",
        description="Ingest CDR files into the database with POST /v1/cdrs's semantics: "
        "each record rated, a duplicate adding nothing, a rejected record kept in suspense. "
        "A DIR's files are each moved to DIR/done/ once their records are committed, or to "
        "DIR/failed/ with a .reason file when a file could not be read whole. Prints one "
        "summary line; exit 1 when records went to suspense or a file failed.",
    )
    ingest.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="FILE|DIR",
        help="files to ingest, or pickup directories (their files move to done/ or failed/)",
    )
    ingest.add_argument(
        "--format",
        choices=FORMATS,
        default="auto",
        help="the files' format; auto: by name and first bytes",
    )
    ingest.add_argument(
        "--url",
        metavar="URL",
        help="SQLAlchemy database URL (default: CALLRATE_DATABASE_URL, else "
        "sqlite:///CALLRATE_DATA_DIR/callrate.sqlite3)",
    )
    ingest.add_argument(
        "--create", action="store_true", help="make the SQLite database if it does not exist"
    )
    ingest.add_argument("-v", "--verbose", action="store_true", help="one line per file")
    ingest.add_argument("-q", "--quiet", action="store_true", help="no progress on a terminal")
    ingest.set_defaults(handler=run)
