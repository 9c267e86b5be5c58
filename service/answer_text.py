"""The column way's per-record results (schemas.RecordResult, "rated") as JSON text, written
from the columns in one numba pass.

Arrow's compute functions did it in ~0.7 ms of CPU a batch of 1,000 records (casts, takes
and an element-wise join of eleven pieces, each a call with its own fixed cost); this kernel
writes the same bytes in ~0.1 ms. What is the same in every row, or depends only on the
call class or the tariff version, is written ahead of time (`Template`). An id needs only
its quotes: the scanner took only ids of printable ASCII without escapes.

tests/test_answer_text.py checks the text against orjson's rendering of the same results.
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
I64 = npt.NDArray[np.int64]
Function = TypeVar("Function", bound=Callable[..., Any])

# The kernel allocates its text, so numba's reference counting stays on; it runs once per
# batch, not once per row.
_OPTIONS: dict[str, Any] = {"nogil": True, "error_model": "numpy"}
_ZERO, _MINUS, _COMMA = 48, 45, 44
_INT64_DIGITS = 20  # sign and 19 digits


class Texts(NamedTuple):
    """Texts one after another: text i is data[offsets[i] : offsets[i + 1]]."""

    data: U8
    offsets: I64


def _texts(values: Sequence[str]) -> Texts:
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
    """The template of a rated result (flows.record_result's keys and order)."""
    return Template(
        _texts(['{"index":', ',"id":"', '","result":"rated","charge_fen":']),
        _texts([f',"call_class":{orjson.dumps(name).decode()},"tariff":' for name in call_classes]),
        _texts([f"{orjson.dumps(version).decode()}}}" for version in versions]),
    )


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
    _, id_offsets, id_data = ids.buffers()
    offsets = np.frombuffer(id_offsets, np.int32)[ids.offset : ids.offset + len(ids) + 1]
    text, ends = _write(
        shape.literals.data,
        shape.literals.offsets,
        shape.classes.data,
        shape.classes.offsets,
        shape.tariffs.data,
        shape.tariffs.offsets,
        index.astype(np.int64, copy=False),
        offsets,
        np.frombuffer(id_data, np.uint8) if id_data is not None else np.zeros(1, np.uint8),
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
    longest_class = 0
    for c in range(len(class_at) - 1):
        longest_class = max(longest_class, class_at[c + 1] - class_at[c])
    longest_tariff = 0
    for t in range(len(tariff_at) - 1):
        longest_tariff = max(longest_tariff, tariff_at[t + 1] - tariff_at[t])
    per_row = literal_at[-1] + 2 * _INT64_DIGITS + longest_class + longest_tariff + 1
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


def _inlined(function: Function) -> Function:
    """Compiled into the kernel that calls it: no call, no reference counting per value."""
    return cast(Function, numba.njit(inline="always", **_OPTIONS)(function))


_copy = _inlined(_copy)
_decimal = _inlined(_decimal)
_write = cached_njit(_write, _OPTIONS)


def warm() -> None:
    """Compile (or load from the JIT cache) the kernel now, not on a request."""
    one = np.zeros(1, np.int64)
    results(template(["c"], ["t"]), one, pa.array(["w"]), one, one, one)
