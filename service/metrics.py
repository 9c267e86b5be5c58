"""Prometheus metrics for ops; labels are bounded (result, call class, route template)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

RESULTS = ("rated", "duplicate", "rejected")
RATING_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    """One app's metrics in their own registry (tests get fresh counters per app).

    With `multiprocess_dir` (PROMETHEUS_MULTIPROC_DIR, set before prometheus_client is
    imported) every worker process writes its values to files there and `render` sums the
    files of all workers, so /metrics answers for the whole server whichever worker serves it.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, multiprocess_dir: Path | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.multiprocess_dir = multiprocess_dir
        self.cdrs = Counter(
            "callrate_cdrs",
            "CDRs received, by per-record result",
            ["result"],
            registry=self.registry,
        )
        self.rating_seconds = Histogram(
            "callrate_rating_seconds",
            "Time to classify and price one call",
            buckets=RATING_BUCKETS,
            registry=self.registry,
        )
        self.charged_fen = Counter(
            "callrate_charged_fen",
            "Fen charged on newly stored ratings, by call class",
            ["call_class"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "callrate_http_request_seconds",
            "HTTP request latency by method, route template and status",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self.suspense_records = Gauge(
            "callrate_suspense_records",
            "Records waiting in suspense",
            registry=self.registry,
            multiprocess_mode="mostrecent",  # set from the database at each scrape
        )
        for result in RESULTS:
            self.cdrs.labels(result=result)

    def render(self) -> bytes:
        """The Prometheus text format: this process's registry, or all workers' files."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def count_results(self, results: Iterable[str]) -> None:
        """Count per-record results of a batch."""
        tally = dict.fromkeys(RESULTS, 0)
        for result in results:
            tally[result] += 1
        for result, count in tally.items():
            if count:
                self.cdrs.labels(result=result).inc(count)


def route_template(scope: Scope) -> str:
    """The matched route's path template; never the concrete path (it may hold a number)."""
    app = scope.get("app")
    router = getattr(app, "router", None)
    for route in getattr(router, "routes", ()):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


class HttpMetricsMiddleware:
    """Pure ASGI middleware timing each HTTP request by route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request; label it after the response started."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or route_template(scope)
            self.metrics.http_seconds.labels(
                method=scope["method"], route=template, status=str(status)
            ).observe(time.perf_counter() - started)
