"""Hypothesis properties of the per-call path over every class, dial, roaming state and leg."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from service.rating import load_rater
from service.rating.cdr import CDR_FIELDS
from service.rating.rejections import REASONS, Rejected
from service.rating.scalar import Rater
from tests.conftest import TARIFFS

RATER: Rater = load_rater(TARIFFS)

CALLERS = [
    "13800138000",
    "13411150000",
    "+8613800138000",
    "13000100000",
    "13000030000",
    "1380013800",
]
CALLEES = [
    "88001234",
    "13901234567",
    "01088001234",
    "02188001234",
    "075588001234",
    "13411150000",
    "013411150000",
    "+8613901234567",
    "0085223456789",
    "+85328123456",
    "00886212345678",
    "+12025550123",
    "+14165550123",
    "+18765550123",
    "+442079460018",
    "+81312345678",
    "+74951234567",
    "+77011234567",
    "+5511987654321",
    "+870773112345",
    "+8816312345678",
    "10086",
    "110",
    "95588",
    "02110086",
    "1600123",
    "02188ABC234",
    "",
    "+19995550123",
]
PREFIXES = ["", "", "17951", "12593"]
STARTS = [
    "2009-06-01T10:00:00+08:00",
    "2009-12-31T23:59:59+08:00",
    "2010-01-01T00:00:00+08:00",
    "2010-03-01T07:59:59+08:00",
    "2010-03-01T08:00:00+08:00",
    "2010-03-01T19:59:59+08:00",
    "2010-03-01T20:00:00+08:00",
    "2010-03-01T23:30:00",
    "2010-03-02T06:59:59Z",
    "2007-01-01T00:00:00+08:00",
]
VISITED = [None, "010", "021", "0755", "020", "0371", "00852", "0110"]
PLANS = ["gotone", "mzone", "easyown", "easyown_easy", "easyown_home", None, "platinum"]


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    leg = draw(st.sampled_from([None, "originating", "terminating", "forwarded"]))
    request: dict[str, Any] = {
        "caller": draw(st.sampled_from(CALLERS)),
        "callee": draw(st.sampled_from(PREFIXES)) + draw(st.sampled_from(CALLEES)),
        "start": draw(st.sampled_from(STARTS)),
        "duration_s": draw(st.integers(0, 7200)),
    }
    optional = {
        "type": leg,
        "forward_kind": draw(st.sampled_from(["unconditional", "conditional"]))
        if leg == "forwarded"
        else None,
        "visited_area": draw(st.sampled_from(VISITED)),
        "plan": draw(st.sampled_from(PLANS)),
        "packages": draw(st.sampled_from([None, [], ["ld_night"]])),
    }
    request.update({k: v for k, v in optional.items() if v is not None})
    return request


def _rate(request: dict[str, Any]) -> int | None:
    try:
        return RATER.rate_raw(request).charge_fen
    except Rejected as rejection:
        assert rejection.code in REASONS  # noqa: PT017 - a rejection is a value here
        return None


@settings(max_examples=600, deadline=None)
@given(requests(), st.integers(0, 600))
def test_charge_never_decreases_as_duration_grows(request: dict[str, Any], more: int) -> None:
    shorter = _rate(request)
    longer = _rate({**request, "duration_s": min(request["duration_s"] + more, 86_400)})
    assert (shorter is None) == (longer is None)
    if shorter is not None and longer is not None:
        assert longer >= shorter


@settings(max_examples=400, deadline=None)
@given(requests())
def test_zero_seconds_costs_zero(request: dict[str, Any]) -> None:
    assert _rate({**request, "duration_s": 0}) in (0, None)


@settings(max_examples=600, deadline=None)
@given(requests())
def test_charge_is_the_sum_of_items(request: dict[str, Any]) -> None:
    try:
        rating = RATER.rate_raw(request)
    except Rejected:
        return
    assert rating.charge_fen == sum(item.amount_fen for item in rating.items)
    assert all(item.amount_fen == item.units * item.rate_fen for item in rating.items)
    assert all(item.unit_s in (6, 60) for item in rating.items)
    assert rating.explanation_zh.endswith("元。")


@settings(max_examples=600, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(CDR_FIELDS),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(),
            st.text(max_size=40),
            st.lists(st.text(max_size=5), max_size=3),
        ),
    ),
    requests(),
)
def test_anything_rates_or_rejects_with_a_reason(
    noise: dict[str, Any], request: dict[str, Any]
) -> None:
    _rate({**request, **noise})
    _rate(noise)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789+ -#*x１", max_size=30))
def test_any_dialed_string_rates_or_rejects(callee: str) -> None:
    for leg in ({}, {"type": "forwarded", "forward_kind": "conditional"}, {"type": "terminating"}):
        _rate(
            {
                "caller": "13800138000",
                "callee": callee,
                "start": STARTS[4],
                "duration_s": 61,
                "plan": "gotone",
                **leg,
            }
        )
