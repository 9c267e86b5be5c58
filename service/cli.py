"""The `callrate` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from service.config import get_settings
from service.rating import NUMBERING_DIR, load_rater
from service.rating.rejections import Rejected
from service.rating.scalar import Rater

Command = Callable[[argparse.Namespace], int]


def quote_lines(rater: Rater, lines: Iterable[str | bytes], out: TextIO) -> int:
    """Rate each JSON quote request line; print one result (or rejection) per line."""
    count = 0
    for line in lines:
        if not line.strip():
            continue
        result: dict[str, Any]
        try:
            result = rater.rate_raw(orjson.loads(line)).to_dict()
        except orjson.JSONDecodeError:
            result = {
                "rejected": True,
                "field": "record",
                "code": "record.invalid",
                "reason": "line is not valid JSON",
            }
        except Rejected as rejection:
            result = rejection.to_dict()
        out.write(orjson.dumps(result).decode() + "\n")
        count += 1
    return count


def _quote(args: argparse.Namespace) -> int:
    rater = load_rater(args.tariffs)
    source: Iterable[str | bytes] = [args.request] if args.request else sys.stdin.buffer
    quote_lines(rater, source, sys.stdout)
    return 0


def _numbering_build(args: argparse.Namespace) -> int:
    from service.numbering_build import build

    report = build(args.tariffs / NUMBERING_DIR)
    print("\n".join(report.lines()))
    return 0


def _rate(args: argparse.Namespace) -> int:
    from service.batchio import progress_bar, rate_file

    summary = rate_file(
        args.input,
        args.output,
        load_rater(args.tariffs),
        rejected=args.rejected,
        batch_rows=args.batch_rows,
        default_plan=args.default_plan,
        require_id=args.require_id,
        progress=progress_bar(sys.stderr) if sys.stderr.isatty() else None,
    )
    print(summary.line())
    return 0


def _bench(args: argparse.Namespace) -> int:
    from service.bench import apply_single_thread, run_bench

    if args.target == "service":
        from service.bench_service import run

        return run(args, get_settings().database_url)

    apply_single_thread()
    result = run_bench(
        load_rater(args.tariffs), args.rows, seed=args.seed, scalar_rows=args.scalar_rows
    )
    print("\n".join(result.lines()))
    return 0


def _rerate(args: argparse.Namespace) -> int:
    from service.db.migrate import upgrade
    from service.db.session import make_engine, make_sessionmaker
    from service.rerate import job_out, run_job, start_job
    from service.security import Actor

    settings = get_settings()
    url = args.url or settings.effective_database_url
    upgrade(url=url, migrations_dir=settings.migrations_dir)
    rater = load_rater(args.tariffs)
    engine = make_engine(url, pool_size=2)
    sessions = make_sessionmaker(engine)
    try:
        with sessions.begin() as session:
            job = start_job(
                session,
                window_from=args.window_from,
                window_to=args.window_to,
                dry_run=args.dry_run,
                actor=Actor(key_id="cli", role="admin"),
            )
        job = run_job(sessions, job_id=job.id, rater=rater, default_plan=settings.default_plan)
        print(job_out(job).model_dump_json(by_alias=True))
    finally:
        engine.dispose()
    return 0 if job.status == "done" else 1


def _instant(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 timestamp: {text!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    """Every `callrate` subcommand."""
    parser = argparse.ArgumentParser(prog="callrate", description=__doc__)
    parser.add_argument(
        "--tariffs", type=Path, default=None, help="tariff directory (default: bundled)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    quote = commands.add_parser(
        "quote", help="rate quote requests: one JSON argument or NDJSON on stdin"
    )
    quote.add_argument(
        "request", nargs="?", help="one JSON quote request; omit to read NDJSON from stdin"
    )
    quote.set_defaults(handler=_quote)

    numbering = commands.add_parser("numbering", help="numbering-plan tables")
    numbering_commands = numbering.add_subparsers(dest="numbering_command", required=True)
    build = numbering_commands.add_parser(
        "build", help="regenerate tariffs/numbering from phonenumbers"
    )
    build.set_defaults(handler=_numbering_build)

    rate = commands.add_parser(
        "rate", help="rate a Parquet, CSV or NDJSON file of CDRs with the batch path"
    )
    rate.add_argument("input", type=Path, help="CDR file: .parquet, .csv or .ndjson")
    rate.add_argument("-o", "--output", type=Path, required=True, help="rated rows (same formats)")
    rate.add_argument(
        "--rejected", type=Path, default=None, help="rejected rows (default: OUT.rejected.EXT)"
    )
    rate.add_argument("--batch-rows", type=int, default=131_072, help="rows per record batch")
    rate.add_argument("--default-plan", default=None, help="plan for rows without one")
    rate.add_argument("--require-id", action="store_true", help="reject rows without an id")
    rate.set_defaults(handler=_rate)

    bench = commands.add_parser(
        "bench",
        help="time the per-call and batch paths on generated CDRs (one core); "
        "`bench service`: the served service against this machine's limits",
    )
    bench.add_argument("target", nargs="?", choices=("rating", "service"), default="rating")
    bench.add_argument("--rows", type=int, default=2_000_000, help="CDRs to generate")
    bench.add_argument("--seed", type=int, default=0, help="generator seed")
    bench.add_argument(
        "--scalar-rows", type=int, default=100_000, help="rows timed on the per-call path"
    )
    service = bench.add_argument_group("bench service (PostgreSQL; docs/performance-service.md)")
    service.add_argument("--database-url", help="default CALLRATE_DATABASE_URL")
    service.add_argument("--workers", type=int, default=2, help="service and floor workers")
    service.add_argument("--batches", type=int, default=200, help="ingest batches")
    service.add_argument("--batch-size", type=int, default=1000, help="CDRs per ingest batch")
    service.add_argument("--concurrency", type=int, default=4, help="ingest batches in flight")
    service.add_argument("--connections", type=int, default=4, help="closed-loop connections")
    service.add_argument("--seconds", type=float, default=5.0, help="each quote measurement")
    service.add_argument(
        "--max-loop-lag-s", type=float, help="the service's CALLRATE_MAX_LOOP_LAG_S"
    )
    service.add_argument("--service-path", type=Path, help="serve another source tree's service")
    bench.set_defaults(handler=_bench)

    rerate = commands.add_parser(
        "rerate", help="re-rate stored CDRs that started in [--from, --to) (SPEC §6.3)"
    )
    rerate.add_argument("--from", dest="window_from", type=_instant, required=True)
    rerate.add_argument("--to", dest="window_to", type=_instant, required=True)
    rerate.add_argument("--dry-run", action="store_true", help="count and sum, write nothing")
    rerate.add_argument("--url", help="database URL (default: CALLRATE_DATABASE_URL or SQLite)")
    rerate.set_defaults(handler=_rerate)

    from service.serve import add_service_commands

    add_service_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `callrate` console script."""
    args = build_parser().parse_args(argv)
    if args.tariffs is None:
        args.tariffs = get_settings().tariffs_dir
    handler: Command = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
