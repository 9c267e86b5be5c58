"""A POST /v1/cdrs body -> one exact byte slice per record, each decoded on its own.

The body is never parsed whole: one bad record (invalid UTF-8, NUL, a number beyond 64-bit
floating point, 300-deep nesting) must not fail the others, and a body of 5 million `{}`
must be refused before 5 million dicts exist. A JSON array is cut at its top-level commas
by a byte scanner that skips strings and counts depth without recursion; NDJSON is cut at
newlines. The record limit is checked while cutting. Records are views into the body, not
copies: a 16 MiB body is held once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import orjson

from service.rating.cdr import parse_cdr
from service.rating.rejections import Rejected

# A CDR is two levels deep (an object holding the `packages` list); deeper records are
# rejected without being parsed (orjson stops at 1,024 levels, Python's json recurses).
MAX_DEPTH = 64

_WS = rb"[ \t\r\n]*"
_STRING = rb'"(?:[^"\\]++|\\.)*+"'
_FLAT = rb'(?:[^\[\]{}"]++|' + _STRING + rb")*+"
_NESTED = rb"(?:\[" + _FLAT + rb"\]|\{" + _FLAT + rb"\})"
# The common case in one C-level match: an object at most two levels deep, then `,` or `]`.
_FAST_ELEMENT = re.compile(
    rb"(\{(?:[^\[\]{}\"]++|" + _STRING + rb"|" + _NESTED + rb")*+\})" + _WS + rb"([,\]])" + _WS,
    re.DOTALL,
)
# A string, or a lone quote (an unterminated string), or a structural character.
_TOKEN = re.compile(_STRING + rb'|"|[\[\]{},]', re.DOTALL)
_SKIP_WS = re.compile(_WS)
_TRAILING_WS = re.compile(_WS + rb"\Z")
_NDJSON_LINE = re.compile(rb"(?m)^[ \t\r]*[^ \t\r\n][^\n]*")
_NOT_JSON = frozenset({"record.not_json", "record.not_utf8"})
_OBJECT_CUT = re.compile(rb"\}[ \t\r\n]*,[ \t\r\n]*\{")
_OPENER = re.compile(rb"[\[{]")
_BLANK = re.compile(rb"[ \t\r]*")
_WHITESPACE = frozenset(b" \t\r\n")
_OPENERS = frozenset(b"[{")
_CLOSERS = frozenset(b"]}")


class NotJson(Exception):
    """The body cannot be cut into records: it is not JSON (or NDJSON) at all."""


class NotAnArray(Exception):
    """The body is JSON, but not an array; `looks_like_ndjson` when it is lines of objects."""

    def __init__(self, message: str, *, looks_like_ndjson: bool) -> None:
        super().__init__(message)
        self.looks_like_ndjson = looks_like_ndjson


class TooManyRecords(Exception):
    """The body holds more records than allowed (counting stops at limit + 1)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"a batch holds at most {limit} records")
        self.limit = limit


# A record's bytes: a view into the request body, or bytes read back from suspense.
Raw = bytes | memoryview


@dataclass(slots=True)  # not frozen: cheaper to build, and built 10,000 times a batch
class Incoming:
    """One record: its exact bytes, its index (array position or NDJSON line number from 0),
    the decoded value, and why it cannot be stored when its bytes alone say so."""

    raw: Raw
    index: int
    value: object = None
    rejection: Rejected | None = None


def _brackets(body: bytes, start: int, end: int) -> int:
    """How many `[` and `{` bytes body[start:end] holds (strings included): a bound on depth."""
    return body.count(b"[", start, end) + body.count(b"{", start, end)


def _depth_within(raw: Raw, limit: int) -> bool:
    """True when no bracket nests deeper than `limit` (strings skipped, no recursion)."""
    depth = 0
    for match in _TOKEN.finditer(raw):
        char = raw[match.start()]
        if char in _OPENERS:
            depth += 1
            if depth > limit:
                return False
        elif char in _CLOSERS:
            depth -= 1
    return True


class _NotJsonConstant(ValueError):
    """NaN, Infinity and -Infinity: Python's json reads them, JSON has no such literals."""


def _reject_constant(name: str) -> object:
    raise _NotJsonConstant(f"{name} is not JSON")


def decode_record(raw: Raw, index: int, *, brackets: int) -> Incoming:
    """Decode one record's bytes; a record that cannot be stored as sent carries its rejection.

    orjson decodes what can be stored. What only Python's json decodes (numbers beyond
    64-bit floating point, unpaired surrogate escapes) is rejected, with the reason of the
    first CDR field at fault when there is one.
    """
    if brackets > MAX_DEPTH and not _depth_within(raw, MAX_DEPTH):
        return Incoming(raw, index, rejection=Rejected("record.too_deep"))
    try:
        return Incoming(raw, index, orjson.loads(raw))
    except orjson.JSONDecodeError:
        pass
    try:
        text = str(raw, "utf-8")
    except UnicodeDecodeError:
        return Incoming(raw, index, rejection=Rejected("record.not_utf8"))
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, _NotJsonConstant, RecursionError):
        return Incoming(raw, index, rejection=Rejected("record.not_json"))
    except ValueError:  # an integer of more than 4,300 digits (sys.get_int_max_str_digits)
        return Incoming(raw, index, rejection=Rejected("record.unsupported_value"))
    try:
        parse_cdr(value, require_id=True)
    except Rejected as rejection:
        return Incoming(raw, index, value, rejection)
    return Incoming(raw, index, value, Rejected("record.unsupported_value"))


def split_ndjson(body: bytes, *, max_records: int) -> list[Incoming]:
    """One record per non-blank line; `index` is the line number from 0 (blank lines count)."""
    view = memoryview(body)
    records: list[Incoming] = []
    if body.count(b"\n") <= 2 * max_records:  # few lines: visit each
        start = 0
        for number in range(body.count(b"\n") + 1):
            end = body.find(b"\n", start)
            end = len(body) if end < 0 else end
            if not _BLANK.fullmatch(body, start, end):
                if len(records) == max_records:
                    raise TooManyRecords(max_records)
                stop = _line_end(body, start, end)
                brackets = _brackets(body, start, stop)
                records.append(decode_record(view[start:stop], number, brackets=brackets))
            start = end + 1
        return _json_lines(records)
    # Millions of lines cost no Python step each: the regex skips blank ones, counting as we go.
    line_number = 0
    counted_to = 0
    for match in _NDJSON_LINE.finditer(body):
        if len(records) == max_records:
            raise TooManyRecords(max_records)
        line_number += body.count(b"\n", counted_to, match.start())
        counted_to = match.start()
        start, end = match.span()
        stop = _line_end(body, start, end)
        brackets = _brackets(body, start, stop)
        records.append(decode_record(view[start:stop], line_number, brackets=brackets))
    return _json_lines(records)


def _line_end(body: bytes, start: int, end: int) -> int:
    """A line's end without the CR of a CRLF line ending."""
    return end - 1 if end > start and body[end - 1] == 0x0D else end


def _trimmed_end(body: bytes, end: int) -> int:
    """`end` moved back over whitespace."""
    while end > 0 and body[end - 1] in _WHITESPACE:
        end -= 1
    return end


def _json_lines(records: list[Incoming]) -> list[Incoming]:
    """The records, unless not one line is JSON: then the body is not NDJSON at all."""
    if records and all(
        record.rejection is not None and record.rejection.code in _NOT_JSON for record in records
    ):
        raise NotJson("no line of the NDJSON body is JSON")
    return records


def _scan_element(body: bytes, start: int) -> int:
    """End of the array element starting at `start`: the `,` or `]` closing it at depth 0."""
    depth = 0
    position = start
    while True:
        match = _TOKEN.search(body, position)
        if match is None:
            raise NotJson(f"the array is not closed (element from byte {start})")
        char = body[match.start()]
        if char == 0x22:  # '"'
            if match.end() - match.start() == 1:
                raise NotJson(f"a string is not closed (from byte {match.start()})")
        elif char in _OPENERS:
            depth += 1
        elif char in _CLOSERS and depth > 0:
            depth -= 1
        elif depth == 0:  # `,` or the array's `]`
            return match.start()
        position = match.end()


def _not_an_array(body: bytes, max_records: int) -> Exception:
    """Why a body that does not open with `[` is refused (parsed whole only when it cannot
    hold more containers than a batch holds records)."""
    first_line_end = body.find(b"\n")
    second_line = body[first_line_end + 1 : first_line_end + 65] if first_line_end >= 0 else b""
    first = _SKIP_WS.match(body).end()  # type: ignore[union-attr]
    if body[first : first + 1] == b"{" and second_line.lstrip()[:1] == b"{":
        return NotAnArray(
            "the body is lines of JSON objects: send NDJSON with "
            "Content-Type: application/x-ndjson",
            looks_like_ndjson=True,
        )
    if body.count(b"{") + body.count(b"[") > max_records:
        return NotJson("body is not a JSON array")
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return NotJson("body is not JSON")
    return NotAnArray(
        "body must be a JSON array of CDRs (or NDJSON sent with "
        "Content-Type: application/x-ndjson)",
        looks_like_ndjson=False,
    )


def _split_objects(body: bytes, start: int, *, max_records: int) -> list[Incoming] | None:
    """The common case fast: an array of objects cut at each `},{`, every piece decoded by
    orjson. Cut inside a string or a nested array, a piece would not decode (JSON is read
    left to right: the piece would end inside a string or an open bracket), so when every
    piece decodes the cuts are the array's own. None when one does not: then the caller
    scans the body byte by byte."""
    end = _trimmed_end(body, len(body))
    if body[start : start + 1] != b"{" or body[end - 1 : end] != b"]":
        return None
    stop = _trimmed_end(body, end - 1)
    view = memoryview(body)
    records: list[Incoming] = []
    for match in _OBJECT_CUT.finditer(body, start, stop):
        if len(records) == max_records:
            return None  # the scanner counts exactly (a cut inside a string is no record)
        records.append(_decoded_object(body, view, start, match.start() + 1, len(records)))
        if records[-1].value is None:
            return None
        start = match.end() - 1
    records.append(_decoded_object(body, view, start, stop, len(records)))
    if records[-1].value is None or len(records) > max_records:
        return None
    return records


def _decoded_object(body: bytes, view: memoryview, start: int, end: int, index: int) -> Incoming:
    """body[start:end] decoded as an object, or an Incoming without value when it is not one."""
    raw = view[start:end]
    if _brackets(body, start, end) > MAX_DEPTH:
        return Incoming(raw, index)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Incoming(raw, index)
    return Incoming(raw, index, value if isinstance(value, dict) else None)


def split_array(body: bytes, *, max_records: int) -> list[Incoming]:
    """The elements of a JSON array body, each decoded on its own."""
    position = _SKIP_WS.match(body).end()  # type: ignore[union-attr]
    if position == len(body):
        raise NotJson("body is empty")
    if body[position] != 0x5B:  # '['
        raise _not_an_array(body, max_records)
    position = _SKIP_WS.match(body, position + 1).end()  # type: ignore[union-attr]
    objects = _split_objects(body, position, max_records=max_records)
    if objects is not None:
        return objects
    view = memoryview(body)
    records: list[Incoming] = []
    if body[position : position + 1] == b"]":
        position += 1
    else:
        while True:
            if len(records) == max_records:
                raise TooManyRecords(max_records)
            fast = _FAST_ELEMENT.match(body, position)
            if fast is not None:
                element_end = fast.end(1)
                closer = fast.group(2)
                after = fast.end()
            else:
                end = _scan_element(body, position)
                element_end = _trimmed_end(body, end)
                closer = body[end : end + 1]
                after = _SKIP_WS.match(body, end + 1).end()  # type: ignore[union-attr]
            if element_end == position:
                raise NotJson(f"array element {len(records)} is empty (byte {position})")
            element = view[position:element_end]
            brackets = _brackets(body, position, element_end)
            records.append(decode_record(element, len(records), brackets=brackets))
            position = after
            if closer == b"]":
                break
    if _TRAILING_WS.match(body, position) is None:
        raise NotJson(f"data after the array's end (byte {position})")
    return records
