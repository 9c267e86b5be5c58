"""Where the rating core meets the database: ingest, quote, recycle, registry, reads.

ORM rows, core dataclasses and pydantic schemas are converted here, explicitly. Functions
flush through the repository and never commit: the request's session commits once.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import operator
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple, Protocol, TypeVar, cast

import orjson
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from service import schemas
from service.db import repository
from service.db.models import RatingRow, Subscriber, SuspenseRow
from service.errors import BadBody, BodyTooLarge, InSuspense, InvalidInput, NotFound
from service.ingest import columns
from service.ingest.cut import (
    Incoming,
    NotAnArray,
    NotJson,
    Raw,
    TooManyRecords,
    decode_record,
    split_array,
    split_ndjson,
)
from service.ingest.scan import ScannedBody, scan_body
from service.ops.metrics import Metrics
from service.rating.batch import BatchRater, record_columns
from service.rating.cdr import (
    MAX_ID_CHARS,
    CallRecord,
    is_storable_text,
    normalize_area,
    normalize_msisdn,
    parse_cdr,
)
from service.rating.classify import MOBILE_LEN
from service.rating.explain import yuan
from service.rating.numbering import NO_INDEX
from service.rating.pricing import Leg
from service.rating.rejections import Rejected
from service.rating.result import Rating
from service.rating.scalar import Rater, SubscriberProfile
from service.rating.tariff import Tariff
from service.security import Actor, mask_number, mask_numbers, mask_text, write_audit

RATED, DUPLICATE, REJECTED = "rated", "duplicate", "rejected"
ORIGINATING = Leg.ORIGINATING.value  # a CDR without `type`
T = TypeVar("T")


def utcnow() -> datetime:
    """The current instant, UTC."""
    return datetime.now(UTC)


@dataclass(slots=True)
class Outcome:
    """What happened to one record."""

    id: str | None
    result: str
    charge_fen: int | None = None
    call_class: str | None = None  # of a record rated now
    tariff: str | None = None
    rejection: Rejected | None = None


# --- request bodies -----------------------------------------------------------------------


def parse_batch(body: bytes, *, ndjson: bool, max_records: int) -> list[Incoming]:
    """A JSON array or NDJSON body -> records with their exact bytes, without parsing the body
    whole; BadBody when it is not JSON at all, BodyTooLarge past `max_records`."""
    with _body_errors():
        if ndjson:
            return split_ndjson(body, max_records=max_records)
        return split_array(body, max_records=max_records)


def scan_batch(body: bytes, *, ndjson: bool, max_records: int) -> ScannedBody:
    """parse_batch, with the ordinary records cut straight into columns (record_scan)."""
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


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A body that must be one JSON object."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadBody(f"body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidInput("body must be a JSON object")
    return value


# --- conversions ------------------------------------------------------------------------------


def default_profile(default_plan: str | None) -> SubscriberProfile | None:
    """The profile of a caller the registry does not know (CALLRATE_DEFAULT_PLAN), if any."""
    return SubscriberProfile(plan=default_plan, registered=False) if default_plan else None


def profile_of(row: Subscriber | repository.RegistryEntry) -> SubscriberProfile:
    """Registry row -> the core's SubscriberProfile."""
    return SubscriberProfile(
        plan=row.plan, home_area=row.home_area, packages=tuple(orjson.loads(row.packages))
    )


def stored_rating_out(row: RatingRow, *, rater: Rater, record: object) -> schemas.StoredRating:
    """Ratings row -> schema. A row written since the detail is rebuilt on read holds no
    items or explanation: they come from `rebuild_detail` on the record as received."""
    if row.items is not None:  # written before: the detail was stored
        items = [schemas.Item.model_validate(item) for item in orjson.loads(row.items)]
        rules: list[str] = orjson.loads(row.rules or "[]")
        explanation = row.explanation_zh or ""
    else:
        detail = rebuild_detail(row, rater=rater, record=record)
        items = [schemas.Item.model_validate(item.to_dict()) for item in detail.items]
        rules, explanation = list(detail.rules), detail.explanation_zh
    return schemas.StoredRating(
        seq=row.seq,
        tariff=row.tariff,
        charge_fen=row.charge_fen,
        call_class=row.call_class,
        dial=row.dial,
        roaming=row.roaming,
        items=items,
        rules=rules,
        explanation_zh=explanation,
        rated_at=row.rated_at,
        source=row.source,
    )


# The explanation of a stored rating whose tariff no longer prices it as it did.
DETAIL_GONE = "本次通话计费所依据的资费此后已变更，计费明细无法重建，以当时计费金额为准："


def rebuild_detail(row: RatingRow, *, rater: Rater, record: object) -> Rating:
    """A stored rating's items, rules and explanation, by the per-call path on the record as
    received with the subscriber profile the rating used. The tariff version must still
    price it as it did (SPEC: a tariff version is never edited, a change is a new version);
    when it does not, the detail is not made up: no items, and an explanation that says
    why and gives the stored charge."""
    profile = _profile_of_rating(row)
    try:
        rating: Rating | None = rater.rate_raw(record, subscriber=profile, require_id=True)
    except Rejected:
        rating = None
    figures = (row.charge_fen, row.tariff, row.call_class, row.dial, row.roaming)
    if rating is not None and figures == (
        rating.charge_fen,
        rating.tariff,
        rating.call_class,
        rating.dial,
        rating.roaming,
    ):
        return rating
    return Rating(
        charge_fen=row.charge_fen,
        call_class=row.call_class,
        dial=row.dial,
        roaming=row.roaming,
        tariff=row.tariff,
        items=(),
        rules=(),
        explanation_zh=f"{DETAIL_GONE}合计{yuan(row.charge_fen)}",
    )


def home_area_of(rater: Rater, msisdn: str, registered: str | None) -> str | None:
    """The home area rating uses: the registry's, else the number range's (dialing form)."""
    return normalize_area(registered or rater.home_area(msisdn))  # rows stored before §9: "21"


def subscriber_out(row: Subscriber, rater: Rater) -> schemas.SubscriberOut:
    """Registry row -> schema; home_area as rating uses it, from the number range if unset."""
    return schemas.SubscriberOut(
        msisdn=row.msisdn,
        plan=row.plan,
        home_area=home_area_of(rater, row.msisdn, row.home_area),
        home_area_from="registry" if row.home_area else "number_range",
        packages=orjson.loads(row.packages),
        updated_at=row.updated_at,
    )


def suspense_out(row: SuspenseRow) -> schemas.SuspenseOut:
    """Suspense row -> schema."""
    return schemas.SuspenseOut(
        id=row.id,
        record_id=row.record_id,
        field=row.field,
        code=row.code,
        reason=row.reason,
        raw=row.raw.decode("utf-8", errors="replace"),
        raw_base64=base64.b64encode(row.raw).decode("ascii"),
        received_at=row.received_at,
        resolved_at=row.resolved_at,
        resolution=row.resolution,
    )


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


# --- ingestion --------------------------------------------------------------------------------

# Conflicts the database reports (PostgreSQL deadlock, serialization failure) run the batch
# again, this many times in all, after a short random pause that grows with each attempt.
INGEST_ATTEMPTS = 5
RETRY_PAUSE_S = 0.02


def _record_id(record: Incoming) -> str | None:
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


def _profile_of_rating(row: RatingRow) -> SubscriberProfile | None:
    if row.profile_plan is None:
        return None
    return SubscriberProfile(
        plan=row.profile_plan,
        home_area=row.profile_home_area,
        packages=tuple(orjson.loads(row.profile_packages or "[]")),
        registered=bool(row.profile_registered),
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
        and _record_id(r) is not None
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


Registry = Callable[[list[str]], Mapping[str, SubscriberProfile]]


class ProfileCache(Protocol):
    """Registry profiles cached per worker (service.registry_cache.RegistryCache)."""

    def profiles(self, msisdns: Sequence[str], read: Registry) -> dict[str, SubscriberProfile]:
        """The registered profiles of these numbers, the uncached ones from `read`."""
        ...


def _registry_reader(session: Session, cache: ProfileCache | None = None) -> Registry:
    """Registry profiles of some numbers, through `cache` when given. On SQLite read outside
    the session's transaction: that one takes the write lock when it begins (IMMEDIATE), and
    the batch is rated before it, so the other workers' batches are not kept waiting while
    this one is rated."""
    reader = _database_reader(session)
    if cache is None:
        return reader
    return functools.partial(cache.profiles, read=reader)


def _database_reader(session: Session) -> Registry:

    def read(db: repository.Executor, msisdns: list[str]) -> dict[str, SubscriberProfile]:
        rows = repository.subscribers_by_msisdn(db, msisdns=msisdns)
        return {msisdn: profile_of(row) for msisdn, row in rows.items()}

    bind = session.get_bind()
    if bind.dialect.name != "sqlite" or not isinstance(bind, Engine):
        return functools.partial(read, session)

    def read_apart(msisdns: list[str]) -> dict[str, SubscriberProfile]:
        with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            return read(connection, msisdns)

    return read_apart


def _rate(
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
        registry=_registry_reader(session, registry_cache),
        fallback=default_profile(default_plan),
    )
    _observe_rating(metrics, started, len(records))
    return results


def _observe_rating(metrics: Metrics | None, started: float, records: int) -> None:
    """One observation per batch: its rating time's mean per record."""
    if metrics is not None and records:
        metrics.rating_seconds.observe((time.perf_counter() - started) / records)


def _store(
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
    ids = [_record_id(record) for record in records]
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
        answered, _answer_stored(session, [records[i] for i in answered]), strict=True
    ):
        outcomes[index] = outcome
    final = [outcome for outcome in outcomes if outcome is not None]
    assert len(final) == len(records)
    return final


def _count_charged(metrics: Metrics | None, outcomes: Sequence[Outcome]) -> None:
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


def suspense_row(record: Incoming, outcome: Outcome, *, now: datetime) -> dict[str, Any]:
    """The suspense row keeping a rejected record's exact bytes with its reason."""
    assert outcome.rejection is not None
    return {
        "record_id": outcome.id,
        "raw": record.raw,
        "raw_sha256": hashlib.sha256(record.raw).hexdigest(),
        "field": outcome.rejection.field,
        "code": outcome.rejection.code,
        "reason": outcome.rejection.message,
        "received_at": now,
        "resolved_at": None,
        "resolution": None,
    }


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

    results = _rate(
        session,
        rater=rater,
        batch=batch,
        default_plan=default_plan,
        records=records,
        metrics=metrics,
        registry_cache=registry_cache,
    )

    def work() -> list[Outcome]:
        outcomes = _store(session, records=records, results=results, source="ingest", now=at)
        repository.insert_suspense(session, rows=_suspense_rows(records, outcomes, now=at))
        return outcomes

    outcomes = retrying(session, work)
    _count_charged(metrics, outcomes)
    if metrics is not None:
        metrics.count_results(outcome.result for outcome in outcomes)
    return outcomes


def answer_of(records: Sequence[Incoming], outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The wire form of schemas.BatchResponse."""
    return {
        "counts": counts_of(outcomes),
        "results": [
            record_result(record.index, outcome)
            for record, outcome in zip(records, outcomes, strict=True)
        ],
    }


# Below this many records a batch costs less through the per-call path: the column way's
# fixed cost is ~1.8 ms of CPU a batch (kernel calls, Arrow calls, two COPYs) and ~3 µs a
# record, the per-call path's ~1 ms and ~27 µs a record (docs/performance-service.md).
COLUMN_WAY_FROM = 32
_BY_INDEX = operator.attrgetter("index")


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

    With the batch kernels (`batch`), the records `record_scan` takes are rated, stored and
    answered as columns (`fast_ingest`), but for those whose outcome depends on the batch
    (rejected, id met twice); those and every other record go record by record (the steps
    of `ingest_batch`, in the same transaction). A record whose id is stored already is
    answered against what is stored, either way. Without the kernels (they compile at
    start), and for a batch of fewer than COLUMN_WAY_FROM records, every record goes record
    by record, through the per-call path."""
    if batch is not None:
        scanned = scan_batch(body, ndjson=ndjson, max_records=max_records)
        records = scanned.others  # all of them, in order, when the scanner took none
        if scanned.fast.num_rows + len(records) < COLUMN_WAY_FROM:
            records = sorted([*records, *columns.incoming(scanned.fast)], key=_BY_INDEX)
            batch = None  # a few records: the per-call path costs less
    else:
        records = parse_batch(body, ndjson=ndjson, max_records=max_records)
    if batch is None or not scanned.fast.num_rows:
        outcomes = ingest_batch(
            session,
            rater=rater,
            batch=batch,
            default_plan=default_plan,
            records=records,
            metrics=metrics,
            now=now,
            registry_cache=registry_cache,
        )
        return answer_of(records, outcomes)
    at = now or utcnow()
    started = time.perf_counter()
    registry = _registry_reader(session, registry_cache)
    fallback = default_profile(default_plan)
    fast_part, rest = columns.rate(
        batch,
        scanned.fast,
        [record_id for r in records if (record_id := _record_id(r)) is not None],
        registry=registry,
        fallback=fallback,
    )
    records = sorted([*records, *columns.incoming(rest)], key=_BY_INDEX)
    results = rate_records(rater, batch, records, registry=registry, fallback=fallback)
    _observe_rating(metrics, started, len(records) + fast_part.rows.num_rows)

    def work() -> tuple[columns.FastPart, list[Outcome], list[Incoming], list[Outcome]]:
        stored_part = columns.store(session, fast_part, now=at)
        # The part's records whose id was stored already (a switch's retry, a concurrent
        # batch), answered against what is stored.
        raced: list[Incoming] = []
        if stored_part.rows.num_rows < fast_part.rows.num_rows:
            stored_ids = set(stored_part.rows.column("id").to_pylist())
            raced = [
                record
                for record in columns.incoming(fast_part.rows)
                if _record_id(record) not in stored_ids
            ]
        outcomes = _store(session, records=records, results=results, source="ingest", now=at)
        repository.insert_suspense(session, rows=_suspense_rows(records, outcomes, now=at))
        return stored_part, outcomes, raced, _answer_stored(session, raced)

    stored_part, outcomes, raced, raced_outcomes = retrying(session, work)
    fast_results = columns.result_texts(stored_part)
    _count_charged(metrics, outcomes)
    if metrics is not None:
        for call_class, fen in columns.charged(stored_part).items():
            metrics.charged_fen.labels(call_class=call_class).inc(fen)
        metrics.count_results([RATED] * len(fast_results.ends))
        metrics.count_results(outcome.result for outcome in [*outcomes, *raced_outcomes])
    answer = answer_of([*records, *raced], [*outcomes, *raced_outcomes])
    answer["counts"][RATED] += len(fast_results.ends)
    if not answer["results"]:  # as a whole: no Python object per record
        answer["results"] = columns.json_array(fast_results)
        return answer
    merged = [
        *zip(
            stored_part.rows.column("index").to_pylist(),
            columns.json_items(fast_results),
            strict=True,
        ),
        *((result["index"], result) for result in answer["results"]),
    ]
    answer["results"] = [result for _, result in sorted(merged, key=_FIRST)]
    return answer


def _answer_stored(session: Session, records: Sequence[Incoming]) -> list[Outcome]:
    """Records whose id is stored (by an earlier delivery or a concurrent batch), answered
    against what is stored: duplicate or id.conflict."""
    if not records:
        return []
    ids = [cast(str, _record_id(record)) for record in records]
    unique = list(dict.fromkeys(ids))
    charges = repository.current_charges(session, cdr_ids=unique)
    raws = repository.stored_raws(session, cdr_ids=unique)
    return [
        _against_stored(record_id, record.raw, raws[record_id].encode(), charges.get(record_id))
        for record_id, record in zip(ids, records, strict=True)
    ]


_FIRST = operator.itemgetter(0)


def _suspense_rows(
    records: Sequence[Incoming], outcomes: Sequence[Outcome], *, now: datetime
) -> list[dict[str, Any]]:
    return [
        suspense_row(record, outcome, now=now)
        for record, outcome in zip(records, outcomes, strict=True)
        if outcome.result == REJECTED
    ]


def recycle_suspense(
    session: Session,
    *,
    rater: Rater,
    default_plan: str | None,
    ids: Sequence[int] | None,
    limit: int,
    metrics: Metrics | None = None,
    now: datetime | None = None,
) -> schemas.RecycleResponse:
    """Re-rate open suspense rows; those that now rate move to the CDRs."""
    at = now or utcnow()

    def work() -> tuple[list[SuspenseRow], list[Outcome]]:
        rows = repository.open_suspense(session, ids=ids, limit=limit)
        records = [
            decode_record(row.raw, index, brackets=row.raw.count(b"[") + row.raw.count(b"{"))
            for index, row in enumerate(rows)
        ]
        results = _rate(
            session,
            rater=rater,
            batch=None,  # a few records at a time: the per-call path
            default_plan=default_plan,
            records=records,
            metrics=metrics,
        )
        outcomes = _store(session, records=records, results=results, source="recycle", now=at)
        for resolution in (RATED, DUPLICATE):
            repository.resolve_suspense(
                session,
                ids=[r.id for r, o in zip(rows, outcomes, strict=True) if o.result == resolution],
                resolution=resolution,
                resolved_at=at,
            )
        for row, outcome in zip(rows, outcomes, strict=True):
            rejection = outcome.rejection
            if rejection is not None and rejection.code != row.code:
                repository.update_suspense_reason(
                    session,
                    suspense_id=row.id,
                    field=rejection.field,
                    code=rejection.code,
                    reason=rejection.message,
                )
        return rows, outcomes

    rows, outcomes = retrying(session, work)
    _count_charged(metrics, outcomes)
    if metrics is not None:  # the records leaving suspense; a rejection was counted at ingest
        metrics.count_results(o.result for o in outcomes if o.result != REJECTED)
    results = [
        schemas.RecycleResult(
            suspense_id=row.id,
            record_id=row.record_id,
            result=outcome.result,  # type: ignore[arg-type]
            charge_fen=outcome.charge_fen,
            field=rejection.field if rejection else None,
            code=rejection.code if rejection else None,
            reason=rejection.message if rejection else None,
        )
        for row, outcome in zip(rows, outcomes, strict=True)
        for rejection in (outcome.rejection,)
    ]
    return schemas.RecycleResponse(counts=schemas.Counts(**counts_of(outcomes)), results=results)


def list_suspense(
    session: Session, *, after_id: int, limit: int, include_resolved: bool
) -> schemas.SuspenseList:
    """A page of suspense rows."""
    rows = repository.list_suspense(
        session, after_id=after_id, limit=limit, include_resolved=include_resolved
    )
    return schemas.SuspenseList(
        items=[suspense_out(row) for row in rows],
        next_after_id=rows[-1].id if len(rows) == limit else None,
    )


def suspense_by_code(session: Session) -> dict[str, int]:
    """Open suspense rows per rejection reason code."""
    return repository.count_open_suspense_by_code(session)


# --- quote, reads, registry -------------------------------------------------------------------


def parse_quote(request: object) -> CallRecord | Rejected:
    """A quote request as a call, or why it is not one."""
    try:
        return parse_cdr(request, require_id=False)
    except Rejected as rejection:
        return rejection


def rate_quote(
    request: object,
    call: CallRecord | Rejected,
    *,
    registered: SubscriberProfile | None,
    rater: Rater,
    default_plan: str | None,
    actor: Actor,
    now: datetime | None = None,
) -> tuple[Rating | Rejected, dict[str, Any]]:
    """Rate a parsed quote request (`registered`: the caller's registry profile, None when
    the registry does not know them) and the audit row to write before answering (also for
    a rejected quote): subject the caller, detail the masked callee and the outcome."""
    result: Rating | Rejected
    if isinstance(call, Rejected):
        result = call
    else:
        try:
            result = rater.rate(
                call,
                subscriber=registered if registered is not None else default_profile(default_plan),
            )
        except Rejected as rejection:
            result = rejection
    if isinstance(call, CallRecord):
        subject: str | None = call.caller
        callee = mask_number(call.callee)
    else:  # rejected while parsing: the fields as sent, masked (they are not checked numbers)
        subject = _sent_caller(request)
        callee = _sent_text(request, "callee", AUDIT_CALLEE_CHARS) or "-"
    outcome = (
        f"rejected {result.code}" if isinstance(result, Rejected) else f"{result.charge_fen} fen"
    )
    audit = {
        "at": now or utcnow(),
        "key_id": actor.key_id,
        "role": actor.role,
        "action": "quote",
        "subject": subject,
        "detail": f"callee {callee}; {outcome}"[:AUDIT_DETAIL_CHARS],
    }
    return result, audit


AUDIT_SUBJECT_CHARS = 64  # audit_log.subject
AUDIT_DETAIL_CHARS = 128  # audit_log.detail
AUDIT_CALLEE_CHARS = 40


def _sent_caller(request: object) -> str | None:
    """The subject of a quote that did not parse: its caller as the audit log keeps every
    subject (the national number) when it is one, else the text sent, masked."""
    if isinstance(request, Mapping):
        try:
            return normalize_msisdn(request.get("caller"))
        except Rejected:
            pass
    return _sent_text(request, "caller", AUDIT_SUBJECT_CHARS)


def _sent_text(request: object, name: str, limit: int) -> str | None:
    """A field of a request that did not parse, fit for the audit log: printable text with
    numbers masked, cut to the column; None when absent."""
    if not isinstance(request, Mapping) or request.get(name) is None:
        return None
    value = request[name]
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    text = "".join(c for c in text if c.isprintable()).encode("utf-8", "replace").decode()
    return mask_text(text)[:limit] or None


def read_cdr(
    session: Session, *, rater: Rater, cdr_id: str, actor: Actor, now: datetime | None = None
) -> schemas.CdrOut:
    """A stored CDR with its rating history. Agents see every phone-number-like value of the
    record masked (any field, nested too), except the subscriber's own number."""
    # PostgreSQL text cannot hold NUL: no stored id has one, and the query would fail
    row = None if "\x00" in cdr_id else repository.get_cdr(session, cdr_id=cdr_id)
    if row is None:
        if "\x00" not in cdr_id and repository.open_suspense_record_ids(
            session, record_ids=[cdr_id]
        ):
            raise InSuspense(
                f"CDR {cdr_id!r} was rejected and is not stored: it waits in suspense with "
                "its reason (GET /v1/suspense, admin)"
            )
        raise NotFound(f"no CDR with id {cdr_id!r}")
    record = orjson.loads(row.raw)
    ratings = [
        stored_rating_out(r, rater=rater, record=record)
        for r in repository.ratings_of(session, cdr_id=cdr_id)
    ]
    write_audit(
        session,
        actor=actor,
        action="cdr.read",
        subject=row.caller,
        detail=cdr_id,
        at=now or utcnow(),
    )
    callee = row.callee
    if actor.role != "admin":
        callee = mask_number(callee)
        record = mask_numbers(record, own=row.caller)
    registered = repository.registry_entry(session, msisdn=row.caller)
    return schemas.CdrOut(
        id=row.id,
        caller=row.caller,
        home_area=home_area_of(rater, row.caller, registered.home_area if registered else None),
        callee=callee,
        start_epoch_s=row.start_epoch_s,
        duration_s=row.duration_s,
        type=row.leg,
        received_at=row.received_at,
        record=record,
        current=ratings[-1],
        ratings=ratings,
    )


def _msisdn(value: str) -> str:
    try:
        return normalize_msisdn(value)
    except Rejected as exc:
        raise InvalidInput("msisdn must be an 11-digit mobile number", field="msisdn") from exc


def read_subscriber(
    session: Session, *, rater: Rater, msisdn: str, actor: Actor, now: datetime | None = None
) -> schemas.SubscriberOut:
    """A registry entry; the read is audited."""
    number = _msisdn(msisdn)
    row = repository.get_subscriber(session, msisdn=number)
    if row is None:
        raise NotFound("subscriber is not registered")
    write_audit(
        session,
        actor=actor,
        action="subscriber.read",
        subject=number,
        detail=None,
        at=now or utcnow(),
    )
    return subscriber_out(row, rater)


CHINA_TIME = timezone(timedelta(hours=8))  # SPEC §1: tariffs and bill months run on +08:00
_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


def month_window(month: str | None, *, now: datetime | None = None) -> tuple[str, int, int]:
    """'YYYY-MM' (default: the current month in +08:00) -> (month, from, to) epoch seconds."""
    if month is None:
        month = (now or utcnow()).astimezone(CHINA_TIME).strftime("%Y-%m")
    matched = _MONTH.fullmatch(month)
    if matched is None or int(matched[1]) < 1970:
        raise InvalidInput("month must be YYYY-MM, e.g. 2010-03")
    year, number = int(matched[1]), int(matched[2])
    start = datetime(year, number, 1, tzinfo=CHINA_TIME)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=CHINA_TIME)
    return month, int(start.timestamp()), int(end.timestamp())


def _month_tariff(rater: Rater, from_epoch_s: int, to_epoch_s: int) -> Tariff | None:
    """The version in force when the month starts (else when it ends): its fees and names."""
    for instant in (from_epoch_s, to_epoch_s - 1):
        index = rater.book.index_at(instant)
        if index is not None:
            return rater.book.tariffs[index]
    return None


def _usage_subscriber(
    rater: Rater,
    number: str,
    row: Subscriber | None,
    tariff: Tariff | None,
    cities: Mapping[str, str],
) -> schemas.UsageSubscriber:
    dialing = home_area_of(rater, number, row.home_area if row else None)  # "010"
    home = dialing[1:] if dialing else None  # areas.tsv names codes without the trunk 0
    area = rater.numbering.area_index(home) if home else NO_INDEX
    province = (
        rater.numbering.provinces[rater.numbering.province_of(area)] if area != NO_INDEX else None
    )
    plan = row.plan if row is not None else None
    # names: from the month's version, else the newest version that has the plan or package
    names = ([tariff] if tariff else []) + list(reversed(rater.book.tariffs))
    brand = next((t.plans[plan].brand for t in names if plan in t.plans), None)
    packages = []
    for package_id in orjson.loads(row.packages) if row is not None else []:
        known = next((t.packages[package_id] for t in names if package_id in t.packages), None)
        in_force = tariff.packages.get(package_id) if tariff is not None else None
        packages.append(
            schemas.UsagePackage(
                id=package_id,
                name=known.name if known else None,
                monthly_fee_fen=in_force.monthly_fee_fen if in_force else 0,
            )
        )
    return schemas.UsageSubscriber(
        msisdn=number,
        registered=row is not None,
        plan=plan,
        brand=brand,
        home_area=dialing,
        home_city=cities.get(home) if home else None,
        home_province=province,
        packages=packages,
    )


def usage(
    session: Session,
    *,
    rater: Rater,
    cities: Mapping[str, str],
    msisdn: str,
    month: str | None,
    offset: int,
    limit: int,
    actor: Actor,
    now: datetime | None = None,
) -> schemas.UsageOut:
    """A subscriber's month (详单): per-class summary and a page of calls from each CDR's
    current rating, package fees, total in fen; the other party masked but for admin; audited."""
    number = _msisdn(msisdn)
    month, lo, hi = month_window(month, now=now)
    tariff = _month_tariff(rater, lo, hi)
    subscriber = _usage_subscriber(
        rater, number, repository.get_subscriber(session, msisdn=number), tariff, cities
    )
    summary = repository.usage_by_class(session, msisdn=number, from_epoch_s=lo, to_epoch_s=hi)
    calls = repository.usage_calls(
        session, msisdn=number, from_epoch_s=lo, to_epoch_s=hi, offset=offset, limit=limit
    )
    write_audit(
        session, actor=actor, action="usage.read", subject=number, detail=month, at=now or utcnow()
    )
    call_count = sum(c.calls for c in summary)
    calls_fen = sum(c.charge_fen for c in summary)
    package_fees_fen = sum(p.monthly_fee_fen for p in subscriber.packages)
    masked = actor.role != "admin"
    return schemas.UsageOut(
        month=month,
        period_from=datetime.fromtimestamp(lo, CHINA_TIME),
        period_to=datetime.fromtimestamp(hi, CHINA_TIME),
        subscriber=subscriber,
        summary=[schemas.ClassUsageOut.model_validate(c, from_attributes=True) for c in summary],
        call_count=call_count,
        calls_fen=calls_fen,
        package_fees_fen=package_fees_fen,
        total_fen=calls_fen + package_fees_fen,
        calls=[
            schemas.UsageCallOut(
                id=c.id,
                start=datetime.fromtimestamp(c.start_epoch_s, CHINA_TIME),
                other_party=mask_number(c.callee) if masked else c.callee,
                duration_s=c.duration_s,
                type=c.leg,
                call_class=c.call_class,
                tariff=c.tariff,
                charge_fen=c.charge_fen,
                ratings=c.ratings,
            )
            for c in calls
        ],
        offset=offset,
        limit=limit,
        next_offset=offset + limit if offset + limit < call_count else None,
    )


def put_subscriber(
    session: Session,
    *,
    rater: Rater,
    msisdn: str,
    entry: schemas.SubscriberIn,
    actor: Actor,
    now: datetime | None = None,
) -> schemas.SubscriberOut:
    """Create or replace a registry entry, checked against the tariffs and numbering plan."""
    number = _msisdn(msisdn)
    tariffs = rater.book.tariffs
    if not any(entry.plan in tariff.plans for tariff in tariffs):
        raise InvalidInput(f"plan {entry.plan!r} is in no tariff version", field="plan")
    unknown = [p for p in entry.packages if not any(p in t.packages for t in tariffs)]
    if unknown:
        raise InvalidInput(
            f"packages not in any tariff version: {', '.join(unknown)}", field="packages"
        )
    try:
        home_area = normalize_area(entry.home_area)
    except Rejected as exc:
        raise InvalidInput(
            "home_area must be a China area code such as 021", field="home_area"
        ) from exc
    if home_area is not None and rater.numbering.area_index(home_area) == NO_INDEX:
        raise InvalidInput("home_area is not an area code in the numbering plan", field="home_area")
    at = now or utcnow()
    row = repository.put_subscriber(
        session,
        msisdn=number,
        plan=entry.plan,
        home_area=home_area,
        packages=orjson.dumps(sorted(set(entry.packages))).decode(),
        updated_at=at,
    )
    write_audit(session, actor=actor, action="subscriber.write", subject=number, detail=None, at=at)
    return subscriber_out(row, rater)


def tariffs(rater: Rater) -> list[schemas.TariffOut]:
    """The catalogue: each tariff version, its window, its plans with fees and its packages."""
    versions = rater.book.tariffs
    catalogue = []
    for index, t in enumerate(versions):
        ends = [t.effective_until] if t.effective_until is not None else []
        if index + 1 < len(versions):
            ends.append(versions[index + 1].effective_from)
        catalogue.append(
            schemas.TariffOut(
                version=t.version,
                name=t.name,
                timezone=t.timezone,
                effective_from=t.effective_from,
                effective_until=t.effective_until,
                in_force_until=min(ends) if ends else None,
                plans=[_plan_out(t, plan_id) for plan_id in t.plans],
                packages=[
                    schemas.PackageOut(
                        id=package_id,
                        name=package.name,
                        monthly_fee_fen=package.monthly_fee_fen,
                        free_from=package.free_from.isoformat(),
                        free_until=package.free_until.isoformat(),
                    )
                    for package_id, package in t.packages.items()
                ],
            )
        )
    return catalogue


def _plan_out(tariff: Tariff, plan_id: str) -> schemas.PlanOut:
    plan = tariff.plans[plan_id]
    ld = (
        schemas.LdFee(rate_fen=plan.ld_per_min, unit_s=60)
        if plan.ld_per_min is not None
        else schemas.LdFee(rate_fen=tariff.ld.domestic_per_6s, unit_s=6)
    )
    return schemas.PlanOut(
        id=plan_id,
        brand=plan.brand,
        fees=schemas.PlanFees(
            local_per_min=plan.local_per_min,
            ld=ld,
            roam_call_per_min=plan.roam_call_per_min,
            roam_called_per_min=plan.roam_called_per_min,
            ip12593_national_per_min=plan.ip12593_national_per_min,
        ),
    )


def audit_log(session: Session, *, after_id: int, limit: int) -> schemas.AuditList:
    """A page of the audit log."""
    rows = repository.list_audit(session, after_id=after_id, limit=limit)
    return schemas.AuditList(
        items=[
            schemas.AuditOut(
                id=r.id,
                at=r.at,
                key_id=r.key_id,
                role=r.role,
                action=r.action,
                subject=r.subject,
                detail=r.detail,
            )
            for r in rows
        ],
        next_after_id=rows[-1].id if len(rows) == limit else None,
    )
