"""POST /v1/quote: what a call would cost, with the explanation agents read out.

A hot route, served by service.api.direct.DirectEndpoint ahead of the middleware stack
(`DIRECT`). Its own work: the registry profile from the worker's cache
(service.flows.registry_cache), rating, and the audit row committed together with those of
concurrent quotes (service.db.audit_batcher) before the answer is sent. A cached caller's
quote makes no thread hop.

The `APIRoute` below documents the route in OpenAPI; it serves it through the middleware
stack with the same `quote_answer` when the app is called past CallrateApp's dispatch
(tests/api/test_quote_speed.py checks both answer alike).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.responses import Response

from service.api.deps import authenticate, read_body
from service.api.direct import DirectRoute
from service.api.errors import ErrorBody, error_responses
from service.db.session import CLIENT_GRACE_S
from service.errors import (
    BadBody,
    BodyTooLarge,
    DatabaseUnavailable,
    Forbidden,
    InvalidInput,
    Unauthenticated,
)
from service.flows.quotes import parse_json_object, parse_quote, rate_quote
from service.flows.registry_cache import Missing
from service.rating.rejections import Rejected
from service.rating.scalar import SubscriberProfile
from service.schemas import QuoteRequest, RatingOut
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
    """SPEC §6.1 rating of a CDR without id, audited before it is answered: the status (200,
    or 422 for a rejection: its code, field and reason in the error envelope) and the JSON."""
    sent: object
    try:
        sent = parse_json_object(body)
    except InvalidInput:
        sent = None  # JSON but not an object: the core names it record.invalid
    call = parse_quote(sent)
    settings = state.settings
    # every wait on the database together within the bound of one statement on a frozen
    # server (docs/reliability.md): the registry read, then the audit row, which may wait
    # behind another quote's INSERT
    bound_s = settings.db_statement_timeout_s + CLIENT_GRACE_S
    try:
        async with asyncio.timeout(bound_s):
            registered: SubscriberProfile | None = None
            if not isinstance(call, Rejected):
                cache = state.registry_cache
                found = cache.cached(call.caller)
                if isinstance(found, Missing):
                    found = await run_in_threadpool(cache.load, call.caller)
                registered = found
            result, audit = rate_quote(
                sent,
                call,
                registered=registered,
                rater=state.rater,
                default_plan=settings.default_plan,
                actor=actor,
            )
            await state.audit_batcher.write(audit)  # committed before the answer
    except TimeoutError:
        raise DatabaseUnavailable(f"the database did not answer within {bound_s:g} s") from None
    if isinstance(result, Rejected):
        return 422, orjson.dumps(rejection_body(result))
    return 200, orjson.dumps(result.to_dict())


def rejection_body(rejection: Rejected) -> dict[str, str]:
    """A quote that cannot be rated, in the one error envelope (SPEC §6.2): the rejection
    code as `error`, its reason (with what to do instead) as `message`, and its `field`."""
    reason: str = rejection.to_dict()["reason"]
    return {"error": rejection.code, "message": reason, "field": rejection.field}


@router.post(
    PATH,
    summary="Rate a call without storing it (audited)",
    response_model=RatingOut,
    openapi_extra=QUOTE_OPENAPI,
    responses={
        422: {
            "model": ErrorBody,
            "description": "the call cannot be rated, or the body is not an object: `error` "
            "is the rejection code (e.g. `callee.unknown_area_code`), `field` the field at "
            "fault, `message` the reason",
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


async def _direct_answer(
    state: State, actor: Actor, body: bytes, _content_type: str
) -> tuple[int, bytes]:
    return await quote_answer(state, actor, body)


DIRECT = DirectRoute(ROLE, _direct_answer)
