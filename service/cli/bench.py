"""`callrate bench`: time the per-call and batch paths, Spark against the local engine, or
the served service against this machine's limits (`bench service`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from service.cli.errors import load_rater_or_refuse, positive_int, spark_missing
from service.config import get_settings


def run(args: argparse.Namespace) -> int:
    """`callrate bench`: the figures of the target and engine asked for."""
    from service.tools.bench import apply_single_thread, run_bench

    if args.target == "service":
        from service.tools import bench_service

        return bench_service.run(args, get_settings().database_url)

    if args.target == "mediation":
        from service.tools.bench_mediation import run_mediation_bench

        apply_single_thread()
        lines = run_mediation_bench(
            load_rater_or_refuse(args.tariffs), args.records, seed=args.seed
        )
        print("\n".join(lines), flush=True)
        url = args.database_url or get_settings().database_url
        if url and url.startswith("postgresql"):
            from service.tools.bench_mediation import run_freeswitch_http

            lines = run_freeswitch_http(url, workers=args.workers, seconds=args.seconds)
            print("\n".join(lines))
        else:
            print("freeswitch over HTTP: skipped (give --database-url postgresql+psycopg://…)")
        return 0
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

    if spark_missing("bench"):
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


def add_parser(commands: Any) -> None:
    """Add `bench` to the `callrate` subcommands."""
    bench = commands.add_parser(
        "bench",
        help="time the per-call and batch paths on generated CDRs (one core); "
        "`bench service`: the served service against this machine's limits",
    )
    bench.add_argument(
        "target",
        nargs="?",
        choices=("rating", "service", "mediation"),
        default="rating",
        help="rating: the per-call and batch paths; service: the served service (PostgreSQL); "
        "mediation: the switch formats (docs/mediation.md)",
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
    bench.add_argument(
        "--records",
        type=positive_int,
        default=100_000,
        metavar="N",
        help="mediation: 3GPP records in the file ingested",
    )
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
    bench.set_defaults(handler=run)
