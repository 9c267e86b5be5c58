"""Bulk re-rating (SPEC §6.3): rate stored CDRs again; append a rating where it changed.

History is never overwritten: a CDR whose charge or tariff version differs from its current
rating gets a new rating row (seq + 1, source "rerate"); the old rows stay. The batch path
decides, in chunks ordered by (start, id), which CDRs changed; only those are rated again by
the per-call path for the stored detail (items, explanation), and the two must agree. Each
chunk commits together with the job's progress, so an interrupted job loses nothing and a
second run over the same window changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.orm import Session, sessionmaker

from service import schemas
from service.clock import utcnow
from service.db import repository
from service.db.models import RerateJob
from service.db.repository import CurrentRating
from service.errors import InvalidInput, NotFound
from service.flows.registry import default_profile, profile_of
from service.ingest.records import Rated, rating_row
from service.ingest.scan import warm_scanner
from service.ingest.text_kernels import warm as warm_ingest_text
from service.jobs.batchio import PROFILE_SCHEMA
from service.jobs.spark_engine import rejected_output
from service.ops.metrics import Metrics, RerateProgress
from service.rating.batch import RECORD_SCHEMA, BatchRater, record_columns
from service.rating.cdr import DEFAULT_OFFSET, EPOCH
from service.rating.scalar import Rater, SubscriberProfile
from service.security import Actor, write_audit

log = logging.getLogger(__name__)

CHUNK_ROWS = 20_000
EXPORT_ROWS_PER_FILE = 1_000_000
RESULT_COLUMNS = ("id", "charge_fen", "tariff")
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
SOURCE = "rerate"


class RerateMismatch(RuntimeError):
    """The batch and per-call paths disagree on a record: a bug, never a silent charge."""


@dataclass(frozen=True, slots=True)
class ChunkResult:
    processed: int
    changed: int
    rejected: int
    delta_fen: int
    last: tuple[int, str] | None


def create_job(
    session: Session,
    *,
    from_epoch_s: int,
    to_epoch_s: int,
    dry_run: bool,
    requested_by: str,
    utc_offsets_s: tuple[int, int],
) -> RerateJob:
    """A queued job over CDRs starting in [from, to); `utc_offsets_s`: the offsets the
    window was given in, which the job is shown in."""
    now = utcnow()
    job = RerateJob(
        id=uuid.uuid4().hex,
        from_epoch_s=from_epoch_s,
        to_epoch_s=to_epoch_s,
        from_utc_offset_s=utc_offsets_s[0],
        to_utc_offset_s=utc_offsets_s[1],
        dry_run=dry_run,
        status=QUEUED,
        requested_by=requested_by,
        created_at=now,
        updated_at=now,
        finished_at=None,
        total=repository.count_cdrs_between(
            session, from_epoch_s=from_epoch_s, to_epoch_s=to_epoch_s
        ),
        processed=0,
        changed=0,
        rejected=0,
        delta_fen=0,
        cursor_start_epoch_s=None,
        cursor_id=None,
        error=None,
    )
    repository.add_rerate_job(session, job=job)
    return job


def _aware(moment: datetime) -> datetime:
    """A moment without an offset is +08:00 (SPEC §1)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=DEFAULT_OFFSET)


def epoch_s(moment: datetime) -> int:
    """Seconds since the epoch."""
    return (_aware(moment) - EPOCH) // timedelta(seconds=1)


def _utc_offset_s(moment: datetime) -> int:
    offset = _aware(moment).utcoffset()
    assert offset is not None  # aware
    return offset // timedelta(seconds=1)


def _in_offset(epoch: int, offset_s: int) -> datetime:
    return datetime.fromtimestamp(epoch, timezone(timedelta(seconds=offset_s)))


def start_job(
    session: Session, *, window_from: datetime, window_to: datetime, dry_run: bool, actor: Actor
) -> RerateJob:
    """Validate the window, create the job and audit who asked for it."""
    from_s, to_s = epoch_s(window_from), epoch_s(window_to)
    if from_s >= to_s:
        raise InvalidInput("from must be before to", field="to")
    job = create_job(
        session,
        from_epoch_s=from_s,
        to_epoch_s=to_s,
        dry_run=dry_run,
        requested_by=actor.key_id,
        utc_offsets_s=(_utc_offset_s(window_from), _utc_offset_s(window_to)),
    )
    write_audit(
        session, actor=actor, action="rerate", subject=None, detail=job.id, at=job.created_at
    )
    return job


def read_job(session: Session, *, job_id: str) -> schemas.RerateJobOut:
    """A job as the API shows it."""
    job = repository.get_rerate_job(session, job_id=job_id)
    if job is None:
        raise NotFound(f"no rerate job {job_id}")
    return job_out(job)


def job_out(job: RerateJob) -> schemas.RerateJobOut:
    """ORM row -> API schema."""
    return schemas.RerateJobOut(
        id=job.id,
        status=job.status,  # type: ignore[arg-type]  # the column holds one of the four
        dry_run=job.dry_run,
        from_=_in_offset(job.from_epoch_s, job.from_utc_offset_s),  # as it was given
        to=_in_offset(job.to_epoch_s, job.to_utc_offset_s),
        total=job.total,
        processed=job.processed,
        changed=job.changed,
        rejected=job.rejected,
        delta_fen=job.delta_fen,
        created_at=_utc(job.created_at),
        updated_at=_utc(job.updated_at),
        finished_at=None if job.finished_at is None else _utc(job.finished_at),
        error=job.error,
    )


def _utc(moment: datetime) -> datetime:
    # SQLite keeps no offset: what was stored as UTC comes back naive.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def run_job_quietly(
    sessions: sessionmaker[Session],
    *,
    job_id: str,
    rater: Rater,
    default_plan: str | None,
    metrics: Metrics | None = None,
) -> None:
    """run_job for a background task: a failure is already on the job row and in the log."""
    # The failure is recorded as the job's status and error, and logged by run_job.
    with contextlib.suppress(Exception):
        run_job(sessions, job_id=job_id, rater=rater, default_plan=default_plan, metrics=metrics)


def _columns(records: list[dict[str, Any]]) -> pa.Table:
    """SPEC §3.1 columns of stored (already validated, so well-typed) records."""
    return record_columns(records)[0]


def warm_batch_kernels(rater: Rater) -> BatchRater:
    """A BatchRater whose numba kernels are compiled (or loaded from the JIT cache) now.

    The first call of a kernel compiles it: about 16 s without a JIT cache, during which a
    job inside a transaction would hold SQLite's write lock and stall every other writer.
    So run_job calls this before its first transaction, and the app calls it at start. The
    body scanner's kernel and those that write ingest's rows and answer
    (service.ingest.text_kernels) are warmed with them, so the first ingest request does not
    compile them.
    """
    warm_scanner()
    warm_ingest_text()
    batch = BatchRater(rater)
    batch.warm()
    return batch


def _profiles(session: Session, rows: list[CurrentRating]) -> dict[str, SubscriberProfile]:
    """Registry profiles of the chunk's callers."""
    registry = repository.subscribers_by_msisdn(session, msisdns=sorted({row[1] for row in rows}))
    return {msisdn: profile_of(entry) for msisdn, entry in registry.items()}


def rerate_chunk(
    session: Session,
    *,
    rater: Rater,
    batch: BatchRater,
    rows: list[CurrentRating],
    default_plan: str | None,
    dry_run: bool,
    now: datetime,
) -> ChunkResult:
    """Re-rate one chunk of (id, caller, raw, start, tariff, charge, seq) rows."""
    records: list[dict[str, Any]] = [orjson.loads(row[2]) for row in rows]
    profiles = _profiles(session, rows)
    rated = batch.rate(_columns(records), subscribers=profiles, default_plan=default_plan)
    charges, tariffs = rated.column("charge_fen").to_pylist(), rated.column("tariff").to_pylist()
    return append_changed(
        session,
        rater=rater,
        rows=rows,
        records=records,
        profiles=profiles,
        results=list(zip(charges, tariffs, strict=True)),
        default_plan=default_plan,
        dry_run=dry_run,
        now=now,
    )


def append_changed(
    session: Session,
    *,
    rater: Rater,
    rows: list[CurrentRating],
    records: list[dict[str, Any]],
    profiles: dict[str, SubscriberProfile],
    results: list[tuple[int | None, str | None]],
    default_plan: str | None,
    dry_run: bool,
    now: datetime,
) -> ChunkResult:
    """Append a rating for each row whose batch result (charge, tariff; None: rejected)
    differs from its current rating, after the per-call path has agreed on it."""
    fallback = default_profile(default_plan)
    new_rows: list[tuple[Any, ...]] = []
    rejected = delta = 0
    for index, (cdr_id, caller, _raw, _start, tariff, charge, seq) in enumerate(rows):
        new_charge, new_tariff = results[index]
        if new_charge is None:
            rejected += 1  # e.g. its plan left the tariff: keep the history, report it
            continue
        if new_charge == charge and new_tariff == tariff:
            continue
        profile = profiles.get(caller, fallback)
        rating = rater.rate_raw(records[index], subscriber=profile, require_id=True)
        if (rating.charge_fen, rating.tariff) != (new_charge, new_tariff):
            raise RerateMismatch(
                f"CDR {cdr_id}: batch path {new_charge} fen ({new_tariff}), per-call path "
                f"{rating.charge_fen} fen ({rating.tariff})"
            )
        delta += new_charge - charge
        new_rows.append(
            rating_row(cdr_id, seq + 1, Rated.of(rating, profile), now=now, source=SOURCE)
        )
    if not dry_run:
        repository.insert_ratings(session, rows=new_rows)
    last = (rows[-1][3], rows[-1][0]) if rows else None
    return ChunkResult(len(rows), len(new_rows), rejected, delta, last)


def run_job(
    sessions: sessionmaker[Session],
    *,
    job_id: str,
    rater: Rater,
    default_plan: str | None,
    chunk_rows: int = CHUNK_ROWS,
    metrics: Metrics | None = None,
) -> RerateJob:
    """Run (or resume) a job to the end; each chunk commits with the job's progress."""
    batch = warm_batch_kernels(rater)  # before any transaction: a JIT compile holds no lock
    progress = RerateProgress(metrics)
    try:
        while True:
            with sessions.begin() as session:
                job = _job(session, job_id)
                if job.status in (DONE, FAILED):
                    return job
                after = (
                    None
                    if job.cursor_id is None or job.cursor_start_epoch_s is None
                    else (job.cursor_start_epoch_s, job.cursor_id)
                )
                rows = repository.current_ratings_between(
                    session,
                    from_epoch_s=job.from_epoch_s,
                    to_epoch_s=job.to_epoch_s,
                    after=after,
                    limit=chunk_rows,
                )
                now = utcnow()
                job.status, job.updated_at = RUNNING, now
                progress.start(total=job.total, processed=job.processed)
                if not rows:
                    job.status, job.finished_at = DONE, now
                    log.info(
                        "rerate %s done: %d changed, delta %d fen",
                        job.id,
                        job.changed,
                        job.delta_fen,
                    )
                    break
                result = rerate_chunk(
                    session,
                    rater=rater,
                    batch=batch,
                    rows=rows,
                    default_plan=default_plan,
                    dry_run=job.dry_run,
                    now=now,
                )
                _count(job, result)
                if result.last is not None:
                    job.cursor_start_epoch_s, job.cursor_id = result.last
            progress.chunk(
                processed=result.processed, changed=result.changed, rejected=result.rejected
            )
        progress.finish(DONE)  # committed
        return job
    except Exception as exc:
        progress.finish(FAILED)
        _fail(sessions, job_id, exc)
        raise


def _count(job: RerateJob, result: ChunkResult) -> None:
    job.processed += result.processed
    job.changed += result.changed
    job.rejected += result.rejected
    job.delta_fen += result.delta_fen


def _fail(sessions: sessionmaker[Session], job_id: str, exc: Exception) -> None:
    """Record the failure on the job row and in the log."""
    with sessions.begin() as session:
        job = _job(session, job_id)
        job.status, job.error = FAILED, f"{type(exc).__name__}: {exc}"[:2000]
        job.updated_at = job.finished_at = utcnow()
    log.exception("rerate %s failed", job_id)


def _job(session: Session, job_id: str) -> RerateJob:
    job = repository.get_rerate_job(session, job_id=job_id)
    if job is None:
        raise LookupError(f"no rerate job {job_id}")
    return job


# -- the cluster flow: export the window, rate it on Spark, apply the results -----------------


def export_window(
    sessions: sessionmaker[Session],
    *,
    window_from: datetime,
    window_to: datetime,
    directory: Path,
    actor: Actor,
    chunk_rows: int = CHUNK_ROWS,
    rows_per_file: int = EXPORT_ROWS_PER_FILE,
) -> int:
    """Write the window's CDRs, each with its caller's registry profile, as Parquet files
    `callrate rate --engine spark` reads; the number of CDRs written."""
    from_s, to_s = epoch_s(window_from), epoch_s(window_to)
    if from_s >= to_s:
        raise InvalidInput("from must be before to")
    if directory.exists() and any(directory.iterdir()):
        raise InvalidInput(f"{directory} is not empty")
    directory.mkdir(parents=True, exist_ok=True)
    schema = pa.unify_schemas([RECORD_SCHEMA, PROFILE_SCHEMA])
    files = count = 0
    writer: pq.ParquetWriter | None = None
    after: tuple[int, str] | None = None
    try:
        with sessions() as session:
            while rows := repository.current_ratings_between(
                session, from_epoch_s=from_s, to_epoch_s=to_s, after=after, limit=chunk_rows
            ):
                if writer is None or count >= files * rows_per_file:
                    if writer is not None:
                        writer.close()
                    writer = pq.ParquetWriter(directory / f"part-{files:05d}.parquet", schema)
                    files += 1
                writer.write_table(_export_table(session, rows, schema))
                count += len(rows)
                after = (rows[-1][3], rows[-1][0])
        if writer is None:  # an empty window: an empty file still tells Spark the columns
            pq.write_table(schema.empty_table(), directory / "part-00000.parquet")
    finally:
        if writer is not None:
            writer.close()
    with sessions.begin() as session:
        detail = f"{count} CDRs [{from_s}, {to_s}) to {directory}"
        write_audit(
            session, actor=actor, action="rerate.export", subject=None, detail=detail, at=utcnow()
        )
    return count


def _export_table(session: Session, rows: list[CurrentRating], schema: pa.Schema) -> pa.Table:
    """A chunk's batch-path columns beside its callers' registry profiles."""
    records = [orjson.loads(row[2]) for row in rows]
    registry = _profiles(session, rows)
    profiles = [registry.get(row[1]) for row in rows]
    columns = _columns(records)
    subscribers = pa.table(
        {
            "subscriber": [row[1] if p else None for row, p in zip(rows, profiles, strict=True)],
            "subscriber_plan": [p.plan if p else None for p in profiles],
            "subscriber_home_area": [p.home_area if p else None for p in profiles],
            "subscriber_packages": [list(p.packages) if p else None for p in profiles],
        },
        schema=PROFILE_SCHEMA,
    )
    return pa.table([*columns.columns, *subscribers.columns], schema=schema)


def apply_results(
    sessions: sessionmaker[Session],
    *,
    job_id: str,
    rater: Rater,
    default_plan: str | None,
    results: Path,
    chunk_rows: int = CHUNK_ROWS,
) -> RerateJob:
    """Apply `callrate rate --engine spark` output (OUT and OUT.rejected) as the job's
    results: checked and appended exactly as `run_job` does, each chunk committed with the
    job's progress; applying again appends nothing."""
    import pyarrow.dataset as ds

    rejected = rejected_output(str(results))
    try:
        for path, columns in ((str(results), RESULT_COLUMNS), (rejected, ("id",))):
            for batch in ds.dataset(path, format="parquet").to_batches(
                columns=list(columns), batch_size=chunk_rows
            ):
                if batch.num_rows:
                    _apply_batch(sessions, job_id, rater, default_plan, batch)
        with sessions.begin() as session:
            job = _job(session, job_id)
            job.status = DONE
            job.updated_at = job.finished_at = utcnow()
            return job
    except Exception as exc:
        _fail(sessions, job_id, exc)
        raise


def _apply_batch(
    sessions: sessionmaker[Session],
    job_id: str,
    rater: Rater,
    default_plan: str | None,
    batch: pa.RecordBatch,
) -> None:
    ids = batch.column("id").to_pylist()
    if "charge_fen" in batch.schema.names:
        charges = batch.column("charge_fen").to_pylist()
        tariffs = batch.column("tariff").cast(pa.string()).to_pylist()
    else:  # rejected rows
        charges = tariffs = [None] * len(ids)
    with sessions.begin() as session:
        job = _job(session, job_id)
        stored = {row[0]: row for row in repository.current_ratings_of(session, cdr_ids=ids)}
        rows = []
        for cdr_id in ids:
            row = stored.get(cdr_id)
            if row is None or not job.from_epoch_s <= row[3] < job.to_epoch_s:
                raise InvalidInput(f"result for CDR {cdr_id}, not stored in the job's window")
            rows.append(row)
        now = utcnow()
        result = append_changed(
            session,
            rater=rater,
            rows=rows,
            records=[orjson.loads(row[2]) for row in rows],
            profiles=_profiles(session, rows),
            results=list(zip(charges, tariffs, strict=True)),
            default_plan=default_plan,
            dry_run=job.dry_run,
            now=now,
        )
        _count(job, result)
        job.status, job.updated_at = RUNNING, now
