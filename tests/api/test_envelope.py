"""SPEC §6.2: every error of every endpoint has the one envelope; every timestamp an offset."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.api.test_cdrs import cdr
from tests.conftest_db import Api


def assert_envelope(body: dict[str, Any], code: str) -> None:
    assert set(body) <= {"error", "message", "field"}, body
    assert body["error"] == code
    assert isinstance(body["message"], str)
    assert body["message"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"after_id": "x"}, "after_id"),
        ({"limit": "2.5"}, "limit"),
        ({"after_id": 2**63}, "after_id"),
    ],
)
def test_query_validation_errors_name_the_field(api: Api, params: Any, field: str) -> None:
    response = api.get("/v1/suspense", role="admin", params=params)
    assert response.status_code == 422
    body = response.json()
    assert_envelope(body, "input.invalid")
    assert body["field"] == field
    assert field in body["message"]


def test_body_validation_errors_name_the_field(api: Api) -> None:
    response = api.put(
        "/v1/subscribers/13800138000", role="admin", json={"plan": "gotone", "packages": [1]}
    )
    assert response.status_code == 422
    assert_envelope(response.json(), "input.invalid")
    assert response.json()["field"] == "packages[0]"
    huge = api.post("/v1/suspense/recycle", role="admin", json={"ids": [2**64]})
    assert huge.status_code == 422
    assert huge.json()["field"] == "ids[0]"
    not_an_object = api.post("/v1/rerate", role="admin", json=[])
    assert not_an_object.status_code == 422
    assert_envelope(not_an_object.json(), "input.invalid")


def test_domain_errors_name_the_field(api: Api) -> None:
    response = api.put("/v1/subscribers/13800138000", role="admin", json={"plan": "nope"})
    assert response.status_code == 422
    assert response.json()["field"] == "plan"


def test_unknown_path_and_wrong_method(api: Api) -> None:
    missing = api.get("/v1/nothing-here", role="admin")
    assert missing.status_code == 404
    assert_envelope(missing.json(), "not_found")
    wrong = api.request("DELETE", "/v1/quote", role="admin")
    assert wrong.status_code == 405
    assert_envelope(wrong.json(), "method_not_allowed")
    assert wrong.headers["allow"] == "POST"
    assert "POST" in wrong.json()["message"]


def test_domain_404_and_401_keep_the_envelope(api: Api) -> None:
    assert_envelope(api.get("/v1/cdrs/nope", role="agent").json(), "not_found")
    assert_envelope(api.get("/v1/rerate/nope", role="admin").json(), "not_found")
    assert_envelope(api.get("/v1/cdrs/nope").json(), "auth.unauthenticated")


def test_openapi_documents_the_envelope_not_fastapi_detail(api: Api) -> None:
    spec = api.get("/openapi.json").json()
    assert "HTTPValidationError" not in str(spec)
    suspense = spec["paths"]["/v1/suspense"]["get"]["responses"]
    assert suspense["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert suspense["503"]["headers"]["Retry-After"]
    assert "503" not in spec["paths"]["/healthz"]["get"]["responses"]
    assert set(spec["components"]["schemas"]["ErrorBody"]["properties"]) == {
        "error",
        "message",
        "field",
    }


def _offsets(value: Any, key: str = "") -> list[str]:
    """Every timestamp-looking string in an answer, by key."""
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _offsets(v, k)]
    if isinstance(value, list):
        return [t for v in value for t in _offsets(v, key)]
    stamp_keys = ("from", "to", "effective_from", "effective_until")
    if isinstance(value, str) and (key.endswith("_at") or key in stamp_keys):
        return [value]
    return []


def test_every_timestamp_in_every_answer_carries_its_offset(api: Api) -> None:
    api.post("/v1/cdrs", role="switch", json=[cdr("t1"), cdr("t2", callee="x")])
    api.put("/v1/subscribers/13800138000", role="admin", json={"plan": "gotone"})
    job = api.post(
        "/v1/rerate",
        role="admin",
        json={"from": "2010-01-01T00:00:00+08:00", "to": "2011-01-01T00:00:00+08:00"},
    ).json()
    answers = [
        api.get("/v1/cdrs/t1", role="agent").json(),
        api.get("/v1/subscribers/13800138000", role="agent").json(),
        api.get("/v1/suspense", role="admin").json(),
        api.get("/v1/audit", role="admin").json(),
        api.get("/v1/tariffs", role="agent").json(),
        api.get(f"/v1/rerate/{job['id']}", role="admin").json(),
        job,
    ]
    stamps = [stamp for answer in answers for stamp in _offsets(answer)]
    assert len(stamps) >= 10
    for stamp in stamps:
        assert datetime.fromisoformat(stamp).tzinfo is not None, stamp
