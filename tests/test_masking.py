"""No full number of a third party to an agent or in a log line (SPEC §8)."""

from __future__ import annotations

import logging

import pytest

from service.security import install_log_masking, mask_numbers, mask_text
from tests.api.test_cdrs import cdr
from tests.conftest_db import Api


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("13912345678", "139****5678"),
        ("+8613912345678", "+86*******5678"),
        ("008613912345678", "008********5678"),
        ("call 139 1234 5678 now", "call 139****5678 now"),
        ("02188001234", "021****1234"),
        ("88001234", "88****34"),
        ("10086", "10086"),  # service numbers stay
        ("2010-03-01T10:00:00+08:00", "2010-03-01T10:00:00+08:00"),
        ("id-123456", "id-123456"),
        # whatever separates the digits (issue 23)
        ("139-1234-5678", "139****5678"),
        ("136.9876.5432", "136****5432"),
        ("150  1111  2222", "150****2222"),
        ("(135)1122-3344", "(135****3344"),
        ("tel\t139\t1234\t5678.", "tel\t139****5678."),
        ("139\n1234\n5678", "139****5678"),
        ("+86 (139) 1234-5678", "+86*******5678"),
        ("0086-10-8800 1234", "008*******1234"),
        ("139 / 1234 / 5678", "139****5678"),
        ("139_1234_5678", "139****5678"),
        ("021-8800-1234", "021****1234"),
        ("8800-1234", "88****34"),
        # dates and times are no one's number
        ("2010-03-01 10:00:00.123456+08:00", "2010-03-01 10:00:00.123456+08:00"),
        ("2010/3/1 23:59:59", "2010/3/1 23:59:59"),
        ("at 23:59:59.999999", "at 23:59:59.999999"),
        ("1, 2, 3, 4, 5, 6, 7", "1, 2, 3, 4, 5, 6, 7"),
        ("139****5678 and 021****1234", "139****5678 and 021****1234"),  # masked stays
    ],
)
def test_mask_text(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_mask_numbers_everywhere_but_the_own_number() -> None:
    record = {
        "caller": "13800138000",
        "calling_number": "+86 13800138000",
        "extra": {"redirect": ["13912345678", 13712345678, 1.3612345678e10], "13512345678": 1},
        "duration_s": 125,
        "flag": True,
    }
    masked = mask_numbers(record, own="13800138000")
    assert masked == {
        "caller": "13800138000",
        "calling_number": "+86 13800138000",
        "extra": {"redirect": ["139****5678", "137****5678", "136*****6780"], "135****5678": 1},
        "duration_s": 125,
        "flag": True,
    }


def test_log_records_are_masked_whatever_the_logger(caplog: pytest.LogCaptureFixture) -> None:
    install_log_masking()
    install_log_masking()  # idempotent
    with caplog.at_level(logging.INFO):
        logging.getLogger("sqlalchemy.engine").error("insert (%s, %r)", "13912345678", [1])
        try:
            raise ValueError("bad record {'callee': '13712345678'}")
        except ValueError:
            logging.getLogger("anything").exception("failed for %s", "+8613612345678")
    text = caplog.text
    assert "139****5678" in text
    assert "137****5678" in text  # in the traceback too
    for number in ("13912345678", "13712345678", "13612345678"):
        assert number not in text


def test_agent_sees_no_third_party_number_in_any_field(api: Api) -> None:
    record = cdr(
        "leak-1",
        callee="13912345678",
        calling_number="+8613712345678",
        extra={"legs": [{"b": "13612345678"}]},
    )
    assert api.post("/v1/cdrs", role="switch", json=[record]).json()["counts"]["rated"] == 1
    agent = api.get("/v1/cdrs/leak-1", role="agent")
    assert agent.status_code == 200
    for number in ("13912345678", "13712345678", "13612345678"):
        assert number not in agent.text
    body = agent.json()
    assert body["caller"] == "13800138000"
    assert body["record"]["caller"] == "13800138000"
    assert body["record"]["calling_number"] == "+86*******5678"
    admin = api.get("/v1/cdrs/leak-1", role="admin").json()
    assert admin["record"]["extra"] == {"legs": [{"b": "13612345678"}]}


SEPARATED = {
    "139-1234-5678": "13912345678",
    "136.9876.5432": "13698765432",
    "150  1111  2222": "15011112222",
    "(135)1122-3344": "13511223344",
    "137\t2233\t4455": "13722334455",
}


def test_agent_sees_no_number_whatever_separates_its_digits(api: Api) -> None:
    note = "; ".join(SEPARATED)
    record = cdr("sep-1", note=note, legs=[{"to": "021-8800-1234"}])
    assert api.post("/v1/cdrs", role="switch", json=[record]).json()["counts"]["rated"] == 1
    agent = api.get("/v1/cdrs/sep-1", role="agent")
    assert agent.status_code == 200
    shown = agent.json()["record"]
    digits = "".join(c for c in agent.text if c.isdigit())
    for separated, number in SEPARATED.items():
        assert separated not in agent.text
        assert number not in digits.replace(number[:3] + number[-4:], "")
        assert mask_text(separated) in shown["note"]
    assert shown["legs"] == [{"to": "021****1234"}]
    assert shown["start"] == record["start"]  # a date is no one's number
    admin = api.get("/v1/cdrs/sep-1", role="admin").json()["record"]
    assert admin["note"] == note


def test_a_cdr_id_that_is_a_number_is_masked_for_agents(api: Api) -> None:
    api.put("/v1/subscribers/13800138000", role="admin", json={"plan": "gotone"})
    ids = ["13912345678", "139-1234-5678", "13800138000", "plain-id"]
    records = [cdr(i) for i in ids]
    for record in records:
        del record["plan"]
    assert api.post("/v1/cdrs", role="switch", json=records).json()["counts"]["rated"] == 4
    path = "/v1/subscribers/13800138000/usage"
    listed = api.get(path, role="agent", params={"month": "2010-03"})
    assert "13912345678" not in listed.text
    calls = listed.json()["calls"]
    assert sorted(c["id"] for c in calls) == sorted(
        ["139****5678", "139****5678", "13800138000", "plain-id"]
    )
    for call in calls:  # each call opens by its reference, its id as listed
        opened = api.get(f"/v1/subscribers/13800138000/calls/{call['ref']}", role="agent")
        assert opened.status_code == 200, opened.text
        assert opened.json()["id"] == call["id"]
        assert "13912345678" not in opened.text
    admin = api.get(path, role="admin", params={"month": "2010-03"}).json()["calls"]
    assert sorted(c["id"] for c in admin) == sorted(ids)
    # a reference of another subscriber's call, or none at all: 404, audited
    other = cdr("other", caller="13912345678")
    api.post("/v1/cdrs", role="switch", json=[other])
    ref = api.get("/v1/subscribers/13912345678/usage", role="admin", params={"month": "2010-03"})
    foreign = ref.json()["calls"][0]["ref"]
    for wrong in (foreign, 10**9):
        missing = api.get(f"/v1/subscribers/13800138000/calls/{wrong}", role="agent")
        assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    audit = api.get("/v1/audit", role="admin").json()["items"]
    assert audit[-1]["detail"] == f"call {10**9} -> not_found"
