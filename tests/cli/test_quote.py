"""`callrate quote`: one request as an argument, or NDJSON on stdin; golden cases through it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.cli import main
from service.cli.quote import QuoteTally, quote_lines
from service.config import get_settings
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
    assert quote_lines(rater, lines, out) == QuoteTally(answered=4, rejected=1, unreadable=1)
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


@pytest.fixture
def no_default_plan(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """CALLRATE_DEFAULT_PLAN unset; the CLI reads its settings afresh."""
    monkeypatch.delenv("CALLRATE_DEFAULT_PLAN", raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_quote_uses_callrate_default_plan_as_the_service_does(
    no_default_plan: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    without_plan = json.dumps({k: v for k, v in REQUEST.items() if k != "plan"})
    assert main(["quote", without_plan]) == 1  # rejected: exit 1, the rejection printed
    assert json.loads(capsys.readouterr().out)["code"] == "plan.missing"

    no_default_plan.setenv("CALLRATE_DEFAULT_PLAN", "gotone")
    get_settings.cache_clear()
    assert main(["quote", without_plan]) == 0
    assert json.loads(capsys.readouterr().out)["charge_fen"] == 126
    assert main(["quote", json.dumps({**REQUEST, "plan": "gold"})]) == 1  # its own plan wins
    refused = json.loads(capsys.readouterr().out)
    assert refused["code"] == "plan.unknown"
    assert refused["reason"].startswith("plan is not in the tariff in force (cmcc-2010 has gotone")


def test_a_rejected_single_quote_exits_1(
    no_default_plan: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["quote", json.dumps({**REQUEST, "callee": "02188ABC234"})]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["code"] == "callee.invalid_characters"
    assert err == ""


def _quote_stdin(lines: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CALLRATE_DEFAULT_PLAN"}
    return subprocess.run(
        [str(CALLRATE), "quote"],
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_stdin_answers_every_line_and_fails_only_on_an_unreadable_one() -> None:
    rejected = json.dumps({**REQUEST, "plan": "gold"})
    done = _quote_stdin([json.dumps(REQUEST), rejected])
    assert done.returncode == 0  # a rejection is an answer
    assert [json.loads(line).get("code") for line in done.stdout.splitlines()] == [
        None,
        "plan.unknown",
    ]
    done = _quote_stdin([json.dumps(REQUEST), "{oops", rejected])
    assert done.returncode == 1
    assert len(done.stdout.splitlines()) == 3  # the lines after it are answered too


def test_a_reader_that_stops_early_gets_no_traceback() -> None:
    done = subprocess.run(
        ["bash", "-c", f"yes '{json.dumps(REQUEST)}' | head -n 20000 | {CALLRATE} quote | head -1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout)["charge_fen"] == 126
    assert done.stderr == ""
