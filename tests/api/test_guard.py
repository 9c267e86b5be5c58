"""Bodies FastAPI reads itself (registry, recycle, re-rating): the key is checked and the
size bounded before the body is read (SPEC §6.2)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from service.api.guard import SMALL_BODY_BYTES
from tests.conftest_db import Api

ROUTES = [
    ("PUT", "/v1/subscribers/13800138000"),
    ("POST", "/v1/suspense/recycle"),
    ("POST", "/v1/rerate"),
]


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_no_key_is_refused_before_the_body_is_read(api: Api, method: str, url: str) -> None:
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(64):
            sent += 1
            yield b"x" * 65_536

    for headers in ({}, {"Authorization": "Bearer not-a-key"}):
        answer = api.request(method, url, headers=headers, content=body())
        assert answer.status_code == 401
        assert answer.json()["error"] == "auth.unauthenticated"
    assert sent <= 2  # not the 4 MiB offered: at most what the transport pushed first


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_a_large_body_is_413_in_the_envelope(api: Api, method: str, url: str) -> None:
    declared = api.request(method, url, role="admin", content=b" " * (SMALL_BODY_BYTES + 1))
    assert declared.status_code == 413
    assert declared.json()["error"] == "body.too_large"

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        yield b"{" + b" " * SMALL_BODY_BYTES
        yield b"}"

    chunked = api.request(method, url, role="admin", content=streamed())
    assert chunked.status_code == 413
    assert chunked.json()["error"] == "body.too_large"


def test_a_small_body_still_reaches_the_route(api: Api) -> None:
    body = {"plan": "gotone", "packages": []}
    stored = api.put("/v1/subscribers/13800138000", role="admin", json=body)
    assert stored.status_code == 200
    assert stored.json()["plan"] == "gotone"
    assert api.put("/v1/subscribers/13800138000", role="agent", json=body).status_code == 403
