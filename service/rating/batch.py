"""The batch path: whole columns of CDRs -> the same ratings as the per-call path.

`batch_kernels.rate_rows` walks each row's Arrow buffers once, in the per-call path's order
of checks, down to one integer case key (version, plan, leg + forward kind, dial,
destination, foreign tier group, roaming, window and forward-target bits). The price of each
key that occurs is asked once from the same `Rater.pricing` the per-call path uses and kept
as per-unit rate totals; the charge is then `r6 * ceil(d / 6) + r60 * ceil(d / 60)` plus the
short-call-free parts when `d > short_call_max_s`, which equals `pricing.charge_fen` because
every component is rounded on its own to units of its own length. This module turns Arrow
columns and the tariff book into the kernels' arguments and their results back into Arrow.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from service.rating import batch_kernels as k
from service.rating.cdr import (
    CDR_FIELDS,
    CHINA_PREFIXES,
    DEFAULT_OFFSET,
    MAX_DURATION_S,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
)
from service.rating.classify import (
    INFORMATION_PREFIXES,
    IP_PREFIX_LEN,
    IP_PREFIXES,
    MAX_E164_DIGITS,
    MAX_NUMBER_CHARS,
    MIN_FOREIGN_NATIONAL_DIGITS,
    MOBILE_LEN,
    MOBILE_SECOND_DIGITS,
    NANP_CODE,
    NANP_NATIONAL_DIGITS,
    SHORT_FIRST_DIGITS,
    SHORT_LENGTHS,
    SUBSCRIBER_FIRST_DIGITS,
    SUBSCRIBER_LENGTHS,
)
from service.rating.numbering import (
    HMT_REGIONS,
    MOBILE_PREFIX_DIGITS,
    MOBILE_PREFIX_FIRST,
    NO_INDEX,
    NON_GEOGRAPHIC_REGION,
    SATELLITE_CODES,
)
from service.rating.pricing import (
    FOREIGN,
    PER_6S,
    PER_MIN,
    CallCase,
    Destination,
    Dial,
    ForwardKind,
    Leg,
    Pricing,
    Roaming,
)
from service.rating.rejections import REASON_CODES
from service.rating.scalar import NIGHT_PACKAGE, Rater, SubscriberProfile
from service.rating.tariff import seconds_of_day

INPUT_COLUMNS = CDR_FIELDS
OUTPUT_COLUMNS = ("charge_fen", "call_class", "dial", "roaming", "tariff", "reason")
CALL_CLASSES = k.CALL_CLASSES

# The kernels' key digits, as the pricing enums.
DESTINATIONS = tuple(Destination(name) for name in k.DESTINATION_NAMES)
DIALS = tuple(Dial(name) for name in k.DIAL_NAMES)
ROAMINGS = tuple(Roaming(name) for name in k.ROAMING_NAMES)
LEG_KINDS: tuple[tuple[Leg, ForwardKind | None], ...] = (
    (Leg.ORIGINATING, None),
    (Leg.TERMINATING, None),
    *((Leg.FORWARDED, ForwardKind(name)) for name in k.FORWARD_KIND_NAMES),
)
if (
    {*DESTINATIONS} != set(Destination)
    or {*DIALS} != set(Dial)
    or {*ROAMINGS} != set(Roaming)
    or tuple(Leg(name) for name in k.LEG_NAMES) != (Leg.ORIGINATING, Leg.TERMINATING, Leg.FORWARDED)
    or len(LEG_KINDS) != k.LEG_KINDS
    or (PER_6S, PER_MIN) != (k.UNIT_6S, k.UNIT_MIN)
):
    raise ImportError("batch_kernels' key digits or units no longer match service.rating.pricing")

Array = TypeVar("Array", bound=np.ndarray[Any, Any])
_EMPTY_BYTES = np.zeros(0, dtype=np.uint8)
_EMPTY_BYTES.flags.writeable = False


def _frozen(array: Array) -> Array:
    """A read-only view: the kernels are compiled for read-only inputs, one signature."""
    view = array.view()
    view.flags.writeable = False
    return view


def _names(values: Iterable[str]) -> k.Names:
    encoded = [value.encode() for value in values]
    offsets = np.cumsum([0, *(len(e) for e in encoded)]).astype(np.int32)
    data = np.array(list(b"".join(encoded)), dtype=np.uint8)
    return k.Names(_frozen(data), _frozen(offsets))


def _byte_set(characters: str) -> npt.NDArray[np.bool_]:
    table = np.zeros(256, dtype=np.bool_)
    table[[ord(c) for c in characters]] = True
    return _frozen(table)


def _length_set(lengths: Iterable[int]) -> npt.NDArray[np.bool_]:
    table = np.zeros(MAX_NUMBER_CHARS + 2, dtype=np.bool_)  # the last entry: any longer text
    table[list(lengths)] = True
    return _frozen(table)


def _code_set(codes: Iterable[str]) -> npt.NDArray[np.bool_]:
    """Digit strings of up to three digits, indexed by length * 1000 + value."""
    table = np.zeros(4000, dtype=np.bool_)
    table[[len(code) * 1000 + int(code) for code in codes]] = True
    return _frozen(table)


# -- JSON records as columns ------------------------------------------------------------------

TEXT_FIELDS = ("id", "caller", "callee", "start", "type", "forward_kind", "visited_area", "plan")
RECORD_SCHEMA = pa.schema(
    [
        *((name, pa.string()) for name in TEXT_FIELDS),
        ("duration_s", pa.int64()),
        ("packages", pa.list_(pa.string())),
    ]
)
_INT64 = range(-(2**63), 2**63)
# SPEC §3.1: fields whose explicit null is refused (in columns a null cell means absent).
NULL_REFUSED = ("type", "visited_area")


def _odd_text(values: list[Any]) -> Iterable[int]:
    return (i for i, v in enumerate(values) if v is not None and type(v) is not str)


def record_columns(records: Sequence[Mapping[str, Any]]) -> tuple[pa.Table, set[int]]:
    """JSON-decoded CDR objects -> RECORD_SCHEMA columns, and the rows whose values do not
    have the columns' types (text not a string, duration_s not an integer of 64 bits,
    packages not a list of strings, an explicit null where only absence is allowed:
    `parse_cdr` decides those rows; they are nulls here).

    A type check comes first because Arrow converts leniently (60.5 to 60, "ab" to a list).
    As in `parse_cdr`, forward_kind counts only on a forwarded leg.
    """
    columns = {name: [r.get(name) for r in records] for name in TEXT_FIELDS}
    columns["forward_kind"] = [
        kind if leg == "forwarded" else None
        for kind, leg in zip(columns["forward_kind"], columns["type"], strict=True)
    ]
    odd = {i for name in TEXT_FIELDS for i in _odd_text(columns[name])}
    durations = [r.get("duration_s") for r in records]
    odd.update(
        i
        for i, v in enumerate(durations)
        if v is not None and (type(v) is not int or v not in _INT64)
    )
    packages = [r.get("packages") for r in records]
    odd.update(
        i
        for i, v in enumerate(packages)
        if v is not None and (type(v) is not list or any(type(p) is not str for p in v))
    )
    # A column's null is an absent field; an explicit null `type` or `visited_area` is refused.
    odd.update(i for i, r in enumerate(records) for name in NULL_REFUSED if r.get(name, 0) is None)
    for values in (*columns.values(), durations, packages):
        for i in odd:
            values[i] = None
    table = pa.table(
        {**columns, "duration_s": durations, "packages": packages}, schema=RECORD_SCHEMA
    )
    return table, odd


# -- Arrow columns as kernel arguments ---------------------------------------------------------


def _column(data: pa.Table, name: str) -> pa.Array:
    if name not in data.column_names:
        return pa.nulls(data.num_rows)
    column = data.column(name)
    return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)


def _validity(array: pa.Array) -> tuple[npt.NDArray[np.uint8], int]:
    if array.null_count == 0:
        return _EMPTY_BYTES, 0
    bitmap = array.buffers()[0]
    if bitmap is None:  # the null type: every value is null
        return _frozen(np.zeros((len(array) + 7) // 8, dtype=np.uint8)), 0
    return _frozen(np.frombuffer(bitmap, dtype=np.uint8)), array.offset


def _offsets(array: pa.Array) -> npt.NDArray[np.int32]:
    buffer = array.buffers()[1]
    if buffer is None:
        return _frozen(np.zeros(len(array) + 1, dtype=np.int32))
    return _frozen(
        np.frombuffer(buffer, dtype=np.int32, count=len(array) + 1, offset=array.offset * 4)
    )


def _text(array: pa.Array) -> k.Text:
    """A string column's buffers; other types keep only their validity (values are not text)."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_large_string(array.type):
        array = array.cast(pa.string())
    validity, bit_offset = _validity(array)
    if not pa.types.is_string(array.type):
        zeros = _frozen(np.zeros(len(array) + 1, dtype=np.int32))
        return k.Text(zeros, _EMPTY_BYTES, validity, bit_offset, pa.types.is_null(array.type))
    data = array.buffers()[2]
    chars = _EMPTY_BYTES if data is None else _frozen(np.frombuffer(data, dtype=np.uint8))
    return k.Text(_offsets(array), chars, validity, bit_offset, True)


def _durations(array: pa.Array) -> k.Integers:
    """duration_s as int64, -1 where a present value is not a whole number."""
    n = len(array)
    if pa.types.is_integer(array.type):
        if array.type != pa.int64():
            array = array.cast(pa.int64(), safe=False)  # a wrapped uint64 is negative: invalid
        values = np.frombuffer(array.buffers()[1], dtype=np.int64, count=n, offset=array.offset * 8)
    elif pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        # Text formats (CSV) carry no types: a duration there is decimal digits.
        digits = pc.match_substring_regex(array, r"^[0-9]{1,6}$").fill_null(False)
        numbers = pc.if_else(digits, array, "0").cast(pa.int64()).fill_null(0)
        values = np.where(digits.to_numpy(zero_copy_only=False), numbers.to_numpy(), -1)
    else:
        values = np.full(n, -1, dtype=np.int64)
    validity, bit_offset = _validity(array)
    return k.Integers(_frozen(values.astype(np.int64, copy=False)), validity, bit_offset)


def _lists(array: pa.Array) -> k.Lists:
    if pa.types.is_large_list(array.type):
        array = array.cast(pa.list_(array.type.value_type))
    validity, bit_offset = _validity(array)
    if not pa.types.is_list(array.type):
        zeros = _frozen(np.zeros(len(array) + 1, dtype=np.int32))
        no_items = _text(pa.array([], type=pa.string()))
        return k.Lists(zeros, validity, bit_offset, pa.types.is_null(array.type), no_items)
    # `values` ignores the list's own offset: the sliced offsets index into it as they are.
    return k.Lists(_offsets(array), validity, bit_offset, True, _text(array.values))


def _columns(data: pa.Table) -> k.Columns:
    start = _column(data, "start")
    if pa.types.is_timestamp(start.type):
        raise TypeError("start must be RFC 3339 text, as in SPEC §3.1")
    return k.Columns(
        id=_text(_column(data, "id")),
        caller=_text(_column(data, "caller")),
        callee=_text(_column(data, "callee")),
        start=_text(start),
        duration_s=_durations(_column(data, "duration_s")),
        type=_text(_column(data, "type")),
        forward_kind=_text(_column(data, "forward_kind")),
        visited_area=_text(_column(data, "visited_area")),
        plan=_text(_column(data, "plan")),
        packages=_lists(_column(data, "packages")),
    )


def _dictionary(
    indices: npt.NDArray[np.int16], valid: pa.Buffer | None, nulls: int, values: pa.Array
) -> pa.DictionaryArray:
    array = pa.Array.from_buffers(
        pa.int16(), len(indices), [valid, pa.py_buffer(indices)], null_count=nulls
    )
    return pa.DictionaryArray.from_arrays(array, values, safe=False)


class RatedRows(NamedTuple):
    """BatchRater.rate_rows: one entry per input row; the other fields of a row that is not
    `rated` are meaningless, except `reason` (its rejection code)."""

    rated: list[bool]
    charge_fen: list[int]
    call_class: list[str]
    dial: list[str]
    roaming: list[str]
    tariff: list[str]
    reason: list[str]
    start_epoch_s: list[int]


class BatchRater:
    """Rating whole columns against one `Rater`'s tariff book and numbering plan."""

    def __init__(self, rater: Rater) -> None:
        self.rater = rater
        book, numbering = rater.book, rater.numbering
        self.versions = [t.version for t in book.tariffs]
        self.plans = list(book.plans)
        self.plan_ids = {plan: i for i, plan in enumerate(self.plans)}
        self.package_names = sorted({name for t in book.tariffs for name in t.packages})
        if len(self.package_names) > 62:
            raise ValueError("more than 62 package names: a package set no longer fits 64 bits")
        # Foreign regions matter to a price only through their tier memberships.
        region_names = (*numbering.regions, NON_GEOGRAPHIC_REGION)
        signatures: dict[tuple[tuple[bool, ...], ...], int] = {}
        self.group_region: list[str] = []
        groups = []
        for region in region_names:
            signature = tuple(
                (
                    region in HMT_REGIONS,
                    region in t.ip17951.tiers.us_ca,
                    region in t.ip17951.tiers.tier_a,
                    region in t.ip12593.tiers.b1,
                    region in t.ip12593.tiers.b2,
                )
                for t in book.tariffs
            )
            if signature not in signatures:
                signatures[signature] = len(self.group_region)
                self.group_region.append(region)
            groups.append(signatures[signature])
        night = [t.packages.get(NIGHT_PACKAGE) for t in book.tariffs]
        free_numbers = sorted({n for t in book.tariffs for n in t.free_numbers})
        ip_prefixes = {dial.value: prefix for prefix, dial in IP_PREFIXES.items()}
        if any(len(prefix) != IP_PREFIX_LEN for prefix in ip_prefixes.values()):
            raise ValueError("the kernels strip IP prefixes of IP_PREFIX_LEN characters")
        self.tables = k.Tables(
            area_by_digits=_frozen(numbering.area_by_digits),
            area_province=_frozen(numbering.area_province),
            area_code_value=_frozen(np.array([int(c) for c in numbering.area_codes], np.int64)),
            area_code_len=_frozen(np.array([len(c) for c in numbering.area_codes], np.int64)),
            mobile_area=_frozen(numbering.mobile_area),
            mobile_cmcc=_frozen(numbering.mobile_cmcc),
            country_code_len=_frozen(numbering.country_code_len),
            country_region=_frozen(numbering.country_region),
            split_region=_frozen(numbering.split_region),
            split_code=_frozen(np.isin(np.arange(1000), list(numbering.split_codes))),
            satellite_code=_code_set(SATELLITE_CODES),
            region_group=_frozen(np.array(groups, dtype=np.int64)),
            region_is_hmt=_frozen(np.array([r in HMT_REGIONS for r in region_names], np.bool_)),
            china_prefixes=_names(CHINA_PREFIXES),
            ip_prefixes=_names(ip_prefixes[name] for name in k.DIAL_NAMES[1:]),
            free_numbers=_names(free_numbers),
            free_in_version=_frozen(
                np.array(
                    [[n in t.free_number_set for n in free_numbers] for t in book.tariffs],
                    np.bool_,
                ).reshape(len(book.tariffs), len(free_numbers))
            ),
            information_prefixes=_names(INFORMATION_PREFIXES),
            mobile_second_digit=_byte_set(MOBILE_SECOND_DIGITS),
            subscriber_first_digit=_byte_set(SUBSCRIBER_FIRST_DIGITS),
            subscriber_length=_length_set(SUBSCRIBER_LENGTHS),
            short_first_digit=_byte_set(SHORT_FIRST_DIGITS),
            short_length=_length_set(SHORT_LENGTHS),
            tariff_from=_frozen(np.array(book.starts, dtype=np.int64)),
            tariff_until=_frozen(
                np.array(
                    [t.until_epoch_s or np.iinfo(np.int64).max for t in book.tariffs], np.int64
                )
            ),
            tariff_offset_s=_frozen(np.array([t.utc_offset_s for t in book.tariffs], np.int64)),
            busy_from=_frozen(
                np.array([seconds_of_day(t.ip12593.busy_from) for t in book.tariffs], np.int64)
            ),
            busy_until=_frozen(
                np.array([seconds_of_day(t.ip12593.busy_until) for t in book.tariffs], np.int64)
            ),
            night_from=_frozen(
                np.array([seconds_of_day(p.free_from) if p else 0 for p in night], np.int64)
            ),
            night_until=_frozen(
                np.array([seconds_of_day(p.free_until) if p else 0 for p in night], np.int64)
            ),
            has_night=_frozen(np.array([p is not None for p in night], dtype=np.bool_)),
            leg_names=_names(k.LEG_NAMES),
            forward_kind_names=_names(k.FORWARD_KIND_NAMES),
            plan_names=_names(self.plans),
            plan_in_version=_frozen(
                np.array([[p in t.plans for p in self.plans] for t in book.tariffs], np.bool_)
            ),
            package_names=_names(self.package_names),
            version_package_bits=_frozen(
                np.array([self._package_bits(t.packages) for t in book.tariffs], np.int64)
            ),
            reason_index=_frozen(
                np.array([REASON_CODES.index(code) for code in k.REASONS], dtype=np.int16)
            ),
        )
        self.limits = k.Limits(
            max_id_chars=MAX_ID_CHARS,
            max_name_chars=MAX_NAME_CHARS,
            max_duration_s=MAX_DURATION_S,
            max_number_chars=MAX_NUMBER_CHARS,
            mobile_len=MOBILE_LEN,
            max_e164_digits=MAX_E164_DIGITS,
            min_foreign_national_digits=MIN_FOREIGN_NATIONAL_DIGITS,
            nanp_code=int(NANP_CODE),
            nanp_national_digits=NANP_NATIONAL_DIGITS,
            mobile_prefix_digits=MOBILE_PREFIX_DIGITS,
            mobile_prefix_first=MOBILE_PREFIX_FIRST,
            no_index=NO_INDEX,
            default_offset_s=int(DEFAULT_OFFSET.utcoffset(None).total_seconds()),
            satellite_region=len(region_names) - 1,
            night_bit=self._package_bits([NIGHT_PACKAGE]),
            plans=len(self.plans),
            groups=len(self.group_region),
        )
        self.key_space = (
            len(self.versions)
            * len(self.plans)
            * k.LEG_KINDS
            * len(DIALS)
            * len(DESTINATIONS)
            * len(self.group_region)
            * len(ROAMINGS)
            * k.FLAG_STATES
        )
        # Filled lazily: only the few keys that occur are ever priced.
        self.prices = k.Prices(
            row=np.full(self.key_space, -1, dtype=np.int32),
            rates=np.zeros((0, k.RATE_FIELDS), dtype=np.int64),
        )
        self._dictionaries = {
            "call_class": pa.array(CALL_CLASSES, type=pa.string()),
            "dial": pa.array(k.DIAL_NAMES, type=pa.string()),
            "roaming": pa.array(k.ROAMING_NAMES, type=pa.string()),
            "tariff": pa.array(self.versions, type=pa.string()),
            "reason": pa.array(REASON_CODES, type=pa.string()),
        }
        self._default_profiles: dict[str | None, k.Profiles] = {}
        # Ingestion rates batches from several threads; pricing a new key grows the shared
        # price table, which a kernel running meanwhile must not see half made.
        self._lock = threading.Lock()

    def _package_bits(self, names: Iterable[str]) -> int:
        return sum(1 << self.package_names.index(n) for n in set(names) if n in self.package_names)

    def rate(
        self,
        data: pa.Table | pa.RecordBatch,
        *,
        subscribers: Mapping[str, SubscriberProfile] | None = None,
        default_plan: str | None = None,
        require_id: bool = False,
    ) -> pa.Table:
        """Input columns unchanged plus charge_fen, call_class, dial, roaming, tariff, reason."""
        table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
        out, rejected = self._rate(table, subscribers, default_plan, require_id)
        n = table.num_rows
        clashes = [name for name in OUTPUT_COLUMNS if name in table.column_names]
        if clashes:
            table = table.drop_columns(clashes)
        rated_valid = pa.py_buffer(out.rated_bits) if rejected else None
        rejected_valid = pa.py_buffer(out.rejected_bits) if rejected < n else None
        charge = pa.Array.from_buffers(
            pa.int64(), n, [rated_valid, pa.py_buffer(out.charge)], null_count=rejected
        )
        outputs = {
            "charge_fen": charge,
            **{
                name: _dictionary(getattr(out, name), rated_valid, rejected, values)
                for name, values in self._dictionaries.items()
                if name != "reason"
            },
            "reason": _dictionary(
                out.reason, rejected_valid, n - rejected, self._dictionaries["reason"]
            ),
        }
        for name, column in outputs.items():
            table = table.append_column(name, column)
        return table

    def warm(self) -> None:
        """Compile the kernels now, or load them from numba's cache: about 16 s the first
        time on a machine, then well under a second. Two records take every kernel through
        its whole signature as `rate` calls it: one rated, with a plan and a package, and
        one rejected, with nulls."""
        plan = next(iter(self.rater.book.tariffs[-1].plans))
        records: list[dict[str, Any]] = [
            {
                "id": "warm-up-1",
                "caller": "13800138000",
                "callee": "02188001234",
                "start": "2010-03-01T10:00:00+08:00",
                "duration_s": 125,
                "plan": plan,
                "packages": self.package_names[:1],
            },
            {"id": "warm-up-2", "caller": "x", "start": "x", "duration_s": 1},
        ]
        self.rate(record_columns(records)[0], subscribers={}, default_plan=None)

    def rate_rows(
        self,
        table: pa.Table,
        *,
        subscribers: Mapping[str, SubscriberProfile] | None = None,
        default_plan: str | None = None,
        require_id: bool = False,
    ) -> RatedRows:
        """The results as Python lists, for a caller that handles rows one by one."""
        out, rated = self.rate_outputs(
            table, subscribers=subscribers, default_plan=default_plan, require_id=require_id
        )
        return RatedRows(
            rated=rated.tolist(),
            charge_fen=out.charge.tolist(),
            call_class=[CALL_CLASSES[i] for i in out.call_class.tolist()],
            dial=[k.DIAL_NAMES[i] for i in out.dial.tolist()],
            roaming=[k.ROAMING_NAMES[i] for i in out.roaming.tolist()],
            tariff=[self.versions[i] for i in out.tariff.tolist()],
            reason=[REASON_CODES[i] for i in out.reason.tolist()],
            start_epoch_s=out.start_epoch.tolist(),
        )

    def rate_outputs(
        self,
        table: pa.Table,
        *,
        subscribers: Mapping[str, SubscriberProfile] | None = None,
        default_plan: str | None = None,
        require_id: bool = False,
    ) -> tuple[k.Outputs, npt.NDArray[np.bool_]]:
        """The kernels' outputs as arrays (indices into CALL_CLASSES, k.DIAL_NAMES,
        k.ROAMING_NAMES, `versions`, REASON_CODES), and which rows rated."""
        out, _ = self._rate(table, subscribers, default_plan, require_id)
        rated = np.unpackbits(out.rated_bits, count=table.num_rows, bitorder="little")
        return out, rated.astype(np.bool_)

    def _rate(
        self,
        table: pa.Table,
        subscribers: Mapping[str, SubscriberProfile] | None,
        default_plan: str | None,
        require_id: bool,
    ) -> tuple[k.Outputs, int]:
        """The kernels' outputs for every row, and how many rows are rejected."""
        n = table.num_rows
        columns = _columns(table)
        with self._lock:
            profiles = self._profiles(subscribers, default_plan)
            return self._run(columns, profiles, n, require_id)

    def _run(
        self, columns: k.Columns, profiles: k.Profiles, n: int, require_id: bool
    ) -> tuple[k.Outputs, int]:
        out = k.Outputs(
            charge=np.empty(n, dtype=np.int64),
            call_class=np.empty(n, dtype=np.int16),
            dial=np.empty(n, dtype=np.int16),
            roaming=np.empty(n, dtype=np.int16),
            tariff=np.empty(n, dtype=np.int16),
            reason=np.empty(n, dtype=np.int16),
            rated_bits=np.empty((n + 7) // 8, dtype=np.uint8),
            rejected_bits=np.empty((n + 7) // 8, dtype=np.uint8),
            pending_rows=np.empty(n, dtype=np.int64),
            pending_keys=np.empty(n, dtype=np.int64),
            start_epoch=np.empty(n, dtype=np.int64),
        )
        rejected, pending = k.rate_rows(
            columns, self.tables, self.limits, profiles, require_id, self.prices, out
        )
        if pending:
            self._price(np.unique(out.pending_keys[:pending]))
            durations = columns.duration_s.values
            rejected += k.finish_rows(durations, self.prices, out, pending)
        return out, rejected

    def _profiles(
        self, subscribers: Mapping[str, SubscriberProfile] | None, default_plan: str | None
    ) -> k.Profiles:
        """Registry profiles for the kernels; without a registry, one per default plan."""
        if not subscribers and default_plan in self._default_profiles:
            return self._default_profiles[default_plan]
        rows: list[SubscriberProfile | None] = [
            SubscriberProfile(default_plan, registered=False) if default_plan else None
        ]
        numbers = sorted(
            (int(m), m)
            for m in subscribers or ()
            if m.isascii() and m.isdigit() and len(m) == MOBILE_LEN
        )
        rows.extend((subscribers or {})[m] for _, m in numbers)
        numbering = self.rater.numbering
        profiles = k.Profiles(
            msisdn=_frozen(np.array([number for number, _ in numbers], dtype=np.int64)),
            profile=_frozen(np.arange(1, len(numbers) + 1, dtype=np.int64)),
            plan=_frozen(
                np.array(
                    [-1 if p is None else self.plan_ids.get(p.plan, -2) for p in rows], np.int64
                )
            ),
            home=_frozen(
                np.array(
                    [
                        -2 if p is None or not p.home_area else numbering.area_index(p.home_area)
                        for p in rows
                    ],
                    dtype=np.int64,
                )
            ),
            package_bits=_frozen(
                np.array([self._package_bits(p.packages if p else ()) for p in rows], np.int64)
            ),
            package_unknown=_frozen(
                np.array(
                    [
                        any(n not in self.package_names for n in (p.packages if p else ()))
                        for p in rows
                    ],
                    dtype=np.bool_,
                )
            ),
            registered=_frozen(np.array([p is not None and p.registered for p in rows], np.bool_)),
        )
        if not subscribers:
            self._default_profiles[default_plan] = profiles
        return profiles

    def _case(self, key: int) -> CallCase:
        """The call case a key stands for (the inverse of batch_kernels._key)."""
        rest, flags = divmod(key, k.FLAG_STATES)
        rest, roaming = divmod(rest, len(ROAMINGS))
        rest, group = divmod(rest, len(self.group_region))
        rest, destination = divmod(rest, len(DESTINATIONS))
        rest, dial = divmod(rest, len(DIALS))
        rest, leg_kind = divmod(rest, k.LEG_KINDS)
        version, plan = divmod(rest, len(self.plans))
        leg, forward_kind = LEG_KINDS[leg_kind]
        target = None if leg is Leg.TERMINATING else DESTINATIONS[destination]
        return CallCase(
            version=self.versions[version],
            plan=self.plans[plan],
            leg=leg,
            forward_kind=forward_kind,
            dial=DIALS[dial],
            destination=target,
            region=self.group_region[group] if target in FOREIGN else None,
            roaming=ROAMINGS[roaming],
            busy=bool(flags & k.BUSY),
            night_free=bool(flags & k.NIGHT_FREE),
            target_home=bool(flags & k.TARGET_HOME),
            target_visited=bool(flags & k.TARGET_VISITED),
            target_on_net=bool(flags & k.TARGET_ON_NET),
        )

    def _price(self, keys: npt.NDArray[np.int64]) -> None:
        """Price new keys once each through the per-call path's `Rater.pricing`."""
        first = len(self.prices.rates)
        rates = np.zeros((first + len(keys), k.RATE_FIELDS), dtype=np.int64)
        rates[:first] = self.prices.rates
        for row, key in enumerate(keys.tolist(), start=first):
            self.prices.row[key] = row
            rates[row] = self._rates(self.rater.pricing(self._case(key)))
        self.prices = self.prices._replace(rates=rates)

    @staticmethod
    def _rates(pricing: Pricing) -> list[int]:
        """A key's row of Prices.rates."""
        totals = [0] * k.RATE_FIELDS
        if pricing.rejection is not None:
            totals[k.REJECTION] = REASON_CODES.index(pricing.rejection)
            return totals
        totals[k.FREE_MAX_S] = pricing.short_call_max_s
        totals[k.REJECTION] = -1
        for component in pricing.components:
            if component.unit_s not in (PER_6S, PER_MIN):
                raise ValueError(f"unit of {component.unit_s} s is not 6 s or 60 s")
            per_6s = component.unit_s == PER_6S
            if component.short_call_free:
                totals[k.FREE_6S if per_6s else k.FREE_60S] += component.rate_fen
            else:
                totals[k.RATE_6S if per_6s else k.RATE_60S] += component.rate_fen
        return totals


def rate_batch(
    data: pa.Table | pa.RecordBatch,
    rater: Rater,
    *,
    subscribers: Mapping[str, SubscriberProfile] | None = None,
    default_plan: str | None = None,
    require_id: bool = False,
) -> pa.Table:
    """Rate SPEC §3.1 columns; for many batches keep one `BatchRater` (it caches prices)."""
    return BatchRater(rater).rate(
        data, subscribers=subscribers, default_plan=default_plan, require_id=require_id
    )
