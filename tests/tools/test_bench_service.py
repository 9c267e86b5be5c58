"""`callrate bench service` runs end to end with tiny sizes and reports every figure (its
speed is what the command measures, not what this test checks)."""

from __future__ import annotations

import json

import pytest

from service.cli import main
from tests.conftest_db import _postgres_base_url


@pytest.mark.slow
def test_bench_service_reports_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    url = _postgres_base_url()
    tiny = ["--batches", "4", "--batch-size", "25", "--seconds", "0.3", "--connections", "2"]
    assert main(["bench", "service", "--database-url", url, *tiny]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ingest"]["rated"] == 100  # the median run; the warm-up's are not counted
    assert len(report["ingest"]["rounds_cdrs_per_s"]) == 3
    assert report["ingest_cdrs_per_s"] == sorted(report["ingest"]["rounds_cdrs_per_s"])[1]
    assert report["copy_ceiling_cdrs_per_s"] == sorted(report["copy_ceiling_rounds_cdrs_per_s"])[1]
    # in turns with ingest: each copy holds what was stored so far (warm-up, then 100 a run)
    warm_up = report["copy_ceiling_rounds_stored"][0] - 100
    assert warm_up > 0
    assert report["copy_ceiling_rounds_stored"] == [warm_up + 100, warm_up + 200, warm_up + 300]
    assert report["ingest"]["warm_up"]["batches"] > 0
    assert report["ingest"]["warm_up"]["cdrs_per_s"] > 0
    for name in (
        "copy_ceiling_cdrs_per_s",
        "batch_copy_cdrs_per_s",
        "ingest_cdrs_per_s",
        "sqlite_ingest_cdrs_per_s",
        "floor_quotes_per_s",
    ):
        assert report[name] > 0, name
    assert report["quote_capacity_per_s"] > 0
    assert report["ingest_to_ceiling"] == round(
        report["ingest_cdrs_per_s"] / report["copy_ceiling_cdrs_per_s"], 2
    )
    assert report["ingest_to_batch_copy"] == round(
        report["ingest_cdrs_per_s"] / report["batch_copy_cdrs_per_s"], 2
    )
    # /proc counts CPU in clock ticks (10 ms): 100 CDRs may show none
    assert set(report["ingest"]["cpu_us_per_cdr"]) == {"workers", "postgres"}
    assert min(report["ingest"]["cpu_us_per_cdr"].values()) >= 0
    assert report["quote_to_floor"] == round(
        report["quote_capacity_per_s"] / report["floor_quotes_per_s"], 2
    )
    for name in ("quote_cpu_us", "floor_cpu_us"):
        assert report[name]["workers_cpu_us"] > 0, name
        assert report[name]["postgres_cpu_us"] > 0, name
    assert report["quote_to_floor_cpu"] > 0
    assert [len(rounds) for rounds in report["closed_loop_rounds"].values()] == [3, 3]
    for share in ("50%", "200%"):
        figures = report["open_loop"][share]
        assert (
            figures["requests"]
            == figures["admitted"]
            + round(figures["share_503"] * figures["requests"])
            + figures["no_answer"]
            + figures["other_status"]
        )
        assert figures["admitted"] > 0
        assert figures["admitted_p50_ms"] <= figures["admitted_p99_ms"]
        assert 0 < figures["warm_up"]["requests"] <= figures["requests"] // 5 + 1
        assert 1 <= figures["postgres_backends_seen"] <= report["postgres_backends_bound"]


def test_bench_service_wants_postgresql(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "service", "--database-url", "sqlite:///x.sqlite3"]) == 2
    assert "PostgreSQL" in capsys.readouterr().err
