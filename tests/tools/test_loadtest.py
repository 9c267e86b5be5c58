"""`callrate loadtest` against a real `callrate serve --workers 2`: every request it counts
reached the database (no timing assertions: it is a measuring tool, not a benchmark)."""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx
import orjson
import pytest
import uvloop
from sqlalchemy import create_engine, func, pool, select

from service.db.models import AuditRow, Cdr
from service.tools.loadtest import (
    add_arguments,
    full_records_body,
    ingest,
    quote,
    rated_count,
    run,
    tiny_records_body,
)
from tests.api.test_served import served
from tests.conftest_db import KEYS


def _count(database_url: str, model: type[AuditRow] | type[Cdr]) -> int:
    engine = create_engine(database_url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        count = connection.scalar(select(func.count()).select_from(model))
    engine.dispose()
    return int(count or 0)


@pytest.mark.slow
def test_quote_and_ingest_runs_reach_the_database(database_url: str, tmp_path: Path) -> None:
    with served(database_url, tmp_path, workers=2) as (_, base):
        quoted = uvloop.run(quote(url=base, key=KEYS["agent"], rate=40.0, seconds=1.0))
        ingested = uvloop.run(
            ingest(url=base, key=KEYS["switch"], batches=3, batch_size=50, concurrency=2)
        )
        # whichever worker answers, /metrics counts what both workers did
        for _ in range(3):
            with httpx.Client(base_url=base) as client:  # a new connection each time
                text = client.get("/metrics", headers={"Authorization": "Bearer " + KEYS["ops"]})
            assert 'callrate_cdrs_total{result="rated"} 150.0' in text.text
    assert quoted["requests"] == 40
    assert quoted["errors"] == 0
    # every quote sent is audited, the warm-up's too
    assert _count(database_url, AuditRow) == 40 + quoted["warm_up"]["requests"]
    assert ingested["batches"] == 3
    assert ingested["rated"] == 150
    assert _count(database_url, Cdr) == 150


def test_loadtest_refuses_a_url_that_is_not_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["quote", "--url", "http://192.0.2.1:8000", "--key", "k"])
    assert run(args) == 2
    assert "loopback" in capsys.readouterr().err


def test_memory_mode_starts_a_server_and_reports_its_peak_rss(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["memory", "--bodies", "2", "--body-bytes", "40000"])
    assert run(args) == 0
    result = orjson.loads(capsys.readouterr().out)
    assert result["statuses"] == {"413": 2}  # 13,332 records of {}: more than a batch holds
    assert result["body_bytes"] <= 40000
    assert result["server_processes"] >= 1
    assert result["rss_peak_mb"] >= result["rss_before_mb"] > 0


def test_memory_bodies_have_the_asked_size() -> None:
    assert len(tiny_records_body(1000)) <= 1000
    full = full_records_body(2_000_000, records=1000)
    assert 1_900_000 < len(full) <= 2_000_000
    assert len(full.splitlines()) == 1000


@pytest.mark.parametrize(
    "answer",
    [
        {"counts": {"rated": 2, "duplicate": 1, "rejected": 0}, "results": []},
        {
            "results": [
                {"index": 0, "id": '"counts":{"rated":9}', "result": "rated", "charge_fen": 1},
                {"index": 1, "id": "x", "result": "duplicate"},
            ],
            "counts": {"duplicate": 1, "rated": 1, "rejected": 0},
        },
    ],
)
def test_rated_count_reads_the_counts_whatever_the_results_hold(answer: dict[str, object]) -> None:
    """The ingest client counts rated CDRs without decoding each result; an id that looks
    like the counts (escaped in the answer) does not fool it."""
    assert rated_count(orjson.dumps(answer)) == answer["counts"]["rated"]  # type: ignore[index]
