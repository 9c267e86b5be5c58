"""POST /v1/quote: what a call would cost, with the explanation agents read out.

The hot route does no avoidable framework work: no dependencies to solve (auth and body are
read by plain calls), no response model validation (an orjson Response is returned), the
registry profile from the worker's cache (service.registry_cache) and the audit row
committed together with those of concurrent quotes (service.audit_batcher), before the
answer is sent. A cached caller's quote makes no thread hop but the audit group's.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from service import flows
from service.api.deps import authenticate, read_body
from service.api.json import OrjsonResponse
from service.api.schemas import QuoteRequest, RatingOut, Rejection
from service.audit_batcher import AuditBatcher
from service.config import Settings
from service.errors import (
    BadBody,
    BodyTooLarge,
    Forbidden,
    InvalidInput,
    Unauthenticated,
    error_responses,
)
from service.rating.rejections import Rejected
from service.rating.scalar import Rater, SubscriberProfile
from service.registry_cache import Missing, RegistryCache

router = APIRouter(tags=["quote"])


QUOTE_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": QuoteRequest.model_json_schema()}},
    },
    "security": [{"HTTPBearer": []}],
}


@router.post(
    "/v1/quote",
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
async def post_quote(request: Request) -> OrjsonResponse:
    """SPEC §6.1 rating of a CDR without id; a rejection answers 422 with its reason."""
    request.scope["route"] = QUOTE_ROUTE  # a Starlette Route sets none: metrics, request log
    actor = await authenticate(request, "agent")  # an unauthenticated body is never read
    body = await read_body(request)
    state = request.app.state
    sent: object
    try:
        sent = flows.parse_json_object(body)
    except InvalidInput:
        sent = None  # JSON but not an object: the core names it record.invalid
    call = flows.parse_quote(sent)
    registered: SubscriberProfile | None = None
    if not isinstance(call, Rejected):
        cache: RegistryCache = state.registry_cache
        found = cache.cached(call.caller)
        if isinstance(found, Missing):
            found = await run_in_threadpool(cache.load, call.caller)
        registered = found
    rater: Rater = state.rater
    settings: Settings = state.settings
    result, audit = flows.rate_quote(
        sent,
        call,
        registered=registered,
        rater=rater,
        default_plan=settings.default_plan,
        actor=actor,
    )
    batcher: AuditBatcher = state.audit_batcher
    await batcher.write(audit)  # committed before the answer
    if isinstance(result, Rejected):
        return OrjsonResponse(result.to_dict(), status_code=422)
    return OrjsonResponse(result.to_dict())


# Served as a plain Starlette route, first: no FastAPI per-request machinery (dependency
# solving, exit stack, endpoint wrapping). The APIRoute above, never reached by a POST,
# documents it in OpenAPI.
QUOTE_ROUTE = Route("/v1/quote", post_quote, methods=["POST"])
router.routes.insert(0, QUOTE_ROUTE)
