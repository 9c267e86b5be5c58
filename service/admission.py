"""Admission control: a bounded number of requests in flight per worker.

Past the bound a request is answered at once 503 `overloaded` with Retry-After (the one
error envelope) instead of queueing behind the others: under overload the admitted requests
keep their latency and the rest learn at once to come back later, where a queue would make
every request wait seconds and time out. Health, readiness and metrics are never refused.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

OVERLOADED = "overloaded"
RETRY_AFTER_S = 1
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

_BODY = orjson.dumps(
    {
        "error": OVERLOADED,
        "message": "this worker has as many requests in flight as it admits; retry later",
    }
)
_START = {
    "type": "http.response.start",
    "status": 503,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_BODY)).encode()),
        (b"retry-after", str(RETRY_AFTER_S).encode()),
    ],
}


class AdmissionMiddleware:
    """Pure ASGI: admits at most `max_in_flight` HTTP requests at once (this process)."""

    def __init__(self, app: ASGIApp, *, max_in_flight: int) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or refuse it 503 overloaded without reading its body."""
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            self.refused += 1
            await send(_START)
            await send({"type": "http.response.body", "body": _BODY})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
