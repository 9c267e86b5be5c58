"""The scanner takes the ordinary records straight to columns and hands every other record
over as split_ndjson / split_array cut and decode it: merged by index, the two are exactly
their list (or their exception), and the columns are record_columns' for each record taken."""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.ingest import scan
from service.ingest.cut import (
    Incoming,
    NotAnArray,
    NotJson,
    TooManyRecords,
    split_array,
    split_ndjson,
)
from service.ingest.scan import FAST_SCHEMA, scan_body, warm_scanner
from service.rating import load_rater
from service.rating.batch import NULL_REFUSED, RECORD_SCHEMA, record_columns
from service.tools.bench import generate_cdrs
from service.tools.loadtest import record
from tests.conftest import TARIFFS

Summary = tuple[int, bytes, Any, str | None, str | None]


def summary(incoming: Incoming) -> Summary:
    rejection = incoming.rejection
    return (
        incoming.index,
        bytes(incoming.raw),
        incoming.value,
        None if rejection is None else rejection.code,
        None if rejection is None else rejection.field,
    )


def check(body: bytes, *, ndjson: bool, max_records: int = 100) -> pa.Table:
    """The invariant for one body; the records the scanner took."""
    split = split_ndjson if ndjson else split_array
    try:
        expected = split(body, max_records=max_records)
    except (NotJson, NotAnArray, TooManyRecords) as error:
        refused: Exception = error
    else:
        return check_records(body, expected, ndjson=ndjson, max_records=max_records)
    with pytest.raises(type(refused)) as raised:
        scan_body(body, ndjson=ndjson, max_records=max_records)
    assert (str(raised.value), vars(raised.value)) == (str(refused), vars(refused))
    return FAST_SCHEMA.empty_table()


def check_records(
    body: bytes, expected: list[Incoming], *, ndjson: bool, max_records: int
) -> pa.Table:
    scanned = scan_body(body, ndjson=ndjson, max_records=max_records)
    fast = scanned.fast
    assert fast.schema == FAST_SCHEMA
    raws = fast.column("raw").cast(pa.binary()).to_pylist()
    values = [orjson.loads(raw) for raw in raws]
    taken = [
        Incoming(raw, index, value)
        for raw, index, value in zip(raws, fast.column("index").to_pylist(), values, strict=True)
    ]
    merged = sorted(taken + scanned.others, key=lambda incoming: incoming.index)
    assert [summary(incoming) for incoming in merged] == [summary(r) for r in expected]
    assert fast.column("index").to_pylist() == sorted(fast.column("index").to_pylist())
    columns, odd = record_columns(values)
    assert not odd
    assert fast.select(RECORD_SCHEMA.names).equals(columns)
    for name in RECORD_SCHEMA.names:  # row by row too: a message names the field
        assert fast.column(name).to_pylist() == columns.column(name).to_pylist(), name
    return fast


@cache
def generated_records() -> list[dict[str, Any]]:
    """bench.generate_cdrs rows as a switch would send them (absent fields left out, or
    null where null means absent)."""
    rows = generate_cdrs(load_rater(TARIFFS), 300, seed=11).to_pylist()
    return [
        {
            key: value
            for key, value in row.items()
            if value is not None or (i % 2 and key not in NULL_REFUSED)
        }
        for i, row in enumerate(rows)
    ]


ORDINARY = st.one_of(
    st.integers(0, 10_000).map(lambda i: record(i, prefix="scan")),
    st.integers(0, 299).map(lambda i: generated_records()[i]),
)
# Values the scanner must leave alone (or take: `-0`), as JSON text.
ODD_VALUES = [
    b"-0", b"0", b"01", b"-", b"1.0", b"1e3", b"1E3", b"-1", b"123456789012345678",
    b"1234567890123456789", b"-999999999999999999", b"99999999999999999999999", b"1" * 400,
    b"true", b"false", b"null", b"nul", b"tru", b"falsey", b'"a\\"b"', b'"\\u4e2d"',
    b'"\\ud800"', b'"\\n"', '"中"'.encode(), b'"\xff"', b'"\x00"', b'"a\tb"', b"[]", b'["a"]',
    b'["a", 1]', b'[["a"]]', b'{"a": [1]}', b"{}", b'["a",]', b'[,"a"]', b'"', b'"},{"',
    b'"a,b"', b'"]}"', b'"\\\\"', b'"a\\"],{"', b'"[{"', b"NaN", b"Infinity",
    b'"forwarded"', b'"unconditional"', b"\x00", b"\xff", b"",
]  # fmt: skip
KEYS = [
    "id", "caller", "callee", "start", "duration_s", "type", "forward_kind", "visited_area",
    "plan", "packages", "extra", "note", "forwarded", "", "a b", "ca\\u006cler", "中",
    "duration", "ID",
]  # fmt: skip
WS = st.sampled_from([b"", b"", b" ", b"  ", b"\t", b"\r", b"\n", b" \r\n "])
TEXT_VALUES = st.sampled_from(
    [
        b'"13800138000"',
        b'"02188001234"',
        b'"2010-03-01T10:00:00+08:00"',
        b'"forwarded"',
        b'"unconditional"',
        b'"gotone"',
        b'"021"',
        b'"terminating"',
        b'""',
        b'" ~!"',
    ]
)
ESCAPED = [b'"\\u4e2d"', b'"\\ud800"', b'"\\n"', b'"\\\\"', b'"\\/"', b'"a\\"b"', b'"\\u0041"']
VALUES = st.one_of(
    st.sampled_from(ODD_VALUES),
    st.sampled_from(ESCAPED),
    TEXT_VALUES,
    st.integers(-(2**70), 2**70).map(lambda i: str(i).encode()),
    st.lists(TEXT_VALUES, max_size=3).map(lambda items: b"[" + b", ".join(items) + b"]"),
)


@st.composite
def objects(draw: st.DrawFn) -> bytes:
    """One record as JSON text: an ordinary record re-spaced and changed, or built by hand."""
    if draw(st.booleans()):
        pairs = [(orjson.dumps(key), orjson.dumps(value)) for key, value in draw(ORDINARY).items()]
        for _ in range(draw(st.integers(0, 2))):
            position = draw(st.integers(0, len(pairs)))
            pairs.insert(position, (orjson.dumps(draw(st.sampled_from(KEYS))), draw(VALUES)))
        if pairs and draw(st.booleans()):
            position = draw(st.integers(0, len(pairs) - 1))
            pairs[position] = (pairs[position][0], draw(VALUES))
    else:
        keys = st.sampled_from(KEYS).map(lambda key: orjson.dumps(key))
        pairs = draw(st.lists(st.tuples(keys, VALUES), max_size=6))
    ws = draw(st.lists(WS, min_size=4 * len(pairs) + 2, max_size=4 * len(pairs) + 2))
    if draw(st.booleans()):  # the common spacing: none, or orjson's
        ws = [b""] * len(ws)
    parts = [b"{", ws[0]]
    for i, (key, value) in enumerate(pairs):
        if i:
            parts += [b",", ws[4 * i]]
        parts += [key, ws[4 * i + 1], b":", ws[4 * i + 2], value, ws[4 * i + 3]]
    parts += [ws[-1], b"}"]
    text = b"".join(parts)
    mutation = draw(st.integers(0, 9))
    if mutation == 0 and text:  # truncated
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif mutation == 1:  # a stray byte
        position = draw(st.integers(0, len(text)))
        stray = draw(st.sampled_from([b"\x00", b"\xff", b"}", b",", b'"', b"\\", b"]", b"x"]))
        text = text[:position] + stray + text[position:]
    return text


LINES = st.one_of(
    objects(),
    objects(),
    objects(),
    st.sampled_from([b"", b"  ", b"\t\r", b"[1]", b"1", b'"x"', b"null", b"{", b"}", b"[]"]),
)


ANCHOR = b'{"id": "anchor", "duration_s": 60}'  # a record the scanner always takes
ANCHORS = st.lists(st.integers(0, 12), max_size=3)


def anchored(pieces: list[bytes], positions: list[int]) -> tuple[list[bytes], list[int]]:
    """The pieces with an ANCHOR inserted at each position (clamped); where they landed."""
    pieces = list(pieces)
    for position in positions:
        pieces.insert(min(position, len(pieces)), ANCHOR)
    return pieces, [i for i, piece in enumerate(pieces) if piece is ANCHOR]


def is_json(text: bytes) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(LINES),
    ends=st.lists(st.sampled_from([b"\n", b"\r\n", b"\r\r\n", b" \n"]), min_size=16),
    last=st.sampled_from([b"", b"\n", b"\r\n"]),
    anchors=ANCHORS,
    max_records=st.sampled_from([3, 100]),
)
def test_ndjson_bodies(
    lines: list[bytes], ends: list[bytes], last: bytes, anchors: list[int], max_records: int
) -> None:
    lines, anchor_lines = anchored(lines, anchors)
    body = b""
    numbers = []  # the line number of each piece (a piece may hold newlines)
    for i, line in enumerate(lines):
        numbers.append(body.count(b"\n"))
        body += line + (ends[i % len(ends)] if i < len(lines) - 1 else last)
    fast = check(body, ndjson=True, max_records=max_records)
    if sum(1 for line in body.split(b"\n") if line.strip(b" \t\r")) <= max_records:
        taken = set(fast.column("index").to_pylist())
        assert {numbers[i] for i in anchor_lines} <= taken


@settings(max_examples=400, deadline=None)
@given(
    elements=st.lists(
        st.one_of(objects(), st.sampled_from([b"1", b'"a"', b"[]", b"[{}]", b"null", b"{}"]))
    ),
    ws=st.lists(WS, min_size=4, max_size=4),
    anchors=ANCHORS,
    max_records=st.sampled_from([3, 100]),
)
def test_array_bodies(
    elements: list[bytes], ws: list[bytes], anchors: list[int], max_records: int
) -> None:
    elements, anchor_elements = anchored(elements, anchors)
    separator = ws[2] + b"," + ws[3]
    body = ws[0] + b"[" + ws[1] + separator.join(elements) + ws[2] + b"]" + ws[3]
    fast = check(body, ndjson=False, max_records=max_records)
    if len(elements) <= max_records and all(is_json(element) for element in elements):
        # A valid array is never handed over whole: its anchors are taken.
        assert set(anchor_elements) <= set(fast.column("index").to_pylist())


@settings(max_examples=400, deadline=None)
@given(
    text=st.binary(max_size=40)
    | st.text(alphabet='{}[]",:\\ \n\r\t01-.aeu"', max_size=60).map(str.encode),
    prefix=st.sampled_from([b"", b"[", b'[{"id":"a"},', b'{"id":"a"}\n']),
    ndjson=st.booleans(),
)
def test_any_bytes(text: bytes, prefix: bytes, ndjson: bool) -> None:
    check(prefix + text, ndjson=ndjson, max_records=5)


def test_ordinary_records_are_all_taken() -> None:
    records = [record(i, prefix="scan") for i in range(50)] + generated_records()
    lines = [orjson.dumps(r) for r in records]
    assert check(b"\n".join(lines), ndjson=True, max_records=1000).num_rows == len(records)
    assert check(orjson.dumps(records), ndjson=False, max_records=1000).num_rows == len(records)
    spaced = orjson.dumps(records, option=orjson.OPT_INDENT_2)
    assert check(spaced, ndjson=False, max_records=1000).num_rows == len(records)
    crlf = b"\r\n\r\n".join(lines) + b"\r\n"
    taken = check(crlf, ndjson=True, max_records=1000)
    assert taken.column("index").to_pylist() == list(range(0, 2 * len(records), 2))


@pytest.mark.parametrize(
    ("text", "taken"),
    [
        (b'{"id": "a", "duration_s": -0}', True),
        (b'{"id": "a", "duration_s": 123456789012345678}', True),
        (b'{"id": "a", "duration_s": 1234567890123456789}', False),
        (b'{"id": "a", "duration_s": 1.0}', False),
        (b'{"id": "a", "duration_s": 1e3}', False),
        (b'{"id": "a", "duration_s": 01}', False),
        (b'{"id": "a", "duration_s": "60"}', False),
        (b'{"id": "a", "caller": true}', False),
        (b'{"id": "a", "caller": 13800138000}', False),
        (b'{"id": "a\\"b"}', False),
        (b'{"id": "\\u4e2d"}', False),
        (b'{"id": "\\ud800"}', False),
        ('{"id": "中"}'.encode(), False),
        (b'{"id": "a\xff"}', False),
        (b'{"id": "a\x00"}', False),
        (b'{"id": "a", "id": "b"}', False),
        (b'{"id": "a", "x": 1, "x": 2}', False),
        (b'{"id": "a", "x": {"y": 1}}', False),
        (b'{"id": "a", "x": [1]}', False),
        (b'{"id": "a", "x": 1.5}', False),
        (b'{"id": "a", "x": true, "y": false, "z": null, "w": "v", "v": -12}', True),
        (b'{"id": "a", "packages": ["a", "b"]}', True),
        (b'{"id": "a", "packages": []}', True),
        (b'{"id": "a", "packages": null}', True),
        (b'{"id": "a", "packages": ["a", 1]}', False),
        (b'{"id": "a", "packages": "a"}', False),
        (b'{"id": "a", "packages": [["a"]]}', False),
        (b'{"type": "forwarded", "forward_kind": "conditional"}', True),
        (b'{"type": "terminating", "forward_kind": "conditional"}', True),
        (b'{"forward_kind": "conditional"}', True),
        (b'{"ty\\u0070e": "forwarded"}', False),
        (b"{}", True),
        (b" { } ", True),
        (b'{"id": "a",}', False),
        (b'{"id": "a"', False),
        (b'{"id": "a"} x', False),
        (b'[{"id": "a"}]', False),
    ],
)
def test_records_by_hand(text: bytes, taken: bool) -> None:
    line = check(text + b"\n" + b'{"id": "anchor"}', ndjson=True)
    assert line.num_rows == 1 + taken
    array = b'[{"id": "anchor"}, ' + text + b"]"
    try:
        split_array(array, max_records=100)
    except NotJson:  # a record cut short leaves the array open
        assert check(array, ndjson=False).num_rows == 0
    else:
        assert check(array, ndjson=False).num_rows == 1 + taken


@pytest.mark.parametrize(
    ("body", "ndjson", "error"),
    [
        (b"[", False, NotJson),
        (b"[{}", False, NotJson),
        (b'[{"a":"}]', False, NotJson),
        (b"[{},]", False, NotJson),
        (b"[,{}]", False, NotJson),
        (b"[{}] x", False, NotJson),
        (b'["\\"]', False, NotJson),
        (b'[{"id": "a"}, "\\', False, NotJson),
        (b'[{"id": "a"}, 1}', False, NotJson),
        (b"", False, NotJson),
        (b"  \n", False, NotJson),
        (b'{"a": 1}\n{"b": 2}', False, NotAnArray),
        (b'{"a": 1}', False, NotAnArray),
        (b"x", False, NotJson),
        (b"x\n[\n{\n", True, NotJson),
        (b"{}\n" * 4, True, TooManyRecords),
        (b'{"id": "a"}\n' * 4, True, TooManyRecords),
        (b"[" + b",".join([b'{"id": "a"}'] * 4) + b"]", False, TooManyRecords),
        (b"[" + b",".join([orjson.dumps({"note": "},{" * 10})] * 4) + b"]", False, TooManyRecords),
    ],
)
def test_bodies_refused_as_split_refuses_them(
    body: bytes, ndjson: bool, error: type[Exception]
) -> None:
    with pytest.raises(error):
        scan_body(body, ndjson=ndjson, max_records=3)
    check(body, ndjson=ndjson, max_records=3)


@pytest.mark.parametrize(
    ("body", "ndjson"),
    [
        (b"", True),
        (b"\n\n  \n", True),
        (b"[]", False),
        (b" [ ] ", False),
        (b"[ ,{}]", False),  # split_array cuts an empty element here: the scanner leaves it be
        (b'[{"id": "a"}, {"id": "b"} {"id": "c"}]', False),
        (b'[{"id": "a"}, [1}, {"id": "b"}]', False),
        (b'{"id": "a"}\n' * 3, True),
        (b"{}\n" + b"\n" * 50 + b"{}", True),
    ],
)
def test_bodies_by_hand(body: bytes, ndjson: bool) -> None:
    check(body, ndjson=ndjson, max_records=3)


def test_warm_up_compiles_the_signature_requests_use() -> None:
    warm_scanner()
    compiled = list(scan._scan.signatures)
    assert len(compiled) == 1
    check(b'{"id": "a"}\n' * 3, ndjson=True)
    check(b'[{"id": "a"}, 1]', ndjson=False)
    assert list(scan._scan.signatures) == compiled
