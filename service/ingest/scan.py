"""A POST /v1/cdrs body -> Arrow record columns in one numba pass, for the ordinary records.

`service.ingest.cut` cuts the body in Python and decodes every record with orjson; `record_columns`
then turns the dicts into columns: about 5 µs a record. Most records are flat objects of
plain ASCII strings and small integers, and for those the columns can be read straight from
the body's bytes. The scanner takes a record only when it is sure orjson and
`record_columns` would give the same values and `parse_cdr` would not need to look at it
(no escapes, no non-ASCII, no fraction or exponent, no nesting beyond `packages`, no key
twice); every other record is cut exactly where `split_ndjson` / `split_array` cut it and
decoded by the same `decode_record`. A body whose shape it does not know for certain (not an
array, unclosed strings, stray closing braces, too many records, no record it could take) is
handed whole to `split_ndjson` / `split_array`, so every error is theirs.

The kernel returns its columns as contiguous bytes, int32 offsets and validity bitmaps,
wrapped by Arrow without a copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from service.ingest.cut import Incoming, decode_record, split_array, split_ndjson
from service.rating.batch import NULL_REFUSED, RECORD_SCHEMA, TEXT_FIELDS
from service.rating.batch_kernels import cached_njit

U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Function = TypeVar("Function", bound=Callable[..., Any])


# The kernel allocates its results, so numba's reference counting stays on (unlike the rating
# kernels); it runs once per body, not once per row.
_OPTIONS: dict[str, Any] = {"nogil": True, "error_model": "numpy"}
_HELPER_OPTIONS: dict[str, Any] = {**_OPTIONS, "_nrt": False}


def _kernel(function: Function) -> Function:
    return cached_njit(function, _OPTIONS)


def _helper(function: Function) -> Function:
    """Compiled into the kernel that calls it (and cached with it). Without reference
    counting: a helper allocates nothing, and counting the references of its array
    arguments at each call (each byte read, each record) would cost more than its work."""
    return cast(Function, numba.njit(**_HELPER_OPTIONS)(function))


# The record columns: the text fields, duration_s, packages (checked below).
DURATION_FIELD = "duration_s"
PACKAGES_FIELD = "packages"
FORWARDED = "forwarded"  # forward_kind counts only on this leg (record_columns, parse_cdr)
if RECORD_SCHEMA.names != [*TEXT_FIELDS, DURATION_FIELD, PACKAGES_FIELD] or (
    RECORD_SCHEMA.field(DURATION_FIELD).type != pa.int64()
):
    raise ImportError("service.ingest.scan no longer matches batch.RECORD_SCHEMA")
# An explicit null there is refused by parse_cdr: such a record is not taken (a column's null
# would read as an absent field).
_NULL_REFUSED = sum(1 << RECORD_SCHEMA.names.index(name) for name in NULL_REFUSED)
FAST_SCHEMA = pa.schema([("index", pa.int64()), ("raw", pa.string()), *RECORD_SCHEMA])

# Kernel status.
OK, WHOLE = 0, 1
FULL = -2  # _record: no room left for package spans
# Bytes of the JSON grammar.
_SPACE, _TAB, _LF, _CR = 32, 9, 10, 13
_QUOTE, _BACKSLASH, _COMMA, _COLON, _MINUS = 34, 92, 44, 58, 45
_OPEN_OBJECT, _CLOSE_OBJECT, _OPEN_ARRAY, _CLOSE_ARRAY = 123, 125, 91, 93
_ZERO, _ONE, _NINE = 48, 49, 57
_PRINTABLE_FIRST, _PRINTABLE_LAST = 0x20, 0x7E
_N, _U, _L, _T, _R, _E, _F, _A, _S = 110, 117, 108, 116, 114, 101, 102, 97, 115
MAX_DIGITS = 18  # any integer of 18 digits is an int64
MAX_EXTRA_KEYS = 64  # keys beyond the CDR fields a record may hold and still be taken
MAX_BODY_BYTES = 2**31 - 1  # int32 Arrow offsets


class Names(NamedTuple):
    """The field names and "forwarded": concatenated bytes and offsets."""

    data: U8
    offsets: I32


def _names(values: tuple[str, ...]) -> Names:
    encoded = [value.encode() for value in values]
    offsets = np.cumsum([0, *(len(e) for e in encoded)]).astype(np.int32)
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    offsets.flags.writeable = False
    return Names(data, offsets)


# Field numbers in the kernel: text fields 0..T-1, duration_s T, packages T+1, "forwarded" T+2.
_NAMES = _names((*TEXT_FIELDS, DURATION_FIELD, PACKAGES_FIELD, FORWARDED))
_TYPE_FIELD = TEXT_FIELDS.index("type")
_FORWARD_KIND_FIELD = TEXT_FIELDS.index("forward_kind")


class ScannedBody(NamedTuple):
    """The records the scanner took, as columns (FAST_SCHEMA), and every other record."""

    fast: pa.Table
    others: list[Incoming]


# -- the kernel -------------------------------------------------------------------------------


@_helper
def _byte(data: U8, index: int) -> int:
    """data[index] without numba's wraparound check (indices here are never negative)."""
    return int(data[np.uint64(index)])


@_helper
def _skip_ws(body: U8, p: int, newline: bool) -> int:
    """p moved over JSON whitespace (a newline only when `newline`: NDJSON lines hold none)."""
    n = len(body)
    while p < n:
        c = _byte(body, p)
        if c in (_SPACE, _TAB, _CR) or (c == _LF and newline):
            p += 1
        else:
            break
    return p


@_helper
def _plain_end(body: U8, p: int) -> int:
    """The closing quote of a string whose bytes start at p and are all printable ASCII
    without escapes; -1 for any other string."""
    n = len(body)
    while p < n:
        c = _byte(body, p)
        if c == _QUOTE:
            return p
        if c < _PRINTABLE_FIRST or c > _PRINTABLE_LAST or c == _BACKSLASH:
            return -1
        p += 1
    return -1


@_helper
def _integer(body: U8, p: int) -> tuple[int, int]:
    """(end, value) of `-?(0|[1-9][0-9]*)` of at most MAX_DIGITS digits at p; end -1 when
    there is none. What follows (a fraction, a leading zero's digits) is the caller's check."""
    n = len(body)
    negative = p < n and _byte(body, p) == _MINUS
    if negative:
        p += 1
    if p >= n:
        return -1, 0
    c = _byte(body, p)
    if c == _ZERO:
        return p + 1, 0
    if c < _ONE or c > _NINE:
        return -1, 0
    value = 0
    start = p
    while p < n:
        c = _byte(body, p)
        if c < _ZERO or c > _NINE:
            break
        if p - start == MAX_DIGITS:
            return -1, 0
        value = value * 10 + (c - _ZERO)
        p += 1
    return p, -value if negative else value


@_helper
def _literal(body: U8, p: int, a: int, b: int, c: int, d: int) -> bool:
    """body[p:p+4] is the four bytes a b c d."""
    return (
        p + 4 <= len(body)
        and _byte(body, p) == a
        and _byte(body, p + 1) == b
        and _byte(body, p + 2) == c
        and _byte(body, p + 3) == d
    )


@_helper
def _same(body: U8, start: int, end: int, data: U8, first: int, last: int) -> bool:
    if end - start != last - first:
        return False
    for i in range(end - start):  # noqa: SIM110 (numba compiles loops, not all(generator))
        if _byte(body, start + i) != _byte(data, first + i):
            return False
    return True


@_helper
def _field(body: U8, start: int, end: int, names: U8, name_offsets: I32, fields: int) -> int:
    """The number of the field named body[start:end], or -1."""
    for f in range(fields):
        if _same(body, start, end, names, name_offsets[f], name_offsets[f + 1]):
            return f
    return -1


@_helper
def _record(
    body: U8,
    p: int,
    newline: bool,
    names: U8,
    name_offsets: I32,
    row: int,
    spans: I64,
    durations: I64,
    keys: I64,
    packages: I64,
    package_count: int,
) -> tuple[int, int]:
    """Read the object at p (a `{`) into row `row`: (the position after its `}`, the count of
    package spans), or position -1 when the scanner does not take it, FULL when `packages`
    has no room left.

    spans[row, f] is a text field's (start, end), packages' (first, count) in `packages`, or
    -1 for null; spans[row, T, 0] is 1 when duration_s (in durations[row]) is not null.
    """
    fields = len(name_offsets) - 2
    text = fields - 2
    kept = package_count
    for f in range(fields):
        spans[row, f, 0] = -1
        spans[row, f, 1] = -1
    durations[row] = 0
    seen = 0
    extra = 0
    p = _skip_ws(body, p + 1, newline)
    if p < len(body) and _byte(body, p) == _CLOSE_OBJECT:
        return p + 1, package_count
    while True:
        if p >= len(body) or _byte(body, p) != _QUOTE:
            return -1, kept
        key_end = _plain_end(body, p + 1)
        if key_end < 0:
            return -1, kept
        field = _field(body, p + 1, key_end, names, name_offsets, fields)
        if field >= 0:
            if (seen >> field) & 1:
                return -1, kept
            seen |= 1 << field
        else:
            if extra == len(keys):
                return -1, kept
            for k in range(extra):
                if _same(body, p + 1, key_end, body, keys[k, 0], keys[k, 1]):
                    return -1, kept
            keys[extra, 0] = p + 1
            keys[extra, 1] = key_end
            extra += 1
        p = _skip_ws(body, key_end + 1, newline)
        if p >= len(body) or _byte(body, p) != _COLON:
            return -1, kept
        p = _skip_ws(body, p + 1, newline)
        if p >= len(body):
            return -1, kept
        c = _byte(body, p)
        if c == _N:
            if not _literal(body, p, _N, _U, _L, _L) or (
                field >= 0 and (_NULL_REFUSED >> field) & 1
            ):
                return -1, kept
            p += 4
        elif c == _QUOTE and field != text and field != text + 1:
            end = _plain_end(body, p + 1)
            if end < 0:
                return -1, kept
            if field >= 0:
                spans[row, field, 0] = p + 1
                spans[row, field, 1] = end
            p = end + 1
        elif field == text or (field < 0 and (c == _MINUS or (c >= _ZERO and c <= _NINE))):
            p, value = _integer(body, p)
            if p < 0:
                return -1, kept
            if field == text:
                durations[row] = value
                spans[row, text, 0] = 1
        elif field < 0 and c == _T:
            if not _literal(body, p, _T, _R, _U, _E):
                return -1, kept
            p += 4
        elif field < 0 and c == _F:
            if not (_literal(body, p, _F, _A, _L, _S) and p + 4 < len(body)):
                return -1, kept
            if _byte(body, p + 4) != _E:
                return -1, kept
            p += 5
        elif field == text + 1 and c == _OPEN_ARRAY:
            first = package_count
            p = _skip_ws(body, p + 1, newline)
            if p < len(body) and _byte(body, p) == _CLOSE_ARRAY:
                p += 1
            else:
                while True:
                    if p >= len(body) or _byte(body, p) != _QUOTE:
                        return -1, kept
                    end = _plain_end(body, p + 1)
                    if end < 0:
                        return -1, kept
                    if package_count == len(packages):
                        return FULL, kept
                    packages[package_count, 0] = p + 1
                    packages[package_count, 1] = end
                    package_count += 1
                    p = _skip_ws(body, end + 1, newline)
                    if p < len(body) and _byte(body, p) == _COMMA:
                        p = _skip_ws(body, p + 1, newline)
                    elif p < len(body) and _byte(body, p) == _CLOSE_ARRAY:
                        p += 1
                        break
                    else:
                        return -1, kept
            spans[row, text + 1, 0] = first
            spans[row, text + 1, 1] = package_count - first
        else:
            return -1, kept
        p = _skip_ws(body, p, newline)
        if p >= len(body):
            return -1, kept
        c = _byte(body, p)
        if c == _COMMA:
            p = _skip_ws(body, p + 1, newline)
        elif c == _CLOSE_OBJECT:
            return p + 1, package_count
        else:
            return -1, kept


@_kernel
def _grown(packages: I64, count: int) -> I64:
    """Twice the room, the first `count` spans kept."""
    grown = np.empty((2 * len(packages) + 16, 2), dtype=np.int64)
    grown[:count] = packages[:count]
    return grown


@_helper
def _count(body: U8, byte: int) -> int:
    """body.count(byte), in a loop the compiler vectorizes (bytes.count is 4 times slower)."""
    count = 0
    for i in range(len(body)):
        count += body[i] == byte
    return count


@_helper
def _copy(data: U8, at: int, body: U8, start: int, end: int) -> None:
    """data[at:at + end - start] = body[start:end]."""
    for i in range(end - start):
        data[np.uint64(at + i)] = body[np.uint64(start + i)]


@_helper
def _brackets(body: U8, start: int, end: int) -> int:
    """cut._brackets: how many `[` and `{` body[start:end] holds."""
    count = 0
    for p in range(start, end):
        c = _byte(body, p)
        if c in (_OPEN_ARRAY, _OPEN_OBJECT):
            count += 1
    return count


@_helper
def _cut(body: U8, p: int) -> int:
    """cut._scan_element: the `,` `]` or `}` closing the element at p at depth 0, or -1
    when a string or the array is not closed (strings skipped, escapes included)."""
    n = len(body)
    depth = 0
    while p < n:
        c = _byte(body, p)
        if c == _QUOTE:
            p += 1
            while p < n:
                s = _byte(body, p)
                if s == _BACKSLASH:
                    p += 2
                elif s == _QUOTE:
                    break
                else:
                    p += 1
            if p >= n:
                return -1
        elif c in (_OPEN_ARRAY, _OPEN_OBJECT):
            depth += 1
        elif c in (_CLOSE_ARRAY, _CLOSE_OBJECT) and depth > 0:
            depth -= 1
        elif depth == 0 and c in (_COMMA, _CLOSE_ARRAY, _CLOSE_OBJECT):
            return p
        p += 1
    return -1


@_helper
def _trimmed_end(body: U8, end: int) -> int:
    """cut._trimmed_end: end moved back over whitespace."""
    while end > 0:
        c = _byte(body, end - 1)
        if c in (_SPACE, _TAB, _CR, _LF):
            end -= 1
        else:
            break
    return end


@_kernel
def _scan(
    body: U8,
    ndjson: bool,
    max_records: int,
    names: U8,
    name_offsets: I32,
    type_field: int,
    forward_kind_field: int,
) -> tuple[int, I64, U8, I64, I32, U8, I64, I64, I32, I32, I64]:
    """The whole body in one call: (status, index, data, data_starts, offsets, validity,
    null_counts, durations, list_offsets, package_offsets, others).

    Columns of the records taken, in body order: the text fields, then raw (offsets rows and
    data_starts entries; the package strings' data last); validity rows for the text fields,
    duration_s and packages. `others` rows are (index, start, end, brackets) of every other
    record. Status WHOLE: the body is not of the plain shape, the caller cuts it whole.
    """
    n = len(body)
    fields = len(name_offsets) - 2
    text = fields - 2
    # A record is a line, or an array element: each but the last ends at a comma.
    capacity = min(max_records, _count(body, _LF if ndjson else _COMMA) + 1)
    spans = np.empty((capacity, fields, 2), dtype=np.int64)
    durations = np.empty(capacity, dtype=np.int64)
    index = np.empty(capacity, dtype=np.int64)
    raw = np.empty((capacity, 2), dtype=np.int64)
    others = np.empty((capacity, 4), dtype=np.int64)
    keys = np.empty((MAX_EXTRA_KEYS, 2), dtype=np.int64)
    packages = np.empty((capacity + 16, 2), dtype=np.int64)
    package_count = 0
    fast = 0
    other = 0
    status = OK
    if ndjson:
        line = 0
        start = 0
        records = 0
        while start <= n:
            q = start
            while q < n:
                c = _byte(body, q)
                if c in (_SPACE, _TAB, _CR):
                    q += 1
                else:
                    break
            if q == n or _byte(body, q) == _LF:  # a blank line counts, holds no record
                line += 1
                start = q + 1
                continue
            records += 1
            if records > max_records:
                status = WHOLE
                break
            end = -1
            if _byte(body, q) == _OPEN_OBJECT:
                while True:
                    end, counted = _record(
                        body,
                        q,
                        False,
                        names,
                        name_offsets,
                        fast,
                        spans,
                        durations,
                        keys,
                        packages,
                        package_count,
                    )
                    if end != FULL:
                        break
                    packages = _grown(packages, package_count)
                package_count = counted
                if end >= 0:
                    end = _skip_ws(body, end, False)
                    if end < n and _byte(body, end) != _LF:
                        end = -1
            taken = end >= 0
            if not taken:
                end = q
                while end < n and _byte(body, end) != _LF:
                    end += 1
            stop = end - 1 if end > start and _byte(body, end - 1) == _CR else end
            if taken:
                index[fast] = line
                raw[fast, 0] = start
                raw[fast, 1] = stop
                fast += 1
            else:
                others[other, 0] = line
                others[other, 1] = start
                others[other, 2] = stop
                others[other, 3] = _brackets(body, start, stop)
                other += 1
            line += 1
            start = end + 1
    else:
        p = _skip_ws(body, 0, True)
        if p == n or _byte(body, p) != _OPEN_ARRAY:
            status = WHOLE
        else:
            p = _skip_ws(body, p + 1, True)
            count = 0
            if p < n and _byte(body, p) == _CLOSE_ARRAY:
                p += 1
            else:
                while True:
                    if count == max_records or p == n:
                        status = WHOLE
                        break
                    closer = -1
                    element_end = -1
                    if _byte(body, p) == _OPEN_OBJECT:
                        while True:
                            element_end, counted = _record(
                                body,
                                p,
                                True,
                                names,
                                name_offsets,
                                fast,
                                spans,
                                durations,
                                keys,
                                packages,
                                package_count,
                            )
                            if element_end != FULL:
                                break
                            packages = _grown(packages, package_count)
                        package_count = counted
                        if element_end >= 0:
                            closer = _skip_ws(body, element_end, True)
                            if closer == n or (
                                _byte(body, closer) != _COMMA
                                and _byte(body, closer) != _CLOSE_ARRAY
                            ):
                                element_end = -1
                    if element_end >= 0:
                        index[fast] = count
                        raw[fast, 0] = p
                        raw[fast, 1] = element_end
                        fast += 1
                    else:
                        closer = _cut(body, p)
                        if closer < 0 or _byte(body, closer) == _CLOSE_OBJECT:
                            status = WHOLE
                            break
                        element_end = _trimmed_end(body, closer)
                        if element_end <= p:
                            status = WHOLE
                            break
                        others[other, 0] = count
                        others[other, 1] = p
                        others[other, 2] = element_end
                        others[other, 3] = _brackets(body, p, element_end)
                        other += 1
                    count += 1
                    p = _skip_ws(body, closer + 1, True)
                    if _byte(body, closer) == _CLOSE_ARRAY:
                        break
            if status == OK and _skip_ws(body, p, True) != n:
                status = WHOLE

    # Columns of the records taken.
    first, last = name_offsets[text + 2], name_offsets[text + 3]
    for row in range(fast):
        kind = spans[row, type_field]
        if kind[0] < 0 or not _same(body, kind[0], kind[1], names, first, last):
            spans[row, forward_kind_field, 0] = -1
    data_starts = np.zeros(text + 3, dtype=np.int64)
    for c in range(text):
        size = 0
        for row in range(fast):
            if spans[row, c, 0] >= 0:
                size += spans[row, c, 1] - spans[row, c, 0]
        data_starts[c + 1] = data_starts[c] + size
    size = 0
    for row in range(fast):
        size += raw[row, 1] - raw[row, 0]
    data_starts[text + 1] = data_starts[text] + size
    size = 0
    for k in range(package_count):
        size += packages[k, 1] - packages[k, 0]
    data_starts[text + 2] = data_starts[text + 1] + size
    data = np.empty(data_starts[text + 2], dtype=np.uint8)
    offsets = np.empty((text + 1, fast + 1), dtype=np.int32)
    validity = np.zeros((fields, (fast + 7) // 8), dtype=np.uint8)
    null_counts = np.zeros(fields, dtype=np.int64)
    for c in range(text + 1):
        at = data_starts[c]
        offsets[c, 0] = 0
        for row in range(fast):
            if c == text:
                s, e = raw[row, 0], raw[row, 1]
            else:
                s, e = spans[row, c, 0], spans[row, c, 1]
            if s >= 0:
                _copy(data, at, body, s, e)
                at += e - s
                if c < text:
                    validity[c, row >> 3] |= np.uint8(1 << (row & 7))
            else:
                null_counts[c] += 1
            offsets[c, row + 1] = at - data_starts[c]
    list_offsets = np.empty(fast + 1, dtype=np.int32)
    list_offsets[0] = 0
    for row in range(fast):
        if spans[row, text, 0] >= 0:
            validity[text, row >> 3] |= np.uint8(1 << (row & 7))
        else:
            null_counts[text] += 1
        count = 0
        if spans[row, text + 1, 0] >= 0:
            validity[text + 1, row >> 3] |= np.uint8(1 << (row & 7))
            count = spans[row, text + 1, 1]
        else:
            null_counts[text + 1] += 1
        list_offsets[row + 1] = list_offsets[row] + count
    package_offsets = np.empty(package_count + 1, dtype=np.int32)
    package_offsets[0] = 0
    at = data_starts[text + 1]
    for k in range(package_count):
        s, e = packages[k, 0], packages[k, 1]
        _copy(data, at, body, s, e)
        at += e - s
        package_offsets[k + 1] = at - data_starts[text + 1]
    return (
        status,
        index[:fast],
        data,
        data_starts,
        offsets,
        validity,
        null_counts,
        durations[:fast],
        list_offsets,
        package_offsets,
        others[:other],
    )


# -- Arrow ------------------------------------------------------------------------------------


def _strings(
    data: pa.Buffer, start: int, stop: int, offsets: I32, validity: U8, nulls: int
) -> pa.Array:
    return pa.Array.from_buffers(
        pa.string(),
        len(offsets) - 1,
        [pa.py_buffer(validity) if nulls else None, pa.py_buffer(offsets), data[start:stop]],
        null_count=nulls,
    )


_EMPTY = FAST_SCHEMA.empty_table()


def scan_body(body: bytes, *, ndjson: bool, max_records: int) -> ScannedBody:
    """The body's ordinary records as FAST_SCHEMA columns, every other record as
    split_ndjson / split_array give it; raises what they raise."""
    if len(body) > MAX_BODY_BYTES:
        return _whole(body, ndjson=ndjson, max_records=max_records)
    status, index, data, data_starts, offsets, validity, nulls, durations, lists, items, rest = (
        _scan(
            np.frombuffer(body, dtype=np.uint8),
            ndjson,
            max_records,
            _NAMES.data,
            _NAMES.offsets,
            _TYPE_FIELD,
            _FORWARD_KIND_FIELD,
        )
    )
    rows = len(index)
    if status != OK or rows == 0:  # without a record taken, NotJson is split_ndjson's to raise
        return _whole(body, ndjson=ndjson, max_records=max_records)
    text = len(TEXT_FIELDS)
    starts = data_starts.tolist()
    null_counts = nulls.tolist()
    buffer = pa.py_buffer(data)
    columns = [
        _strings(buffer, starts[c], starts[c + 1], offsets[c], validity[c], null_counts[c])
        for c in range(text)
    ]
    raw_column = _strings(buffer, starts[text], starts[text + 1], offsets[text], validity[0], 0)
    durations_column = pa.Array.from_buffers(
        pa.int64(),
        rows,
        [pa.py_buffer(validity[text]) if null_counts[text] else None, pa.py_buffer(durations)],
        null_count=null_counts[text],
    )
    package_items = _strings(
        buffer, starts[text + 1], starts[text + 2], items, validity[text + 1], 0
    )
    packages_column = pa.Array.from_buffers(
        RECORD_SCHEMA.field(PACKAGES_FIELD).type,
        rows,
        [pa.py_buffer(validity[text + 1]) if null_counts[text + 1] else None, pa.py_buffer(lists)],
        null_count=null_counts[text + 1],
        children=[package_items],
    )
    index_column = pa.Array.from_buffers(pa.int64(), rows, [None, pa.py_buffer(index)])
    fast = pa.Table.from_arrays(
        [index_column, raw_column, *columns, durations_column, packages_column],
        schema=FAST_SCHEMA,
    )
    view = memoryview(body)
    others = [
        decode_record(view[start:end], number, brackets=brackets)
        for number, start, end, brackets in rest.tolist()
    ]
    return ScannedBody(fast, others)


def _whole(body: bytes, *, ndjson: bool, max_records: int) -> ScannedBody:
    split = split_ndjson if ndjson else split_array
    return ScannedBody(_EMPTY, split(body, max_records=max_records))


_WARM_UP_BODIES = (
    (b'{"id": "w", "duration_s": 1, "packages": ["a"], "x": true}\n[1]\n', True),
    (b'[{"id": "w", "duration_s": null}, 1]', False),
)


def warm_scanner() -> None:
    """Compile (or load from the JIT cache) the scanner's kernel now, not on a request."""
    for body, ndjson in _WARM_UP_BODIES:
        scan_body(body, ndjson=ndjson, max_records=10)
