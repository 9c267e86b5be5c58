"""Database and API test helpers: a fresh migrated database per test (SQLite file or a
PostgreSQL schema), and a synchronous client for the ASGI app."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI
from sqlalchemy import create_engine, pool, text

from service.api.app import create_app
from service.config import Settings
from service.db.migrate import throwaway_schema, upgrade
from service.rating.scalar import Rater

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "migrations"
TARIFFS = ROOT / "tariffs"
KEYS = {
    "switch": "test-switch-key",
    "agent": "test-agent-key",
    "ops": "test-ops-key",
    "admin": "test-admin-key",
}
KEYS_SPEC = ",".join(f"{role}={key}" for role, key in KEYS.items())
BACKENDS = ("sqlite", "postgresql")


def _postgres_base_url() -> str:
    """The test server's URL, or skip (fail when CALLRATE_REQUIRE_POSTGRES=1)."""
    required = os.environ.get("CALLRATE_REQUIRE_POSTGRES") == "1"
    base = os.environ.get("CALLRATE_TEST_POSTGRES_URL")
    if not base:
        if required:
            pytest.fail("CALLRATE_REQUIRE_POSTGRES=1 but CALLRATE_TEST_POSTGRES_URL is unset")
        pytest.skip("CALLRATE_TEST_POSTGRES_URL is unset")
    try:
        engine = create_engine(base, poolclass=pool.NullPool)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        if required:
            pytest.fail(f"PostgreSQL at CALLRATE_TEST_POSTGRES_URL is unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    return base


@contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a new SQLite file, or a new PostgreSQL schema dropped after."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'callrate.sqlite3'}"
        upgrade(url=url, migrations_dir=MIGRATIONS)
        yield url
        return
    with throwaway_schema(_postgres_base_url(), prefix="test", migrations_dir=MIGRATIONS) as url:
        yield url


@dataclass
class Api:
    """A synchronous face of an httpx client bound to the app, with a key per role."""

    app: FastAPI
    portal: BlockingPortal
    client: httpx.AsyncClient
    settings: Settings

    def request(
        self, method: str, url: str, *, role: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send a request with `role`'s key (no Authorization header when role is None)."""
        headers = dict(kwargs.pop("headers", None) or {})
        if role is not None:
            headers.setdefault("Authorization", f"Bearer {KEYS[role]}")
        call = functools.partial(self.client.request, method, url, headers=headers, **kwargs)
        return self.portal.call(call)

    def get(self, url: str, *, role: str | None = None, **kwargs: Any) -> httpx.Response:
        """GET."""
        return self.request("GET", url, role=role, **kwargs)

    def post(self, url: str, *, role: str | None = None, **kwargs: Any) -> httpx.Response:
        """POST."""
        return self.request("POST", url, role=role, **kwargs)

    def put(self, url: str, *, role: str | None = None, **kwargs: Any) -> httpx.Response:
        """PUT."""
        return self.request("PUT", url, role=role, **kwargs)

    def publish(self, *paths: Path) -> list[httpx.Response]:
        """POST each tariff file to /v1/tariffs (admin), then wait until the app rates with
        the published versions: a new one within 5 s (SPEC §7)."""
        answers = [
            self.post(
                "/v1/tariffs",
                role="admin",
                content=path.read_bytes(),
                headers={"content-type": "application/toml"},
            )
            for path in paths
        ]
        for answer in answers:
            assert answer.status_code in (200, 201), answer.text
        versions = {answer.json()["tariff"]["version"] for answer in answers}
        deadline = time.monotonic() + 5.0
        while not versions <= set(self.app.state.rater.book.versions):
            assert time.monotonic() < deadline, f"{versions} not rated with within 5 s"
            time.sleep(0.02)
        return answers


@contextmanager
def running_api(settings: Settings, rater: Rater, *, warm: bool = True) -> Iterator[Api]:
    """The app with its lifespan running, served in-process over ASGI; with `warm`, once its
    batch kernels are (ingestion then runs the batch path, as in production)."""
    app = create_app(settings, rater=rater)
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        # Ingestion rates through the batch path once its kernels are warm: wait, so that
        # the API tests run the path production runs (tests/ingest/test_pipeline.py compares
        # it with the per-call one).
        if warm:
            assert app.state.kernels.done.wait(timeout=300)
            assert app.state.kernels.batch is not None
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        client = httpx.AsyncClient(transport=transport, base_url="http://callrate.test")
        try:
            yield Api(app=app, portal=portal, client=client, settings=settings)
        finally:
            portal.call(client.aclose)


def through_stack(app: FastAPI) -> httpx.AsyncClient:
    """A client of the app called past CallrateApp's dispatch: every request goes through
    the middleware stack, as FastAPI serves it (the hot routes by their documenting route)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(
            app=functools.partial(FastAPI.__call__, app), raise_app_exceptions=False
        ),
        base_url="http://callrate.test",
    )
