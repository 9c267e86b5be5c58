"""The console's files as the app serves them: headers, no other host, every rejection code
has its Chinese message (no browser needed)."""

from __future__ import annotations

import re

from service.api.console import WEB_DIR
from service.rating.rejections import REASONS
from tests.conftest_db import Api

ASSETS = ("index.html", "app.js", "app.css")


def test_console_is_served_without_a_key_with_strict_headers(api: Api) -> None:
    for name in ("", *ASSETS):
        response = api.get(f"/agent/{name}")
        assert response.status_code == 200, name
        policy = response.headers["content-security-policy"]
        assert "connect-src 'self'" in policy
        assert "default-src 'none'" in policy
        assert response.headers["referrer-policy"] == "no-referrer"
    page = api.get("/agent/")
    assert page.headers["content-type"].startswith("text/html")
    assert "接入密钥" in page.text
    assert api.get("/agent/nope.js").status_code == 404
    assert api.get("/agent", follow_redirects=False).status_code in (301, 307, 308)


def test_the_console_has_a_favicon(api: Api) -> None:
    assert '<link rel="icon" href="favicon.svg"' in (WEB_DIR / "index.html").read_text("utf-8")
    icon = api.get("/agent/favicon.svg")
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/svg+xml"
    assert icon.text.startswith("<svg ")


def test_no_asset_names_another_host() -> None:
    for name in ASSETS:
        text = (WEB_DIR / name).read_text(encoding="utf-8")
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.IGNORECASE), name
    script = (WEB_DIR / "app.js").read_text(encoding="utf-8")
    for forbidden in ("localStorage", "sessionStorage", "document.cookie", "indexedDB"):
        assert forbidden not in script


def test_every_rejection_code_has_a_chinese_message() -> None:
    script = (WEB_DIR / "app.js").read_text(encoding="utf-8")
    table = script[script.index("const REJECTIONS_ZH") : script.index("const FIELD_INPUT")]
    codes = set(re.findall(r'"([a-z_0-9]+\.[a-z_0-9]+)":', table))
    assert set(REASONS) <= codes, sorted(set(REASONS) - codes)
    fields = {code.split(".", 1)[0] for code in REASONS} - {"id", "record"}
    mapped = script[script.index("const FIELD_INPUT") : script.index("const CLASS_ZH")]
    assert all(f"  {field}:" in mapped for field in fields)
