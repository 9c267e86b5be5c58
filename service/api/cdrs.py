"""POST /v1/cdrs (batches from the switch) and GET /v1/cdrs/{id}."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service import flows
from service.api.deps import (
    AgentActor,
    BatchRaterDep,
    BodyDep,
    MetricsDep,
    RaterDep,
    SessionDep,
    SettingsDep,
    SwitchActor,
)
from service.api.json import OrjsonResponse
from service.api.schemas import BatchResponse, CdrIn, CdrOut
from service.errors import (
    BadBody,
    BodyTooLarge,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
    error_responses,
)

router = APIRouter(tags=["cdrs"])

NDJSON = "application/x-ndjson"
MAX_RECORDS_DOC = 10_000

BATCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    # no maxItems: more records are answered 413, which a schema cannot say
                    "description": f"up to {MAX_RECORDS_DOC:,} CDRs; more: 413",
                    # a CDR; any other value is answered rejected, never fails the batch
                    "items": {"anyOf": [CdrIn.model_json_schema(), {}]},
                }
            },
            NDJSON: {
                "schema": {
                    "type": "string",
                    "description": "one CDR JSON object per line (SPEC §3.1)",
                }
            },
        },
    }
}


@router.post(
    "/v1/cdrs",
    summary="Ingest a batch of CDRs (JSON array or NDJSON), atomically",
    response_model=BatchResponse,
    openapi_extra=BATCH_BODY,
    responses=error_responses(BadBody, Unauthenticated, Forbidden, BodyTooLarge, InvalidInput),
)
def post_cdrs(
    request: Request,
    actor: SwitchActor,  # first: an unauthenticated request is refused before its body is read
    body: BodyDep,
    session: SessionDep,
    rater: RaterDep,
    batch: BatchRaterDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> OrjsonResponse:
    """Per record: rated (charge, rating), duplicate (stored charge) or rejected (reason)."""
    ndjson = request.headers.get("content-type", "").split(";")[0].strip().lower() == NDJSON
    return OrjsonResponse(
        flows.ingest_body(
            session,
            body=body,
            ndjson=ndjson,
            max_records=settings.max_batch_records,
            rater=rater,
            batch=batch,
            default_plan=settings.default_plan,
            metrics=metrics,
            registry_cache=request.app.state.registry_cache,
        )
    )


@router.get(
    "/v1/cdrs/{cdr_id}",
    summary="A stored CDR with its rating history (audited)",
    response_model=CdrOut,
    responses=error_responses(Unauthenticated, Forbidden, NotFound),
)
def get_cdr(cdr_id: str, session: SessionDep, rater: RaterDep, actor: AgentActor) -> CdrOut:
    """The record as received, its ratings oldest first. Agents see every other party's
    number masked. An id that was rejected answers 404 `cdr.in_suspense`."""
    return flows.read_cdr(session, rater=rater, cdr_id=cdr_id, actor=actor)
