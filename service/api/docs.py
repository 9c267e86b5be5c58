"""/docs (Swagger UI) and /redoc (ReDoc) from the app's own files: no CDN, so the API pages
work on an operator network without internet access; and `/`, the page that points to them
and to the agents' console.

The JavaScript and CSS come from the fastapi-offline package (swagger-ui-dist and redoc
bundles, versioned on PyPI). Two things in them would still reach out: Swagger UI's
validator badge (a request to validator.swagger.io, switched off with validatorUrl null)
and the logo ReDoc's sidebar loads from its maker's CDN (pointed at the local favicon).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
REDOC_JS = "redoc.standalone.js"
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
# GET /: where a newcomer's browser lands. Links are relative, so they hold behind a proxy
# that serves the app under a path of its own.
FRONT_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>callrate</title>
<link rel="icon" href="agent/favicon.svg" type="image/svg+xml">
</head>
<body>
<h1>callrate</h1>
<p>Telephony call rating: classify, rate to the fen, store, explain.</p>
<ul>
<li><a href="agent/">Agents' console</a> (话费坐席工作台)</li>
<li><a href="docs">API reference</a> (Swagger UI; also <a href="redoc">ReDoc</a>
and <a href="openapi.json">openapi.json</a>)</li>
<li><a href="healthz">healthz</a>, <a href="readyz">readyz</a></li>
</ul>
</body>
</html>
"""


@cache
def _redoc_bundle(favicon_url: str) -> bytes:
    """ReDoc's bundle, its sidebar logo loaded from here instead of its maker's CDN."""
    return (ASSETS_DIR / REDOC_JS).read_bytes().replace(REDOC_LOGO, favicon_url.encode())


def install_docs(app: FastAPI) -> None:
    """Serve /, /docs, /redoc and their assets; the app must be made with docs_url=None and
    redoc_url=None (FastAPI's own pages load them from a CDN)."""

    def urls(request: Request) -> tuple[str, str, str]:
        """The spec's URL, the assets' folder and the favicon, behind any root path."""
        root = request.scope.get("root_path", "")
        return f"{root}{app.openapi_url}", f"{root}{ASSETS_URL}", f"{root}{ASSETS_URL}/favicon.png"

    @app.get("/", include_in_schema=False)
    async def front_page() -> HTMLResponse:
        return HTMLResponse(FRONT_PAGE)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        spec, assets, favicon = urls(request)
        return get_swagger_ui_html(
            openapi_url=spec,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=favicon,
            oauth2_redirect_url=f"{request.scope.get('root_path', '')}{OAUTH2_REDIRECT_URL}",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        spec, assets, favicon = urls(request)
        return get_redoc_html(
            openapi_url=spec,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{assets}/{REDOC_JS}",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )

    @app.get(f"{ASSETS_URL}/{REDOC_JS}", include_in_schema=False)
    async def redoc_bundle(request: Request) -> Response:
        return Response(_redoc_bundle(urls(request)[2]), media_type="text/javascript")

    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
