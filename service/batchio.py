"""`callrate rate`: stream a Parquet, CSV or NDJSON file of CDRs through the batch path.

Records are read, rated and written one record batch at a time, so memory stays flat however
large the file. Rated rows go to OUT; rejected rows go to a second file of the same format
with the rejection `reason` (stable code, its first part names the field) and `message`.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from service.rating.batch import OUTPUT_COLUMNS, BatchRater
from service.rating.cdr import parse_cdr
from service.rating.rejections import REASON_CODES, REASONS, Rejected
from service.rating.scalar import Rater

DEFAULT_BATCH_ROWS = 131_072
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".ndjson": "ndjson"}
FORMATS[".jsonl"] = "ndjson"
PACKAGE_SEPARATOR = ";"  # CSV has no lists: packages are written "ld_night;other"
STRING_FIELDS = ("id", "caller", "callee", "start", "type", "forward_kind", "visited_area", "plan")
NDJSON_SCHEMA = pa.schema(
    [
        *((name, pa.string()) for name in STRING_FIELDS),
        ("duration_s", pa.int64()),
        ("packages", pa.list_(pa.string())),
    ]
)
RATED_DROP = ("reason",)
MESSAGES = pa.array([REASONS[code] for code in REASON_CODES], type=pa.string())


class FormatError(ValueError):
    """The file's extension names no supported format."""


def file_format(path: Path) -> str:
    """parquet, csv or ndjson, from the file name's extension."""
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError as exc:
        known = ", ".join(sorted(FORMATS))
        raise FormatError(f"{path}: unknown extension {path.suffix!r} (use {known})") from exc


def rejected_path(out: Path) -> Path:
    """OUT's sibling for rejected rows: out.parquet -> out.rejected.parquet."""
    return out.with_name(f"{out.stem}.rejected{out.suffix}")


# -- reading ----------------------------------------------------------------------------------


@dataclass
class Source:
    """Record batches of a file, how many rows it holds if known, and unreadable lines."""

    batches: Iterator[pa.RecordBatch]
    total_rows: int | None
    malformed: list[dict[str, Any]]


def open_source(path: Path, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> Source:
    """Stream a CDR file by its extension."""
    kind = file_format(path)
    if kind == "parquet":
        parquet = pq.ParquetFile(path)
        return Source(parquet.iter_batches(batch_size=batch_rows), parquet.metadata.num_rows, [])
    if kind == "csv":
        return Source(_csv_batches(path, batch_rows), None, [])
    malformed: list[dict[str, Any]] = []
    return Source(_ndjson_batches(path, batch_rows, malformed), None, malformed)


def _csv_batches(path: Path, batch_rows: int) -> Iterator[pa.RecordBatch]:
    # Every field is text: a value that does not fit is the record's problem, not the file's.
    header = pacsv.open_csv(path).schema.names
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=1 << 23),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header}, strings_can_be_null=True
        ),
    )
    for batch in reader:
        if "packages" in batch.schema.names:
            index = batch.schema.get_field_index("packages")
            lists = pc.split_pattern(batch.column(index), PACKAGE_SEPARATOR)
            batch = batch.set_column(index, "packages", lists)
        yield from _slices(batch, batch_rows)


def _slices(batch: pa.RecordBatch, rows: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, batch.num_rows, rows):
        yield batch.slice(start, rows)


def _ndjson_batches(
    path: Path, batch_rows: int, malformed: list[dict[str, Any]]
) -> Iterator[pa.RecordBatch]:
    options = pajson.ParseOptions(explicit_schema=NDJSON_SCHEMA, unexpected_field_behavior="ignore")
    with path.open("rb") as lines:
        number = 0
        while True:
            chunk = [line for _, line in zip(range(batch_rows), lines, strict=False)]
            if not chunk:
                return
            first_line = number + 1
            number += len(chunk)
            try:
                table = pajson.read_json(
                    io.BytesIO(b"".join(_terminated(chunk))),
                    read_options=pajson.ReadOptions(block_size=1 << 26),
                    parse_options=options,
                )
            except pa.ArrowInvalid:
                table = _ndjson_lines(chunk, first_line, options, malformed)
            yield from table.combine_chunks().to_batches()


def _terminated(chunk: list[bytes]) -> Iterator[bytes]:
    for line in chunk:
        yield line if line.endswith(b"\n") else line + b"\n"


def _ndjson_lines(
    chunk: list[bytes],
    first_line: int,
    options: pajson.ParseOptions,
    malformed: list[dict[str, Any]],
) -> pa.Table:
    """A chunk the block reader refused: keep the lines that fit, set aside the others."""
    good: list[bytes] = []
    for offset, line in enumerate(chunk):
        if not line.strip():
            continue
        try:
            pajson.read_json(io.BytesIO(line), parse_options=options)
            good.append(line if line.endswith(b"\n") else line + b"\n")
        except pa.ArrowInvalid:
            malformed.append(_malformed(line, first_line + offset))
    if not good:
        return NDJSON_SCHEMA.empty_table()
    return pajson.read_json(io.BytesIO(b"".join(good)), parse_options=options)


def _malformed(line: bytes, number: int) -> dict[str, Any]:
    """A line that is not a CDR object with well-typed fields: its reason from parse_cdr."""
    code = "record.invalid"
    try:
        parse_cdr(orjson.loads(line), require_id=False)
    except Rejected as rejection:
        code = rejection.code
    except orjson.JSONDecodeError:
        pass
    text = line.decode("utf-8", errors="replace").rstrip("\n")
    return {"line": number, "raw": text, "reason": code, "message": REASONS[code]}


# -- writing ----------------------------------------------------------------------------------


class Sink(Protocol):
    """Somewhere rated or rejected rows are written batch by batch."""

    def write(self, table: pa.Table) -> None:
        """Append rows."""

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        """Append rows given as objects (NDJSON only)."""

    def close(self) -> None:
        """Flush and close the file."""


class _ParquetSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table)

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        raise AssertionError("only NDJSON has unreadable lines")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        elif not self.path.exists():
            pq.write_table(pa.table({}), self.path)


def _plain(table: pa.Table) -> pa.Table:
    """Dictionary columns as plain strings, for text formats."""
    for index, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(index, field.name, table.column(index).cast(pa.string()))
    return table


class _CsvSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: pacsv.CSVWriter | None = None

    def write(self, table: pa.Table) -> None:
        table = _plain(table)
        if "packages" in table.column_names:
            index = table.column_names.index("packages")
            joined = pc.binary_join(table.column(index), PACKAGE_SEPARATOR)
            table = table.set_column(index, "packages", joined)
        if self.writer is None:
            self.writer = pacsv.CSVWriter(self.path, table.schema)
        self.writer.write_table(table)

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        raise AssertionError("only NDJSON has unreadable lines")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        elif not self.path.exists():
            self.path.write_bytes(b"")


class _NdjsonSink:
    def __init__(self, path: Path) -> None:
        self.file: IO[bytes] = path.open("wb")

    def write(self, table: pa.Table) -> None:
        self.write_rows(_plain(table).to_pylist())

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        option = orjson.OPT_APPEND_NEWLINE
        self.file.write(b"".join(orjson.dumps(_without_nulls(row), option=option) for row in rows))

    def close(self) -> None:
        self.file.close()


def _without_nulls(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if value is not None}


def open_sink(path: Path) -> Sink:
    """A writer for the file's format (by its extension)."""
    kind = file_format(path)
    if kind == "parquet":
        return _ParquetSink(path)
    if kind == "csv":
        return _CsvSink(path)
    return _NdjsonSink(path)


# -- the command ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateSummary:
    """What `callrate rate` did."""

    rows: int
    rated: int
    rejected: int
    seconds: float

    def line(self) -> str:
        """One line for the terminal."""
        speed = self.rows / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.rows:,} records: {self.rated:,} rated, {self.rejected:,} rejected "
            f"in {self.seconds:.2f} s ({speed:,.0f} CDRs/s)"
        )


Progress = Callable[[int, int | None, float], None]


def progress_bar(stream: IO[str]) -> Progress:
    """A one-line progress bar redrawn in place on a terminal."""

    def draw(done: int, total: int | None, elapsed: float) -> None:
        speed = done / elapsed if elapsed > 0 else 0.0
        if total:
            filled = int(30 * done / total)
            bar = "#" * filled + "-" * (30 - filled)
            stream.write(f"\r[{bar}] {done:,}/{total:,} {speed:,.0f} CDRs/s")
        else:
            stream.write(f"\r{done:,} records {speed:,.0f} CDRs/s")
        stream.flush()

    return draw


def rate_file(
    source_path: Path,
    out_path: Path,
    rater: Rater,
    *,
    rejected: Path | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    default_plan: str | None = None,
    require_id: bool = False,
    progress: Progress | None = None,
) -> RateSummary:
    """Rate every record of a file; rated rows to `out_path`, rejected ones beside it."""
    file_format(out_path)
    rejected = rejected or rejected_path(out_path)
    batch_rater = BatchRater(rater)
    source = open_source(source_path, batch_rows=batch_rows)
    rated_sink, rejected_sink = open_sink(out_path), open_sink(rejected)
    began = time.perf_counter()
    rows = rated_count = 0
    try:
        for batch in source.batches:
            table = batch_rater.rate(batch, default_plan=default_plan, require_id=require_id)
            ok = table.column("reason").is_null()
            good = table.filter(ok).drop_columns(list(RATED_DROP))
            bad = table.filter(pc.invert(ok)).drop_columns(
                [c for c in OUTPUT_COLUMNS if c != "reason"]
            )
            bad = bad.append_column("message", _messages(bad.column("reason")))
            rated_sink.write(good)
            if bad.num_rows:
                rejected_sink.write(bad)
            if source.malformed:
                rejected_sink.write_rows(source.malformed)
                rows += len(source.malformed)
                source.malformed.clear()
            rows += table.num_rows
            rated_count += good.num_rows
            if progress is not None:
                progress(rows, source.total_rows, time.perf_counter() - began)
        if source.malformed:
            rejected_sink.write_rows(source.malformed)
            rows += len(source.malformed)
    finally:
        rated_sink.close()
        rejected_sink.close()
    if progress is not None:
        sys.stderr.write("\n")
    return RateSummary(rows, rated_count, rows - rated_count, time.perf_counter() - began)


def _messages(reasons: pa.ChunkedArray) -> pa.ChunkedArray:
    chunks = [
        pa.DictionaryArray.from_arrays(chunk.indices, MESSAGES)
        for chunk in reasons.chunks
        if isinstance(chunk, pa.DictionaryArray)
    ]
    return pa.chunked_array(chunks, type=pa.dictionary(pa.int16(), pa.string()))
