"""Admission control: past CALLRATE_MAX_IN_FLIGHT requests in flight, 503 overloaded at once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from starlette.types import Message

from service.api.admission import AdmissionMiddleware
from service.config import Settings
from service.db.session import make_engine
from service.rating.scalar import Rater
from tests.conftest_db import KEYS, KEYS_SPEC, TARIFFS, fresh_database, running_api

QUOTE = {
    "caller": "13800138000",
    "callee": "02188001234",
    "start": "2010-03-01T10:00:00+08:00",
    "duration_s": 125,
    "plan": "gotone",
}


def test_a_second_request_past_the_limit_is_refused_at_once(tmp_path: Path, rater: Rater) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        settings = Settings(
            database_url=url,
            data_dir=tmp_path,
            tariffs_dir=TARIFFS,
            api_keys=KEYS_SPEC,
            max_in_flight=1,
        )
        with running_api(settings, rater) as api:
            body = orjson.dumps(QUOTE)
            body_sent = anyio.Event()
            sent: list[Message] = []

            async def slow_client_receive() -> Message:
                await body_sent.wait()  # a client that is slow to send its body
                return {"type": "http.request", "body": body, "more_body": False}

            async def collect(message: Message) -> None:
                sent.append(message)

            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "POST",
                "scheme": "http",
                "path": "/v1/quote",
                "raw_path": b"/v1/quote",
                "query_string": b"",
                "root_path": "",
                "headers": [
                    (b"authorization", f"Bearer {KEYS['agent']}".encode()),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
                "client": ("127.0.0.1", 1),
                "server": ("callrate.test", 80),
                "state": {},
            }

            async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(api.app, scope, slow_client_receive, collect)
                    while not _in_flight(api.app):
                        await anyio.sleep(0.001)
                    with anyio.fail_after(5):  # "at once": not after the slow one ends
                        refused = await api.client.post("/v1/quote", json=QUOTE, headers=AGENT)
                    health = await api.client.get("/healthz")  # never refused
                    body_sent.set()
                admitted = await api.client.post("/v1/quote", json=QUOTE, headers=AGENT)
                return refused, health, admitted

            refused, health, admitted = api.portal.call(scenario)
            assert refused.status_code == 503
            assert refused.json() == {"error": "overloaded", "message": refused.json()["message"]}
            assert int(refused.headers["retry-after"]) >= 1
            assert health.status_code == 200
            assert sent[0]["status"] == 200  # the slow request was served in the end
            assert admitted.status_code == 200  # its slot is free again


AGENT = {"Authorization": f"Bearer {KEYS['agent']}"}


def _in_flight(app: object) -> bool:
    stack = getattr(app, "middleware_stack", None)
    if stack is None:  # built at the first request
        return False
    while stack is not None:
        if isinstance(stack, AdmissionMiddleware):
            return stack.in_flight > 0
        stack = getattr(stack, "app", None)
    raise AssertionError("no AdmissionMiddleware in the app")


def test_max_in_flight_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AdmissionMiddleware(lambda *a: None, max_in_flight=0)  # type: ignore[arg-type]


def test_pools_have_no_overflow(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}", pool_size=3)
    try:
        assert engine.pool.size() == 3  # type: ignore[attr-defined]
        assert engine.pool._max_overflow == 0  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_a_lagging_event_loop_refuses_new_requests_until_it_catches_up() -> None:
    release = asyncio.Event()

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    middleware = AdmissionMiddleware(slow_app, max_in_flight=4, max_lag_s=0.01)
    scope = {"type": "http", "path": "/v1/quote", "method": "POST"}

    async def request() -> list[Message]:
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        await middleware(scope, _no_body, send)
        return sent

    async def scenario() -> tuple[int, int, int]:
        first = asyncio.create_task(request())  # in flight, waiting
        await asyncio.sleep(0.02)
        time.sleep(0.1)  # the loop is saturated: the watcher's timer fires late
        await asyncio.sleep(0)
        while middleware.lag_s <= 0.01:
            await asyncio.sleep(0)
        refused = (await asyncio.wait_for(request(), timeout=5))[0]["status"]
        while middleware.lag_s > 0.01:  # caught up: the next timer fires on time
            await asyncio.sleep(0.001)
        second = asyncio.create_task(request())
        await asyncio.sleep(0.01)
        release.set()
        return refused, (await first)[0]["status"], (await second)[0]["status"]

    assert asyncio.run(scenario()) == (503, 200, 200)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
