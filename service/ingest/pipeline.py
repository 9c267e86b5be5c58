"""POST /v1/cdrs (SPEC §6.2): a body cut into records, scanned into columns, rated, stored
and answered."""

from __future__ import annotations

import operator
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple

import pyarrow as pa
from sqlalchemy.orm import Session

from service.clock import utcnow
from service.db import repository
from service.errors import BadBody, BodyTooLarge, InvalidInput
from service.flows.registry import ProfileCache, default_profile, registry_reader
from service.ingest import columns
from service.ingest.cut import (
    Incoming,
    NotAnArray,
    NotJson,
    TooManyRecords,
    split_array,
    split_ndjson,
)
from service.ingest.records import (
    RATED,
    Accepted,
    Outcome,
    answer_of,
    answer_stored,
    count_charged,
    id_of,
    observe_rating,
    rate_records,
    rate_with_registry,
    retrying,
    store_records,
)
from service.ingest.scan import ScannedBody, scan_body
from service.ingest.suspense import suspense_rows
from service.ops.metrics import Metrics
from service.rating.batch import BatchRater
from service.rating.rejections import Rejected
from service.rating.scalar import Rater


def parse_batch(body: bytes, *, ndjson: bool, max_records: int) -> list[Incoming]:
    """A JSON array or NDJSON body -> records with their exact bytes, without parsing the body
    whole; BadBody when it is not JSON at all, BodyTooLarge past `max_records`."""
    with _body_errors():
        if ndjson:
            return split_ndjson(body, max_records=max_records)
        return split_array(body, max_records=max_records)


def scan_batch(body: bytes, *, ndjson: bool, max_records: int) -> ScannedBody:
    """parse_batch, with the ordinary records cut straight into columns (service.ingest.scan)."""
    with _body_errors():
        return scan_body(body, ndjson=ndjson, max_records=max_records)


@contextmanager
def _body_errors() -> Iterator[None]:
    try:
        yield
    except NotJson as exc:
        raise BadBody(f"body is not JSON: {exc}") from exc
    except NotAnArray as exc:
        raise (BadBody if exc.looks_like_ndjson else InvalidInput)(str(exc)) from exc
    except TooManyRecords as exc:
        raise BodyTooLarge(f"a batch holds at most {exc.limit} records") from exc


# Below this many records a batch costs less through the per-call path: the column way's
# fixed cost is ~1.8 ms of CPU a batch (kernel calls, Arrow calls, two COPYs) and ~3 µs a
# record, the per-call path's ~1 ms and ~27 µs a record (docs/performance-service.md).
COLUMN_WAY_FROM = 32


_BY_INDEX = operator.attrgetter("index")
_FIRST = operator.itemgetter(0)


def ingest_body(
    session: Session,
    *,
    body: bytes,
    ndjson: bool,
    max_records: int,
    rater: Rater,
    batch: BatchRater | None,
    default_plan: str | None,
    metrics: Metrics | None = None,
    now: datetime | None = None,
    registry_cache: ProfileCache | None = None,
) -> dict[str, Any]:
    """POST /v1/cdrs (SPEC §6.2): cut, rate and store a batch; its answer (BatchResponse).

    With the batch kernels (`batch`), the records the scanner (`service.ingest.scan`) takes
    are rated, stored and answered as columns (`service.ingest.columns`), but for those whose
    outcome depends on the batch (rejected, id met twice); those and every other record go
    record by record (the steps of `ingest_batch`, in the same transaction). A record whose
    id is stored already is answered against what is stored, either way. Without the kernels
    (they compile at start), and for a batch of fewer than COLUMN_WAY_FROM records, every
    record goes record by record, through the per-call path."""
    cut = _cut(body, ndjson=ndjson, max_records=max_records, batch=batch)
    if cut.scanned is None or cut.batch is None:
        outcomes = ingest_batch(
            session,
            rater=rater,
            batch=cut.batch,
            default_plan=default_plan,
            records=cut.records,
            metrics=metrics,
            now=now,
            registry_cache=registry_cache,
        )
        return answer_of(cut.records, outcomes)
    rated = _rate_columns(
        session,
        cut.scanned,
        cut.records,
        batch=cut.batch,
        rater=rater,
        default_plan=default_plan,
        metrics=metrics,
        registry_cache=registry_cache,
    )
    at = now or utcnow()
    stored = retrying(session, lambda: _store(session, rated, now=at))
    _count(metrics, stored)
    return _answer(stored)


class _Cut(NamedTuple):
    """A body cut into records: those the scanner took as columns, and the others."""

    scanned: pa.Table | None  # None: every record goes record by record
    records: list[Incoming]  # the others, in order (all of them when `scanned` is None)
    batch: BatchRater | None  # the kernels rating `records` (None: the per-call path)


def _cut(body: bytes, *, ndjson: bool, max_records: int, batch: BatchRater | None) -> _Cut:
    if batch is None:
        return _Cut(None, parse_batch(body, ndjson=ndjson, max_records=max_records), None)
    scanned = scan_batch(body, ndjson=ndjson, max_records=max_records)
    if scanned.fast.num_rows + len(scanned.others) < COLUMN_WAY_FROM:
        # a few records: the per-call path costs less
        records = sorted([*scanned.others, *columns.incoming(scanned.fast)], key=_BY_INDEX)
        return _Cut(None, records, None)
    if not scanned.fast.num_rows:
        return _Cut(None, scanned.others, batch)
    return _Cut(scanned.fast, scanned.others, batch)


class _Rated(NamedTuple):
    part: columns.FastPart  # the scanned rows that rated as columns
    records: list[Incoming]  # every other record, in order
    results: list[Accepted | Rejected]  # of `records`


def _rate_columns(
    session: Session,
    scanned: pa.Table,
    others: list[Incoming],
    *,
    batch: BatchRater,
    rater: Rater,
    default_plan: str | None,
    metrics: Metrics | None,
    registry_cache: ProfileCache | None,
) -> _Rated:
    """Rate the scanned rows in one kernel pass; the rows that cannot finish that way
    (rejected, id met twice in the batch) join the other records, rated one by one."""
    started = time.perf_counter()
    registry = registry_reader(session, registry_cache)
    fallback = default_profile(default_plan)
    other_ids = [i for r in others if (i := id_of(r)) is not None]
    part, rest = columns.rate(batch, scanned, other_ids, registry=registry, fallback=fallback)
    records = sorted([*others, *columns.incoming(rest)], key=_BY_INDEX)
    results = rate_records(rater, batch, records, registry=registry, fallback=fallback)
    observe_rating(metrics, started, len(records) + part.rows.num_rows)
    return _Rated(part, records, results)


class _Stored(NamedTuple):
    part: columns.FastPart  # the column part as stored: without the ids stored already
    records: list[Incoming]  # answered record by record: the others, then the part's raced
    outcomes: list[Outcome]  # of `records`


def _store(session: Session, rated: _Rated, *, now: datetime) -> _Stored:
    """One transaction's work (run again whole on a retry): the part by COPY, the other
    records row by row, the rejected to suspense; the part's records whose id was stored
    already (a switch's retry, a concurrent batch) answered against what is stored."""
    part = columns.store(session, rated.part, now=now)
    raced: list[Incoming] = []
    if part.rows.num_rows < rated.part.rows.num_rows:
        stored_ids = set(part.rows.column("id").to_pylist())
        raced = [r for r in columns.incoming(rated.part.rows) if id_of(r) not in stored_ids]
    outcomes = store_records(
        session, records=rated.records, results=rated.results, source="ingest", now=now
    )
    # a raced record with other content is an id.conflict: to suspense like any rejection
    records = [*rated.records, *raced]
    outcomes = [*outcomes, *answer_stored(session, raced)]
    repository.insert_suspense(session, rows=suspense_rows(records, outcomes, now=now))
    return _Stored(part, records, outcomes)


def _count(metrics: Metrics | None, stored: _Stored) -> None:
    """Charged fen and results, once the batch's work is done (not again on a retry)."""
    if metrics is None:
        return
    count_charged(metrics, stored.outcomes)
    for call_class, fen in columns.charged(stored.part).items():
        metrics.charged_fen.labels(call_class=call_class).inc(fen)
    metrics.count_results([RATED] * stored.part.rows.num_rows)
    metrics.count_results(outcome.result for outcome in stored.outcomes)


def _answer(stored: _Stored) -> dict[str, Any]:
    """The BatchResponse: the part's results written as JSON text from its columns, merged
    in index order with the others' (as a whole when there are no others)."""
    texts = columns.result_texts(stored.part)
    answer = answer_of(stored.records, stored.outcomes)
    answer["counts"][RATED] += len(texts.ends)
    if not answer["results"]:  # as a whole: no Python object per record
        answer["results"] = columns.json_array(texts)
        return answer
    merged = [
        *zip(
            stored.part.rows.column("index").to_pylist(),
            columns.json_items(texts),
            strict=True,
        ),
        *((result["index"], result) for result in answer["results"]),
    ]
    answer["results"] = [result for _, result in sorted(merged, key=_FIRST)]
    return answer


def ingest_batch(
    session: Session,
    *,
    rater: Rater,
    default_plan: str | None,
    records: Sequence[Incoming],
    batch: BatchRater | None = None,
    metrics: Metrics | None = None,
    now: datetime | None = None,
    registry_cache: ProfileCache | None = None,
) -> list[Outcome]:
    """SPEC §6.2: rate and store a batch; rejected records go whole to suspense (a record
    already waiting there, byte for byte, is not added twice). With `batch`, records are
    rated through the batch path (`rate_records`)."""
    at = now or utcnow()

    results = rate_with_registry(
        session,
        rater=rater,
        batch=batch,
        default_plan=default_plan,
        records=records,
        metrics=metrics,
        registry_cache=registry_cache,
    )

    def work() -> list[Outcome]:
        outcomes = store_records(session, records=records, results=results, source="ingest", now=at)
        repository.insert_suspense(session, rows=suspense_rows(records, outcomes, now=at))
        return outcomes

    outcomes = retrying(session, work)
    count_charged(metrics, outcomes)
    if metrics is not None:
        metrics.count_results(outcome.result for outcome in outcomes)
    return outcomes
