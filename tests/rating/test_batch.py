"""The batch path gives, row for row, what the per-call path gives (charge, class, rejection)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.rating.batch import INPUT_COLUMNS, OUTPUT_COLUMNS, BatchRater, rate_batch
from service.rating.batch_kernels import REJECTION, charge_of
from service.rating.pricing import charge_fen
from service.rating.rejections import Rejected
from service.rating.scalar import Rater, SubscriberProfile
from service.tools.bench import generate_cdrs
from tests.conftest import column_record, golden_cases

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("caller", pa.string()),
        ("callee", pa.string()),
        ("start", pa.string()),
        ("duration_s", pa.int64()),
        ("type", pa.string()),
        ("forward_kind", pa.string()),
        ("visited_area", pa.string()),
        ("plan", pa.string()),
        ("packages", pa.list_(pa.string())),
    ]
)
Outcome = tuple[int | None, str | None, str | None, str | None, str | None]


@pytest.fixture(scope="module")
def batch_rater(rater: Rater) -> BatchRater:
    return BatchRater(rater)


def scalar_outcome(
    rater: Rater, raw: dict[str, Any], subscriber: SubscriberProfile | None = None
) -> Outcome:
    try:
        rating = rater.rate_raw(column_record(raw), subscriber=subscriber)
    except Rejected as rejection:
        return (None, None, None, None, rejection.code)
    return (rating.charge_fen, rating.call_class, rating.dial, rating.roaming, None)


def batch_outcomes(rated: pa.Table) -> list[Outcome]:
    columns = [rated.column(name).to_pylist() for name in OUTPUT_COLUMNS if name != "tariff"]
    return list(zip(*columns, strict=True))


def assert_same(rater: Rater, table: pa.Table, rated: pa.Table) -> None:
    expected = [scalar_outcome(rater, raw) for raw in table.to_pylist()]
    got = batch_outcomes(rated)
    differ = [
        (raw, want, have)
        for raw, want, have in zip(table.to_pylist(), expected, got, strict=True)
        if want != have
    ]
    assert not differ, f"{len(differ)} rows differ, first: {differ[:3]}"


def test_golden_cases_through_the_batch_path(batch_rater: BatchRater) -> None:
    cases = golden_cases()
    table = pa.Table.from_pylist([case["request"] for case in cases], schema=SCHEMA)
    rated = batch_rater.rate(table)
    for case, row in zip(cases, rated.to_pylist(), strict=True):
        expect = case["expect"]
        if expect.get("rejected"):
            assert row["reason"] is not None, case["name"]
            assert row["charge_fen"] is None, case["name"]
            continue
        assert row["reason"] is None, case["name"]
        for name, value in expect.items():
            assert row[name] == value, (case["name"], name)


def test_generated_cdrs_rate_identically_both_ways(rater: Rater, batch_rater: BatchRater) -> None:
    table = generate_cdrs(rater, 100_000, seed=20100101)
    rated = batch_rater.rate(table)
    outcomes = batch_outcomes(rated)
    reasons = {o[4] for o in outcomes}
    assert len(reasons) > 15, "the generator should exercise many rejection codes"
    assert {o[1] for o in outcomes} >= {
        "local",
        "domestic_ld",
        "hmt",
        "international",
        "satellite",
        "special",
        "incoming",
        "forward",
    }
    assert set(rated.column("tariff").drop_null().to_pylist()) == {"cmcc-2009", "cmcc-2010"}
    assert_same(rater, table, rated)


def test_input_columns_come_back_unchanged(rater: Rater, batch_rater: BatchRater) -> None:
    table = generate_cdrs(rater, 2_000, seed=7)
    rated = batch_rater.rate(table)
    assert rated.column_names == [*table.column_names, *OUTPUT_COLUMNS]
    assert rated.select(list(INPUT_COLUMNS)).equals(table)
    assert rated.schema.field("charge_fen").type == pa.int64()
    reason, charge = rated.column("reason"), rated.column("charge_fen")
    assert reason.null_count + charge.null_count == len(rated)  # exactly one of them is set
    assert 0 < charge.null_count < len(rated)


def test_the_per_key_rate_totals_give_charge_fen_for_every_duration(
    rater: Rater, batch_rater: BatchRater
) -> None:
    batch_rater.rate(generate_cdrs(rater, 20_000, seed=3))
    prices = batch_rater.prices
    keys = [
        key
        for key in np.flatnonzero(prices.row >= 0).tolist()
        if prices.rates[prices.row[key], REJECTION] < 0
    ]
    assert len(keys) > 100
    for key in keys:
        pricing = rater.pricing(batch_rater._case(key))
        got = [charge_of(prices.rates[prices.row[key]], d) for d in range(400)]
        assert got == [charge_fen(pricing, d) for d in range(400)]


def test_an_empty_table_and_absent_columns(rater: Rater) -> None:
    assert rate_batch(pa.Table.from_pylist([], schema=SCHEMA), rater).num_rows == 0
    table = pa.table(
        {
            "caller": ["13800138000", "13800138000"],
            "callee": ["02188001234", "10086"],
            "start": ["2010-03-01T10:00:00+08:00", "2010-03-01T10:00:00"],
            "duration_s": [125, 30],
        }
    )
    rated = rate_batch(table, rater, default_plan="gotone")
    assert rated.column("charge_fen").to_pylist() == [126, 0]
    assert rate_batch(table, rater).column("reason").to_pylist() == ["plan.missing"] * 2


def test_registry_profiles_and_default_plan_match_the_per_call_path(rater: Rater) -> None:
    subscribers = {
        "13800138000": SubscriberProfile("easyown_easy", packages=("ld_night",)),
        "13900139000": SubscriberProfile("mzone", home_area="21"),
        "13700137000": SubscriberProfile("nonexistent"),
        "13600136000": SubscriberProfile("gotone", home_area="999999"),
        "13000101234": SubscriberProfile("gotone"),  # outside China Mobile, held by the registry
        "13000111234": SubscriberProfile("gotone", home_area="021", registered=False),
        "13800138001": SubscriberProfile("mzone", home_area="0755"),
    }
    rows = [
        {"caller": caller, "callee": callee, "start": start, "duration_s": 95, **extra}
        for caller in [*subscribers, "+8613500135000", "13500135000", "18612345678"]
        for callee in ("02188001234", "01088001234", "88001234")
        for start in ("2010-03-01T23:30:00+08:00", "2009-03-01T10:00:00Z")
        for extra in ({}, {"plan": "gotone"}, {"packages": []}, {"visited_area": "021"})
    ]
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    for default_plan in (None, "easyown"):
        rated = rate_batch(table, rater, subscribers=subscribers, default_plan=default_plan)
        expected = []
        for raw in table.to_pylist():
            number = raw["caller"].removeprefix("+86")
            profile = subscribers.get(number) or (
                SubscriberProfile(default_plan, registered=False) if default_plan else None
            )
            expected.append(scalar_outcome(rater, raw, profile))
        assert batch_outcomes(rated) == expected


def test_text_durations_and_wrong_column_types(rater: Rater) -> None:
    base = {"caller": "13800138000", "callee": "02188001234", "plan": "gotone"}
    start = "2010-03-01T10:00:00+08:00"
    text = pa.table(
        {
            **{k: [v] * 4 for k, v in base.items()},
            "start": [start] * 4,
            "duration_s": ["125", "12a", "", None],
        }
    )
    assert rate_batch(text, rater).column("reason").to_pylist() == [
        None,
        "duration_s.invalid",
        "duration_s.invalid",
        "duration_s.missing",
    ]
    typed = pa.table(
        {
            "caller": pa.array([13800138000]),
            "callee": ["02188001234"],
            "start": [start],
            "duration_s": pa.array([1.5]),
            "plan": ["gotone"],
        }
    )
    assert rate_batch(typed, rater).column("reason").to_pylist() == ["caller.invalid"]
    raw = typed.to_pylist()[0]
    assert scalar_outcome(rater, raw)[4] == "caller.invalid"


DIGITS = st.text(alphabet="0123456789", max_size=16)
CALLEES = st.one_of(
    st.builds(
        lambda prefix, digits: prefix + digits,
        st.sampled_from(
            [
                "",
                "17951",
                "12593",
                "+",
                "00",
                "0",
                "86",
                "+86",
                "0086",
                "861",
                "1",
                "160",
                "168",
                "95",
                "001",
                "007",
                "00852",
                "+1",
                "00870",
                "+8816",
                "021",
                "010",
                "0755",
                "0123",
                "1795100",
                "12593+",
                "17951+86",
                "1795101088",
                "1259302188",
                "179510087077",
                "12593008816",
                "12593+852",
                "9",
                "+7",
                "+76",
            ]
        ),
        DIGITS,
    ),
    st.text(alphabet="0123456789+ aZ٣", max_size=34),
    st.none(),
)
CALLERS = st.one_of(
    st.builds(
        lambda prefix, digits: prefix + digits,
        st.sampled_from(["", "+86", "86", "0086", "+", "1380013", "1", "8613"]),
        DIGITS,
    ),
    st.sampled_from(
        ["13800138000", "+8613800138000", "0086139001390000", "1380013800a", "18612345678"]
    ),
    st.none(),
)
STARTS = st.one_of(
    st.builds(
        lambda y, mo, d, sep, h, mi, s, frac, zone: (
            f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{frac}{zone}"
        ),
        st.sampled_from([1, 2008, 2009, 2010, 2011, 2012, 9999]),
        st.integers(0, 13),
        st.integers(0, 32),
        st.sampled_from(["T", "t", " ", "_"]),
        st.integers(0, 24),
        st.integers(0, 60),
        st.integers(0, 60),
        st.sampled_from(["", ".", ".5", ".123456789", ".1234567890", ".x"]),
        st.sampled_from(["", "Z", "z", "+08:00", "-05:30", "+00:99", "+23:59", "+24:00", "+8"]),
    ),
    st.text(max_size=40),
    st.none(),
)
VISITED = st.one_of(
    st.sampled_from(
        [
            *("", "0", "021", "21", "20", "852", "+852", "00852", "0999", "0123", "10", "010"),
            *("0755", "755", "0852", "000"),
        ]
    ),
    st.text(alphabet="0123456789+a", max_size=5),
    st.none(),
)
RECORDS = st.fixed_dictionaries(
    {
        "id": st.none() | st.text(max_size=3),
        "caller": CALLERS,
        "callee": CALLEES,
        "start": STARTS,
        "duration_s": st.none() | st.integers(-2, 90_000),
        "type": st.sampled_from([None, "originating", "terminating", "forwarded", "ORIGINATING"]),
        "forward_kind": st.sampled_from([None, "unconditional", "conditional", "busy"]),
        "visited_area": VISITED,
        "plan": st.sampled_from([None, "", "gotone", "mzone", "easyown_easy", "x" * 65, "vip"]),
        "packages": st.sampled_from([None, [], ["ld_night"], ["other"], [""], ["ld_night", None]]),
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(RECORDS, min_size=1, max_size=40))
def test_odd_records_rate_identically_both_ways(
    rater: Rater, batch_rater: BatchRater, records: list[dict[str, Any]]
) -> None:
    table = pa.Table.from_pylist(records, schema=SCHEMA)
    assert_same(rater, table, batch_rater.rate(table))


GOOD = {
    "caller": "13800138000",
    "callee": "02188001234",
    "start": "2010-03-01T10:00:00+08:00",
    "duration_s": 95,
    "plan": "gotone",
}
STARTS_BY_HAND = [
    "2010-03-01T10:00:00",
    "2010-03-01t10:00:00z",
    "2010-03-01 10:00:00Z",
    "2010-03-01_10:00:00",
    *(f"2010-03-01T10:00:00.{'5' * n}+08:00" for n in range(0, 11)),
    "2010-03-01T10:00:00.5x",
    "2010-03-01T10:00:00,5",
    "2010-03-01T10:00:00+23:59",
    "2010-03-01T10:00:00-23:59",
    "2010-03-01T10:00:00+24:00",
    "2010-03-01T10:00:00+00:99",
    "2010-03-01T10:00:00+08:60",
    "2010-03-01T10:00:00-00:00",
    "2010-03-01T10:00:00+0800",
    "2010-03-01T10:00:00+08",
    "2000-02-29T12:00:00",
    "2004-02-29T12:00:00",
    "1900-02-29T12:00:00",
    "2009-02-29T12:00:00",
    "2009-04-31T12:00:00",
    "2009-12-31T23:59:59+08:00",
    "2009-12-31T16:00:00Z",
    "2009-12-31T15:59:59Z",
    "2010-13-01T10:00:00",
    "2010-00-01T10:00:00",
    "2010-03-00T10:00:00",
    "2010-03-01T24:00:00",
    "2010-03-01T10:60:00",
    "2010-03-01T10:00:60",
    "0000-01-01T00:00:00",
    "0001-01-01T00:00:00+08:00",
    "9999-12-31T23:59:59-23:59",
    "２０１０-03-01T10:00:00",
    "٢٠١٠-03-01T10:00:00",
    "2010-03-01T10:00:00.٥",
    "2010-03-01T10:00:00\n",
    " 2010-03-01T10:00:00",
    "2010-3-01T10:00:00",
    "",
    "2010",
]
ODD_TEXT = [
    {"callee": "١٣٨٠٠١٣٨٠٠٠"},
    {"callee": "+٨٦13800138000"},
    {"callee": "é" * 20},  # 40 bytes, 20 characters: not too long, but not digits
    {"callee": "é" * 33},
    {"callee": "1" * 32},
    {"callee": "1" * 33},
    {"callee": "17951+8613800138000"},
    {"callee": "17951"},
    {"callee": "+"},
    {"callee": "00"},
    {"callee": "0086"},
    {"callee": "+86"},
    {"callee": ""},
    {"type": "terminating", "callee": "é" * 33},
    {"type": "terminating", "callee": "+"},
    {"type": "terminating", "callee": "+" + "1" * 31},
    {"type": "terminating", "callee": "1" * 33},
    {"caller": "１３８００１３８０００"},
    {"caller": "+86１３８００１３８０００"},
    {"caller": "13800138000\n"},
    {"plan": "é" * 64},
    {"plan": "é" * 65},
    {"plan": ""},
    {"packages": ["é" * 64]},
    {"packages": ["é" * 65]},
    {"packages": ["ld_night", "ld_night"]},
    {"visited_area": "٠٢١"},
    {"visited_area": "0"},
    {"visited_area": "00"},
    {"visited_area": "+"},
    {"visited_area": "886"},
    {"visited_area": "0886"},
    {"visited_area": "01"},
    {"visited_area": "0100"},
    {"visited_area": "10"},
]


def test_timestamps_parse_as_parse_start(rater: Rater, batch_rater: BatchRater) -> None:
    rows = [{**GOOD, "start": start} for start in STARTS_BY_HAND]
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    assert_same(rater, table, batch_rater.rate(table))


def test_non_ascii_and_edge_lengths_match_the_per_call_path(
    rater: Rater, batch_rater: BatchRater
) -> None:
    table = pa.Table.from_pylist([{**GOOD, **extra} for extra in ODD_TEXT], schema=SCHEMA)
    assert_same(rater, table, batch_rater.rate(table))


def test_required_ids_are_counted_in_characters(rater: Rater, batch_rater: BatchRater) -> None:
    ids = [None, "", "a", "é" * 64, "é" * 65, "x" * 64, "x" * 65]
    table = pa.Table.from_pylist([{**GOOD, "id": i} for i in ids], schema=SCHEMA)
    got = batch_rater.rate(table, require_id=True).column("reason").to_pylist()
    expected = []
    for raw in table.to_pylist():
        try:
            rater.rate_raw(column_record(raw), require_id=True)
            expected.append(None)
        except Rejected as rejection:
            expected.append(rejection.code)
    assert got == expected


def _layouts(table: pa.Table) -> dict[str, pa.Table]:
    """The same rows in the Arrow layouts a reader may hand over."""

    def retype(target: pa.DataType, list_target: pa.DataType) -> pa.Table:
        fields = [
            pa.field(f.name, list_target if pa.types.is_list(f.type) else target)
            if pa.types.is_string(f.type) or pa.types.is_list(f.type)
            else f
            for f in table.schema
        ]
        return table.cast(pa.schema(fields))

    thirds = [table.slice(0, 700), table.slice(700, 1), table.slice(701)]
    return {
        "chunked": pa.concat_tables(thirds),
        "large": retype(pa.large_string(), pa.large_list(pa.large_string())),
        "dictionary": retype(pa.dictionary(pa.int32(), pa.string()), pa.list_(pa.string())),
        "sliced": pa.concat_tables([table.slice(0, 3), table]).slice(3),
        "batch": table.combine_chunks().to_batches()[0],
    }


def test_arrow_layouts_rate_like_plain_columns(rater: Rater, batch_rater: BatchRater) -> None:
    rows = [{**GOOD, "start": s} for s in STARTS_BY_HAND[:10]]
    rows += [{**GOOD, **extra} for extra in ODD_TEXT]
    generated = generate_cdrs(rater, 2_000, seed=17).to_pylist()
    table = pa.Table.from_pylist(rows + generated, schema=SCHEMA)
    expected = batch_outcomes(batch_rater.rate(table))
    assert expected == [scalar_outcome(rater, raw) for raw in table.to_pylist()]
    for name, layout in _layouts(table).items():
        assert batch_outcomes(batch_rater.rate(layout)) == expected, name
    packages = table.column("packages").combine_chunks()
    sliced_lists = pa.concat_arrays([packages.slice(5, 3), packages]).slice(3)
    relisted = table.set_column(9, "packages", sliced_lists)
    assert batch_outcomes(batch_rater.rate(relisted)) == expected


def test_kernels_run_where_no_jit_cache_can_be_written() -> None:
    code = (
        "import numpy as np\n"
        "from service.rating.batch_kernels import charge_of\n"
        "print(charge_of(np.array([1, 2, 0, 0, 3], dtype=np.int64), 7))\n"
    )
    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "ZipCacheLocator"}  # none fits
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "4"


def decision_rows() -> list[dict[str, Any]]:
    """Every combination that the SPEC §9 decisions turn on (6,480 rows): callers in and
    outside China Mobile, IP prefixes before local / LD / foreign / satellite / free and short
    numbers, bare IP prefixes, unplaced +7 numbers, visited 886 (Nujiang), a `+` after a
    prefix, forwarded legs to on-net, off-net and service numbers, ld_night windows, visited
    areas with and without the trunk 0, both timestamp separators,
    both tariff versions, and 0 to 4 s and longer durations."""
    callers = ["13800138000", "+8613411150000", "18612345678", "13000101234"]
    callees = [
        *(f"{p}{n}" for p in ("", "17951", "12593") for n in ("01088001234", "88001234")),
        *(f"{p}{n}" for p in ("", "17951", "12593") for n in ("02188001234", "075588001234")),
        *(f"{p}{n}" for p in ("", "17951", "12593") for n in ("00870773112345", "+85223456789")),
        "10086",
        "01010086",
        *("110", "12580", "95588", "114", "123456", "17951", "12593"),  # free or local, bare
        *("1795112580", "1259395588", "02112580", "+76123456789"),
        "13901234567",
        "13000101234",
        "13402001234",
        "0085223456789",
        "17951+8613800138000",
    ]
    legs: list[dict[str, Any]] = [
        {},
        {"type": "forwarded", "forward_kind": "unconditional"},
        {"type": "forwarded", "forward_kind": "conditional"},
    ]
    starts = ["2010-03-01 23:30:00", "2010-03-01T10:00:00+08:00", "2009-06-01 23:30:00+08:00"]
    rows = []
    for index, (caller, callee, leg, visited, start) in enumerate(
        itertools.product(callers, callees, legs, (None, "21", "020", "0755", "886"), starts)
    ):
        rows.append(
            {
                "caller": caller,
                "callee": callee,
                "start": start,
                "duration_s": (0, 2, 3, 4, 61, 125)[index % 6],
                "visited_area": visited,
                "plan": None if index % 5 == 0 else ("gotone", "easyown_easy", "mzone")[index % 3],
                "packages": ["ld_night"] if index % 2 else None,
                **leg,
            }
        )
    return rows


def test_spec_9_decisions_rate_identically_both_ways(rater: Rater, batch_rater: BatchRater) -> None:
    table = pa.Table.from_pylist(decision_rows(), schema=SCHEMA)
    rated = batch_rater.rate(table)
    outcomes = batch_outcomes(rated)
    reasons = {o[4] for o in outcomes}
    assert {"caller.not_china_mobile", "callee.invalid_characters", "plan.missing"} <= reasons
    assert {(o[1], o[2]) for o in outcomes} >= {
        ("local", "17951"),
        ("local", "12593"),
        ("satellite", "17951"),
        ("satellite", "12593"),
        ("forward", "direct"),
    }
    assert_same(rater, table, rated)
    # The registry holds two numbers outside China Mobile; a default plan holds none.
    subscribers = {
        "18612345678": SubscriberProfile("mzone", packages=("ld_night",)),
        "13000101234": SubscriberProfile("gotone", home_area="21"),
    }
    for default_plan in (None, "easyown"):
        registry_rated = batch_rater.rate(table, subscribers=subscribers, default_plan=default_plan)
        fallback = SubscriberProfile(default_plan, registered=False) if default_plan else None
        expected = [
            scalar_outcome(
                rater,
                raw,
                subscribers.get(raw["caller"].removeprefix("+86"), fallback),
            )
            for raw in table.to_pylist()
        ]
        assert batch_outcomes(registry_rated) == expected
