"""create_app(): routers, error handlers, metrics; the lifespan loads tariffs and keys once."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.api import cdrs, ops, quote, subscribers, suspense
from service.api import rerate as rerate_api
from service.api.deps import Transactions
from service.config import Settings, get_settings
from service.db.session import make_engine, make_sessionmaker
from service.errors import install_error_handlers
from service.flows import utcnow
from service.metrics import HttpMetricsMiddleware, Metrics
from service.rating import load_rater
from service.rating.scalar import Rater
from service.requestlog import RequestLogMiddleware
from service.security import KeyRing, ensure_keys, parse_api_keys

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
    metrics = Metrics(multiprocess_dir=settings.prometheus_multiproc_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.rater = rater or load_rater(settings.tariffs_dir)
        engine = make_engine(
            settings.effective_database_url,
            pool_size=settings.db_pool_size,
            sqlite_synchronous=settings.sqlite_synchronous,
        )
        app.state.sessions = make_sessionmaker(engine)
        audit_engine = make_engine(
            settings.effective_database_url, pool_size=settings.db_pool_size, audit_only=True
        )
        for watched in (engine, audit_engine):
            metrics.watch_database(watched)
        metrics.set_build_info(
            version=app.version, tariffs=(t.version for t in app.state.rater.book.tariffs)
        )
        app.state.audit_transactions = Transactions(audit_engine)
        if settings.api_keys:
            app.state.keys = KeyRing.from_pairs(parse_api_keys(settings.api_keys))
        else:
            with app.state.sessions.begin() as session:
                print_new_keys(ensure_keys(session, now=utcnow()))
            app.state.keys = KeyRing.from_database(app.state.sessions)
        log.info("callrate ready: %d tariff versions", len(app.state.rater.book.tariffs))
        # Tariffs, numbering tables, the app and its libraries live as long as the process:
        # moved out of the collector's reach, a full (gen 2) collection no longer re-scans
        # them. Measured: 36 ms a full collection before, under 1 ms after; ingestion
        # triggered one every few batches, and each was a 36 ms stall for any quote in flight.
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            audit_engine.dispose()
            engine.dispose()

    app = FastAPI(
        title="callrate",
        summary="Telephony call rating: classify, rate to the fen, store, explain",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    for module in (quote, cdrs, subscribers, suspense, rerate_api, ops):
        app.include_router(module.router)
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestLogMiddleware, log_format=settings.log_format)  # outermost
    return app
