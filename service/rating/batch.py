"""The batch path: whole columns of CDRs -> the same ratings as the per-call path, vectorized.

Every row is reduced with numpy to the facts `Rater.case_of` derives (version, plan, leg,
dial, destination, foreign tier group, roaming, window and forward-target bits), packed into
one integer case key. The price of each key that occurs is asked once from the same
`Rater.pricing` the per-call path uses, and stored as per-unit rate totals; the charge is
then `r6 * ceil(d / 6) + r60 * ceil(d / 60)` plus the short-call-free parts when
`d > short_call_max_s`, which equals `pricing.charge_fen` because every component is rounded
on its own to units of its own length. Rejections follow the per-call path's order of checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from service.rating.cdr import CHINA_PREFIXES, MAX_DURATION_S, MAX_ID_CHARS, MAX_NAME_CHARS
from service.rating.classify import (
    HMT_CODES,
    IP_PREFIX_LEN,
    MAX_E164_DIGITS,
    MAX_NUMBER_CHARS,
    MIN_FOREIGN_NATIONAL_DIGITS,
    MOBILE_LEN,
    NANP_NATIONAL_DIGITS,
)
from service.rating.numbering import (
    HMT_REGIONS,
    MOBILE_PREFIX_FIRST,
    NO_INDEX,
    NON_GEOGRAPHIC_REGION,
    SATELLITE_CODES,
    NumberingPlan,
)
from service.rating.pricing import (
    PER_6S,
    PER_MIN,
    CallCase,
    Destination,
    Dial,
    ForwardKind,
    Leg,
    Roaming,
)
from service.rating.rejections import REASON_CODES
from service.rating.scalar import NIGHT_PACKAGE, Rater, SubscriberProfile
from service.rating.tariff import SECONDS_PER_DAY, seconds_of_day

I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Bytes2D = npt.NDArray[np.uint8]

INPUT_COLUMNS = (
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
OUTPUT_COLUMNS = ("charge_fen", "call_class", "dial", "roaming", "tariff", "reason")

CALL_CLASSES = (
    "local",
    "domestic_ld",
    "hmt",
    "international",
    "satellite",
    "special",
    "incoming",
    "forward",
)
DESTINATIONS = tuple(Destination)  # index order is the key's destination digit
DIALS = tuple(Dial)
ROAMINGS = tuple(Roaming)
# Key digit for leg and forward kind together.
LEG_KINDS: tuple[tuple[Leg, ForwardKind | None], ...] = (
    (Leg.ORIGINATING, None),
    (Leg.TERMINATING, None),
    (Leg.FORWARDED, ForwardKind.UNCONDITIONAL),
    (Leg.FORWARDED, ForwardKind.CONDITIONAL),
)
BUSY, NIGHT_FREE, TARGET_HOME, TARGET_VISITED, TARGET_ON_NET = 1, 2, 4, 8, 16
FLAG_STATES = 32

START_WIDTH = 35  # 2010-03-01T10:00:00.123456789+08:00
CALLER_WIDTH = 15  # 0086 + 11 digits
DEFAULT_OFFSET_S = 8 * 3600  # SPEC §1: a timestamp without offset is +08:00
MINUTES_PER_DAY = 1440
_REASON_INDEX = {code: index for index, code in enumerate(REASON_CODES)}
_ZERO, _NINE = ord("0"), ord("9")


def _code(name: str) -> int:
    return _REASON_INDEX[name]


@dataclass(frozen=True, slots=True)
class _Text:
    """A string column as a padded byte matrix (ASCII rows that fit only) and its facts."""

    chars: Bytes2D  # (n, width); rows that are null, non-ASCII or too wide are blank
    length: I64  # length in code points (0 for null)
    present: Bools  # not null
    is_text: bool  # the column holds strings at all
    ascii: Bools


def _column(data: pa.Table | pa.RecordBatch, name: str) -> pa.Array:
    if name not in data.column_names:
        return pa.nulls(data.num_rows)
    column = data.column(name)
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def _np_bool(array: pa.Array) -> Bools:
    return np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.bool_)


def _text(array: pa.Array, cap: int, *, min_width: int = 1) -> _Text:
    """The column as a byte matrix as wide as its longest ASCII value up to `cap`."""
    n = len(array)
    present = _np_bool(array.is_valid())
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        blank = np.full((n, min_width), ord(" "), dtype=np.uint8)
        zeros = np.zeros(n, dtype=np.int64)
        return _Text(blank, zeros, present, False, np.zeros(n, dtype=np.bool_))
    if pa.types.is_large_string(array.type):
        array = array.cast(pa.string())
    length = np.asarray(pc.utf8_length(array).fill_null(0).to_numpy(), dtype=np.int64)
    ascii_rows = _np_bool(pc.string_is_ascii(array))
    fits = ascii_rows & (length <= cap)
    widest = int(length.max(where=fits, initial=0)) if n else 0
    chars = _fixed_width(array, fits, length, max(widest, min_width))
    return _Text(chars, length, present, True, ascii_rows)


def _fixed_width(array: pa.Array, fits: Bools, length: I64, width: int) -> Bytes2D:
    """Rows as an (n, width) byte matrix padded with spaces; rows that do not fit are blank."""
    n = len(array)
    if n == 0:
        return np.zeros((0, width), dtype=np.uint8)
    if array.null_count == 0 and bool(fits.all()) and bool((length == width).all()):
        # Common case (callers, timestamps of one format): the data buffer already is the matrix.
        offsets = np.frombuffer(
            array.buffers()[1], dtype=np.int32, count=n + 1, offset=array.offset * 4
        )
        data = np.frombuffer(array.buffers()[2], dtype=np.uint8)
        base = int(offsets[0])
        return data[base : base + n * width].reshape(n, width)
    cleaned = pc.if_else(pa.array(fits), array, "")
    padded_text = pc.utf8_rpad(cleaned, width=width, padding=" ").cast(pa.binary(width))
    raw = np.frombuffer(padded_text.buffers()[1], dtype=np.uint8)
    return raw[padded_text.offset * width : (padded_text.offset + n) * width].reshape(n, width)


class _Digits:
    """Per-row reads of a byte matrix at per-row positions.

    A position past a row's end reads padding or a neighbour's byte, never out of bounds
    (`take(mode="clip")`): every such read is masked by a length check of the caller.
    """

    def __init__(self, chars: Bytes2D) -> None:
        self.chars = chars
        self.flat = chars.reshape(-1)
        self.width = chars.shape[1]
        self.base = np.arange(chars.shape[0], dtype=np.int64) * self.width

    def char(self, position: I64 | int) -> npt.NDArray[np.uint8]:
        """Byte at a per-row position."""
        if isinstance(position, int):
            return self.chars[:, min(max(position, 0), self.width - 1)]
        byte: npt.NDArray[np.uint8] = self.flat.take(self.base + position, mode="clip")
        return byte

    def digit(self, position: I64 | int) -> I64:
        """Digit value at a per-row position; non-digits give values outside 0-9."""
        return self.char(position).astype(np.int64) - _ZERO

    def number(self, position: I64 | int, count: int) -> I64:
        """Decimal value of `count` digits from a per-row position (garbage for non-digits)."""
        value = self.digit(position)
        for offset in range(1, count):
            value = value * 10 + self.digit(position + offset)
        return value


def _non_digits(chars: Bytes2D, length: I64) -> I64:
    """Non-digit characters within each row's length (padding is a space, a non-digit)."""
    non_digit = (chars - np.uint8(_ZERO)) > 9
    padding: I64 = chars.shape[1] - length
    count: I64 = np.count_nonzero(non_digit, axis=1).astype(np.int64) - padding
    return count


def _starts_with(chars: Bytes2D, prefix: str) -> Bools:
    """Rows whose first bytes are `prefix` (column by column: cheaper than a row reduce)."""
    match: Bools = chars[:, 0] == ord(prefix[0])
    for position, char in enumerate(prefix[1:], start=1):
        match &= chars[:, position] == ord(char)
    return match


def _in_window(second: I64, start: int, until: int) -> Bools:
    if start <= until:
        return (second >= start) & (second < until)
    return (second >= start) | (second < until)


class _Rejections:
    """The first rejection of each row wins, as in the per-call path's order of checks."""

    def __init__(self, n: int) -> None:
        self.code = np.full(n, -1, dtype=np.int16)

    def add(self, mask: Bools, name: str) -> None:
        """Reject rows in `mask` that no earlier check rejected."""
        self.code[mask & (self.code < 0)] = _code(name)

    @property
    def ok(self) -> Bools:
        """Rows not rejected so far."""
        return self.code < 0


@dataclass(frozen=True, slots=True)
class _Names:
    """A low-cardinality string column as indices into its distinct values (-1 for null)."""

    index: I64
    values: list[str]


def _names(array: pa.Array) -> _Names:
    if len(array) == 0 or array.null_count == len(array):
        return _Names(np.full(len(array), -1, dtype=np.int64), [])
    encoded = pc.dictionary_encode(array.cast(pa.string()))
    index = np.asarray(encoded.indices.fill_null(-1).to_numpy(), dtype=np.int64)
    return _Names(index, [str(v) for v in encoded.dictionary.to_pylist()])


def _lookup(names: _Names, table: dict[str, int], missing: int) -> I64:
    mapped = np.array([table.get(v, missing) for v in names.values] + [missing], dtype=np.int64)
    return mapped[names.index]  # index -1 (null) reads the trailing `missing`


class BatchRater:
    """Vectorized rating against one `Rater`'s tariff book and numbering plan."""

    def __init__(self, rater: Rater) -> None:
        self.rater = rater
        book, numbering = rater.book, rater.numbering
        self.numbering: NumberingPlan = numbering
        self.versions = [t.version for t in book.tariffs]
        self.starts = np.array(book.starts, dtype=np.int64)
        self.untils = np.array(
            [
                t.until_epoch_s if t.until_epoch_s is not None else np.iinfo(np.int64).max
                for t in book.tariffs
            ],
            dtype=np.int64,
        )
        self.offsets = np.array([t.utc_offset_s for t in book.tariffs], dtype=np.int64)
        self.plans = sorted({plan for t in book.tariffs for plan in t.plans})
        self.plan_ids = {plan: i for i, plan in enumerate(self.plans)}
        self.plan_in_version = np.array(
            [[plan in t.plans for plan in self.plans] for t in book.tariffs], dtype=np.bool_
        )
        self.busy_windows = [
            (seconds_of_day(t.ip12593.busy_from), seconds_of_day(t.ip12593.busy_until))
            for t in book.tariffs
        ]
        self.night_windows = [
            (seconds_of_day(p.free_from), seconds_of_day(p.free_until)) if p else None
            for t in book.tariffs
            for p in (t.packages.get(NIGHT_PACKAGE),)
        ]
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
        self.region_group = np.array(groups, dtype=np.int64)
        self.satellite_region = len(region_names) - 1
        self.region_is_hmt = np.array([r in HMT_REGIONS for r in region_names], dtype=np.bool_)
        self.split_code = np.zeros(1000, dtype=np.bool_)
        self.split_code[list(numbering.split_codes)] = True
        self.area_province = numbering.area_province.astype(np.int64)
        self.key_space = (
            len(self.versions)
            * len(self.plans)
            * len(LEG_KINDS)
            * len(DIALS)
            * len(DESTINATIONS)
            * len(self.group_region)
            * len(ROAMINGS)
            * FLAG_STATES
        )
        self._known = np.zeros(self.key_space, dtype=np.bool_)
        # Per key: rate totals of 6 s and 60 s components, the same for the R8-waivable ones,
        # the short-call limit and the pricing rejection (-1 = priced).
        self._rates = np.zeros((self.key_space, 5), dtype=np.int64)
        self._rejection = np.full(self.key_space, -1, dtype=np.int16)

    def rate(
        self,
        data: pa.Table | pa.RecordBatch,
        *,
        subscribers: Mapping[str, SubscriberProfile] | None = None,
        default_plan: str | None = None,
        require_id: bool = False,
    ) -> pa.Table:
        """Input columns unchanged plus charge_fen, call_class, dial, roaming, tariff, reason."""
        n = data.num_rows
        rows = _Rows(self, data, n, subscribers, default_plan, require_id)
        key, reject = rows.classify()
        ok = reject.ok
        self._price_new_keys(key[ok])
        priced_rejection = self._rejection[np.where(ok, key, 0)]
        reject.code[ok] = priced_rejection[ok]
        ok = reject.ok
        charge = self._charge(np.where(ok, key, 0), rows.duration)
        table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
        clashes = [name for name in OUTPUT_COLUMNS if name in table.column_names]
        if clashes:
            table = table.drop_columns(clashes)
        version = key // (self.key_space // len(self.versions))
        fields = self._decode(key)
        outputs = {
            "charge_fen": pa.array(charge, type=pa.int64(), mask=~ok),
            "call_class": _dictionary(fields["call_class"], ok, CALL_CLASSES),
            "dial": _dictionary(fields["dial"], ok, [d.value for d in DIALS]),
            "roaming": _dictionary(fields["roaming"], ok, [r.value for r in ROAMINGS]),
            "tariff": _dictionary(version, ok, self.versions),
            "reason": _dictionary(reject.code.astype(np.int64), ~ok, REASON_CODES),
        }
        for name, column in outputs.items():
            table = table.append_column(name, column)
        return table

    def _decode(self, key: I64) -> dict[str, I64]:
        rest, flags = np.divmod(key, FLAG_STATES)
        rest, roaming = np.divmod(rest, len(ROAMINGS))
        rest, _group = np.divmod(rest, len(self.group_region))
        rest, destination = np.divmod(rest, len(DESTINATIONS))
        rest, dial = np.divmod(rest, len(DIALS))
        rest, leg_kind = np.divmod(rest, len(LEG_KINDS))
        del flags, _group
        call_class = np.where(
            leg_kind == 0,
            destination,
            np.where(leg_kind == 1, CALL_CLASSES.index("incoming"), CALL_CLASSES.index("forward")),
        )
        return {"call_class": call_class, "dial": dial, "roaming": roaming}

    def _case(self, key: int) -> CallCase:
        rest, flags = divmod(key, FLAG_STATES)
        rest, roaming = divmod(rest, len(ROAMINGS))
        rest, group = divmod(rest, len(self.group_region))
        rest, destination = divmod(rest, len(DESTINATIONS))
        rest, dial = divmod(rest, len(DIALS))
        rest, leg_kind = divmod(rest, len(LEG_KINDS))
        version, plan = divmod(rest, len(self.plans))
        leg, forward_kind = LEG_KINDS[leg_kind]
        target = None if leg is Leg.TERMINATING else DESTINATIONS[destination]
        foreign = target in (Destination.HMT, Destination.INTERNATIONAL, Destination.SATELLITE)
        return CallCase(
            version=self.versions[version],
            plan=self.plans[plan],
            leg=leg,
            forward_kind=forward_kind,
            dial=DIALS[dial],
            destination=target,
            region=self.group_region[group] if foreign else None,
            roaming=ROAMINGS[roaming],
            busy=bool(flags & BUSY),
            night_free=bool(flags & NIGHT_FREE),
            target_home=bool(flags & TARGET_HOME),
            target_visited=bool(flags & TARGET_VISITED),
            target_on_net=bool(flags & TARGET_ON_NET),
        )

    def _price_new_keys(self, keys: I64) -> None:
        if len(keys) == 0:
            return
        present = np.bincount(keys, minlength=self.key_space).astype(np.bool_)
        for key in np.flatnonzero(present & ~self._known).tolist():
            pricing = self.rater.pricing(self._case(key))
            self._known[key] = True
            if pricing.rejection is not None:
                self._rejection[key] = _code(pricing.rejection)
                continue
            totals = [0, 0, 0, 0, pricing.short_call_max_s]
            for component in pricing.components:
                if component.unit_s not in (PER_6S, PER_MIN):
                    raise ValueError(f"unit of {component.unit_s} s is not 6 s or 60 s")
                slot = (0 if component.unit_s == PER_6S else 1) + (
                    2 if component.short_call_free else 0
                )
                totals[slot] += component.rate_fen
            self._rates[key] = totals

    def _charge(self, key: I64, duration: I64) -> I64:
        rates = self._rates[key]
        per_6s = (duration + (PER_6S - 1)) // PER_6S
        per_min = (duration + (PER_MIN - 1)) // PER_MIN
        charge: I64 = rates[:, 0] * per_6s + rates[:, 1] * per_min
        waivable = rates[:, 2] * per_6s + rates[:, 3] * per_min
        return charge + np.where(duration > rates[:, 4], waivable, 0)


def _dictionary(
    index: I64, valid: Bools, values: tuple[str, ...] | list[str]
) -> pa.DictionaryArray:
    indices = pa.array(np.where(valid, index, 0).astype(np.int16), mask=~valid)
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(values), type=pa.string()))


class _Rows:
    """One batch's columns, reduced to case keys in the per-call path's order of checks."""

    def __init__(
        self,
        rater: BatchRater,
        data: pa.Table | pa.RecordBatch,
        n: int,
        subscribers: Mapping[str, SubscriberProfile] | None,
        default_plan: str | None,
        require_id: bool,
    ) -> None:
        self.r = rater
        self.data = data
        self.n = n
        self.subscribers = subscribers
        self.default_plan = default_plan
        self.require_id = require_id
        self.duration = np.zeros(n, dtype=np.int64)

    # -- parse_cdr ---------------------------------------------------------------------------

    def classify(self) -> tuple[I64, _Rejections]:
        """Case key of every row and the rejection of the rows that have one."""
        n, data = self.n, self.data
        reject = _Rejections(n)
        if self.require_id:
            ids = _column(data, "id")
            if pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type):
                id_len = np.asarray(pc.utf8_length(ids).fill_null(0).to_numpy(), dtype=np.int64)
                reject.add((id_len < 1) | (id_len > MAX_ID_CHARS), "id.invalid")
            else:
                reject.add(np.ones(n, dtype=np.bool_), "id.invalid")
        caller_text = _text(_column(data, "caller"), CALLER_WIDTH, min_width=4)
        reject.add(~caller_text.present, "caller.missing")
        caller_prefix = self._caller(caller_text, reject)
        callee = _text(_column(data, "callee"), MAX_NUMBER_CHARS, min_width=IP_PREFIX_LEN)
        reject.add(~callee.present, "callee.missing")
        reject.add(~np.bool_(callee.is_text) & callee.present, "callee.invalid_characters")
        epoch = self._start(reject)
        self._duration(reject)
        leg_kind = self._leg(reject)
        visited_names = _names(_column(data, "visited_area"))
        visited_parse, visited_area = self._visited(visited_names)
        for code in np.unique(visited_parse[reject.ok & (visited_parse >= 0)]).tolist():
            reject.add(visited_parse == code, REASON_CODES[code])
        plan_column = _column(data, "plan")
        plan_names = _names(plan_column)
        plan_bad = np.array(
            [not 0 < len(v) <= MAX_NAME_CHARS for v in plan_names.values] + [False], dtype=np.bool_
        )[plan_names.index]
        if not (pa.types.is_string(plan_column.type) or pa.types.is_null(plan_column.type)):
            plan_bad = plan_names.index >= 0  # not a string at all
        reject.add(plan_bad, "plan.unknown")
        package_index, package_present = self._packages(reject)

        # -- Rater.case_of ----------------------------------------------------------------------
        r = self.r
        version = np.searchsorted(r.starts, epoch, side="right") - 1
        in_force = (version >= 0) & (epoch < r.untils[np.maximum(version, 0)])
        reject.add(~in_force, "start.no_tariff")
        version = np.where(in_force, version, 0)
        profile, profiles = self._profiles(caller_prefix)
        plan = _lookup(plan_names, r.plan_ids, -1)
        plan_missing = plan_names.index < 0
        profile_plan = np.array(
            [r.plan_ids.get(p.plan, -2) if p else -1 for p in profiles], dtype=np.int64
        )
        plan = np.where(plan_missing, profile_plan[profile], plan)
        reject.add(plan_missing & (profile_plan[profile] == -1), "plan.missing")
        known_plan = (plan >= 0) & r.plan_in_version[version, np.maximum(plan, 0)]
        reject.add(~known_plan, "plan.unknown")
        plan = np.maximum(plan, 0)
        package_unknown, night_package = self._package_facts(
            package_index, package_present, profile, profiles, version
        )
        reject.add(package_unknown, "packages.unknown")
        home = self._home(caller_prefix, profile, profiles)
        reject.add(home == NO_INDEX, "caller.unknown_number_range")
        home = np.maximum(home, 0)
        for code in np.unique(visited_area[reject.ok & (visited_area < -1)]).tolist():
            reject.add(visited_area == code, REASON_CODES[-code - 2])
        visited = np.where(visited_area >= 0, visited_area, NO_INDEX)
        roaming_away = (visited >= 0) & (visited != home)
        same_province = r.area_province[np.maximum(visited, 0)] == r.area_province[home]
        roaming = np.where(roaming_away, np.where(same_province, 1, 2), 0)
        current = np.where(visited >= 0, visited, home)
        terminating = leg_kind == 1
        forwarded = leg_kind >= 2
        self._terminating_syntax(callee, terminating, reject)
        target = self._callee(callee, ~terminating, reject)

        area = np.where(target.area == NO_INDEX, current, target.area)
        foreign = target.foreign >= 0
        domestic_target = ~foreign & ~target.special
        destination = np.where(
            target.special,
            DESTINATIONS.index(Destination.SPECIAL),
            np.where(
                foreign,
                target.foreign,
                np.where(
                    area == current,
                    DESTINATIONS.index(Destination.LOCAL),
                    DESTINATIONS.index(Destination.DOMESTIC_LD),
                ),
            ),
        )
        domestic_ld = destination == DESTINATIONS.index(Destination.DOMESTIC_LD)
        second = (epoch + r.offsets[version]) % SECONDS_PER_DAY
        busy = np.zeros(n, dtype=np.bool_)
        night = np.zeros(n, dtype=np.bool_)
        for index, (busy_from, busy_until) in enumerate(r.busy_windows):
            in_version = version == index
            busy |= in_version & _in_window(second, busy_from, busy_until)
            window = r.night_windows[index]
            if window is not None:
                night |= in_version & _in_window(second, *window)
        busy &= (target.dial == DIALS.index(Dial.IP12593)) & domestic_ld
        night &= (
            ~forwarded
            & (target.dial == DIALS.index(Dial.DIRECT))
            & domestic_ld
            & (roaming == 0)
            & night_package
        )
        flags = (
            busy * BUSY
            + night * NIGHT_FREE
            + (forwarded & domestic_target & (area == home)) * TARGET_HOME
            + (forwarded & domestic_target & (visited >= 0) & (area == visited)) * TARGET_VISITED
            + (forwarded & target.on_net) * TARGET_ON_NET
        )
        group = np.where(foreign, r.region_group[target.region], 0)
        dial = target.dial
        # A terminating leg's case has only version, plan, leg and roaming.
        flags = np.where(terminating, 0, flags)
        dial = np.where(terminating, 0, dial)
        destination = np.where(terminating, 0, destination)
        group = np.where(terminating, 0, group)
        key = version
        for digit, size in (
            (plan, len(r.plans)),
            (leg_kind, len(LEG_KINDS)),
            (dial, len(DIALS)),
            (destination, len(DESTINATIONS)),
            (group, len(r.group_region)),
            (roaming, len(ROAMINGS)),
            (flags, FLAG_STATES),
        ):
            key = key * size + digit
        return np.where(reject.ok, key, 0).astype(np.int64), reject

    def _caller(self, text: _Text, reject: _Rejections) -> I64:
        """normalize_msisdn -> the 7-digit number-range prefix (0 where invalid)."""
        chars, length = text.chars, text.length
        skip = np.zeros(self.n, dtype=np.int64)
        for prefix in CHINA_PREFIXES:
            matches = (length == len(prefix) + MOBILE_LEN) & _starts_with(chars, prefix)
            skip = np.where((skip == 0) & matches, len(prefix), skip)
        digits = _Digits(chars)
        non_digit = _non_digits(chars, length)
        # Non-digits allowed only inside the stripped prefix ("+" of "+86").
        prefix_non_digit = np.where(skip == 3, 1, 0)
        valid = (
            text.is_text
            & text.ascii
            & (length - skip == MOBILE_LEN)
            & (non_digit == prefix_non_digit)
            & (digits.digit(skip) == 1)
        )
        reject.add(text.present & ~valid, "caller.invalid")
        return np.where(valid, digits.number(skip, 7), 0)

    def _start(self, reject: _Rejections) -> I64:
        """parse_start, vectorized: RFC 3339 with seconds, optional fraction and offset."""
        column = _column(self.data, "start")
        text = _text(column, START_WIDTH)
        reject.add(~text.present, "start.missing")
        if pa.types.is_timestamp(column.type):
            raise TypeError("start must be RFC 3339 text, as in SPEC §3.1")
        length = text.length
        digits = _Digits(text.chars)

        def digit(position: int) -> npt.NDArray[np.int16]:
            return digits.char(position).astype(np.int16) - np.int16(_ZERO)

        def is_digit(position: int) -> Bools:
            digit_byte: Bools = (digits.char(position) - np.uint8(_ZERO)) <= 9
            return digit_byte

        def letter(position: int | I64, upper: str) -> Bools:
            # RFC 3339 letters may be lower case (parse_start upper-cases the text).
            char = digits.char(position)
            either: Bools = (char == ord(upper)) | (char == ord(upper.lower()))
            return either

        shape = is_digit(0)
        for position in (1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18):
            shape &= is_digit(position)
        shape &= (digits.char(4) == ord("-")) & (digits.char(7) == ord("-"))
        shape &= letter(10, "T") | (digits.char(10) == ord(" "))
        shape &= (digits.char(13) == ord(":")) & (digits.char(16) == ord(":"))
        has_fraction = digits.char(19) == ord(".")
        fraction = np.zeros(self.n, dtype=np.int64)
        if has_fraction.any():
            run = has_fraction.copy()
            for position in range(20, 30):
                run &= is_digit(position) & (position < length)
                fraction += run
        shape &= ~has_fraction | ((fraction >= 1) & (fraction <= 9))
        zone = 19 + np.where(has_fraction, 1 + fraction, 0)
        zone_char = digits.char(zone)
        no_zone = length == zone
        utc = (length == zone + 1) & letter(zone, "Z")
        zone_digits = [digits.digit(zone + k) for k in (1, 2, 4, 5)]
        signed = (
            (length == zone + 6)
            & ((zone_char == ord("+")) | (zone_char == ord("-")))
            & (digits.char(zone + 3) == ord(":"))
        )
        for value in zone_digits:
            signed &= (value >= 0) & (value <= 9)
        shape &= no_zone | utc | signed
        year = digit(0).astype(np.int64) * 1000 + digit(1) * 100 + digit(2) * 10 + digit(3)
        month = digit(5) * 10 + digit(6)
        day = digit(8) * 10 + digit(9)
        hour = (digit(11) * 10 + digit(12)).astype(np.int64)
        minute = (digit(14) * 10 + digit(15)).astype(np.int64)
        second = (digit(17) * 10 + digit(18)).astype(np.int64)
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        month_days = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
        last_day = month_days.take(month - 1, mode="clip") + (leap & (month == 2))
        offset_minutes = (zone_digits[0] * 10 + zone_digits[1]) * 60 + (
            zone_digits[2] * 10 + zone_digits[3]
        )
        valid = (
            text.is_text
            & text.ascii
            & (length <= START_WIDTH)
            & shape
            & (year >= 1)
            & (month >= 1)
            & (month <= 12)
            & (day >= 1)
            & (day <= last_day)
            & (hour <= 23)
            & (minute <= 59)
            & (second <= 59)
            & (~signed | (offset_minutes < MINUTES_PER_DAY))
        )
        reject.add(text.present & ~valid, "start.invalid")
        sign = np.where(zone_char == ord("-"), -1, 1)
        offset_s = np.where(no_zone, DEFAULT_OFFSET_S, np.where(utc, 0, sign * offset_minutes * 60))
        days = _days_from_civil(
            np.where(valid, year, 1970),
            np.where(valid, month, 1).astype(np.int64),
            np.where(valid, day, 1).astype(np.int64),
        )
        epoch: I64 = days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second - offset_s
        return epoch

    def _duration(self, reject: _Rejections) -> None:
        column = _column(self.data, "duration_s")
        present = _np_bool(column.is_valid())
        reject.add(~present, "duration_s.missing")
        if pa.types.is_integer(column.type):
            values = column.fill_null(0).to_numpy()
            valid = (values >= 0) & (values <= MAX_DURATION_S)
            self.duration = np.where(valid, values, 0).astype(np.int64)
        elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            # Text formats (CSV) carry no types: a duration there is decimal digits.
            valid = _np_bool(pc.match_substring_regex(column, r"^[0-9]{1,6}$"))
            numbers = pc.if_else(pa.array(valid), column, "0").cast(pa.int64())
            values = np.asarray(numbers.to_numpy(), dtype=np.int64)
            valid &= values <= MAX_DURATION_S
            self.duration = np.where(valid, values, 0)
        else:
            valid = np.zeros(self.n, dtype=np.bool_)
        reject.add(present & ~valid, "duration_s.invalid")

    def _leg(self, reject: _Rejections) -> I64:
        legs = _names(_column(self.data, "type"))
        leg = _lookup(legs, {leg.value: i for i, leg in enumerate(Leg)}, -2)
        leg = np.where(legs.index < 0, 0, leg)
        reject.add(leg == -2, "type.invalid")
        kinds = _names(_column(self.data, "forward_kind"))
        kind = _lookup(kinds, {k.value: i for i, k in enumerate(ForwardKind)}, -2)
        forwarded = leg == list(Leg).index(Leg.FORWARDED)
        reject.add(forwarded & (kinds.index < 0), "forward_kind.missing")
        reject.add(forwarded & (kind == -2), "forward_kind.invalid")
        leg_kind = np.where(forwarded, 2 + np.maximum(kind, 0), np.maximum(leg, 0))
        return leg_kind.astype(np.int64)

    def _visited(self, names: _Names) -> tuple[I64, I64]:
        """Per row: the parse rejection (-1 none) and the area (>= 0), none (-1) or -2 - code."""
        parse_codes, areas = [], []
        numbering = self.r.numbering
        for value in names.values:
            parse, area = -1, NO_INDEX
            code = value
            if value == "":
                pass
            elif code.startswith(("+", "00")):
                parse = _code("visited_area.international_roaming")
            else:
                code = code.removeprefix("0")
                if not (code.isascii() and code.isdigit()) or not 2 <= len(code) <= 3:
                    parse = _code("visited_area.invalid")
                elif code in HMT_CODES:
                    area = -2 - _code("visited_area.international_roaming")
                else:
                    area = numbering.area_index(code)
                    if area == NO_INDEX:
                        area = -2 - _code("visited_area.unknown_area_code")
            parse_codes.append(parse)
            areas.append(area)
        parse_array = np.array([*parse_codes, -1], dtype=np.int64)
        area_array = np.array([*areas, NO_INDEX], dtype=np.int64)
        return parse_array[names.index], area_array[names.index]

    def _packages(self, reject: _Rejections) -> tuple[I64, Bools]:
        """Per row the package-set index into self.package_sets and whether the list was given."""
        column = _column(self.data, "packages")
        present = _np_bool(column.is_valid())
        self.package_sets: list[tuple[str, ...]] = [()]
        if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
            reject.add(present, "packages.invalid")
            return np.zeros(self.n, dtype=np.int64), present
        # Distinct lists are few: encode each row's list as one string and look them up.
        flat = pc.list_flatten(column)
        parents = np.asarray(pc.list_parent_indices(column).to_numpy(), dtype=np.int64)
        item_names = (
            _names(flat)
            if pa.types.is_string(flat.type) or pa.types.is_large_string(flat.type)
            else None
        )
        if item_names is None:
            bad_rows = np.zeros(self.n, dtype=np.bool_)
            bad_rows[parents] = True
            reject.add(present & bad_rows, "packages.invalid")
            return np.zeros(self.n, dtype=np.int64), present
        bad_item = np.array(
            [not 0 < len(v) <= MAX_NAME_CHARS for v in item_names.values] + [True], dtype=np.bool_
        )[item_names.index]
        reject.add(
            present & (np.bincount(parents, weights=bad_item, minlength=self.n) > 0),
            "packages.invalid",
        )
        # A row's package set as a bit mask over the distinct names (names are few).
        count = len(item_names.values)
        if count > 62:
            raise ValueError("more than 62 distinct package names in one batch")
        bits = np.where(item_names.index >= 0, np.left_shift(1, np.maximum(item_names.index, 0)), 0)
        row_bits = np.zeros(self.n, dtype=np.int64)
        np.bitwise_or.at(row_bits, parents, bits.astype(np.int64))
        # Sets are bit masks below 2**count: a dense table maps each to its position.
        unique_bits = np.flatnonzero(np.bincount(row_bits, minlength=1))
        if count > 20:
            unique_bits, row_set = np.unique(row_bits, return_inverse=True)
        else:
            position = np.zeros(1 << count, dtype=np.int64)
            position[unique_bits] = np.arange(len(unique_bits))
            row_set = position[row_bits]
        self.package_sets = [
            tuple(item_names.values[i] for i in range(count) if int(mask) >> i & 1)
            for mask in unique_bits.tolist()
        ]
        return row_set.astype(np.int64), present

    def _profiles(self, caller_prefix: I64) -> tuple[I64, list[SubscriberProfile | None]]:
        """Per row the index of the caller's registry profile (0 = none) and the profiles."""
        profiles: list[SubscriberProfile | None] = [
            SubscriberProfile(self.default_plan) if self.default_plan else None
        ]
        if not self.subscribers:
            return np.zeros(self.n, dtype=np.int64), profiles
        numbers = sorted(self.subscribers)
        keys = np.array(
            [int(m) if m.isdigit() and len(m) == MOBILE_LEN else -1 for m in numbers],
            dtype=np.int64,
        )
        profiles.extend(self.subscribers[m] for m in numbers)
        caller = self._caller_number()
        order = np.argsort(keys, kind="stable")
        position = np.searchsorted(keys[order], caller)
        found = np.clip(position, 0, len(keys) - 1)
        hit = keys[order][found] == caller
        return np.where(hit, order[found] + 1, 0).astype(np.int64), profiles

    def _caller_number(self) -> I64:
        text = _text(_column(self.data, "caller"), CALLER_WIDTH, min_width=4)
        skip = np.zeros(self.n, dtype=np.int64)
        for prefix in CHINA_PREFIXES:
            matches = (text.length == len(prefix) + MOBILE_LEN) & _starts_with(text.chars, prefix)
            skip = np.where((skip == 0) & matches, len(prefix), skip)
        return _Digits(text.chars).number(skip, MOBILE_LEN)

    def _package_facts(
        self,
        package_set: I64,
        given: Bools,
        profile: I64,
        profiles: list[SubscriberProfile | None],
        version: I64,
    ) -> tuple[Bools, Bools]:
        """Per row: some package is unknown to the version; the ld_night package is held."""
        tariffs = self.r.rater.book.tariffs
        sets = [*self.package_sets, *((p.packages if p else ()) for p in profiles)]
        unknown = np.array(
            [[any(name not in t.packages for name in s) for s in sets] for t in tariffs],
            dtype=np.bool_,
        )
        night = np.array([NIGHT_PACKAGE in s for s in sets], dtype=np.bool_)
        row_set = np.where(given, package_set, len(self.package_sets) + profile)
        return unknown[version, row_set], night[row_set]

    def _home(
        self, caller_prefix: I64, profile: I64, profiles: list[SubscriberProfile | None]
    ) -> I64:
        numbering = self.r.numbering
        slot = np.clip(caller_prefix - MOBILE_PREFIX_FIRST, 0, len(numbering.mobile_area) - 1)
        from_range = numbering.mobile_area[slot].astype(np.int64)
        registered = np.array(
            [
                -2 if p is None or not p.home_area else numbering.area_index(p.home_area)
                for p in profiles
            ],
            dtype=np.int64,
        )[profile]
        return np.where(registered == -2, from_range, registered)

    def _terminating_syntax(self, callee: _Text, terminating: Bools, reject: _Rejections) -> None:
        """check_number_syntax for terminating legs: digits with at most one leading '+'."""
        length = callee.length
        rows = terminating & reject.ok
        reject.add(rows & (length == 0), "callee.empty")
        reject.add(rows & (length > MAX_NUMBER_CHARS), "callee.too_long")
        non_digit = _non_digits(callee.chars, length)
        plus = callee.chars[:, 0] == ord("+")
        valid = callee.ascii & ((non_digit == 0) | (plus & (non_digit == 1) & (length >= 2)))
        reject.add(rows & ~valid, "callee.invalid_characters")

    def _callee(self, callee: _Text, originating: Bools, reject: _Rejections) -> _Target:
        return _classify_callee(self.r, callee, originating & reject.ok, reject)


@dataclass(frozen=True, slots=True)
class _Target:
    dial: I64
    foreign: I64  # destination index of HMT / INTERNATIONAL / SATELLITE, -1 if domestic
    special: Bools
    area: I64  # NO_INDEX for a bare local number
    on_net: Bools
    region: I64  # index into the rater's region list (satellite last)


def _days_from_civil(year: I64, month: I64, day: I64) -> I64:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year = year - (month <= 2)
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days: I64 = era * 146_097 + day_of_era - 719_468
    return days


def _classify_callee(r: BatchRater, callee: _Text, rows: Bools, reject: _Rejections) -> _Target:
    """classify_callee for the rows in `rows`, each branch a mask (SPEC §4 steps 1-4, 7)."""
    n = len(rows)
    numbering = r.numbering
    chars, length = callee.chars, callee.length
    digits = _Digits(chars)

    def fail(mask: Bools, name: str) -> None:
        reject.add(rows & mask, name)

    fail(length == 0, "callee.empty")
    fail(length > MAX_NUMBER_CHARS, "callee.too_long")
    dial = np.zeros(n, dtype=np.int64)
    for index, dial_kind in enumerate(DIALS):
        if dial_kind is Dial.DIRECT:
            continue
        matches = (length > IP_PREFIX_LEN) & _starts_with(chars, dial_kind.value)
        dial = np.where(matches, index, dial)
    start = np.where(dial > 0, IP_PREFIX_LEN, 0)
    rest_len = length - start
    plus = digits.char(start) == ord("+")
    non_digit = _non_digits(chars, length)
    chars_ok = callee.ascii & (
        (~plus & (non_digit == 0)) | (plus & (non_digit == 1) & (rest_len >= 2))
    )
    fail(~chars_ok, "callee.invalid_characters")
    double_zero = (
        ~plus & (rest_len >= 2) & (digits.digit(start) == 0) & (digits.digit(start + 1) == 0)
    )
    international = plus | double_zero
    intl_start = start + np.where(plus, 1, 2)
    intl_len = length - intl_start
    after_86 = (
        international
        & (intl_len >= 2)
        & (digits.digit(intl_start) == 8)
        & (digits.digit(intl_start + 1) == 6)
    )
    foreign_rows = international & ~after_86

    def is_mobile(position: I64, count: I64) -> Bools:
        second = digits.digit(position + 1)
        mobile: Bools = (
            (count == MOBILE_LEN) & (digits.digit(position) == 1) & (second >= 3) & (second <= 9)
        )
        return mobile

    def is_service(position: I64, count: I64) -> Bools:
        first = digits.digit(position)
        second = digits.digit(position + 1)
        service: Bools = (
            (count >= 3)
            & (count <= 5)
            & ((first == 1) | ((first == 9) & ((second == 5) | (second == 6))))
        )
        return service

    def is_information(position: I64, count: I64) -> Bools:
        third = digits.digit(position + 2)
        information: Bools = (
            (count >= 3)
            & (digits.digit(position) == 1)
            & (digits.digit(position + 1) == 6)
            & ((third == 0) | (third == 8))
        )
        return information

    mobile_at = np.full(n, -1, dtype=np.int64)
    area_at = np.full(n, -1, dtype=np.int64)
    area_len = np.zeros(n, dtype=np.int64)
    bare = np.zeros(n, dtype=np.bool_)
    special = np.zeros(n, dtype=np.bool_)

    # +86 / 0086: a mobile number, or an area code (a first digit 2-9, or 10).
    national = intl_start + 2
    national_len = length - national
    plus86_mobile = after_86 & is_mobile(national, national_len)
    first = digits.digit(national)
    plus86_area = (
        after_86
        & ~plus86_mobile
        & (
            (national_len == 0)  # "" passes `national[:1] in "23456789"`
            | ((first >= 2) & (first <= 9))
            | ((national_len >= 2) & (first == 1) & (digits.digit(national + 1) == 0))
        )
    )
    fail(after_86 & ~plus86_mobile & ~plus86_area, "callee.invalid_plus86")
    mobile_at = np.where(plus86_mobile, national, mobile_at)
    area_at = np.where(plus86_area, national, area_at)
    area_len = np.where(plus86_area, national_len, area_len)

    domestic = ~international
    country_mobile = (
        domestic
        & (rest_len == MOBILE_LEN + 2)
        & (digits.digit(start) == 8)
        & (digits.digit(start + 1) == 6)
        & (digits.digit(start + 2) == 1)
    )
    mobile_at = np.where(country_mobile, start + 2, mobile_at)
    plain = domestic & ~country_mobile
    lead = digits.digit(start)
    trunk = plain & (lead == 0)
    trunk_mobile = trunk & (rest_len == MOBILE_LEN + 1) & is_mobile(start + 1, rest_len - 1)
    mobile_at = np.where(trunk_mobile, start + 1, mobile_at)
    trunk_area = trunk & ~trunk_mobile
    area_at = np.where(trunk_area, start + 1, area_at)
    area_len = np.where(trunk_area, rest_len - 1, area_len)
    no_trunk = plain & ~trunk
    information = no_trunk & is_information(start, rest_len)
    fail(information, "callee.information_line")
    untrunked = no_trunk & ~information
    bare_mobile = untrunked & (rest_len == MOBILE_LEN) & (lead == 1)
    mobile_at = np.where(bare_mobile, start, mobile_at)
    rest = untrunked & ~bare_mobile
    bare = rest & ((rest_len == 7) | (rest_len == 8)) & (lead >= 2) & (lead <= 9)
    special = rest & ~bare & is_service(start, rest_len)
    fail(rest & ~bare & ~special, "callee.invalid_number")

    # Mobile ranges.
    is_mobile_row = mobile_at >= 0
    slot = digits.number(mobile_at, 7) - MOBILE_PREFIX_FIRST
    slot_ok = (slot >= 0) & (slot < len(numbering.mobile_area))
    slot = np.clip(slot, 0, len(numbering.mobile_area) - 1)
    mobile_area = np.where(slot_ok, numbering.mobile_area[slot], NO_INDEX).astype(np.int64)
    on_net = is_mobile_row & slot_ok & numbering.mobile_cmcc[slot]
    fail(is_mobile_row & (mobile_area == NO_INDEX), "callee.unknown_mobile_prefix")

    # Area code + subscriber or service number.
    is_area_row = area_at >= 0
    fail(is_area_row & (area_len < 3), "callee.invalid_number")
    code_area = numbering.area_by_digits.take(digits.number(area_at, 3), mode="clip").astype(
        np.int64
    )
    fail(is_area_row & (code_area == NO_INDEX), "callee.unknown_area_code")
    code_first = digits.digit(area_at)
    code_len = np.where(
        (code_first == 2) | ((code_first == 1) & (digits.digit(area_at + 1) == 0)), 2, 3
    )
    subscriber = area_at + code_len
    subscriber_len = area_len - code_len
    fail(is_area_row & is_information(subscriber, subscriber_len), "callee.information_line")
    sub_first = digits.digit(subscriber)
    ordinary = ((subscriber_len == 7) | (subscriber_len == 8)) & (sub_first >= 2) & (sub_first <= 9)
    fail(
        is_area_row & ~(ordinary | is_service(subscriber, subscriber_len)), "callee.invalid_number"
    )

    # Foreign: country code by its first three digits (zero-padded), then +1 / +7 splits.
    foreign_len = intl_len
    head = np.zeros(n, dtype=np.int64)
    for offset in range(3):
        value = np.where(offset < foreign_len, np.clip(digits.digit(intl_start + offset), 0, 9), 0)
        head = head * 10 + value
    cc_len = np.where(
        foreign_len > 0, numbering.country_code_len.take(head, mode="clip").astype(np.int64), 0
    )
    fail(foreign_rows & ((cc_len == 0) | (foreign_len < cc_len)), "callee.unknown_country_code")
    fail(
        foreign_rows
        & ((foreign_len > MAX_E164_DIGITS) | (foreign_len - cc_len < MIN_FOREIGN_NATIONAL_DIGITS)),
        "callee.invalid_foreign_length",
    )
    country = head // np.power(10, 3 - np.clip(cc_len, 1, 3))
    satellite = foreign_rows & (cc_len == 3) & np.isin(head, [int(c) for c in SATELLITE_CODES])
    split = foreign_rows & ~satellite & r.split_code.take(country, mode="clip")
    fail(
        split & (cc_len == 1) & (country == 1) & (foreign_len - cc_len != NANP_NATIONAL_DIGITS),
        "callee.invalid_foreign_length",
    )
    split_region = numbering.split_region.take(
        country * 1000 + digits.number(intl_start + cc_len, 3), mode="clip"
    ).astype(np.int64)
    fail(split & (split_region == NO_INDEX), "callee.unassigned_nanp_area")
    region = np.where(
        split, split_region, numbering.country_region.take(country, mode="clip").astype(np.int64)
    )
    # classify indexes regions[...] with Python semantics, where -1 is the last region.
    region = np.where(region < 0, region + len(numbering.regions), region)
    region = np.where(satellite, r.satellite_region, region)
    foreign = np.where(
        satellite,
        DESTINATIONS.index(Destination.SATELLITE),
        np.where(
            r.region_is_hmt[region],
            DESTINATIONS.index(Destination.HMT),
            DESTINATIONS.index(Destination.INTERNATIONAL),
        ),
    )
    area = np.where(is_mobile_row, mobile_area, np.where(is_area_row, code_area, NO_INDEX))
    return _Target(
        dial=dial,
        foreign=np.where(foreign_rows, foreign, -1),
        special=special,
        area=np.where(foreign_rows | special | bare, NO_INDEX, area),
        on_net=on_net & ~foreign_rows,
        region=np.where(foreign_rows, region, 0),
    )


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
