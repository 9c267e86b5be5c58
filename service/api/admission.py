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
from typing import Any

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
_START: dict[str, Any] = {
    "type": "http.response.start",
    "status": 503,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_BODY)).encode()),
        (b"retry-after", str(RETRY_AFTER_S).encode()),
    ],
}


class Admission:
    """One worker's admission state: requests in flight and event-loop lag. Shared by the
    middleware and the routes served before it (service.api.quote)."""

    def __init__(self, *, max_in_flight: int, max_lag_s: float = 0.0) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
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

    def admit(self) -> bool:
        """Count a request in (True), or count it refused (False): then answer it `refuse`
        and never `leave`."""
        if self.max_lag_s and self._watcher is None:  # on the serving loop, at its first request
            self._watcher = asyncio.get_running_loop().create_task(self._watch_lag())
        if self.in_flight >= self.max_in_flight or (
            self.lag_s > self.max_lag_s > 0 and self.in_flight >= self._lag_floor
        ):
            self.refused += 1
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        """An admitted request ended."""
        self.in_flight -= 1


async def refuse(send: Send, *extra_headers: tuple[bytes, bytes]) -> None:
    """Answer 503 overloaded with Retry-After (the body is never read)."""
    start = {**_START, "headers": [*_START["headers"], *extra_headers]} if extra_headers else _START
    await send(start)
    await send({"type": "http.response.body", "body": _BODY})


class AdmissionMiddleware:
    """Pure ASGI: admits at most `max_in_flight` HTTP requests at once (this process)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        admission: Admission | None = None,
        max_in_flight: int = 64,
        max_lag_s: float = 0.0,
    ) -> None:
        self.app = app
        self.admission = admission or Admission(max_in_flight=max_in_flight, max_lag_s=max_lag_s)

    @property
    def in_flight(self) -> int:
        """Requests admitted and not ended."""
        return self.admission.in_flight

    @property
    def lag_s(self) -> float:
        """The event loop's lag last measured (0 when not measured)."""
        return self.admission.lag_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or refuse it 503 overloaded without reading its body."""
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        admission = self.admission
        if not admission.admit():
            await refuse(send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            admission.leave()
