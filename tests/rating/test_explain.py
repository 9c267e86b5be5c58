"""The Chinese explanation agents read out: it names the situation, each part and the total."""

from __future__ import annotations

from typing import Any

import pytest

from service.rating.explain import yuan
from service.rating.scalar import Rater

BASE: dict[str, Any] = {
    "caller": "13800138000",
    "start": "2010-03-01T10:00:00+08:00",
    "plan": "gotone",
}


@pytest.mark.parametrize(
    ("fen", "text"), [(0, "0.00元"), (5, "0.05元"), (126, "1.26元"), (-1200, "-12.00元")]
)
def test_yuan(fen: int, text: str) -> None:
    assert yuan(fen) == text


@pytest.mark.parametrize(
    ("overrides", "phrases"),
    [
        (
            {"callee": "02188001234", "duration_s": 125},
            [
                "2010年长途一费制资费",
                "在归属地直拨国内长途电话",
                "通话125秒",
                "国内长途通话费21个计费单位（每6秒6分），计126分",
                "R2",
                "合计1.26元",
            ],
        ),
        (
            {"callee": "179510081312345678", "duration_s": 59},
            ["通过17951拨打国际电话（日本）", "每分钟360分", "合计3.60元"],
        ),
        (
            {"callee": "0085223456789", "duration_s": 3},
            ["港澳台电话（香港）", "3秒（含）以内", "R8", "合计0.00元"],
        ),
        (
            {"callee": "02188001234", "duration_s": 61, "start": "2009-06-01T10:00:00+08:00"},
            [
                "2009年",
                "本地通话费2个计费单位",
                "国内长途通话费11个计费单位（每6秒7分）",
                "合计1.57元",
            ],
        ),
        (
            {
                "callee": "02188001234",
                "duration_s": 600,
                "start": "2010-03-01T23:10:00+08:00",
                "packages": ["ld_night"],
            },
            ["长话夜聊包", "23:00至次日07:00", "5.00元功能费", "R10"],
        ),
        ({"callee": "10086", "duration_s": 60}, ["特服号码", "R9", "合计0.00元"]),
        (
            {
                "callee": "02188001234",
                "duration_s": 61,
                "type": "terminating",
                "visited_area": "021",
            },
            ["在国内漫游时接听来电", "漫游被叫通话费", "合计0.80元"],
        ),
        (
            {
                "callee": "02088001234",
                "duration_s": 61,
                "type": "forwarded",
                "forward_kind": "conditional",
                "visited_area": "021",
            },
            ["有条件呼叫转移", "漫游被叫通话费", "漫游主叫通话费", "R16", "合计2.00元"],
        ),
        ({"callee": "02188001234", "duration_s": 0}, ["未接通", "合计0.00元"]),
    ],
)
def test_explanation_phrases(rater: Rater, overrides: dict[str, Any], phrases: list[str]) -> None:
    text = rater.rate_raw({**BASE, **overrides}).explanation_zh
    for phrase in phrases:
        assert phrase in text, (phrase, text)
