"""POST /v1/cdrs (batches from the switch) and GET /v1/cdrs/{id}."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.responses import Response

from service.api.deps import AgentActor, BodyDep, RaterDep, SessionDep, SwitchActor
from service.api.direct import DirectRoute
from service.api.errors import error_responses
from service.config import Settings
from service.errors import BadBody, BodyTooLarge, Forbidden, InvalidInput, NotFound, Unauthenticated
from service.flows.cdrs import read_cdr
from service.ingest.pipeline import ingest_body
from service.schemas import BatchResponse, CdrIn, CdrOut
from service.security import Actor

router = APIRouter(tags=["cdrs"])

PATH = "/v1/cdrs"
SWITCH = "switch"  # the role that may post batches
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
    PATH,
    summary="Ingest a batch of CDRs (JSON array or NDJSON), atomically",
    response_model=BatchResponse,
    openapi_extra=BATCH_BODY,
    responses=error_responses(BadBody, Unauthenticated, Forbidden, BodyTooLarge, InvalidInput),
)
async def post_cdrs(
    request: Request,
    actor: SwitchActor,  # first: an unauthenticated request is refused before its body is read
    body: BodyDep,
) -> Response:
    """Per record: rated (charge, rating), duplicate (stored charge) or rejected (reason)."""
    status, payload = await ingest_answer(
        request.app.state, actor, body, request.headers.get("content-type", "")
    )
    return Response(payload, status_code=status, media_type="application/json")


async def ingest_answer(
    state: State, _actor: Actor, body: bytes, content_type: str
) -> tuple[int, bytes]:
    """The batch cut, rated and stored in one session, committed before it is answered (a
    2xx batch is durable), in one thread hop; its answer (BatchResponse) as JSON."""
    ndjson = content_type.split(";")[0].strip().lower() == NDJSON
    settings: Settings = state.settings

    def ingest() -> bytes:
        with state.sessions() as session:  # closing rolls back what was not committed
            answer = ingest_body(
                session,
                body=body,
                ndjson=ndjson,
                max_records=settings.max_batch_records,
                rater=state.rater,
                batch=state.kernels.batch,  # None until the kernels are warm (main.WarmKernels)
                default_plan=settings.default_plan,
                metrics=state.metrics,
                registry_cache=state.registry_cache,
            )
            session.commit()
        return orjson.dumps(answer)

    return 200, await run_in_threadpool(ingest)


DIRECT = DirectRoute(SWITCH, ingest_answer)


@router.get(
    "/v1/cdrs/{cdr_id:path}",  # an id may hold "/" (sent as %2F): SPEC §3.1 allows any text
    summary="A stored CDR with its rating history (audited)",
    response_model=CdrOut,
    responses=error_responses(Unauthenticated, Forbidden, NotFound),
)
def get_cdr(cdr_id: str, session: SessionDep, rater: RaterDep, actor: AgentActor) -> CdrOut:
    """The record as received, its ratings oldest first. Agents see every other party's
    number masked. An id that was rejected answers 404 `cdr.in_suspense`."""
    return read_cdr(session, rater=rater, cdr_id=cdr_id, actor=actor)
