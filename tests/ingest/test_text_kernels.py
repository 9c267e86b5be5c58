"""service.ingest.text_kernels: the column way's results, written by a kernel, are what orjson
writes for the same results (records.record_result's dicts)."""

from __future__ import annotations

import io
import subprocess
import sys
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
from hypothesis import given, settings
from hypothesis import strategies as st

from service.ingest import text_kernels

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
    written = text_kernels.results(
        text_kernels.template(CLASSES, VERSIONS),
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


PLAIN = st.text(  # what the scanner takes as text: printable ASCII, no quote, no backslash
    st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'), max_size=80
)
RAW = st.text(st.characters(min_codepoint=0x09, max_codepoint=0x7E), max_size=200)
INSTANT = "2026-11-24T10:00:00.123456+00:00"


def _arrow_csv(columns: list[pa.Array]) -> bytes:
    """What Arrow's CSV writer made of the same columns (the service's writer before)."""
    buffer = io.BytesIO()
    table = pa.table(columns, names=[f"c{i}" for i in range(len(columns))])
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
    return buffer.getvalue()


CDR_ROW = st.tuples(
    PLAIN,
    PLAIN,
    PLAIN,
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 2**40),
    st.none() | PLAIN,
    RAW,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(CDR_ROW, max_size=20), st.randoms())
def test_cdrs_csv_is_what_arrow_writes(rows: list[tuple[Any, ...]], random: Any) -> None:
    order = list(range(len(rows)))
    random.shuffle(order)
    ids, callers, callees, starts, durations, legs, raws = (
        [row[i] for row in rows] for i in range(7)
    )
    text = text_kernels.cdrs_csv(
        np.array(order, np.int64),
        ids=pa.array(ids, pa.string()),
        callers=pa.array(callers, pa.string()),
        callees=pa.array(callees, pa.string()),
        start_epoch=np.array(starts, np.int64),
        durations=np.array(durations, np.int64),
        legs=pa.array(legs, pa.string()),
        default_leg="originating",
        raws=pa.array(raws, pa.string()),
        received_at=INSTANT,
        national_digits=11,
    )
    expected = _arrow_csv(
        [
            pa.array([ids[r] for r in order], pa.string()),
            pa.array([callers[r][-11:] for r in order], pa.string()),
            pa.array([callees[r][:64] for r in order], pa.string()),
            pa.array([starts[r] for r in order], pa.int64()),
            pa.array([durations[r] for r in order], pa.int64()),
            pa.array(["originating" if legs[r] is None else legs[r] for r in order], pa.string()),
            pa.array([raws[r] for r in order], pa.string()),
            pa.array([INSTANT] * len(rows), pa.string()),
        ]
    )
    assert text.tobytes() == expected


PROFILE = st.tuples(
    st.none() | PLAIN, st.none() | PLAIN, st.none() | RAW, st.none() | st.booleans()
)
NAMES = ["cmcc-2009", 'a "quoted", name', ""]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(PLAIN, st.integers(-(2**63), 2**63 - 1)), max_size=20),
    st.lists(PROFILE, min_size=1, max_size=4),
    st.data(),
)
def test_ratings_csv_is_what_arrow_writes(
    rows: list[tuple[str, int]], profiles: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    n = len(rows)
    codes = [
        np.array(data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))) for _ in "tcdr"
    ]
    profile = np.array(
        data.draw(st.lists(st.integers(0, len(profiles) - 1), min_size=n, max_size=n))
    )
    tariff, call_class, dial, roaming = codes
    text = text_kernels.ratings_csv(
        text_kernels.rating_template(NAMES, NAMES[::-1], NAMES, NAMES[::-1]),
        ids=pa.array([row[0] for row in rows], pa.string()),
        tariff=tariff.astype(np.int16),
        charge=np.array([row[1] for row in rows], np.int64),
        call_class=call_class.astype(np.int16),
        dial=dial.astype(np.int16),
        roaming=roaming.astype(np.int16),
        rated_at=INSTANT,
        source="ingest",
        profiles=profiles,
        profile=profile,
    )
    expected = _arrow_csv(
        [
            pa.array([row[0] for row in rows], pa.string()),
            pa.array([1] * n, pa.int32()),
            pa.array([NAMES[i] for i in tariff.tolist()], pa.string()),
            pa.array([row[1] for row in rows], pa.int64()),
            pa.array([NAMES[::-1][i] for i in call_class.tolist()], pa.string()),
            pa.array([NAMES[i] for i in dial.tolist()], pa.string()),
            pa.array([NAMES[::-1][i] for i in roaming.tolist()], pa.string()),
            pa.array([INSTANT] * n, pa.string()),
            pa.array(["ingest"] * n, pa.string()),
            *(
                pa.array([profiles[p][i] for p in profile.tolist()], type_)
                for i, type_ in enumerate((pa.string(), pa.string(), pa.string(), pa.bool_()))
            ),
        ]
    )
    assert text.tobytes() == expected


# In a fresh interpreter: after warm(), the calls ingest makes (columns as the scanner gives
# them, codes and numbers as the rating kernels give them) add no kernel signature.
AFTER_WARM = """
import numpy as np, pyarrow.compute as pc
from service.ingest import text_kernels
from service.ingest import scan
text_kernels.warm()
kernels = (text_kernels._write, text_kernels._cdrs, text_kernels._ratings)
warmed = [len(kernel.signatures) for kernel in kernels]
body = b'{"id": "a", "caller": "13800138000", "callee": "02188001234", "duration_s": 9}'
rows = scan.scan_body(body, ndjson=True, max_records=10).fast
ids, n = rows.column("id").combine_chunks(), rows.num_rows
codes, numbers = np.zeros(n, np.int16), np.zeros(n, np.int64)
text_kernels.results(
    text_kernels.template(["c"], ["t"]),
    rows.column("index").combine_chunks().to_numpy(), ids, numbers, codes, codes,
)
text_kernels.cdrs_csv(
    pc.sort_indices(ids).to_numpy(), ids=ids, callers=rows.column("caller"),
    callees=rows.column("callee"), start_epoch=numbers,
    durations=rows.column("duration_s").to_numpy(), legs=rows.column("type"),
    default_leg="originating", raws=rows.column("raw"), received_at="x", national_digits=11,
)
national = pc.utf8_slice_codeunits(rows.column("caller"), -11).combine_chunks()
text_kernels.ratings_csv(
    text_kernels.rating_template(["t"], ["c"], ["d"], ["r"]), ids=ids, tariff=codes,
    charge=numbers, call_class=codes, dial=codes, roaming=codes, rated_at="x",
    source="ingest", profiles=[(None, None, None, None)],
    profile=pc.dictionary_encode(national).indices.to_numpy(),
)
print(warmed == [len(kernel.signatures) for kernel in kernels], min(warmed))
"""


def test_warm_compiles_the_signatures_ingest_uses() -> None:
    done = subprocess.run(
        [sys.executable, "-c", AFTER_WARM], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["True", "1"]
