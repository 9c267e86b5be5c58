"""`callrate rate --engine spark`: the batch path on Apache Spark, for inputs beyond one machine.

The whole job is one `DataFrame.mapInArrow` over the input. Each Python worker of each executor
rates the Arrow record batches Spark hands it with a `BatchRater` built once per worker process
from the tariff directory (a module-level cache, never pickled into the task); the numba kernels
come from numba's on-disk JIT cache, so they compile at most once per machine. What the driver
ships with each task is a few strings (`Job`): the tariff directory, a digest of its files (an
executor whose tariffs differ fails instead of charging by other rates) and the options.

Inputs are read the way `callrate rate` reads them, so rated and rejected rows carry exactly the
columns and values of the local engine: Parquet by Spark's own reader (split by row group);
CSV by Spark's reader with every column as text, then Arrow's CSV null markers and the `;`
package lists applied on the executor; NDJSON as lines, parsed on the executor by Arrow's JSON
reader with the local engine's schema. Rated rows go to OUT (a Parquet dataset), rejected ones
to OUT.rejected with `reason` and `message`. An NDJSON line that is no CDR object becomes a
rejected row whose input columns are empty (its reason says why).

PySpark is the optional `spark` extra: `pip install 'callrate[spark]'`, and Java 17.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import io
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from service.config import get_settings
from service.jobs.batchio import (
    FORMATS,
    MESSAGES,
    NDJSON_SCHEMA,
    PACKAGE_SEPARATOR,
    FormatError,
    RateSummary,
    _ndjson_lines,
    subscribers_in,
)
from service.rating import load_rater
from service.rating.batch import OUTPUT_COLUMNS, BatchRater
from service.rating.tariff import load_book

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

MISSING = "the spark engine needs PySpark and Java 17: pip install 'callrate[spark]'"
REJECTED_SUFFIX = ".rejected"
RATED_OUTPUTS = tuple(name for name in OUTPUT_COLUMNS if name != "reason")
TEXT_OUTPUTS = ("call_class", "dial", "roaming", "tariff", "reason", "message")
CSV_NULLS = pa.array(pacsv.ConvertOptions().null_values, type=pa.string())
NDJSON_OPTIONS = pajson.ParseOptions(
    explicit_schema=NDJSON_SCHEMA, unexpected_field_behavior="ignore"
)


class SparkUnavailable(RuntimeError):
    """PySpark is not installed."""


def require_pyspark() -> None:
    """Raise SparkUnavailable, saying how to get it, when PySpark is missing."""
    if importlib.util.find_spec("pyspark") is None:
        raise SparkUnavailable(MISSING)


def rejected_output(out: str) -> str:
    """OUT's sibling dataset for rejected rows: OUT.rejected."""
    return out.rstrip("/") + REJECTED_SUFFIX


# -- the executor side ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Job:
    """What each task needs: small strings only."""

    kind: str  # parquet, csv or ndjson
    tariffs: str
    digest: str
    default_plan: str | None
    require_id: bool


def tariffs_digest(directory: Path) -> str:
    """SHA-256 over every file's relative name and bytes under a tariff directory."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


# One BatchRater per tariff directory per Python worker process: built by the first task that
# runs there, reused by every later task (Spark reuses its Python workers) and every batch.
_RATERS: dict[tuple[str, str], BatchRater] = {}


def worker_rater(tariffs: str, digest: str) -> BatchRater:
    """This process's BatchRater for the driver's tariffs (same files, by digest)."""
    key = (tariffs, digest)
    if key not in _RATERS:
        # The driver's path, else this node's own (CALLRATE_TARIFFS_DIR, e.g. in an archive).
        directory = Path(tariffs)
        if not directory.is_dir():
            directory = get_settings().tariffs_dir
        found = tariffs_digest(directory) if directory.is_dir() else "missing"
        if found != digest:
            raise RuntimeError(
                f"tariffs at {directory} on this executor ({found[:12]}) differ from the "
                f"driver's ({digest[:12]}): install the same tariffs on every node"
            )
        _RATERS[key] = BatchRater(load_rater(directory))
    return _RATERS[key]


def _csv_columns(batch: pa.RecordBatch) -> pa.Table:
    """Spark's CSV text as Arrow's CSV reader gives it: its null markers null, packages lists."""
    table = pa.Table.from_batches([batch])
    for index, name in enumerate(table.column_names):
        column = table.column(index)
        column = pc.if_else(pc.is_in(column, CSV_NULLS), pa.scalar(None, column.type), column)
        if name == "packages":
            column = pc.split_pattern(column, PACKAGE_SEPARATOR)
        table = table.set_column(index, name, column)
    return table


def _ndjson_columns(batch: pa.RecordBatch) -> tuple[pa.Table, list[dict[str, Any]]]:
    """Lines of NDJSON parsed as the local engine parses them; unreadable ones set aside."""
    lines = [f"{line}\n".encode() for line in batch.column(0).to_pylist() if line is not None]
    malformed: list[dict[str, Any]] = []
    try:
        table = pajson.read_json(
            io.BytesIO(b"".join(lines)),
            read_options=pajson.ReadOptions(block_size=1 << 26),
            parse_options=NDJSON_OPTIONS,
        )
    except pa.ArrowInvalid:
        table = _ndjson_lines(lines, 1, NDJSON_OPTIONS, malformed)
    return table, malformed


def _plain_outputs(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Rated columns as declared to Spark: dictionaries decoded, a `message` per rejection."""
    reason = table.column("reason")
    messages = pa.chunked_array(
        [MESSAGES.take(chunk.indices) for chunk in reason.chunks], type=pa.string()
    )
    table = table.append_column("message", messages)
    return table.select(schema.names).cast(schema)


def _malformed_rows(malformed: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    rows = [{"reason": row["reason"], "message": row["message"]} for row in malformed]
    return pa.Table.from_pylist(rows, schema=schema)


def rate_partition(
    job: Job, batches: Iterator[pa.RecordBatch], schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """Rate one partition's batches: input columns + rated columns + reason + message."""
    rater = worker_rater(job.tariffs, job.digest)
    for batch in batches:
        malformed: list[dict[str, Any]] = []
        if job.kind == "csv":
            table = _csv_columns(batch)
        elif job.kind == "ndjson":
            table, malformed = _ndjson_columns(batch)
        else:
            table = pa.Table.from_batches([batch])
        rated = rater.rate(
            table,
            subscribers=subscribers_in(table),
            default_plan=job.default_plan,
            require_id=job.require_id,
        )
        yield from _plain_outputs(rated, schema).to_batches()
        if malformed:
            yield from _malformed_rows(malformed, schema).to_batches()


# -- the driver side --------------------------------------------------------------------------


def input_files(source: str) -> tuple[str, list[str]]:
    """The format and files of IN: a file, a directory (searched recursively) or a glob."""
    if "://" in source:  # a cluster filesystem: Spark lists it
        suffix = Path(source.rstrip("/*")).suffix.lower()
        return FORMATS.get(suffix, "parquet"), [source]
    path = Path(source)
    if path.is_dir():
        candidates = sorted(str(p) for p in path.rglob("*") if p.is_file())
        found = [p for p in candidates if not Path(p).name.startswith(("_", "."))]
    elif path.is_file():
        found = [source]
    else:
        found = sorted(p for p in glob.glob(source, recursive=True) if Path(p).is_file())
    kinds = {FORMATS.get(Path(p).suffix.lower()) for p in found}
    files = [p for p in found if FORMATS.get(Path(p).suffix.lower())]
    if path.is_file() and None in kinds:
        raise FormatError(f"{source}: unknown extension {path.suffix!r}")
    kinds.discard(None)
    if not files:
        raise FormatError(f"{source}: no .parquet, .csv or .ndjson files")
    if len(kinds) > 1:
        raise FormatError(f"{source}: mixes {', '.join(sorted(k for k in kinds if k))} files")
    return str(kinds.pop()), files


@contextmanager
def spark_session(master: str | None) -> Iterator[SparkSession]:
    """The running session, or a new one (stopped after) on `master`; under spark-submit the
    master comes from spark-submit, else `local[*]`."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    builder = SparkSession.builder.appName("callrate rate")
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    if master is not None or "PYSPARK_GATEWAY_PORT" not in os.environ:
        master = master or "local[*]"
        builder = builder.master(master)
        if master.startswith("local"):
            # Local workers run this interpreter (with callrate installed), not `python3`.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = builder.getOrCreate()
    try:
        yield session
    finally:
        session.stop()


def _read(spark: SparkSession, kind: str, files: list[str]) -> DataFrame:
    if kind == "parquet":
        return spark.read.parquet(*files)
    if kind == "ndjson":
        return spark.read.text(files)
    # Every column as text, headers checked against the first file's (not applied by position).
    header = spark.read.option("header", True).csv(files).schema
    from pyspark.sql.types import StringType, StructField, StructType

    text = StructType([StructField(field.name, StringType()) for field in header.fields])
    return (
        spark.read.schema(text)
        .option("header", True)
        .option("enforceSchema", False)
        .option("escape", '"')
        .csv(files)
    )


def _output_schema(kind: str, frame: DataFrame) -> StructType:
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.sql.types import ArrayType, LongType, StringType, StructField, StructType

    if kind == "ndjson":
        fields = list(from_arrow_schema(NDJSON_SCHEMA).fields)
    else:
        fields = list(frame.schema.fields)
    if kind == "csv":
        fields = [
            StructField(f.name, ArrayType(StringType())) if f.name == "packages" else f
            for f in fields
        ]
    fields = [f for f in fields if f.name not in (*OUTPUT_COLUMNS, "message")]
    fields.append(StructField("charge_fen", LongType()))
    fields.extend(StructField(name, StringType()) for name in TEXT_OUTPUTS)
    return StructType(fields)


def rate_on_spark(
    spark: SparkSession,
    source: str,
    out: str,
    *,
    tariffs: Path,
    default_plan: str | None = None,
    require_id: bool = False,
    partitions: int | None = None,
    batch_rows: int = 131_072,
) -> RateSummary:
    """Rate IN on Spark: rated rows to the Parquet dataset OUT, rejected ones to OUT.rejected."""
    from pyspark.sql import functions as f
    from pyspark.sql.pandas.types import to_arrow_schema

    began = time.perf_counter()
    kind, files = input_files(source)
    directory = tariffs.resolve()
    job = Job(kind, str(directory), tariffs_digest(directory), default_plan, require_id)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))
    frame = _read(spark, kind, files)
    if partitions:
        frame = frame.repartition(partitions)
    schema = _output_schema(kind, frame)
    arrow_schema = to_arrow_schema(schema)
    # A module-level function bound to small arguments: that is all a task carries.
    rated = frame.mapInArrow(partial(rate_partition, job, schema=arrow_schema), schema)
    # Each output reads and rates the input again: on local[2], 10,000,000 rows took 112 s so,
    # and 160 s with the rated rows persisted to disk once (docs/scale.md, Benchmark).
    ok = f.col("reason").isNull()
    rated.filter(ok).drop("reason", "message").write.mode("overwrite").parquet(out)
    rejected = rated.filter(~ok).drop(*RATED_OUTPUTS)
    rejected.write.mode("overwrite").parquet(rejected_output(out))
    rated_count = spark.read.parquet(out).count()
    rejected_count = spark.read.parquet(rejected_output(out)).count()
    total = rated_count + rejected_count
    digests = load_book(directory).digests
    return RateSummary(
        total, rated_count, rejected_count, time.perf_counter() - began, tariffs=digests
    )
