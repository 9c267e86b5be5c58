"""Cutting a batch body into records: the cuts are exactly the array's elements (strings
holding `},{`, `"` and `\\`, nested arrays of objects, any spacing), and NDJSON lines."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.ingest.cut import NotJson, TooManyRecords, split_array, split_ndjson

TRICKY_TEXT = st.text(alphabet=st.sampled_from('ab},{[]"\\: \n\t\u00e9\u4e2d'), max_size=12)
SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | TRICKY_TEXT
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(TRICKY_TEXT, children, max_size=4)
    ),
    max_leaves=12,
)
ELEMENTS = st.lists(st.dictionaries(TRICKY_TEXT, VALUES, max_size=5) | VALUES, max_size=12)


@settings(max_examples=300, deadline=None)
@given(elements=ELEMENTS, indent=st.sampled_from([None, 0, 2]), compact=st.booleans())
def test_array_cut_at_its_own_elements(
    elements: list[object], indent: int | None, compact: bool
) -> None:
    separators = (",", ":") if compact else (", ", ": ")
    body = json.dumps(elements, indent=indent, separators=separators, ensure_ascii=False).encode()
    records = split_array(body, max_records=100)
    assert [record.value for record in records] == elements
    assert [record.index for record in records] == list(range(len(elements)))
    for record, element in zip(records, elements, strict=True):
        assert orjson.loads(record.raw) == element
        assert bytes(record.raw) in body
        assert bytes(record.raw) == bytes(record.raw).strip()


@settings(max_examples=200, deadline=None)
@given(elements=st.lists(st.dictionaries(TRICKY_TEXT, VALUES, max_size=5), max_size=12))
def test_ndjson_lines_numbered_from_zero(elements: list[dict[str, object]]) -> None:
    lines: list[bytes] = []
    expected: list[int] = []
    for element in elements:
        lines.append(orjson.dumps(element))
        expected.append(len(lines) - 1)
        lines.append(b"  ")  # a blank line counts as a line
    records = split_ndjson(b"\r\n".join(lines), max_records=100)
    assert [record.value for record in records] == elements
    assert [record.index for record in records] == expected


def test_record_limit_counts_elements_not_cuts() -> None:
    tricky = orjson.dumps({"note": "},{" * 10})
    assert len(split_array(b"[" + b",".join([tricky] * 3) + b"]", max_records=3)) == 3
    with pytest.raises(TooManyRecords):
        split_array(b"[" + b",".join([tricky] * 4) + b"]", max_records=3)
    with pytest.raises(TooManyRecords):
        split_ndjson(b"{}\n" * 4, max_records=3)
    assert len(split_ndjson(b"{}\n" + b"\n" * 50 + b"{}", max_records=2)) == 2


@pytest.mark.parametrize(
    "body",
    [b"[", b"[{}", b'[{"a":"}]', b"[{},]", b"[,{}]", b"[{}] x", b'["\\"]'],
)
def test_arrays_that_cannot_be_cut(body: bytes) -> None:
    with pytest.raises(NotJson):
        split_array(body, max_records=10)
