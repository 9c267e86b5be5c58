"""Records of a switch's own format (SPEC §3.4), mapped to §3.1 CDRs, through the one ingest of
§6.2: rated and stored as `POST /v1/cdrs` stores its records (idempotent per id), answered per
record, and a rejected record kept in suspense as the exact bytes the switch sent.

The format modules (`freeswitch`, `threegpp`) are pure: bytes in, `Mapped` records out. What
is stored for a rated record is its §3.1 CDR as JSON (what `GET /v1/cdrs/{id}` shows, and what
a second delivery of the same leg or file is compared with); what suspense keeps is the
switch's own bytes, whatever they hold."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.orm import Session

from service.clock import utcnow
from service.db import repository
from service.flows.registry import ProfileCache
from service.ingest.cut import Incoming
from service.ingest.records import (
    Outcome,
    answer_of,
    count_charged,
    rate_with_registry,
    retrying,
    store_records,
)
from service.ingest.suspense import suspense_rows
from service.ops.metrics import Metrics
from service.rating.batch import BatchRater
from service.rating.rejections import Rejected
from service.rating.scalar import Rater


@dataclass(frozen=True, slots=True)
class Mapped:
    """One record of a switch's format: its §3.1 CDR, or why it has none, and its own bytes."""

    original: bytes  # what the switch sent for this record: suspense keeps exactly these
    cdr: dict[str, Any] | None = None
    rejection: Rejected | None = None
    record_id: str | None = None  # known even when the record cannot be mapped whole

    @classmethod
    def rejected(cls, original: bytes, code: str, *, record_id: str | None = None) -> Mapped:
        """A record that maps to no CDR, for the reason `code`."""
        return cls(original, rejection=Rejected(code), record_id=record_id)


def cdr_bytes(cdr: dict[str, Any]) -> bytes:
    """The stored form of a mapped CDR: JSON, keys sorted (one leg maps to the same bytes)."""
    return orjson.dumps(cdr, option=orjson.OPT_SORT_KEYS)


def incoming(mapped: Sequence[Mapped], indexes: Sequence[int] | None = None) -> list[Incoming]:
    """Mapped records -> the records ingest rates and stores (their §3.1 CDRs); `indexes`:
    where each is in what the switch sent (default: in order from 0)."""
    records = []
    for index, record in zip(indexes or range(len(mapped)), mapped, strict=True):
        if record.cdr is not None:
            records.append(Incoming(cdr_bytes(record.cdr), index, record.cdr))
        else:
            value = {"id": record.record_id} if record.record_id is not None else {}
            records.append(Incoming(record.original, index, value, record.rejection))
    return records


def ingest_mapped(
    session: Session,
    *,
    mapped: Sequence[Mapped],
    indexes: Sequence[int] | None = None,
    rater: Rater,
    batch: BatchRater | None,
    default_plan: str | None,
    metrics: Metrics | None = None,
    now: datetime | None = None,
    registry_cache: ProfileCache | None = None,
    also: Callable[[], None] | None = None,
) -> list[Outcome]:
    """SPEC §6.2 for mapped records, in one transaction (run again whole on a retry): rated
    and stored, a duplicate answered with the stored charge, a rejected record to suspense
    as the switch's own bytes (once, however often it is sent); `also()` is more work of the
    same transaction."""
    at = now or utcnow()
    records = incoming(mapped, indexes)
    originals = [Incoming(m.original, i) for i, m in enumerate(mapped)]
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
        repository.insert_suspense(session, rows=suspense_rows(originals, outcomes, now=at))
        if also is not None:
            also()
        return outcomes

    outcomes = retrying(session, work)
    count_charged(metrics, outcomes)
    if metrics is not None:
        metrics.count_results(outcome.result for outcome in outcomes)
    return outcomes


def mapped_answer(
    mapped: Sequence[Mapped], outcomes: Sequence[Outcome], indexes: Sequence[int] | None = None
) -> dict[str, Any]:
    """The §6.2 answer (schemas.BatchResponse) of mapped records."""
    return answer_of(incoming(mapped, indexes), outcomes)
