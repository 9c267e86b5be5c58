"""`callrate quote`: one request as an argument, or NDJSON on stdin; golden cases through it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from service.cli import main, quote_lines
from service.rating.scalar import Rater
from tests.conftest import golden_cases

CALLRATE = Path(sys.executable).parent / "callrate"
REQUEST = {
    "caller": "13800138000",
    "callee": "02188001234",
    "start": "2010-03-01T10:00:00+08:00",
    "duration_s": 125,
    "plan": "gotone",
}


def test_quote_argument(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quote", json.dumps(REQUEST)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["charge_fen"] == 126
    assert result["items"] == [
        {"code": "ld_domestic", "units": 21, "unit_s": 6, "rate_fen": 6, "amount_fen": 126}
    ]
    assert "1.26元" in result["explanation_zh"]


def test_bad_lines_are_answered_and_the_stream_goes_on(rater: Rater) -> None:
    lines = [
        json.dumps(REQUEST),
        "{not json",
        json.dumps({**REQUEST, "callee": "02188ABC234"}),
        "",
        json.dumps({**REQUEST, "duration_s": 3}),
    ]
    out = io.StringIO()
    assert quote_lines(rater, lines, out) == 4
    results = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r.get("charge_fen") for r in results] == [126, None, None, 0]
    assert results[1] == {
        "rejected": True,
        "field": "record",
        "code": "record.invalid",
        "reason": "line is not valid JSON",
    }
    assert results[2]["field"] == "callee"
    assert results[2]["code"] == "callee.invalid_characters"


def test_golden_cases_through_the_installed_command() -> None:
    cases = golden_cases()
    stdin = "".join(json.dumps(case["request"], ensure_ascii=False) + "\n" for case in cases)
    done = subprocess.run(
        [str(CALLRATE), "quote"], input=stdin, capture_output=True, text=True, check=True
    )
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) == len(cases)
    for case, result in zip(cases, results, strict=True):
        got = {key: result.get(key) for key in case["expect"]}
        assert got == case["expect"], case["name"]
