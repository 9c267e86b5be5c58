"""`callrate bench service`: the service's speed next to this machine's own limits, one run.

On a throwaway schema of a PostgreSQL database it measures, in order:
1. ingest and the COPY ceiling, in turns (ROUNDS each; medians), after a warm-up of
   WARM_UP_BATCHES batches not counted (the pools' connections opened):
   - ingest: `callrate loadtest ingest` against `callrate serve --workers N`, CDRs/s;
   - the COPY ceiling: the rows that ingest stored so far (cdrs, ratings) copied again into
     tables like theirs by COPY on 2 connections, committed: CDRs/s the database itself
     takes. Taken in turns with ingest, so that a slower spell of the machine (its first
     minutes after boot, a neighbour) weighs on both sides of their ratio;
2. quote capacity of the service and of the bare audited-ASGI floor (service.tools.bench_floor
   under uvicorn, N workers), both up, closed loops on the same connections and body, in
   turns (ROUNDS each; medians): answers per second, and CPU per answer of the server's
   processes and of its PostgreSQL backends;
3. quotes open-loop at 50 % and 200 % of that capacity: admitted (200) p50/p99, share of
   503, requests that got no answer, the most PostgreSQL backends of the service seen;
4. the stored rows as ingest writes them (CSV, committed batches, as many connections as
   the ingest client, ratings ids from the sequence): CDRs/s the database takes of
   ingest's own writes with no service in front;
5. ingest again, into a new SQLite file (synchronous=FULL: every 2xx durable), CDRs/s.
The quote load comes from service.tools.loadgen, a process of its own. Client and servers share
the machine's cores; ratios within one run are what compare, and CPU per answer moves
least with what else the machine runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import uvloop
from sqlalchemy.engine import make_url

from service.config import PROJECT_ROOT
from service.db import audit_batcher
from service.db.migrate import throwaway_schema
from service.db.repository import CDR_COLUMNS, RATING_COLUMNS
from service.tools import loadgen, loadtest

MIGRATIONS = PROJECT_ROOT / "migrations"

KEYS = {"switch": "bench-switch-key", "agent": "bench-agent-key", "ops": "bench-ops-key"}
START_TIMEOUT_S = 60.0
KERNELS_METRIC = b"callrate_batch_kernels_ready"
KERNELS_WAIT_S = 20.0  # a tree without that metric: its kernels warm within this (cold: ~16 s)
WARM_UP_BATCHES = 20  # ingested, not counted, before each ingest measured
ROUNDS = 3  # ingest runs and COPY ceilings, closed loops of service and floor: in turns; medians
COPY_TABLES = ("cdrs", "ratings")
QUOTE_BODY = orjson.dumps(loadtest.record(0, prefix=None))


def _named(url: str, application_name: str) -> str:
    return (
        make_url(url)
        .update_query_dict({"application_name": application_name})
        .render_as_string(hide_password=False)
    )


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL as psycopg takes it (no +driver)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Served(NamedTuple):
    """A running server: its base URL, its process (uvicorn's workers are its children)
    and the application_name of its PostgreSQL connections."""

    base: str
    pid: int
    application_name: str


@contextlib.contextmanager
def server(
    command: list[str],
    env: dict[str, str],
    port: int,
    log: Path,
    *,
    application_name: str,
    cwd: Path | None = None,
) -> Iterator[Served]:
    """A server process on a loopback port, once /healthz answers."""
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and modules)
            command, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT, cwd=cwd
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[2]} exited during start; see {log}")
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1.0) as answer:  # noqa: S310
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[2]} did not start; see {log}")
            time.sleep(0.1)
        yield Served(base, process.pid, application_name)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def copy_ceiling(url: str) -> dict[str, Any]:
    """The rows of COPY_TABLES stored so far copied into new tables like theirs (indexes
    included) on 2 connections, each committing its half: stored CDRs per second. Measured
    at rest: the tables vacuumed (else autovacuum of the rows ingest just wrote may run
    meanwhile) and a checkpoint taken (else one may start meanwhile)."""
    dsn = libpq_url(url)
    halves: list[dict[str, list[bytes]]] = [{}, {}]
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f"VACUUM (ANALYZE) {', '.join(COPY_TABLES)}")
        cdrs = connection.execute("SELECT count(*) FROM cdrs").fetchone()
        for table in COPY_TABLES:
            lines: list[bytes] = []
            with connection.cursor().copy(f"COPY {table} TO STDOUT") as copy:
                for data in copy:
                    lines.append(bytes(data))
            rows = b"".join(lines).splitlines(keepends=True)
            middle = len(rows) // 2
            halves[0][table], halves[1][table] = rows[:middle], rows[middle:]
            connection.execute(f"CREATE TABLE ceiling_{table} (LIKE {table} INCLUDING ALL)")
        connection.execute("CHECKPOINT")  # the bench connects as a superuser, or pg_checkpoint
    stored = int(cdrs[0]) if cdrs else 0

    def load(half: int) -> None:
        with psycopg.connect(dsn) as connection:  # one transaction, committed at exit
            for table, rows in halves[half].items():
                with connection.cursor().copy(f"COPY ceiling_{table} FROM STDIN") as copy:
                    for start in range(0, len(rows), 10_000):
                        copy.write(b"".join(rows[start : start + 10_000]))

    copied = _copied(stored, _timed(load, len(halves)))
    with psycopg.connect(dsn, autocommit=True) as connection:  # not kept while ingest runs
        connection.execute(f"DROP TABLE {', '.join(f'ceiling_{table}' for table in COPY_TABLES)}")
    return copied


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median CDRs/s (an odd number of runs), with every run's CDRs/s."""
    median = sorted(runs, key=lambda run: run["cdrs_per_s"])[len(runs) // 2]
    return {**median, "rounds_cdrs_per_s": [run["cdrs_per_s"] for run in runs]}


def _timed(work: Callable[[int], None], threads: int) -> float:
    """Seconds `work(0)` ... `work(threads - 1)` take, run at once in threads; the first
    error of one raised."""
    errors: list[BaseException] = []

    def run(number: int) -> None:
        try:
            work(number)
        except BaseException as exc:
            errors.append(exc)

    started = time.perf_counter()
    running = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def _copied(cdrs: int, seconds: float) -> dict[str, Any]:
    return {"cdrs": cdrs, "seconds": round(seconds, 3), "cdrs_per_s": round(cdrs / seconds)}


def batch_copy_limit(url: str, *, batch_size: int, concurrency: int) -> dict[str, Any]:
    """The service's own writes without the service: the stored rows, as the CSV the service
    sends, replayed into tables like theirs in committed batches of `batch_size` CDRs (COPY
    cdrs, COPY ratings, COMMIT; ratings ids from the sequence) on `concurrency` connections.
    CDRs/s: what this database takes of ingest's writes with nothing else to do."""
    dsn = libpq_url(url)
    columns = {  # as columns.store sends them (a rating's id comes from its sequence)
        "cdrs": ", ".join(CDR_COLUMNS),
        "ratings": ", ".join(RATING_COLUMNS),
    }
    order = {"cdrs": "id", "ratings": "cdr_id"}
    payloads: dict[str, list[bytes]] = {}  # per table, one CSV payload per batch
    count = 0
    with psycopg.connect(dsn, autocommit=True) as connection:
        for table, names in columns.items():
            connection.execute(f"CREATE TABLE batch_{table} (LIKE {table} INCLUDING ALL)")
            query = f"SELECT {names} FROM {table} ORDER BY {order[table]}"  # noqa: S608
            cursor = connection.execute(query)
            rows = cursor.fetchall()
            payloads[table] = []
            for start in range(0, len(rows), batch_size):  # the same CSV as the service writes
                data = pa.table(
                    list(zip(*rows[start : start + batch_size], strict=True)),
                    names=names.split(", "),
                )
                buffer = io.BytesIO()
                pacsv.write_csv(data, buffer, pacsv.WriteOptions(include_header=False))
                payloads[table].append(buffer.getvalue())
            if table == "cdrs":
                count = len(rows)
        connection.execute(f"VACUUM (ANALYZE) {', '.join(COPY_TABLES)}")
        connection.execute("CHECKPOINT")
    if len(payloads["cdrs"]) != len(payloads["ratings"]):
        raise RuntimeError("batch_copy_limit: one rating per stored CDR expected")

    def load(worker: int) -> None:
        with psycopg.connect(dsn) as connection:
            for batch in range(worker, len(payloads["cdrs"]), concurrency):
                for table, names in columns.items():
                    statement = f"COPY batch_{table} ({names}) FROM STDIN (FORMAT csv)"
                    with connection.cursor().copy(statement) as copy:
                        copy.write(payloads[table][batch])
                connection.commit()

    return _copied(count, _timed(load, concurrency))


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _backend_pids(dsn: str, application_name: str) -> list[int]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application_name,)
        ).fetchall()
    return [int(row[0]) for row in rows]


def closed_round(
    served: Served, request: bytes, *, dsn: str, connections: int, seconds: float
) -> dict[str, float]:
    """One closed loop (service.tools.loadgen): answers 200 per second, and the CPU the server's
    processes and its PostgreSQL backends spent per answer, in µs (from /proc: this machine's
    database only). CPU per answer does not move with what else the machine runs, as
    answers per second do."""
    workers = loadtest.process_tree(served.pid)
    backends = _backend_pids(dsn, served.application_name)
    spent = {pid: _cpu_s(pid) for pid in (*workers, *backends)}
    closed = loadgen.run(
        served.base, [request], mode="closed", connections=connections, seconds=seconds
    )
    backends = sorted({*backends, *_backend_pids(dsn, served.application_name)})
    answered = max(1, int(closed["answered"]))

    def per_answer(pids: list[int]) -> float:
        return round(sum(_cpu_s(pid) - spent.get(pid, 0.0) for pid in pids) / answered * 1e6, 1)

    return {
        "per_s": closed["per_s"],
        "workers_cpu_us": per_answer(loadtest.process_tree(served.pid)),
        "postgres_cpu_us": per_answer(backends),
    }


class BackendSampler:
    """The most PostgreSQL backends with one application_name, sampled every 50 ms."""

    def __init__(self, url: str, application_name: str) -> None:
        self.dsn = libpq_url(url)
        self.application_name = application_name
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BackendSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as connection:
            while True:  # a first sample at once, a last one after stop
                row = connection.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    (self.application_name,),
                ).fetchone()
                self.most = max(self.most, int(row[0]) if row else 0)
                if self._stop.wait(0.05):
                    break


def sqlite_ingest(
    scratch: Path,
    *,
    workers: int,
    batches: int,
    batch_size: int,
    concurrency: int,
    service_path: Path | None,
) -> dict[str, Any]:
    """`loadtest ingest` against `callrate serve` on a new SQLite file with
    synchronous=FULL, the default: every 2xx batch is on disk before its answer."""
    directory = scratch / "sqlite"
    directory.mkdir()
    env = {
        "CALLRATE_DATABASE_URL": f"sqlite:///{directory / 'callrate.sqlite3'}",
        "CALLRATE_API_KEYS": ",".join(f"{role}={key}" for role, key in KEYS.items()),
        "CALLRATE_DATA_DIR": str(directory),
        "CALLRATE_SQLITE_SYNCHRONOUS": "FULL",
    }
    if service_path is not None:
        env["PYTHONPATH"] = str(service_path)
    port = loadtest.free_port()
    command = [sys.executable, "-m", "service.cli", "serve", "--workers", str(workers)]
    command += ["--port", str(port)]
    log = directory / "serve.log"
    with server(command, env, port, log, application_name="", cwd=service_path) as served:
        warm_up = ingest_warm_up(served.base, batch_size=batch_size, concurrency=concurrency)
        figures = ingest(
            served.base, batches=batches, batch_size=batch_size, concurrency=concurrency
        )
        return {**figures, "warm_up": warm_up}


def kernels_warm(base: str) -> None:
    """Wait until every worker's batch kernels are warm (until then ingestion rates record
    by record): `callrate_batch_kernels_ready 1.0` in /metrics, or KERNELS_WAIT_S for a
    tree (--service-path) that has no such metric."""
    deadline = time.monotonic() + START_TIMEOUT_S
    request = urllib.request.Request(  # noqa: S310 (loopback)
        f"{base}/metrics", headers={"Authorization": f"Bearer {KEYS['ops']}"}
    )
    while time.monotonic() < deadline:
        with urllib.request.urlopen(request, timeout=5.0) as answer:  # noqa: S310
            lines = answer.read().splitlines()
        if not any(line.startswith(KERNELS_METRIC) for line in lines):
            time.sleep(KERNELS_WAIT_S)
            return
        if KERNELS_METRIC + b" 1.0" in lines:
            return
        time.sleep(0.2)
    raise RuntimeError("the service's batch kernels did not warm")


def ingest_warm_up(base: str, *, batch_size: int, concurrency: int) -> dict[str, Any]:
    """Once the kernels are warm, WARM_UP_BATCHES batches not counted: the pools' connections
    opened (a PostgreSQL backend each), the registry cache filled. CDRs/s of the warm-up."""
    kernels_warm(base)
    figures = ingest(base, batches=WARM_UP_BATCHES, batch_size=batch_size, concurrency=concurrency)
    return {"batches": WARM_UP_BATCHES, "cdrs_per_s": figures["cdrs_per_s"]}


def ingest(base: str, *, batches: int, batch_size: int, concurrency: int) -> dict[str, Any]:
    """`loadtest ingest` with the bench's switch key."""
    return uvloop.run(
        loadtest.ingest(
            url=base,
            key=KEYS["switch"],
            batches=batches,
            batch_size=batch_size,
            concurrency=concurrency,
        )
    )


def ingest_and_ceiling(
    served: Served, url: str, *, batches: int, batch_size: int, concurrency: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """ROUNDS ingest runs, each followed by a COPY ceiling of the rows stored so far: the
    median ingest run, with the CPU per CDR that the server's processes and its PostgreSQL
    backends spent in all of them, and the median ceiling (with the CDRs each copied)."""
    dsn = libpq_url(url)
    server_pids = loadtest.process_tree(served.pid)
    spent = {"workers": 0.0, "postgres": 0.0}
    runs: list[dict[str, Any]] = []
    copies: list[dict[str, Any]] = []
    for _ in range(ROUNDS):
        backend_pids = _backend_pids(dsn, served.application_name)
        before = {pid: _cpu_s(pid) for pid in (*server_pids, *backend_pids)}
        runs.append(
            ingest(served.base, batches=batches, batch_size=batch_size, concurrency=concurrency)
        )
        backend_pids = sorted({*backend_pids, *_backend_pids(dsn, served.application_name)})
        for name, pids in (("workers", server_pids), ("postgres", backend_pids)):
            spent[name] += sum(_cpu_s(pid) - before.get(pid, 0.0) for pid in pids)
        copies.append(copy_ceiling(url))
    ingested = _median_run(runs)
    rated = max(1, sum(run["rated"] for run in runs))
    ingested["cpu_us_per_cdr"] = {name: round(s / rated * 1e6, 1) for name, s in spent.items()}
    ceiling = {**_median_run(copies), "rounds_stored": [copy["cdrs"] for copy in copies]}
    return ingested, ceiling


def run_service_bench(
    database_url: str,
    *,
    workers: int = 2,
    batches: int = 200,
    batch_size: int = 1000,
    concurrency: int = 4,
    connections: int = 16,
    seconds: float = 5.0,
    pool_size: int = 8,
    service_path: Path | None = None,
    max_loop_lag_s: float | None = None,
) -> dict[str, Any]:
    """The whole measurement (see the module's docstring); PostgreSQL only."""
    if make_url(database_url).get_backend_name() != "postgresql":
        raise ValueError("callrate bench service measures a PostgreSQL database")
    run_id = uuid.uuid4().hex[:8]
    service_name, floor_name = f"callrate-bench-{run_id}", f"callrate-floor-{run_id}"
    quote = loadtest.HttpClient("http://127.0.0.1", max_connections=1).render(
        "POST",
        "/v1/quote",
        QUOTE_BODY,
        {"Authorization": f"Bearer {KEYS['agent']}", "Content-Type": "application/json"},
    )
    result: dict[str, Any] = {"database": "postgresql", "workers": workers}
    with (
        throwaway_schema(
            database_url,
            prefix="bench",
            # the schema of the tree served: "before" stores the rows of its own version
            migrations_dir=service_path / "migrations" if service_path else MIGRATIONS,
        ) as url,
        tempfile.TemporaryDirectory() as scratch,
    ):
        logs = Path(scratch)
        env = {
            "CALLRATE_DATABASE_URL": _named(url, service_name),
            "CALLRATE_API_KEYS": ",".join(f"{role}={key}" for role, key in KEYS.items()),
            "CALLRATE_DATA_DIR": scratch,
            "CALLRATE_DB_POOL_SIZE": str(pool_size),
        }
        if max_loop_lag_s is not None:
            env["CALLRATE_MAX_LOOP_LAG_S"] = str(max_loop_lag_s)
            result["max_loop_lag_s"] = max_loop_lag_s
        if service_path is not None:  # another source tree's service (before and after)
            env["PYTHONPATH"] = str(service_path)  # `python -m` looks in its cwd first
        serve = [sys.executable, "-m", "service.cli", "serve", "--workers", str(workers)]
        port = loadtest.free_port()
        command = [*serve, "--port", str(port)]
        floor = [sys.executable, "-m", "uvicorn", "service.tools.bench_floor:app"]
        floor += ["--workers", str(workers), "--no-access-log"]
        floor += ["--loop", "uvloop", "--http", "httptools", "--log-level", "warning"]
        floor_env = {"CALLRATE_BENCH_FLOOR_DSN": libpq_url(_named(url, floor_name))}
        floor_request = quote.replace(b"/v1/quote", b"/quote", 1)
        dsn = libpq_url(url)
        with contextlib.ExitStack() as servers:
            service = servers.enter_context(
                server(
                    command,
                    env,
                    port,
                    logs / "serve.log",
                    application_name=service_name,
                    cwd=service_path,
                )
            )
            warm_up = ingest_warm_up(service.base, batch_size=batch_size, concurrency=concurrency)
            ingested, ceiling = ingest_and_ceiling(
                service, url, batches=batches, batch_size=batch_size, concurrency=concurrency
            )
            ingested["warm_up"] = warm_up
            floor_port = loadtest.free_port()  # once the service holds its own
            floor += ["--port", str(floor_port)]
            floor_log = logs / "floor.log"
            bare = servers.enter_context(
                server(floor, floor_env, floor_port, floor_log, application_name=floor_name)
            )
            # service and floor in turns, both up: what else runs on the machine weighs on both
            rounds: dict[str, list[dict[str, float]]] = {"service": [], "floor": []}
            for _ in range(ROUNDS):
                for name, served, request in (
                    ("service", service, quote),
                    ("floor", bare, floor_request),
                ):
                    rounds[name].append(
                        closed_round(
                            served, request, dsn=dsn, connections=connections, seconds=seconds
                        )
                    )
            median = {
                name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
                for name, runs in rounds.items()
            }
            capacity, floor_per_s = median["service"]["per_s"], median["floor"]["per_s"]
            result["open_loop"] = {}
            for share in (0.5, 2.0):
                with BackendSampler(url, service_name) as backends:
                    figures = loadgen.run(
                        service.base, [quote], mode="open", rate=capacity * share, seconds=seconds
                    )
                figures["postgres_backends_seen"] = backends.most
                result["open_loop"][f"{round(share * 100)}%"] = figures
        try:
            writes = batch_copy_limit(url, batch_size=batch_size, concurrency=concurrency)
        except psycopg.errors.UndefinedColumn:  # a --service-path before migration 0004
            writes = {"cdrs_per_s": None}
        on_sqlite = sqlite_ingest(
            logs,
            workers=workers,
            batches=batches,
            batch_size=batch_size,
            concurrency=concurrency,
            service_path=service_path,
        )
    service_cpu = median["service"]["workers_cpu_us"] + median["service"]["postgres_cpu_us"]
    floor_cpu = median["floor"]["workers_cpu_us"] + median["floor"]["postgres_cpu_us"]
    result.update(
        {
            "copy_ceiling_cdrs_per_s": ceiling["cdrs_per_s"],
            "copy_ceiling_rounds_cdrs_per_s": ceiling["rounds_cdrs_per_s"],
            "copy_ceiling_rounds_stored": ceiling["rounds_stored"],  # CDRs copied, each round
            "ingest_cdrs_per_s": ingested["cdrs_per_s"],
            "ingest_to_ceiling": round(ingested["cdrs_per_s"] / ceiling["cdrs_per_s"], 2),
            "batch_copy_cdrs_per_s": writes["cdrs_per_s"],
            "ingest_to_batch_copy": round(ingested["cdrs_per_s"] / writes["cdrs_per_s"], 2)
            if writes["cdrs_per_s"]
            else None,
            "sqlite_ingest_cdrs_per_s": on_sqlite["cdrs_per_s"],
            "floor_quotes_per_s": round(floor_per_s),
            "quote_capacity_per_s": round(capacity),
            "quote_to_floor": round(capacity / floor_per_s, 2) if floor_per_s else None,
            # CPU per answer (server processes + their PostgreSQL backends), median of rounds
            "quote_cpu_us": {k: round(v, 1) for k, v in median["service"].items() if k != "per_s"},
            "floor_cpu_us": {k: round(v, 1) for k, v in median["floor"].items() if k != "per_s"},
            "quote_to_floor_cpu": round(floor_cpu / service_cpu, 2) if service_cpu else None,
            "closed_loop_rounds": {
                name: [round(r["per_s"]) for r in runs] for name, runs in rounds.items()
            },
            # per worker: request and quote pools, /readyz, registry listener, audit writers
            "postgres_backends_bound": workers * (2 * pool_size + 2 + audit_batcher.WRITERS),
            "ingest": ingested,
        }
    )
    result["open_loop"] = result.pop("open_loop")  # last: the longest part
    return result


def run(args: argparse.Namespace, database_url: str | None) -> int:
    """`callrate bench service`: print the figures as JSON."""
    url = args.database_url or database_url
    if not url or make_url(url).get_backend_name() != "postgresql":
        print("callrate bench service: give a PostgreSQL --database-url", file=sys.stderr)
        return 2
    result = run_service_bench(
        url,
        workers=args.workers,
        batches=args.batches,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        connections=args.connections,
        seconds=args.seconds,
        service_path=args.service_path,
        max_loop_lag_s=args.max_loop_lag_s,
    )
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0
