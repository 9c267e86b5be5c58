"""`callrate rate`: files in, rated and rejected files out, the same fen as the per-call path."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from service.cli import main
from service.jobs.batchio import FormatError, RateSummary, rate_file, rejected_path
from service.rating.batch import BatchRater
from service.rating.rejections import Rejected
from service.rating.scalar import Rater
from service.tools.bench import generate_cdrs
from tests.conftest import TARIFFS, column_record


def expected(rater: Rater, table: pa.Table) -> tuple[dict[str, int], dict[str, str]]:
    charges, reasons = {}, {}
    for raw in table.to_pylist():
        try:
            charges[raw["id"]] = rater.rate_raw(column_record(raw)).charge_fen
        except Rejected as rejection:
            reasons[raw["id"]] = rejection.code
    return charges, reasons


def test_parquet_in_batches_gives_the_per_call_charges(rater: Rater, tmp_path: Path) -> None:
    table = generate_cdrs(rater, 5_000, seed=11)
    source, out = tmp_path / "cdrs.parquet", tmp_path / "rated.parquet"
    pq.write_table(table, source, row_group_size=1_000)
    summary = rate_file(source, out, rater, batch_rows=700)
    rated, rejected = pq.read_table(out), pq.read_table(rejected_path(out))
    charges, reasons = expected(rater, table)
    assert summary.rows == 5_000
    assert (summary.rated, summary.rejected) == (len(charges), len(reasons))
    got = dict(zip(rated["id"].to_pylist(), rated["charge_fen"].to_pylist(), strict=True))
    assert got == charges
    assert "reason" not in rated.column_names
    got_reasons = dict(zip(rejected["id"].to_pylist(), rejected["reason"].to_pylist(), strict=True))
    assert got_reasons == reasons
    assert all(rejected["message"].to_pylist())


def test_csv_round_trip_with_text_fields(rater: Rater, tmp_path: Path) -> None:
    table = generate_cdrs(rater, 2_000, seed=12)
    source, out = tmp_path / "cdrs.csv", tmp_path / "rated.csv"
    packages = pa.compute.binary_join(table["packages"], ";")
    pacsv.write_csv(table.set_column(9, "packages", packages), source)
    rate_file(source, out, rater, batch_rows=512)
    rated = pacsv.read_csv(out, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    charges, reasons = expected(rater, table)
    assert dict(zip(rated["id"].to_pylist(), rated["charge_fen"].to_pylist(), strict=True)) == (
        charges
    )
    rejected = pacsv.read_csv(rejected_path(out))
    assert set(rejected["id"].to_pylist()) == set(reasons)


def test_ndjson_keeps_malformed_lines_in_the_rejected_file(rater: Rater, tmp_path: Path) -> None:
    good = {
        "id": "a1",
        "caller": "13800138000",
        "callee": "02188001234",
        "start": "2010-03-01T10:00:00+08:00",
        "duration_s": 125,
        "plan": "gotone",
    }
    lines = [
        json.dumps(good),
        json.dumps({**good, "id": "a2", "duration_s": "125"}),  # a string: wrong type
        "not json",
        json.dumps({**good, "id": "a3", "callee": "02188ABC234"}),
    ]
    source, out = tmp_path / "cdrs.ndjson", tmp_path / "rated.ndjson"
    source.write_text("\n".join(lines) + "\n")
    summary = rate_file(source, out, rater)
    rated = [json.loads(line) for line in out.read_text().splitlines()]
    rejected = [json.loads(line) for line in rejected_path(out).read_text().splitlines()]
    assert [(r["id"], r["charge_fen"]) for r in rated] == [("a1", 126)]
    assert sorted(r["reason"] for r in rejected) == [
        "callee.invalid_characters",
        "duration_s.invalid",
        "record.invalid",
    ]
    assert (summary.rows, summary.rated, summary.rejected) == (4, 1, 3)


def test_unknown_extension_is_refused(rater: Rater, tmp_path: Path) -> None:
    with pytest.raises(FormatError):
        rate_file(tmp_path / "cdrs.xlsx", tmp_path / "out.parquet", rater)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_file_without_cdr_columns_is_refused_naming_them(
    rater: Rater, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    source, out = tmp_path / f"cdrs{suffix}", tmp_path / "out.csv"
    header = "id;caller;callee;start;duration_s;plan"  # a `;`-separated CSV
    row = "c1;13800138000;02188001234;2010-03-01T10:00:00+08:00;61;gotone"
    if suffix == ".csv":
        source.write_text(f"{header}\n{row}\n", encoding="utf-8")
    else:
        pq.write_table(pa.table({header: [row]}), source)
    with pytest.raises(FormatError, match="none of its columns is a CDR field"):
        rate_file(source, out, rater)
    assert main(["--tariffs", str(TARIFFS), "rate", str(source), "-o", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "expected columns named id, caller, callee, start," in error
    assert "duration_s" in error
    assert ("comma-separated" in error) == (suffix == ".csv")
    assert not out.exists()
    assert not rejected_path(out).exists()


def test_the_summary_line_gives_the_rating_speed_apart_from_the_warm_up() -> None:
    first = RateSummary(rows=3, rated=2, rejected=1, seconds=0.004, warm_up_seconds=15.2)
    assert first.line() == (
        "3 records: 2 rated, 1 rejected in 0.00 s (750 CDRs/s), after 15.2 s compiling the "
        "batch kernels (once: later runs load them from the cache)"
    )
    later = RateSummary(rows=3, rated=2, rejected=1, seconds=0.004, warm_up_seconds=0.3)
    assert later.line() == "3 records: 2 rated, 1 rejected in 0.00 s (750 CDRs/s)"
    empty = RateSummary(rows=0, rated=0, rejected=0, seconds=0.001)
    assert empty.line() == "0 records: 0 rated, 0 rejected in 0.00 s"


def test_a_first_run_does_not_count_the_warm_up_as_rating_time(
    rater: Rater, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warm = BatchRater.warm

    def slow_warm(self: BatchRater) -> None:  # as a first compile is: slow
        time.sleep(1.2)
        warm(self)

    monkeypatch.setattr(BatchRater, "warm", slow_warm)
    source = tmp_path / "cdrs.parquet"
    pq.write_table(generate_cdrs(rater, 3, seed=15), source)
    summary = rate_file(source, tmp_path / "out.parquet", rater)
    assert summary.warm_up_seconds >= 1.2
    assert summary.seconds < 1.0
    assert " 0 CDRs/s" not in summary.line()
    assert "compiling the batch kernels" in summary.line()


def test_the_rate_command(rater: Rater, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, out = tmp_path / "cdrs.parquet", tmp_path / "out.parquet"
    pq.write_table(generate_cdrs(rater, 1_000, seed=13), source)
    assert main(["--tariffs", str(TARIFFS), "rate", str(source), "-o", str(out)]) == 0
    assert "1,000 records" in capsys.readouterr().out
    assert pq.read_metadata(out).num_rows + pq.read_metadata(rejected_path(out)).num_rows == 1_000


def test_a_failing_write_is_raised_in_the_caller(rater: Rater, tmp_path: Path) -> None:
    source = tmp_path / "cdrs.parquet"
    pq.write_table(generate_cdrs(rater, 3_000, seed=14), source)
    with pytest.raises(OSError):
        rate_file(source, tmp_path / "missing" / "out.parquet", rater, batch_rows=500)
