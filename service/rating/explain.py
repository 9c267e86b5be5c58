"""The Chinese explanation an agent reads out word for word (统一答复口径, SPEC §6.4).

One paragraph in a fixed order: the tariff basis, what the call was (brand, where the
subscriber was, how and what was dialed), how long it lasted, each charged part as
"rate, units, amount", every part not charged with its reason in the seed's Q&A wording,
and the total. Amounts are 元 with two decimals; no rule id, item code, tariff id or plan
id appears (those stay in the rating's structured fields). docs/explanation.md describes
the wording; tests/rating/test_explain.py keeps a golden sentence for each rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from service.rating.pricing import (
    FOREIGN,
    PER_6S,
    CallCase,
    Destination,
    Dial,
    ForwardKind,
    Leg,
    Pricing,
    Roaming,
)
from service.rating.result import Item
from service.rating.tariff import Tariff

WHERE_ZH = {
    Roaming.HOME: "在归属地",
    Roaming.IN_PROVINCE: "在省内漫游时",
    Roaming.NATIONAL: "在国内漫游时",
}
DIAL_ZH = {Dial.DIRECT: "直拨", Dial.IP17951: "加拨17951拨打", Dial.IP12593: "加拨12593拨打"}
FOREIGN_ZH = {
    Destination.HMT: "港澳台电话",
    Destination.INTERNATIONAL: "国际长途电话",
    Destination.SATELLITE: "卫星电话",
}
ITEM_ZH = {
    "local": "本地通话费",
    "ld_domestic": "国内长途通话费",
    "ld_hmt": "港澳台长途通话费",
    "ld_international": "国际长途通话费",
    "ld_satellite": "卫星电话长途通话费",
    "ip17951_domestic": "17951国内长途通话费",
    "ip17951_foreign": "17951长途通话费",
    "ip12593_foreign": "12593长途通话费",
    "roam_call": "主叫漫游通话费",
    "roam_called": "被叫漫游通话费",
    "forward_fee": "呼转基本费",
}


def yuan(fen: int) -> str:
    """Integer fen as a 元 amount with two decimals, e.g. 126 -> 1.26元."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}元"


def rate_zh(rate_fen: int, unit_s: int) -> str:
    """A rate as the seed writes it: 0.06元/6秒, 0.30元/分钟."""
    return f"{yuan(rate_fen)}/{'6秒' if unit_s == PER_6S else '分钟'}"


def duration_zh(seconds: int) -> str:
    """A duration read aloud: 45秒, 2分钟, 2分5秒, 1小时2分5秒."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}小时" if hours else ""
    if minutes:
        text += f"{minutes}分钟" if secs == 0 else f"{minutes}分"
    if secs or not text:
        text += f"{secs}秒"
    return text


def units_zh(units: int, unit_s: int) -> str:
    """Billing units: 21个6秒, 2分钟."""
    return f"{units}个6秒" if unit_s == PER_6S else f"{units}分钟"


def basis_zh(tariff: Tariff) -> str:
    """The tariff basis in words, from the version's data (no version id)."""
    if not tariff.structure.ld_adds_local_fee:
        day = tariff.effective_from
        return f"按{day.year}年{day.month}月{day.day}日起的长途一费制"
    last = (
        tariff.effective_until - timedelta(seconds=1)
        if tariff.effective_until is not None
        else tariff.effective_from
    )
    return f"按{last.year}年的资费"


def _foreign_target(case: CallCase, region_zh: str | None) -> str:
    assert case.destination is not None
    if case.destination is Destination.HMT and region_zh:
        return f"{region_zh}的电话"
    if case.destination is Destination.INTERNATIONAL and region_zh:
        return f"{region_zh}的国际长途电话"
    return FOREIGN_ZH[case.destination]


def _network(case: CallCase) -> str:
    return "中国移动网内" if case.target_on_net else "中国移动网外"


def _forward_target(case: CallCase, region_zh: str | None, fee: bool) -> str:
    if case.destination in FOREIGN:
        return _foreign_target(case, region_zh)
    network = _network(case) if fee else ""
    if case.target_home:
        return f"归属地的{network}电话"
    if case.target_visited:
        return f"漫游地当地的{network}电话"
    away = "漫游地以外" if case.roaming is not Roaming.HOME else "归属地以外"
    return f"{away}的{network or '国内'}电话"


def _situation(case: CallCase, region_zh: str | None, fee: bool) -> str:
    where = WHERE_ZH[case.roaming]
    if case.leg is Leg.TERMINATING:
        return f"{where}接听来电"
    if case.leg is Leg.FORWARDED:
        kind = "无条件" if case.forward_kind is ForwardKind.UNCONDITIONAL else "有条件"
        target = _forward_target(case, region_zh, fee)
        return f"{where}设置了{kind}呼叫转移，来电转接到{target}"
    destination = case.destination
    if destination is Destination.LOCAL:
        target = "当地电话" if case.roaming is Roaming.HOME else "漫游地当地电话"
    elif destination is Destination.DOMESTIC_LD:
        target = "国内长途电话"
    elif destination is Destination.SPECIAL:
        target = "特服号码"
    else:
        target = _foreign_target(case, region_zh)
    return f"{where}{DIAL_ZH[case.dial]}{target}"


def _item_names(case: CallCase) -> dict[str, str]:
    names = dict(ITEM_ZH)
    if case.roaming is Roaming.NATIONAL:
        names["ip12593_domestic"] = "12593国内长途通话费"
    else:
        names["ip12593_domestic"] = f"12593国内长途通话费（{'忙时' if case.busy else '闲时'}）"
    if case.leg is Leg.ORIGINATING:
        names["roam_call"] = "漫游通话费"
    if case.leg is Leg.FORWARDED:
        names["forward_fee"] = f"呼转基本费（转至{_network(case)}电话）"
    return names


def _waivers(case: CallCase, tariff: Tariff, pricing: Pricing) -> list[str]:
    """Parts a call of this case does not pay, each with its reason (any duration)."""
    codes = {c.code for c in pricing.components}
    home = case.roaming is Roaming.HOME
    one_fee = not tariff.structure.ld_adds_local_fee
    destination, dial = case.destination, case.dial
    if case.leg is Leg.TERMINATING:
        return ["在归属地接听电话不收费"] if home else []
    if destination is Destination.SPECIAL:
        return ["拨打特服号码不收取通话费"]
    if case.leg is Leg.FORWARDED:
        if "forward_fee" in codes:
            return []
        if case.roaming is not Roaming.HOME and case.forward_kind is ForwardKind.CONDITIONAL:
            if case.target_visited:
                return ["有条件呼转到漫游地当地电话上只收被叫漫游费"]
            if case.destination in FOREIGN:
                return ["有条件呼转到港澳台和国际电话上收取被叫漫游费加长途通话费"]
            return ["有条件呼转到漫游地以外电话上收取被叫漫游费加主叫漫游费"]
        return ["执行一费制后，呼转产生长途费时只收长途费用，不再收取呼转基本费"]
    if case.night_free:
        night = tariff.packages["ld_night"]
        window = f"{night.free_from.hour}:{night.free_from.minute:02d}至次日" + (
            f"{night.free_until.hour}:{night.free_until.minute:02d}"
        )
        return [
            f"您办理了{night.name}，在优惠时段（{window}）拨打长途不收通话费，"
            f"我们只收取您每月{yuan(night.monthly_fee_fen)}的功能费"
        ]
    per_minute_ld = tariff.plans[case.plan].ld_per_min is not None
    if per_minute_ld and home and dial is Dial.DIRECT and destination is Destination.DOMESTIC_LD:
        return []  # these brands keep per-minute LD, with no local fee, in both versions
    if destination is Destination.LOCAL:
        if dial is Dial.DIRECT:
            return []
        kind = "本地通话" if home else "漫游通话"
        return [f"加拨{dial.value}拨打当地电话不是长途，按{kind}收费，不收长途费"]
    if not home and destination is Destination.DOMESTIC_LD and dial is not Dial.IP12593:
        return ["漫游时拨打国内电话只收漫游通话费，国内长途费已包含在内"]
    if dial is Dial.IP17951 and destination in FOREIGN and not codes & {"local", "roam_call"}:
        return ["通过17951拨打港澳台和国际电话不另收本地通话费和漫游费"]
    if not home and dial is Dial.DIRECT and destination in FOREIGN and "roam_call" not in codes:
        return ["漫游时直拨港澳台和国际电话只收长途通话费，不收漫游费"]
    if home and one_fee and "local" not in codes and dial is not Dial.IP12593:
        if destination is Destination.SATELLITE and dial is Dial.DIRECT:
            return ["拨打海事卫星等卫星电话只收相应长途费，不再收取基本通话费"]
        if destination is Destination.DOMESTIC_LD and dial is Dial.DIRECT:
            return ["执行一费制后，在本地拨打长途只收长途通话费，不再收取本地通话费"]
        if destination is Destination.DOMESTIC_LD or dial is Dial.DIRECT:
            return ["执行一费制后，只收长途通话费，不再收取本地通话费"]
    return []


@dataclass(frozen=True, slots=True)
class Phrases:
    """The parts of a case's explanation that do not depend on the duration."""

    head: str  # tariff basis and situation, up to "通话"
    parts: dict[str, str]  # item code -> its name and rate, up to "计"
    reasons: str  # the parts this case never pays, with their reasons ("" if none)
    reasons_short: str  # the same after R8 waived the LD part of a short call
    reasons_roaming_short: str  # the same for a short roaming call, which is charged
    short_call_max_s: int


def _sentence(*clauses: str) -> str:
    text = "；".join(clause for clause in clauses if clause)
    return f"{text}。" if text else ""


def phrases(
    case: CallCase, tariff: Tariff, pricing: Pricing, brand: str, region_zh: str | None = None
) -> Phrases:
    """Build once per call case; `explain` adds the duration, the items and the total."""
    seconds = tariff.structure.short_ld_free_max_s
    components = pricing.components
    fee = any(c.code == "forward_fee" for c in components)
    local_too = any(c.short_call_free and c.code == "local" for c in components)
    names = _item_names(case)
    waived = _waivers(case, tariff, pricing)
    roaming = case.roaming is not Roaming.HOME and case.leg is not Leg.TERMINATING
    return Phrases(
        head=f"{basis_zh(tariff)}计费：您的{brand}号码{_situation(case, region_zh, fee)}，通话",
        parts={c.code: f"{names[c.code]}{rate_zh(c.rate_fen, c.unit_s)}，计" for c in components},
        reasons=_sentence(*waived),
        reasons_short=_sentence(
            f"{seconds}秒以内的长途话单不收{'本地通话费和' if local_too else ''}长途费", *waived
        ),
        reasons_roaming_short=_sentence(
            *waived, f"漫游时{seconds}秒以内的话单（包括长途）正常计费" if roaming else ""
        ),
        short_call_max_s=seconds,
    )


def explain(
    words: Phrases,
    items: tuple[Item, ...],
    rules: tuple[str, ...],
    duration_s: int,
    charge_fen: int,
) -> str:
    """One paragraph: basis, situation, duration, each charged part, each waiver, the total."""
    if duration_s == 0:
        return f"{words.head}未接通，不收费。合计{yuan(0)}。"
    parts = "；".join(
        f"{words.parts[item.code]}{units_zh(item.units, item.unit_s)}，共{yuan(item.amount_fen)}"
        for item in items
    )
    if "R8" in rules:
        reasons = words.reasons_short
    elif duration_s <= words.short_call_max_s and items:
        reasons = words.reasons_roaming_short
    else:
        reasons = words.reasons
    return (
        f"{words.head}{duration_zh(duration_s)}。{parts}{'。' if parts else ''}"
        f"{reasons}合计{yuan(charge_fen)}。"
    )
