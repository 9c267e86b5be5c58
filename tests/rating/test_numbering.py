"""The generated numbering tables: fresh against phonenumbers, and the lookups built on them."""

from __future__ import annotations

from service.rating.numbering import NO_INDEX, load_numbering
from service.tools.numbering_build import ALIASES_FILE, render
from tests.conftest import TARIFFS

NUMBERING = TARIFFS / "numbering"


def test_committed_tables_are_not_stale() -> None:
    files, _ = render(NUMBERING / ALIASES_FILE)
    for name, text in files.items():
        committed = (NUMBERING / name).read_text(encoding="utf-8")
        assert committed == text, f"{name} is stale: run `callrate numbering build`"


def test_every_china_mobile_prefix_placed_in_a_city_has_an_area() -> None:
    _, report = render(NUMBERING / ALIASES_FILE)
    assert report.unmapped_cmcc_no_area == []
    assert report.ambiguous_cities == []
    assert report.mobile_prefixes > 300_000


def test_lookups() -> None:
    plan = load_numbering(NUMBERING)
    assert plan.area_codes[plan.mobile("13800138000")[0]] == "10"
    assert plan.mobile("13800138000")[1] is True
    assert plan.mobile("13000100000")[1] is False  # China Unicom
    assert plan.mobile("13000030000")[0] == NO_INDEX
    for code in ("10", "21", "371", "755", "898"):
        assert plan.area_codes[plan.area_index(code)] == code
    assert plan.area_index("378") == NO_INDEX
    assert plan.area_index("2") == NO_INDEX
    guangzhou, shenzhen, beijing = (plan.area_index(c) for c in ("20", "755", "10"))
    assert plan.province_of(guangzhou) == plan.province_of(shenzhen) != plan.province_of(beijing)


def test_cities_phonenumbers_lists_together_share_a_code() -> None:
    plan = load_numbering(NUMBERING)
    # 株洲 (spelled 株州 in the fixed-line data) dials 0731 with 长沙.
    zhuzhou = [p for p in range(1_000_000) if plan.mobile_area[p] == plan.area_index("731")]
    assert zhuzhou
    # 潜江 is listed under 0728 with 仙桃 and 天门; 崇左 under 0771 with 南宁.
    for code in ("728", "771"):
        assert (plan.mobile_area == plan.area_index(code)).any()


def test_country_tables() -> None:
    plan = load_numbering(NUMBERING)
    assert plan.regions[plan.country_region[44]] == "GB"
    assert plan.regions[plan.country_region[852]] == "HK"
    assert plan.regions[plan.split_region[1 * 1000 + 907]] == "US"  # Alaska
    assert plan.regions[plan.split_region[1 * 1000 + 808]] == "US"  # Hawaii
    assert plan.regions[plan.split_region[1 * 1000 + 416]] == "CA"
    assert plan.regions[plan.split_region[1 * 1000 + 876]] == "JM"
    assert plan.regions[plan.split_region[7 * 1000 + 701]] == "KZ"
    assert plan.regions[plan.split_region[7 * 1000 + 495]] == "RU"
    assert plan.split_region[1 * 1000 + 999] == NO_INDEX
