"""Bodies that FastAPI itself reads (registry, suspense recycle, re-rating jobs): FastAPI
reads and parses a declared body before any dependency runs, so the key check of
`deps.require` would come after the body. This middleware checks the key and bounds the size
first (SPEC §6.2: an unauthenticated request is refused before its body is read; too large →
413). POST /v1/cdrs and /v1/quote read their own bodies after the key (deps.read_body)."""

from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.deps import body_timeout
from service.api.errors import domain_answer, error_response
from service.errors import BodyTooLarge, Unauthenticated
from service.security import KeyRing

SELF_READING = frozenset({"/v1/cdrs", "/v1/quote"})
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
SMALL_BODY_BYTES = 64 * 1024  # a registry entry, a recycle list or a window: a few KiB


async def _known(keys: KeyRing, authorization: str | None) -> bool:
    """Whether the Authorization header carries a key of any role (memory, then storage)."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key:
        return False
    if keys.authenticate(key) is not None:
        return True
    if not keys.looks_up_stored:
        return False
    try:
        return await run_in_threadpool(keys.authenticate_stored, key) is not None
    except Exception:  # the database is out: let the route answer (503), as for a GET
        return True


class BodyGuardMiddleware:
    """Pure ASGI: 401 before reading the body of a /v1 request without a known key; the body
    bounded to SMALL_BODY_BYTES (413 from Content-Length, else while it streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass on requests this guard does not cover; check the others first."""
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] not in WITH_BODY
            or not path.startswith("/v1/")
            or path in SELF_READING
        ):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        authorizations = headers.getlist("authorization")
        if len(authorizations) > 1 or not await _known(
            scope["app"].state.keys, authorizations[0] if authorizations else None
        ):
            refused = error_response(
                401,
                Unauthenticated.code,
                "a request carries at most one Authorization header"
                if len(authorizations) > 1
                else "a valid Authorization: Bearer <key> header is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
            await refused(scope, receive, send)
            return
        too_large = error_response(
            413, BodyTooLarge.code, f"body is larger than {SMALL_BODY_BYTES} bytes"
        )
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > SMALL_BODY_BYTES:
            await too_large(scope, receive, send)
            return
        body = bytearray()
        timeout_s: float = scope["app"].state.settings.body_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                while True:  # at most SMALL_BODY_BYTES held, then replayed to the route whole
                    message = await receive()
                    if message["type"] != "http.request":  # the client left before the end
                        await self.app(scope, _replay(message, receive), send)
                        return
                    body += message.get("body", b"")
                    if len(body) > SMALL_BODY_BYTES:
                        await too_large(scope, receive, send)
                        return
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            late = domain_answer(body_timeout(timeout_s))
            await late(scope, receive, send)
            return
        whole: Message = {"type": "http.request", "body": bytes(body), "more_body": False}
        await self.app(scope, _replay(whole, receive), send)


def _replay(first: Message, receive: Receive) -> Receive:
    """A receive that gives `first`, then what the client sends next (its disconnect)."""
    given = False

    async def replaying() -> Message:
        nonlocal given
        if not given:
            given = True
            return first
        return await receive()

    return replaying
