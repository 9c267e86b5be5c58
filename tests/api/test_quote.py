"""POST /v1/quote: golden cases, rejections, auth, audit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import create_engine, pool, text

from service.rating.scalar import Rater
from tests.conftest import golden_cases
from tests.conftest_db import KEYS, Api

GOLDEN = golden_cases()
AGENT = {"Authorization": f"Bearer {KEYS['agent']}"}
REQUEST = {
    "caller": "13800138000",
    "callee": "02188001234",
    "start": "2010-03-01T10:00:00+08:00",
    "duration_s": 125,
    "plan": "gotone",
}


def test_golden_cases_through_http(api: Api) -> None:
    for case in GOLDEN:
        response = api.post("/v1/quote", role="agent", json=case["request"])
        body: dict[str, Any] = response.json()
        if case["expect"].get("rejected"):
            assert response.status_code == 422, case["name"]
            assert set(body) == {"error", "message", "field"}, body  # the one envelope
            assert body["error"].startswith(body["field"] + "."), case["name"]
        else:
            assert response.status_code == 200, (case["name"], body)
            for key, value in case["expect"].items():
                assert body[key] == value, (case["name"], key)
            assert body["charge_fen"] == sum(item["amount_fen"] for item in body["items"])


def test_quote_writes_one_audit_row_each(api: Api) -> None:
    api.post("/v1/quote", role="agent", json=REQUEST)
    api.post("/v1/quote", role="admin", json={**REQUEST, "callee": "0218800ABC"})
    rows = api.get("/v1/audit", role="admin").json()["items"]
    assert [(r["action"], r["role"], r["subject"]) for r in rows] == [
        ("quote", "agent", "13800138000"),
        ("quote", "admin", "13800138000"),
    ]
    assert all(len(r["key_id"]) == 12 for r in rows)


def test_quote_uses_registry_when_request_names_no_plan(api: Api) -> None:
    request = {k: v for k, v in REQUEST.items() if k != "plan"}
    missing = api.post("/v1/quote", role="agent", json=request)
    assert missing.status_code == 422
    assert missing.json()["error"] == "plan.missing"
    api.put("/v1/subscribers/13800138000", role="admin", json={"plan": "easyown_easy"})
    quoted = api.post("/v1/quote", role="agent", json=request)
    assert quoted.status_code == 200
    assert quoted.json()["charge_fen"] == 180  # per-minute plan: 3 min x 60


def test_an_unknown_plan_is_answered_with_the_plans_there_are(api: Api, rater: Rater) -> None:
    in_force = rater.book.tariffs[-1]
    refused = api.post("/v1/quote", role="agent", json={**REQUEST, "plan": "GoTone"})
    assert refused.status_code == 422
    assert refused.json()["error"] == "plan.unknown"
    plans = ", ".join(in_force.plans)
    assert refused.json()["message"] == (
        f"plan is not in the tariff in force ({in_force.version} has {plans})"
    )
    registry = api.put("/v1/subscribers/13800138000", role="admin", json={"plan": "GoTone"})
    assert registry.status_code == 422
    assert registry.json()["field"] == "plan"
    assert registry.json()["message"] == (
        "plan 'GoTone' is in no tariff version "
        "(plans: easyown, easyown_easy, easyown_home, gotone, mzone)"
    )


def test_quote_spec_9_caller_area_and_timestamp_forms(api: Api) -> None:
    outside = {**REQUEST, "caller": "13000101234", "start": "2010-03-01 10:00:00+08:00"}
    refused = api.post("/v1/quote", role="agent", json=outside)
    assert refused.status_code == 422
    assert refused.json()["error"] == "caller.not_china_mobile"
    # The registry may hold a number outside China Mobile; "21" is stored and shown as "021".
    body = {"plan": "gotone", "home_area": "21"}
    stored = api.put("/v1/subscribers/13000101234", role="admin", json=body).json()
    assert stored["home_area"] == "021"
    assert api.get("/v1/subscribers/13000101234", role="agent").json()["home_area"] == "021"
    quoted = api.post("/v1/quote", role="agent", json={**outside, "visited_area": "21"})
    assert quoted.status_code == 200, quoted.json()
    assert (quoted.json()["call_class"], quoted.json()["roaming"]) == ("local", "home")
    assert quoted.json()["charge_fen"] == 120  # R1 gotone: 3 min x 40


@pytest.mark.parametrize(
    ("role", "status"), [(None, 401), ("switch", 403), ("ops", 403), ("agent", 200)]
)
def test_quote_roles(api: Api, role: str | None, status: int) -> None:
    response = api.post("/v1/quote", role=role, json=REQUEST)
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "auth.unauthenticated"


def test_wrong_key_is_401(api: Api) -> None:
    response = api.post("/v1/quote", json=REQUEST, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


def test_quote_body_not_json_is_400(api: Api) -> None:
    response = api.post(
        "/v1/quote",
        role="agent",
        content=b"{caller: 1",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "body.not_json"


def test_quote_body_not_an_object_is_422(api: Api) -> None:
    response = api.post("/v1/quote", role="agent", json=[REQUEST])
    assert response.status_code == 422
    assert response.json()["error"] == "record.invalid"


def test_concurrent_quotes_each_leave_one_audit_row(api: Api) -> None:
    requests = [{**REQUEST, "caller": f"138{i:08d}", "duration_s": 1 + i} for i in range(24)] + [
        {**REQUEST, "caller": "1380000000X"}
    ]  # rejected quotes are audited too

    async def send_all() -> list[int]:
        responses = await asyncio.gather(
            *(api.client.post("/v1/quote", json=body, headers=AGENT) for body in requests)
        )
        return [response.status_code for response in responses]

    statuses = api.portal.call(send_all)
    assert statuses == [200] * 24 + [422]
    rows = api.get("/v1/audit", role="admin", params={"limit": 1000}).json()["items"]
    assert sorted(r["subject"] or "" for r in rows) == sorted(
        [f"138{i:08d}" for i in range(24)] + ["13******00X"]  # masked: not a checked number
    )
    assert {r["action"] for r in rows} == {"quote"}


def test_no_quote_is_answered_when_its_audit_row_cannot_be_written(api: Api) -> None:
    engine = create_engine(api.settings.effective_database_url, poolclass=pool.NullPool)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE audit_log RENAME TO audit_log_away"))
    engine.dispose()
    response = api.post("/v1/quote", role="agent", json=REQUEST)
    assert response.status_code == 500
    assert "charge_fen" not in response.text


def test_a_rejected_quote_answers_the_one_error_envelope(api: Api) -> None:
    response = api.post("/v1/quote", role="agent", json={**REQUEST, "callee": "0218800ABC"})
    assert response.status_code == 422
    assert response.json() == {
        "error": "callee.invalid_characters",
        "message": response.json()["message"],
        "field": "callee",
    }
    assert response.json()["message"]
    spec = api.get("/openapi.json").json()
    invalid = spec["paths"]["/v1/quote"]["post"]["responses"]["422"]
    assert invalid["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    assert "Rejection" not in spec["components"]["schemas"]
