"""A body that does not arrive whole within CALLRATE_BODY_TIMEOUT_S is answered 408 in the
one error envelope and frees its admission slot: slow clients cannot starve the API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import orjson
import pytest

from service.config import Settings
from service.rating.scalar import Rater
from tests.api.test_cdrs import cdr
from tests.api.test_envelope import assert_envelope
from tests.conftest_db import KEYS, Api, running_api

TIMEOUT_S = 0.6
QUOTE = {k: v for k, v in cdr("q").items() if k != "id"}


@pytest.fixture
def slow_api(settings: Settings, rater: Rater) -> Iterator[Api]:
    bounded = settings.model_copy(update={"body_timeout_s": TIMEOUT_S, "max_in_flight": 4})
    with running_api(bounded, rater, warm=False) as client:
        yield client


async def trickle(body: bytes) -> AsyncIterator[bytes]:
    """One byte every 0.1 s: the whole body takes longer than the timeout."""
    for byte in body:
        yield bytes([byte])
        await asyncio.sleep(0.1)


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}", "Content-Type": "application/json"}


ROUTES = [
    ("POST", "/v1/quote", "agent", orjson.dumps(QUOTE)),  # read by the route, ahead of the stack
    ("POST", "/v1/cdrs", "switch", orjson.dumps([cdr("c1")])),
    ("PUT", "/v1/subscribers/13800138000", "admin", b'{"plan": "gotone"}'),  # the guard reads it
]


@pytest.mark.parametrize(("method", "path", "role", "body"), ROUTES)
def test_a_slow_body_is_answered_408_in_time(
    slow_api: Api, method: str, path: str, role: str, body: bytes
) -> None:
    async def send() -> tuple[httpx.Response, float]:
        started = time.monotonic()
        response = await slow_api.client.request(
            method, path, headers=auth(role), content=trickle(body)
        )
        return response, time.monotonic() - started

    response, seconds = slow_api.portal.call(send)
    assert response.status_code == 408, response.text
    assert_envelope(response.json(), "body.timeout")
    assert TIMEOUT_S - 0.05 <= seconds < TIMEOUT_S + 1.0
    assert response.headers["connection"] == "close"
    assert slow_api.get("/v1/cdrs/c1", role="admin").status_code == 404  # nothing stored


def test_slow_clients_do_not_hold_every_admission_slot(slow_api: Api) -> None:
    async def run() -> tuple[list[int], list[int], int]:
        slow = [
            asyncio.create_task(
                slow_api.client.post(
                    "/v1/cdrs", headers=auth("switch"), content=trickle(orjson.dumps([cdr("s")]))
                )
            )
            for _ in range(4)  # every slot of the worker
        ]
        await asyncio.sleep(0.2)
        during = await slow_api.client.post("/v1/quote", headers=auth("agent"), json=QUOTE)
        refused = [(await task).status_code for task in slow]
        after = [
            (await slow_api.client.post("/v1/quote", headers=auth("agent"), json=QUOTE)).status_code
            for _ in range(3)
        ]
        return refused, after, during.status_code

    refused, after, during = slow_api.portal.call(run)
    assert during == 503  # all four slots held: the bound is what frees them
    assert refused == [408] * 4
    assert after == [200] * 3
