"""SQLAlchemy 2 models; the schema itself is made only by the Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from service.clock import CHINA_TIME_S

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """An instant: stored in UTC, read back with its offset on every database.

    SQLite keeps no offset, so a plain DateTime(timezone=True) comes back naive there and
    an answer would carry no offset (SPEC §6.2: every timestamp carries one).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(UTC)
        return value  # type: ignore[no-any-return]

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value  # type: ignore[no-any-return]


class Base(DeclarativeBase):
    """Declarative base of every table."""


class Cdr(Base):
    """A stored CDR: the record as received plus the parsed fields queries need."""

    __tablename__ = "cdrs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    caller: Mapped[str] = mapped_column(String(11))  # national form of the billed subscriber
    callee: Mapped[str] = mapped_column(String(64))
    start_epoch_s: Mapped[int] = mapped_column(BigInteger)
    duration_s: Mapped[int] = mapped_column(Integer)
    leg: Mapped[str] = mapped_column(String(16))
    raw: Mapped[str] = mapped_column(Text)  # the JSON object exactly as the switch sent it
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_cdrs_start_epoch_s", "start_epoch_s"),
        Index("ix_cdrs_caller_start", "caller", "start_epoch_s"),
    )


class RatingRow(Base):
    """One rating of a CDR; append-only, the highest seq is the current one."""

    __tablename__ = "ratings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # On PostgreSQL the foreign key is replaced by triggers that check once per statement
    # (migration 0005): there a foreign key costs a lookup and a lock per row.
    cdr_id: Mapped[str] = mapped_column(String(64), ForeignKey("cdrs.id"))
    seq: Mapped[int] = mapped_column(Integer)
    tariff: Mapped[str] = mapped_column(String(32))
    charge_fen: Mapped[int] = mapped_column(BigInteger)
    call_class: Mapped[str] = mapped_column(String(16))
    dial: Mapped[str] = mapped_column(String(8))
    roaming: Mapped[str] = mapped_column(String(16))
    # Stored by releases before migration 0004; since, NULL: rebuilt on read from the record
    # and the profile below (flows.cdrs.rebuild_detail).
    items: Mapped[str | None] = mapped_column(Text)  # JSON list of SPEC §6.1 items
    rules: Mapped[str | None] = mapped_column(Text)  # JSON list of rule ids
    explanation_zh: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(16))  # ingest | recycle | rerate
    # The subscriber profile the rating used (registry entry or default plan); plan NULL:
    # none (the record named its plan itself).
    profile_plan: Mapped[str | None] = mapped_column(String(64))
    profile_home_area: Mapped[str | None] = mapped_column(String(4))
    profile_packages: Mapped[str | None] = mapped_column(Text)  # JSON list of package names
    profile_registered: Mapped[bool | None] = mapped_column(Boolean)

    __table_args__ = (Index("ux_ratings_cdr_seq", "cdr_id", "seq", unique=True),)


class Subscriber(Base):
    """Registry entry: msisdn -> plan, home area, packages."""

    __tablename__ = "subscribers"

    msisdn: Mapped[str] = mapped_column(String(11), primary_key=True)
    plan: Mapped[str] = mapped_column(String(64))
    home_area: Mapped[str | None] = mapped_column(String(4))
    packages: Mapped[str] = mapped_column(Text)  # JSON list of package names
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SuspenseRow(Base):
    """A record that could not be rated, kept whole with its reason until recycled."""

    __tablename__ = "suspense"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    record_id: Mapped[str | None] = mapped_column(String(64))  # the CDR's id when it has one
    raw: Mapped[bytes] = mapped_column(LargeBinary)  # the bytes received, whatever they hold
    raw_sha256: Mapped[str] = mapped_column(String(64))  # hex; one open row per distinct raw
    field: Mapped[str] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolution: Mapped[str | None] = mapped_column(String(16))  # rated | duplicate | merged

    __table_args__ = (
        Index("ix_suspense_open", "resolved_at", "id"),
        Index("ix_suspense_record_id", "record_id"),
        # A retried rejected record, also under concurrent retries, finds its open row here.
        Index(
            "ux_suspense_open_raw",
            "raw_sha256",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
    )


class ApiKey(Base):
    """An API key: only its sha256 is stored; key_id is a short prefix of that hash."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AuditRow(Base):
    """Who read or quoted what, when (SPEC §8); readable by admin only."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    key_id: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str | None] = mapped_column(String(64))  # the subscriber concerned
    detail: Mapped[str | None] = mapped_column(String(128))  # e.g. the CDR id read

    __table_args__ = (Index("ix_audit_log_at", "at"),)


class RerateJob(Base):
    """A bulk re-rating over a start-time window: progress, counts and the total delta."""

    __tablename__ = "rerate_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    from_epoch_s: Mapped[int] = mapped_column(BigInteger)
    to_epoch_s: Mapped[int] = mapped_column(BigInteger)
    # the offsets the window was given in: the job is shown in them (+08:00 for older jobs)
    from_utc_offset_s: Mapped[int] = mapped_column(Integer, server_default=str(CHINA_TIME_S))
    to_utc_offset_s: Mapped[int] = mapped_column(Integer, server_default=str(CHINA_TIME_S))
    dry_run: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))  # queued | running | done | failed
    requested_by: Mapped[str] = mapped_column(String(16))  # key id, or "cli"
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    total: Mapped[int] = mapped_column(BigInteger)  # CDRs in the window when the job started
    processed: Mapped[int] = mapped_column(BigInteger)
    changed: Mapped[int] = mapped_column(BigInteger)
    rejected: Mapped[int] = mapped_column(BigInteger)  # no longer rateable; history kept
    delta_fen: Mapped[int] = mapped_column(BigInteger)
    # Resume point: the last (start, id) processed; chunks commit with their ratings.
    cursor_start_epoch_s: Mapped[int | None] = mapped_column(BigInteger)
    cursor_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)


class TariffVersionRow(Base):
    """A published tariff version (SPEC §7): never changed or removed once written."""

    __tablename__ = "tariff_versions"

    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    digest: Mapped[str] = mapped_column(String(80))  # rating.tariff.tariff_digest
    source: Mapped[str] = mapped_column(Text)  # the TOML text as published
    effective_from: Mapped[datetime] = mapped_column(UtcDateTime)
    effective_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    published_at: Mapped[datetime] = mapped_column(UtcDateTime)
    published_by: Mapped[str] = mapped_column(String(64))  # a key id, "cli" or "db upgrade"
