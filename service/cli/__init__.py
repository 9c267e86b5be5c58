"""The `callrate` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

import orjson

from service.cli.errors import (
    USAGE_EXIT,
    UsageError,
    check_plan,
    load_rater_or_refuse,
    one_line,
    positive_int,
)
from service.config import get_settings
from service.rating import NUMBERING_DIR
from service.rating.rejections import Rejected
from service.rating.scalar import Rater, SubscriberProfile

Command = Callable[[argparse.Namespace], int]
UNREADABLE_LINE = {
    "rejected": True,
    "field": "record",
    "code": "record.invalid",
    "reason": "line is not valid JSON",
}


@dataclass
class QuoteTally:
    """What `quote_lines` answered: every request, those rejected, lines that were not JSON."""

    answered: int = 0
    rejected: int = 0
    unreadable: int = 0


def quote_lines(
    rater: Rater,
    lines: Iterable[str | bytes],
    out: TextIO,
    *,
    subscriber: SubscriberProfile | None = None,
) -> QuoteTally:
    """Rate each JSON quote request line; print one result (or rejection) per line.

    `subscriber`: the profile of a caller without a plan (CALLRATE_DEFAULT_PLAN), as the
    service uses for a caller its registry does not know."""
    tally = QuoteTally()
    for line in lines:
        if not line.strip():
            continue
        result: dict[str, Any]
        try:
            result = rater.rate_raw(orjson.loads(line), subscriber=subscriber).to_dict()
        except orjson.JSONDecodeError:
            result = UNREADABLE_LINE
            tally.unreadable += 1
        except Rejected as rejection:
            result = rejection.to_dict()
            tally.rejected += 1
        out.write(orjson.dumps(result).decode() + "\n")
        tally.answered += 1
    return tally


def _quote(args: argparse.Namespace) -> int:
    if args.request is not None:
        try:
            orjson.loads(args.request)
        except orjson.JSONDecodeError as exc:
            raise UsageError(f"the quote request is not JSON: {exc}") from exc
    rater = load_rater_or_refuse(args.tariffs)
    default_plan = get_settings().default_plan
    check_plan(rater, default_plan, source="CALLRATE_DEFAULT_PLAN")
    subscriber = SubscriberProfile(plan=default_plan) if default_plan else None
    if args.request is not None:
        # one request: a rejection is its answer on stdout, and exit code 1
        tally = quote_lines(rater, [args.request], sys.stdout, subscriber=subscriber)
        return 1 if tally.rejected else 0
    # NDJSON: every line is answered; only a line that could not be read fails the run
    tally = quote_lines(rater, sys.stdin.buffer, sys.stdout, subscriber=subscriber)
    return 1 if tally.unreadable else 0


def _numbering_build(args: argparse.Namespace) -> int:
    from service.tools.numbering_build import build

    report = build(args.tariffs / NUMBERING_DIR)
    print("\n".join(report.lines()))
    return 0


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


def _rate(args: argparse.Namespace) -> int:
    if args.engine == "spark":
        return _rate_on_spark(args)
    import pyarrow as pa

    from service.jobs.batchio import progress_bar, rate_file

    args.input, args.output = Path(args.input), Path(args.output)
    rejected = _check_rate_files(args)
    rater = load_rater_or_refuse(args.tariffs)
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
    except (pa.ArrowException, OSError) as exc:  # a corrupt input file, a full disk
        raise UsageError(f"cannot rate {args.input}: {one_line(exc)}") from exc
    print(summary.line())
    return 0


def _default_plan(rater: Rater, args: argparse.Namespace) -> str | None:
    """--default-plan, else CALLRATE_DEFAULT_PLAN: refused unless the tariffs have it."""
    default_plan: str | None = args.default_plan or get_settings().default_plan
    source = "--default-plan" if args.default_plan else "CALLRATE_DEFAULT_PLAN"
    check_plan(rater, default_plan, source=source)
    return default_plan


def _without_spark(command: str) -> bool:
    """True, having said how to get it, when PySpark is not installed."""
    from service.jobs.spark_engine import SparkUnavailable, require_pyspark

    try:
        require_pyspark()
    except SparkUnavailable as missing:
        print(f"callrate {command}: {missing}", file=sys.stderr)
        return True
    return False


def _rate_on_spark(args: argparse.Namespace) -> int:
    from service.jobs.spark_engine import rate_on_spark, spark_session

    if _without_spark("rate"):
        return 2
    default_plan = _default_plan(load_rater_or_refuse(args.tariffs), args)
    with spark_session(args.master) as spark:
        summary = rate_on_spark(
            spark,
            args.input,
            args.output,
            tariffs=args.tariffs,
            default_plan=default_plan,
            require_id=args.require_id,
            partitions=args.partitions,
            batch_rows=args.batch_rows,
        )
    print(summary.line())
    return 0


def _bench(args: argparse.Namespace) -> int:
    from service.tools.bench import apply_single_thread, run_bench

    if args.target == "service":
        from service.tools.bench_service import run

        return run(args, get_settings().database_url)

    if args.engine == "spark":
        return _bench_engines(args)
    rater = load_rater_or_refuse(args.tariffs)
    apply_single_thread()
    result = run_bench(rater, args.rows, seed=args.seed, scalar_rows=args.scalar_rows)
    print("\n".join(result.lines()))
    return 0


def _bench_engines(args: argparse.Namespace) -> int:
    import tempfile

    from service.tools.bench import compare_engines, write_cdr_file

    if _without_spark("bench"):
        return 2
    with tempfile.TemporaryDirectory(prefix="callrate-bench-") as work:
        workdir = Path(work)
        source = args.file or workdir / "cdrs.parquet"
        if args.file is None:
            write_cdr_file(load_rater_or_refuse(args.tariffs), args.rows, source, seed=args.seed)
        runs = compare_engines(source, workdir, tariffs=args.tariffs, master=args.master)
    print(f"{runs[0].rows:,} CDRs in {source}")
    print("\n".join(run.line() for run in runs))
    print(f"spark / local wall time: {runs[1].seconds / runs[0].seconds:,.2f}x")
    return 0


def _rerate(args: argparse.Namespace) -> int:
    from service.cli.errors import check_database_url, database_errors
    from service.db.migrate import upgrade
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
    rater = load_rater_or_refuse(args.tariffs)
    check_plan(rater, settings.default_plan, source="CALLRATE_DEFAULT_PLAN")
    with database_errors():
        upgrade(url=url, migrations_dir=settings.migrations_dir)
        engine = make_engine(url, pool_size=2)
    sessions = make_sessionmaker(engine)
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


class HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help unless it has no default or names one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS)
        if shown and "default" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (`callrate rate: error: ...`, exit 2) and defaults shown.

    Subcommand parsers are made with this class too (argparse uses the parent's type)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_EXIT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Every `callrate` subcommand."""
    parser = Parser(
        prog="callrate",
        description="Rate telephony calls to the fen: quote, rate files, serve the HTTP API.",
        epilog="Settings come from CALLRATE_* environment variables (see README.md).",
    )
    parser.add_argument(
        "--tariffs",
        type=Path,
        default=None,
        metavar="DIR",
        help="tariff directory: *.toml versions and numbering/ tables "
        "(default: CALLRATE_TARIFFS_DIR, else the bundled tariffs/)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    quote = commands.add_parser(
        "quote",
        help="rate quote requests: one JSON argument or NDJSON on stdin",
        description="Rate one quote request (SPEC §3.1 fields, no id) and print the rating as "
        "JSON; exit 1 if it is rejected (the rejection is printed). Without REQUEST, read "
        "NDJSON requests on stdin and answer each line; exit 1 only if a line is not JSON. "
        "A request without a plan uses CALLRATE_DEFAULT_PLAN when set.",
    )
    quote.add_argument(
        "request",
        nargs="?",
        metavar="REQUEST",
        help='one JSON quote request, e.g. \'{"caller": "13800138000", "callee": '
        '"02188001234", "start": "2010-03-01T10:00:00+08:00", "duration_s": 125, '
        '"plan": "gotone"}\'; omit to read NDJSON from stdin',
    )
    quote.set_defaults(handler=_quote)

    numbering = commands.add_parser("numbering", help="numbering-plan tables")
    numbering_commands = numbering.add_subparsers(
        dest="numbering_command", required=True, metavar="COMMAND"
    )
    build = numbering_commands.add_parser(
        "build", help="regenerate TARIFFS/numbering/*.tsv from the installed phonenumbers"
    )
    build.set_defaults(handler=_numbering_build)

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
    rate.set_defaults(handler=_rate)

    bench = commands.add_parser(
        "bench",
        help="time the per-call and batch paths on generated CDRs (one core); "
        "`bench service`: the served service against this machine's limits",
    )
    bench.add_argument(
        "target",
        nargs="?",
        choices=("rating", "service"),
        default="rating",
        help="rating: the per-call and batch paths; service: the served service (PostgreSQL)",
    )
    bench.add_argument(
        "--rows", type=positive_int, default=2_000_000, metavar="N", help="CDRs to generate"
    )
    bench.add_argument("--seed", type=int, default=0, metavar="N", help="generator seed")
    bench.add_argument(
        "--scalar-rows",
        type=positive_int,
        default=100_000,
        metavar="N",
        help="rows timed on the per-call path",
    )
    bench.add_argument(
        "--engine",
        choices=("batch", "spark"),
        default="batch",
        help="spark: time `callrate rate` with the local engine and with Spark on one file",
    )
    bench.add_argument(
        "--file",
        type=Path,
        default=None,
        metavar="PATH",
        help="spark: Parquet CDR file to rate (default: --rows generated CDRs)",
    )
    bench.add_argument("--master", default="local[2]", metavar="URL", help="spark: master URL")
    service = bench.add_argument_group("bench service (PostgreSQL; docs/performance-service.md)")
    service.add_argument(
        "--database-url", metavar="URL", help="PostgreSQL URL (default: CALLRATE_DATABASE_URL)"
    )
    service.add_argument(
        "--workers", type=positive_int, default=2, metavar="N", help="service and floor workers"
    )
    service.add_argument(
        "--batches", type=positive_int, default=200, metavar="N", help="ingest batches"
    )
    service.add_argument(
        "--batch-size", type=positive_int, default=1000, metavar="N", help="CDRs per ingest batch"
    )
    service.add_argument(
        "--concurrency", type=positive_int, default=4, metavar="N", help="ingest batches in flight"
    )
    service.add_argument(
        "--connections",
        type=positive_int,
        default=16,
        metavar="N",
        help="closed-loop quote connections (enough to keep every worker busy)",
    )
    service.add_argument(
        "--seconds", type=float, default=5.0, metavar="S", help="length of each quote measurement"
    )
    service.add_argument(
        "--max-loop-lag-s",
        type=float,
        metavar="S",
        help="the served service's CALLRATE_MAX_LOOP_LAG_S (default: its setting)",
    )
    service.add_argument(
        "--service-path",
        type=Path,
        metavar="DIR",
        help="serve another source tree's service package (before/after figures)",
    )
    bench.set_defaults(handler=_bench)

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
    rerate.set_defaults(handler=_rerate)

    from service.cli.serve import add_service_commands

    add_service_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `callrate` console script."""
    from pydantic import ValidationError

    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()  # read once: every later get_settings() is this one
    except ValidationError as exc:  # a CALLRATE_* variable that does not parse
        problem = exc.errors()[0]
        name = "CALLRATE_" + "_".join(str(part) for part in problem["loc"]).upper()
        print(f"{_prog(args)}: {name}: {problem['msg']}", file=sys.stderr)
        return USAGE_EXIT
    if args.tariffs is None:
        args.tariffs = settings.tariffs_dir
    handler: Command = args.handler
    try:
        return handler(args)
    except UsageError as exc:
        print(f"{_prog(args)}: {exc}", file=sys.stderr)
        return USAGE_EXIT
    except KeyboardInterrupt:
        print(f"{_prog(args)}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped early (`callrate quote < cdrs | head`)
        # Python would report the failed flush of stdout at exit: point stdout elsewhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE


def _prog(args: argparse.Namespace) -> str:
    """`callrate keys revoke`: the command words that were given."""
    words = [value for name, value in vars(args).items() if name.endswith("command") and value]
    return " ".join(["callrate", *words])
