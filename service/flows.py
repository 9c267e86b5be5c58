"""Where the rating core meets the database: ingest, quote, recycle, registry, reads.

ORM rows, core dataclasses and pydantic schemas are converted here, explicitly. Functions
flush through the repository and never commit: the request's session commits once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.orm import Session

from service.api import schemas
from service.db import repository
from service.db.models import RatingRow, Subscriber, SuspenseRow
from service.errors import BadBody, BodyTooLarge, InSuspense, InvalidInput, NotFound
from service.metrics import Metrics
from service.rating.cdr import MAX_ID_CHARS, CallRecord, normalize_area, normalize_msisdn, parse_cdr
from service.rating.numbering import NO_INDEX
from service.rating.rejections import Rejected
from service.rating.scalar import Rater, Rating, SubscriberProfile
from service.security import Actor, mask_number, mask_numbers, mask_text, write_audit

RATED, DUPLICATE, REJECTED = "rated", "duplicate", "rejected"


def utcnow() -> datetime:
    """The current instant, UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One record of a batch: the decoded value (None if the line was not JSON) and its text."""

    value: object
    raw: str
    is_json: bool = True


@dataclass(slots=True)
class Outcome:
    """What happened to one record."""

    id: str | None
    result: str
    charge_fen: int | None = None
    rating: Rating | None = None
    rejection: Rejected | None = None


# --- request bodies -----------------------------------------------------------------------


def parse_batch(body: bytes, *, ndjson: bool, max_records: int) -> list[Incoming]:
    """A JSON array or NDJSON body -> records; a body that is not JSON at all is BadBody."""
    if ndjson:
        lines = [line for line in body.split(b"\n") if line.strip()]
        if len(lines) > max_records:
            raise BodyTooLarge(f"a batch holds at most {max_records} records, got {len(lines)}")
        records = [_ndjson_record(line) for line in lines]
        if records and not any(record.is_json for record in records):
            raise BadBody("no line of the NDJSON body is JSON")
        return records
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadBody(f"body is not JSON: {exc}") from exc
    if not isinstance(value, list):
        raise InvalidInput("body must be a JSON array of CDRs (or NDJSON)")
    if len(value) > max_records:
        raise BodyTooLarge(f"a batch holds at most {max_records} records, got {len(value)}")
    return [Incoming(item, orjson.dumps(item).decode()) for item in value]


def _ndjson_record(line: bytes) -> Incoming:
    text = line.strip().decode("utf-8", errors="replace")
    try:
        return Incoming(orjson.loads(line), text)
    except orjson.JSONDecodeError:
        return Incoming(None, text, is_json=False)


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
    return SubscriberProfile(plan=default_plan) if default_plan else None


def profile_of(row: Subscriber | repository.RegistryEntry) -> SubscriberProfile:
    """Registry row -> the core's SubscriberProfile."""
    return SubscriberProfile(
        plan=row.plan, home_area=row.home_area, packages=tuple(orjson.loads(row.packages))
    )


def rating_out(rating: Rating) -> schemas.RatingOut:
    """Core Rating -> SPEC §6.1 schema."""
    return schemas.RatingOut.model_validate(rating.to_dict())


def stored_rating_out(row: RatingRow) -> schemas.StoredRating:
    """Ratings row -> schema."""
    return schemas.StoredRating(
        seq=row.seq,
        tariff=row.tariff,
        charge_fen=row.charge_fen,
        call_class=row.call_class,
        dial=row.dial,
        roaming=row.roaming,
        items=[schemas.Item.model_validate(item) for item in orjson.loads(row.items)],
        rules=orjson.loads(row.rules),
        explanation_zh=row.explanation_zh,
        rated_at=row.rated_at,
        source=row.source,
    )


def dialing_area(code: str | None) -> str | None:
    """An area code as stored and rated ("21") -> as dialed and shown ("021")."""
    return None if code is None else "0" + code


def home_area_of(rater: Rater, msisdn: str, registered: str | None) -> str | None:
    """The home area rating uses: the registry's, else the number range's (dialing form)."""
    return dialing_area(registered or rater.home_area(msisdn))


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
        raw=row.raw,
        received_at=row.received_at,
        resolved_at=row.resolved_at,
        resolution=row.resolution,
    )


def record_result(index: int, outcome: Outcome) -> dict[str, Any]:
    """Outcome -> the wire form of schemas.RecordResult (built as a dict: batches are big)."""
    result: dict[str, Any] = {"index": index, "id": outcome.id, "result": outcome.result}
    if outcome.charge_fen is not None:
        result["charge_fen"] = outcome.charge_fen
    if outcome.rating is not None:  # the switch needs the charge; GET /v1/cdrs/{id} has the rest
        result["call_class"] = outcome.rating.call_class
        result["tariff"] = outcome.rating.tariff
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


def _record_id(value: object) -> str | None:
    if isinstance(value, Mapping):
        record_id = value.get("id")
        if isinstance(record_id, str) and 0 < len(record_id) <= MAX_ID_CHARS:
            return record_id
    return None


def rating_row(
    cdr_id: str, seq: int, rating: Rating, *, now: datetime, source: str
) -> dict[str, Any]:
    """A ratings-table row for one rating of a CDR (ingest, recycle and re-rating share it)."""
    return {
        "cdr_id": cdr_id,
        "seq": seq,
        "tariff": rating.tariff,
        "charge_fen": rating.charge_fen,
        "call_class": rating.call_class,
        "dial": rating.dial,
        "roaming": rating.roaming,
        "items": orjson.dumps([item.to_dict() for item in rating.items]).decode(),
        "rules": orjson.dumps(list(rating.rules)).decode(),
        "explanation_zh": rating.explanation_zh,
        "rated_at": now,
        "source": source,
    }


def _rate_and_store(
    session: Session,
    *,
    rater: Rater,
    default_plan: str | None,
    records: Sequence[Incoming],
    source: str,
    now: datetime,
    metrics: Metrics | None,
) -> list[Outcome]:
    """Deduplicate, rate and store the rateable records; rejected ones are left to the caller."""
    outcomes: list[Outcome | None] = [None] * len(records)
    first_index: dict[str, int] = {}
    repeats: dict[int, int] = {}  # later index -> index of the first record with that id
    for index, record in enumerate(records):
        record_id = _record_id(record.value) if record.is_json else None
        if record_id is None:
            continue
        if record_id in first_index:
            repeats[index] = first_index[record_id]
        else:
            first_index[record_id] = index
    stored = repository.current_charges(session, cdr_ids=list(first_index))
    for record_id, charge in stored.items():
        outcomes[first_index[record_id]] = Outcome(record_id, DUPLICATE, charge_fen=charge)

    calls: dict[int, CallRecord] = {}
    for index, record in enumerate(records):
        if outcomes[index] is not None or index in repeats:
            continue
        try:
            if not record.is_json:
                raise Rejected("record.invalid")
            calls[index] = parse_cdr(record.value, require_id=True)
        except Rejected as rejection:
            outcomes[index] = Outcome(_record_id(record.value), REJECTED, rejection=rejection)
    registry = repository.subscribers_by_msisdn(
        session, msisdns=sorted({call.caller for call in calls.values()})
    )
    fallback = default_profile(default_plan)
    cdr_rows: list[dict[str, Any]] = []
    for index, call in calls.items():
        row = registry.get(call.caller)
        profile = profile_of(row) if row is not None else fallback
        started = time.perf_counter()
        try:
            rating = rater.rate(call, subscriber=profile)
        except Rejected as rejection:
            outcomes[index] = Outcome(call.id, REJECTED, rejection=rejection)
            continue
        finally:
            if metrics is not None:
                metrics.rating_seconds.observe(time.perf_counter() - started)
        assert call.id is not None
        outcomes[index] = Outcome(call.id, RATED, charge_fen=rating.charge_fen, rating=rating)
        cdr_rows.append(
            {
                "id": call.id,
                "caller": call.caller,
                "callee": call.callee[:64],
                "start_epoch_s": call.start_epoch_s,
                "duration_s": call.duration_s,
                "leg": call.leg.value,
                "raw": records[index].raw,
                "received_at": now,
            }
        )
    inserted = repository.insert_cdrs_new(session, rows=cdr_rows)
    rating_rows: list[dict[str, Any]] = []
    raced: list[int] = []
    for cdr_row in cdr_rows:
        index = first_index[cdr_row["id"]]
        outcome = outcomes[index]
        assert outcome is not None
        assert outcome.rating is not None
        if cdr_row["id"] in inserted:
            rating_rows.append(rating_row(cdr_row["id"], 1, outcome.rating, now=now, source=source))
        else:  # a concurrent batch stored the same id first; its charge is the answer
            raced.append(index)
    repository.insert_ratings(session, rows=rating_rows)
    if raced:
        raced_ids = dict(_ids_at(outcomes, raced))
        charges = repository.current_charges(session, cdr_ids=list(raced_ids.values()))
        for index, record_id in raced_ids.items():
            outcomes[index] = Outcome(record_id, DUPLICATE, charge_fen=charges.get(record_id))
    for index, first in repeats.items():
        original = outcomes[first]
        assert original is not None
        outcomes[index] = Outcome(
            original.id,
            DUPLICATE,
            charge_fen=original.charge_fen if original.result != REJECTED else None,
        )
    if metrics is not None:
        charged: dict[str, int] = {}  # one counter update per class, not per record
        for outcome in outcomes:
            if outcome is not None and outcome.result == RATED and outcome.rating is not None:
                call_class = outcome.rating.call_class
                charged[call_class] = charged.get(call_class, 0) + outcome.rating.charge_fen
        for call_class, fen in charged.items():
            metrics.charged_fen.labels(call_class=call_class).inc(fen)
    final = [outcome for outcome in outcomes if outcome is not None]
    assert len(final) == len(records)
    return final


def _ids_at(outcomes: Sequence[Outcome | None], indexes: Sequence[int]) -> list[tuple[int, str]]:
    return [
        (index, outcome.id)
        for index in indexes
        if (outcome := outcomes[index]) is not None and outcome.id is not None
    ]


def ingest_batch(
    session: Session,
    *,
    rater: Rater,
    default_plan: str | None,
    records: Sequence[Incoming],
    metrics: Metrics | None = None,
    now: datetime | None = None,
) -> list[Outcome]:
    """SPEC §6.2: rate and store a batch; rejected records go whole to suspense."""
    now = now or utcnow()
    outcomes = _rate_and_store(
        session,
        rater=rater,
        default_plan=default_plan,
        records=records,
        source="ingest",
        now=now,
        metrics=metrics,
    )
    rejected = [(i, o) for i, o in enumerate(outcomes) if o.result == REJECTED]
    waiting = repository.open_suspense_record_ids(
        session, record_ids=[o.id for _, o in rejected if o.id is not None]
    )
    rows = []
    for index, outcome in rejected:
        if outcome.id is not None and outcome.id in waiting:
            continue  # a retried batch: this record already waits in suspense
        assert outcome.rejection is not None
        rows.append(
            {
                "record_id": outcome.id,
                "raw": records[index].raw,
                "field": outcome.rejection.field,
                "code": outcome.rejection.code,
                "reason": outcome.rejection.message,
                "received_at": now,
                "resolved_at": None,
                "resolution": None,
            }
        )
    repository.insert_suspense(session, rows=rows)
    if metrics is not None:
        metrics.count_results(outcome.result for outcome in outcomes)
    return outcomes


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
    now = now or utcnow()
    rows = repository.open_suspense(session, ids=ids, limit=limit)
    records = [_incoming_from_raw(row.raw) for row in rows]
    outcomes = _rate_and_store(
        session,
        rater=rater,
        default_plan=default_plan,
        records=records,
        source="recycle",
        now=now,
        metrics=metrics,
    )
    for resolution in (RATED, DUPLICATE):
        repository.resolve_suspense(
            session,
            ids=[row.id for row, o in zip(rows, outcomes, strict=True) if o.result == resolution],
            resolution=resolution,
            resolved_at=now,
        )
    results = []
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
        results.append(
            schemas.RecycleResult(
                suspense_id=row.id,
                record_id=row.record_id,
                result=outcome.result,  # type: ignore[arg-type]
                charge_fen=outcome.charge_fen,
                field=rejection.field if rejection else None,
                code=rejection.code if rejection else None,
                reason=rejection.message if rejection else None,
            )
        )
    return schemas.RecycleResponse(counts=schemas.Counts(**counts_of(outcomes)), results=results)


def _incoming_from_raw(raw: str) -> Incoming:
    try:
        return Incoming(orjson.loads(raw), raw)
    except orjson.JSONDecodeError:
        return Incoming(None, raw, is_json=False)


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


def suspense_size(session: Session) -> int:
    """Open suspense rows."""
    return repository.count_open_suspense(session)


# --- quote, reads, registry -------------------------------------------------------------------


def quote(
    db: repository.Executor,
    *,
    rater: Rater,
    default_plan: str | None,
    request: object,
    actor: Actor,
    now: datetime | None = None,
) -> Rating | Rejected:
    """Rate a quote request; stores nothing but the audit row (also for a rejected quote):
    subject the caller, detail the masked callee and the outcome (charge or rejection)."""
    call: CallRecord | None = None
    result: Rating | Rejected
    try:
        call = parse_cdr(request, require_id=False)
        row = repository.registry_entry(db, msisdn=call.caller)
        profile = profile_of(row) if row is not None else default_profile(default_plan)
        result = rater.rate(call, subscriber=profile)
    except Rejected as rejection:
        result = rejection
    if call is not None:
        subject: str | None = call.caller
        callee = mask_number(call.callee)
    else:  # rejected while parsing: the fields as sent, masked (they are not checked numbers)
        subject = _sent_caller(request)
        callee = _sent_text(request, "callee", AUDIT_CALLEE_CHARS) or "-"
    outcome = (
        f"rejected {result.code}" if isinstance(result, Rejected) else f"{result.charge_fen} fen"
    )
    write_audit(
        db,
        actor=actor,
        action="quote",
        subject=subject,
        detail=f"callee {callee}; {outcome}"[:AUDIT_DETAIL_CHARS],
        at=now or utcnow(),
    )
    return result


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
    ratings = [stored_rating_out(r) for r in repository.ratings_of(session, cdr_id=cdr_id)]
    write_audit(
        session,
        actor=actor,
        action="cdr.read",
        subject=row.caller,
        detail=cdr_id,
        at=now or utcnow(),
    )
    record = orjson.loads(row.raw)
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
    """The tariff versions and their windows."""
    return [
        schemas.TariffOut(
            version=t.version,
            name=t.name,
            effective_from=t.effective_from,
            effective_until=t.effective_until,
        )
        for t in rater.book.tariffs
    ]


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
