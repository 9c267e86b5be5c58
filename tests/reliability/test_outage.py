"""SPEC §6.2 outage: a database that is unreachable, frozen or locked is answered 503
database_unavailable with Retry-After within a bounded time; /readyz 503 within 2 s.

In-process cases here (SQLite locked, nothing listening, a listener that never answers);
a real `callrate serve` on a throwaway PostgreSQL stopped, restarted and frozen under load
further down.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import create_engine, func, pool, select
from sqlalchemy.engine import make_url

from service.config import Settings
from service.db.models import Cdr, RatingRow
from service.rating.scalar import Rater
from tests.api.test_cdrs import cdr
from tests.api.test_served import _free_port
from tests.conftest_db import KEYS, KEYS_SPEC, TARIFFS, fresh_database, running_api

READY_BOUND_S = 2.0


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "database_unavailable"
    assert set(response.json()) == {"error", "message"}
    assert int(response.headers["retry-after"]) > 0


def _settings(url: str, tmp_path: Path, **overrides: object) -> Settings:
    return Settings(
        database_url=url, data_dir=tmp_path, tariffs_dir=TARIFFS, api_keys=KEYS_SPEC, **overrides
    )


def _timed(call: object) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()  # type: ignore[operator]
    return response, time.monotonic() - started


def test_sqlite_locked_past_the_busy_timeout_is_503_not_a_hang(
    tmp_path: Path, rater: Rater
) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        settings = _settings(url, tmp_path, db_statement_timeout_s=0.5)
        holder = sqlite3.connect(make_url(url).database, isolation_level=None)
        with running_api(settings, rater) as api:
            holder.execute("BEGIN EXCLUSIVE")  # another writer holds the lock
            try:
                for call in (
                    lambda: api.post("/v1/cdrs", role="switch", json=[cdr("locked")]),
                    lambda: api.put(
                        "/v1/subscribers/13800138000", role="admin", json={"plan": "gotone"}
                    ),
                ):
                    response, elapsed = _timed(call)
                    assert_unavailable(response)
                    assert elapsed < 3.0
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            stored = api.post("/v1/cdrs", role="switch", json=[cdr("locked")])
            assert stored.json()["counts"]["rated"] == 1  # the retry after the lock is stored


@contextmanager
def black_hole() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a frozen server's kernel)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        listener.close()


@pytest.mark.parametrize("server", ["refused", "silent"])
def test_postgresql_unreachable_or_silent_is_503_and_readyz_within_2_s(
    tmp_path: Path, rater: Rater, server: str
) -> None:
    with black_hole() as silent_port:
        port = _free_port() if server == "refused" else silent_port
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/test"
        with running_api(_settings(url, tmp_path), rater) as api:
            ready, elapsed = _timed(lambda: api.get("/readyz"))
            assert_unavailable(ready)
            assert elapsed < READY_BOUND_S
            for call in (
                lambda: api.post("/v1/cdrs", role="switch", json=[cdr("x")]),
                lambda: api.post("/v1/quote", role="agent", json=cdr("q")),
                lambda: api.get("/v1/cdrs/x", role="agent"),
            ):
                response, elapsed = _timed(call)
                assert_unavailable(response)
                assert elapsed < 4.0  # connect_timeout is 2 s


# --- a throwaway PostgreSQL and a real `callrate serve` -----------------------------------

PG_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
CALLRATE = Path(sys.executable).parent / "callrate"
START_TIMEOUT_S = 60.0
INITDB_OPTIONS = ("-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL cluster of its own (initdb in a temp dir, own port), to stop and freeze."""

    bin: Path
    data: Path
    base: Path
    port: int
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("-l", str(self.base / "log"), "-w", "-o", options, "start")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "stop")

    def pids(self) -> list[int]:
        """The postmaster and every process it forked."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
        return [postmaster, *children]

    def signal_all(self, number: signal.Signals) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, number)


@contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """initdb in a temp dir as the postgres user (initdb refuses root), on a free port."""
    if not PG_BINS:
        pytest.fail("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    base = Path(tempfile.mkdtemp(prefix="callrate-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, user="postgres", group="postgres")
    server = ThrowawayPostgres(PG_BINS[-1], base / "data", base, _free_port(), as_user)
    try:
        subprocess.run(
            [*as_user, str(server.bin / "initdb"), "-D", str(server.data), *INITDB_OPTIONS],
            check=True,
            capture_output=True,
            timeout=120,
        )
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.signal_all(signal.SIGCONT)
        with contextlib.suppress(Exception):
            server._pg_ctl("-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Served:
    """A `callrate serve` process; its stdout and stderr go to `output`."""

    process: subprocess.Popen[bytes]
    base_url: str
    output: Path


@contextmanager
def callrate_serve(
    database_url: str, data_dir: Path, *, workers: int = 1, **env: str
) -> Iterator[Served]:
    """`callrate serve` on a free port, in its own process group (workers die with it)."""
    port = _free_port()
    output = data_dir / f"serve-{port}.log"
    environment = {
        **os.environ,
        "CALLRATE_DATABASE_URL": database_url,
        "CALLRATE_DATA_DIR": str(data_dir),
        "CALLRATE_API_KEYS": KEYS_SPEC,
        **env,
    }
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [str(CALLRATE), "serve", "--port", str(port), "--workers", str(workers)],
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, output.read_text()[-3000:]
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/readyz", timeout=2.0).status_code == 200:
                    break
            assert time.monotonic() < deadline, "callrate serve did not become ready"
            time.sleep(0.2)
        yield Served(process, base, output)
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


SWITCH = {"Authorization": f"Bearer {KEYS['switch']}", "Content-Type": "application/x-ndjson"}
CLIENTS = 4
BATCH = 200
REQUEST_TIMEOUT_S = 20.0  # a request that takes this long counts as a hang
UNAVAILABLE_BOUND_S = 10.0  # pool 2 s + a frozen statement 5.5 s + connect 2 s, plus slack


@dataclass
class Attempt:
    status: int  # 0: the connection failed or timed out
    seconds: float


@dataclass
class Load:
    """Switch clients: each posts new batches and retries one until it is answered 200."""

    base_url: str
    attempts: list[Attempt]
    acknowledged: dict[str, int]  # batch id -> records rated or duplicate in its final answer
    stop: threading.Event
    threads: list[threading.Thread]

    def run(self, client_number: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=REQUEST_TIMEOUT_S) as client:
            batch_number = 0
            while not self.stop.is_set():
                batch_id = f"c{client_number}b{batch_number}"
                body = b"\n".join(
                    orjson.dumps(cdr(f"{batch_id}r{i}", duration_s=1 + i)) for i in range(BATCH)
                )
                while True:  # the switch's retry loop
                    started = time.monotonic()
                    try:
                        response = client.post("/v1/cdrs", content=body, headers=SWITCH)
                        status = response.status_code
                    except httpx.TransportError:
                        status = 0
                    self.attempts.append(Attempt(status, time.monotonic() - started))
                    if status == 200:
                        counts = response.json()["counts"]
                        self.acknowledged[batch_id] = counts["rated"] + counts["duplicate"]
                        break
                    retry_after = float(response.headers.get("retry-after", 1)) if status else 1
                    time.sleep(min(retry_after, 0.3))  # shortened for the test
                batch_number += 1

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)
            assert not thread.is_alive(), "a client never got its batch acknowledged"


@contextmanager
def switch_load(base_url: str) -> Iterator[Load]:
    load = Load(base_url, [], {}, threading.Event(), [])
    load.threads = [threading.Thread(target=load.run, args=(n,)) for n in range(CLIENTS)]
    for thread in load.threads:
        thread.start()
    try:
        yield load
    finally:
        load.finish()


def probe_ready(base_url: str) -> tuple[int, float]:
    started = time.monotonic()
    try:
        status = httpx.get(f"{base_url}/readyz", timeout=REQUEST_TIMEOUT_S).status_code
    except httpx.TransportError:
        status = 0
    return status, time.monotonic() - started


def wait_ready(base_url: str, within_s: float = 30.0) -> float:
    started = time.monotonic()
    while probe_ready(base_url)[0] != 200:
        assert time.monotonic() - started < within_s, "no recovery"
        time.sleep(0.2)
    return time.monotonic() - started


def stored_counts(url: str) -> tuple[int, int, int]:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        cdrs = connection.scalar(select(func.count()).select_from(Cdr))
        ratings = connection.scalar(select(func.count()).select_from(RatingRow))
        distinct = connection.scalar(select(func.count(func.distinct(RatingRow.cdr_id))))
    engine.dispose()
    return int(cdrs or 0), int(ratings or 0), int(distinct or 0)


@pytest.mark.slow
def test_postgresql_stopped_restarted_frozen_under_load(tmp_path: Path) -> None:
    with throwaway_postgres() as pg, callrate_serve(pg.url, tmp_path) as served:
        ready_while_down: list[tuple[int, float]] = []
        with switch_load(served.base_url) as load:
            time.sleep(1.5)
            pg.stop()
            time.sleep(0.5)
            ready_while_down += [probe_ready(served.base_url) for _ in range(3)]
            time.sleep(2.0)
            pg.start()
            recovered_after_restart_s = wait_ready(served.base_url)
            time.sleep(1.5)
            pg.signal_all(signal.SIGSTOP)
            time.sleep(0.5)
            ready_while_down += [probe_ready(served.base_url) for _ in range(3)]
            time.sleep(6.5)  # statements in flight reach their deadline
            pg.signal_all(signal.SIGCONT)
            recovered_after_thaw_s = wait_ready(served.base_url)
            time.sleep(1.5)
        stored = stored_counts(pg.url)

    statuses = Counter(attempt.status for attempt in load.attempts)
    unavailable = sorted(a.seconds for a in load.attempts if a.status == 503)
    sent = len(load.acknowledged) * BATCH
    print(
        f"outage: {len(load.attempts)} posts {dict(statuses)}; 503 latency "
        f"median {unavailable[len(unavailable) // 2]:.2f} s max {unavailable[-1]:.2f} s; "
        f"readyz while down {[f'{s} {t:.2f}s' for s, t in ready_while_down]}; recovered "
        f"{recovered_after_restart_s:.1f} s after restart, {recovered_after_thaw_s:.1f} s "
        f"after SIGCONT; {sent} records acknowledged, stored (cdrs, ratings, distinct) {stored}"
    )
    assert set(statuses) <= {200, 503}, statuses  # never a bare 500, a reset or a hang
    assert statuses[503] > 0  # the outages were seen
    assert unavailable[-1] < UNAVAILABLE_BOUND_S
    assert all(status == 503 and seconds < READY_BOUND_S for status, seconds in ready_while_down)
    assert all(count == BATCH for count in load.acknowledged.values())
    assert stored == (sent, sent, sent)  # 0 lost, 0 doubled
