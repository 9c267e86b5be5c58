"""Text the column way writes from its columns, each in one numba pass: the rows it COPYs
into PostgreSQL (`cdrs_csv`, `ratings_csv`) and its per-record results (`results`).

Arrow did it before: for the rows, a table built per statement (takes of the names and of
the profile columns, the batch sorted by id) and its CSV writer; for the results, casts and
an element-wise join of eleven pieces. Each was a call with its own fixed cost, ~2 ms of
CPU a batch of 1,000 records in all; these kernels write the same bytes in ~0.4 ms.

What is the same in every row, or depends only on a code (call class, tariff version, dial,
roaming, the caller's profile), is written ahead of time, each piece with the literal text
that follows it; a kernel copies pieces and writes numbers. Text the scanner took (ids,
numbers, the leg) is printable ASCII without quotes or backslashes: it needs only its quotes,
in CSV and in JSON. `raw` is any JSON text: CSV doubles its quotes. The CSV is what
PostgreSQL's `COPY ... (FORMAT csv)` reads, as Arrow wrote it: text quoted (an empty text
is not NULL), NULL as nothing, booleans as true/false.

tests/ingest/test_text_kernels.py checks the results against orjson and the rows against Arrow's
CSV writer; tests/ingest/test_pipeline.py stores batches through every lane and compares rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa

from service.rating.batch_kernels import cached_njit

U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Function = TypeVar("Function", bound=Callable[..., Any])
Result = TypeVar("Result")

# The kernel allocates its text, so numba's reference counting stays on; it runs once per
# batch, not once per row.
_OPTIONS: dict[str, Any] = {"nogil": True, "error_model": "numpy"}
_ZERO, _ONE, _MINUS, _COMMA, _QUOTE = 48, 49, 45, 44, 34
_INT64_DIGITS = 20  # sign and 19 digits


class Texts(NamedTuple):
    """Texts one after another: text i is data[offsets[i] : offsets[i + 1]]."""

    data: U8
    offsets: I64


def _texts(values: Sequence[str]) -> Texts:
    """The values one after another."""
    encoded = [value.encode() for value in values]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(text) for text in encoded], out=offsets[1:])
    return Texts(np.frombuffer(b"".join(encoded) or b"\0", np.uint8), offsets)


class Template(NamedTuple):
    """A result's text but its index, id and charge: the literal pieces, then one text per
    call class and one per tariff version (each with the literal that follows it)."""

    literals: Texts  # before the index, between index and id, between id and charge
    classes: Texts  # after the charge: the call class and the tariff key
    tariffs: Texts  # the tariff version, and the object's end


def template(call_classes: Sequence[str], versions: Sequence[str]) -> Template:
    """The template of a rated result (records.record_result's keys and order)."""
    return Template(
        _texts(['{"index":', ',"id":"', '","result":"rated","charge_fen":']),
        _texts([f',"call_class":{orjson.dumps(name).decode()},"tariff":' for name in call_classes]),
        _texts([f"{orjson.dumps(version).decode()}}}" for version in versions]),
    )


def _strings(array: pa.Array | pa.ChunkedArray) -> tuple[npt.NDArray[np.int32], U8]:
    """A string array's offsets (one past each row's text: n + 1) and bytes, as numpy views."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    _, offsets, data = array.buffers()
    at = np.frombuffer(offsets, np.int32)[array.offset : array.offset + len(array) + 1]
    return at, np.frombuffer(data, np.uint8) if data is not None and len(data) else _NO_BYTES


_NO_BYTES = np.zeros(1, np.uint8)  # numba needs an array; nothing is read from it


class Results(NamedTuple):
    """Results written one after another, separated by commas: result i ends at ends[i]."""

    text: U8
    ends: I64


def results(
    shape: Template,
    index: npt.NDArray[np.int64],
    ids: pa.Array,
    charge: npt.NDArray[np.int64],
    call_class: npt.NDArray[np.integer[Any]],
    tariff: npt.NDArray[np.integer[Any]],
) -> Results:
    """Each row's result: index, id (a string array without nulls), charge, the call class
    and tariff version numbered as in `shape`."""
    id_at, id_data = _strings(ids)
    text, ends = _call(
        _write,
        shape.literals.data,
        shape.literals.offsets,
        shape.classes.data,
        shape.classes.offsets,
        shape.tariffs.data,
        shape.tariffs.offsets,
        index.astype(np.int64, copy=False),
        id_at,
        id_data,
        charge.astype(np.int64, copy=False),
        call_class.astype(np.int64, copy=False),
        tariff.astype(np.int64, copy=False),
    )
    return Results(text, ends)


def _write(
    literal: U8,
    literal_at: I64,
    classes: U8,
    class_at: I64,
    tariffs: U8,
    tariff_at: I64,
    index: I64,
    id_at: npt.NDArray[np.int32],
    ids: U8,
    charge: I64,
    call_class: I64,
    tariff: I64,
) -> tuple[U8, I64]:
    n = len(index)
    per_row = literal_at[-1] + 2 * _INT64_DIGITS + _longest(class_at) + _longest(tariff_at) + 1
    text = np.empty(n * per_row + (id_at[n] - id_at[0]), np.uint8)
    ends = np.empty(n, np.int64)
    at = 0
    for r in range(n):
        if r:
            text[at] = _COMMA
            at += 1
        at = _copy(text, at, literal, literal_at[0], literal_at[1])
        at = _decimal(text, at, index[r])
        at = _copy(text, at, literal, literal_at[1], literal_at[2])
        at = _copy(text, at, ids, id_at[r], id_at[r + 1])
        at = _copy(text, at, literal, literal_at[2], literal_at[3])
        at = _decimal(text, at, charge[r])
        at = _copy(text, at, classes, class_at[call_class[r]], class_at[call_class[r] + 1])
        at = _copy(text, at, tariffs, tariff_at[tariff[r]], tariff_at[tariff[r] + 1])
        ends[r] = at
    return text[:at], ends


def _copy(text: U8, at: int, data: U8, start: int, end: int) -> int:
    for j in range(start, end):
        text[at] = data[j]
        at += 1
    return at


def _decimal(text: U8, at: int, value: int) -> int:
    """value in decimal at text[at:]; the position after it."""
    if value < 0:
        text[at] = _MINUS
        at += 1
    magnitude = np.uint64(0) - np.uint64(value) if value < 0 else np.uint64(value)
    digits = 1
    rest = magnitude // np.uint64(10)
    while rest:
        digits += 1
        rest //= np.uint64(10)
    for d in range(digits - 1, -1, -1):
        text[at + d] = _ZERO + np.uint8(magnitude % np.uint64(10))
        magnitude //= np.uint64(10)
    return at + digits


def csv_text(value: str | None) -> str:
    """One CSV field: text quoted, its quotes doubled; NULL as nothing."""
    return "" if value is None else '"' + value.replace('"', '""') + '"'


def cdrs_csv(
    order: npt.NDArray[np.int64],
    *,
    ids: pa.Array,
    callers: pa.Array,
    callees: pa.Array,
    start_epoch: npt.NDArray[np.int64],
    durations: npt.NDArray[np.int64],
    legs: pa.Array,
    default_leg: str,
    raws: pa.Array,
    received_at: str,
    national_digits: int,
) -> U8:
    """`cdrs` rows (repository.CDR_COLUMNS) in `order` (row numbers), as CSV. From the
    scanner's columns, every text ASCII: the caller's last `national_digits` characters
    (its national form), the callee's first CALLEE_CHARACTERS, `default_leg` where the leg
    is null."""
    leg_at, leg_data = _strings(legs.fill_null(default_leg))
    return _call(
        _cdrs,
        order.astype(np.int64, copy=False),
        *_strings(ids),
        *_strings(callers),
        *_strings(callees),
        start_epoch.astype(np.int64, copy=False),
        durations.astype(np.int64, copy=False),
        leg_at,
        leg_data,
        *_strings(raws),
        np.frombuffer(("," + csv_text(received_at) + "\n").encode(), np.uint8),
        national_digits,
    )


CALLEE_CHARACTERS = 64  # the column's length


def _cdrs(
    order: I64,
    id_at: I32,
    ids: U8,
    caller_at: I32,
    callers: U8,
    callee_at: I32,
    callees: U8,
    start: I64,
    duration: I64,
    leg_at: I32,
    legs: U8,
    raw_at: I32,
    raws: U8,
    end: U8,
    national_digits: int,
) -> U8:
    n = len(order)
    size = n * (national_digits + CALLEE_CHARACTERS + 2 * _INT64_DIGITS + len(end) + 16)
    size += (id_at[n] - id_at[0]) + (leg_at[n] - leg_at[0]) + 2 * (raw_at[n] - raw_at[0])
    text = np.empty(size, np.uint8)
    at = 0
    for i in range(n):
        r = order[i]
        text[at] = _QUOTE
        at = _copy(text, at + 1, ids, id_at[r], id_at[r + 1])
        at = _put3(text, at, _QUOTE, _COMMA, _QUOTE)
        first = max(caller_at[r], caller_at[r + 1] - national_digits)
        at = _copy(text, at, callers, first, caller_at[r + 1])
        at = _put3(text, at, _QUOTE, _COMMA, _QUOTE)
        last = min(callee_at[r + 1], callee_at[r] + CALLEE_CHARACTERS)
        at = _copy(text, at, callees, callee_at[r], last)
        at = _put2(text, at, _QUOTE, _COMMA)
        at = _decimal(text, at, start[r])
        text[at] = _COMMA
        at = _decimal(text, at + 1, duration[r])
        at = _put2(text, at, _COMMA, _QUOTE)
        at = _copy(text, at, legs, leg_at[r], leg_at[r + 1])
        at = _put3(text, at, _QUOTE, _COMMA, _QUOTE)
        for j in range(raw_at[r], raw_at[r + 1]):  # the quotes doubled
            text[at] = raws[j]
            at += 1
            if raws[j] == _QUOTE:
                text[at] = _QUOTE
                at += 1
        text[at] = _QUOTE
        at = _copy(text, at + 1, end, 0, len(end))
    return text[:at]


class RatingTemplate(NamedTuple):
    """A `ratings` row but its id, charge and profile: the pieces each code stands for."""

    tariffs: Texts  # '"cmcc-2010",'
    classes: Texts  # '"domestic_ld",'
    dials: Texts
    roamings: Texts


def rating_template(
    versions: Sequence[str],
    call_classes: Sequence[str],
    dials: Sequence[str],
    roamings: Sequence[str],
) -> RatingTemplate:
    """The pieces of ingest's ratings rows, numbered as the kernels number the names."""
    return RatingTemplate(
        *(
            _texts([csv_text(name) + "," for name in names])
            for names in (versions, call_classes, dials, roamings)
        )
    )


def ratings_csv(
    shape: RatingTemplate,
    *,
    ids: pa.Array,
    tariff: npt.NDArray[np.integer[Any]],
    charge: npt.NDArray[np.int64],
    call_class: npt.NDArray[np.integer[Any]],
    dial: npt.NDArray[np.integer[Any]],
    roaming: npt.NDArray[np.integer[Any]],
    rated_at: str,
    source: str,
    profiles: Sequence[tuple[str | None, str | None, str | None, bool | None]],
    profile: npt.NDArray[np.integer[Any]],
) -> U8:
    """`ratings` rows (repository.RATING_COLUMNS) of first ratings (seq 1), in row order, as
    CSV; `profiles[profile[r]]` is row r's profile columns (plan, home area, packages JSON,
    registered)."""
    return _call(
        _ratings,
        *_strings(ids),
        *shape.tariffs,
        *shape.classes,
        *shape.dials,
        *shape.roamings,
        tariff.astype(np.int64, copy=False),
        charge.astype(np.int64, copy=False),
        call_class.astype(np.int64, copy=False),
        dial.astype(np.int64, copy=False),
        roaming.astype(np.int64, copy=False),
        np.frombuffer(f"{csv_text(rated_at)},{csv_text(source)},".encode(), np.uint8),
        *_texts(
            [
                ",".join(csv_text(text) for text in (plan, home_area, packages))
                + ("," if registered is None else ",true" if registered else ",false")
                + "\n"
                for plan, home_area, packages, registered in profiles
            ]
        ),
        profile.astype(np.int64, copy=False),
    )


def _ratings(
    id_at: I32,
    ids: U8,
    tariffs: U8,
    tariff_at: I64,
    classes: U8,
    class_at: I64,
    dials: U8,
    dial_at: I64,
    roamings: U8,
    roaming_at: I64,
    tariff: I64,
    charge: I64,
    call_class: I64,
    dial: I64,
    roaming: I64,
    middle: U8,
    profiles: U8,
    profile_at: I64,
    profile: I64,
) -> U8:
    n = len(charge)
    size = (id_at[n] - id_at[0]) + n * (8 + _INT64_DIGITS + len(middle))
    size += n * (_longest(tariff_at) + _longest(class_at) + _longest(dial_at))
    size += n * (_longest(roaming_at) + _longest(profile_at))
    text = np.empty(size, np.uint8)
    at = 0
    for r in range(n):
        text[at] = _QUOTE
        at = _copy(text, at + 1, ids, id_at[r], id_at[r + 1])
        at = _put3(text, at, _QUOTE, _COMMA, _ONE)
        text[at] = _COMMA
        at = _copy(text, at + 1, tariffs, tariff_at[tariff[r]], tariff_at[tariff[r] + 1])
        at = _decimal(text, at, charge[r])
        text[at] = _COMMA
        at = _copy(text, at + 1, classes, class_at[call_class[r]], class_at[call_class[r] + 1])
        at = _copy(text, at, dials, dial_at[dial[r]], dial_at[dial[r] + 1])
        at = _copy(text, at, roamings, roaming_at[roaming[r]], roaming_at[roaming[r] + 1])
        at = _copy(text, at, middle, 0, len(middle))
        at = _copy(text, at, profiles, profile_at[profile[r]], profile_at[profile[r] + 1])
    return text[:at]


def _longest(offsets: I64) -> int:
    longest = 0
    for i in range(len(offsets) - 1):
        longest = max(longest, offsets[i + 1] - offsets[i])
    return longest


def _put2(text: U8, at: int, first: int, second: int) -> int:
    text[at] = first
    text[at + 1] = second
    return at + 2


def _put3(text: U8, at: int, first: int, second: int, third: int) -> int:
    text[at] = first
    text[at + 1] = second
    text[at + 2] = third
    return at + 3


def _call(kernel: Callable[..., Result], *arguments: Any) -> Result:
    """kernel(*arguments), each array read-only: whatever made an array (Arrow's buffers are
    read-only or not, numpy's writable), the kernel sees one type per argument, so it
    compiles once, at warm-up, not again on a request."""
    frozen = []
    for argument in arguments:
        if isinstance(argument, np.ndarray):
            argument = argument.view()
            argument.flags.writeable = False
        frozen.append(argument)
    return kernel(*frozen)


def _inlined(function: Function) -> Function:
    """Compiled into the kernel that calls it: no call, no reference counting per value."""
    return cast(Function, numba.njit(inline="always", **_OPTIONS)(function))


_copy = _inlined(_copy)
_decimal = _inlined(_decimal)
_put2 = _inlined(_put2)
_put3 = _inlined(_put3)
_longest = _inlined(_longest)
_write = cached_njit(_write, _OPTIONS)
_cdrs = cached_njit(_cdrs, _OPTIONS)
_ratings = cached_njit(_ratings, _OPTIONS)


def warm() -> None:
    """Compile (or load from the JIT cache) the kernels now, not on a request: with the
    argument types ingest gives them (tests/ingest/test_text_kernels.py checks it adds none)."""
    one = np.zeros(1, np.int64)
    text = pa.chunked_array([pa.array(["w"])])
    results(template(["c"], ["t"]), one, text.combine_chunks(), one, one, one)
    cdrs_csv(
        one,
        ids=text.combine_chunks(),
        callers=text,
        callees=text,
        start_epoch=one,
        durations=pa.chunked_array([pa.array([1])]).to_numpy(),
        legs=pa.chunked_array([pa.array([None], pa.string())]),
        default_leg="w",
        raws=text,
        received_at="w",
        national_digits=1,
    )
    ratings_csv(
        rating_template(["t"], ["c"], ["d"], ["r"]),
        ids=text.combine_chunks(),
        tariff=one,
        charge=one,
        call_class=one,
        dial=one,
        roaming=one,
        rated_at="w",
        source="w",
        profiles=[(None, None, None, None)],
        profile=pa.array([0], pa.int32()).to_numpy(),
    )
