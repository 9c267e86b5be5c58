"""SPEC §8: every read of customer data is audited, attempts included: admin's suspense
list (records as received, full numbers in them) and agent reads that end in 404 or 422."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.api.test_cdrs import cdr
from tests.conftest_db import Api


def audit(api: Api) -> list[tuple[Any, ...]]:
    rows = api.get("/v1/audit", role="admin").json()["items"]
    return [(r["role"], r["action"], r["subject"], r["detail"]) for r in rows]


def test_the_suspense_list_is_audited(api: Api) -> None:
    api.post("/v1/cdrs", role="switch", json=[cdr("s1", callee="x"), cdr("s2", callee="y")])
    page = api.get("/v1/suspense", role="admin").json()["items"]
    first, last = page[0]["id"], page[-1]["id"]
    assert api.get("/v1/suspense", role="admin", params={"after_id": last}).json()["items"] == []
    assert audit(api) == [
        (
            "admin",
            "suspense.read",
            None,
            f"after_id=0 limit=100 resolved=False: ids {first}-{last}",
        ),
        ("admin", "suspense.read", None, f"after_id={last} limit=100 resolved=False: none"),
    ]


def test_reads_that_end_in_404_are_audited(api: Api) -> None:
    api.post("/v1/cdrs", role="switch", json=[cdr("in-s", callee="x")])
    long_id = "L" * 300 + "\x07"
    for path in (
        "/v1/cdrs/never-sent",
        "/v1/cdrs/in-s",
        "/v1/cdrs/" + quote(long_id, safe=""),
        "/v1/subscribers/13912345678",
    ):
        assert api.get(path, role="agent").status_code == 404, path
    assert audit(api) == [
        ("agent", "cdr.read", None, "never-sent -> not_found"),
        ("agent", "cdr.read", None, "in-s -> cdr.in_suspense"),
        ("agent", "cdr.read", None, "L" * 100 + " -> not_found"),
        ("agent", "subscriber.read", "13912345678", "-> not_found"),
    ]


def test_a_usage_read_refused_for_its_month_is_audited(api: Api) -> None:
    path = "/v1/subscribers/13800138000/usage"
    assert api.get(path, role="agent", params={"month": "9999-12"}).status_code == 422
    assert api.get(path, role="agent", params={"month": "2010-03"}).status_code == 200
    assert audit(api) == [
        ("agent", "usage.read", "13800138000", "9999-12 -> input.invalid"),
        ("agent", "usage.read", "13800138000", "2010-03"),
    ]


def test_a_failed_put_still_writes_nothing(api: Api) -> None:
    refused = api.put("/v1/subscribers/13800138000", role="admin", json={"plan": "nope"})
    assert refused.status_code == 422
    assert audit(api) == []
    assert api.get("/v1/subscribers/13800138000", role="admin").status_code == 404
