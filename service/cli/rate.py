"""`callrate rate`: rate a file of CDRs with the batch path, on this machine or on Spark."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from service.cli.errors import (
    UsageError,
    check_database_url,
    check_plan,
    database_errors,
    load_rater_or_refuse,
    one_line,
    positive_int,
    spark_missing,
)
from service.config import get_settings
from service.rating.scalar import Rater


def _check_rate_files(args: argparse.Namespace) -> Path:
    """Refuse unusable files before any work; the path of the rejected rows."""
    from service.jobs.batchio import FormatError, file_format, rejected_path

    if not args.input.is_file():
        raise UsageError(f"no input file {args.input}")
    rejected: Path = args.rejected or rejected_path(args.output)
    try:
        for path in (args.input, args.output, rejected):
            file_format(path)
    except FormatError as exc:
        raise UsageError(str(exc)) from exc
    for path in (args.output, rejected):
        if not path.parent.is_dir():
            raise UsageError(f"no directory {path.parent} for {path.name}")
        if path.resolve() == args.input.resolve():
            raise UsageError(f"{path} is the input file: choose another output")
    if args.output.resolve() == rejected.resolve():
        raise UsageError("--rejected must differ from --output")
    return rejected


def run(args: argparse.Namespace) -> int:
    """`callrate rate`: rate the input file into OUT and OUT.rejected; print the summary."""
    if args.engine == "spark":
        return _rate_on_spark(args)
    import pyarrow as pa

    from service.jobs.batchio import FormatError, progress_bar, rate_file

    args.input, args.output = Path(args.input), Path(args.output)
    rejected = _check_rate_files(args)
    with tariffs_to_rate_with(args) as (rater, _):
        default_plan = _default_plan(rater, args)
    try:
        summary = rate_file(
            args.input,
            args.output,
            rater,
            rejected=rejected,
            batch_rows=args.batch_rows,
            default_plan=default_plan,
            require_id=args.require_id,
            progress=progress_bar(sys.stderr) if sys.stderr.isatty() else None,
        )
    except FormatError as exc:  # columns that are not CDR fields
        raise UsageError(str(exc)) from exc
    except (pa.ArrowException, OSError) as exc:  # a corrupt input file, a full disk
        raise UsageError(f"cannot rate {args.input}: {one_line(exc)}") from exc
    print(summary.line())
    return 0


@contextmanager
def tariffs_to_rate_with(args: argparse.Namespace) -> Iterator[tuple[Rater, Path]]:
    """The rater and its tariff directory: with --database-url the published set of that
    database (SPEC §7), written to a temporary directory (Spark's executors load files);
    else the tariff directory's files."""
    if args.database_url is None:
        yield load_rater_or_refuse(args.tariffs), args.tariffs
        return
    from service.db.session import make_engine, make_sessionmaker
    from service.db.tariffs import published_rows, write_published
    from service.rating import NUMBERING_DIR

    check_database_url(args.database_url, create=False, can_create=False)
    with tempfile.TemporaryDirectory(prefix="callrate-published-") as created:
        directory = Path(created)
        with database_errors():
            engine = make_engine(args.database_url, pool_size=1)
            try:
                with make_sessionmaker(engine)() as session:
                    if not published_rows(session):
                        raise UsageError(
                            f"{args.database_url}: no tariff version is published "
                            "(callrate db upgrade publishes the bundled ones)"
                        )
                    write_published(session, directory)
            finally:
                engine.dispose()
        shutil.copytree(args.tariffs / NUMBERING_DIR, directory / NUMBERING_DIR)
        yield load_rater_or_refuse(directory), directory


def _default_plan(rater: Rater, args: argparse.Namespace) -> str | None:
    """--default-plan, else CALLRATE_DEFAULT_PLAN: refused unless the tariffs have it."""
    default_plan: str | None = args.default_plan or get_settings().default_plan
    source = "--default-plan" if args.default_plan else "CALLRATE_DEFAULT_PLAN"
    check_plan(rater, default_plan, source=source)
    return default_plan


def _rate_on_spark(args: argparse.Namespace) -> int:
    from service.jobs.spark_engine import rate_on_spark, spark_session

    if spark_missing("rate"):
        return 2
    with tariffs_to_rate_with(args) as (rater, directory), spark_session(args.master) as spark:
        default_plan = _default_plan(rater, args)
        summary = rate_on_spark(
            spark,
            args.input,
            args.output,
            tariffs=directory,
            default_plan=default_plan,
            require_id=args.require_id,
            partitions=args.partitions,
            batch_rows=args.batch_rows,
        )
    print(summary.line())
    return 0


def add_parser(commands: Any) -> None:
    """Add `rate` to the `callrate` subcommands."""
    rate = commands.add_parser(
        "rate",
        help="rate a Parquet, CSV or NDJSON file of CDRs with the batch path",
        description="Rate every CDR of a file, one record batch at a time. Formats come from "
        "the file extensions: .parquet/.pq, .csv, .ndjson/.jsonl.",
    )
    # Text, not Path: the spark engine also takes URIs (hdfs://…), which Path would alter.
    rate.add_argument(
        "input",
        metavar="INPUT",
        help="CDR file: .parquet, .pq, .csv, .ndjson, .jsonl; with --engine spark also a "
        "directory, a glob or a URI",
    )
    rate.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="file for the rated rows; its extension picks the format (required)",
    )
    rate.add_argument(
        "--rejected",
        type=Path,
        default=None,
        metavar="PATH",
        help="file for the rejected rows, with reason and message (default: OUT.rejected.EXT)",
    )
    rate.add_argument(
        "--batch-rows",
        type=positive_int,
        default=131_072,
        metavar="N",
        help="rows per record batch: memory grows with it",
    )
    rate.add_argument(
        "--default-plan",
        default=None,
        metavar="PLAN",
        help="plan id for rows without one, e.g. gotone; must be a plan of the tariffs "
        "(default: CALLRATE_DEFAULT_PLAN, else such rows are rejected)",
    )
    rate.add_argument(
        "--require-id", action="store_true", help="reject rows without an id (default: off)"
    )
    rate.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help="rate with the tariff versions published in this database (SPEC §7) instead "
        "of the tariff directory's files",
    )
    rate.add_argument(
        "--engine",
        choices=("local", "spark"),
        default="local",
        help="local: stream on this machine; spark: IN is a Parquet/CSV/NDJSON file, directory "
        "or glob, OUT a Parquet dataset and OUT.rejected (docs/scale.md)",
    )
    rate.add_argument(
        "--master",
        default=None,
        metavar="URL",
        help="spark: master URL, e.g. spark://host:7077 or yarn (default: local[*])",
    )
    rate.add_argument(
        "--partitions",
        type=positive_int,
        default=None,
        metavar="N",
        help="spark: repartition the input into N partitions (default: as Spark reads it)",
    )
    rate.set_defaults(handler=run)
