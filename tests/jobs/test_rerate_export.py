"""The cluster re-rating flow on SQLite and PostgreSQL: `rerate --export`, `rate --engine
spark`, `rerate --apply` append what `callrate rerate` appends, once, and a result the
per-call path disagrees with fails the job."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession  # the spark extra (CI installs it)
from sqlalchemy import create_engine, select

from service.cli import main
from service.config import Settings
from service.db.models import RerateJob
from service.jobs.rerate import RerateMismatch
from tests.conftest_db import Api
from tests.jobs.spark_session import spark
from tests.jobs.test_rerate import CDRS, WINDOW, _rating_count, cdr, corrected_tariffs

__all__ = ["corrected_tariffs", "spark"]  # fixtures, used by name

# A registered caller whose CDR names no plan: only its registry profile can rate it.
REGISTERED = {**cdr("f-2010-jul-registry", "2010-07-01T10:00:00+08:00", "02188001234", 125)}
del REGISTERED["plan"]


def _ingest(api: Api) -> None:
    put = api.put("/v1/subscribers/13800138000", role="admin", json={"plan": "gotone"})
    assert put.status_code == 200, put.text
    response = api.post("/v1/cdrs", role="switch", json=[*CDRS, REGISTERED])
    assert response.status_code == 200, response.text
    assert [r["charge_fen"] for r in response.json()["results"]] == [267, 267, 126, 126, 80, 126]


def _window(url: str) -> list[str]:
    return ["rerate", "--url", url, "--from", WINDOW["from"], "--to", WINDOW["to"]]


def _export_and_rate(
    api: Api, settings: Settings, tariffs: Path, tmp_path: Path
) -> tuple[str, Path, Path]:
    """Ingest, export the window, rate the export on Spark: the URL, export and output."""
    _ingest(api)
    url = settings.effective_database_url
    export, out = tmp_path / "export", tmp_path / "rated"
    assert main([*_window(url), "--export", str(export)]) == 0
    argv = ["--tariffs", str(tariffs), "rate", str(export), "-o", str(out), "--engine", "spark"]
    assert main(argv) == 0
    return url, export, out


def _jobs(settings: Settings) -> list[tuple[str, int, int]]:
    engine = create_engine(settings.effective_database_url)
    with engine.connect() as connection:
        query = select(RerateJob.status, RerateJob.changed, RerateJob.processed)
        jobs = [(row[0], row[1], row[2]) for row in connection.execute(query)]
    engine.dispose()
    return jobs


def test_export_rate_on_spark_apply(
    spark: SparkSession,
    api: Api,
    settings: Settings,
    corrected_tariffs: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, export, out = _export_and_rate(api, settings, corrected_tariffs, tmp_path)
    printed = capsys.readouterr().out
    assert "6 CDRs exported" in printed
    assert "6 rated, 0 rejected" in printed
    exported = ds.dataset(export).to_table()
    registered = exported.filter(pc.equal(exported["id"], "f-2010-jul-registry"))
    assert registered["subscriber_plan"].to_pylist() == ["gotone"]
    assert registered["plan"].to_pylist() == [None]
    audit = api.get("/v1/audit", role="admin").json()["items"]
    assert [row["detail"] for row in audit if row["action"] == "rerate.export"] == [
        f"6 CDRs [1230739200, 1293811200) to {export}"
    ]
    with pytest.raises(Exception, match="not empty"):
        main([*_window(url), "--export", str(export)])

    tariffs = ["--tariffs", str(corrected_tariffs)]

    assert main([*tariffs, *_window(url), "--apply", str(out), "--dry-run"]) == 0
    assert '"changed":4' in capsys.readouterr().out
    assert _rating_count(settings) == 6
    assert main([*tariffs, *_window(url), "--apply", str(out)]) == 0
    applied = capsys.readouterr().out
    assert '"changed":4' in applied
    assert '"rejected":0' in applied
    assert '"delta_fen":-63' in applied
    assert _rating_count(settings) == 10
    history = api.get("/v1/cdrs/f-2010-jul-registry", role="agent").json()["ratings"]
    assert [(r["seq"], r["tariff"], r["charge_fen"]) for r in history] == [
        (1, "cmcc-2010", 126),
        (2, "cmcc-2010-fix", 105),
    ]

    # Applying again appends nothing; neither does the per-call re-rating after it.
    assert main([*tariffs, *_window(url), "--apply", str(out)]) == 0
    assert '"changed":0' in capsys.readouterr().out
    assert main([*tariffs, *_window(url)]) == 0
    assert '"changed":0' in capsys.readouterr().out
    assert _rating_count(settings) == 10


def _tampered(out: Path, tmp_path: Path, record_id: str, charge_fen: int) -> Path:
    """A copy of a Spark output with one record's charge changed."""
    copy = tmp_path / "tampered"
    shutil.copytree(f"{out}.rejected", f"{copy}.rejected")
    rated = ds.dataset(out).to_table()
    charges = pc.if_else(pc.equal(rated["id"], record_id), charge_fen, rated["charge_fen"])
    copy.mkdir()
    index = rated.column_names.index("charge_fen")
    pq.write_table(rated.set_column(index, "charge_fen", charges), copy / "part-0.parquet")
    return copy


def test_a_result_the_per_call_path_disagrees_with_fails_the_job(
    spark: SparkSession,
    api: Api,
    settings: Settings,
    corrected_tariffs: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, _, out = _export_and_rate(api, settings, corrected_tariffs, tmp_path)
    tariffs = ["--tariffs", str(corrected_tariffs)]
    wrong = _tampered(out, tmp_path, "b-2009-dec", 1)
    with pytest.raises(RerateMismatch, match="b-2009-dec"):
        main([*tariffs, *_window(url), "--apply", str(wrong)])
    assert _rating_count(settings) == 6  # the failing chunk wrote nothing
    assert [status for status, _, _ in _jobs(settings)] == ["failed"]

    # Results for CDRs outside the job's window are refused, not applied.
    narrow = ["--from", "2010-01-01T00:00:00+08:00", "--to", WINDOW["to"]]
    argv: list[Any] = [*tariffs, "rerate", "--url", url, *narrow, "--apply", str(out)]
    with pytest.raises(Exception, match="not stored in the job's window"):
        main(argv)
    assert _rating_count(settings) == 6
    capsys.readouterr()


def test_an_empty_window_exports_an_empty_file(
    spark: SparkSession, api: Api, settings: Settings, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    url = settings.effective_database_url
    assert main([*_window(url), "--export", str(export)]) == 0
    table = pq.read_table(export / "part-00000.parquet")
    assert table.num_rows == 0
    assert {"id", "subscriber", "subscriber_plan"} <= set(table.column_names)
    assert isinstance(table.schema.field("packages").type, pa.ListType)
