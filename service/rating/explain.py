"""The Chinese explanation an agent reads out word for word (统一答复口径)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from service.rating.pricing import CallCase, Destination, Dial, ForwardKind, Leg, Roaming
from service.rating.tariff import Tariff

if TYPE_CHECKING:
    from service.rating.scalar import Item

ROAMING_ZH = {
    Roaming.HOME: "在归属地",
    Roaming.IN_PROVINCE: "在省内漫游时",
    Roaming.NATIONAL: "在国内漫游时",
}
DIAL_ZH = {Dial.DIRECT: "直拨", Dial.IP17951: "通过17951拨打", Dial.IP12593: "通过12593拨打"}
DESTINATION_ZH = {
    Destination.LOCAL: "本地电话",
    Destination.DOMESTIC_LD: "国内长途电话",
    Destination.HMT: "港澳台电话",
    Destination.INTERNATIONAL: "国际电话",
    Destination.SATELLITE: "卫星电话",
    Destination.SPECIAL: "特服号码",
}
ITEM_ZH = {
    "local": "本地通话费",
    "ld_domestic": "国内长途通话费",
    "ld_hmt": "港澳台长途通话费",
    "ld_international": "国际长途通话费",
    "ld_satellite": "卫星电话长途通话费（按国际长途）",
    "ip17951_domestic": "17951国内长途通话费",
    "ip17951_foreign": "17951国际及港澳台通话费",
    "ip12593_domestic": "12593国内长途通话费",
    "ip12593_foreign": "12593国际及港澳台通话费",
    "roam_call": "漫游主叫通话费",
    "roam_called": "漫游被叫通话费",
    "forward_fee": "呼转基本费",
}
UNIT_ZH = {6: "6秒", 60: "分钟"}


def yuan(fen: int) -> str:
    """Integer fen as a 元 amount with two decimals, e.g. 126 -> 1.26元."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}元"


def _situation(case: CallCase, region_zh: str | None) -> str:
    where = ROAMING_ZH[case.roaming]
    if case.leg is Leg.TERMINATING:
        return f"{where}接听来电"
    assert case.destination is not None
    target = DESTINATION_ZH[case.destination]
    if region_zh and case.destination is not Destination.SATELLITE:
        target += f"（{region_zh}）"
    if case.leg is Leg.FORWARDED:
        kind = "无条件" if case.forward_kind is ForwardKind.UNCONDITIONAL else "有条件"
        return f"{where}设置{kind}呼叫转移，转接到{target}"
    return f"{where}{DIAL_ZH[case.dial]}{target}"


def _free_reason(case: CallCase, tariff: Tariff) -> str:
    if case.destination is Destination.SPECIAL and case.leg is not Leg.TERMINATING:
        return "拨打特服号码不收费（R9）。"
    if case.night_free:
        night = tariff.packages["ld_night"]
        return (
            f"您已办理{night.name}，在优惠时段"
            f"（{night.free_from:%H:%M}至次日{night.free_until:%H:%M}）直拨国内长途不收通话费，"
            f"只收每月{yuan(night.monthly_fee_fen)}功能费（R10）。"
        )
    if case.leg is Leg.TERMINATING:
        return "在归属地接听电话不收费（R14）。"
    return "本次通话不收费。"


@dataclass(frozen=True, slots=True)
class Phrases:
    """The parts of a case's explanation that do not depend on the duration."""

    head: str  # tariff and situation, up to "通话"
    free: str  # why a call of this case with nothing to charge is free
    short_call: str  # R8's wording, for the calls it waives


def phrases(case: CallCase, tariff: Tariff, region_zh: str | None = None) -> Phrases:
    """Build once per call case; `explain` adds the duration, the items and the total."""
    seconds = tariff.structure.short_ld_free_max_s
    return Phrases(
        head=f"按{tariff.name}（{tariff.version}）计费：您{_situation(case, region_zh)}，通话",
        free=_free_reason(case, tariff),
        short_call=f"在归属地拨打长途，通话{seconds}秒（含）以内的长途通话费免收（R8）。",
    )


def explain(
    words: Phrases,
    items: tuple[Item, ...],
    rules: tuple[str, ...],
    duration_s: int,
    charge_fen: int,
) -> str:
    """One paragraph: tariff, situation, each charged part, the rules, the total in 元."""
    head = f"{words.head}{duration_s}秒。"
    if duration_s == 0:
        return head + "通话未接通，不收费，合计0.00元。"
    body = (
        "；".join(
            f"{ITEM_ZH[item.code]}{item.units}个计费单位（每{UNIT_ZH[item.unit_s]}"
            f"{item.rate_fen}分），计{item.amount_fen}分"
            for item in items
        )
        + "。"
        if items
        else ""
    )
    free = words.short_call if "R8" in rules else ("" if items else words.free)
    applied = f"适用规则：{'、'.join(rules)}。" if rules else ""
    return f"{head}{body}{free}{applied}合计{yuan(charge_fen)}。"
