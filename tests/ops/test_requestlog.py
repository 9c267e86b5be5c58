"""Request log lines (text or JSON, on stderr) and X-Request-ID."""

from __future__ import annotations

import re
from collections.abc import Iterator

import orjson
import pytest

from service.cli import build_parser
from service.cli.serve import settings_of as _settings
from service.config import Settings
from service.rating.scalar import Rater
from tests.api.test_cdrs import cdr
from tests.api.test_quote import REQUEST as QUOTE
from tests.conftest_db import Api, running_api

NUMBERS = ("13800138000", "8613800138000", "02188001234", "88001234")
JSON_FIELDS = {"time", "request_id", "method", "route", "status", "latency_ms", "role"}


@pytest.fixture
def json_api(settings: Settings, rater: Rater) -> Iterator[Api]:
    with running_api(settings.model_copy(update={"log_format": "json"}), rater) as client:
        yield client


def json_lines(err: str) -> list[dict[str, object]]:
    """The JSON request lines among everything written to stderr."""
    return [orjson.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_json_line_per_request_without_numbers_or_bodies(
    json_api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert json_api.post("/v1/quote", role="agent", json=QUOTE).status_code == 200
    assert json_api.get("/v1/subscribers/+8613800138000", role="agent").status_code == 404
    assert json_api.get("/v1/cdrs/13800138000-1?x=02188001234", role="admin").status_code == 404
    assert json_api.get("/metrics", role="agent").status_code == 403
    assert json_api.get("/nowhere/13800138000").status_code == 404
    err = capsys.readouterr().err
    lines = json_lines(err)
    assert len(lines) == 5
    assert all(set(line) == JSON_FIELDS for line in lines)
    assert [(x["method"], x["route"], x["status"], x["role"]) for x in lines] == [
        ("POST", "/v1/quote", 200, "agent"),
        ("GET", "/v1/subscribers/{msisdn}", 404, "agent"),
        ("GET", "/v1/cdrs/{cdr_id}", 404, "admin"),
        ("GET", "/metrics", 403, "agent"),
        ("GET", "unmatched", 404, None),
    ]
    quote = lines[0]
    assert isinstance(quote["latency_ms"], float)
    assert quote["latency_ms"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(quote["time"]))
    for number in NUMBERS:
        assert number not in err
    assert "charge_fen" not in err


def test_text_is_the_default(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    response = api.post("/v1/cdrs", role="switch", json=[cdr("a")])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    rid = response.headers["x-request-id"]
    assert re.fullmatch(rf"\S+Z {rid} POST /v1/cdrs 200 [0-9.]+ms role=switch", line), line


def test_request_id_is_echoed_or_made(json_api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    given = json_api.get("/healthz", headers={"X-Request-ID": "trace-01.a:b_c"})
    assert given.headers["x-request-id"] == "trace-01.a:b_c"
    made = json_api.get("/healthz")
    assert re.fullmatch(r"[a-p]{32}", made.headers["x-request-id"])  # no digits to mask
    for bad in ("a" * 129, "has space", "semi;colon", "", "é"):
        answer = json_api.get("/healthz", headers={"X-Request-ID": bad.encode()})
        replaced = answer.headers["x-request-id"]
        assert replaced != bad
        assert re.fullmatch(r"[a-p]{32}", replaced)
    error = json_api.post("/v1/quote", json=QUOTE, headers={"X-Request-ID": "e-1"})
    assert error.status_code == 401
    assert error.headers["x-request-id"] == "e-1"
    ids = [line["request_id"] for line in json_lines(capsys.readouterr().err)]
    assert ids[0] == "trace-01.a:b_c"
    assert ids[1] == made.headers["x-request-id"]
    assert ids[-1] == "e-1"


def test_log_format_from_the_command_line_and_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = build_parser().parse_args(["serve", "--log-format", "json"])
    assert _settings(args).log_format == "json"
    monkeypatch.setenv("CALLRATE_LOG_FORMAT", "json")
    assert Settings().log_format == "json"
    monkeypatch.setenv("CALLRATE_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        Settings()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--log-format", "xml"])


def test_a_request_id_that_looks_like_a_number_is_echoed_but_masked_in_the_log(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    for path in ("/healthz", "/v1/quote"):
        answer = api.post(path, headers={"X-Request-ID": "13800138000"}, json=QUOTE)
        assert answer.headers["x-request-id"] == "13800138000"
    err = capsys.readouterr().err
    assert "13800138000" not in err
    assert err.count("138****8000") == 2
