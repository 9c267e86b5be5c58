"""SPEC §8, one rule everywhere: a request with more than one Authorization header is
refused 401 in the one error envelope, whichever way it is served and whatever the keys."""

from __future__ import annotations

import functools

import httpx
import pytest

from tests.api.test_cdrs import cdr
from tests.api.test_envelope import assert_envelope
from tests.conftest_db import KEYS, Api

QUOTE = {k: v for k, v in cdr("q").items() if k != "id"}

# (method, path, JSON body)
ROUTES = [
    ("POST", "/v1/quote", QUOTE),  # served ahead of the middleware
    ("POST", "/v1/cdrs", [cdr("c1")]),  # served ahead of the middleware
    ("GET", "/v1/audit", None),
    ("GET", "/v1/suspense", None),
    ("GET", "/v1/cdrs/c1", None),
    ("PUT", "/v1/subscribers/13800138000", {"plan": "gotone"}),  # a body the guard reads
    ("GET", "/metrics", None),
]


def send(api: Api, method: str, path: str, body: object, keys: list[str]) -> httpx.Response:
    headers = [("Authorization", f"Bearer {key}") for key in keys]
    call = functools.partial(api.client.request, method, path, headers=headers, json=body)
    return api.portal.call(call)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize(
    "keys",
    [
        [KEYS["admin"], KEYS["agent"]],
        [KEYS["agent"], KEYS["admin"]],
        [KEYS["admin"], KEYS["admin"]],
        [KEYS["switch"], "not-a-key"],
    ],
)
def test_two_authorization_headers_are_refused(
    api: Api, method: str, path: str, body: object, keys: list[str]
) -> None:
    response = send(api, method, path, body, keys)
    assert response.status_code == 401, response.text
    assert_envelope(response.json(), "auth.unauthenticated")
    assert "one Authorization header" in response.json()["message"]
    # nothing was done in its name
    assert api.get("/v1/audit", role="admin").json()["items"] == []
    assert api.get("/v1/cdrs/c1", role="admin").status_code == 404


def test_one_authorization_header_still_works(api: Api) -> None:
    assert send(api, "POST", "/v1/quote", QUOTE, [KEYS["agent"]]).status_code == 200
    assert send(api, "GET", "/v1/audit", None, [KEYS["admin"]]).status_code == 200
