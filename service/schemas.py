"""The HTTP contract (SPEC §6): request and response bodies, as OpenAPI shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field

Result = Literal["rated", "duplicate", "rejected"]
MAX_ROW_ID = 2**63 - 1  # row ids are 64-bit: a larger number is a 422, not a driver error


class QuoteRequest(BaseModel):
    """A CDR without `id` (SPEC §3.1); `plan`/`packages` override the registry."""

    caller: str = Field(examples=["13800138000"])
    callee: str = Field(examples=["02188001234"])
    start: str = Field(examples=["2010-03-01T10:00:00+08:00"], description="RFC 3339")
    duration_s: int = Field(ge=0, examples=[125])
    type: Literal["originating", "terminating", "forwarded"] = "originating"
    forward_kind: Literal["unconditional", "conditional"] | None = None
    visited_area: str | None = Field(default=None, examples=["021"])
    plan: str | None = Field(default=None, examples=["gotone"])
    packages: list[str] | None = None


class CdrIn(QuoteRequest):
    """A CDR as the switch posts it (SPEC §3.1)."""

    id: str = Field(min_length=1, max_length=64, description="the switch's idempotency key")


class Item(BaseModel):
    """One priced component."""

    code: str
    units: int
    unit_s: int
    rate_fen: int
    amount_fen: int


class RatingOut(BaseModel):
    """SPEC §6.1 rating result; charge_fen is the sum of the items' amount_fen."""

    charge_fen: int
    call_class: str
    dial: str
    roaming: str
    tariff: str
    items: list[Item]
    rules: list[str]
    explanation_zh: str


class RecordResult(BaseModel):
    """Per-record answer to a batch: rated, duplicate (stored charge) or rejected (reason)."""

    index: int = Field(
        description="position of the record in the JSON array, or its NDJSON line number, "
        "from 0 (blank lines counted)"
    )
    id: str | None
    result: Result
    charge_fen: int | None = None
    call_class: str | None = Field(default=None, description="when rated")
    tariff: str | None = Field(default=None, description="version that rated it, when rated")
    field: str | None = None
    code: str | None = None
    reason: str | None = None


class Counts(BaseModel):
    """How many records got each result."""

    rated: int = 0
    duplicate: int = 0
    rejected: int = 0


class BatchResponse(BaseModel):
    """Answer to POST /v1/cdrs, in the order of the records sent."""

    counts: Counts
    results: list[RecordResult]


class MscFileReport(BaseModel):
    """Whether an MSC file was read whole (SPEC §3.4)."""

    records: int  # records found, the unreadable remainder counted as one
    framed: bool  # TS 32.297 framed (else bare concatenated records)
    failed: bool  # a truncated or corrupt file: its remainder is in suspense
    fault_offset: int | None  # where the remainder starts


class MscFileResponse(BatchResponse):
    """Answer to POST /v1/cdrs/3gpp: per record (a partial call at its last part), and the file."""

    file: MscFileReport


class StoredRating(BaseModel):
    """One rating in a CDR's history; the highest seq is the current one."""

    seq: int
    tariff: str
    charge_fen: int
    call_class: str
    dial: str
    roaming: str
    items: list[Item]
    rules: list[str]
    explanation_zh: str
    rated_at: datetime
    source: str


class CdrOut(BaseModel):
    """A stored CDR with its rating history (third-party numbers masked for agents)."""

    id: str
    caller: str
    home_area: str | None = Field(
        description="the caller's home area as dialed (registry, else number range)"
    )
    callee: str
    start_epoch_s: int
    duration_s: int
    type: str
    received_at: datetime
    record: dict[str, Any] = Field(description="the record as received")
    current: StoredRating
    ratings: list[StoredRating]


class SubscriberIn(BaseModel):
    """A registry entry (SPEC §3.2)."""

    plan: str = Field(examples=["gotone"])
    home_area: str | None = Field(
        default=None,
        examples=["021"],
        description='area code in dialing form ("21" is taken as "021"); default: number range',
    )
    packages: list[str] = Field(default_factory=list, examples=[["ld_night"]])


class SubscriberOut(BaseModel):
    """A stored registry entry."""

    msisdn: str
    plan: str
    home_area: str | None = Field(
        description="area code as dialed (021): the registry's, else the number range's",
        examples=["021"],
    )
    home_area_from: Literal["registry", "number_range"]
    packages: list[str]
    updated_at: datetime


class SuspenseOut(BaseModel):
    """A rejected record kept whole with its reason."""

    id: int
    record_id: str | None
    field: str
    code: str
    reason: str
    raw: str = Field(
        description="the record as received, as text (bytes that are not UTF-8 show as U+FFFD)"
    )
    raw_base64: str = Field(description="the exact bytes received, base64")
    received_at: datetime
    resolved_at: datetime | None
    resolution: str | None


def _no_bool(value: object) -> object:
    if isinstance(value, bool):  # lax pydantic would take true as 1
        raise ValueError("must be an integer, not true or false")
    return value


# A stored row id: both databases hold 64-bit signed integers; larger ones are refused (4xx).
RowId = Annotated[int, Field(ge=0, le=MAX_ROW_ID), BeforeValidator(_no_bool)]


class SuspenseList(BaseModel):
    """A page of suspense rows; pass next_after_id as after_id for the next page."""

    items: list[SuspenseOut]
    next_after_id: int | None


class RecycleRequest(BaseModel):
    """Which suspense rows to re-rate: the given ids, or all open ones (up to limit)."""

    ids: list[RowId] | None = Field(default=None, max_length=10_000)
    limit: Annotated[int, BeforeValidator(_no_bool)] = Field(default=10_000, ge=1, le=10_000)


class RecycleResult(BaseModel):
    """What became of one suspense row."""

    suspense_id: int
    record_id: str | None
    result: Result
    charge_fen: int | None = None
    field: str | None = None
    code: str | None = None
    reason: str | None = None


class RecycleResponse(BaseModel):
    """Answer to POST /v1/suspense/recycle."""

    counts: Counts
    results: list[RecycleResult]


class LdFee(BaseModel):
    """Direct domestic long distance from home: rate_fen per unit_s seconds."""

    rate_fen: int = Field(examples=[6])
    unit_s: Literal[6, 60] = Field(examples=[6])


class PlanFees(BaseModel):
    """A plan's own fees in fen (SPEC §5.9); the rest of the tariff is common to all plans."""

    local_per_min: int
    ld: LdFee
    roam_call_per_min: int
    roam_called_per_min: int
    ip12593_national_per_min: int = Field(description="12593 domestic LD while roaming nationally")


class PlanOut(BaseModel):
    """A plan (brand) of a tariff version."""

    id: str = Field(examples=["gotone"])
    brand: str = Field(examples=["全球通"])
    fees: PlanFees


class PackageOut(BaseModel):
    """A package of a tariff version: its monthly fee and its window (local time of day)."""

    id: str = Field(examples=["ld_night"])
    name: str = Field(examples=["长话夜聊包"])
    monthly_fee_fen: int = Field(examples=[500])
    free_from: str = Field(examples=["23:00:00"], description="HH:MM:SS, tariff time zone")
    free_until: str = Field(examples=["07:00:00"], description="exclusive; may wrap midnight")


class TariffOut(BaseModel):
    """A tariff version, its window, its plans and packages."""

    version: str
    name: str
    timezone: str
    effective_from: datetime
    effective_until: datetime | None = Field(description="as the file declares it")
    in_force_until: datetime | None = Field(
        description="end of the window: effective_until or the next version's start"
    )
    plans: list[PlanOut]
    packages: list[PackageOut]
    free_numbers: list[str] = Field(description="numbers free when dialed bare (R9)")
    digest: str = Field(
        examples=["sha256:e716836a…"], description="sha256 of the version's content (SPEC §7)"
    )
    published_at: datetime
    published_by: str = Field(description='the publishing key id, "cli" or "db upgrade"')


class TariffPublished(BaseModel):
    """POST /v1/tariffs: the version as published, and whether this request published it."""

    published: bool = Field(description="false: the same content was published already")
    tariff: TariffOut


class AuditOut(BaseModel):
    """One audit row."""

    id: int
    at: datetime
    key_id: str
    role: str
    action: str
    subject: str | None
    detail: str | None


class AuditList(BaseModel):
    """A page of the audit log."""

    items: list[AuditOut]
    next_after_id: int | None


class Health(BaseModel):
    """Liveness / readiness."""

    status: str


def _text_only(value: object) -> object:
    if not isinstance(value, str):  # lax pydantic would take a number as epoch seconds
        raise ValueError("must be an RFC 3339 timestamp string")
    return value


Instant = Annotated[datetime, BeforeValidator(_text_only)]


class RerateRequest(BaseModel):
    """Re-rate every stored CDR that started in [from, to) under the tariffs now loaded."""

    from_: Instant = Field(alias="from", examples=["2010-01-01T00:00:00+08:00"])
    to: Instant = Field(examples=["2010-02-01T00:00:00+08:00"], description="exclusive")
    dry_run: bool = Field(
        default=False, strict=True, description="count and sum the changes, write nothing"
    )


class RerateJobOut(BaseModel):
    """A re-rating job: progress, records changed, total delta in fen."""

    id: str
    status: Literal["queued", "running", "done", "failed"]
    dry_run: bool
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    total: int = Field(description="CDRs in the window when the job was created")
    processed: int
    changed: int = Field(description="CDRs that got a new rating (charge or version changed)")
    rejected: int = Field(description="CDRs that no longer rate; their history is kept")
    delta_fen: int = Field(description="sum of (new charge - old charge) over changed CDRs")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    error: str | None


class UsagePackage(BaseModel):
    """A registered package and its monthly fee for the month asked about."""

    id: str = Field(examples=["ld_night"])
    name: str | None = Field(examples=["长话夜聊包"], description="null if no version knows it")
    monthly_fee_fen: int = Field(examples=[500])


class UsageSubscriber(BaseModel):
    """Who the bill belongs to: registry entry, brand and home area in words."""

    msisdn: str
    registered: bool = Field(description="false: the number is not in the registry")
    plan: str | None
    brand: str | None = Field(examples=["全球通"])
    home_area: str | None = Field(examples=["010"], description="dialing form, leading 0")
    home_city: str | None = Field(examples=["北京"])
    home_province: str | None = Field(examples=["北京"])
    packages: list[UsagePackage]


class ClassUsageOut(BaseModel):
    """One call class of the month, from each CDR's current rating."""

    call_class: str
    calls: int
    duration_s: int
    minutes: int = Field(description="whole minutes started, summed over the calls")
    charge_fen: int


class UsageCallOut(BaseModel):
    """One call of the month; the other party's number masked for agents."""

    id: str = Field(description="the CDR's id; masked for agents where it holds a number")
    ref: int = Field(
        description="the call's reference: GET /v1/subscribers/{msisdn}/calls/{ref} reads it"
    )
    start: datetime = Field(description="+08:00")
    other_party: str = Field(examples=["139****5678"])
    duration_s: int
    type: str = Field(description="originating | terminating | forwarded")
    call_class: str
    tariff: str
    charge_fen: int = Field(description="from the current rating")
    ratings: int = Field(description="ratings in the CDR's history; >1 means re-rated")


class UsageOut(BaseModel):
    """The bill inquiry (详单) of one subscriber and month; every amount in fen."""

    month: str = Field(examples=["2010-03"])
    period_from: datetime = Field(description="first instant of the month, +08:00")
    period_to: datetime = Field(description="first instant of the next month (exclusive)")
    subscriber: UsageSubscriber
    summary: list[ClassUsageOut]
    call_count: int
    calls_fen: int = Field(description="sum of the calls' current charges")
    package_fees_fen: int
    total_fen: int = Field(description="calls_fen + package_fees_fen")
    calls: list[UsageCallOut] = Field(description="a page, by start time")
    offset: int
    limit: int
    next_offset: int | None = Field(description="offset of the next page, if any")
