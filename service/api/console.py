"""GET /agent/: the agents' console, static files shipped in the package (service/web)."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

# The page loads only its own files and talks only to this server; nothing is cached
# across sign-ins, no referrer leaves the page, and no other site may frame it.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


class ConsoleFiles(StaticFiles):
    """StaticFiles with the console's security headers; index.html answers /agent/."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The file, with HEADERS added."""
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def console_files() -> ConsoleFiles:
    """The ASGI app mounted at /agent."""
    return ConsoleFiles(directory=WEB_DIR, html=True)
