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
        "extra": {"redirect": ["139****5678", "137****5678", "136****5678.0"], "135****5678": 1},
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
