"""Fused per-row kernels of the batch path: Arrow string buffers -> case key -> charge, one pass.

Each row's bytes are walked once, in the per-call path's order of checks, so the first
rejection wins as it does there; every function names the scalar function it mirrors.
Tables, limits and the scalar path's prefixes and digit sets reach the kernels as
arguments (`Tables`, `Limits`), never as globals: the on-disk JIT cache is keyed on this
file only, so it can never keep a stale copy of another module's values. What stays in
code is grammar (the shape of a timestamp, which prefix is tried first) and the order of
the checks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Function = TypeVar("Function", bound=Callable[..., Any])

log = logging.getLogger(__name__)


# The kernels allocate nothing, so they run without numba's reference counting (`_nrt`, an
# internal but long-standing numba option; the tests cover it): with it, every call that
# passes the table tuples increments and decrements the count of each of their arrays, about
# 350 ns a call instead of 4. The numpy error model drops zero-division checks: every divisor
# is a nonzero constant.
_OPTIONS: dict[str, Any] = {"nogil": True, "_nrt": False, "error_model": "numpy"}


_cache = {"writable": True}


def cached_njit(function: Function, options: dict[str, Any]) -> Function:
    """`njit(cache=True, **options)`; without the on-disk cache where none can be written
    (then every kernel compiles at each start)."""
    if _cache["writable"]:
        try:
            return cast(Function, numba.njit(cache=True, **options)(function))
        except RuntimeError as exc:  # numba finds no writable cache directory at all
            if "no locator available" not in str(exc):
                raise
            _cache["writable"] = False
            log.info("numba cache unavailable (%s): kernels compile at each start", exc)
    return cast(Function, numba.njit(**options)(function))


def _kernel(function: Function) -> Function:
    return cached_njit(function, _OPTIONS)


def _inlined(function: Function) -> Function:
    """Inlined by numba wherever it is called: these take the table tuples, and a call passes
    each of their arrays as separate arguments (about 100 ns a call)."""
    return cast(Function, numba.njit(inline="always", **_OPTIONS)(function))


# Kernel-internal reason numbers; `Tables.reason_index` maps them to REASON_CODES positions.
REASONS = (
    "id.invalid",
    "caller.missing",
    "caller.invalid",
    "callee.missing",
    "callee.invalid_characters",
    "start.missing",
    "start.invalid",
    "duration_s.missing",
    "duration_s.invalid",
    "type.invalid",
    "forward_kind.missing",
    "forward_kind.invalid",
    "visited_area.invalid",
    "visited_area.international_roaming",
    "plan.unknown",
    "packages.invalid",
    "start.no_tariff",
    "plan.missing",
    "packages.unknown",
    "caller.unknown_number_range",
    "visited_area.unknown_area_code",
    "callee.empty",
    "callee.too_long",
    "callee.invalid_number",
    "callee.invalid_plus86",
    "callee.unknown_area_code",
    "callee.unknown_mobile_prefix",
    "callee.information_line",
    "callee.unknown_country_code",
    "callee.unassigned_nanp_area",
    "callee.invalid_foreign_length",
    "caller.not_china_mobile",
    "callee.incomplete",
    "callee.unknown_destination",
)
(
    ID_INVALID,
    CALLER_MISSING,
    CALLER_INVALID,
    CALLEE_MISSING,
    CALLEE_INVALID_CHARACTERS,
    START_MISSING,
    START_INVALID,
    DURATION_MISSING,
    DURATION_INVALID,
    TYPE_INVALID,
    FORWARD_KIND_MISSING,
    FORWARD_KIND_INVALID,
    VISITED_INVALID,
    VISITED_INTERNATIONAL,
    PLAN_UNKNOWN,
    PACKAGES_INVALID,
    START_NO_TARIFF,
    PLAN_MISSING,
    PACKAGES_UNKNOWN,
    CALLER_UNKNOWN_RANGE,
    VISITED_UNKNOWN_AREA,
    CALLEE_EMPTY,
    CALLEE_TOO_LONG,
    CALLEE_INVALID_NUMBER,
    CALLEE_INVALID_PLUS86,
    CALLEE_UNKNOWN_AREA,
    CALLEE_UNKNOWN_MOBILE,
    CALLEE_INFORMATION_LINE,
    CALLEE_UNKNOWN_COUNTRY,
    CALLEE_UNASSIGNED_NANP,
    CALLEE_FOREIGN_LENGTH,
    CALLER_NOT_CHINA_MOBILE,
    CALLEE_INCOMPLETE,
    CALLEE_UNKNOWN_DESTINATION,
) = range(len(REASONS))
OK = -1

# Digits of the case key, in kernel order; batch.py maps the names to the pricing enums.
DESTINATION_NAMES = ("local", "domestic_ld", "hmt", "international", "satellite", "special")
LOCAL, DOMESTIC_LD, HMT, INTERNATIONAL, SATELLITE, SPECIAL = range(len(DESTINATION_NAMES))
CALL_CLASSES = (*DESTINATION_NAMES, "incoming", "forward")
INCOMING, FORWARD = len(DESTINATION_NAMES), len(DESTINATION_NAMES) + 1
DIAL_NAMES = ("direct", "17951", "12593")
DIRECT, IP17951, IP12593 = range(len(DIAL_NAMES))
ROAMING_NAMES = ("home", "in_province", "national")
HOME, IN_PROVINCE, NATIONAL = range(len(ROAMING_NAMES))
LEG_NAMES = ("originating", "terminating", "forwarded")
ORIGINATING, TERMINATING, FORWARDED = range(len(LEG_NAMES))
FORWARD_KIND_NAMES = ("unconditional", "conditional")
# Key digit of leg and forward kind together: originating, terminating, forwarded x kind.
LEG_KINDS = 4
BUSY, NIGHT_FREE, TARGET_HOME, TARGET_VISITED, TARGET_ON_NET = 1, 2, 4, 8, 16
FLAG_STATES = 32
# A priced key's row: 6 s and 60 s rate totals, the same for the R8-waivable components,
# short_call_max_s, and the pricing rejection (a REASON_CODES position, -1 when priced).
RATE_6S, RATE_60S, FREE_6S, FREE_60S, FREE_MAX_S, REJECTION = range(6)
RATE_FIELDS = 6
# pricing.PER_6S and PER_MIN (batch.py checks): constant divisors compile to multiplications.
UNIT_6S, UNIT_MIN = 6, 60

_ZERO, _NINE, _PLUS, _MINUS, _COLON, _DOT = 48, 57, 43, 45, 58, 46
_T, _T_LOWER, _SPACE, _Z, _Z_LOWER, _ONE, _TWO = 84, 116, 32, 90, 122, 49, 50
_CONTINUATION, _CONTINUATION_MASK, _ASCII_END = 0x80, 0xC0, 0x80
SECONDS_PER_DAY = 86_400


class Names(NamedTuple):
    """A short list of byte strings: concatenated bytes and offsets."""

    data: U8
    offsets: I32


class Text(NamedTuple):
    """One Arrow string column: offsets (already at the array's offset), bytes, validity."""

    offsets: I32
    data: U8
    validity: U8  # packed bits; empty means no nulls
    bit_offset: int
    is_text: bool  # False: present values are not strings at all


class Integers(NamedTuple):
    """One integer column as int64 values and validity (text durations already parsed)."""

    values: I64  # values outside 0..MAX_DURATION_S mark invalid ones
    validity: U8
    bit_offset: int


class Lists(NamedTuple):
    """One Arrow list column and its items."""

    offsets: I32
    validity: U8
    bit_offset: int
    is_list: bool
    items: Text


class Columns(NamedTuple):
    """The SPEC §3.1 columns of one batch."""

    id: Text
    caller: Text
    callee: Text
    start: Text
    duration_s: Integers
    type: Text
    forward_kind: Text
    visited_area: Text
    plan: Text
    packages: Lists


class Limits(NamedTuple):
    """Scalar-path constants the kernels compare against (see batch.py for their sources)."""

    max_id_chars: int
    max_name_chars: int
    max_duration_s: int
    max_number_chars: int
    mobile_len: int
    max_e164_digits: int
    min_foreign_national_digits: int
    nanp_code: int
    nanp_national_digits: int
    mobile_prefix_digits: int
    mobile_prefix_first: int
    no_index: int
    default_offset_s: int
    satellite_region: int
    night_bit: int
    plans: int
    groups: int


class Tables(NamedTuple):
    """Numbering, tariff and grammar tables, built once per BatchRater."""

    area_by_digits: npt.NDArray[np.int16]
    area_province: npt.NDArray[np.int16]
    area_code_value: I64
    area_code_len: I64
    mobile_area: npt.NDArray[np.int16]
    mobile_cmcc: Bools
    country_code_len: npt.NDArray[np.int8]
    country_region: npt.NDArray[np.int16]
    split_region: npt.NDArray[np.int16]
    split_code: Bools  # by calling code value
    satellite_code: Bools  # by code length * 1000 + code value
    region_group: I64  # region index (satellite last) -> tier group
    region_is_hmt: Bools
    china_prefixes: Names
    ip_prefixes: Names  # in dial order after direct
    free_numbers: Names  # of every version
    free_in_version: npt.NDArray[np.bool_]  # (version, free number)
    information_prefixes: Names
    mobile_second_digit: Bools  # by byte value
    subscriber_first_digit: Bools  # by byte value
    subscriber_length: Bools  # by length
    short_first_digit: Bools  # by byte value
    short_length: Bools  # by length
    tariff_from: I64
    tariff_until: I64
    tariff_offset_s: I64
    busy_from: I64
    busy_until: I64
    night_from: I64
    night_until: I64
    has_night: Bools
    leg_names: Names
    forward_kind_names: Names
    plan_names: Names
    plan_in_version: npt.NDArray[np.bool_]  # (version, plan)
    package_names: Names
    version_package_bits: I64  # packages of each version as bits over package_names
    reason_index: npt.NDArray[np.int16]  # kernel reason -> REASON_CODES position


class Profiles(NamedTuple):
    """Registry profiles of one call; row 0 is the default (no profile, or default_plan)."""

    msisdn: I64  # sorted 11-digit numbers
    profile: I64  # profile row of each msisdn
    plan: I64  # plan index, -1 none, -2 a name no version knows
    home: I64  # area index, -2 from the number range (no home_area)
    package_bits: I64
    package_unknown: Bools
    registered: Bools  # the registry holds the number (row 0 never)


class Prices(NamedTuple):
    """The keys priced so far: a dense table, so the few hot rows stay in cache."""

    row: npt.NDArray[np.int32]  # case key -> its row in rates, -1 while unpriced
    rates: I64  # (priced keys, RATE_FIELDS)


class Outputs(NamedTuple):
    """Per row results, bitmaps of rated and rejected rows, rows whose key was not priced."""

    charge: I64
    call_class: npt.NDArray[np.int16]
    dial: npt.NDArray[np.int16]
    roaming: npt.NDArray[np.int16]
    tariff: npt.NDArray[np.int16]
    reason: npt.NDArray[np.int16]
    rated_bits: U8
    rejected_bits: U8
    pending_rows: I64
    pending_keys: I64
    start_epoch: I64  # the start in epoch seconds of every row that got that far (0 otherwise)


# -- bytes ------------------------------------------------------------------------------------


@_kernel
def _byte(data: U8, index: int) -> int:
    """data[index]: indices here are never negative, and an unsigned one spares numba's
    wraparound check on every read (about a sixth of the kernel's time)."""
    return int(data[np.uint64(index)])


@_kernel
def _entry(table: npt.NDArray[Any], index: int) -> int:
    """table[index] as an int, without the wraparound check (see _byte)."""
    return int(table[np.uint64(index)])


@_kernel
def _valid(validity: U8, bit_offset: int, row: int) -> bool:
    if len(validity) == 0:
        return True
    bit = bit_offset + row
    return bool((_byte(validity, bit >> 3) >> (bit & 7)) & 1)


@_kernel
def _number(data: U8, position: int, count: int) -> int:
    """Decimal value of `count` ASCII digits, or -1 if one is not a digit."""
    value = 0
    for p in range(position, position + count):
        digit = _byte(data, p) - _ZERO
        if digit < 0 or digit > 9:
            return -1
        value = value * 10 + digit
    return value


@_kernel
def _all_digits(data: U8, start: int, end: int) -> bool:
    """str.isascii() and str.isdigit(): at least one character, all of them 0-9."""
    if end <= start:
        return False
    for p in range(start, end):
        byte = _byte(data, p)
        if byte < _ZERO or byte > _NINE:
            return False
    return True


@_kernel
def _chars(data: U8, start: int, end: int) -> int:
    """len() of UTF-8 text: bytes that do not continue a character."""
    count = 0
    for p in range(start, end):
        if _byte(data, p) & _CONTINUATION_MASK != _CONTINUATION:
            count += 1
    return count


@_kernel
def _length_within(data: U8, start: int, end: int, limit: int) -> bool:
    """0 < len(text) <= limit; characters are counted only when the bytes exceed the limit."""
    if end - start <= limit:
        return end > start
    return _chars(data, start, end) <= limit


@_kernel
def _starts_with(data: U8, start: int, end: int, names: Names, k: int) -> bool:
    first, last = names.offsets[k], names.offsets[k + 1]
    if end - start < last - first:
        return False
    for j in range(last - first):  # noqa: SIM110 (numba compiles loops, not all(generator))
        if _byte(data, start + j) != _byte(names.data, first + j):
            return False
    return True


@_kernel
def _prefix(data: U8, start: int, end: int, names: Names) -> int:
    """Index of the first name the text starts with (str.startswith(tuple)), or -1."""
    for k in range(len(names.offsets) - 1):
        if _starts_with(data, start, end, names, k):
            return k
    return -1


@_kernel
def _match(data: U8, start: int, end: int, names: Names) -> int:
    """Index of the name equal to the text, or -1."""
    for k in range(len(names.offsets) - 1):
        if names.offsets[k + 1] - names.offsets[k] == end - start and _starts_with(
            data, start, end, names, k
        ):
            return k
    return -1


# -- cdr.parse_cdr ----------------------------------------------------------------------------


@_kernel
def _normalize_msisdn(data: U8, start: int, end: int, prefixes: Names, mobile_len: int) -> int:
    """cdr.normalize_msisdn: where the 11-digit national number starts, or -1 (invalid)."""
    for k in range(len(prefixes.offsets) - 1):
        length = prefixes.offsets[k + 1] - prefixes.offsets[k]
        if end - start == length + mobile_len and _starts_with(data, start, end, prefixes, k):
            start += length
            break
    # Non-ASCII bytes are not digits, so byte lengths stand in for len() here.
    if (
        end - start != mobile_len
        or _byte(data, start) != _ONE
        or _number(data, start, mobile_len) < 0
    ):
        return -1
    return start


@_kernel
def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


@_kernel
def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


@_kernel
def _parse_start(data: U8, start: int, end: int, default_offset_s: int) -> tuple[bool, int]:
    """cdr.parse_start: (valid, epoch seconds).

    Its regex and datetime.fromisoformat accept exactly "YYYY-MM-DD", T / t / space,
    "hh:mm:ss", an optional fraction of 1 or more digits (the seconds are what count), then
    Z / z, +hh:mm / -hh:mm with hh 00-23 and mm 00-59, or nothing (+08:00); no other characters
    (non-ASCII digits match \\d but fromisoformat refuses them). Every byte is checked
    against an ASCII character or digit below, so non-ASCII text fails without a scan.
    """
    if end - start < 19:
        return False, 0
    year = _number(data, start, 4)
    month = _number(data, start + 5, 2)
    day = _number(data, start + 8, 2)
    hour = _number(data, start + 11, 2)
    minute = _number(data, start + 14, 2)
    second = _number(data, start + 17, 2)
    separator = _byte(data, start + 10)
    if (
        min(year, month, day, hour, minute, second) < 0
        or _byte(data, start + 4) != _MINUS
        or _byte(data, start + 7) != _MINUS
        or separator not in (_T, _T_LOWER, _SPACE)
        or _byte(data, start + 13) != _COLON
        or _byte(data, start + 16) != _COLON
    ):
        return False, 0
    position = start + 19
    if position < end and _byte(data, position) == _DOT:
        digits_end = position + 1
        while digits_end < end and _ZERO <= _byte(data, digits_end) <= _NINE:
            digits_end += 1
        if digits_end == position + 1:
            return False, 0
        position = digits_end
    rest = end - position
    if rest == 0:
        offset_s = default_offset_s
    elif rest == 1 and (_byte(data, position) == _Z or _byte(data, position) == _Z_LOWER):
        offset_s = 0
    elif rest == 6 and (_byte(data, position) == _PLUS or _byte(data, position) == _MINUS):
        hours = _number(data, position + 1, 2)
        minutes = _number(data, position + 4, 2)
        if not (0 <= hours <= 23 and 0 <= minutes <= 59) or _byte(data, position + 3) != _COLON:
            return False, 0
        offset_s = (hours * 60 + minutes) * 60 * (-1 if _byte(data, position) == _MINUS else 1)
    else:
        return False, 0
    if (
        year < 1
        or not 1 <= month <= 12
        or not 1 <= day <= _days_in_month(year, month)
        or hour > 23
        or minute > 59
        or second > 59
    ):
        return False, 0
    days = _days_from_civil(year, month, day)
    return True, days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second - offset_s


@_kernel
def _package_set(
    packages: Lists, row: int, package_names: Names, max_name_chars: int
) -> tuple[int, int, bool]:
    """cdr._packages: (kernel reason or OK, bits over package_names, a name no version knows)."""
    if not packages.is_list:
        return PACKAGES_INVALID, 0, False
    first, last = packages.offsets[row], packages.offsets[row + 1]
    items = packages.items
    bits = 0
    unknown = False
    for item in range(first, last):
        if not items.is_text or not _valid(items.validity, items.bit_offset, item):
            return PACKAGES_INVALID, 0, False
        start, end = items.offsets[item], items.offsets[item + 1]
        if not _length_within(items.data, start, end, max_name_chars):
            return PACKAGES_INVALID, 0, False
        name = _match(items.data, start, end, package_names)
        if name < 0:
            unknown = True
        else:
            bits |= 1 << name
    return OK, bits, unknown


# -- classify ---------------------------------------------------------------------------------

# A target: (kernel reason or OK, dial, foreign destination or -1, special, area, on_net, region)
Target = tuple[int, int, int, bool, int, bool, int]


@_kernel
def _rejected(reason: int) -> Target:
    return reason, DIRECT, -1, False, -1, False, 0


@_kernel
def _is_mobile(data: U8, start: int, end: int, t: Tables, lim: Limits) -> bool:
    """classify._is_mobile."""
    return (
        end - start == lim.mobile_len
        and _byte(data, start) == _ONE
        and _entry(t.mobile_second_digit, _byte(data, start + 1)) != 0
    )


@_kernel
def _is_short(data: U8, start: int, end: int, t: Tables) -> bool:
    """classify._is_short."""
    return (
        t.short_length[min(end - start, len(t.short_length) - 1)]
        and _entry(t.short_first_digit, _byte(data, start)) != 0
    )


@_kernel
def _mobile(data: U8, start: int, dial: int, t: Tables, lim: Limits) -> Target:
    """classify._mobile via NumberingPlan.mobile."""
    slot = _number(data, start, lim.mobile_prefix_digits) - lim.mobile_prefix_first
    if not 0 <= slot < len(t.mobile_area) or _entry(t.mobile_area, slot) == lim.no_index:
        return _rejected(CALLEE_UNKNOWN_MOBILE)
    return OK, dial, -1, False, _entry(t.mobile_area, slot), _entry(t.mobile_cmcc, slot) != 0, 0


@_kernel
def _area_number(data: U8, start: int, end: int, dial: int, t: Tables, lim: Limits) -> Target:
    """classify._area_number: area code (no trunk 0) + subscriber or short number."""
    if end - start < 3:
        return _rejected(CALLEE_INVALID_NUMBER)
    area = _entry(t.area_by_digits, _number(data, start, 3))
    if area == lim.no_index:
        return _rejected(CALLEE_UNKNOWN_AREA)
    # numbering.area_code_length: 10 and 2x are two digits long, every other code three.
    two = _byte(data, start) == _TWO or (
        _byte(data, start) == _ONE and _byte(data, start + 1) == _ZERO
    )
    subscriber = start + (2 if two else 3)
    if _prefix(data, subscriber, end, t.information_prefixes) >= 0:
        return _rejected(CALLEE_INFORMATION_LINE)
    ordinary = (
        t.subscriber_length[min(end - subscriber, len(t.subscriber_length) - 1)]
        and _entry(t.subscriber_first_digit, _byte(data, subscriber)) != 0
    )
    if not (ordinary or _is_short(data, subscriber, end, t)):
        return _rejected(CALLEE_INVALID_NUMBER)
    return OK, dial, -1, False, area, False, 0


@_kernel
def _domestic(
    data: U8, start: int, end: int, dial: int, version: int, t: Tables, lim: Limits
) -> Target:
    """classify._domestic, with the free numbers of the version in force."""
    length = end - start
    if _byte(data, start) == _ZERO:
        if length == lim.mobile_len + 1 and _is_mobile(data, start + 1, end, t, lim):
            return _mobile(data, start + 1, dial, t, lim)
        return _area_number(data, start + 1, end, dial, t, lim)
    if _prefix(data, start, end, t.information_prefixes) >= 0:
        return _rejected(CALLEE_INFORMATION_LINE)
    if length == lim.mobile_len and _byte(data, start) == _ONE:
        return _mobile(data, start, dial, t, lim)
    if (
        t.subscriber_length[min(length, len(t.subscriber_length) - 1)]
        and _entry(t.subscriber_first_digit, _byte(data, start)) != 0
    ):
        return OK, dial, -1, False, lim.no_index, False, 0
    if _is_short(data, start, end, t):
        free = _match(data, start, end, t.free_numbers)
        special = free >= 0 and t.free_in_version[version, free]
        return OK, dial, -1, special, lim.no_index, False, 0
    return _rejected(CALLEE_INVALID_NUMBER)


@_kernel
def _after_86(data: U8, start: int, end: int, dial: int, t: Tables, lim: Limits) -> Target:
    """classify._after_86 (an empty rest passes its `national[:1] in ...` test)."""
    if _is_mobile(data, start, end, t, lim):
        return _mobile(data, start, dial, t, lim)
    if (
        end == start
        or _entry(t.subscriber_first_digit, _byte(data, start)) != 0
        or (end - start >= 2 and _byte(data, start) == _ONE and _byte(data, start + 1) == _ZERO)
    ):
        return _area_number(data, start, end, dial, t, lim)
    return _rejected(CALLEE_INVALID_PLUS86)


@_kernel
def _foreign(data: U8, start: int, end: int, dial: int, t: Tables, lim: Limits) -> Target:
    """classify._foreign: country code by its first three digits, then +1 / +7 splits."""
    length = end - start
    head = 0  # digits[:3].ljust(3, "0")
    for p in range(start, start + 3):
        head = head * 10 + (_byte(data, p) - _ZERO if p < end else 0)
    code_len = _entry(t.country_code_len, head) if length > 0 else 0
    if code_len == 0 or length < code_len:
        return _rejected(CALLEE_UNKNOWN_COUNTRY)
    national = length - code_len
    if length > lim.max_e164_digits or national < lim.min_foreign_national_digits:
        return _rejected(CALLEE_FOREIGN_LENGTH)
    code = head // (100 if code_len == 1 else 10 if code_len == 2 else 1)
    if t.satellite_code[code_len * 1000 + code]:
        return OK, dial, SATELLITE, False, lim.no_index, False, lim.satellite_region
    if t.split_code[code]:
        if code_len == 1 and code == lim.nanp_code and national != lim.nanp_national_digits:
            return _rejected(CALLEE_FOREIGN_LENGTH)
        region = _entry(t.split_region, code * 1000 + _number(data, start + code_len, 3))
        if region == lim.no_index:
            nanp = code_len == 1 and code == lim.nanp_code
            return _rejected(CALLEE_UNASSIGNED_NANP if nanp else CALLEE_UNKNOWN_DESTINATION)
    else:
        region = _entry(t.country_region, code)
        if region == lim.no_index:
            return _rejected(CALLEE_UNKNOWN_COUNTRY)
    kind = HMT if t.region_is_hmt[region] else INTERNATIONAL
    return OK, dial, kind, False, lim.no_index, False, region


@_inlined
def _classify_callee(
    data: U8, start: int, end: int, version: int, t: Tables, lim: Limits
) -> Target:
    """classify.classify_callee (SPEC §4 steps 1-4 and 7)."""
    if end == start:
        return _rejected(CALLEE_EMPTY)
    if end - start > lim.max_number_chars:
        # Longer in bytes: too long in characters too, unless non-ASCII characters (which
        # fail the digit checks below whatever prefix is stripped) make it shorter.
        too_long = _chars(data, start, end) > lim.max_number_chars
        return _rejected(CALLEE_TOO_LONG if too_long else CALLEE_INVALID_CHARACTERS)
    dial = DIRECT
    for k in range(len(t.ip_prefixes.offsets) - 1):
        length = t.ip_prefixes.offsets[k + 1] - t.ip_prefixes.offsets[k]
        if end - start >= length and _starts_with(data, start, end, t.ip_prefixes, k):
            if end - start == length:
                return _rejected(CALLEE_INCOMPLETE)  # a bare IP prefix
            dial = IP17951 + k
            start += length
            break
    international = -1
    if _byte(data, start) == _PLUS:
        if dial != DIRECT:  # `+` only as the first character
            return _rejected(CALLEE_INVALID_CHARACTERS)
        international = start + 1
        if not _all_digits(data, international, end):
            return _rejected(CALLEE_INVALID_CHARACTERS)
    elif not _all_digits(data, start, end):
        return _rejected(CALLEE_INVALID_CHARACTERS)
    elif end - start >= 2 and _byte(data, start) == _ZERO and _byte(data, start + 1) == _ZERO:
        international = start + 2
    if international >= 0:
        if (
            end - international >= 2
            and _byte(data, international) == 56
            and _byte(data, international + 1) == 54
        ):
            return _after_86(data, international + 2, end, dial, t, lim)  # "86"
        return _foreign(data, international, end, dial, t, lim)
    if (
        end - start == lim.mobile_len + 2
        and _byte(data, start) == 56
        and _byte(data, start + 1) == 54
        and _byte(data, start + 2) == _ONE
    ):
        return _mobile(data, start + 2, dial, t, lim)  # "861" + 10 digits
    return _domestic(data, start, end, dial, version, t, lim)


@_kernel
def _check_number_syntax(data: U8, start: int, end: int, max_number_chars: int) -> int:
    """classify.check_number_syntax (a terminating leg's calling number)."""
    if end == start:
        return CALLEE_EMPTY
    if end - start > max_number_chars and _chars(data, start, end) > max_number_chars:
        return CALLEE_TOO_LONG
    body = start + 1 if _byte(data, start) == _PLUS else start
    return OK if _all_digits(data, body, end) else CALLEE_INVALID_CHARACTERS


@_kernel
def _visited_index(data: U8, start: int, end: int, t: Tables, lim: Limits) -> int:
    """classify.visited_area_index via NumberingPlan.area_index: area, or -2 - kernel reason."""
    length = end - start
    value = _number(data, start, length)
    two = _byte(data, start) == _TWO or (
        length >= 2 and _byte(data, start) == _ONE and _byte(data, start + 1) == _ZERO
    )
    if length != (2 if two else 3):
        return -2 - VISITED_UNKNOWN_AREA
    area = _entry(t.area_by_digits, value * 10 if length == 2 else value)
    if area == lim.no_index or t.area_code_value[area] != value or t.area_code_len[area] != length:
        return -2 - VISITED_UNKNOWN_AREA
    return area


@_kernel
def _in_window(second: int, start: int, until: int) -> bool:
    """tariff.in_window: [start, until), wrapping midnight when start > until."""
    if start <= until:
        return start <= second < until
    return second >= start or second < until


# -- one row ----------------------------------------------------------------------------------

# A classified row: (kernel reason or OK, case key, version, call class, dial, roaming)
# (reason, key, version, call class, dial, roaming, start epoch seconds)
Case = tuple[int, int, int, int, int, int, int]


@_kernel
def _reject(reason: int) -> Case:
    return reason, 0, 0, 0, 0, 0, 0


@_kernel
def _text_span(column: Text, row: int) -> tuple[bool, int, int]:
    """(present, start, end) of one row of a string column."""
    present = _valid(column.validity, column.bit_offset, row)
    return present, _entry(column.offsets, row), _entry(column.offsets, row + 1)


@_kernel
def _key(
    version: int,
    plan: int,
    leg_kind: int,
    dial: int,
    destination: int,
    group: int,
    roaming: int,
    flags: int,
    lim: Limits,
) -> int:
    """The case key: mixed-radix digits, decoded again by BatchRater._case."""
    key = (version * lim.plans + plan) * LEG_KINDS + leg_kind
    key = (key * len(DIAL_NAMES) + dial) * len(DESTINATION_NAMES) + destination
    return ((key * lim.groups + group) * len(ROAMING_NAMES) + roaming) * FLAG_STATES + flags


@_kernel
def _profile_of(msisdn: int, profiles: Profiles) -> int:
    """Row of the caller's registry profile (0: the default)."""
    position = np.searchsorted(profiles.msisdn, msisdn)
    if position < len(profiles.msisdn) and profiles.msisdn[position] == msisdn:
        return int(profiles.profile[position])
    return 0


@_inlined
def _case_of(
    columns: Columns, row: int, t: Tables, lim: Limits, profiles: Profiles, require_id: bool
) -> Case:
    """cdr.parse_cdr then scalar.Rater.case_of for one row: the first rejection or the key."""
    # -- parse_cdr, in its order of checks
    if require_id:
        present, start, end = _text_span(columns.id, row)
        if not (present and columns.id.is_text):
            return _reject(ID_INVALID)
        if not _length_within(columns.id.data, start, end, lim.max_id_chars):
            return _reject(ID_INVALID)
    present, start, end = _text_span(columns.caller, row)
    if not present:
        return _reject(CALLER_MISSING)
    if not columns.caller.is_text:
        return _reject(CALLER_INVALID)
    national = _normalize_msisdn(columns.caller.data, start, end, t.china_prefixes, lim.mobile_len)
    if national < 0:
        return _reject(CALLER_INVALID)
    present, callee_start, callee_end = _text_span(columns.callee, row)
    if not present:
        return _reject(CALLEE_MISSING)
    if not columns.callee.is_text:
        return _reject(CALLEE_INVALID_CHARACTERS)
    present, start, end = _text_span(columns.start, row)
    if not present:
        return _reject(START_MISSING)
    valid, epoch = _parse_start(columns.start.data, start, end, lim.default_offset_s)
    if not (columns.start.is_text and valid):
        return _reject(START_INVALID)
    duration = columns.duration_s
    if not _valid(duration.validity, duration.bit_offset, row):
        return _reject(DURATION_MISSING)
    if not 0 <= _entry(duration.values, row) <= lim.max_duration_s:
        return _reject(DURATION_INVALID)
    # cdr._leg: no type is an originating leg; forward_kind matters only when forwarded.
    present, start, end = _text_span(columns.type, row)
    leg = ORIGINATING
    if present:
        leg = _match(columns.type.data, start, end, t.leg_names) if columns.type.is_text else -1
        if leg < 0:
            return _reject(TYPE_INVALID)
    leg_kind = leg
    if leg == FORWARDED:
        present, start, end = _text_span(columns.forward_kind, row)
        if not present:
            return _reject(FORWARD_KIND_MISSING)
        kind = -1
        if columns.forward_kind.is_text:
            kind = _match(columns.forward_kind.data, start, end, t.forward_kind_names)
        if kind < 0:
            return _reject(FORWARD_KIND_INVALID)
        leg_kind = FORWARDED + kind
    # cdr.normalize_area: absent (a null cell) is not roaming, "" is refused, "+..." / "00..."
    # is abroad. The JSON decoders send an explicit null to parse_cdr (it is refused too).
    present, visited_start, visited_end = _text_span(columns.visited_area, row)
    roaming_given = present
    if present and not (columns.visited_area.is_text and visited_end > visited_start):
        return _reject(VISITED_INVALID)
    if roaming_given:
        data = columns.visited_area.data
        if _byte(data, visited_start) == _PLUS or (
            visited_end - visited_start >= 2
            and _byte(data, visited_start) == _ZERO
            and _byte(data, visited_start + 1) == _ZERO
        ):
            return _reject(VISITED_INTERNATIONAL)
        if _byte(data, visited_start) == _ZERO:
            visited_start += 1
        if not (
            _all_digits(data, visited_start, visited_end) and 2 <= visited_end - visited_start <= 3
        ):
            return _reject(VISITED_INVALID)
    # cdr._plan
    present, plan_start, plan_end = _text_span(columns.plan, row)
    plan_given = present
    if present:
        if not columns.plan.is_text:
            return _reject(PLAN_UNKNOWN)
        if not _length_within(columns.plan.data, plan_start, plan_end, lim.max_name_chars):
            return _reject(PLAN_UNKNOWN)
    # cdr._packages
    packages = columns.packages
    packages_given = _valid(packages.validity, packages.bit_offset, row)
    package_bits, package_unknown = 0, False
    if packages_given:
        reason, package_bits, package_unknown = _package_set(
            packages, row, t.package_names, lim.max_name_chars
        )
        if reason != OK:
            return _reject(reason)

    # -- Rater.case_of
    version = int(np.searchsorted(t.tariff_from, epoch, side="right")) - 1
    if version < 0 or epoch >= t.tariff_until[version]:
        return _reject(START_NO_TARIFF)
    profile = 0
    if len(profiles.msisdn):
        profile = _profile_of(_number(columns.caller.data, national, lim.mobile_len), profiles)
    if plan_given:
        plan = _match(columns.plan.data, plan_start, plan_end, t.plan_names)
    else:
        plan = profiles.plan[profile]
        if plan == -1:
            return _reject(PLAN_MISSING)
    if plan < 0 or not t.plan_in_version[version, plan]:
        return _reject(PLAN_UNKNOWN)
    if not packages_given:
        package_bits = profiles.package_bits[profile]
        package_unknown = profiles.package_unknown[profile]
    if package_unknown or (package_bits & ~t.version_package_bits[version]) != 0:
        return _reject(PACKAGES_UNKNOWN)
    home = profiles.home[profile]
    prefix = _number(columns.caller.data, national, lim.mobile_prefix_digits)
    slot = prefix - lim.mobile_prefix_first
    in_plan = 0 <= slot < len(t.mobile_area)
    if home == -2:  # NumberingPlan.mobile
        home = _entry(t.mobile_area, slot) if in_plan else lim.no_index
    if home == lim.no_index:
        return _reject(CALLER_UNKNOWN_RANGE)
    if not profiles.registered[profile] and not (in_plan and _entry(t.mobile_cmcc, slot) != 0):
        return _reject(CALLER_NOT_CHINA_MOBILE)
    visited = lim.no_index
    if roaming_given:
        visited = _visited_index(columns.visited_area.data, visited_start, visited_end, t, lim)
        if visited < -1:
            return _reject(-2 - visited)
    # classify.roaming_state
    roaming = HOME
    if visited != lim.no_index and visited != home:
        same_province = t.area_province[visited] == t.area_province[home]
        roaming = IN_PROVINCE if same_province else NATIONAL
    current = home if visited == lim.no_index else visited
    if leg == TERMINATING:
        # A terminating leg's case has only version, plan, leg and roaming.
        reason = _check_number_syntax(
            columns.callee.data, callee_start, callee_end, lim.max_number_chars
        )
        if reason != OK:
            return _reject(reason)
        key = _key(version, plan, leg_kind, DIRECT, 0, 0, roaming, 0, lim)
        return OK, key, version, INCOMING, DIRECT, roaming, epoch
    reason, dial, foreign, special, area, on_net, region = _classify_callee(
        columns.callee.data, callee_start, callee_end, version, t, lim
    )
    if reason != OK:
        return _reject(reason)
    if area == lim.no_index:
        area = current
    forwarded = leg == FORWARDED
    if special and not forwarded:
        destination = SPECIAL
    elif foreign >= 0:
        destination = foreign
    else:
        destination = LOCAL if area == current else DOMESTIC_LD
    second = (epoch + t.tariff_offset_s[version]) % SECONDS_PER_DAY
    domestic_ld = destination == DOMESTIC_LD
    domestic_target = foreign < 0  # a forwarded-to service number is a number of its area
    flags = 0
    busy = _in_window(second, t.busy_from[version], t.busy_until[version])
    if dial == IP12593 and domestic_ld and busy:
        flags |= BUSY
    if (
        not forwarded
        and dial == DIRECT
        and domestic_ld
        and roaming == HOME
        and t.has_night[version]
        and (package_bits & lim.night_bit) != 0
        and _in_window(second, t.night_from[version], t.night_until[version])
    ):
        flags |= NIGHT_FREE
    if forwarded and domestic_target and area == home:
        flags |= TARGET_HOME
    if forwarded and domestic_target and visited != lim.no_index and area == visited:
        flags |= TARGET_VISITED
    if forwarded and on_net:
        flags |= TARGET_ON_NET
    group = t.region_group[region] if foreign >= 0 else 0
    key = _key(version, plan, leg_kind, dial, destination, group, roaming, flags, lim)
    call_class = FORWARD if forwarded else destination
    return OK, key, version, call_class, dial, roaming, epoch


# -- charges ----------------------------------------------------------------------------------


@_kernel
def charge_of(rates: I64, duration_s: int) -> int:
    """pricing.charge_fen from one key's rate totals: each component rounded to its units."""
    units_6s = (duration_s + UNIT_6S - 1) // UNIT_6S
    units_min = (duration_s + UNIT_MIN - 1) // UNIT_MIN
    charge = rates[RATE_6S] * units_6s + rates[RATE_60S] * units_min
    if duration_s > rates[FREE_MAX_S]:
        charge += rates[FREE_6S] * units_6s + rates[FREE_60S] * units_min
    return int(charge)


@_kernel
def _settle(out: Outputs, row: int, rates: I64, duration_s: int) -> bool:
    """The charge of a classified row, or its pricing rejection; False when rejected."""
    if rates[REJECTION] >= 0:
        out.reason[row] = rates[REJECTION]
        return False
    out.charge[row] = charge_of(rates, duration_s)
    return True


@_kernel
def rate_rows(
    columns: Columns,
    t: Tables,
    lim: Limits,
    profiles: Profiles,
    require_id: bool,
    prices: Prices,
    out: Outputs,
) -> tuple[int, int]:
    """Rate every row in one pass: (rows rejected, rows whose key awaits pricing).

    A pending row counts as rated until `finish_rows` settles it, once `Rater.pricing` has
    priced its key.
    """
    rows = len(columns.caller.offsets) - 1
    rejected = pending = 0
    rated_byte = 0
    for row in range(rows):
        reason, key, version, call_class, dial, roaming, epoch = _case_of(
            columns, row, t, lim, profiles, require_id
        )
        at = np.uint64(row)  # unsigned: no wraparound check (see _byte)
        out.start_epoch[at] = epoch
        out.call_class[at] = call_class
        out.dial[at] = dial
        out.roaming[at] = roaming
        out.tariff[at] = version
        out.charge[at] = 0
        out.reason[at] = 0
        if reason != OK:
            out.reason[at] = t.reason_index[reason]
            rated = False
        elif _entry(prices.row, key) >= 0:
            rates = prices.rates[_entry(prices.row, key)]
            rated = _settle(out, row, rates, _entry(columns.duration_s.values, row))
        else:
            out.pending_rows[pending] = row
            out.pending_keys[pending] = key
            pending += 1
            rated = True
        if rated:
            rated_byte |= 1 << (row & 7)
        else:
            rejected += 1
        if row & 7 == 7 or row == rows - 1:
            out.rated_bits[row >> 3] = rated_byte
            out.rejected_bits[row >> 3] = ~rated_byte & 0xFF
            rated_byte = 0
    return rejected, pending


@_kernel
def finish_rows(durations: I64, prices: Prices, out: Outputs, pending: int) -> int:
    """Settle the pending rows now that their keys are priced; returns how many are rejected."""
    rejected = 0
    for index in range(pending):
        row = out.pending_rows[index]
        rates = prices.rates[prices.row[out.pending_keys[index]]]
        if not _settle(out, row, rates, durations[row]):
            out.rated_bits[row >> 3] &= np.uint8(~(1 << (row & 7)) & 0xFF)
            out.rejected_bits[row >> 3] |= np.uint8(1 << (row & 7))
            rejected += 1
    return rejected
