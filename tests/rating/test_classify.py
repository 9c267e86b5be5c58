"""SPEC §4 classification, step by step, and every rejection of step 7 and §9."""

from __future__ import annotations

from typing import Any

import pytest

from service.rating.rejections import REASONS, Rejected
from service.rating.scalar import Rater

BASE: dict[str, Any] = {
    "caller": "13800138000",
    "start": "2010-03-01T10:00:00+08:00",
    "duration_s": 60,
    "plan": "gotone",
}

# callee as dialed -> (call_class, dial) for a Beijing subscriber at home
CLASSIFIED = [
    # step 1: one IP prefix stripped
    ("1795102188001234", "domestic_ld", "17951"),
    ("1259302188001234", "domestic_ld", "12593"),
    # step 2: +86 / 0086 / 86 + mobile are domestic
    ("+8613901234567", "local", "direct"),
    ("008613901234567", "local", "direct"),
    ("8613901234567", "local", "direct"),
    ("+862188001234", "domestic_ld", "direct"),
    ("00862188001234", "domestic_ld", "direct"),
    # step 3: foreign
    ("+85223456789", "hmt", "direct"),
    ("0085323456789", "hmt", "direct"),
    ("0088623456789", "hmt", "direct"),
    ("+870773112345", "satellite", "direct"),
    ("+8816312345678", "satellite", "direct"),
    ("+12025550123", "international", "direct"),
    ("+14165550123", "international", "direct"),
    ("+74951234567", "international", "direct"),
    ("+77011234567", "international", "direct"),
    ("+883123456789", "international", "direct"),
    # step 4: domestic forms
    ("02188001234", "domestic_ld", "direct"),
    ("0755 88001234".replace(" ", ""), "domestic_ld", "direct"),
    ("013411150000", "domestic_ld", "direct"),  # mobile with a leading 0
    ("13411150000", "domestic_ld", "direct"),
    ("13901234567", "local", "direct"),
    ("8800123", "local", "direct"),  # bare 7 digits
    ("88001234", "local", "direct"),  # bare 8 digits
    ("110", "special", "direct"),
    ("119", "special", "direct"),
    ("120", "special", "direct"),
    ("122", "special", "direct"),
    ("10086", "special", "direct"),
    ("1259310086", "special", "12593"),  # SPEC §9: free; dial reports the prefix
    ("17951110", "special", "17951"),
    ("112", "special", "direct"),
    # SPEC §4 step 4: any other short number is a call to the caller's current area
    ("12315", "local", "direct"),
    ("95588", "local", "direct"),
    ("96110", "local", "direct"),
    ("114", "local", "direct"),
    ("123", "local", "direct"),
    ("1000", "local", "direct"),
    ("12580", "local", "direct"),
    ("123456", "local", "direct"),  # 6 digits
    ("911", "local", "direct"),
    ("1795112580", "local", "17951"),
    ("1259312580", "local", "12593"),
    ("02112580", "domestic_ld", "direct"),  # area code + short number: that area
    ("021123456", "domestic_ld", "direct"),
    ("02110086", "domestic_ld", "direct"),  # area code + service number
    ("01010086", "local", "direct"),
    # step 5: local = the caller's current area
    ("01088001234", "local", "direct"),
]


@pytest.mark.parametrize(("callee", "call_class", "dial"), CLASSIFIED)
def test_classification(rater: Rater, callee: str, call_class: str, dial: str) -> None:
    rating = rater.rate_raw({**BASE, "callee": callee})
    assert (rating.call_class, rating.dial) == (call_class, dial)


def test_caller_formats_are_one_subscriber(rater: Rater) -> None:
    charges = {
        rater.rate_raw({**BASE, "caller": caller, "callee": "02188001234"}).charge_fen
        for caller in ("13800138000", "+8613800138000", "8613800138000", "008613800138000")
    }
    assert charges == {6 * 10}


@pytest.mark.parametrize(
    ("visited", "roaming"),
    [
        (None, "home"),  # absent
        ("010", "home"),  # visiting the home area is not roaming
        ("10", "home"),
        ("021", "national"),
        ("0371", "national"),
    ],
)
def test_roaming_state(rater: Rater, visited: str | None, roaming: str) -> None:
    request = {**BASE, "callee": "10086"}
    if visited is not None:
        request["visited_area"] = visited
    rating = rater.rate_raw(request)
    assert rating.roaming == roaming


def test_in_province_roaming(rater: Rater) -> None:
    request = {**BASE, "caller": "13411150000", "callee": "10086", "visited_area": "0755"}
    assert rater.rate_raw(request).roaming == "in_province"


def test_registry_home_area_overrides_number_range(rater: Rater) -> None:
    from service.rating.scalar import SubscriberProfile

    request = {k: v for k, v in BASE.items() if k != "plan"} | {"callee": "88001234"}
    shanghai = SubscriberProfile(plan="mzone", home_area="21")
    rating = rater.rate_raw({**request, "visited_area": "021"}, subscriber=shanghai)
    assert (rating.roaming, rating.call_class, rating.charge_fen) == ("home", "local", 20)


REJECTED = [
    # (overrides, code)
    ({"callee": "02188ABC234"}, "callee.invalid_characters"),
    ({"callee": ""}, "callee.empty"),
    ({"callee": "0" * 33}, "callee.too_long"),
    ({"callee": "+"}, "callee.invalid_characters"),
    ({"callee": "021-88001234"}, "callee.invalid_characters"),
    ({"callee": "２１８８００１２３４"}, "callee.invalid_characters"),  # full-width digits
    ({"callee": 2188001234}, "callee.invalid_characters"),
    ({"callee": None}, "callee.missing"),
    ({"callee": "+8612"}, "callee.invalid_plus86"),
    ({"callee": "+86021880012"}, "callee.invalid_plus86"),
    ({"callee": "01101234567"}, "callee.unknown_area_code"),
    ({"callee": "0212345"}, "callee.invalid_number"),  # subscriber part too short
    ({"callee": "021"}, "callee.invalid_number"),
    ({"callee": "1234567"}, "callee.invalid_number"),
    ({"callee": "12345678"}, "callee.invalid_number"),  # 8 digits beginning with 1
    ({"callee": "17951"}, "callee.incomplete"),  # a bare IP prefix
    ({"callee": "12593"}, "callee.incomplete"),
    ({"callee": "+76123456789"}, "callee.unknown_destination"),  # +7 6: no country (SPEC §9)
    ({"callee": "+70123456789"}, "callee.unknown_destination"),
    ({"callee": "12"}, "callee.invalid_number"),
    ({"callee": "13000030000"}, "callee.unknown_mobile_prefix"),
    ({"callee": "1600123"}, "callee.information_line"),
    ({"callee": "16812345678"}, "callee.information_line"),
    ({"callee": "02116801234"}, "callee.information_line"),
    ({"callee": "+9991234567"}, "callee.unknown_country_code"),
    ({"callee": "+12"}, "callee.invalid_foreign_length"),
    ({"callee": "+852123"}, "callee.invalid_foreign_length"),
    ({"callee": "+4412345678901234"}, "callee.invalid_foreign_length"),
    ({"callee": "+1202555012"}, "callee.invalid_foreign_length"),
    ({"callee": "+19995550123"}, "callee.unassigned_nanp_area"),
    (
        {
            "callee": "17951125930012025550123"[:5] + "0012025550123",
            "type": "forwarded",
            "forward_kind": "unconditional",
        },
        "callee.ip_prefix_on_forward",
    ),
    ({"caller": "1380013800"}, "caller.invalid"),
    ({"caller": "+1 2025550123"}, "caller.invalid"),
    ({"caller": None}, "caller.missing"),
    ({"caller": "13000030000"}, "caller.unknown_number_range"),
    ({"start": None}, "start.missing"),
    ({"start": "2010-03-01"}, "start.invalid"),
    ({"start": "yesterday"}, "start.invalid"),
    ({"start": "2010-02-30T10:00:00+08:00"}, "start.invalid"),
    ({"start": 1267408800}, "start.invalid"),
    ({"start": "2007-01-01T00:00:00+08:00"}, "start.no_tariff"),
    ({"duration_s": None}, "duration_s.missing"),
    ({"duration_s": -1}, "duration_s.invalid"),
    ({"duration_s": 1.5}, "duration_s.invalid"),
    ({"duration_s": "60"}, "duration_s.invalid"),
    ({"duration_s": True}, "duration_s.invalid"),
    ({"duration_s": 86_401}, "duration_s.invalid"),
    ({"type": "outgoing"}, "type.invalid"),
    ({"type": "forwarded"}, "forward_kind.missing"),
    ({"type": "forwarded", "forward_kind": "busy"}, "forward_kind.invalid"),
    ({"visited_area": "00852"}, "visited_area.international_roaming"),
    ({"visited_area": "+1"}, "visited_area.international_roaming"),
    ({"visited_area": ""}, "visited_area.invalid"),  # a blanked field (SPEC §3.1)
    ({"visited_area": None}, "visited_area.invalid"),
    ({"type": None}, "type.invalid"),  # only an absent type is originating
    ({"start": "2010-03-01T10:00:00+08:60"}, "start.invalid"),  # offset minutes 00-59
    ({"start": "2010-03-01T10:00:00+24:00"}, "start.invalid"),  # offset hours 00-23
    ({"visited_area": "021x"}, "visited_area.invalid"),
    ({"visited_area": 21}, "visited_area.invalid"),
    ({"visited_area": "0110"}, "visited_area.unknown_area_code"),
    ({"plan": None}, "plan.missing"),
    ({"plan": "platinum"}, "plan.unknown"),
    ({"packages": ["free_everything"]}, "packages.unknown"),
    ({"packages": "ld_night"}, "packages.invalid"),
]


@pytest.mark.parametrize(("overrides", "code"), REJECTED)
def test_rejection(rater: Rater, overrides: dict[str, Any], code: str) -> None:
    request = {**BASE, "callee": "02188001234", **overrides}
    with pytest.raises(Rejected) as caught:
        rater.rate_raw(request)
    assert caught.value.code == code
    assert caught.value.field == code.split(".")[0]
    hint = caught.value.hint
    assert caught.value.to_dict() == {
        "rejected": True,
        "field": caught.value.field,
        "code": code,
        "reason": REASONS[code] if hint is None else f"{REASONS[code]} ({hint})",
    }
    assert caught.value.message == REASONS[code]  # what is stored
    if code != "plan.unknown":  # that one names the plans there are, in a quote's answer
        assert hint is None


def test_record_must_be_an_object(rater: Rater) -> None:
    with pytest.raises(Rejected) as caught:
        rater.rate_raw([BASE])
    assert caught.value.code == "record.invalid"


def test_id_checked_only_when_required(rater: Rater) -> None:
    request = {**BASE, "callee": "10086"}
    assert rater.rate_raw(request).charge_fen == 0
    for bad_id in (None, "", "x" * 65, 7):
        with pytest.raises(Rejected) as caught:
            rater.rate_raw({**request, "id": bad_id}, require_id=True)
        assert caught.value.code == "id.invalid"
    assert rater.rate_raw({**request, "id": "sw1-0001"}, require_id=True).charge_fen == 0


def test_every_reason_names_its_field() -> None:
    for code, message in REASONS.items():
        field = code.split(".")[0]
        assert field in message
