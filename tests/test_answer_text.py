"""service.answer_text: the column way's results, written by a kernel, are what orjson writes
for the same results (flows.record_result's dicts)."""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from service import answer_text

CLASSES = ["local", "domestic_ld", "international"]
VERSIONS = ["cmcc-2009", "cmcc-2010"]
ID_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'), max_size=64
)
ROW = st.tuples(
    st.integers(0, 2**63 - 1),  # index
    ID_TEXT,
    st.integers(-(2**63), 2**63 - 1),  # charge: any int64, though charges are never negative
    st.integers(0, len(CLASSES) - 1),
    st.integers(0, len(VERSIONS) - 1),
)


def _expected(row: tuple[int, str, int, int, int]) -> bytes:
    index, record_id, charge, call_class, tariff = row
    return orjson.dumps(
        {
            "index": index,
            "id": record_id,
            "result": "rated",
            "charge_fen": charge,
            "call_class": CLASSES[call_class],
            "tariff": VERSIONS[tariff],
        }
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(ROW, max_size=30), st.integers(0, 3))
def test_results_are_what_orjson_writes(
    rows: list[tuple[int, str, int, int, int]], skip: int
) -> None:
    # sliced: an array whose offset is not 0
    ids = pa.array(["skipped"] * skip + [row[1] for row in rows], pa.string()).slice(skip)
    written = answer_text.results(
        answer_text.template(CLASSES, VERSIONS),
        np.array([row[0] for row in rows], np.int64),
        ids,
        np.array([row[2] for row in rows], np.int64),
        np.array([row[3] for row in rows], np.int16),
        np.array([row[4] for row in rows], np.int16),
    )
    expected = [_expected(row) for row in rows]
    assert written.text.tobytes() == b",".join(expected)
    assert written.ends.tolist() == [
        sum(len(text) for text in expected[: i + 1]) + i for i in range(len(rows))
    ]
