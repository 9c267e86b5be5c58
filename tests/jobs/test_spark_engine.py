"""`callrate rate --engine spark` on Spark `local[2]` gives the local engine's rows exactly."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession  # the spark extra (CI installs it)

from service.cli import main
from service.jobs import spark_engine
from service.jobs.batchio import rate_file, rejected_path
from service.rating.batch import BatchRater
from service.rating.scalar import Rater
from service.tools.bench import generate_cdrs
from tests.conftest import TARIFFS
from tests.jobs.spark_session import spark

__all__ = ["spark"]  # a fixture, used by name


def _plain(table: pa.Table) -> pa.Table:
    """Dictionary text as text, lists with one item name: values compared, not encodings."""
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_dictionary(column.type):
            column = column.cast(pa.string())
        elif pa.types.is_list(column.type):
            column = column.cast(pa.list_(pa.string()))
        columns[name] = column
    return pa.table(columns)


def _sorted(table: pa.Table) -> pa.Table:
    return _plain(table).sort_by([("id", "ascending"), ("start", "ascending")])


def _dataset(path: Path) -> pa.Table:
    return ds.dataset(path, format="parquet").to_table()


def _local(rater: Rater, sources: list[Path], tmp: Path, **options: Any) -> tuple[pa.Table, ...]:
    """The local engine over each file, its rated and rejected rows concatenated."""
    rated, rejected = [], []
    for index, source in enumerate(sources):
        out = tmp / f"local-{index}.parquet"
        rate_file(source, out, rater, **options)
        rated.append(pq.read_table(out))
        rejected.append(pq.read_table(rejected_path(out)))
    return (
        pa.concat_tables([t for t in rated if t.num_columns], promote_options="permissive"),
        pa.concat_tables([t for t in rejected if t.num_columns], promote_options="permissive"),
    )


def _assert_same(local: tuple[pa.Table, ...], out: Path) -> None:
    rated, rejected = _dataset(out), _dataset(Path(f"{out}.rejected"))
    assert rated.column_names == local[0].column_names
    assert rejected.column_names == local[1].column_names
    assert _sorted(rated).equals(_sorted(local[0]))
    assert _sorted(rejected).equals(_sorted(local[1]))


def test_identity_with_the_local_engine_on_generated_rows(
    spark: SparkSession, rater: Rater, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = generate_cdrs(rater, 200_000, seed=13)
    source, out = tmp_path / "cdrs.parquet", tmp_path / "rated"
    pq.write_table(table, source, row_group_size=40_000)
    argv = ["--tariffs", str(TARIFFS), "rate", str(source), "-o", str(out), "--engine", "spark"]
    assert main([*argv, "--master", "local[2]", "--default-plan", "gotone"]) == 0
    local = _local(rater, [source], tmp_path, default_plan="gotone")
    _assert_same(local, out)
    assert capsys.readouterr().out.startswith(
        f"200,000 records: {local[0].num_rows:,} rated, {local[1].num_rows:,} rejected"
    )
    rated, rejected = _dataset(out), _dataset(Path(f"{out}.rejected"))
    assert set(rated["tariff"].to_pylist()) == {"cmcc-2009", "cmcc-2010"}
    assert rejected.num_rows > 1_000
    assert len(set(rejected["reason"].to_pylist())) > 5
    assert all(rejected["message"].to_pylist())
    # Registry-less rows without a plan are rated on --default-plan.
    assert rated.filter(pc.is_null(rated["plan"])).num_rows > 500


def _csv(table: pa.Table, path: Path) -> Path:
    packages = pc.binary_join(table["packages"], ";")
    index = table.column_names.index("packages")
    pacsv.write_csv(table.set_column(index, "packages", packages), path)
    return path


def test_multi_file_csv(spark: SparkSession, rater: Rater, tmp_path: Path) -> None:
    table = generate_cdrs(rater, 6_000, seed=14)
    folder = tmp_path / "in"
    folder.mkdir()
    files = [_csv(table.slice(i * 2_000, 2_000), folder / f"part-{i}.csv") for i in range(3)]
    # Arrow's null markers and quoting, which Spark's CSV reader knows nothing of.
    quirks = folder / "quirks.csv"
    quirks.write_text(
        "id,caller,callee,start,duration_s,type,forward_kind,visited_area,plan,packages\n"
        "q-1,13800138000,02188001234,2010-07-01T10:00:00+08:00,61,,,NA,gotone,ld_night\n"
        'q-2,"13800138000",02188001234,2010-07-01T10:00:00+08:00,"",,,021,NULL,""\n'
        'q-3,13800138000,"02188001234",2010-07-01T10:00:00,0061,,,n/a,mzone,"ld_night;x"\n'
        '"q-""4",13800138000,0218800123,2010-07-01T23:00:00,125,null,,,gotone,null\n',
        encoding="utf-8",
    )
    out = tmp_path / "rated"
    summary = spark_engine.rate_on_spark(spark, str(folder / "*.csv"), str(out), tariffs=TARIFFS)
    local = _local(rater, [*files, quirks], tmp_path)
    assert (summary.rows, summary.rated) == (6_004, local[0].num_rows)
    _assert_same(local, out)


def test_mixed_formats_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id\n", encoding="utf-8")
    (tmp_path / "b.ndjson").write_text("{}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="mixes csv, ndjson"):
        spark_engine.input_files(str(tmp_path))
    with pytest.raises(ValueError, match=r"no \.parquet"):
        spark_engine.input_files(str(tmp_path / "nothing-*.parquet"))


def _ndjson(rows: list[dict[str, Any]], path: Path) -> Path:
    lines = [orjson.dumps({k: v for k, v in row.items() if v is not None}) for row in rows]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_multi_file_ndjson_with_an_unreadable_line(
    spark: SparkSession, rater: Rater, tmp_path: Path
) -> None:
    rows = generate_cdrs(rater, 4_500, seed=15).to_pylist()
    folder = tmp_path / "in"
    folder.mkdir()
    files = [_ndjson(rows[i * 1_500 : (i + 1) * 1_500], folder / f"{i}.ndjson") for i in range(3)]
    broken = folder / "broken.ndjson"
    broken.write_bytes(
        b'{"id": "n-1", "caller": "13800138000", "callee": "02188001234", '
        b'"start": "2010-07-01T10:00:00+08:00", "duration_s": 61, "plan": "gotone", "x": 1}\n'
        b"\n"
        b'{"id": "n-2", "caller": "13800138000", "callee": "02188001234", '
        b'"start": "2010-07-01T10:00:00+08:00", "duration_s": "sixty", "plan": "gotone"}\n'
    )
    out = tmp_path / "rated"
    summary = spark_engine.rate_on_spark(spark, str(folder), str(out), tariffs=TARIFFS)
    assert summary.rows == 4_502
    local = _local(rater, files, tmp_path)
    rated, rejected = _dataset(out), _dataset(Path(f"{out}.rejected"))
    n1 = rated.filter(pc.equal(rated["id"], "n-1"))
    assert n1["charge_fen"].to_pylist() == [
        rater.rate_raw(orjson.loads(broken.read_bytes().split(b"\n")[0])).charge_fen
    ]
    unreadable = rejected.filter(pc.is_null(rejected["id"]))
    assert unreadable["reason"].to_pylist() == ["duration_s.invalid"]
    assert unreadable["message"].to_pylist()[0]
    # Without the hand-written file, exactly the local engine's rows.
    ids = pa.array([r["id"] for r in rows])
    assert _sorted(rated.filter(pc.is_in(rated["id"], ids))).equals(_sorted(local[0]))
    assert _sorted(rejected.filter(pc.is_in(rejected["id"], ids))).equals(_sorted(local[1]))


def test_empty_input(spark: SparkSession, rater: Rater, tmp_path: Path) -> None:
    source = tmp_path / "empty.parquet"
    pq.write_table(generate_cdrs(rater, 10, seed=1).slice(0, 0), source)
    out = tmp_path / "rated"
    summary = spark_engine.rate_on_spark(spark, str(source), str(out), tariffs=TARIFFS)
    assert (summary.rows, summary.rated, summary.rejected) == (0, 0, 0)
    assert _dataset(out).num_rows == 0
    assert _dataset(Path(f"{out}.rejected")).num_rows == 0
    empty = tmp_path / "empty.ndjson"
    empty.write_bytes(b"")
    summary = spark_engine.rate_on_spark(spark, str(empty), str(out), tariffs=TARIFFS)
    assert summary.rows == 0


def test_a_partition_made_only_of_rejects(
    spark: SparkSession, rater: Rater, tmp_path: Path
) -> None:
    table = generate_cdrs(rater, 20_000, seed=16)
    reasons = _reasons(rater, table)
    folder = tmp_path / "in"
    folder.mkdir()
    good = folder / "a.parquet"
    pq.write_table(table.filter(pc.is_null(reasons)), good)
    bad = folder / "b.parquet"
    pq.write_table(table.filter(pc.is_valid(reasons)), bad)
    out = tmp_path / "rated"
    # Opening a file costs as much as a whole partition holds: each file is its own partition.
    spark.conf.set("spark.sql.files.openCostInBytes", str(128 << 20))
    try:
        assert spark.read.parquet(str(folder)).rdd.getNumPartitions() == 2
        spark_engine.rate_on_spark(spark, str(folder), str(out), tariffs=TARIFFS)
    finally:
        spark.conf.unset("spark.sql.files.openCostInBytes")
    _assert_same(_local(rater, [good, bad], tmp_path), out)
    assert _dataset(Path(f"{out}.rejected")).num_rows == pc.sum(pc.is_valid(reasons)).as_py()


def _reasons(rater: Rater, table: pa.Table) -> pa.ChunkedArray:
    return BatchRater(rater).rate(table)["reason"]


def _probe(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    batch_rater = spark_engine.worker_rater(str(TARIFFS.resolve()), _DIGEST[0])
    for batch in batches:
        yield pa.RecordBatch.from_pydict(
            {"pid": [os.getpid()] * batch.num_rows, "rater": [id(batch_rater)] * batch.num_rows}
        )


_DIGEST = [spark_engine.tariffs_digest(TARIFFS.resolve())]


def test_one_batch_rater_per_python_worker(spark: SparkSession) -> None:
    import pyspark.cloudpickle

    pyspark.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        probed = spark.range(0, 16, numPartitions=16).mapInArrow(_probe, "pid long, rater long")
        seen = {(row.pid, row.rater) for row in probed.collect()}
    finally:
        pyspark.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    pids = {pid for pid, _ in seen}
    assert len(seen) == len(pids)  # one rater per worker process, reused by its tasks
    assert len(pids) <= 2  # 16 tasks ran in the two reused workers of local[2]


def test_other_tariffs_on_an_executor_fail_the_job(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="differ from the driver's"):
        spark_engine.worker_rater(str(tmp_path), _DIGEST[0])
    # Where the driver's path does not exist, the node's own tariffs serve if they are the same.
    assert spark_engine.worker_rater(str(tmp_path / "elsewhere"), _DIGEST[0]) is not None


def test_without_pyspark_the_command_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(spark_engine.importlib.util, "find_spec", lambda name: None)
    argv = ["rate", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out"), "--engine", "spark"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "pip install 'callrate[spark]'" in error
