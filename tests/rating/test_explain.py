"""The Chinese explanation agents read out word for word (统一答复口径, SPEC §6.4).

GOLDEN keeps the whole sentence for every rule R1-R16, both tariff versions, each roaming
state and each waiver, so a change of wording is a reviewed change of this file. The
property tests check every explanation of the golden cases and 10,000 generated CDRs: no
internal code, no amount in 分, each charged part as rate / units / amount, and the total.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import pytest

from service.rating.batch import CALL_CLASSES
from service.rating.explain import ITEM_ZH, duration_zh, rate_zh, units_zh, yuan
from service.rating.rejections import Rejected
from service.rating.result import Rating
from service.rating.scalar import Rater
from service.tools.bench import generate_cdrs
from tests.conftest import column_record, golden_cases
from tests.rating.test_batch import decision_rows

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
    ("seconds", "text"),
    [(0, "0秒"), (3, "3秒"), (59, "59秒"), (60, "1分钟"), (125, "2分5秒"), (3725, "1小时2分5秒")],
)
def test_durations_read_aloud(seconds: int, text: str) -> None:
    assert duration_zh(seconds) == text


def test_rates_and_units_as_the_seed_writes_them() -> None:
    assert (rate_zh(6, 6), rate_zh(30, 60), rate_zh(460, 60)) == (
        "0.06元/6秒",
        "0.30元/分钟",
        "4.60元/分钟",
    )
    assert (units_zh(21, 6), units_zh(2, 60)) == ("21个6秒", "2分钟")


# (name, request overrides on BASE, the whole sentence)
GOLDEN: list[tuple[str, dict[str, Any], str]] = [
    (
        "R1 at home 2010",
        {"callee": "88001234", "duration_s": 61},
        (
            "按2010年1月1日起的长途一费制计费：您的全球通号码在归属地直拨当地电话，"
            "通话1分1秒。本地通话费0.40元/分钟，计2分钟，共0.80元。合计0.80元。"
        ),
    ),
    (
        "R1 at home 2009, mzone",
        {
            "callee": "88001234",
            "duration_s": 125,
            "start": "2009-06-01T10:00:00+08:00",
            "plan": "mzone",
        },
        (
            "按2009年的资费计费：您的动感地带号码在归属地直拨当地电话，通话2分5秒。"
            "本地通话费0.20元/分钟，计3分钟，共0.60元。合计0.60元。"
        ),
    ),
    (
        "R2 2010 一费制",
        {"callee": "02188001234", "duration_s": 125},
        (
            "按2010年1月1日起的长途一费制计费：您的全球通号码在归属地直拨国内长途电话，"
            "通话2分5秒。国内长途通话费0.06元/6秒，计21个6秒，共1.26元。执行一费制后，"
            "在本地拨打长途只收长途通话费，不再收取本地通话费。合计1.26元。"
        ),
    ),
    (
        "R2 2009 local + LD",
        {"callee": "02188001234", "duration_s": 61, "start": "2009-06-01T10:00:00+08:00"},
        (
            "按2009年的资费计费：您的全球通号码在归属地直拨国内长途电话，通话1分1秒。"
            "本地通话费0.40元/分钟，计2分钟，共0.80元；国内长途通话费0.07元/6秒，计11个6秒，"
            "共0.77元。合计1.57元。"
        ),
    ),
    (
        "R2 per-minute brand",
        {"callee": "02188001234", "duration_s": 125, "plan": "easyown_easy"},
        (
            "按2010年1月1日起的长途一费制计费："
            "您的神州行新轻松卡号码在归属地直拨国内长途电话，通话2分5秒。"
            "国内长途通话费0.60元/分钟，计3分钟，共1.80元。合计1.80元。"
        ),
    ),
    (
        "R3 HMT 2010",
        {"callee": "0085223456789", "duration_s": 30},
        (
            "按2010年1月1日起的长途一费制计费：您的全球通号码在归属地直拨香港的电话，"
            "通话30秒。港澳台长途通话费0.20元/6秒，计5个6秒，共1.00元。执行一费制后，"
            "只收长途通话费，不再收取本地通话费。合计1.00元。"
        ),
    ),
    (
        "R3 international 2009",
        {"callee": "00442079460018", "duration_s": 30, "start": "2009-06-01T10:00:00+08:00"},
        (
            "按2009年的资费计费：您的全球通号码在归属地直拨英国的国际长途电话，通话30秒。"
            "本地通话费0.40元/分钟，计1分钟，共0.40元；国际长途通话费0.80元/6秒，计5个6秒，"
            "共4.00元。合计4.40元。"
        ),
    ),
    (
        "R3 satellite 2010",
        {"callee": "+870773112345", "duration_s": 12},
        (
            "按2010年1月1日起的长途一费制计费：您的全球通号码在归属地直拨卫星电话，通话12秒。"
            "卫星电话长途通话费0.80元/6秒，计2个6秒，共1.60元。"
            "拨打海事卫星等卫星电话只收相应长途费，不再收取基本通话费。合计1.60元。"
        ),
    ),
    (
        "R4 17951 2010",
        {"callee": "1795102188001234", "duration_s": 61},
        (
            "按2010年1月1日起的长途一费制计费："
            "您的全球通号码在归属地加拨17951拨打国内长途电话，通话1分1秒。"
            "17951国内长途通话费0.30元/分钟，计2分钟，共0.60元。执行一费制后，"
            "只收长途通话费，不再收取本地通话费。合计0.60元。"
        ),
    ),
    (
        "R4 17951 2009",
        {"callee": "1795102188001234", "duration_s": 61, "start": "2009-06-01T10:00:00+08:00"},
        (
            "按2009年的资费计费：您的全球通号码在归属地加拨17951拨打国内长途电话，"
            "通话1分1秒。本地通话费0.40元/分钟，计2分钟，共0.80元；"
            "17951国内长途通话费0.30元/分钟，计2分钟，共0.60元。合计1.40元。"
        ),
    ),
    (
        "R5 17951 Japan 2010",
        {"callee": "179510081312345678", "duration_s": 59},
        (
            "按2010年1月1日起的长途一费制计费："
            "您的全球通号码在归属地加拨17951拨打日本的国际长途电话，通话59秒。"
            "17951长途通话费3.60元/分钟，计1分钟，共3.60元。"
            "通过17951拨打港澳台和国际电话不另收本地通话费和漫游费。合计3.60元。"
        ),
    ),
    (
        "R5 17951 satellite 2009",
        {"callee": "1795100870773112345", "duration_s": 61, "start": "2009-06-01T10:00:00+08:00"},
        (
            "按2009年的资费计费：您的全球通号码在归属地加拨17951拨打卫星电话，通话1分1秒。"
            "本地通话费0.40元/分钟，计2分钟，共0.80元；17951长途通话费4.60元/分钟，计2分钟，"
            "共9.20元。合计10.00元。"
        ),
    ),
    (
        "R6 12593 busy",
        {"callee": "1259302188001234", "duration_s": 90},
        (
            "按2010年1月1日起的长途一费制计费："
            "您的全球通号码在归属地加拨12593拨打国内长途电话，通话1分30秒。"
            "12593国内长途通话费（忙时）0.35元/分钟，计2分钟，共0.70元。合计0.70元。"
        ),
    ),
    (
        "R6 12593 idle 2009",
        {"callee": "1259302188001234", "duration_s": 90, "start": "2009-06-01T21:30:00+08:00"},
        (
            "按2009年的资费计费：您的全球通号码在归属地加拨12593拨打国内长途电话，"
            "通话1分30秒。12593国内长途通话费（闲时）0.15元/分钟，计2分钟，共0.30元。"
            "合计0.30元。"
        ),
    ),
    (
        "R6 12593 in-province",
        {
            "caller": "13411150000",
            "visited_area": "0755",
            "callee": "1259301088001234",
            "duration_s": 61,
            "plan": "easyown",
        },
        (
            "按2010年1月1日起的长途一费制计费："
            "您的神州行号码在省内漫游时加拨12593拨打国内长途电话，通话1分1秒。"
            "12593国内长途通话费（忙时）0.35元/分钟，计2分钟，共0.70元。合计0.70元。"
        ),
    ),
    (
        "R6 12593 national",
        {"visited_area": "021", "callee": "1259302088001234", "duration_s": 61, "plan": "mzone"},
        (
            "按2010年1月1日起的长途一费制计费："
            "您的动感地带号码在国内漫游时加拨12593拨打国内长途电话，通话1分1秒。"
            "12593国内长途通话费0.50元/分钟，计2分钟，共1.00元。合计1.00元。"
        ),
    ),
    (
        "R7 12593 US at home",
        {"callee": "125930012025550123", "duration_s": 61},
        (
            "按2010年1月1日起的长途一费制计费："
            "您的全球通号码在归属地加拨12593拨打美国的国际长途电话，通话1分1秒。"
            "12593长途通话费1.50元/分钟，计2分钟，共3.00元。合计3.00元。"
        ),
    ),
    (
        "R7 12593 HMT in-province",
        {
            "caller": "13411150000",
            "visited_area": "0755",
            "callee": "125930085223456789",
            "duration_s": 61,
        },
        (
            "按2010年1月1日起的长途一费制计费："
            "您的全球通号码在省内漫游时加拨12593拨打香港的电话，通话1分1秒。"
            "12593长途通话费1.80元/分钟，计2分钟，共3.60元。合计3.60元。"
        ),
    ),
    (
        "R8 LD 3 s 2010",
        {"callee": "02188001234", "duration_s": 3},
        (
            "按2010年1月1日起的长途一费制计费：您的全球通号码在归属地直拨国内长途电话，"
            "通话3秒。3秒以内的长途话单不收长途费；执行一费制后，"
            "在本地拨打长途只收长途通话费，不再收取本地通话费。合计0.00元。"
        ),
    ),
    (
        "R8 LD 3 s 2009",
        {"callee": "02188001234", "duration_s": 3, "start": "2009-06-01T10:00:00+08:00"},
        (
            "按2009年的资费计费：您的全球通号码在归属地直拨国内长途电话，通话3秒。"
            "3秒以内的长途话单不收本地通话费和长途费。合计0.00元。"
        ),
    ),
    (
        "R8 not while roaming",
        {"visited_area": "021", "callee": "0085223456789", "duration_s": 3},
        (
            "按2010年1月1日起的长途一费制计费：您的全球通号码在国内漫游时直拨香港的电话，"
            "通话3秒。港澳台长途通话费0.20元/6秒，计1个6秒，共0.20元。"
            "漫游时直拨港澳台和国际电话只收长途通话费，不收漫游费；"
            "漫游时3秒以内的话单（包括长途）正常计费。合计0.20元。"
        ),
    ),
    (
        "R9 at home",
        {"callee": "10086", "duration_s": 60},
        (
            "按2010年1月1日起的长途一费制计费：您的全球通号码在归属地直拨特服号码，"
            "通话1分钟。拨打特服号码不收取通话费。合计0.00元。"
        ),
    ),
    (
        "R9 after 12593 while roaming",
        {"visited_area": "021", "callee": "1259310086", "duration_s": 61},
        (
            "按2010年1月1日起的长途一费制计费："
            "您的全球通号码在国内漫游时加拨12593拨打特服号码，通话1分1秒。"
            "拨打特服号码不收取通话费。合计0.00元。"
        ),
    ),
    (
        "R10 2010",
        {
            "callee": "02188001234",
            "duration_s": 600,
            "start": "2010-03-01T23:10:00+08:00",
            "packages": ["ld_night"],
        },
        (
            "按2010年1月1日起的长途一费制计费：您的全球通号码在归属地直拨国内长途电话，"
            "通话10分钟。您办理了长话夜聊包，"
            "在优惠时段（23:00至次日7:00）拨打长途不收通话费，"
            "我们只收取您每月5.00元的功能费。合计0.00元。"
        ),
    ),
    (
        "R10 2009",
        {
            "callee": "02188001234",
            "duration_s": 600,
            "start": "2009-06-01T06:10:00+08:00",
            "packages": ["ld_night"],
        },
        (
            "按2009年的资费计费：您的全球通号码在归属地直拨国内长途电话，通话10分钟。"
            "您办理了长话夜聊包，在优惠时段（23:00至次日7:00）拨打长途不收通话费，"
            "我们只收取您每月5.00元的功能费。合计0.00元。"
        ),
    ),
    (
        "R11 local to visited",
        {"visited_area": "021", "callee": "88001234", "duration_s": 61},
        (
            "按2010年1月1日起的长途一费制计费：您的全球通号码在国内漫游时直拨漫游地当地电话，"
            "通话1分1秒。漫游通话费0.60元/分钟，计2分钟，共1.20元。合计1.20元。"
        ),
    ),
    (
        "R11 LD national 2009",
        {
            "visited_area": "021",
            "callee": "01088001234",
            "duration_s": 61,
            "start": "2009-06-01T10:00:00+08:00",
        },
        (
            "按2009年的资费计费：您的全球通号码在国内漫游时直拨国内长途电话，通话1分1秒。"
            "漫游通话费0.60元/分钟，计2分钟，共1.20元。漫游时拨打国内电话只收漫游通话费，"
            "国内长途费已包含在内。合计1.20元。"
        ),
    ),
    (
        "R11 in-province",
        {
            "caller": "13411150000",
            "visited_area": "0755",
            "callee": "02088001234",
            "duration_s": 61,
            "plan": "mzone",
        },
        (
            "按2010年1月1日起的长途一费制计费：您的动感地带号码在省内漫游时直拨国内长途电话，"
            "通话1分1秒。漫游通话费0.60元/分钟，计2分钟，共1.20元。"
            "漫游时拨打国内电话只收漫游通话费，国内长途费已包含在内。合计1.20元。"
        ),
    ),
    (
        "R11 in-province 2009",
        {
            "caller": "13411150000",
            "visited_area": "0755",
            "callee": "02088001234",
            "duration_s": 61,
            "start": "2009-06-01T10:00:00+08:00",
        },
        (
            "按2009年的资费计费：您的全球通号码在省内漫游时直拨国内长途电话，通话1分1秒。"
            "漫游通话费0.60元/分钟，计2分钟，共1.20元。漫游时拨打国内电话只收漫游通话费，"
            "国内长途费已包含在内。合计1.20元。"
        ),
    ),
    (
        "R11 17951 domestic",
        {"visited_area": "021", "callee": "1795102088001234", "duration_s": 61},
        (
            "按2010年1月1日起的长途一费制计费："
            "您的全球通号码在国内漫游时加拨17951拨打国内长途电话，通话1分1秒。"
            "漫游通话费0.60元/分钟，计2分钟，共1.20元。漫游时拨打国内电话只收漫游通话费，"
            "国内长途费已包含在内。合计1.20元。"
        ),
    ),
    (
        "R11 12593 before a visited-area number",
        {"visited_area": "021", "callee": "1259302188001234", "duration_s": 61},
        (
            "按2010年1月1日起的长途一费制计费："
            "您的全球通号码在国内漫游时加拨12593拨打漫游地当地电话，通话1分1秒。"
            "漫游通话费0.60元/分钟，计2分钟，共1.20元。加拨12593拨打当地电话不是长途，"
            "按漫游通话收费，不收长途费。合计1.20元。"
        ),
    ),
    (
        "R1 17951 before a home number",
        {"callee": "1795101088001234", "duration_s": 61},
        (
            "按2010年1月1日起的长途一费制计费：您的全球通号码在归属地加拨17951拨打当地电话，"
            "通话1分1秒。本地通话费0.40元/分钟，计2分钟，共0.80元。"
            "加拨17951拨打当地电话不是长途，按本地通话收费，不收长途费。合计0.80元。"
        ),
    ),
    (
        "R12 HMT 2010",
        {"visited_area": "021", "callee": "0085223456789", "duration_s": 30},
        (
            "按2010年1月1日起的长途一费制计费：您的全球通号码在国内漫游时直拨香港的电话，"
            "通话30秒。港澳台长途通话费0.20元/6秒，计5个6秒，共1.00元。"
            "漫游时直拨港澳台和国际电话只收长途通话费，不收漫游费。合计1.00元。"
        ),
    ),
    (
        "R12 HMT 2009",
        {
            "visited_area": "021",
            "callee": "0085223456789",
            "duration_s": 30,
            "start": "2009-06-01T10:00:00+08:00",
        },
        (
            "按2009年的资费计费：您的全球通号码在国内漫游时直拨香港的电话，通话30秒。"
            "漫游通话费0.60元/分钟，计1分钟，共0.60元；港澳台长途通话费0.20元/6秒，计5个6秒，"
            "共1.00元。合计1.60元。"
        ),
    ),
    (
        "R13 17951 US national 2010",
        {"visited_area": "021", "callee": "179510012025550123", "duration_s": 61},
        (
            "按2010年1月1日起的长途一费制计费："
            "您的全球通号码在国内漫游时加拨17951拨打美国的国际长途电话，通话1分1秒。"
            "17951长途通话费2.40元/分钟，计2分钟，共4.80元。"
            "通过17951拨打港澳台和国际电话不另收本地通话费和漫游费。合计4.80元。"
        ),
    ),
    (
        "R13 17951 US national 2009",
        {
            "visited_area": "021",
            "callee": "179510012025550123",
            "duration_s": 61,
            "start": "2009-06-01T10:00:00+08:00",
        },
        (
            "按2009年的资费计费：您的全球通号码在国内漫游时加拨17951拨打美国的国际长途电话，"
            "通话1分1秒。漫游通话费0.60元/分钟，计2分钟，共1.20元；"
            "17951长途通话费2.40元/分钟，计2分钟，共4.80元。合计6.00元。"
        ),
    ),
    (
        "R14 at home",
        {"callee": "02188001234", "duration_s": 61, "type": "terminating"},
        (
            "按2010年1月1日起的长途一费制计费：您的全球通号码在归属地接听来电，通话1分1秒。"
            "在归属地接听电话不收费。合计0.00元。"
        ),
    ),
    (
        "R14 in-province",
        {
            "caller": "13411150000",
            "visited_area": "0755",
            "callee": "02188001234",
            "duration_s": 61,
            "type": "terminating",
        },
        (
            "按2010年1月1日起的长途一费制计费：您的全球通号码在省内漫游时接听来电，"
            "通话1分1秒。被叫漫游通话费0.40元/分钟，计2分钟，共0.80元。合计0.80元。"
        ),
    ),
    (
        "R14 national 2009",
        {
            "visited_area": "021",
            "callee": "02188001234",
            "duration_s": 61,
            "type": "terminating",
            "start": "2009-06-01T10:00:00+08:00",
        },
        (
            "按2009年的资费计费：您的全球通号码在国内漫游时接听来电，通话1分1秒。"
            "被叫漫游通话费0.40元/分钟，计2分钟，共0.80元。合计0.80元。"
        ),
    ),
    (
        "R15 home area on-net",
        {
            "type": "forwarded",
            "forward_kind": "unconditional",
            "callee": "13901234567",
            "duration_s": 61,
        },
        (
            "按2010年1月1日起的长途一费制计费：您的全球通号码在归属地设置了无条件呼叫转移，"
            "来电转接到归属地的中国移动网内电话，通话1分1秒。"
            "呼转基本费（转至中国移动网内电话）0.10元/分钟，计2分钟，共0.20元。合计0.20元。"
        ),
    ),
    (
        "R15 home area off-net",
        {
            "type": "forwarded",
            "forward_kind": "conditional",
            "callee": "88001234",
            "duration_s": 61,
        },
        (
            "按2010年1月1日起的长途一费制计费：您的全球通号码在归属地设置了有条件呼叫转移，"
            "来电转接到归属地的中国移动网外电话，通话1分1秒。"
            "呼转基本费（转至中国移动网外电话）0.20元/分钟，计2分钟，共0.40元。合计0.40元。"
        ),
    ),
    (
        "R15 elsewhere 2010",
        {
            "type": "forwarded",
            "forward_kind": "unconditional",
            "callee": "02188001234",
            "duration_s": 61,
        },
        (
            "按2010年1月1日起的长途一费制计费：您的全球通号码在归属地设置了无条件呼叫转移，"
            "来电转接到归属地以外的国内电话，通话1分1秒。国内长途通话费0.06元/6秒，"
            "计11个6秒，共0.66元。执行一费制后，呼转产生长途费时只收长途费用，"
            "不再收取呼转基本费。合计0.66元。"
        ),
    ),
    (
        "R15 elsewhere 2009",
        {
            "type": "forwarded",
            "forward_kind": "unconditional",
            "callee": "13402001234",
            "duration_s": 61,
            "start": "2009-06-01T10:00:00+08:00",
        },
        (
            "按2009年的资费计费：您的全球通号码在归属地设置了无条件呼叫转移，"
            "来电转接到归属地以外的中国移动网内电话，通话1分1秒。"
            "呼转基本费（转至中国移动网内电话）0.10元/分钟，计2分钟，共0.20元；"
            "国内长途通话费0.07元/6秒，计11个6秒，共0.77元。合计0.97元。"
        ),
    ),
    (
        "R15 foreign 2010",
        {
            "type": "forwarded",
            "forward_kind": "unconditional",
            "callee": "0085223456789",
            "duration_s": 30,
        },
        (
            "按2010年1月1日起的长途一费制计费：您的全球通号码在归属地设置了无条件呼叫转移，"
            "来电转接到香港的电话，通话30秒。港澳台长途通话费0.20元/6秒，计5个6秒，共1.00元。"
            "执行一费制后，呼转产生长途费时只收长途费用，不再收取呼转基本费。合计1.00元。"
        ),
    ),
    (
        "R15 foreign 2009",
        {
            "type": "forwarded",
            "forward_kind": "unconditional",
            "callee": "00442079460018",
            "duration_s": 30,
            "start": "2009-06-01T10:00:00+08:00",
        },
        (
            "按2009年的资费计费：您的全球通号码在归属地设置了无条件呼叫转移，"
            "来电转接到英国的国际长途电话，通话30秒。"
            "呼转基本费（转至中国移动网外电话）0.20元/分钟，计1分钟，共0.20元；"
            "国际长途通话费0.80元/6秒，计5个6秒，共4.00元。合计4.20元。"
        ),
    ),
    (
        "R15 short 2010",
        {
            "type": "forwarded",
            "forward_kind": "unconditional",
            "callee": "02188001234",
            "duration_s": 3,
        },
        (
            "按2010年1月1日起的长途一费制计费：您的全球通号码在归属地设置了无条件呼叫转移，"
            "来电转接到归属地以外的国内电话，通话3秒。3秒以内的长途话单不收长途费；"
            "执行一费制后，呼转产生长途费时只收长途费用，不再收取呼转基本费。合计0.00元。"
        ),
    ),
    (
        "R15 short 2009",
        {
            "type": "forwarded",
            "forward_kind": "unconditional",
            "callee": "02188001234",
            "duration_s": 3,
            "start": "2009-06-01T10:00:00+08:00",
        },
        (
            "按2009年的资费计费：您的全球通号码在归属地设置了无条件呼叫转移，"
            "来电转接到归属地以外的中国移动网外电话，通话3秒。"
            "呼转基本费（转至中国移动网外电话）0.20元/分钟，计1分钟，共0.20元。"
            "3秒以内的长途话单不收长途费。合计0.20元。"
        ),
    ),
    (
        "R15 roaming unconditional to home",
        {
            "visited_area": "021",
            "type": "forwarded",
            "forward_kind": "unconditional",
            "callee": "01088001234",
            "duration_s": 61,
        },
        (
            "按2010年1月1日起的长途一费制计费："
            "您的全球通号码在国内漫游时设置了无条件呼叫转移，"
            "来电转接到归属地的中国移动网外电话，通话1分1秒。"
            "呼转基本费（转至中国移动网外电话）0.20元/分钟，计2分钟，共0.40元。合计0.40元。"
        ),
    ),
    (
        "R15 roaming unconditional to visited",
        {
            "visited_area": "021",
            "type": "forwarded",
            "forward_kind": "unconditional",
            "callee": "02188001234",
            "duration_s": 61,
        },
        (
            "按2010年1月1日起的长途一费制计费："
            "您的全球通号码在国内漫游时设置了无条件呼叫转移，来电转接到漫游地当地的电话，"
            "通话1分1秒。国内长途通话费0.06元/6秒，计11个6秒，共0.66元。执行一费制后，"
            "呼转产生长途费时只收长途费用，不再收取呼转基本费。合计0.66元。"
        ),
    ),
    (
        "R16 to visited area",
        {
            "visited_area": "021",
            "type": "forwarded",
            "forward_kind": "conditional",
            "callee": "02188001234",
            "duration_s": 61,
        },
        (
            "按2010年1月1日起的长途一费制计费："
            "您的全球通号码在国内漫游时设置了有条件呼叫转移，来电转接到漫游地当地的电话，"
            "通话1分1秒。被叫漫游通话费0.40元/分钟，计2分钟，共0.80元。"
            "有条件呼转到漫游地当地电话上只收被叫漫游费。合计0.80元。"
        ),
    ),
    (
        "R16 elsewhere in-province",
        {
            "caller": "13411150000",
            "visited_area": "0755",
            "type": "forwarded",
            "forward_kind": "conditional",
            "callee": "02088001234",
            "duration_s": 61,
        },
        (
            "按2010年1月1日起的长途一费制计费："
            "您的全球通号码在省内漫游时设置了有条件呼叫转移，来电转接到归属地的电话，"
            "通话1分1秒。被叫漫游通话费0.40元/分钟，计2分钟，共0.80元；"
            "主叫漫游通话费0.60元/分钟，计2分钟，共1.20元。"
            "有条件呼转到漫游地以外电话上收取被叫漫游费加主叫漫游费。合计2.00元。"
        ),
    ),
    (
        "R16 foreign",
        {
            "visited_area": "021",
            "type": "forwarded",
            "forward_kind": "conditional",
            "callee": "00442079460018",
            "duration_s": 30,
        },
        (
            "按2010年1月1日起的长途一费制计费："
            "您的全球通号码在国内漫游时设置了有条件呼叫转移，来电转接到英国的国际长途电话，"
            "通话30秒。被叫漫游通话费0.40元/分钟，计1分钟，共0.40元；"
            "国际长途通话费0.80元/6秒，计5个6秒，共4.00元。"
            "有条件呼转到港澳台和国际电话上收取被叫漫游费加长途通话费。合计4.40元。"
        ),
    ),
    (
        "R16 2009",
        {
            "visited_area": "021",
            "type": "forwarded",
            "forward_kind": "conditional",
            "callee": "13901234567",
            "duration_s": 61,
            "start": "2009-06-01T10:00:00+08:00",
        },
        (
            "按2009年的资费计费：您的全球通号码在国内漫游时设置了有条件呼叫转移，"
            "来电转接到归属地的中国移动网内电话，通话1分1秒。"
            "呼转基本费（转至中国移动网内电话）0.10元/分钟，计2分钟，共0.20元；"
            "被叫漫游通话费0.40元/分钟，计2分钟，共0.80元；主叫漫游通话费0.60元/分钟，"
            "计2分钟，共1.20元。合计2.20元。"
        ),
    ),
    (
        "R16 3 s is billed",
        {
            "visited_area": "021",
            "type": "forwarded",
            "forward_kind": "conditional",
            "callee": "02188001234",
            "duration_s": 3,
        },
        (
            "按2010年1月1日起的长途一费制计费："
            "您的全球通号码在国内漫游时设置了有条件呼叫转移，来电转接到漫游地当地的电话，"
            "通话3秒。被叫漫游通话费0.40元/分钟，计1分钟，共0.40元。"
            "有条件呼转到漫游地当地电话上只收被叫漫游费；"
            "漫游时3秒以内的话单（包括长途）正常计费。合计0.40元。"
        ),
    ),
    (
        "unanswered",
        {"callee": "02188001234", "duration_s": 0},
        (
            "按2010年1月1日起的长途一费制计费：您的全球通号码在归属地直拨国内长途电话，"
            "通话未接通，不收费。合计0.00元。"
        ),
    ),
    (
        "long call",
        {
            "visited_area": "021",
            "callee": "01088001234",
            "duration_s": 3725,
            "plan": "easyown_home",
        },
        (
            "按2010年1月1日起的长途一费制计费："
            "您的新神州行家园卡号码在国内漫游时直拨国内长途电话，通话1小时2分5秒。"
            "漫游通话费0.60元/分钟，计63分钟，共37.80元。漫游时拨打国内电话只收漫游通话费，"
            "国内长途费已包含在内。合计37.80元。"
        ),
    ),
]


@pytest.mark.parametrize(
    ("overrides", "sentence"), [pytest.param(*row[1:], id=row[0]) for row in GOLDEN]
)
def test_golden_sentence(rater: Rater, overrides: dict[str, Any], sentence: str) -> None:
    assert rater.rate_raw({**BASE, **overrides}).explanation_zh == sentence


def test_golden_sentences_cover_every_rule_version_roaming_state_and_waiver(
    rater: Rater,
) -> None:
    ratings = [rater.rate_raw({**BASE, **row[1]}) for row in GOLDEN]
    every_rule = {f"R{n}" for n in range(1, 17)}
    assert {row[0].split()[0] for row in GOLDEN} >= every_rule
    # R12 / R13 price with R3 / R5 / R6 / R7 components and so name those.
    assert {rule for r in ratings for rule in r.rules} == every_rule - {"R12", "R13"}
    assert {(r.tariff, r.roaming) for r in ratings} == {
        (version, roaming)
        for version in ("cmcc-2009", "cmcc-2010")
        for roaming in ("home", "in_province", "national")
    }
    assert {r.call_class for r in ratings} == set(CALL_CLASSES)
    sentences = " ".join(r.explanation_zh for r in ratings)
    for waiver in (
        "3秒以内的长途话单不收长途费",
        "长话夜聊包",
        "不再收取本地通话费",
        "不再收取呼转基本费",
        "国内长途费已包含在内",
        "不收漫游费",
        "拨打特服号码不收取通话费",
        "在归属地接听电话不收费",
        "不收长途费",
        "正常计费",
        "未接通",
    ):
        assert waiver in sentences, waiver


INTERNAL = re.compile(r"[A-Za-z_]|R\d")  # rule ids, item codes, tariff and plan ids
DURATION = re.compile(r"\d+分\d+秒")


def check_explanation(rating: Rating) -> None:
    """What every explanation must satisfy (SPEC §6.4)."""
    text = rating.explanation_zh
    assert not INTERNAL.search(text), text
    # 分 only in 分钟 or a duration such as 2分5秒: never an amount in fen.
    assert "分" not in DURATION.sub("", text).replace("分钟", ""), text
    totals = re.findall(r"合计(-?\d+\.\d{2})元", text)
    assert totals == [f"{rating.charge_fen // 100}.{rating.charge_fen % 100:02d}"], text
    assert text.endswith("。"), text
    for item in rating.items:
        if item.units == 0:  # an unanswered call: "未接通，不收费"
            continue
        part = (
            f"{rate_zh(item.rate_fen, item.unit_s)}，计{units_zh(item.units, item.unit_s)}，"
            f"共{yuan(item.amount_fen)}"
        )
        assert part in text, (part, text)
    assert "，通话未接通，" in text or re.search(r"，通话(\d+小时)?(\d+分钟?)?(\d+秒)?。", text)


def test_every_golden_case_explanation(rater: Rater) -> None:
    checked = 0
    for case in golden_cases():
        try:
            rating = rater.rate_raw(case["request"])
        except Rejected:
            continue
        check_explanation(rating)
        checked += 1
    assert checked > 20


def test_explanations_of_10000_generated_cdrs(rater: Rater) -> None:
    rows = generate_cdrs(rater, 10_000, seed=6_4).to_pylist()
    rows += pa.Table.from_pylist(decision_rows()).to_pylist()
    ratings = []
    for raw in rows:
        try:
            ratings.append(rater.rate_raw(column_record(raw)))
        except Rejected:
            continue
    assert len(ratings) > 10_000
    assert len({r.explanation_zh for r in ratings}) > 5_000
    for rating in ratings:
        check_explanation(rating)
    said = " ".join(r.explanation_zh for r in ratings)
    assert [name for name in ITEM_ZH.values() if name not in said] == []
