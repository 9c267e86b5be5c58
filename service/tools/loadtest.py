"""`callrate loadtest`: ingestion throughput, quote latency and memory under maximum-size
bodies, against a server on loopback.

Bounded in count and time; refuses any host that is not loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import re
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import uvloop

from service.tools import loadgen

MAX_BATCHES = 2_000
MAX_SECONDS = 120.0
MAX_RATE = 5_000
MAX_CONNECTIONS = 256
QUOTE_BODIES = 1_000  # distinct quote requests, sent in turn
CONNECT_STAGGER_S = 0.05

# Rateable call shapes (SPEC golden examples); ids and durations vary per record.
SHAPES: tuple[dict[str, Any], ...] = (
    {"callee": "02188001234", "plan": "gotone"},
    {"callee": "88001234", "plan": "mzone"},
    {"callee": "13901234567", "plan": "easyown"},
    {"callee": "0085221234567", "plan": "gotone"},
    {"callee": "179510012025550123", "plan": "gotone"},
    {"callee": "1259302188001234", "plan": "easyown_easy"},
    {"callee": "02188001234", "plan": "gotone", "visited_area": "021"},
    {"callee": "13901234567", "plan": "gotone", "type": "terminating", "visited_area": "020"},
)


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def record(index: int, *, prefix: str | None) -> dict[str, Any]:
    """A synthetic CDR (with an id when `prefix` is given)."""
    shape = SHAPES[index % len(SHAPES)]
    cdr: dict[str, Any] = {
        "caller": "13800138000",
        "start": "2010-03-01T10:00:00+08:00",
        "duration_s": 1 + index % 600,
        **shape,
    }
    if prefix is not None:
        cdr["id"] = f"{prefix}-{index}"
    return cdr


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class HttpError(Exception):
    """The server answered in a way this client does not read."""


class _Connection:
    """One keep-alive HTTP/1.1 connection; requests are whole, pre-rendered byte strings."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send one request in one write; the status and body of the answer."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise HttpError("answer without content-length")
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


class HttpClient:
    """A small pool of keep-alive connections to one loopback server.

    Each request is written with one send and TCP_NODELAY on, so neither side's Nagle
    algorithm holds a segment back; the client costs little CPU next to the server it
    measures (both share the same cores).
    """

    def __init__(self, url: str, *, max_connections: int) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.idle: list[_Connection] = []
        self.slots = asyncio.Semaphore(max_connections)

    def render(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        """A whole request as bytes."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(reader, writer)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """One exchange on an idle connection (or a new one); at most max_connections open."""
        async with self.slots:
            reused = bool(self.idle)
            connection = self.idle.pop() if reused else await self._connect()
            try:
                answer = await connection.exchange(request)
            except (asyncio.IncompleteReadError, ConnectionError):
                connection.close()
                if not reused:
                    raise
                connection = await self._connect()  # the server closed an idle connection
                answer = await connection.exchange(request)
            except BaseException:
                connection.close()
                raise
            self.idle.append(connection)
            return answer

    async def close(self) -> None:
        """Close every idle connection."""
        for connection in self.idle:
            connection.close()
        self.idle.clear()


_RATED = re.compile(rb'"counts":\{[^}]*"rated":(\d+)')


def rated_count(answer: bytes) -> int:
    """counts.rated of a POST /v1/cdrs answer, read without decoding its results (a dict
    per record: ~0.5 ms of the client's CPU a batch of 1,000, on the cores the server
    shares). The counts object holds only numbers, so it ends at its first brace."""
    found = _RATED.search(answer)
    if found is None:
        raise HttpError(f"POST /v1/cdrs answered no counts: {answer[:200]!r}")
    return int(found.group(1))


async def ingest(
    *, url: str, key: str, batches: int, batch_size: int, concurrency: int
) -> dict[str, Any]:
    """POST `batches` NDJSON batches with `concurrency` in flight; CDRs/s over the whole run."""
    prefix = uuid.uuid4().hex[:12]
    client = HttpClient(url, max_connections=concurrency)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
    requests = [
        client.render(
            "POST",
            "/v1/cdrs",
            b"\n".join(
                orjson.dumps(record(b * batch_size + i, prefix=prefix)) for i in range(batch_size)
            ),
            headers,
        )
        for b in range(batches)
    ]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    rated = 0
    latencies: list[float] = []
    deadline = time.perf_counter() + MAX_SECONDS

    async def worker(number: int) -> None:
        nonlocal rated
        # Connections opened at one instant all land on the server worker process that wakes
        # first (its accept loop drains the backlog): 4 of 4 on one process, measured with
        # ss. Opened a little apart, as a switch's connections are, a busy process is slower
        # to accept and the others take their share. The ramp counts in the elapsed time.
        await asyncio.sleep(number * CONNECT_STAGGER_S)
        while not queue.empty() and time.perf_counter() < deadline:
            request = queue.get_nowait()
            started = time.perf_counter()
            status, body = await client.send(request)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                raise HttpError(f"POST /v1/cdrs answered {status}: {body[:200]!r}")
            rated += rated_count(body)

    cpu = _cpu_seconds()
    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker(number) for number in range(concurrency)))
    finally:
        await client.close()
    elapsed = time.perf_counter() - started
    return {
        "mode": "ingest",
        "batches": len(latencies),
        "batch_size": batch_size,
        "concurrency": concurrency,
        "rated": rated,
        "seconds": round(elapsed, 3),
        "cdrs_per_s": round(rated / elapsed),
        "batch_p50_ms": round(_percentile(latencies, 0.5) * 1000, 1),
        "batch_p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
        "client_cpu_s": round(_cpu_seconds() - cpu, 2),
    }


async def quote(*, url: str, key: str, rate: float, seconds: float) -> dict[str, Any]:
    """Open-loop quotes from `service.tools.loadgen`, a process of its own (an in-process client's
    own garbage collections started requests late by up to ~100 ms): request i is due at
    start + i / rate by the wall clock, whatever the server is doing, and its latency runs
    from that due time to the whole answer. After a warm-up of a fifth of `seconds`."""
    client = HttpClient(url, max_connections=1)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    requests = [
        client.render("POST", "/v1/quote", orjson.dumps(record(i, prefix=None)), headers)
        for i in range(QUOTE_BODIES)
    ]
    figures = await asyncio.to_thread(
        loadgen.run, url, requests, mode="open", rate=rate, seconds=seconds
    )
    return {
        "mode": "quote",
        "errors": figures["requests"] - figures["admitted"],
        **figures,
    }


# --- memory under maximum-size bodies ---------------------------------------------------------

MAX_BODIES = 32
RSS_SAMPLE_S = 0.01
SERVE_START_S = 120.0


def tiny_records_body(size: int) -> bytes:
    """`[{},{},...]` of at most `size` bytes: the most records a body of that size can hold
    (each becomes a Python object if the server parses before counting)."""
    count = max(1, (size - 1) // 3)
    return b"[" + b"{}," * (count - 1) + b"{}]"


def full_records_body(size: int, records: int = 10_000) -> bytes:
    """`records` valid CDRs padded with a `note` field to about `size` bytes (NDJSON)."""
    plain = [record(i, prefix=uuid.uuid4().hex[:12]) for i in range(records)]
    overhead = sum(len(orjson.dumps(r)) for r in plain) + records * 12
    pad = "x" * max(0, (size - overhead) // records)
    return b"\n".join(orjson.dumps({**r, "note": pad}) for r in plain)


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_tree(pid: int) -> list[int]:
    """A process and its descendants (uvicorn's workers), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(stat.parent.name))
    tree, queue = [], [pid]
    while queue:
        current = queue.pop()
        tree.append(current)
        queue.extend(children.get(current, []))
    return tree


def tree_rss_kib(pid: int) -> int:
    """The summed resident set of a process and its descendants now, in KiB."""
    return sum(_rss_kib(member) for member in process_tree(pid))


class RssSampler:
    """The summed resident set of a process tree, sampled every RSS_SAMPLE_S; its peak."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now_kib(self) -> int:
        return sum(_rss_kib(pid) for pid in self.pids)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, self.now_kib())
            time.sleep(RSS_SAMPLE_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, self.now_kib())


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback http
            return bool(answer.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def spawned_server(workers: int) -> Iterator[tuple[str, str, int]]:
    """`callrate serve` on a free loopback port with a fresh SQLite database (or the one
    CALLRATE_DATABASE_URL names) and its own switch key: (url, key, pid)."""
    key = "memory-" + secrets.token_urlsafe(12)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="callrate-memory-") as data_dir:
        env = {**os.environ, "CALLRATE_DATA_DIR": data_dir, "CALLRATE_API_KEYS": f"switch={key}"}
        command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port)]
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [*command, "--workers", str(workers)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + SERVE_START_S
            while True:
                if process.poll() is not None:
                    raise RuntimeError("callrate serve exited during start")
                if _ready(f"{url}/readyz"):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("callrate serve did not become ready")
                time.sleep(0.2)
            time.sleep(1.0)  # let start-up work (kernel warm-up) settle before the baseline
            yield url, key, process.pid
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
            process.wait(timeout=30)


async def post_bodies(*, url: str, key: str, body: bytes, ndjson: bool, count: int) -> Counter[int]:
    """`count` copies of `body` posted at once to /v1/cdrs; the statuses."""
    client = HttpClient(url, max_connections=count)
    content_type = "application/x-ndjson" if ndjson else "application/json"
    request = client.render(
        "POST", "/v1/cdrs", body, {"Authorization": f"Bearer {key}", "Content-Type": content_type}
    )

    async def one() -> int:
        try:
            status, _ = await asyncio.wait_for(client.send(request), timeout=MAX_SECONDS)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, HttpError):
            return 0
        return status

    try:
        return Counter(await asyncio.gather(*(one() for _ in range(count))))
    finally:
        await client.close()


def memory(args: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS of the server (all its processes) while `bodies` maximum-size bodies are
    posted at once; the server is started here unless --pid names a running one."""
    ndjson = args.shape == "records"
    body = (full_records_body if ndjson else tiny_records_body)(args.body_bytes)
    with contextlib.ExitStack() as stack:
        if args.pid is None:
            url, key, pid = stack.enter_context(spawned_server(args.workers))
        else:
            url, key, pid = args.url, args.key, args.pid
        sampler = RssSampler(process_tree(pid))
        before = sampler.now_kib()
        started = time.perf_counter()
        with sampler:
            statuses = uvloop.run(
                post_bodies(url=url, key=key, body=body, ndjson=ndjson, count=args.bodies)
            )
        elapsed = time.perf_counter() - started
        after = sampler.now_kib()
    return {
        "mode": "memory",
        "shape": args.shape,
        "bodies": args.bodies,
        "body_bytes": len(body),
        "statuses": {str(status): n for status, n in sorted(statuses.items())},
        "server_processes": len(sampler.pids),
        "rss_before_mb": round(before / 1024, 1),
        "rss_peak_mb": round(sampler.peak_kib / 1024, 1),
        "rss_after_mb": round(after / 1024, 1),
        "peak_minus_before_mb": round((sampler.peak_kib - before) / 1024, 1),
        "seconds": round(elapsed, 2),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `callrate loadtest`."""
    parser.description = (
        "Measure a running `callrate serve` on this machine and print one JSON line. ingest: "
        "POST --batches batches of --batch-size synthetic CDRs on --concurrency connections "
        "(CDRs/s). quote: open-loop quotes at --rate per second for --seconds (latency "
        "percentiles from each request's due time). memory: peak server RSS while --bodies "
        "maximum-size bodies are posted at once."
    )
    parser.add_argument(
        "mode",
        choices=("ingest", "quote", "memory"),
        help="ingest (needs a switch key), quote (agent key) or memory",
    )
    parser.add_argument(
        "--url",
        default="http://127.0.0.1:8000",
        metavar="URL",
        help="base URL of the server; loopback hosts only",
    )
    parser.add_argument(
        "--key",
        default=None,
        metavar="KEY",
        help="API key: a switch key for ingest and memory --pid, an agent key for quote "
        "(required but for memory without --pid)",
    )
    parser.add_argument(
        "--batches", type=int, default=100, metavar="N", help=f"ingest: batches, 1..{MAX_BATCHES}"
    )
    parser.add_argument(
        "--batch-size", type=int, default=1000, metavar="N", help="ingest: CDRs a batch, 1..10000"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=4,
        metavar="N",
        help=f"ingest: connections posting at once, 1..{MAX_CONNECTIONS}",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=500.0,
        metavar="PER_S",
        help=f"quote: requests per second, up to {MAX_RATE}",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=10.0,
        metavar="S",
        help=f"quote: how long to send, up to {MAX_SECONDS:g}",
    )
    parser.add_argument(
        "--pid",
        type=int,
        default=None,
        metavar="PID",
        help="memory: the running server at --url (its RSS and its workers'); default: start "
        "`callrate serve` on a free port with a temporary SQLite database",
    )
    parser.add_argument(
        "--bodies",
        type=int,
        default=8,
        metavar="N",
        help=f"memory: bodies posted at once, 1..{MAX_BODIES}",
    )
    parser.add_argument(
        "--body-bytes",
        type=int,
        default=16 * 1024 * 1024,
        metavar="BYTES",
        help="memory: size of each body (default: CALLRATE_MAX_BODY_BYTES' default, 16 MiB)",
    )
    parser.add_argument(
        "--shape",
        choices=("tiny", "records"),
        default="tiny",
        help="memory: tiny = [{},{},...] (the most records a body can hold; 413), records = "
        "10,000 valid CDRs padded to the size (NDJSON; stored)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="memory: worker processes of the started server (default: 1)",
    )


def run(args: argparse.Namespace) -> int:
    """Run one measurement and print it as JSON."""
    if not _is_loopback(args.url):
        print("callrate loadtest: only loopback URLs are allowed", file=sys.stderr)
        return 2
    if not (0 < args.batches <= MAX_BATCHES and 0 < args.batch_size <= 10_000):
        print(f"callrate loadtest: 1..{MAX_BATCHES} batches of 1..10000", file=sys.stderr)
        return 2
    if not (0 < args.rate <= MAX_RATE and 0 < args.seconds <= MAX_SECONDS):
        print(f"callrate loadtest: rate 1..{MAX_RATE}/s for 1..{MAX_SECONDS} s", file=sys.stderr)
        return 2
    if not 0 < args.concurrency <= MAX_CONNECTIONS:
        print(f"callrate loadtest: concurrency 1..{MAX_CONNECTIONS}", file=sys.stderr)
        return 2
    if args.mode == "memory":
        if args.pid is not None and not args.key:
            print("callrate loadtest: memory --pid needs --key (a switch key)", file=sys.stderr)
            return 2
        if not (0 < args.bodies <= MAX_BODIES and 0 < args.body_bytes <= 64 * 1024 * 1024):
            print(f"callrate loadtest: 1..{MAX_BODIES} bodies of at most 64 MiB", file=sys.stderr)
            return 2
        print(orjson.dumps(memory(args)).decode())
        return 0
    if not args.key:
        print("callrate loadtest: --key is required for ingest and quote", file=sys.stderr)
        return 2
    try:
        if args.mode == "ingest":
            result = uvloop.run(
                ingest(
                    url=args.url,
                    key=args.key,
                    batches=args.batches,
                    batch_size=args.batch_size,
                    concurrency=args.concurrency,
                )
            )
        else:
            result = uvloop.run(
                quote(url=args.url, key=args.key, rate=args.rate, seconds=args.seconds)
            )
    except OSError as exc:
        print(f"callrate loadtest: cannot reach {args.url}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except HttpError as exc:  # e.g. 401: the key is not one of the server's
        print(f"callrate loadtest: {exc}", file=sys.stderr)
        return 2
    print(orjson.dumps(result).decode())
    return 0
