"""Suspense (SPEC §6.2): rejected records kept byte for byte with their reason, listed for the
billing team, and recycled once the cause is fixed."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from service import schemas
from service.clock import utcnow
from service.db import repository
from service.db.models import SuspenseRow
from service.ingest.cut import (
    Incoming,
    decode_record,
)
from service.ingest.records import (
    DUPLICATE,
    RATED,
    REJECTED,
    Outcome,
    count_charged,
    counts_of,
    rate_with_registry,
    retrying,
    store_records,
)
from service.ops.metrics import Metrics
from service.rating.scalar import Rater
from service.security import Actor, write_audit


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


def suspense_rows(
    records: Sequence[Incoming], outcomes: Sequence[Outcome], *, now: datetime
) -> list[dict[str, Any]]:
    return [
        suspense_row(record, outcome, now=now)
        for record, outcome in zip(records, outcomes, strict=True)
        if outcome.result == REJECTED
    ]


def _json_record(row: SuspenseRow, index: int) -> Incoming:
    return decode_record(row.raw, index, brackets=row.raw.count(b"[") + row.raw.count(b"{"))


def recycle_suspense(
    session: Session,
    *,
    rater: Rater,
    default_plan: str | None,
    ids: Sequence[int] | None,
    limit: int,
    metrics: Metrics | None = None,
    now: datetime | None = None,
    decode: Callable[[SuspenseRow, int], Incoming] | None = None,
) -> schemas.RecycleResponse:
    """Re-rate open suspense rows; those that now rate move to the CDRs. `decode` reads a
    row back as a record (default: its bytes as a §3.1 record; a switch's own format:
    service.ingest.recycled)."""
    at = now or utcnow()

    def work() -> tuple[list[SuspenseRow], list[Outcome]]:
        rows = repository.open_suspense(session, ids=ids, limit=limit)
        records = [(decode or _json_record)(row, index) for index, row in enumerate(rows)]
        results = rate_with_registry(
            session,
            rater=rater,
            batch=None,  # a few records at a time: the per-call path
            default_plan=default_plan,
            records=records,
            metrics=metrics,
        )
        outcomes = store_records(
            session, records=records, results=results, source="recycle", now=at
        )
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
    count_charged(metrics, outcomes)
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
    session: Session,
    *,
    after_id: int,
    limit: int,
    include_resolved: bool,
    actor: Actor,
    now: datetime | None = None,
) -> schemas.SuspenseList:
    """A page of suspense rows: records as received, full numbers in them; audited."""
    rows = repository.list_suspense(
        session, after_id=after_id, limit=limit, include_resolved=include_resolved
    )
    shown = f"ids {rows[0].id}-{rows[-1].id}" if rows else "none"
    write_audit(
        session,
        actor=actor,
        action="suspense.read",
        subject=None,  # records of any subscribers
        detail=f"after_id={after_id} limit={limit} resolved={include_resolved}: {shown}",
        at=now or utcnow(),
    )
    return schemas.SuspenseList(
        items=[suspense_out(row) for row in rows],
        next_after_id=rows[-1].id if len(rows) == limit else None,
    )


def suspense_by_code(session: Session) -> dict[str, int]:
    """Open suspense rows per rejection reason code."""
    return repository.count_open_suspense_by_code(session)


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
