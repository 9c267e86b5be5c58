"""Prometheus metrics for ops; every label is bounded (result, call class, route template,
reason code, job outcome) and none holds a number a subscriber dialled."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import is_database_unavailable
from service.rating.rejections import REASON_CODES

# A `_created` twin per series doubles what Prometheus stores and nothing here reads it.
disable_created_metrics()  # type: ignore[no-untyped-call]

RESULTS = ("rated", "duplicate", "rejected")
OTHER_REASON = "other"  # a stored code this version does not know (e.g. from an older one)
SUSPENSE_REASONS = (*REASON_CODES, OTHER_REASON)
RERATE_OUTCOMES = ("done", "failed")
RERATE_RESULTS = ("processed", "changed", "rejected")
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
            "Time to classify and price one call (a batch: one observation, its mean per CDR)",
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
            "Records waiting in suspense, by rejection reason code",
            ["code"],
            registry=self.registry,
            multiprocess_mode="mostrecent",  # set from the database at each scrape
        )
        self.database_up = Gauge(
            "callrate_database_up",
            "1 when the last database check or query succeeded, 0 after a connection error",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.build_info = Gauge(
            "callrate_build_info",
            "Always 1: the service version and the loaded tariff versions",
            ["version", "tariffs"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.rerate_jobs = Counter(
            "callrate_rerate_jobs",
            "Re-rating jobs finished in this process, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.rerate_records = Counter(
            "callrate_rerate_records",
            "Stored CDRs re-rated: processed, changed (a new rating), rejected (kept as is)",
            ["result"],
            registry=self.registry,
        )
        self.batch_kernels_ready = Gauge(
            "callrate_batch_kernels_ready",
            "1 once every worker's batch kernels are compiled (until then ingestion rates"
            " record by record through the per-call path)",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.rerate_running = Gauge(
            "callrate_rerate_running_jobs",
            "Re-rating jobs running now",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.rerate_remaining = Gauge(
            "callrate_rerate_remaining_records",
            "CDRs the running re-rating jobs have still to process",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        # labelled series by (method, route template, status): labels() costs a lock and
        # string checks per call; the set is bounded as its labels are
        self._http_series: dict[tuple[str, str, int], Histogram] = {}
        for result in RESULTS:
            self.cdrs.labels(result=result)
        for status in ("500", "503"):  # alerted on: increase() must see the first one
            self.http_seconds.labels(method="POST", route="/v1/cdrs", status=status)
        for outcome in RERATE_OUTCOMES:
            self.rerate_jobs.labels(outcome=outcome)
        for result in RERATE_RESULTS:
            self.rerate_records.labels(result=result)

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        """One HTTP request's latency, by method, route template and status."""
        key = (method, route, status)
        series = self._http_series.get(key)
        if series is None:
            series = self.http_seconds.labels(method=method, route=route, status=str(status))
            self._http_series[key] = series
        series.observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text format: this process's registry, or all workers' files."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def set_build_info(self, *, version: str, tariffs: Iterable[str]) -> None:
        """The one build-info series: version and tariff versions, comma-separated."""
        self.build_info.clear()  # a newly published set replaces the series
        self.build_info.labels(version=version, tariffs=",".join(tariffs)).set(1)

    def set_suspense(self, by_code: Mapping[str, int]) -> None:
        """Open suspense rows per reason code; every known code is set (0 when none wait)."""
        counts = dict.fromkeys(SUSPENSE_REASONS, 0)
        for code, count in by_code.items():
            counts[code if code in counts else OTHER_REASON] += count
        for code, count in counts.items():
            self.suspense_records.labels(code=code).set(count)

    def watch_database(self, engine: Engine) -> None:
        """Mark the database down when a query on `engine` finds it unavailable."""

        @event.listens_for(engine, "handle_error")
        def _on_error(context: ExceptionContext) -> None:
            if database_unavailable(context):
                self.database_up.set(0)

    def count_results(self, results: Iterable[str]) -> None:
        """Count per-record results of a batch."""
        tally = dict.fromkeys(RESULTS, 0)
        for result in results:
            tally[result] += 1
        for result, count in tally.items():
            if count:
                self.cdrs.labels(result=result).inc(count)


# SQLSTATE classes: 08 connection exception; 57 operator intervention (statement timeout,
# cancel, shutdown). A conflict (40: serialization, deadlock) or a constraint (23) is no
# sign of an unavailable database: the service retries or reports those itself.
_UNAVAILABLE_SQLSTATE = ("08", "57")


def database_unavailable(context: ExceptionContext) -> bool:
    """A database error that means the database is unreachable, frozen or too slow."""
    if context.is_disconnect or context.connection is None:  # lost, or never connected
        return True
    original = context.original_exception
    sqlstate = getattr(original, "sqlstate", None) or ""
    busy = getattr(original, "sqlite_errorname", None) == "SQLITE_BUSY"  # locked past timeout
    return busy or sqlstate.startswith(_UNAVAILABLE_SQLSTATE)


class RerateProgress:
    """One run of a re-rating job as metrics: running, records left, chunk counts, outcome."""

    def __init__(self, metrics: Metrics | None) -> None:
        self.metrics = metrics
        self.remaining = 0
        self.running = False

    def start(self, *, total: int, processed: int) -> None:
        """The job starts (or resumes) with this many CDRs counted and already processed."""
        if self.metrics is None or self.running:
            return
        self.running = True
        self.remaining = max(total - processed, 0)
        self.metrics.rerate_running.inc()
        self.metrics.rerate_remaining.inc(self.remaining)

    def chunk(self, *, processed: int, changed: int, rejected: int) -> None:
        """A chunk committed."""
        if self.metrics is None:
            return
        counts = {"processed": processed, "changed": changed, "rejected": rejected}
        for result, count in counts.items():
            if count:
                self.metrics.rerate_records.labels(result=result).inc(count)
        done = min(processed, self.remaining)
        self.remaining -= done
        self.metrics.rerate_remaining.dec(done)

    def finish(self, outcome: str) -> None:
        """The run ended: done or failed."""
        if self.metrics is None:
            return
        self.metrics.rerate_jobs.labels(outcome=outcome).inc()
        if self.running:
            self.metrics.rerate_running.dec()
            self.metrics.rerate_remaining.dec(self.remaining)
            self.running, self.remaining = False, 0


_CONVERTER = re.compile(r":[a-z]+}")


def route_template(scope: Scope) -> str:
    """The matched route's path template; never the concrete path (it may hold a number)."""
    matched = scope.get("route")
    if matched is None:
        app = scope.get("app")
        router = getattr(app, "router", None)
        for route in getattr(router, "routes", ()):
            match, _ = route.matches(scope)
            if match is Match.FULL:
                matched = route
                break
    template = getattr(matched, "path", None)
    # without converters: `{cdr_id}`, not `{cdr_id:path}`, as OpenAPI names the route
    return _CONVERTER.sub("}", str(template)) if template else "unmatched"


def answered_status(exc: Exception, sent: int) -> int:
    """The status an error raised past this layer is answered with by the outermost handler
    (service.api.errors): 503 when the database is unavailable, else 500; `sent` when an
    answer had started already."""
    if sent != 500:
        return sent
    return 503 if is_database_unavailable(exc) else 500


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
        except Exception as exc:
            status = answered_status(exc, status)
            raise
        finally:
            self.metrics.observe_http(
                scope["method"], route_template(scope), status, time.perf_counter() - started
            )
