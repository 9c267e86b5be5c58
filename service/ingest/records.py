"""Records through ingest (SPEC §6.2): each rated (by the batch path's kernels on its columns,
or by the per-call path), checked against what is stored, stored with its rating, and answered."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypeVar, cast

from sqlalchemy.orm import Session

from service.db import repository
from service.flows.registry import ProfileCache, Registry, default_profile, registry_reader
from service.ingest import columns
from service.ingest.cut import (
    Incoming,
    Raw,
)
from service.ops.metrics import Metrics
from service.rating.batch import BatchRater, record_columns
from service.rating.cdr import (
    MAX_ID_CHARS,
    CallRecord,
    is_storable_text,
    parse_cdr,
)
from service.rating.classify import MOBILE_LEN
from service.rating.pricing import Leg
from service.rating.rejections import Rejected
from service.rating.result import Rating
from service.rating.scalar import Rater, SubscriberProfile

RATED, DUPLICATE, REJECTED = "rated", "duplicate", "rejected"


ORIGINATING = Leg.ORIGINATING.value  # a CDR without `type`


T = TypeVar("T")


@dataclass(slots=True)
class Outcome:
    """What happened to one record."""

    id: str | None
    result: str
    charge_fen: int | None = None
    call_class: str | None = None  # of a record rated now
    tariff: str | None = None
    rejection: Rejected | None = None


def record_result(index: int, outcome: Outcome) -> dict[str, Any]:
    """Outcome -> the wire form of schemas.RecordResult (built as a dict: batches are big)."""
    result: dict[str, Any] = {"index": index, "id": outcome.id, "result": outcome.result}
    if outcome.charge_fen is not None:
        result["charge_fen"] = outcome.charge_fen
    if outcome.call_class is not None:  # the switch needs the charge; GET /v1/cdrs/{id} the rest
        result["call_class"] = outcome.call_class
        result["tariff"] = outcome.tariff
    if outcome.rejection is not None:
        result.update(
            field=outcome.rejection.field,
            code=outcome.rejection.code,
            reason=outcome.rejection.message,
        )
    return result


def counts_of(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """How many outcomes of each result."""
    counts = {RATED: 0, DUPLICATE: 0, REJECTED: 0}
    for outcome in outcomes:
        counts[outcome.result] += 1
    return counts


def answer_of(records: Sequence[Incoming], outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The wire form of schemas.BatchResponse."""
    return {
        "counts": counts_of(outcomes),
        "results": [
            record_result(record.index, outcome)
            for record, outcome in zip(records, outcomes, strict=True)
        ],
    }


# Conflicts the database reports (PostgreSQL deadlock, serialization failure) run the batch
# again, this many times in all, after a short random pause that grows with each attempt.
INGEST_ATTEMPTS = 5


RETRY_PAUSE_S = 0.02


def id_of(record: Incoming) -> str | None:
    """The record's id when it can be stored and claimed (1-64 characters, storable text)."""
    value = record.value
    if isinstance(value, Mapping):
        record_id = value.get("id")
        if (
            isinstance(record_id, str)
            and 0 < len(record_id) <= MAX_ID_CHARS
            and is_storable_text(record_id)
        ):
            return record_id
    return None


def _canonical(raw: Raw) -> str | None:
    """A record's content whatever its formatting: keys sorted, numbers exact (Python's json
    keeps every digit of an integer; orjson rounds those beyond 64 bits)."""
    try:
        value = json.loads(str(raw, "utf-8"))
    except (ValueError, RecursionError):
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _same_content(raw: Raw, other: Raw) -> bool:
    """SPEC §6.2: equal fields and values, whatever the JSON formatting."""
    if raw == other:
        return True
    canonical = _canonical(raw)
    return canonical is not None and canonical == _canonical(other)


def _against_stored(record_id: str, raw: Raw, stored_raw: Raw, charge: int | None) -> Outcome:
    """A record whose id is taken: duplicate (with the stored charge) or id.conflict."""
    if _same_content(raw, stored_raw):
        return Outcome(record_id, DUPLICATE, charge_fen=charge)
    return Outcome(record_id, REJECTED, rejection=Rejected("id.conflict"))


class Rated(NamedTuple):  # a tuple: made once per record of every batch
    """What a ratings row keeps of one rating (SPEC §6.1 detail is rebuilt from it on read:
    `rebuild_detail`): the figures, and the subscriber profile the rating used."""

    charge_fen: int
    call_class: str
    dial: str
    roaming: str
    tariff: str
    profile: SubscriberProfile | None

    @classmethod
    def of(cls, rating: Rating, profile: SubscriberProfile | None) -> Rated:
        """A per-call path rating -> Rated."""
        return cls(
            rating.charge_fen,
            rating.call_class,
            rating.dial,
            rating.roaming,
            rating.tariff,
            profile,
        )


def rating_row(
    cdr_id: str, seq: int, rated: Rated, *, now: datetime, source: str
) -> tuple[Any, ...]:
    """A ratings-table row (repository.RATING_COLUMNS) for one rating of a CDR; ingest,
    recycle and re-rating share it."""
    return (
        cdr_id,
        seq,
        rated.tariff,
        rated.charge_fen,
        rated.call_class,
        rated.dial,
        rated.roaming,
        now,
        source,
        *columns.profile_columns(rated.profile),
    )


class Accepted(NamedTuple):
    """A record that rated: the fields its CDR row keeps, and its rating."""

    caller: str  # national form
    callee: str
    start_epoch_s: int
    duration_s: int
    leg: str
    rated: Rated


def _parse(record: Incoming) -> CallRecord:
    if record.rejection is not None:
        raise record.rejection
    return parse_cdr(record.value, require_id=True)


def _accepted(call: CallRecord, rated: Rated) -> Accepted:
    return Accepted(
        call.caller, call.callee, call.start_epoch_s, call.duration_s, call.leg.value, rated
    )


def rate_records(
    rater: Rater,
    batch: BatchRater | None,
    records: Sequence[Incoming],
    *,
    registry: Registry,
    fallback: SubscriberProfile | None,
) -> list[Accepted | Rejected]:
    """Rate records as the per-call path does. Objects whose values have the column types go
    through the batch path in one kernel pass (`batch`; None while its kernels compile);
    the others through `parse_cdr` and `Rater.rate`. `registry(msisdns)` gives the profiles
    of the callers among `msisdns`; `fallback` is the profile of any other caller."""
    results: list[Accepted | Rejected | None] = [None] * len(records)
    # The kernels check an id's length, not its characters (parse_cdr: no NUL, no surrogate):
    # only records with a storable id go that way.
    lane = [
        i
        for i, r in enumerate(records)
        if batch is not None
        and r.rejection is None
        and type(r.value) is dict
        and id_of(r) is not None
    ]
    values = [cast(dict[str, Any], records[i].value) for i in lane]
    table, odd = record_columns(values) if lane else (None, set())
    kernel = {index for j, index in enumerate(lane) if j not in odd}
    calls: dict[int, CallRecord] = {}
    for index in (i for i in range(len(records)) if i not in kernel):
        try:
            calls[index] = _parse(records[index])
        except Rejected as rejection:
            results[index] = rejection
    callers = {call.caller for call in calls.values()}
    callers.update(  # a rated caller's national form is its last 11 characters, all digits
        national
        for v in values
        if type(caller := v.get("caller")) is str
        and (national := caller[-MOBILE_LEN:]).isascii()
        and national.isdigit()
    )
    profiles = registry(sorted(callers))
    if kernel:
        assert batch is not None
        assert table is not None
        out = batch.rate_rows(
            table,
            subscribers=profiles,
            default_plan=fallback.plan if fallback is not None else None,
            require_id=True,
        )
        for j, index in enumerate(lane):
            if j in odd:
                continue
            if not out.rated[j]:
                results[index] = Rejected(out.reason[j])
                continue
            value = values[j]
            caller = cast(str, value["caller"])[-MOBILE_LEN:]
            rated = Rated(
                out.charge_fen[j],
                out.call_class[j],
                out.dial[j],
                out.roaming[j],
                out.tariff[j],
                profiles.get(caller, fallback),
            )
            leg = value.get("type") or ORIGINATING
            results[index] = Accepted(
                caller, value["callee"], out.start_epoch_s[j], value["duration_s"], leg, rated
            )
    for index, call in calls.items():
        profile = profiles.get(call.caller, fallback)
        try:
            results[index] = _accepted(
                call, Rated.of(rater.rate(call, subscriber=profile), profile)
            )
        except Rejected as rejection:
            results[index] = rejection
    assert all(result is not None for result in results)
    return cast(list[Accepted | Rejected], results)


def rate_with_registry(
    session: Session,
    *,
    rater: Rater,
    batch: BatchRater | None,
    default_plan: str | None,
    records: Sequence[Incoming],
    metrics: Metrics | None,
    registry_cache: ProfileCache | None = None,
) -> list[Accepted | Rejected]:
    """rate_records with the registry, observed in the rating-time metric."""
    started = time.perf_counter()
    results = rate_records(
        rater,
        batch,
        records,
        registry=registry_reader(session, registry_cache),
        fallback=default_profile(default_plan),
    )
    observe_rating(metrics, started, len(records))
    return results


def observe_rating(metrics: Metrics | None, started: float, records: int) -> None:
    """One observation per batch: its rating time's mean per record."""
    if metrics is not None and records:
        metrics.rating_seconds.observe((time.perf_counter() - started) / records)


def store_records(
    session: Session,
    *,
    records: Sequence[Incoming],
    results: Sequence[Accepted | Rejected],
    source: str,
    now: datetime,
) -> list[Outcome]:
    """SPEC §6.2 per record, in batch order: an id already stored makes a duplicate or an
    id.conflict; otherwise the record is stored with its rating, or rejected. Inside the
    batch an id is claimed by the first record that is rated, never by a rejected one.

    A record that rated is not looked up first: a stored id is rare (a switch's retry), the
    insert finds it (see `raced` below) and the record is answered against what is stored.
    A rejected record's id is looked up: one whose id is stored is a duplicate or an
    id.conflict, never a rejection to suspense."""
    outcomes: list[Outcome | None] = [None] * len(records)
    ids = [id_of(record) for record in records]
    looked_up = [
        record_id
        for record_id, result in zip(ids, results, strict=True)
        if record_id is not None and isinstance(result, Rejected)
    ]
    charges = repository.current_charges(session, cdr_ids=list(dict.fromkeys(looked_up)))
    stored = repository.stored_raws(session, cdr_ids=list(charges)) if charges else {}
    claims: dict[str, int] = {}  # id -> index of the record of this batch that stores it
    followers: dict[str, list[int]] = {}  # id -> later records answered against the claim
    accepted: dict[str, Accepted] = {}
    cdr_rows: list[tuple[Any, ...]] = []
    for index, record in enumerate(records):
        record_id = ids[index]
        if record_id is not None and record_id in charges:
            stored_raw = stored[record_id].encode()
            outcomes[index] = _against_stored(record_id, record.raw, stored_raw, charges[record_id])
            continue
        if record_id is not None and record_id in claims:
            claim = claims[record_id]
            claimed = outcomes[claim]
            assert claimed is not None
            outcomes[index] = _against_stored(
                record_id, record.raw, records[claim].raw, claimed.charge_fen
            )
            followers.setdefault(record_id, []).append(index)
            continue
        result = results[index]
        if isinstance(result, Rejected):
            outcomes[index] = Outcome(record_id, REJECTED, rejection=result)
            continue
        assert record_id is not None  # parse_cdr(require_id=True) accepted it
        outcomes[index] = Outcome(
            record_id,
            RATED,
            charge_fen=result.rated.charge_fen,
            call_class=result.rated.call_class,
            tariff=result.rated.tariff,
        )
        claims[record_id] = index
        accepted[record_id] = result
        cdr_rows.append(
            (
                record_id,
                result.caller,
                result.callee[:64],
                result.start_epoch_s,
                result.duration_s,
                result.leg,
                str(record.raw, "utf-8"),
                now,
            )
        )
    inserted = repository.insert_cdrs_new(session, rows=cdr_rows) if cdr_rows else set()
    rating_rows: list[tuple[Any, ...]] = []
    raced: list[str] = []
    for cdr_row in cdr_rows:
        record_id = cdr_row[0]
        if record_id in inserted:
            rating_rows.append(
                rating_row(record_id, 1, accepted[record_id].rated, now=now, source=source)
            )
        else:  # a concurrent batch stored the same id first: answer against what it stored
            raced.append(record_id)
    repository.insert_ratings(session, rows=rating_rows)
    answered = [index for i in raced for index in [claims[i], *followers.get(i, ())]]
    for index, outcome in zip(
        answered, answer_stored(session, [records[i] for i in answered]), strict=True
    ):
        outcomes[index] = outcome
    final = [outcome for outcome in outcomes if outcome is not None]
    assert len(final) == len(records)
    return final


def answer_stored(session: Session, records: Sequence[Incoming]) -> list[Outcome]:
    """Records whose id is stored (by an earlier delivery or a concurrent batch), answered
    against what is stored: duplicate or id.conflict."""
    if not records:
        return []
    ids = [cast(str, id_of(record)) for record in records]
    unique = list(dict.fromkeys(ids))
    charges = repository.current_charges(session, cdr_ids=unique)
    raws = repository.stored_raws(session, cdr_ids=unique)
    return [
        _against_stored(record_id, record.raw, raws[record_id].encode(), charges.get(record_id))
        for record_id, record in zip(ids, records, strict=True)
    ]


def count_charged(metrics: Metrics | None, outcomes: Sequence[Outcome]) -> None:
    """Charged fen by class, once the batch's work is done (not again on a retry)."""
    if metrics is None:
        return
    charged: dict[str, int] = {}  # one counter update per class, not per record
    for outcome in outcomes:
        if outcome.result == RATED and outcome.call_class is not None:
            call_class = outcome.call_class
            charged[call_class] = charged.get(call_class, 0) + (outcome.charge_fen or 0)
    for call_class, fen in charged.items():
        metrics.charged_fen.labels(call_class=call_class).inc(fen)


def retrying(session: Session, work: Callable[[], T]) -> T:
    """`work()`, run again from a rolled-back session when the database reports a conflict
    that another attempt resolves (SPEC §6.2: never a deadlock answered as an error)."""
    for attempt in range(1, INGEST_ATTEMPTS + 1):
        try:
            return work()
        except Exception as error:  # COPY raises psycopg's own errors, not SQLAlchemy's
            if attempt == INGEST_ATTEMPTS or not repository.is_retryable(error):
                raise
            session.rollback()
            if not isinstance(error, repository.StoredIdMet):  # that one is no contention
                time.sleep(random.uniform(0, RETRY_PAUSE_S * 2**attempt))  # noqa: S311 - jitter
    raise AssertionError("unreachable")
