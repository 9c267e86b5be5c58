"""SPEC §3.1: a CDR (JSON object) -> a validated CallRecord, naming the field that is wrong."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from service.rating.pricing import ForwardKind, Leg
from service.rating.rejections import Rejected

# SPEC §3.1: the fields of a CDR, as keys of a JSON object or columns of the batch path.
CDR_FIELDS = (
    "id",
    "caller",
    "callee",
    "start",
    "duration_s",
    "type",
    "forward_kind",
    "visited_area",
    "plan",
    "packages",
)
MAX_ID_CHARS = 64
MAX_DURATION_S = 86_400  # a switch cuts longer calls into partial records
MAX_NAME_CHARS = 64
DEFAULT_OFFSET = timezone(timedelta(hours=8))  # SPEC §1: no offset means +08:00
CHINA_PREFIXES = ("+86", "0086", "86")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# SPEC §3.1: offset hours 00-23 and minutes 00-59; any number of fraction digits.
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)?$",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A syntactically valid CDR; numbers are not classified yet."""

    id: str | None
    caller: str  # 11-digit national mobile number
    callee: str  # as dialed
    start: datetime  # aware
    start_epoch_s: int
    duration_s: int
    leg: Leg
    forward_kind: ForwardKind | None
    visited_area: str | None  # area code in dialing form, e.g. "021"
    plan: str | None
    packages: tuple[str, ...] | None


def is_storable_text(value: str) -> bool:
    """False for text no database column can hold: NUL, or unpaired surrogates (not UTF-8)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def normalize_msisdn(value: object) -> str:
    """11-digit national form of a China mobile number given with or without +86/86/0086."""
    if not isinstance(value, str):
        raise Rejected("caller.invalid")
    number = value
    for prefix in CHINA_PREFIXES:
        if number.startswith(prefix) and len(number) == len(prefix) + 11:
            number = number[len(prefix) :]
            break
    if len(number) != 11 or not (number.isascii() and number.isdigit()) or number[0] != "1":
        raise Rejected("caller.invalid")
    return number


def parse_start(value: object) -> datetime:
    """RFC 3339 timestamp; one without an offset is +08:00."""
    if value is None:
        raise Rejected("start.missing")
    if not isinstance(value, str) or not _RFC3339.match(value.upper()):
        raise Rejected("start.invalid")
    text = value.upper()
    if "." in text:  # Python parses at most 6 fractional digits; the seconds are what count
        head, _, tail = text.partition(".")
        digits = re.match(r"[0-9]+", tail)
        assert digits is not None
        text = head + "." + digits.group()[:6].ljust(6, "0") + tail[digits.end() :]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise Rejected("start.invalid") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=DEFAULT_OFFSET)


def _duration(value: object) -> int:
    if value is None:
        raise Rejected("duration_s.missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected("duration_s.invalid")
    if not 0 <= value <= MAX_DURATION_S:
        raise Rejected("duration_s.invalid")
    return value


def _leg(raw: Mapping[str, Any]) -> tuple[Leg, ForwardKind | None]:
    if "type" not in raw:  # only an absent type is an originating leg; null is refused
        return Leg.ORIGINATING, None
    value = raw["type"]
    try:
        leg = Leg(value)
    except ValueError as exc:
        raise Rejected("type.invalid") from exc
    if leg is not Leg.FORWARDED:
        return leg, None
    kind = raw.get("forward_kind")
    if kind is None:
        raise Rejected("forward_kind.missing")
    try:
        return leg, ForwardKind(kind)
    except ValueError as exc:
        raise Rejected("forward_kind.invalid") from exc


def normalize_area(value: object) -> str:
    """An area code such as "021" or "21" -> dialing form "021".

    "" and null are refused: a blanked field must never bill a roaming call as a home call."""
    if not isinstance(value, str) or not value:
        raise Rejected("visited_area.invalid")
    code = value
    if code.startswith(("+", "00")):
        raise Rejected("visited_area.international_roaming")
    code = code.removeprefix("0")
    if not (code.isascii() and code.isdigit()) or not 2 <= len(code) <= 3:
        raise Rejected("visited_area.invalid")
    return "0" + code


def _plan(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS:
        raise Rejected("plan.unknown")
    return value


def _packages(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(
        isinstance(p, str) and 0 < len(p) <= MAX_NAME_CHARS for p in value
    ):
        raise Rejected("packages.invalid")
    return tuple(value)


def parse_cdr(raw: object, *, require_id: bool) -> CallRecord:
    """Validate one CDR's fields in a fixed order; the first problem is the reason."""
    if not isinstance(raw, Mapping):
        raise Rejected("record.invalid")
    record_id = raw.get("id")
    if require_id and (not isinstance(record_id, str) or not 0 < len(record_id) <= MAX_ID_CHARS):
        raise Rejected("id.invalid")
    if require_id and isinstance(record_id, str) and not is_storable_text(record_id):
        raise Rejected("id.invalid_characters")
    if raw.get("caller") is None:
        raise Rejected("caller.missing")
    caller = normalize_msisdn(raw["caller"])
    callee = raw.get("callee")
    if callee is None:
        raise Rejected("callee.missing")
    if not isinstance(callee, str):
        raise Rejected("callee.invalid_characters")
    start = parse_start(raw.get("start"))
    duration_s = _duration(raw.get("duration_s"))
    leg, forward_kind = _leg(raw)
    return CallRecord(
        id=record_id if require_id else None,
        caller=caller,
        callee=callee,
        start=start,
        start_epoch_s=(start - EPOCH) // timedelta(seconds=1),
        duration_s=duration_s,
        leg=leg,
        forward_kind=forward_kind,
        visited_area=normalize_area(raw["visited_area"]) if "visited_area" in raw else None,
        plan=_plan(raw.get("plan")),
        packages=_packages(raw.get("packages")),
    )
