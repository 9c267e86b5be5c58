"""SPEC §6.2 outage: a database that is unreachable, frozen or locked is answered 503
database_unavailable with Retry-After within a bounded time; /readyz 503 within 2 s.

In-process cases here (SQLite locked, nothing listening, a listener that never answers);
a real `callrate serve` on a throwaway PostgreSQL stopped, restarted and frozen under load
further down.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from service.config import Settings
from service.rating.scalar import Rater
from tests.api.test_cdrs import cdr
from tests.conftest_db import KEYS_SPEC, TARIFFS, fresh_database, running_api

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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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
