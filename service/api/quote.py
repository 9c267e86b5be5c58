"""POST /v1/quote: what a call would cost, with the explanation agents read out.

The hot route does no avoidable framework work. `QuoteEndpoint` serves it ahead of the
middleware stack (service.main.CallrateApp hands it every POST /v1/quote) and does itself,
in one frame, what the stack's layers do for every other route: the request id in and out,
admission (the same per-worker `Admission` as the middleware), the latency metric, the
request log line, and the one error envelope (service.errors.error_answer). Its own work:
the key from memory (deps.identify), the body, the registry profile from the worker's cache
(service.registry_cache), rating, and the audit row committed together with those of
concurrent quotes (service.audit_batcher) before the answer is sent. A cached caller's
quote makes no thread hop.

The `APIRoute` below documents the route in OpenAPI; it serves it through the middleware
stack with the same `quote_answer` when the app is called past CallrateApp's dispatch
(tests/api/test_quote_speed.py checks both answer alike).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import flows
from service.admission import Admission, refuse
from service.api.deps import authenticate, check_role, identify, read_body
from service.api.schemas import QuoteRequest, RatingOut, Rejection
from service.errors import (
    BadBody,
    BodyTooLarge,
    Forbidden,
    InvalidInput,
    Unauthenticated,
    error_answer,
    error_responses,
)
from service.metrics import Metrics
from service.rating.rejections import Rejected
from service.rating.scalar import SubscriberProfile
from service.registry_cache import Missing
from service.requestlog import HEADER, log_request, request_id
from service.security import Actor

PATH = "/v1/quote"
ROLE = "agent"

router = APIRouter(tags=["quote"])


QUOTE_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": QuoteRequest.model_json_schema()}},
    },
    "security": [{"HTTPBearer": []}],
}


async def quote_answer(state: State, actor: Actor, body: bytes) -> tuple[int, bytes]:
    """SPEC §6.1 rating of a CDR without id, audited before it is answered: the status
    (200, or 422 for a rejection with its reason) and the JSON answer."""
    sent: object
    try:
        sent = flows.parse_json_object(body)
    except InvalidInput:
        sent = None  # JSON but not an object: the core names it record.invalid
    call = flows.parse_quote(sent)
    registered: SubscriberProfile | None = None
    if not isinstance(call, Rejected):
        cache = state.registry_cache
        found = cache.cached(call.caller)
        if isinstance(found, Missing):
            found = await run_in_threadpool(cache.load, call.caller)
        registered = found
    result, audit = flows.rate_quote(
        sent,
        call,
        registered=registered,
        rater=state.rater,
        default_plan=state.settings.default_plan,
        actor=actor,
    )
    await state.audit_batcher.write(audit)  # committed before the answer
    return (422 if isinstance(result, Rejected) else 200), orjson.dumps(result.to_dict())


@router.post(
    PATH,
    summary="Rate a call without storing it (audited)",
    response_model=RatingOut,
    openapi_extra=QUOTE_OPENAPI,
    responses={
        422: {
            "model": Rejection,
            "description": "the call cannot be rated, or the body is not an object",
        },
        **error_responses(BadBody, Unauthenticated, Forbidden, BodyTooLarge),
    },
)
async def post_quote(request: Request) -> Response:
    """SPEC §6.1 rating of a CDR without id; a rejection answers 422 with its reason."""
    actor = await authenticate(request, ROLE)  # an unauthenticated body is never read
    body = await read_body(request)
    status, payload = await quote_answer(request.app.state, actor, body)
    return Response(payload, status_code=status, media_type="application/json")


class _Outcome:
    """What the request log line and the metric say of one request."""

    __slots__ = ("role", "status")

    def __init__(self) -> None:
        self.status = 500  # no answer sent (as the middleware stack counts it)
        self.role: str | None = None


_JSON = (b"content-type", b"application/json")


class QuoteEndpoint:
    """POST /v1/quote as one pure ASGI callable (see the module)."""

    def __init__(
        self, app: ASGIApp, *, admission: Admission, metrics: Metrics, log_format: str
    ) -> None:
        self.app = app
        self.admission = admission
        self.metrics = metrics
        self.log_format = log_format

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the request; time it, log it, count it."""
        started = time.perf_counter()
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
                await self._serve(scope, receive, send, tag, outcome)
            finally:
                self.admission.leave()
        finally:
            seconds = time.perf_counter() - started
            self.metrics.observe_http("POST", PATH, outcome.status, seconds)
            log_request(
                self.log_format,
                rid=rid,
                method="POST",
                route=PATH,
                status=outcome.status,
                started=started,
                role=outcome.role,
            )

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        tag: tuple[bytes, bytes],
        outcome: _Outcome,
    ) -> None:
        state: State = scope["app"].state
        authorization = declared = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-length":
                declared = value.decode("latin-1")
        try:
            actor = await identify(state.keys, authorization)
            outcome.role = actor.role
            check_role(actor, ROLE)
            body = await _receive_body(
                receive, declared=declared, limit=state.settings.max_body_bytes
            )
            status, payload = await quote_answer(state, actor, body)
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


async def _receive_body(receive: Receive, *, declared: str | None, limit: int) -> bytes:
    """The body, refused with BodyTooLarge before reading when Content-Length says it passes
    `limit`, else as soon as the stream does (what deps.read_body does for a Request)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body is larger than {limit} bytes")
    body = bytearray()
    while True:
        message: Message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        if len(body) + len(chunk) > limit:
            raise BodyTooLarge(f"body is larger than {limit} bytes")
        body += chunk
        if not message.get("more_body", False):
            return bytes(body)
