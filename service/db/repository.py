"""All SQL of the service. Functions take the session and keyword-only arguments; they flush,
never commit: the request-scoped session commits in one place."""

from __future__ import annotations

import io
import operator
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypeAlias, cast

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import (
    ARRAY,
    Select,
    String,
    Table,
    any_,
    bindparam,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from service.db.health import mark_written
from service.db.models import (
    ApiKey,
    AuditRow,
    Base,
    Cdr,
    RatingRow,
    RerateJob,
    Subscriber,
    SuspenseRow,
)

# Bound parameters per IN list: far below SQLite's 32,766 and PostgreSQL's 65,535.
IN_CHUNK = 5_000

# The quote path runs Core statements on a bare Connection: an ORM Session's bookkeeping
# cost about as much CPU as the rest of a quote. Functions taking an Executor accept both.
Executor = Session | Connection


def _table(model: type[Base]) -> Table:
    # Core executemany: the ORM bulk path adds per-row bookkeeping we do not need.
    return cast(Table, model.__table__)


def _member_of(db: Session | Connection, column: Any, values: Sequence[str]) -> Any:
    """column IN values; on PostgreSQL one array parameter, not one placeholder per value."""
    bind = db.get_bind() if isinstance(db, Session) else db
    if bind.dialect.name == "postgresql":
        return column == any_(bindparam("values", list(values), type_=ARRAY(String)))
    return column.in_(values)


def _chunks(values: Sequence[str], size: int = IN_CHUNK) -> list[Sequence[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def ping_engine(engine: Engine) -> None:
    """Fail unless the database answers on one of the engine's connections."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


# One index probe per id, whatever the planner knows: `cdr_id = ANY(array)` with no column
# statistics yet (a new table, autovacuum off) was planned as a seq scan of every rating,
# per batch: 41 ms for 1,000 ids at 200k ratings, and growing with the table; this, 2.5 ms.
_CURRENT_CHARGES_PG = text(
    "SELECT r.cdr_id, r.charge_fen FROM unnest(:ids) AS wanted(id) CROSS JOIN LATERAL"
    " (SELECT cdr_id, charge_fen FROM ratings WHERE cdr_id = wanted.id"
    " ORDER BY seq DESC LIMIT 1) AS r"
).bindparams(bindparam("ids", type_=ARRAY(String)))


def current_charges(session: Session, *, cdr_ids: Sequence[str]) -> dict[str, int]:
    """The current (highest seq) charge of each stored CDR among `cdr_ids`."""
    charges: dict[str, int] = {}
    if session.get_bind().dialect.name == "postgresql":
        for chunk in _chunks(cdr_ids):
            rows = session.execute(_CURRENT_CHARGES_PG, {"ids": list(chunk)})
            charges.update({cdr_id: charge for cdr_id, charge in rows})
        return charges
    for chunk in _chunks(cdr_ids):
        latest = (
            select(RatingRow.cdr_id, func.max(RatingRow.seq).label("seq"))
            .where(_member_of(session, RatingRow.cdr_id, chunk))
            .group_by(RatingRow.cdr_id)
            .subquery()
        )
        rows = session.execute(
            select(RatingRow.cdr_id, RatingRow.charge_fen).join(
                latest, (RatingRow.cdr_id == latest.c.cdr_id) & (RatingRow.seq == latest.c.seq)
            )
        )
        charges.update({cdr_id: charge for cdr_id, charge in rows})
    return charges


CDR_COLUMNS = (
    "id", "caller", "callee", "start_epoch_s", "duration_s", "leg", "raw", "received_at"
)  # fmt: skip
RATING_COLUMNS = (
    "cdr_id", "seq", "tariff", "charge_fen", "call_class", "dial", "roaming", "rated_at",
    "source", "profile_plan", "profile_home_area", "profile_packages", "profile_registered",
)  # fmt: skip
_CSV = pacsv.WriteOptions(include_header=False)


class Csv(NamedTuple):
    """Rows written already as the CSV PostgreSQL's COPY reads (the table's columns, in
    order; CDRs in id order, see insert_cdrs_new), with their ids. PostgreSQL only."""

    text: memoryview
    ids: pa.Array


# Rows to insert: tuples in the table's column order, an Arrow table of those columns, or Csv.
Rows: TypeAlias = Sequence[tuple[Any, ...]] | pa.Table | Csv


def _count(rows: Rows) -> int:
    return len(rows.ids) if isinstance(rows, Csv) else len(rows)


def _arrow(rows: Rows, names: Sequence[str]) -> pa.Table:
    """Rows as an Arrow table; instants as ISO 8601 text, each distinct one formatted once."""
    if isinstance(rows, pa.Table):
        return rows
    columns = _transposed(rows, names)
    return pa.table(
        {
            name: _instant_texts(values) if values and isinstance(values[0], datetime) else values
            for name, values in columns.items()
        }
    )


def _instant_texts(values: Sequence[datetime]) -> list[str]:
    texts: dict[datetime, str] = {}
    return [texts.get(v) or texts.setdefault(v, v.isoformat()) for v in values]


def _tuples(rows: Rows) -> list[tuple[Any, ...]]:
    """Rows as tuples (SQLite's executemany)."""
    if not isinstance(rows, pa.Table):
        return list(rows)
    columns = []
    for column in rows.columns:
        instant = _one_instant(column)
        columns.append(column.to_pylist() if instant is None else [instant] * len(column))
    return list(zip(*columns, strict=True))


def _one_instant(column: pa.ChunkedArray | pa.Array) -> datetime | None:
    """The instant a timestamp column holds in every row, if it holds one (as ingest's do):
    converting each value to Python costs about a microsecond."""
    if not pa.types.is_timestamp(column.type) or column.null_count or not len(column):
        return None
    bounds = pc.min_max(column)
    low: datetime = bounds["min"].as_py()
    return low if low == bounds["max"].as_py() else None


def _csv(data: pa.Table) -> memoryview:
    """An Arrow table as CSV, written by Arrow: no Python work per row.

    A timestamp column goes as ISO 8601 text, formatted once when it holds one instant (as
    ingest's do): Arrow's CSV writer formats a timestamp in ~1.3 µs, as much as all the
    other columns of a row."""
    for position, field in enumerate(data.schema):
        if pa.types.is_timestamp(field.type):
            column = data.column(position)
            instant = _one_instant(column)
            texts = (
                pa.array(_instant_texts(column.to_pylist()), pa.string())
                if instant is None
                else pa.repeat(pa.scalar(instant.isoformat()), len(column))
            )
            data = data.set_column(position, field.name, texts)
    payload = io.BytesIO()
    pacsv.write_csv(data, payload, _CSV)
    return payload.getbuffer()


def _copy(session: Session, table: str, names: Sequence[str], rows: Rows) -> Any:
    """COPY rows (`names` are their columns) on the session's own connection (same
    transaction), as CSV. A cursor."""
    payload = rows.text if isinstance(rows, Csv) else _csv(_arrow(rows, names))
    pooled = session.connection()
    mark_written(pooled.info)
    connection = pooled.connection.driver_connection
    assert isinstance(connection, psycopg.Connection)
    cursor = connection.cursor()
    with cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN (FORMAT csv)") as copy:
        copy.write(payload)
    return cursor


def _transposed(rows: Sequence[Sequence[Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    return {name: list(column) for name, column in zip(names, zip(*rows, strict=True), strict=True)}


class StoredIdMet(Exception):
    """insert_cdrs_new met an id stored already and the transaction is lost (PostgreSQL):
    roll back and run the work again (is_retryable); in this session, insert_cdrs_new then
    skips stored ids."""


_STORED_ID_MET = "callrate.stored_id_met"  # Session.info: this session met a stored id


def insert_cdrs_new(session: Session, *, rows: Rows) -> set[str]:
    """Bulk-insert CDRs (CDR_COLUMNS), skipping ids already stored (also by a concurrent
    batch); the ids actually inserted. On PostgreSQL, the first stored id a session meets
    raises StoredIdMet instead."""
    if not _count(rows):
        return set()
    # In id order: two batches holding the same ids wait on each other's index entries in
    # the same order, so they cannot deadlock (PostgreSQL; SQLite has one writer at a time).
    if isinstance(rows, Csv):
        ids = set(rows.ids.to_pylist())
    elif isinstance(rows, pa.Table):
        rows = rows.take(pc.sort_indices(rows.column("id")))
        ids = set(rows.column("id").to_pylist())
    else:
        rows = sorted(rows, key=operator.itemgetter(0))
        ids = {row[0] for row in rows}
    if session.get_bind().dialect.name == "postgresql":
        if not session.info.get(_STORED_ID_MET):
            # COPY straight into cdrs, with no savepoint (two round trips). A conflict (an id
            # stored already: a retried batch, or a concurrent batch storing it meanwhile) is
            # rare: it loses the transaction, and the caller's work runs again (StoredIdMet),
            # through the staging path below from then on.
            try:
                _copy(session, "cdrs", CDR_COLUMNS, rows).close()
                return ids
            except psycopg.errors.UniqueViolation as error:
                session.info[_STORED_ID_MET] = True
                raise StoredIdMet from error
        # COPY into a per-connection staging table, then one INSERT ... ON CONFLICT: psycopg
        # would otherwise parse a statement with one placeholder per value.
        session.execute(
            text("CREATE TEMP TABLE IF NOT EXISTS cdrs_incoming (LIKE cdrs) ON COMMIT DELETE ROWS")
        )
        cursor = _copy(session, "cdrs_incoming", CDR_COLUMNS, rows)
        cursor.execute(
            "INSERT INTO cdrs SELECT * FROM cdrs_incoming ORDER BY id"
            " ON CONFLICT (id) DO NOTHING RETURNING id"
        )
        inserted = {record_id for (record_id,) in cursor.fetchall()}
        cursor.execute("TRUNCATE cdrs_incoming")
        cursor.close()
        return inserted
    if isinstance(rows, Csv):
        raise TypeError("CSV rows are for PostgreSQL's COPY")
    table = _table(Cdr)
    tuples = _tuples(rows)
    try:  # SQLite: a plain executemany in a savepoint, which a conflict takes back
        with session.begin_nested():
            _executemany(session, table, CDR_COLUMNS, tuples)
        return ids
    except sqlite3.IntegrityError:
        pass
    statement = (
        sqlite.insert(table)
        .on_conflict_do_nothing(index_elements=[table.c.id])
        .returning(table.c.id)
    )
    values = [dict(zip(CDR_COLUMNS, row, strict=True)) for row in tuples]
    return set(session.execute(statement, values).scalars().all())


def _executemany(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """INSERT rows (tuples in `columns` order) with the DB-API's executemany on the session's
    connection: SQLAlchemy's executemany costs several microseconds a row in Python. Values
    go through the columns' bind processors (instants, booleans), once per distinct value."""
    dialect = session.get_bind().dialect
    processed: list[tuple[int, Callable[[Any], Any], dict[Any, Any]]] = []
    for position, name in enumerate(columns):
        bind = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if bind is not None:
            processed.append((position, bind, {}))
    values: Sequence[Sequence[Any]] = rows
    if processed:
        lists = [list(row) for row in rows]
        for position, processor, memo in processed:
            for row in lists:
                value = row[position]
                if value not in memo:
                    memo[value] = processor(value)
                row[position] = memo[value]
        values = lists
    placeholders = ", ".join("?" * len(columns))
    pooled = session.connection()
    mark_written(pooled.info)
    driver = pooled.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    names = ", ".join(columns)
    statement = f"INSERT INTO {table.name} ({names}) VALUES ({placeholders})"  # noqa: S608 - constants
    driver.executemany(statement, values)


def insert_ratings(session: Session, *, rows: Rows) -> None:
    """Bulk-append ratings (RATING_COLUMNS; COPY on PostgreSQL, one executemany on SQLite)."""
    if not _count(rows):
        return
    if session.get_bind().dialect.name == "postgresql":
        _copy(session, "ratings", RATING_COLUMNS, rows).close()
    elif isinstance(rows, Csv):
        raise TypeError("CSV rows are for PostgreSQL's COPY")
    else:
        _executemany(session, _table(RatingRow), RATING_COLUMNS, _tuples(rows))


def insert_suspense(session: Session, *, rows: Sequence[Mapping[str, Any]]) -> None:
    """Bulk-insert rejected records, skipping those whose raw already waits in an open row
    (a retried record, also from a concurrent batch: the partial unique index decides)."""
    if not rows:
        return
    table = _table(SuspenseRow)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).on_conflict_do_nothing(
        index_elements=[table.c.raw_sha256], index_where=table.c.resolved_at.is_(None)
    )
    # In raw_sha256 order, for the reason insert_cdrs_new inserts in id order.
    session.execute(statement, sorted(rows, key=operator.itemgetter("raw_sha256")))


def stored_raws(session: Session, *, cdr_ids: Sequence[str]) -> dict[str, str]:
    """The record as received of each stored CDR among `cdr_ids`."""
    found: dict[str, str] = {}
    for chunk in _chunks(cdr_ids):
        rows = session.execute(select(Cdr.id, Cdr.raw).where(_member_of(session, Cdr.id, chunk)))
        found.update({cdr_id: raw for cdr_id, raw in rows})
    return found


# deadlock_detected, serialization_failure: the transaction may succeed when run again.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def is_retryable(error: BaseException) -> bool:
    """True for a conflict the database reports that running the transaction again resolves,
    and for StoredIdMet."""
    if isinstance(error, StoredIdMet):
        return True
    cause = error.orig if isinstance(error, DBAPIError) else error
    return getattr(cause, "sqlstate", None) in RETRYABLE_SQLSTATES


def open_suspense_record_ids(session: Session, *, record_ids: Sequence[str]) -> set[str]:
    """Which of these record ids already wait in suspense (a retried rejected record)."""
    found: set[str] = set()
    for chunk in _chunks(record_ids):
        rows = session.scalars(
            select(SuspenseRow.record_id).where(
                _member_of(session, SuspenseRow.record_id, chunk),
                SuspenseRow.resolved_at.is_(None),
            )
        )
        found.update(record_id for record_id in rows if record_id is not None)
    return found


def list_suspense(
    session: Session, *, after_id: int, limit: int, include_resolved: bool
) -> list[SuspenseRow]:
    """Suspense rows in id order, from after `after_id`."""
    query = select(SuspenseRow).where(SuspenseRow.id > after_id)
    if not include_resolved:
        query = query.where(SuspenseRow.resolved_at.is_(None))
    return list(session.scalars(query.order_by(SuspenseRow.id).limit(limit)).all())


def open_suspense(
    session: Session, *, ids: Collection[int] | None, limit: int
) -> list[SuspenseRow]:
    """Unresolved suspense rows (all, or those with these ids), oldest first, locked for update."""
    query = select(SuspenseRow).where(SuspenseRow.resolved_at.is_(None))
    if ids is not None:
        query = query.where(SuspenseRow.id.in_(list(ids)))
    query = query.order_by(SuspenseRow.id).limit(limit).with_for_update(skip_locked=True)
    return list(session.scalars(query).all())


def resolve_suspense(
    session: Session, *, ids: Collection[int], resolution: str, resolved_at: datetime
) -> None:
    """Mark suspense rows as resolved (moved to CDRs, or found already stored)."""
    if ids:
        session.execute(
            update(SuspenseRow)
            .where(SuspenseRow.id.in_(list(ids)))
            .values(resolved_at=resolved_at, resolution=resolution)
        )


def update_suspense_reason(
    session: Session, *, suspense_id: int, field: str, code: str, reason: str
) -> None:
    """Record a suspense row's reason after a recycle that still rejects it."""
    session.execute(
        update(SuspenseRow)
        .where(SuspenseRow.id == suspense_id)
        .values(field=field, code=code, reason=reason)
    )


def count_open_suspense_by_code(session: Session) -> dict[str, int]:
    """How many records wait in suspense, per rejection reason code."""
    rows = session.execute(
        select(SuspenseRow.code, func.count())
        .where(SuspenseRow.resolved_at.is_(None))
        .group_by(SuspenseRow.code)
    )
    return {code: int(count) for code, count in rows}


def get_cdr(session: Session, *, cdr_id: str) -> Cdr | None:
    """One stored CDR by id."""
    return session.get(Cdr, cdr_id)


def cdr_id_of_rating(session: Session, *, rating_id: int) -> str | None:
    """The id of the CDR a rating row belongs to."""
    return session.scalar(select(RatingRow.cdr_id).where(RatingRow.id == rating_id))


def ratings_of(session: Session, *, cdr_id: str) -> list[RatingRow]:
    """Every rating of a CDR, oldest first."""
    return list(
        session.scalars(
            select(RatingRow).where(RatingRow.cdr_id == cdr_id).order_by(RatingRow.seq)
        ).all()
    )


def count_cdrs(session: Session) -> int:
    """How many CDRs are stored."""
    return int(session.scalar(select(func.count()).select_from(Cdr)) or 0)


_REGISTRY_COLUMNS = (Subscriber.msisdn, Subscriber.plan, Subscriber.home_area, Subscriber.packages)


def subscribers_by_msisdn(db: Executor, *, msisdns: Sequence[str]) -> dict[str, RegistryEntry]:
    """Registry entries of these numbers."""
    found: dict[str, RegistryEntry] = {}
    for chunk in _chunks(msisdns):
        query = select(*_REGISTRY_COLUMNS).where(_member_of(db, Subscriber.msisdn, chunk))
        for msisdn, plan, home_area, packages in db.execute(query):
            found[msisdn] = RegistryEntry(plan, home_area, packages)
    return found


def get_subscriber(session: Session, *, msisdn: str) -> Subscriber | None:
    """One registry entry."""
    return session.get(Subscriber, msisdn)


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """What rating needs of a registry entry, as plain values."""

    plan: str
    home_area: str | None
    packages: str  # JSON list of package names


_SUBSCRIBERS = _table(Subscriber)
# Built once: a statement object memoizes its cache key, so executing it skips that work.
_REGISTRY_ENTRY = select(
    _SUBSCRIBERS.c.plan, _SUBSCRIBERS.c.home_area, _SUBSCRIBERS.c.packages
).where(_SUBSCRIBERS.c.msisdn == bindparam("msisdn"))
_AUDIT_INSERT = _table(AuditRow).insert()
REGISTRY_CHANNEL = "callrate_registry"  # PostgreSQL NOTIFY channel of registry writes
REGISTRY_WRITTEN = "callrate.registry_written"  # Session.info flag, until its commit


def registry_entry(db: Executor, *, msisdn: str) -> RegistryEntry | None:
    """One registry entry's plan, home area and packages (Core: no ORM object)."""
    row = db.execute(_REGISTRY_ENTRY, {"msisdn": msisdn}).first()
    return None if row is None else RegistryEntry(plan=row[0], home_area=row[1], packages=row[2])


def put_subscriber(
    session: Session,
    *,
    msisdn: str,
    plan: str,
    home_area: str | None,
    packages: str,
    updated_at: datetime,
) -> Subscriber:
    """Create or replace a registry entry."""
    row = session.get(Subscriber, msisdn, with_for_update=True)
    if row is None:
        row = Subscriber(msisdn=msisdn)
        session.add(row)
    row.plan = plan
    row.home_area = home_area
    row.packages = packages
    row.updated_at = updated_at
    session.flush()
    session.info[REGISTRY_WRITTEN] = True  # this worker's registry cache: see RegistryCache.watch
    if session.get_bind().dialect.name == "postgresql":
        # delivered at commit to every worker's registry cache (service.flows.registry_cache)
        session.execute(text(f"NOTIFY {REGISTRY_CHANNEL}"))
    return row


def all_api_keys(session: Session) -> list[ApiKey]:
    """Every stored API key (hashes only)."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)).all())


def add_api_key(
    session: Session, *, key_id: str, key_hash: str, role: str, created_at: datetime
) -> ApiKey:
    """Store one API key's hash."""
    row = ApiKey(key_id=key_id, key_hash=key_hash, role=role, created_at=created_at)
    session.add(row)
    session.flush()
    return row


def api_key_by_hash(session: Session, *, key_hash: str) -> ApiKey | None:
    """The stored key with this hash."""
    return session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))


def delete_api_key(session: Session, *, key_id: str) -> ApiKey | None:
    """Delete the stored key with this id; the deleted row, or None if there was none."""
    row = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
    if row is not None:
        session.delete(row)
        session.flush()
    return row


def add_audit(
    db: Executor,
    *,
    at: datetime,
    key_id: str,
    role: str,
    action: str,
    subject: str | None,
    detail: str | None,
) -> None:
    """Append one audit row."""
    db.execute(
        _AUDIT_INSERT,
        {
            "at": at,
            "key_id": key_id,
            "role": role,
            "action": action,
            "subject": subject,
            "detail": detail,
        },
    )


def add_audits(db: Executor, *, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append audit rows in one statement (at, key_id, role, action, subject, detail)."""
    db.execute(_AUDIT_INSERT, list(rows))


def list_audit(session: Session, *, after_id: int, limit: int) -> list[AuditRow]:
    """Audit rows in id order, from after `after_id`."""
    return list(
        session.scalars(
            select(AuditRow).where(AuditRow.id > after_id).order_by(AuditRow.id).limit(limit)
        ).all()
    )


# --- re-rating ----------------------------------------------------------------------------


def add_rerate_job(session: Session, *, job: RerateJob) -> None:
    """Store a new re-rating job."""
    session.add(job)
    session.flush()


def get_rerate_job(session: Session, *, job_id: str) -> RerateJob | None:
    """One re-rating job by id."""
    return session.get(RerateJob, job_id)


def count_cdrs_between(session: Session, *, from_epoch_s: int, to_epoch_s: int) -> int:
    """CDRs whose start lies in [from, to)."""
    count = session.scalar(
        select(func.count())
        .select_from(Cdr)
        .where(Cdr.start_epoch_s >= from_epoch_s, Cdr.start_epoch_s < to_epoch_s)
    )
    return int(count or 0)


CurrentRating = tuple[str, str, str, int, str, int, int]


def _current_seq() -> Any:
    """The seq of a CDR's current rating (its highest), correlated to the outer Cdr row."""
    return (
        select(func.max(RatingRow.seq))
        .where(RatingRow.cdr_id == Cdr.id)
        .correlate(Cdr)
        .scalar_subquery()
    )


def _with_current_rating() -> Any:
    """CDRs joined to their current (highest seq) rating, as `CurrentRating` columns."""
    latest = _current_seq()
    return (
        select(
            Cdr.id,
            Cdr.caller,
            Cdr.raw,
            Cdr.start_epoch_s,
            RatingRow.tariff,
            RatingRow.charge_fen,
            RatingRow.seq,
        )
        .join(RatingRow, RatingRow.cdr_id == Cdr.id)
        .where(RatingRow.seq == latest)
    )


def current_ratings_between(
    session: Session,
    *,
    from_epoch_s: int,
    to_epoch_s: int,
    after: tuple[int, str] | None,
    limit: int,
) -> list[CurrentRating]:
    """Next CDRs in [from, to) by (start, id) after `after`, each with its current rating:
    (id, caller, raw, start_epoch_s, tariff, charge_fen, seq)."""
    statement = (
        _with_current_rating()
        .where(Cdr.start_epoch_s >= from_epoch_s, Cdr.start_epoch_s < to_epoch_s)
        .order_by(Cdr.start_epoch_s, Cdr.id)
        .limit(limit)
    )
    if after is not None:
        statement = statement.where(tuple_(Cdr.start_epoch_s, Cdr.id) > tuple_(*after))
    return [
        (row[0], row[1], row[2], row[3], row[4], row[5], row[6])
        for row in session.execute(statement)
    ]


def current_ratings_of(session: Session, *, cdr_ids: Sequence[str]) -> list[CurrentRating]:
    """Stored CDRs among `cdr_ids` with their current rating, as `current_ratings_between`."""
    found: list[CurrentRating] = []
    for chunk in _chunks(cdr_ids):
        statement = _with_current_rating().where(_member_of(session, Cdr.id, chunk))
        found.extend((r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in session.execute(statement))
    return found


# --- a subscriber's month (bill inquiry, 详单) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassUsage:
    """One call class of a subscriber's month, from each CDR's current rating."""

    call_class: str
    calls: int
    duration_s: int
    minutes: int  # sum over calls of whole minutes started, ceil(duration_s / 60)
    charge_fen: int


@dataclass(frozen=True, slots=True)
class UsageCall:
    """One CDR of a subscriber's month with its current rating."""

    id: str
    start_epoch_s: int
    callee: str
    duration_s: int
    leg: str
    call_class: str
    tariff: str
    charge_fen: int
    ratings: int  # how many ratings the CDR has (seq of the current one)
    rating_id: int  # the current rating's row: the call's reference in a usage list


def _current_of_caller(
    msisdn: str, from_epoch_s: int, to_epoch_s: int, *columns: Any
) -> Select[Any]:
    """SELECT columns of the caller's CDRs in [from, to) joined to their current (highest seq)
    rating; ix_cdrs_caller_start and ux_ratings_cdr_seq serve it."""
    latest = _current_seq()
    return (
        select(*columns)
        .select_from(Cdr)
        .join(RatingRow, RatingRow.cdr_id == Cdr.id)
        .where(
            Cdr.caller == msisdn,
            Cdr.start_epoch_s >= from_epoch_s,
            Cdr.start_epoch_s < to_epoch_s,
            RatingRow.seq == latest,
        )
    )


def usage_by_class(
    session: Session, *, msisdn: str, from_epoch_s: int, to_epoch_s: int
) -> list[ClassUsage]:
    """Calls, seconds, minutes and charge per call class of a caller's CDRs in [from, to)."""
    minutes = func.sum((Cdr.duration_s + 59) // 60)  # floor division on both databases
    statement = (
        _current_of_caller(
            msisdn,
            from_epoch_s,
            to_epoch_s,
            RatingRow.call_class,
            func.count(),
            func.sum(Cdr.duration_s),
            minutes,
            func.sum(RatingRow.charge_fen),
        )
        .group_by(RatingRow.call_class)
        .order_by(RatingRow.call_class)
    )
    return [
        ClassUsage(row[0], int(row[1]), int(row[2]), int(row[3]), int(row[4]))
        for row in session.execute(statement)
    ]


def usage_calls(
    session: Session, *, msisdn: str, from_epoch_s: int, to_epoch_s: int, offset: int, limit: int
) -> list[UsageCall]:
    """A page of a caller's CDRs in [from, to), by (start, id), with their current rating."""
    statement = (
        _current_of_caller(
            msisdn,
            from_epoch_s,
            to_epoch_s,
            Cdr.id,
            Cdr.start_epoch_s,
            Cdr.callee,
            Cdr.duration_s,
            Cdr.leg,
            RatingRow.call_class,
            RatingRow.tariff,
            RatingRow.charge_fen,
            RatingRow.seq,
            RatingRow.id,
        )
        .order_by(Cdr.start_epoch_s, Cdr.id)
        .offset(offset)
        .limit(limit)
    )
    return [UsageCall(*row) for row in session.execute(statement)]


def held_parts(session: Session, *, record_ids: Sequence[str], code: str) -> list[SuspenseRow]:
    """Suspense rows of these record ids with this code, open or merged (SPEC §3.4: partial
    records of a call held until its last part), oldest first, the open ones locked."""
    found: list[SuspenseRow] = []
    for chunk in _chunks(record_ids):
        query = (
            select(SuspenseRow)
            .where(
                _member_of(session, SuspenseRow.record_id, chunk),
                SuspenseRow.code == code,
                or_(SuspenseRow.resolved_at.is_(None), SuspenseRow.resolution == "merged"),
            )
            .order_by(SuspenseRow.id)
        )
        found.extend(session.scalars(query.with_for_update()).all())
    return found
