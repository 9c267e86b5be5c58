"""Admission control: a bounded number of requests in flight per worker, and no queueing
behind a lagging event loop.

Past the bound a request is answered at once 503 `overloaded` with Retry-After (the one
error envelope) instead of queueing behind the others: under overload the admitted requests
keep their latency and the rest learn at once to come back later, where a queue would make
every request wait seconds and time out. Health, readiness and metrics are never refused.

Requests that wait in socket buffers while the worker's CPU is saturated are not in flight
yet: the count does not see that queue. Its length shows as event-loop lag (how late a timer
fires), measured every LAG_PERIOD_S: while it passes `max_lag_s` and a quarter of the
allowed requests are in flight, new ones are refused too, so that refusing (cheap) drains
the queue instead of serving requests that already waited too long.
"""

from __future__ import annotations

import asyncio

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

OVERLOADED = "overloaded"
RETRY_AFTER_S = 1
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
LAG_PERIOD_S = 0.005

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

    def __init__(self, app: ASGIApp, *, max_in_flight: int, max_lag_s: float = 0.0) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.refused = 0
        self.max_lag_s = max_lag_s  # 0: not measured
        self.lag_s = 0.0
        self._lag_floor = max(1, max_in_flight // 4)
        self._watcher: asyncio.Task[None] | None = None

    async def _watch_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LAG_PERIOD_S
            await asyncio.sleep(LAG_PERIOD_S)
            self.lag_s = loop.time() - due

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or refuse it 503 overloaded without reading its body."""
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if self.max_lag_s and self._watcher is None:  # on the serving loop, at its first request
            self._watcher = asyncio.get_running_loop().create_task(self._watch_lag())
        if self.in_flight >= self.max_in_flight or (
            self.lag_s > self.max_lag_s > 0 and self.in_flight >= self._lag_floor
        ):
            self.refused += 1
            await send(_START)
            await send({"type": "http.response.body", "body": _BODY})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
