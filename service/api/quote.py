"""POST /v1/quote: what a call would cost, with the explanation agents read out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service import flows
from service.api.deps import AgentActor, AuditTransactionsDep, BodyDep, RaterDep, SettingsDep
from service.api.json import OrjsonResponse
from service.api.schemas import QuoteRequest, RatingOut, Rejection
from service.errors import (
    BadBody,
    BodyTooLarge,
    Forbidden,
    InvalidInput,
    Unauthenticated,
    error_responses,
)
from service.rating.rejections import Rejected

router = APIRouter(tags=["quote"])

QUOTE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": QuoteRequest.model_json_schema()}},
    }
}


@router.post(
    "/v1/quote",
    summary="Rate a call without storing it (audited)",
    response_model=RatingOut,
    openapi_extra=QUOTE_BODY,
    responses={
        422: {
            "model": Rejection,
            "description": "the call cannot be rated, or the body is not an object",
        },
        **error_responses(BadBody, Unauthenticated, Forbidden, BodyTooLarge),
    },
)
async def post_quote(
    actor: AgentActor,  # before the body: an unauthenticated request's body is never read
    body: BodyDep,
    transactions: AuditTransactionsDep,
    rater: RaterDep,
    settings: SettingsDep,
) -> OrjsonResponse:
    """SPEC §6.1 rating of a CDR without id; a rejection answers 422 with its reason."""
    request: object
    try:
        request = flows.parse_json_object(body)
    except InvalidInput:
        request = None  # JSON but not an object: the core names it record.invalid
    # The audit row is committed before the answer is sent, in one thread hop.
    result = await transactions.run(
        lambda connection: flows.quote(
            connection,
            rater=rater,
            default_plan=settings.default_plan,
            request=request,
            actor=actor,
        )
    )
    if isinstance(result, Rejected):
        return OrjsonResponse(result.to_dict(), status_code=422)
    return OrjsonResponse(result.to_dict())
