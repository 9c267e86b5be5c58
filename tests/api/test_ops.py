"""Tariffs, metrics, health, OpenAPI."""

from __future__ import annotations

from tests.api.test_cdrs import cdr
from tests.conftest_db import Api


def test_tariffs(api: Api) -> None:
    versions = api.get("/v1/tariffs", role="agent").json()
    assert [v["version"] for v in versions] == ["cmcc-2009", "cmcc-2010"]
    assert versions[0]["effective_until"] is not None
    assert api.get("/v1/tariffs", role="switch").status_code == 403


def test_metrics_have_bounded_labels_and_no_numbers(api: Api) -> None:
    api.post("/v1/cdrs", role="switch", json=[cdr("a"), cdr("b", callee="x")])
    api.get("/v1/subscribers/13800138000", role="agent")
    response = api.get("/metrics", role="ops")
    assert response.status_code == 200
    text = response.text
    assert 'callrate_cdrs_total{result="rated"} 1.0' in text
    assert 'callrate_cdrs_total{result="rejected"} 1.0' in text
    assert 'callrate_charged_fen_total{call_class="domestic_ld"} 126.0' in text
    assert "callrate_rating_seconds_count 1.0" in text  # one batch: one mean per record
    assert 'callrate_suspense_records{code="callee.invalid_characters"} 1.0' in text
    assert 'route="/v1/subscribers/{msisdn}"' in text
    assert "13800138000" not in text
    assert "88001234" not in text
    assert api.get("/metrics", role="agent").status_code == 403


def test_health(api: Api) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ok"}


def test_openapi_describes_bodies_and_errors(api: Api) -> None:
    spec = api.get("/openapi.json").json()
    post_cdrs = spec["paths"]["/v1/cdrs"]["post"]
    assert set(post_cdrs["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    assert {"400", "401", "403", "413", "422"} <= set(post_cdrs["responses"])
    assert "422" in spec["paths"]["/v1/quote"]["post"]["responses"]
    assert api.get("/docs").status_code == 200


def test_charged_fen_sums_a_batch_per_call_class(api: Api) -> None:
    batch = [cdr("a"), cdr("b", duration_s=61), cdr("c", callee="88001234"), cdr("d", callee="x")]
    answer = api.post("/v1/cdrs", role="switch", json=batch).json()
    charges = [r.get("charge_fen") for r in answer["results"]]
    text = api.get("/metrics", role="ops").text
    ld, local = charges[0] + charges[1], charges[2]
    assert f'callrate_charged_fen_total{{call_class="domestic_ld"}} {float(ld)}' in text
    assert f'callrate_charged_fen_total{{call_class="local"}} {float(local)}' in text
    assert "callrate_rating_seconds_count 1.0" in text  # one per batch, its mean per call
