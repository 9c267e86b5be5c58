"""`callrate loadtest`: ingestion throughput and quote latency against a server on loopback.

Bounded in count and time; refuses any host that is not loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import statistics
import sys
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

MAX_BATCHES = 2_000
MAX_SECONDS = 120.0
MAX_RATE = 5_000

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


async def ingest(
    *, url: str, key: str, batches: int, batch_size: int, concurrency: int
) -> dict[str, Any]:
    """POST `batches` NDJSON batches with `concurrency` in flight; CDRs/s over the whole run."""
    prefix = uuid.uuid4().hex[:12]
    bodies = [
        b"\n".join(
            orjson.dumps(record(b * batch_size + i, prefix=prefix)) for i in range(batch_size)
        )
        for b in range(batches)
    ]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    rated = 0
    latencies: list[float] = []
    deadline = time.perf_counter() + MAX_SECONDS

    async with httpx.AsyncClient(base_url=url, timeout=60.0) as client:

        async def worker() -> None:
            nonlocal rated
            while not queue.empty() and time.perf_counter() < deadline:
                body = queue.get_nowait()
                started = time.perf_counter()
                response = await client.post("/v1/cdrs", content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()
                rated += orjson.loads(response.content)["counts"]["rated"]

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
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
    }


async def quote(*, url: str, key: str, rate: float, seconds: float) -> dict[str, Any]:
    """Open-loop quotes at `rate` per second for `seconds`; latency percentiles."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    count = int(rate * seconds)
    bodies = [orjson.dumps(record(i, prefix=None)) for i in range(count)]
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=url, timeout=10.0, limits=limits) as client:
        await client.get("/healthz")

        async def one(body: bytes) -> None:
            nonlocal errors
            started = time.perf_counter()
            response = await client.post("/v1/quote", content=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                errors += 1

        tasks = []
        start = time.perf_counter()
        for i, body in enumerate(bodies):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {
        "mode": "quote",
        "requests": count,
        "errors": errors,
        "offered_rate": rate,
        "achieved_rate": round(count / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `callrate loadtest`."""
    parser.add_argument("mode", choices=("ingest", "quote"))
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="loopback only")
    parser.add_argument("--key", required=True, help="a switch key (ingest) or agent key (quote)")
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rate", type=float, default=500.0, help="quotes per second")
    parser.add_argument("--seconds", type=float, default=10.0)


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
    if args.mode == "ingest":
        result = asyncio.run(
            ingest(
                url=args.url,
                key=args.key,
                batches=args.batches,
                batch_size=args.batch_size,
                concurrency=args.concurrency,
            )
        )
    else:
        result = asyncio.run(
            quote(url=args.url, key=args.key, rate=args.rate, seconds=args.seconds)
        )
    print(orjson.dumps(result).decode())
    return 0
