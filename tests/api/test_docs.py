"""/docs and /redoc load nothing from another host: the pages and every asset they load are
served by the app itself (an operator network without internet still gets the API pages)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from service.api.app import create_app
from service.config import Settings

# Where a page or a bundle would load something from: an HTML attribute, a JS property set on
# an element (src:"https://..."), a CSS url() or @import.
LOADS = re.compile(
    r"""(?:src|href|spec-url)\s*=\s*["']?([^"'\s>]+)"""  # HTML
    r"""|url:\s*'([^']+)'"""  # Swagger UI's spec URL
    r"""|oauth2RedirectUrl:\s*window\.location\.origin\s*\+\s*'([^']+)'"""
)
REMOTE_LOADS = {  # what an asset would load from another host with
    ".js": re.compile(r"""src\s*[:=]\s*["'](?:https?:)?//|fonts\.googleapis|\bcdn\."""),
    ".css": re.compile(r"""url\(\s*["']?(?:https?:)?//|@import"""),
}


class Client:
    """GET on the app over ASGI, without its lifespan (the docs need no database)."""

    def __init__(self, portal: BlockingPortal, client: httpx.AsyncClient) -> None:
        self.portal = portal
        self.client = client

    def get(self, url: str) -> httpx.Response:
        return self.portal.call(functools.partial(self.client.get, url))


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    app = create_app(Settings(api_keys="switch=k"))
    with start_blocking_portal() as portal:
        transport = httpx.ASGITransport(app=app)
        client = httpx.AsyncClient(transport=transport, base_url="http://callrate.test")
        yield Client(portal, client)
        portal.call(client.aclose)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_page_and_its_assets_come_from_the_app(client: Client, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "://" not in html  # no absolute URL at all: nothing names another host
    loaded = [next(url for url in match if url) for match in LOADS.findall(html)]
    assets = [url for url in loaded if url.startswith("/docs-assets/")]
    assert "/openapi.json" in loaded
    assert len(assets) >= 2  # the bundle (and Swagger UI's stylesheet) and the favicon
    for url in loaded:
        assert url.startswith("/"), url
        assert not url.startswith("//"), url
    for url in assets:
        asset = client.get(url)
        assert asset.status_code == 200, url
        remote = REMOTE_LOADS.get(url[url.rfind(".") :])
        found = remote.search(asset.text) if remote else None
        assert found is None, (url, asset.text[found.start() - 80 : found.end() + 80])


def test_swagger_ui_does_not_call_the_public_validator(client: Client) -> None:
    assert '"validatorUrl": null' in client.get("/docs").text


def test_the_redoc_sidebar_logo_is_local(client: Client) -> None:
    bundle = client.get("/docs-assets/redoc.standalone.js").text
    assert "cdn.redoc.ly" not in bundle
    assert 'src:"/docs-assets/favicon.png"' in bundle


def test_the_spec_the_pages_read_is_served(client: Client) -> None:
    spec = client.get("/openapi.json").json()
    assert "/v1/quote" in spec["paths"]
    assert not any(path.startswith(("/docs", "/redoc")) for path in spec["paths"])


def test_the_front_page_points_to_the_docs_and_the_console(client: Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    links = {next(url for url in match if url) for match in LOADS.findall(page.text)}
    assert {"docs", "agent/", "agent/favicon.svg"} <= links
    for link in links:  # relative, and each one answers (readyz asks the database: not here)
        assert not link.startswith("/"), link
        if link != "readyz":
            assert client.get(f"/{link}").status_code == 200, link
