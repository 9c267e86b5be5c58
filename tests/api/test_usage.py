"""GET /v1/subscribers/{msisdn}/usage: a subscriber's month (详单), on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from service.flows.usage import month_window
from tests.conftest import TARIFFS, write_correction
from tests.conftest_db import Api

SUBSCRIBER = "13800138000"  # a Beijing (010) number range
FRIEND = "13912345678"  # a Changzhou (0519) number range


def call(record_id: str, start: str, callee: str, duration_s: int, **extra: Any) -> dict[str, Any]:
    """A CDR of the registered subscriber (plan and packages from the registry)."""
    return {
        "id": record_id,
        "caller": SUBSCRIBER,
        "callee": callee,
        "start": start,
        "duration_s": duration_s,
        **extra,
    }


# Charges on gotone at home with 长话夜聊包 (SPEC §5): LD 6 fen / 6 s, local 40 fen / min.
CDRS = [
    call("feb-ld", "2010-02-10T10:00:00+08:00", "02188001234", 60),  # 60
    call("feb-last", "2010-02-28T15:59:59Z", "88001234", 30),  # 23:59:59 +08:00: Feb, 40
    call("mar-first", "2010-02-28T16:30:00Z", "88001234", 61),  # 00:30 +08:00: March, 80
    call("mar-ld", "2010-03-01T10:00:00+08:00", FRIEND, 125),  # 126
    call("mar-in", "2010-03-03T10:00:00+08:00", FRIEND, 200, type="terminating"),  # 0
    call("mar-night", "2010-03-05T23:30:00+08:00", "02188001234", 300),  # 长话夜聊包: 0
    call("mar-rerated", "2010-03-20T10:00:00+08:00", "02188001234", 125),  # 126 -> 105
    {  # another caller's call: not on the subscriber's bill
        "id": "other",
        "caller": FRIEND,
        "callee": "02188001234",
        "start": "2010-03-02T10:00:00+08:00",
        "duration_s": 60,
        "plan": "gotone",
    },
]


RERATE_WINDOW = {"from": "2010-03-15T00:00:00+08:00", "to": "2010-04-01T00:00:00+08:00"}


def write_corrected_tariffs(directory: Path) -> Path:
    """The bundled tariffs plus a correction from 2010-03-15: LD 5 fen / 6 s."""
    shutil.copytree(TARIFFS, directory, dirs_exist_ok=True)
    write_correction(
        directory,
        "cmcc-2010",
        "cmcc-2010-fix",
        starts=RERATE_WINDOW["from"],
        domestic_per_6s=5,
    )
    return directory


@pytest.fixture(scope="module")
def corrected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corrected_tariffs(tmp_path_factory.mktemp("tariffs"))


@pytest.fixture
def billed(api: Api, corrected: Path) -> Api:
    """The subscriber registered, two months of CDRs ingested, the late-March one re-rated."""
    entry = {"plan": "gotone", "packages": ["ld_night"]}
    assert api.put(f"/v1/subscribers/{SUBSCRIBER}", role="admin", json=entry).status_code == 200
    response = api.post("/v1/cdrs", role="switch", json=CDRS)
    assert response.json()["counts"] == {"rated": len(CDRS), "duplicate": 0, "rejected": 0}
    api.publish(corrected / "cmcc-2010-fix.toml")
    job = api.post("/v1/rerate", role="admin", json=RERATE_WINDOW)
    assert job.status_code == 202, job.text
    done = api.get(f"/v1/rerate/{job.json()['id']}", role="admin").json()
    assert (done["status"], done["changed"], done["delta_fen"]) == ("done", 1, -21)
    return api


def usage(api: Api, month: str, role: str = "agent", **params: Any) -> dict[str, Any]:
    response = api.get(
        f"/v1/subscribers/{SUBSCRIBER}/usage", role=role, params={"month": month, **params}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_march_totals_come_from_current_ratings(billed: Api) -> None:
    body = usage(billed, "2010-03")
    assert body["period_from"] == "2010-03-01T00:00:00+08:00"
    assert body["period_to"] == "2010-04-01T00:00:00+08:00"
    subscriber = body["subscriber"]
    assert subscriber["registered"] is True
    assert (subscriber["plan"], subscriber["brand"]) == ("gotone", "全球通")
    assert (subscriber["home_area"], subscriber["home_city"]) == ("010", "北京")
    assert subscriber["packages"] == [
        {"id": "ld_night", "name": "长话夜聊包", "monthly_fee_fen": 500}
    ]
    summary = {row["call_class"]: row for row in body["summary"]}
    assert summary == {
        "domestic_ld": {
            "call_class": "domestic_ld",
            "calls": 3,
            "duration_s": 550,
            "minutes": 11,
            "charge_fen": 126 + 0 + 105,
        },
        "incoming": {
            "call_class": "incoming",
            "calls": 1,
            "duration_s": 200,
            "minutes": 4,
            "charge_fen": 0,
        },
        "local": {
            "call_class": "local",
            "calls": 1,
            "duration_s": 61,
            "minutes": 2,
            "charge_fen": 80,
        },
    }
    assert (body["call_count"], body["calls_fen"]) == (5, 311)
    assert (body["package_fees_fen"], body["total_fen"]) == (500, 811)
    calls = body["calls"]
    assert [c["id"] for c in calls] == ["mar-first", "mar-ld", "mar-in", "mar-night", "mar-rerated"]
    assert calls[0]["start"] == "2010-03-01T00:30:00+08:00"
    rerated = calls[-1]
    assert (rerated["charge_fen"], rerated["ratings"], rerated["tariff"]) == (
        105,
        2,
        "cmcc-2010-fix",
    )
    assert [c["charge_fen"] for c in calls] == [80, 126, 0, 0, 105]
    assert sum(c["charge_fen"] for c in calls) == body["calls_fen"]
    assert body["next_offset"] is None


def test_february_is_its_own_month(billed: Api) -> None:
    body = usage(billed, "2010-02")
    assert [c["id"] for c in body["calls"]] == ["feb-ld", "feb-last"]
    assert body["calls"][1]["start"] == "2010-02-28T23:59:59+08:00"
    assert {row["call_class"]: row["charge_fen"] for row in body["summary"]} == {
        "domestic_ld": 60,
        "local": 40,
    }
    assert (body["calls_fen"], body["package_fees_fen"], body["total_fen"]) == (100, 500, 600)
    empty = usage(billed, "2010-05")
    assert (empty["summary"], empty["calls"], empty["calls_fen"]) == ([], [], 0)
    assert empty["total_fen"] == 500  # the package's monthly fee is due with or without calls


def test_other_parties_are_masked_for_agents_not_for_admin(billed: Api) -> None:
    response = billed.get(f"/v1/subscribers/{SUBSCRIBER}/usage?month=2010-03", role="agent")
    assert FRIEND not in response.text
    assert "88001234" not in response.text
    parties = [c["other_party"] for c in response.json()["calls"]]
    assert parties[:3] == ["88****34", "139****5678", "139****5678"]
    admin = usage(billed, "2010-03", role="admin")
    assert [c["other_party"] for c in admin["calls"]][:2] == ["88001234", FRIEND]


def test_the_read_is_audited(billed: Api) -> None:
    usage(billed, "2010-03")
    audit = billed.get("/v1/audit", role="admin").json()["items"]
    reads = [row for row in audit if row["action"] == "usage.read"]
    assert [(r["role"], r["subject"], r["detail"]) for r in reads] == [
        ("agent", SUBSCRIBER, "2010-03")
    ]


def test_paging(billed: Api) -> None:
    first = usage(billed, "2010-03", limit=2)
    assert [c["id"] for c in first["calls"]] == ["mar-first", "mar-ld"]
    assert (first["next_offset"], first["total_fen"]) == (2, 811)
    last = usage(billed, "2010-03", offset=4, limit=2)
    assert [c["id"] for c in last["calls"]] == ["mar-rerated"]
    assert last["next_offset"] is None


def test_unregistered_caller_shows_its_calls_without_plan(billed: Api) -> None:
    response = billed.get(
        f"/v1/subscribers/{FRIEND}/usage", role="agent", params={"month": "2010-03"}
    )
    body = response.json()
    assert body["subscriber"]["registered"] is False
    assert (body["subscriber"]["brand"], body["subscriber"]["home_area"]) == (None, "0519")
    assert (body["call_count"], body["calls_fen"], body["package_fees_fen"]) == (1, 60, 0)


@pytest.mark.parametrize("month", ["2010-13", "2010-3", "march", "2010-03-01", "1969-12"])
def test_bad_month_is_a_422_envelope(api: Api, month: str) -> None:
    response = api.get(f"/v1/subscribers/{SUBSCRIBER}/usage", role="agent", params={"month": month})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "input.invalid"
    assert "YYYY-MM" in body["message"]


def test_bad_number_and_roles(api: Api) -> None:
    bad = api.get("/v1/subscribers/12345/usage?month=2010-03", role="agent")
    assert (bad.status_code, bad.json()["error"]) == (422, "input.invalid")
    assert api.get(f"/v1/subscribers/{SUBSCRIBER}/usage").status_code == 401
    assert api.get(f"/v1/subscribers/{SUBSCRIBER}/usage", role="switch").status_code == 403


def test_default_month_is_the_current_month_in_china_time(api: Api) -> None:
    # 2010-03-31T16:30Z is already April 1st in +08:00
    month, lo, hi = month_window(None, now=datetime(2010, 3, 31, 16, 30, tzinfo=UTC))
    assert month == "2010-04"
    assert (hi - lo) == 30 * 86_400
    assert datetime.fromtimestamp(lo, UTC) == datetime(2010, 3, 31, 16, 0, tzinfo=UTC)
    body = api.get(f"/v1/subscribers/{SUBSCRIBER}/usage", role="agent").json()
    assert body["month"] == month_window(None)[0]


@pytest.mark.parametrize(
    ("month", "says"),
    [
        ("9999-12", "9999-12"),
        ("9999-11", None),  # in the open-ended version's window: an empty month
        ("1970-01", "from 2008-03 on"),
        ("2008-02", "from 2008-03 on"),
        ("2008-03", None),
    ],
)
def test_a_month_outside_the_tariffs_is_a_422_naming_the_field(
    api: Api, month: str, says: str | None
) -> None:
    response = api.get(f"/v1/subscribers/{SUBSCRIBER}/usage", role="agent", params={"month": month})
    if says is None:
        assert response.status_code == 200, response.text
        assert response.json()["call_count"] == 0
        return
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["error"], body["field"]) == ("input.invalid", "month")
    assert says in body["message"]
