"""The hot POST routes (/v1/quote, /v1/cdrs) served ahead of the middleware stack.

`DirectEndpoint` is one pure ASGI callable: service.api.app.CallrateApp hands it every POST to
one of its routes, and it does itself, in one frame, what the stack's layers do for every
other route: the request id in and out, admission (the same per-worker `Admission` as the
middleware), the latency metric, the request log line, the key (deps.identify, 401/403)
before the body is read, the body bounded (413), and the one error envelope
(service.errors.error_answer: the handlers' own answers; an unexpected error is answered 500
and raised again, so the server logs it). A route adds only its own work (`DirectRoute`).
Through the stack that was ~15 ASGI layers (FastAPI's own four, ours four, Starlette's
exception and routing layers), each a coroutine frame and a send wrapper per request, a
router match and dependency solving; for a batch of CDRs, three thread hops (the session
opened, the endpoint, the session closed) where one does.

Each route keeps its documenting `APIRoute`, which serves it through the stack with the same
work when the app is called past CallrateApp's dispatch; tests/api/test_quote_speed.py and
tests/api/test_cdrs.py send the same requests both ways and compare what they answer, log
and store.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import NamedTuple, TypeAlias

from starlette.datastructures import State
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from service.api.admission import Admission, refuse
from service.api.deps import check_role, identify, receive_body, single_authorization
from service.api.errors import error_answer
from service.ops.metrics import Metrics
from service.ops.requestlog import HEADER, log_request, request_id
from service.security import Actor


class _Outcome:
    """What the request log line and the metric say of one request."""

    __slots__ = ("role", "status")

    def __init__(self) -> None:
        self.status = 500  # no answer sent (as the middleware stack counts it)
        self.role: str | None = None


_JSON = (b"content-type", b"application/json")


# A route's own work: (state, actor, body, content type) -> (status, JSON answer).
Answer: TypeAlias = Callable[[State, Actor, bytes, str], Awaitable[tuple[int, bytes]]]


class DirectRoute(NamedTuple):
    """A POST route served by DirectEndpoint: the role it needs and its own work."""

    role: str
    answer: Answer


class DirectEndpoint:
    """The hot POST routes as one pure ASGI callable (see the module); `routes` by path."""

    def __init__(
        self,
        routes: Mapping[str, DirectRoute],
        *,
        admission: Admission,
        metrics: Metrics,
        log_format: str,
    ) -> None:
        self.routes = routes
        self.admission = admission
        self.metrics = metrics
        self.log_format = log_format

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the request; time it, log it, count it."""
        started = time.perf_counter()
        path: str = scope["path"]
        route = self.routes[path]
        rid = request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        tag = (HEADER, rid.encode("ascii"))
        outcome = _Outcome()
        try:
            if not self.admission.admit():
                outcome.status = 503
                await refuse(send, tag)
                return
            try:
                await self._serve(route, scope, receive, send, tag, outcome)
            finally:
                self.admission.leave()
        finally:
            seconds = time.perf_counter() - started
            self.metrics.observe_http("POST", path, outcome.status, seconds)
            log_request(
                self.log_format,
                rid=rid,
                method="POST",
                route=path,
                status=outcome.status,
                started=started,
                role=outcome.role,
            )

    async def _serve(
        self,
        route: DirectRoute,
        scope: Scope,
        receive: Receive,
        send: Send,
        tag: tuple[bytes, bytes],
        outcome: _Outcome,
    ) -> None:
        state: State = scope["app"].state
        authorizations: list[str] = []
        declared = None
        content_type = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorizations.append(value.decode("latin-1"))
            elif name == b"content-length":
                declared = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
        try:
            actor = await identify(state.keys, single_authorization(authorizations))
            outcome.role = actor.role
            check_role(actor, route.role)
            body = await receive_body(
                receive,
                declared=declared,
                limit=state.settings.max_body_bytes,
                timeout_s=state.settings.body_timeout_s,
            )
            status, payload = await route.answer(state, actor, body, content_type)
        except ClientDisconnect:  # gone before its body was whole: no one to answer
            return
        except Exception as exc:
            response, again = error_answer(exc)
            outcome.status = response.status_code
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [*response.raw_headers, tag],
                }
            )
            await send({"type": "http.response.body", "body": response.body})
            if again:  # unexpected: the server logs its traceback
                raise
            return
        outcome.status = status
        headers = [(b"content-length", b"%d" % len(payload)), _JSON, tag]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
