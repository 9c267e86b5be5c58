"""SQLite on a full disk: the client gets 503 database_unavailable, and so do the request log
and `callrate_http_request_seconds` say; no traceback per request; `/readyz` answers 503
while writes fail and 200 again once one succeeds.

The disk is filled with `PRAGMA max_page_count` (the file may not grow: SQLite answers
"database or disk is full", as on ENOSPC), set on every new connection of the app's engines;
a raw `sqlite3` error raised outside SQLAlchemy (as the writer lock does) is injected too."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event

from service.config import Settings
from service.rating.scalar import Rater
from tests.api.test_cdrs import cdr
from tests.conftest import TARIFFS
from tests.conftest_db import KEYS, KEYS_SPEC, Api, fresh_database, running_api


@pytest.fixture
def sqlite_api(tmp_path: Any, rater: Rater) -> Iterator[Api]:
    with fresh_database("sqlite", tmp_path) as url:
        settings = Settings(
            database_url=url, data_dir=tmp_path, tariffs_dir=TARIFFS, api_keys=KEYS_SPEC
        )
        with running_api(settings, rater, warm=False) as api:
            yield api


def engines(api: Api) -> list[Engine]:
    state = api.app.state
    return [state.sessions.kw["bind"], state.audit_batcher.engine]


def fill_disk(api: Api) -> Any:
    def full(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        pages = cursor.execute("PRAGMA page_count").fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count = {pages}")
        cursor.close()

    for engine in engines(api):
        event.listen(engine, "connect", full)
        engine.dispose()
    return full


def free_disk(api: Api, full: Any) -> None:
    for engine in engines(api):
        event.remove(engine, "connect", full)
        engine.dispose()


def http_seconds(api: Api) -> dict[tuple[str, str], float]:
    text = api.get("/metrics", role="ops").text
    found = {}
    for line in text.splitlines():
        if line.startswith("callrate_http_request_seconds_count{"):
            labels, value = line.rsplit(" ", 1)
            route = labels.split('route="')[1].split('"')[0]
            status = labels.split('status="')[1].split('"')[0]
            found[(route, status)] = found.get((route, status), 0) + float(value)
    return found


def test_a_full_disk_is_503_in_the_answer_the_log_the_metric_and_readyz(
    sqlite_api: Api, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    api = sqlite_api
    assert api.post("/v1/cdrs", role="switch", json=[cdr("before")]).status_code == 200
    full = fill_disk(api)
    big = [cdr(f"x{i}", note="y" * 2000) for i in range(100)]
    capsys.readouterr()
    with caplog.at_level(logging.INFO):
        for batch in (big, big[:3]):  # the column lane and the per-record lane
            answer = api.post("/v1/cdrs", role="switch", json=batch)
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"] == "database_unavailable"
            assert answer.headers["retry-after"]
        put = api.put(
            "/v1/subscribers/13800138000",
            role="admin",
            json={"plan": "gotone", "packages": ["ld_night"] * 1},
        )
        assert put.status_code in (200, 503)
        big_put = api.post("/v1/cdrs", role="switch", json=big)
        assert big_put.status_code == 503
        ready = api.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["error"] == "database_unavailable"
        assert "takes no writes" in ready.json()["message"]
    lines = capsys.readouterr().err.splitlines()
    posts = [line for line in lines if " POST /v1/cdrs " in line]
    assert len(posts) == 3, posts
    assert all(" 503 " in line for line in posts), posts
    assert not [line for line in lines if " 500 " in line]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert "Traceback" not in caplog.text
    counted = http_seconds(api)
    assert counted.get(("/v1/cdrs", "503")) == 3
    assert not [key for key in counted if key[1] == "500" and counted[key]], counted

    free_disk(api, full)
    assert api.post("/v1/cdrs", role="switch", json=big[:3]).status_code == 200
    assert api.get("/readyz").status_code == 200


def test_a_raw_sqlite_error_is_handled_not_raised_past_the_app(
    sqlite_api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    api = sqlite_api

    def refuse(_connection: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    engine = engines(api)[0]
    event.listen(engine, "begin", refuse)
    raising = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app, raise_app_exceptions=True),
        base_url="http://callrate.test",
    )
    headers = {"Authorization": f"Bearer {KEYS['admin']}"}
    try:
        capsys.readouterr()
        response = api.portal.call(
            lambda: raising.put(
                "/v1/subscribers/13800138000", json={"plan": "gotone"}, headers=headers
            )
        )
        read = api.portal.call(lambda: raising.get("/v1/cdrs/any", headers=headers))
    finally:
        event.remove(engine, "begin", refuse)
        api.portal.call(raising.aclose)
    assert (response.status_code, response.json()["error"]) == (503, "database_unavailable")
    assert read.status_code == 503
    err = capsys.readouterr().err
    assert " PUT /v1/subscribers/{msisdn} 503 " in err
    assert " 500 " not in err
    assert http_seconds(api).get(("/v1/subscribers/{msisdn}", "503")) == 1
