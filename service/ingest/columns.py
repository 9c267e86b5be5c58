"""Ingest of the records the scanner (`service.ingest.scan`) cut from a body as columns
(SPEC §6.2), kept as columns.

The scanner's rows are rated in one kernel pass, stored with one COPY per table (one
`executemany` on SQLite) and answered from the arrays: no Python object per record but its
answer. `pipeline.ingest_body` sends the records this way cannot finish the record-by-record
way (`pipeline.ingest_batch`'s steps), which stays the reference:

- a record the kernels reject (its id may be stored already: then it is a duplicate or an
  id.conflict, never a rejection to suspense; the record-by-record way looks that up);
- a record whose id occurs more than once in the batch (the first one that rates claims it).

A row whose id is stored already (a switch's retry, a concurrent batch) is found by the
insert, as on the record-by-record way: it is not stored again, and `flows` answers it
against what is stored.

tests/ingest/test_pipeline.py stores batches this way, and record by record through the per-call
and the batch paths, and compares every row and answer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.orm import Session

from service.db import repository
from service.ingest import text_kernels
from service.ingest.cut import Incoming
from service.rating import batch_kernels as k
from service.rating.batch import CALL_CLASSES, BatchRater
from service.rating.classify import MOBILE_LEN
from service.rating.pricing import Leg
from service.rating.scalar import SubscriberProfile

_DIAL_NAMES = pa.array(k.DIAL_NAMES, pa.string())
_ROAMING_NAMES = pa.array(k.ROAMING_NAMES, pa.string())
_CLASSES = pa.array(CALL_CLASSES, pa.string())
_INSTANT = pa.timestamp("us", "UTC")


class FastPart(NamedTuple):
    """Scanned rows that rated, with their ratings (arrays of one entry per row)."""

    rows: pa.Table  # service.ingest.scan columns: index, raw, the CDR fields
    national: pa.Array  # the caller's national form
    charge: npt.NDArray[np.int64]
    call_class: npt.NDArray[np.int16]
    dial: npt.NDArray[np.int16]
    roaming: npt.NDArray[np.int16]
    tariff: npt.NDArray[np.int16]
    start_epoch: npt.NDArray[np.int64]
    profiles: Mapping[str, SubscriberProfile]
    fallback: SubscriberProfile | None
    versions: Sequence[str]  # tariff versions, as the tariff indices count them


def incoming(rows: pa.Table) -> list[Incoming]:
    """Scanned rows as the records parse_batch gives (the scanner took only what orjson
    decodes to the same values)."""
    return [
        Incoming(raw, index, orjson.loads(raw))
        for index, raw in zip(
            rows.column("index").to_pylist(),
            (text.encode() for text in rows.column("raw").to_pylist()),
            strict=True,
        )
    ]


def _claimed_elsewhere(ids: pa.Array, other_ids: Sequence[str]) -> npt.NDArray[np.bool_]:
    """Rows whose id occurs twice among `ids`, or among `other_ids` (the batch's other
    records): the record-by-record way decides which record claims it."""
    n = len(ids)
    if not other_ids and pc.count_distinct(ids).as_py() == n:
        return np.zeros(n, dtype=np.bool_)
    counts = pc.value_counts(ids)
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    taken = pa.concat_arrays([repeated, pa.array(other_ids, pa.string())])
    return np.asarray(pc.is_in(ids, value_set=taken).to_numpy(zero_copy_only=False), np.bool_)


def rate(
    batch: BatchRater,
    rows: pa.Table,
    other_ids: Sequence[str],
    *,
    registry: Callable[[list[str]], Mapping[str, SubscriberProfile]],
    fallback: SubscriberProfile | None,
) -> tuple[FastPart, pa.Table]:
    """Rate scanned rows in one kernel pass. The rows that can finish this way as a FastPart
    (perhaps none), and the other rows, for the record-by-record way."""
    national = pc.utf8_slice_codeunits(rows.column("caller"), -MOBILE_LEN)
    callers = [
        number
        for number in pc.unique(national).to_pylist()
        if number is not None and number.isascii() and number.isdigit()
    ]
    profiles = registry(sorted(callers))
    out, rated = batch.rate_outputs(
        rows,
        subscribers=profiles,
        default_plan=fallback.plan if fallback is not None else None,
        require_id=True,
    )
    keep = rated & ~_claimed_elsewhere(rows.column("id").combine_chunks(), other_ids)
    part = FastPart(
        rows=rows,
        national=national.combine_chunks(),
        charge=out.charge,
        call_class=out.call_class,
        dial=out.dial,
        roaming=out.roaming,
        tariff=out.tariff,
        start_epoch=out.start_epoch,
        profiles=profiles,
        fallback=fallback,
        versions=batch.versions,
    )
    if keep.all():  # the usual case: no copy of the rows
        return part, rows.slice(0, 0)
    return _only(part, pa.array(keep)), rows.filter(pa.array(~keep))


def _constant(value: Any, n: int, type_: pa.DataType) -> pa.Array:
    return pa.repeat(pa.scalar(value, type_), n)


def _profiles_used(part: FastPart) -> tuple[list[tuple[Any, ...]], pa.Array]:
    """The profile columns (records.rating_row's: plan, home area, packages, registered) of
    each caller the part holds, and each row's number among them."""
    encoded = pc.dictionary_encode(part.national)
    used = [
        profile_columns(part.profiles.get(number, part.fallback))
        for number in encoded.dictionary.to_pylist()
    ]
    return used, encoded.indices


@functools.lru_cache(maxsize=4096)
def profile_columns(profile: SubscriberProfile | None) -> tuple[Any, ...]:
    """A rating row's profile_plan, profile_home_area, profile_packages (JSON) and
    profile_registered for the profile a rating used (records.rating_row's too)."""
    if profile is None:
        return (None, None, None, None)
    packages = orjson.dumps(profile.packages).decode()
    return (profile.plan, profile.home_area, packages, profile.registered)


@functools.lru_cache(maxsize=8)
def _rating_template(versions: tuple[str, ...]) -> text_kernels.RatingTemplate:
    return text_kernels.rating_template(versions, CALL_CLASSES, k.DIAL_NAMES, k.ROAMING_NAMES)


def _cdr_rows(part: FastPart, now: datetime, *, postgres: bool) -> repository.Rows:
    """The part's `cdrs` rows: CSV written by a kernel for PostgreSQL, else an Arrow table."""
    rows = part.rows
    if postgres:
        ids = rows.column("id").combine_chunks()
        text = text_kernels.cdrs_csv(
            pc.sort_indices(ids).to_numpy(),  # in id order, as insert_cdrs_new sorts
            ids=ids,
            callers=rows.column("caller"),
            callees=rows.column("callee"),
            start_epoch=part.start_epoch,
            durations=rows.column("duration_s").to_numpy(),
            legs=rows.column("type"),
            default_leg=Leg.ORIGINATING.value,
            raws=rows.column("raw"),
            received_at=now.isoformat(),
            national_digits=MOBILE_LEN,
        )
        return repository.Csv(text.data, ids)
    return pa.table(
        [
            rows.column("id"),
            part.national,
            pc.utf8_slice_codeunits(rows.column("callee"), 0, text_kernels.CALLEE_CHARACTERS),
            pa.array(part.start_epoch),
            rows.column("duration_s"),
            pc.fill_null(rows.column("type"), Leg.ORIGINATING.value),
            rows.column("raw"),
            pa.repeat(pa.scalar(now, _INSTANT), rows.num_rows),
        ],
        names=list(repository.CDR_COLUMNS),
    )


def _rating_rows(part: FastPart, now: datetime, *, postgres: bool) -> repository.Rows:
    """The part's `ratings` rows (first ratings, source ingest): CSV written by a kernel for
    PostgreSQL, else an Arrow table."""
    n = part.rows.num_rows
    ids = part.rows.column("id").combine_chunks()
    profiles, profile = _profiles_used(part)
    if postgres:
        text = text_kernels.ratings_csv(
            _rating_template(tuple(part.versions)),
            ids=ids,
            tariff=part.tariff,
            charge=part.charge,
            call_class=part.call_class,
            dial=part.dial,
            roaming=part.roaming,
            rated_at=now.isoformat(),
            source=SOURCE,
            profiles=profiles,
            profile=profile.to_numpy(),
        )
        return repository.Csv(text.data, ids)
    profile_columns = [
        pa.array([values[i] for values in profiles], type_).take(profile)
        for i, type_ in enumerate((pa.string(), pa.string(), pa.string(), pa.bool_()))
    ]
    return pa.table(
        [
            ids,
            _constant(1, n, pa.int32()),
            pa.array(part.versions, pa.string()).take(pa.array(part.tariff)),
            pa.array(part.charge),
            _CLASSES.take(pa.array(part.call_class)),
            _DIAL_NAMES.take(pa.array(part.dial)),
            _ROAMING_NAMES.take(pa.array(part.roaming)),
            pa.repeat(pa.scalar(now, _INSTANT), n),
            _constant(SOURCE, n, pa.string()),
            *profile_columns,
        ],
        names=list(repository.RATING_COLUMNS),
    )


SOURCE = "ingest"


def store(session: Session, part: FastPart, *, now: datetime) -> FastPart:
    """Insert the part's cdrs and ratings rows (repository.CDR_COLUMNS, RATING_COLUMNS) but
    those whose id is stored already (a switch's retry, a concurrent batch); the part that
    was stored."""
    postgres = session.get_bind().dialect.name == "postgresql"
    inserted = repository.insert_cdrs_new(session, rows=_cdr_rows(part, now, postgres=postgres))
    if len(inserted) < part.rows.num_rows:
        stored = pa.array(list(inserted), pa.string())
        part = _only(part, pc.is_in(part.rows.column("id"), value_set=stored))
    repository.insert_ratings(session, rows=_rating_rows(part, now, postgres=postgres))
    return part


def _only(part: FastPart, mask: pa.Array | pa.ChunkedArray) -> FastPart:
    """The part's rows where `mask` holds."""
    keep = np.asarray(mask.to_numpy(zero_copy_only=False), dtype=np.bool_)
    return part._replace(
        rows=part.rows.filter(pa.array(keep)),
        national=part.national.filter(pa.array(keep)),
        charge=part.charge[keep],
        call_class=part.call_class[keep],
        dial=part.dial[keep],
        roaming=part.roaming[keep],
        tariff=part.tariff[keep],
        start_epoch=part.start_epoch[keep],
    )


@functools.lru_cache(maxsize=8)
def _template(versions: tuple[str, ...]) -> text_kernels.Template:
    return text_kernels.template(CALL_CLASSES, versions)


def result_texts(part: FastPart) -> text_kernels.Results:
    """The wire form of schemas.RecordResult of each row (records.record_result's), as JSON
    text written from the columns (service.ingest.text_kernels), separated by commas."""
    rows = part.rows
    return text_kernels.results(
        _template(tuple(part.versions)),
        rows.column("index").combine_chunks().to_numpy(),
        rows.column("id").combine_chunks(),
        part.charge,
        part.call_class,
        part.tariff,
    )


def json_array(texts: text_kernels.Results) -> orjson.Fragment:
    """The results as one JSON array, ready for orjson."""
    return orjson.Fragment(b"[" + texts.text.tobytes() + b"]")


def json_items(texts: text_kernels.Results) -> list[orjson.Fragment]:
    """Each result as a JSON text of its own, ready for orjson."""
    data, ends = texts.text.tobytes(), texts.ends.tolist()
    starts = [0, *(end + 1 for end in ends[:-1])][: len(ends)]  # past each comma
    return [orjson.Fragment(data[start:end]) for start, end in zip(starts, ends, strict=True)]


def charged(part: FastPart) -> dict[str, int]:
    """Charged fen by call class, for each class the part holds."""
    totals = np.zeros(len(CALL_CLASSES), dtype=np.int64)
    np.add.at(totals, part.call_class, part.charge)
    present = np.bincount(part.call_class, minlength=len(CALL_CLASSES)) > 0
    return {CALL_CLASSES[i]: int(totals[i]) for i in np.flatnonzero(present).tolist()}
