"""One log line per HTTP request on stderr (text by default, or JSON), and X-Request-ID.

A line holds the time, the request id, method, route template, status, latency and the
caller's role: never a concrete path, a query string, a header value or a body, so no
subscriber's number reaches the log. A valid `X-Request-ID` from the client (1 to 128 of
`A-Z a-z 0-9 . _ : -`) is kept, anything else is replaced by a new one; the answer echoes it.

Lines are written straight to the current sys.stderr, masked like every log record
(service.security.mask_text: a client's request id or method may look like a number), not
through `logging`: a LogRecord, its caller lookup and the record factory cost ~25 µs a
line, a quarter of a quote's whole cost (measured).
"""

from __future__ import annotations

import contextlib
import random
import re
import sys
import time

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import LOG_FORMATS
from service.ops.metrics import answered_status, route_template
from service.security import mask_text

HEADER = b"x-request-id"
_VALID_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


def request_id(scope: Scope) -> str:
    """The client's X-Request-ID when valid, else a new random one."""
    for name, value in scope["headers"]:
        if name == HEADER:
            if _VALID_ID.fullmatch(value):
                return str(value.decode("ascii"))
            break
    # 128 random bits as 32 letters: hex digits shifted to g-p, so that no run of digits in
    # a made id ever looks like a phone number to the log masking (service/security.py).
    # An id names a request in logs, it guards nothing: the process's generator will do
    # (uuid4 asked the kernel for entropy on every request).
    return f"{random.getrandbits(128):032x}".translate(_NO_DIGITS)


_NO_DIGITS = str.maketrans("0123456789", "ghijklmnop")


class _Clock:
    """UTC now as 2026-01-02T03:04:05.678Z; the part to the second is formatted once a
    second (datetime's isoformat cost more than the rest of a log line)."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"


_clock = _Clock()


def format_line(log_format: str, fields: dict[str, object]) -> str:
    """One request's line: JSON, or `time id method route status latency role=…` text."""
    if log_format == "json":
        return orjson.dumps(fields).decode()
    return (
        f"{fields['time']} {fields['request_id']} {fields['method']} {fields['route']}"
        f" {fields['status']} {fields['latency_ms']}ms role={fields['role'] or '-'}"
    )


def log_request(
    log_format: str,
    *,
    rid: str,
    method: str,
    route: str,
    status: int,
    started: float,
    role: object,
) -> None:
    """Log one request's line; `started` is its time.perf_counter() at arrival. The fields
    a client chose (its request id, the method) are masked like every log record
    (service.security.mask_text); the others are the service's own words and numbers."""
    fields: dict[str, object] = {
        "time": _clock.now(),
        "request_id": rid if rid.isalpha() else mask_text(rid),  # made ids are letters
        "method": method if method.isalpha() else mask_text(method),
        "route": route,
        "status": status,
        "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        "role": role,
    }
    line = format_line(log_format, fields) + "\n"
    with contextlib.suppress(Exception):  # logging must never break a request
        sys.stderr.write(line)
        sys.stderr.flush()


class RequestLogMiddleware:
    """Pure ASGI middleware: request id in and out, one log line when the request ends."""

    def __init__(self, app: ASGIApp, *, log_format: str = "text") -> None:
        if log_format not in LOG_FORMATS:
            raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
        self.app = app
        self.log_format = log_format

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add X-Request-ID to the answer; log the outcome."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id(scope)
        state = scope.setdefault("state", {})  # the auth dependency puts the role here
        state["request_id"] = rid
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [*message.get("headers", ()), (HEADER, rid.encode("ascii"))]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            status = answered_status(exc, status)
            raise
        finally:
            log_request(
                self.log_format,
                rid=rid,
                method=scope["method"],
                route=route_template(scope),
                status=status,
                started=started,
                role=state.get("role"),
            )
