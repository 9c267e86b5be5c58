"""`callrate loadtest`: ingestion throughput and quote latency against a server on loopback.

Bounded in count and time; refuses any host that is not loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import resource
import socket
import statistics
import sys
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import orjson
import uvloop

MAX_BATCHES = 2_000
MAX_SECONDS = 120.0
MAX_RATE = 5_000
MAX_CONNECTIONS = 256
REQUEST_TIMEOUT_S = 10.0
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
            rated += orjson.loads(body)["counts"]["rated"]

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
    """Open-loop quotes: request i is due at start + i / rate by the wall clock, whatever the
    server is doing, and its latency runs from that due time to the whole answer (so time a
    request waited in this client for a connection counts too)."""
    client = HttpClient(url, max_connections=MAX_CONNECTIONS)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    count = int(rate * seconds)
    requests = [
        client.render("POST", "/v1/quote", orjson.dumps(record(i, prefix=None)), headers)
        for i in range(count)
    ]
    latencies: list[float] = []
    errors = 0

    async def one(request: bytes, due: float) -> None:
        nonlocal errors
        try:
            status, _ = await asyncio.wait_for(client.send(request), timeout=REQUEST_TIMEOUT_S)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, HttpError):
            status = 0
        latencies.append(time.perf_counter() - due)
        if status != 200:
            errors += 1

    # the first connection is opened before the clock starts
    await client.send(client.render("GET", "/healthz", b"", {}))
    tasks = []
    cpu = _cpu_seconds()
    start = time.perf_counter()
    for i, request in enumerate(requests):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    await client.close()
    return {
        "mode": "quote",
        "requests": count,
        "errors": errors,
        "offered_rate": rate,
        "achieved_rate": round(count / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
        "client_cpu_s": round(_cpu_seconds() - cpu, 2),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `callrate loadtest`."""
    parser.description = (
        "Measure a running `callrate serve` on this machine and print one JSON line. ingest: "
        "POST --batches batches of --batch-size synthetic CDRs on --concurrency connections "
        "(CDRs/s). quote: open-loop quotes at --rate per second for --seconds (latency "
        "percentiles from each request's due time)."
    )
    parser.add_argument(
        "mode", choices=("ingest", "quote"), help="ingest (needs a switch key) or quote (agent)"
    )
    parser.add_argument(
        "--url",
        default="http://127.0.0.1:8000",
        metavar="URL",
        help="base URL of the server; loopback hosts only",
    )
    parser.add_argument(
        "--key",
        required=True,
        metavar="KEY",
        help="API key: a switch key for ingest, an agent key for quote (required)",
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
