"""Suspense and recycle, the subscriber registry, default plan."""

from __future__ import annotations

import pytest

from tests.api.test_cdrs import cdr, table_counts
from tests.conftest_db import Api


def unregistered(record_id: str, **overrides: object) -> dict[str, object]:
    """A CDR of a caller without a plan: rejected until the caller is registered."""
    record = cdr(record_id, **overrides)
    del record["plan"]
    return record


def test_rejected_record_is_kept_whole_and_recycled_after_registration(api: Api) -> None:
    batch = [unregistered("u1"), unregistered("u2", duration_s=60), cdr("ok")]
    results = api.post("/v1/cdrs", role="switch", json=batch).json()["results"]
    assert [r["result"] for r in results] == ["rejected", "rejected", "rated"]
    assert results[0]["code"] == "plan.missing"
    # a retry of the batch does not duplicate the suspense rows
    api.post("/v1/cdrs", role="switch", json=batch)
    page = api.get("/v1/suspense", role="admin").json()
    assert [s["record_id"] for s in page["items"]] == ["u1", "u2"]
    assert page["items"][0]["code"] == "plan.missing"
    assert (
        page["items"][0]["raw"] == '{"id":"u1","caller":"13800138000","callee":"02188001234",'
        '"start":"2010-03-01T10:00:00+08:00","duration_s":125}'
    )

    still = api.post("/v1/suspense/recycle", role="admin", json={}).json()
    assert still["counts"] == {"rated": 0, "duplicate": 0, "rejected": 2}

    put = api.put("/v1/subscribers/+8613800138000", role="admin", json={"plan": "mzone"})
    assert put.status_code == 200
    assert put.json()["msisdn"] == "13800138000"
    first = page["items"][0]["id"]
    recycled = api.post("/v1/suspense/recycle", role="admin", json={"ids": [first]}).json()
    assert recycled["counts"] == {"rated": 1, "duplicate": 0, "rejected": 0}
    assert recycled["results"][0]["record_id"] == "u1"
    assert recycled["results"][0]["charge_fen"] == 126
    rest = api.post("/v1/suspense/recycle", role="admin", json={}).json()
    assert [r["record_id"] for r in rest["results"]] == ["u2"]
    assert api.get("/v1/suspense", role="admin").json()["items"] == []
    history = api.get("/v1/suspense?include_resolved=true", role="admin").json()["items"]
    assert [s["resolution"] for s in history] == ["rated", "rated"]
    stored = api.get("/v1/cdrs/u1", role="admin").json()
    assert stored["ratings"][0]["source"] == "recycle"
    assert table_counts(api) == (3, 3, 2)
    # the switch retries once more: now every record is a duplicate
    retry = api.post("/v1/cdrs", role="switch", json=batch).json()
    assert retry["counts"] == {"rated": 0, "duplicate": 3, "rejected": 0}


def test_recycle_finds_record_stored_meanwhile(api: Api) -> None:
    api.post("/v1/cdrs", role="switch", json=[unregistered("d1"), unregistered("d2")])
    api.put("/v1/subscribers/13800138000", role="admin", json={"plan": "gotone"})
    api.post("/v1/cdrs", role="switch", json=[unregistered("d1")])  # the switch's retry
    api.post("/v1/cdrs", role="switch", json=[cdr("d2", duration_s=7)])  # other content
    recycled = api.post("/v1/suspense/recycle", role="admin", json={}).json()
    assert [(r["record_id"], r["result"]) for r in recycled["results"]] == [
        ("d1", "duplicate"),
        ("d2", "rejected"),
    ]
    assert recycled["results"][0]["charge_fen"] == 126
    assert recycled["results"][1]["code"] == "id.conflict"
    assert [s["code"] for s in api.get("/v1/suspense", role="admin").json()["items"]] == [
        "id.conflict"
    ]


def test_default_plan_rates_unregistered_callers(api: Api) -> None:
    api.settings.default_plan = "easyown"
    results = api.post("/v1/cdrs", role="switch", json=[unregistered("x")]).json()["results"]
    assert results[0]["result"] == "rated"


def test_subscriber_registry_roundtrip_and_audit(api: Api) -> None:
    body = {"plan": "gotone", "home_area": "021", "packages": ["ld_night"]}
    stored = api.put("/v1/subscribers/13800138000", role="admin", json=body).json()
    assert stored["home_area"] == "021"  # dialing form (SPEC §9)
    assert stored["packages"] == ["ld_night"]
    read = api.get("/v1/subscribers/13800138000", role="agent")
    assert read.status_code == 200
    assert read.json()["plan"] == "gotone"
    audit = api.get("/v1/audit", role="admin").json()["items"]
    assert [(a["action"], a["subject"]) for a in audit] == [
        ("subscriber.write", "13800138000"),
        ("subscriber.read", "13800138000"),
    ]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/subscribers/12345", {"plan": "gotone"}),
        ("/v1/subscribers/13800138000", {"plan": "nope"}),
        ("/v1/subscribers/13800138000", {"plan": "gotone", "packages": ["nope"]}),
        ("/v1/subscribers/13800138000", {"plan": "gotone", "home_area": "0000"}),
        ("/v1/subscribers/13800138000", {"plan": "gotone", "home_area": "+1"}),
        ("/v1/subscribers/13800138000", {"packages": []}),
    ],
)
def test_subscriber_put_rejects_bad_entries(api: Api, path: str, body: object) -> None:
    assert api.put(path, role="admin", json=body).status_code == 422


def test_subscriber_roles_and_not_found(api: Api) -> None:
    path = "/v1/subscribers/13800138000"
    assert api.put(path, role="agent", json={"plan": "gotone"}).status_code == 403
    assert api.get(path, role="agent").status_code == 404
    assert api.get(path, role="switch").status_code == 403
    assert api.get(path).status_code == 401


def test_suspense_is_admin_only(api: Api) -> None:
    assert api.get("/v1/suspense", role="agent").status_code == 403
    assert api.post("/v1/suspense/recycle", role="switch", json={}).status_code == 403
