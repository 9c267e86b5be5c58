"""An MSC's CDR file through ingest (SPEC §3.4): its records mapped (service.ingest.threegpp),
the parts of a partial call held in suspense until the call's last part arrives and then rated
once as one call, and the rest through the one §6.2 ingest (service.ingest.mediated)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from service.clock import utcnow
from service.db import repository
from service.flows.registry import ProfileCache
from service.ingest.cut import Incoming
from service.ingest.mediated import Mapped, ingest_mapped, mapped_answer
from service.ingest.mediation_file import Mediation
from service.ingest.records import REJECTED, Outcome
from service.ingest.suspense import suspense_row
from service.ingest.threegpp import (
    MscFile,
    Part,
    decode_record,
    held,
    is_complete,
    map_record,
    merge_parts,
    read_file,
)
from service.ops.metrics import Metrics
from service.rating.batch import BatchRater
from service.rating.rejections import Rejected
from service.rating.scalar import Rater

HELD_CODE = "record.partial_held"
MERGED = "merged"


def ingest_msc_file(
    session: Session,
    *,
    data: bytes,
    mediation: Mediation,
    rater: Rater,
    batch: BatchRater | None,
    default_plan: str | None,
    metrics: Metrics | None = None,
    now: datetime | None = None,
    registry_cache: ProfileCache | None = None,
) -> dict[str, Any]:
    """One file's records rated and stored (not yet committed); its answer: the §6.2 result
    per record (a call of several parts answered at its last part) and `file`, which says
    whether the whole file was read."""
    at = now or utcnow()
    msc = read_file(data, msc_areas=mediation.msc_areas)
    calls = _calls(session, msc, mediation)
    mapped, indexes = calls.mapped, calls.indexes

    def resolve_held() -> None:
        """The parts of a call rated now: those held before marked merged, this file's kept
        merged (a file ingested again finds its call whole, and adds nothing)."""
        repository.resolve_suspense(session, ids=calls.held_ids, resolution=MERGED, resolved_at=at)
        rows = []
        for part in calls.new_parts:
            assert part.call_id is not None
            outcome = Outcome(part.call_id, REJECTED, rejection=Rejected(HELD_CODE))
            row = suspense_row(Incoming(part.mapped.original, 0), outcome, now=at)
            rows.append({**row, "resolved_at": at, "resolution": MERGED})
        repository.insert_suspense(session, rows=rows)

    outcomes = ingest_mapped(
        session,
        mapped=mapped,
        indexes=indexes,
        rater=rater,
        batch=batch,
        default_plan=default_plan,
        metrics=metrics,
        now=at,
        registry_cache=registry_cache,
        also=resolve_held,
    )
    answer = mapped_answer(mapped, outcomes, indexes)
    answer["file"] = {
        "records": len(msc.parts),
        "framed": msc.framed,
        "failed": msc.fault_offset is not None,
        "fault_offset": msc.fault_offset,
    }
    return answer


def _of_a_partial_call(part: Part) -> bool:
    return part.call_id is not None and (part.partial or part.sequence is not None)


class _Calls(NamedTuple):
    mapped: list[Mapped]  # what to ingest: records, whole calls, parts held
    indexes: list[int]  # of each in the file
    held_ids: list[int]  # suspense rows of parts held before, of calls now whole
    new_parts: list[Part]  # this file's parts of calls now whole


def _calls(session: Session, msc: MscFile, mediation: Mediation) -> _Calls:
    """The file's records as calls to ingest, with their indexes in the file, and the held
    suspense rows a completed call takes up."""
    grouped: dict[str, list[Part]] = {}
    for part in msc.parts:
        if _of_a_partial_call(part):
            assert part.call_id is not None
            grouped.setdefault(part.call_id, []).append(part)
    rows = repository.held_parts(session, record_ids=sorted(grouped), code=HELD_CODE)
    earlier: dict[str, list[tuple[int | None, Part]]] = {}
    for row in rows:
        decoded = decode_record(row.raw, 0)
        if decoded is not None and row.record_id is not None:
            part = map_record(*decoded, mediation.msc_areas)
            open_id = row.id if row.resolved_at is None else None
            earlier.setdefault(row.record_id, []).append((open_id, part))
    complete: dict[str, tuple[Mapped, list[int]]] = {}
    new_parts: list[Part] = []
    for call_id, parts in grouped.items():
        before = {part.mapped.original: part for _, part in earlier.get(call_id, ())}
        new = {p.mapped.original: p for p in parts if p.mapped.original not in before}
        whole = [*before.values(), *new.values()]
        if is_complete(whole):
            open_ids = [i for i, _ in earlier.get(call_id, ()) if i is not None]
            complete[call_id] = (merge_parts(whole), open_ids)
            new_parts.extend(new.values())
    mapped: list[Mapped] = []
    indexes: list[int] = []
    merged_ids: list[int] = []
    last_index = _last_index(msc.parts)
    for index, part in enumerate(msc.parts):
        if not _of_a_partial_call(part):
            mapped.append(part.mapped)
        elif part.call_id in complete:
            if index != last_index[part.call_id]:
                continue  # the call is answered once, at its last part in this file
            call, open_ids = complete[part.call_id]
            mapped.append(call)
            merged_ids.extend(open_ids)
        else:
            mapped.append(held(part))
        indexes.append(index)
    return _Calls(mapped, indexes, merged_ids, new_parts)


def _last_index(parts: Sequence[Part]) -> dict[str | None, int]:
    return {part.call_id: index for index, part in enumerate(parts)}
