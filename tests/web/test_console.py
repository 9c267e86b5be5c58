"""The agents' console (GET /agent/) in a real browser: Debian's Chromium, headless, driven by
Playwright against a `callrate serve` process on a temp SQLite database.

Every request to a host other than the server is aborted and recorded; each test asserts
that none was needed. One browser serves the whole module; each test gets a fresh context
(no storage shared) at 1280x800.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright

from service.cli import main as cli_main
from tests.api.test_served import auth, served
from tests.api.test_usage import (
    CDRS,
    FRIEND,
    RERATE_WINDOW,
    SUBSCRIBER,
    call,
    write_corrected_tariffs,
)
from tests.conftest import golden_cases
from tests.conftest_db import KEYS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
expect.set_options(timeout=15_000)  # the shared CI machine can be slow; failures still fail


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`callrate serve` on a temp SQLite database holding a registered subscriber with two
    months of CDRs, one of them re-rated by a tariff correction (`callrate rerate`)."""
    data_dir = tmp_path_factory.mktemp("console-data")
    url = f"sqlite:///{data_dir / 'callrate.sqlite3'}"
    with served(url, data_dir) as (_, base), httpx.Client(base_url=base) as client:
        entry = {"plan": "gotone", "packages": ["ld_night"]}
        registered = client.put(f"/v1/subscribers/{SUBSCRIBER}", json=entry, headers=auth("admin"))
        assert registered.status_code == 200, registered.text
        ingested = client.post("/v1/cdrs", json=CDRS, headers=auth("switch")).json()
        assert ingested["counts"]["rated"] == len(CDRS)
        tariffs = write_corrected_tariffs(tmp_path_factory.mktemp("tariffs"))
        argv = ["--tariffs", str(tariffs), "rerate", "--url", url]
        assert cli_main([*argv, "--from", RERATE_WINDOW["from"], "--to", RERATE_WINDOW["to"]]) == 0
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("chromium is not installed: apt-get install -y chromium (see .ci/run)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


class Guard:
    """Routes every request: the server's go through, any other host's are aborted."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/") + "/"
        self.allowed: list[str] = []
        self.blocked: list[str] = []

    def __call__(self, route: Route) -> None:
        url = route.request.url
        if url.startswith(self.base):
            self.allowed.append(url)
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()


@pytest.fixture
def page(browser: Browser, server: str, tmp_path: Path) -> Iterator[Page]:
    context: BrowserContext = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    guard = Guard(server)
    context.route("**/*", guard)
    page = context.new_page()
    page.guard = guard  # type: ignore[attr-defined]
    page.shots = tmp_path  # type: ignore[attr-defined]
    page.goto(f"{server}/agent/")
    yield page
    context.close()
    assert guard.blocked == [], f"the page asked another host: {guard.blocked}"
    assert any(url.endswith("/agent/app.js") for url in guard.allowed)


def shot(page: Page, name: str) -> None:
    path = page.shots / f"{name}.png"  # type: ignore[attr-defined]
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0


def sign_in(page: Page, role: str = "agent") -> None:
    page.get_by_label("接入密钥").fill(KEYS[role])
    page.get_by_label("接入密钥").press("Enter")  # Enter submits
    expect(page.get_by_role("button", name="试算", exact=True)).to_be_visible()


def api_quote(server: str, request: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{server}/v1/quote", json=request, headers=auth("agent"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


# --- scenarios ----------------------------------------------------------------------------------


NAVIGATION_TIMING = (
    "() => { const n = performance.getEntriesByType('navigation')[0];"
    " return {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd}; }"
)


def test_page_loads_from_the_server_alone_and_quickly(page: Page, server: str) -> None:
    first = page.evaluate(NAVIGATION_TIMING)
    page.reload()
    expect(page.get_by_label("接入密钥")).to_be_visible()
    timing = page.evaluate(NAVIGATION_TIMING)
    for label, run in (("first load", first), ("reload", timing)):
        print(
            f"\nconsole {label} on localhost: DOMContentLoaded {run['dcl']:.1f} ms,"
            f" load event {run['load']:.1f} ms"
        )
    assert timing["load"] > 0
    html = httpx.get(f"{server}/agent/").text
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "an asset from another host"
    expect(page.get_by_label("接入密钥")).to_be_focused()
    page.keyboard.press("Tab")  # keyboard only: the next stop is the 登录 button, outlined
    expect(page.get_by_role("button", name="登录")).to_be_focused()
    outline = page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, s.outlineWidth]; }"
    )
    assert outline == ["solid", "3px"]
    page.keyboard.press("Shift+Tab")
    shot(page, "1-sign-in")


def test_wrong_key_and_wrong_role_are_refused(page: Page) -> None:
    key = page.get_by_label("接入密钥")
    key.fill("cr_not_a_key")
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#login-error")).to_have_text("接入密钥无效，请核对后重新输入")
    expect(key).to_have_attribute("aria-invalid", "true")
    shot(page, "2-wrong-key")
    key.fill(KEYS["switch"])
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#login-error")).to_contain_text("无权使用坐席工作台")
    expect(page.locator("#work")).to_be_hidden()


def test_sign_in_keeps_the_key_out_of_url_storage_and_cookies(page: Page) -> None:
    sign_in(page)
    assert KEYS["agent"] not in page.url
    stored = page.evaluate(
        "() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage),"
        " document.cookie])"
    )
    assert stored == '[[],[],""]'
    expect(page.get_by_label("接入密钥")).to_have_value("")
    # the plans come from the catalogue (GET /v1/tariffs), after 按用户登记
    options = page.get_by_label("资费套餐").locator("option").all_inner_texts()
    assert options[0] == "按用户登记"
    assert {"全球通", "动感地带", "神州行", "神州行新轻松卡", "新神州行家园卡"} <= set(options)
    # a reload forgets the key: the sign-in screen is back
    page.reload()
    expect(page.get_by_label("接入密钥")).to_be_visible()
    expect(page.locator("#work")).to_be_hidden()


def _three_golden_cases() -> list[dict[str, Any]]:
    cases = [c for c in golden_cases() if not c["expect"].get("rejected")]
    plain = next(
        c for c in cases if set(c["request"]) == {"caller", "callee", "start", "duration_s", "plan"}
    )
    forwarded = next(
        c for c in cases if c["request"].get("forward_kind") and c["request"].get("visited_area")
    )
    night = next(c for c in cases if c["request"].get("packages"))
    return [plain, forwarded, night]


TYPE_ZH = {"originating": "主叫", "terminating": "被叫", "forwarded": "呼转"}
FORWARD_ZH = {"unconditional": "无条件呼转", "conditional": "有条件呼转（遇忙、无应答、不可及）"}


def fill_quote(page: Page, request: dict[str, Any], *, start: str | None = None) -> None:
    page.get_by_label("主叫号码").fill(request["caller"])
    page.get_by_label("被叫号码").fill(request["callee"])
    page.get_by_label("通话开始时间").fill(start or request["start"])
    page.get_by_label("通话时长（秒）").fill(str(request["duration_s"]))
    page.get_by_label("呼叫类型").select_option(label=TYPE_ZH[request.get("type", "originating")])
    kind = request.get("forward_kind")
    page.get_by_label("呼转类型").select_option(label=FORWARD_ZH[kind] if kind else "（非呼转）")
    page.get_by_label("漫游地区号").fill(request.get("visited_area", ""))
    page.get_by_label("资费套餐").select_option(value=request.get("plan", ""))
    page.get_by_label("长话夜聊包").set_checked("ld_night" in request.get("packages", []))


def test_quote_three_golden_cases(page: Page, server: str) -> None:
    sign_in(page)
    for number, case in enumerate(_three_golden_cases()):
        request = case["request"]
        # the first case typed the way agents write it: no offset means +08:00
        typed = request["start"].replace("T", " ").removesuffix("+08:00") if number == 0 else None
        fill_quote(page, request, start=typed)
        if number == 1:
            page.get_by_label("通话时长（秒）").press("Enter")
        else:
            page.get_by_role("button", name="试算", exact=True).click()
        expected = case["expect"]["charge_fen"]
        expect(page.locator("#q-total")).to_have_text(f"合计 {yuan(expected)} 元")
        answer = api_quote(server, request)
        assert answer["charge_fen"] == expected
        expect(page.locator("#q-explanation")).to_have_text(answer["explanation_zh"])
        rows = page.locator("#q-items tbody tr")
        if answer["items"]:
            expect(rows).to_have_count(len(answer["items"]))
            amounts = rows.locator("td.num").all_inner_texts()
            assert amounts == [yuan(item["amount_fen"]) for item in answer["items"]]
        else:
            expect(rows).to_have_text(["本次通话不收费"])
        shot(page, f"3-quote-{number}")
    page.get_by_role("button", name="复制口径").click()
    expect(page.locator("#quote-result .copied")).to_have_text(re.compile("已复制|复制失败"))


def test_bad_input_shows_the_reason_next_to_the_field(page: Page) -> None:
    sign_in(page)
    request = {
        "caller": SUBSCRIBER,
        "callee": "02188ABC234",
        "start": "2010-03-01 10:00:00",
        "duration_s": 60,
        "plan": "gotone",
    }
    fill_quote(page, request)
    page.get_by_role("button", name="试算", exact=True).click()
    callee = page.get_by_label("被叫号码")
    expect(page.locator("#q-callee-error")).to_have_text("被叫号码只能包含数字和开头的一个“+”")
    expect(callee).to_have_attribute("aria-invalid", "true")
    expect(callee).to_be_focused()
    expect(page.locator("#quote-result")).to_be_hidden()
    shot(page, "4-quote-rejected")

    callee.fill("02188001234")
    page.get_by_label("通话开始时间").fill("昨天")
    page.get_by_role("button", name="试算", exact=True).click()
    expect(page.locator("#q-start-error")).to_contain_text("通话开始时间格式应为")
    expect(page.locator("#q-callee-error")).to_have_text("")

    # an unregistered caller quoted 按用户登记: the plan is at fault
    page.get_by_label("通话开始时间").fill("2010-03-01 10:00:00")
    page.get_by_label("主叫号码").fill("13700137000")
    page.get_by_label("资费套餐").select_option(value="")
    page.get_by_role("button", name="试算", exact=True).click()
    expect(page.locator("#q-plan-error")).to_have_text("该号码未登记资费套餐，请选择资费套餐")


def test_bill_inquiry_two_months_masked(page: Page, server: str) -> None:
    sign_in(page)
    page.get_by_role("button", name="详单查询").click()
    expect(page.get_by_label("用户号码")).to_be_focused()
    expect(page.get_by_label("账期")).to_have_value(re.compile(r"^\d{4}-\d{2}$"))
    page.get_by_label("用户号码").fill(SUBSCRIBER)
    page.get_by_label("账期").fill("2010-03")
    page.get_by_label("账期").press("Enter")
    expect(page.locator("#u-total")).to_have_text("8.11")
    subscriber = page.locator("#u-subscriber")
    expect(subscriber).to_contain_text("全球通")
    expect(subscriber).to_contain_text("北京 010")
    expect(subscriber).to_contain_text("长话夜聊包")
    summary = page.locator("#u-summary tbody tr")
    expect(summary).to_have_text(
        [
            re.compile(r"^国内长途\s*3\s*11\s*2\.31$"),
            re.compile(r"^被叫接听\s*1\s*4\s*0\.00$"),
            re.compile(r"^本地通话\s*1\s*2\s*0\.80$"),
            re.compile(r"^长话夜聊包（月功能费）\s*5\.00$"),
        ]
    )
    calls = page.locator("#u-calls tbody tr")
    expect(calls).to_have_count(5)
    expect(calls.nth(1)).to_contain_text("139****5678")
    expect(calls.nth(1)).to_contain_text("2分5秒")
    expect(calls.nth(1)).to_contain_text("1.26")
    shown = page.locator("#usage-result").inner_html()
    assert FRIEND not in shown
    assert "88001234" not in shown
    shot(page, "5-bill-2010-03")

    # the re-rated call: current charge 1.05, history of two ratings, explanation shown
    rerated = calls.nth(4)
    expect(rerated).to_contain_text("已重新批价")
    expect(rerated).to_contain_text("1.05")
    rerated.get_by_role("button").click()
    history = page.locator("#cd-history tbody tr")
    expect(history).to_have_count(2)
    expect(history.nth(0)).to_contain_text("1.26")
    expect(history.nth(0)).to_contain_text("入库批价")
    expect(history.nth(1)).to_contain_text("1.05")
    expect(history.nth(1)).to_contain_text("重新批价")
    record = httpx.get(f"{server}/v1/cdrs/mar-rerated", headers=auth("agent")).json()
    expect(page.locator("#cd-explanation")).to_have_text(record["current"]["explanation_zh"])
    expect(page.locator("#call-detail")).to_contain_text("021****1234")
    shot(page, "6-call-history")

    page.get_by_label("账期").fill("2010-02")
    page.get_by_role("button", name="查询", exact=True).click()
    expect(page.locator("#u-total")).to_have_text("6.00")
    expect(page.locator("#u-calls tbody tr")).to_have_count(2)
    expect(page.locator("#u-calls tbody tr").nth(1)).to_contain_text("2010-02-28 23:59:59")
    shot(page, "7-bill-2010-02")

    page.get_by_label("账期").fill("2010-3")
    page.get_by_role("button", name="查询", exact=True).click()
    expect(page.locator("#u-month-error")).to_have_text("账期格式应为 YYYY-MM，例如 2010-03")


def test_call_whose_id_holds_a_slash_opens_its_detail(page: Page, server: str) -> None:
    odd = [
        call("d3/x", "2010-04-02T10:00:00+08:00", "02188001234", 60),
        call("q?x=1#f/..", "2010-04-03T10:00:00+08:00", "02188001234", 30),
    ]
    stored = httpx.post(f"{server}/v1/cdrs", json=odd, headers=auth("switch")).json()
    assert stored["counts"]["rated"] == 2
    sign_in(page)
    page.get_by_role("button", name="详单查询").click()
    page.get_by_label("用户号码").fill(SUBSCRIBER)
    page.get_by_label("账期").fill("2010-04")
    page.get_by_label("账期").press("Enter")
    calls = page.locator("#u-calls tbody tr")
    expect(calls).to_have_count(2)
    for row in range(2):
        calls.nth(row).get_by_role("button").click()
        expect(page.locator("#cd-history tbody tr")).to_have_count(1)
        expect(page.locator("#u-form-error")).to_have_text("")
        expect(page.locator("#call-detail")).to_be_visible()
