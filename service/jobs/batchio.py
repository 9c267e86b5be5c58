"""`callrate rate`: stream a Parquet, CSV or NDJSON file of CDRs through the batch path.

Records are read, rated and written one record batch at a time, so memory stays flat however
large the file. Rated rows go to OUT; rejected rows go to a second file of the same format
with the rejection `reason` (stable code, its first part names the field) and `message`.
Reading, rating and writing overlap: a reader thread decodes the next batches and a writer
thread encodes the previous ones while the main thread rates (pyarrow and the batch kernels
release the GIL), each a few batches apart at most.
"""

from __future__ import annotations

import io
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from service.rating.batch import OUTPUT_COLUMNS, RECORD_SCHEMA, BatchRater
from service.rating.cdr import parse_cdr
from service.rating.rejections import REASON_CODES, REASONS, Rejected
from service.rating.scalar import Rater, SubscriberProfile

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
# Parquet output: dictionary pages only for text that repeats (the high-cardinality columns
# would fall back to plain encoding after a costly try), min/max statistics only for numbers
# (string statistics compare every value), snappy pages (no compression writes about 30 %
# faster but twice the bytes).
PLAIN_TEXT_COLUMNS = ("id", "caller", "callee", "start")
PARQUET_READ_BUFFER = 1 << 22
PIPELINE_DEPTH = 2  # batches in flight between the reader, the rater and the writer
WARM_UP_SHOWN_S = 1.0  # a kernel warm-up this long is named in the summary line
MESSAGES = pa.array([REASONS[code] for code in REASON_CODES], type=pa.string())
# Registry profiles carried beside each CDR (`callrate rerate --export`): the caller's MSISDN
# as registered (null: not registered), and its plan, home area and packages.
PROFILE_SCHEMA = pa.schema(
    [
        ("subscriber", pa.string()),
        ("subscriber_plan", pa.string()),
        ("subscriber_home_area", pa.string()),
        ("subscriber_packages", pa.list_(pa.string())),
    ]
)


class FormatError(ValueError):
    """The file's extension names no supported format."""


def file_format(path: Path) -> str:
    """parquet, csv or ndjson, from the file name's extension."""
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError as exc:
        known = ", ".join(sorted(FORMATS))
        raise FormatError(f"{path}: unknown extension {path.suffix!r} (use {known})") from exc


def subscribers_in(data: pa.Table | pa.RecordBatch) -> dict[str, SubscriberProfile] | None:
    """The registry profiles a file carries in PROFILE_SCHEMA columns, if it has them."""
    if not set(PROFILE_SCHEMA.names) <= set(data.schema.names):
        return None
    rows = data.select(PROFILE_SCHEMA.names).to_pydict().values()
    return {
        msisdn: SubscriberProfile(plan, home_area, tuple(packages or ()))
        for msisdn, plan, home_area, packages in zip(*rows, strict=True)
        if msisdn is not None and plan is not None
    }


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
    """Stream a CDR file by its extension. FormatError when a Parquet or CSV file's columns
    hold none of the CDR fields (a CSV separated by `;`, say): that is the file's problem,
    not every record's."""
    kind = file_format(path)
    if kind == "parquet":
        # Streamed column by column: pre-buffering would hold whole row groups in memory.
        parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=PARQUET_READ_BUFFER)
        _check_columns(path, parquet.schema_arrow.names)
        return Source(parquet.iter_batches(batch_size=batch_rows), parquet.metadata.num_rows, [])
    if kind == "csv":
        header = pacsv.open_csv(path).schema.names
        _check_columns(path, header)
        return Source(_csv_batches(path, header, batch_rows), None, [])
    malformed: list[dict[str, Any]] = []
    return Source(_ndjson_batches(path, batch_rows, malformed), None, malformed)


def _check_columns(path: Path, names: list[str]) -> None:
    if not set(names) & set(RECORD_SCHEMA.names):
        found = ", ".join(repr(name) for name in names[:5]) + (", ..." if len(names) > 5 else "")
        csv = (
            "; a CSV file is comma-separated, its first line the header"
            if path.suffix == ".csv"
            else ""
        )
        raise FormatError(
            f"{path}: none of its columns is a CDR field (found {found}); expected columns "
            f"named {', '.join(RECORD_SCHEMA.names)}{csv}"
        )


def _csv_batches(path: Path, header: list[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    # Every field is text: a value that does not fit is the record's problem, not the file's.
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
    def __init__(self, path: Path, metadata: dict[str, str]) -> None:
        self.path = path
        self.metadata = metadata
        self.writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self.writer is None:
            numeric = [f.name for f in table.schema if pa.types.is_integer(f.type)]
            text = [n for n in table.column_names if n not in (*numeric, *PLAIN_TEXT_COLUMNS)]
            self.writer = pq.ParquetWriter(
                self.path,
                table.schema.with_metadata(self.metadata),
                compression="snappy",
                use_dictionary=text,
                write_statistics=numeric,
            )
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


# Parquet key-value metadata: the tariffs a file was rated with, {"version": "sha256:…"}.
TARIFFS_METADATA = "callrate.tariffs"
DIGEST_SHOWN = len("sha256:") + 12  # of a digest in the summary line


def open_sink(path: Path, metadata: dict[str, str] | None = None) -> Sink:
    """A writer for the file's format (by its extension); Parquet keeps `metadata`."""
    kind = file_format(path)
    if kind == "parquet":
        return _ParquetSink(path, metadata or {})
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
    seconds: float  # reading, rating and writing: the kernels were ready before
    warm_up_seconds: float = 0.0  # compiling the kernels, or loading them from the cache
    tariffs: dict[str, str] | None = None  # version -> digest of the tariffs used

    def line(self) -> str:
        """One line for the terminal."""
        line = (
            f"{self.rows:,} records: {self.rated:,} rated, {self.rejected:,} rejected "
            f"in {self.seconds:.2f} s"
        )
        if self.rows and self.seconds > 0:
            line += f" ({self.rows / self.seconds:,.0f} CDRs/s)"
        if self.warm_up_seconds >= WARM_UP_SHOWN_S:
            line += (
                f", after {self.warm_up_seconds:.1f} s compiling the batch kernels "
                "(once: later runs load them from the cache)"
            )
        if self.tariffs:
            shown = (f"{v} {d[:DIGEST_SHOWN]}…" for v, d in self.tariffs.items())
            line += "; tariffs " + ", ".join(shown)
        return line


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
    source = open_source(source_path, batch_rows=batch_rows)
    warming = time.perf_counter()
    batch_rater = BatchRater(rater)
    batch_rater.warm()  # apart: a first run's compile would hide the rating speed
    digests = rater.book.digests
    metadata = {TARIFFS_METADATA: orjson.dumps(digests).decode()}
    rated_sink, rejected_sink = open_sink(out_path, metadata), open_sink(rejected, metadata)
    began = time.perf_counter()
    rows = rated_count = 0
    writer = _WriteBehind(PIPELINE_DEPTH)
    try:
        for batch, malformed in _prefetched(_with_malformed(source), PIPELINE_DEPTH):
            if batch is not None:
                table = batch_rater.rate(
                    batch,
                    subscribers=subscribers_in(batch),
                    default_plan=default_plan,
                    require_id=require_id,
                )
                good, bad = _split(table)
                writer.submit(_write_tables, rated_sink, good, rejected_sink, bad)
                rows += table.num_rows
                rated_count += good.num_rows
            if malformed:
                writer.submit(rejected_sink.write_rows, malformed)
                rows += len(malformed)
            if progress is not None:
                progress(rows, source.total_rows, time.perf_counter() - began)
    finally:
        try:
            writer.close()
        finally:
            rated_sink.close()
            rejected_sink.close()
    if progress is not None:
        sys.stderr.write("\n")
    return RateSummary(
        rows,
        rated_count,
        rows - rated_count,
        time.perf_counter() - began,
        began - warming,
        digests,
    )


def _split(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Rated rows without `reason`; rejected rows with the input columns, reason and message."""
    ok = table.column("reason").is_null()
    good = table.filter(ok).drop_columns(list(RATED_DROP))
    bad = table.filter(pc.invert(ok)).drop_columns([c for c in OUTPUT_COLUMNS if c != "reason"])
    return good, bad.append_column("message", _messages(bad.column("reason")))


def _write_tables(rated_sink: Sink, good: pa.Table, rejected_sink: Sink, bad: pa.Table) -> None:
    rated_sink.write(good)
    if bad.num_rows:
        rejected_sink.write(bad)


def _with_malformed(source: Source) -> Iterator[tuple[pa.RecordBatch | None, list[dict[str, Any]]]]:
    """Each batch with the unreadable lines found while reading it; the rest at the end."""
    for batch in source.batches:
        found = source.malformed[:]
        source.malformed.clear()
        yield batch, found
    yield None, source.malformed[:]


Item = TypeVar("Item")


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


def _put(channel: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    """Put unless the consumer has stopped; False when it has."""
    while not stop.is_set():
        try:
            channel.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _prefetched(items: Iterator[Item], depth: int) -> Iterator[Item]:
    """`items`, produced by a background thread up to `depth` ahead; its errors re-raised."""
    channel: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(channel, item, stop):
                    return
            _put(channel, _END, stop)
        except BaseException as error:  # handed to the consumer, raised there
            _put(channel, _Failed(error), stop)

    thread = threading.Thread(target=produce, name="callrate-read", daemon=True)
    thread.start()
    try:
        while (item := channel.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]  # everything else in the channel is an Item
    finally:
        stop.set()
        thread.join()


class _WriteBehind:
    """Runs submitted writes in order on one background thread, at most `depth` queued."""

    def __init__(self, depth: int) -> None:
        self.jobs: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.Queue(
            maxsize=depth
        )
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="callrate-write", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            if self.error is None:
                try:
                    job[0](*job[1])
                except BaseException as error:  # raised in the submitting thread
                    self.error = error

    def submit(self, write: Callable[..., None], *arguments: Any) -> None:
        """Queue a write; raises the error of an earlier one."""
        if self.error is not None:
            raise self.error
        self.jobs.put((write, arguments))

    def close(self) -> None:
        """Finish the queued writes; raises the first error."""
        self.jobs.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def _messages(reasons: pa.ChunkedArray) -> pa.ChunkedArray:
    chunks = [
        pa.DictionaryArray.from_arrays(chunk.indices, MESSAGES)
        for chunk in reasons.chunks
        if isinstance(chunk, pa.DictionaryArray)
    ]
    return pa.chunked_array(chunks, type=pa.dictionary(pa.int16(), pa.string()))
