"""create_app(): routers, error handlers, metrics; the lifespan loads tariffs and keys once."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from prometheus_client import Gauge
from starlette.types import Receive, Scope, Send

from service.api import cdrs, mediation, ops, quote, subscribers, suspense, usage
from service.api import rerate as rerate_api
from service.api.admission import Admission, AdmissionMiddleware
from service.api.console import console_files
from service.api.direct import DirectEndpoint
from service.api.docs import install_docs
from service.api.errors import ErrorBody, install_error_handlers
from service.api.guard import BodyGuardMiddleware
from service.clock import utcnow
from service.config import Settings, get_settings
from service.db.audit_batcher import AuditBatcher
from service.db.health import WriteHealth
from service.db.session import DbTimeouts, make_engine, make_sessionmaker
from service.flows.registry_cache import RegistryCache
from service.flows.tariffs import LiveTariffs
from service.ingest.mediation_file import load_mediation
from service.jobs.rerate import warm_batch_kernels
from service.ops.metrics import HttpMetricsMiddleware, Metrics
from service.ops.requestlog import RequestLogMiddleware
from service.rating import load_rater
from service.rating.batch import BatchRater
from service.rating.scalar import Rater
from service.security import KeyRing, ensure_keys, install_log_masking, parse_api_keys

log = logging.getLogger("callrate")


def print_new_keys(keys: dict[str, str]) -> None:
    """Show generated keys once: only their hashes are stored."""
    if keys:
        print("callrate: new API keys (shown once; only their hashes are stored):", flush=True)
        for role, key in keys.items():
            print(f"  {role}={key}", flush=True)


def create_app(settings: Settings | None = None, *, rater: Rater | None = None) -> FastAPI:
    """The ASGI app; the database must already be migrated (`callrate serve` does it)."""
    settings = settings or get_settings()
    install_log_masking()
    metrics = Metrics(multiprocess_dir=settings.prometheus_multiproc_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.effective_database_url
        timeouts = DbTimeouts(
            connect_s=settings.db_connect_timeout_s,
            statement_s=settings.db_statement_timeout_s,
            pool_s=settings.db_pool_timeout_s,
        )
        engine = make_engine(
            url,
            pool_size=settings.db_pool_size,
            sqlite_synchronous=settings.sqlite_synchronous,
            timeouts=timeouts,
        )
        app.state.sessions = make_sessionmaker(engine)
        # The published tariffs (SPEC §7), with the numbering of the given rater or the
        # tariff directory; re-read when a version is published (use_tariffs below).
        fallback = rater or load_rater(settings.tariffs_dir)
        live = LiveTariffs(
            app.state.sessions,
            fallback.numbering,
            poll_s=settings.tariffs_poll_s,
            on_change=lambda new: use_tariffs(app, new),
            fallback=fallback,
        )
        app.state.rater = live.rater
        audit_engine = make_engine(
            url, pool_size=settings.db_pool_size, audit_only=True, timeouts=timeouts, pre_ping=False
        )
        app.state.write_health = WriteHealth()
        for watched in (engine, audit_engine):
            metrics.watch_database(watched)
            app.state.write_health.watch(watched)
        metrics.set_build_info(
            version=app.version, tariffs=(t.version for t in app.state.rater.book.tariffs)
        )
        # the registry cached per worker (quotes, ingest), audit rows written in groups (quotes)
        app.state.registry_cache = RegistryCache(audit_engine)
        app.state.registry_cache.watch(app.state.sessions)
        app.state.registry_cache.start()
        app.state.audit_batcher = AuditBatcher(audit_engine, timeouts=timeouts)
        # /readyz has its own connection and shorter bounds: it answers while the request
        # pools are exhausted by a database that stopped answering.
        ready_s = settings.readyz_timeout_s
        ready_engine = make_engine(
            url,
            pool_size=1,
            timeouts=DbTimeouts(connect_s=ready_s, statement_s=ready_s, pool_s=ready_s / 3),
        )
        app.state.ready_engine = ready_engine
        if settings.api_keys:
            app.state.keys = KeyRing.from_pairs(parse_api_keys(settings.api_keys))
        else:
            with app.state.sessions.begin() as session:
                print_new_keys(ensure_keys(session, now=utcnow()))
            app.state.keys = KeyRing.from_database(app.state.sessions)
        frozen = _Frozen()
        app.state.kernels = WarmKernels(
            app.state.rater, then=frozen.again, ready=app.state.metrics.batch_kernels_ready
        )
        log.info("callrate ready: %d tariff versions", len(app.state.rater.book.tariffs))
        frozen.start()
        live.start()
        try:
            yield
        finally:
            live.stop()
            frozen.stop()
            app.state.registry_cache.stop()
            await app.state.audit_batcher.close()
            ready_engine.dispose()
            audit_engine.dispose()
            engine.dispose()

    app = CallrateApp(
        title="callrate",
        summary="Telephony call rating: classify, rate to the fen, store, explain",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # install_docs: Swagger UI and ReDoc from the app's own files
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.mediation = load_mediation(settings.mediation_file)  # a bad file stops the start
    install_error_handlers(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    for module in (quote, cdrs, mediation, subscribers, suspense, rerate_api, ops, usage):
        app.include_router(module.router)
    app.mount("/agent", console_files(), name="agent")
    install_docs(app)
    admission = Admission(max_in_flight=settings.max_in_flight, max_lag_s=settings.max_loop_lag_s)
    app.add_middleware(BodyGuardMiddleware)
    app.add_middleware(AdmissionMiddleware, admission=admission)
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)  # counts refusals too
    app.add_middleware(RequestLogMiddleware, log_format=settings.log_format)  # outermost
    app.direct_endpoint = DirectEndpoint(
        {
            quote.PATH: quote.DIRECT,
            cdrs.PATH: cdrs.DIRECT,
            mediation.FREESWITCH_PATH: mediation.FREESWITCH_DIRECT,
            mediation.THREEGPP_PATH: mediation.THREEGPP_DIRECT,
        },
        admission=admission,
        metrics=metrics,
        log_format=settings.log_format,
    )
    return app


class CallrateApp(FastAPI):
    """The service's FastAPI app; a POST to one of the hot routes (/v1/quote, /v1/cdrs) is
    handed straight to `direct_endpoint` (service.api.direct.DirectEndpoint), which does
    what the middleware stack and FastAPI's routing would do for it at a fraction of their
    cost: ~15 ASGI layers, each a coroutine frame (and a send wrapper) per request, a router
    match and dependency solving."""

    direct_endpoint: DirectEndpoint | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request or lifespan."""
        endpoint = self.direct_endpoint
        if (
            endpoint is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in endpoint.routes
        ):
            if self.middleware_stack is None:  # built at the first request, whichever it is
                self.middleware_stack = self.build_middleware_stack()
            scope["app"] = self
            await endpoint(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class _Frozen:
    """Objects that live as long as the process, out of the collector's reach while the app
    runs: a full (gen 2) collection no longer re-scans them.

    Frozen at start (tariffs, numbering tables, the app and its libraries; measured: 36 ms a
    full collection before, under 1 ms after) and again once the batch kernels are warm
    (numba's typing and target contexts and the loaded kernels: ~60,000 objects, measured
    25-110 ms a full collection, one every few seconds under load, each a stall for every
    request in flight). A freeze after the app stopped would outlive it: never done."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = False

    def start(self) -> None:
        with self._lock:
            self._running = True
            gc.freeze()

    def again(self) -> None:
        with self._lock:
            if self._running:
                gc.freeze()

    def stop(self) -> None:
        with self._lock:
            self._running = False
            gc.unfreeze()


def use_tariffs(app: FastAPI, rater: Rater) -> None:
    """Rate with a newly published set from now on. The batch rater goes first (None: the
    per-call path meanwhile) and comes back for the new rater, so a request, which reads
    `state.rater` before `state.kernels.batch`, never pairs a new rater with an old batch."""
    app.state.kernels.use(rater, then=lambda: setattr(app.state, "rater", rater))
    app.state.metrics.set_build_info(version=app.version, tariffs=rater.book.versions)


class WarmKernels:
    """The batch kernels, compiled (or loaded from the JIT cache) in a thread at start,
    outside any transaction. A thread, so that a cold JIT cache (~16 s of compiling) does
    not delay readiness: until `batch` is set, ingestion rates through the per-call path,
    and a re-rating job started meanwhile warms the kernels itself before its first
    transaction (numba's compiler lock makes it wait for this thread's work, not repeat it).
    `then` runs after the warm-up, before `done` is set.
    """

    def __init__(
        self, rater: Rater, *, then: Callable[[], None], ready: Gauge | None = None
    ) -> None:
        self.done = threading.Event()
        self.batch: BatchRater | None = None
        self._lock = threading.Lock()  # use() against the end of the warm-up
        self._rater = rater
        self._then = then
        self._ready = ready  # set to 1 once the kernels are warm
        if ready is not None:
            ready.set(0)
        threading.Thread(target=self._warm, name="callrate-warm-kernels", daemon=True).start()

    def use(self, rater: Rater, *, then: Callable[[], None]) -> None:
        """Give up the batch rater, run `then`, and make one for `rater` if warm already."""
        with self._lock:
            warm = self.batch is not None
            self.batch = None
            self._rater = rater
            then()
            if warm:
                self.batch = BatchRater(rater)

    def _warm(self) -> None:
        try:
            batch = warm_batch_kernels(self._rater)
            with self._lock:  # a set published meanwhile: a batch rater of it instead
                self.batch = batch if batch.rater is self._rater else BatchRater(self._rater)
            if self._ready is not None:
                self._ready.set(1)
        except Exception:  # ingestion keeps the per-call path; a re-rating job fails alone
            log.exception("warming the batch kernels failed")
        finally:
            self._then()
            self.done.set()


_ERROR_REF = "#/components/schemas/ErrorBody"
_NO_DATABASE = ("/healthz", "/openapi.json", "/docs", "/redoc")


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, saying what the handlers of service.errors really answer:
    validation errors in the one envelope (not FastAPI's `{"detail": ...}`), and 503
    `database_unavailable` on every operation that uses the database."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components.setdefault("ErrorBody", ErrorBody.model_json_schema())
    envelope = {"application/json": {"schema": {"$ref": _ERROR_REF}}}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            invalid = responses.get("422", {}).get("content", {}).get("application/json", {})
            if invalid.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                responses["422"] = {"description": "the request is not valid", "content": envelope}
            if "requestBody" in operation:  # FastAPI answers a body it cannot parse 400
                responses.setdefault(
                    "400", {"description": "the body is not JSON", "content": envelope}
                )
                responses.setdefault(
                    "408",
                    {
                        "description": "the body did not arrive whole within "
                        "CALLRATE_BODY_TIMEOUT_S",
                        "content": envelope,
                    },
                )
            if path not in _NO_DATABASE:
                responses.setdefault(
                    "503",
                    {
                        "description": "the database does not answer; retry after Retry-After",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        "content": envelope,
                    },
                )
    app.openapi_schema = schema
    return schema
