"""POST /v1/cdrs/freeswitch and POST /v1/cdrs/3gpp: a switch's own CDR format (SPEC §3.4),
mapped to §3.1 CDRs by service.ingest and ingested as POST /v1/cdrs ingests its records."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.responses import Response

from service.api.deps import BodyDep, SwitchActor
from service.api.direct import DirectRoute
from service.api.errors import error_responses
from service.config import Settings
from service.errors import BodyTooLarge, EmptyBody, Forbidden, Unauthenticated
from service.ingest.freeswitch import map_leg
from service.ingest.mediated import ingest_mapped, mapped_answer
from service.ingest.msc_files import ingest_msc_file
from service.schemas import BatchResponse, MscFileResponse
from service.security import Actor

router = APIRouter(tags=["cdrs"])

FREESWITCH_PATH = "/v1/cdrs/freeswitch"
THREEGPP_PATH = "/v1/cdrs/3gpp"
SWITCH = "switch"

FREESWITCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": {"type": "string", "minLength": 1, "description": description}}
            for media, description in (
                ("application/json", "a mod_json_cdr document (encode=false)"),
                ("application/x-www-form-urlencoded", "cdr=<urlencoded JSON or XML document>"),
                ("application/x-www-form-base64-encoded", "cdr=<base64 JSON or XML document>"),
                ("text/xml", "a mod_xml_cdr document"),
                ("application/xml", "a mod_xml_cdr document"),
            )
        },
    },
    "parameters": [
        {
            "name": "uuid",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "as FreeSWITCH adds it; the leg's id is read from the document",
        }
    ],
}
THREEGPP_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/octet-stream": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "minLength": 1,  # no bytes: 400 body.empty
                    "description": "one TS 32.297 framed or bare TS 32.298 CS-domain BER file",
                }
            }
        },
    }
}


def _state_work(state: State) -> dict[str, Any]:
    settings: Settings = state.settings
    return {
        "rater": state.rater,
        "batch": state.kernels.batch,  # None until the kernels are warm
        "default_plan": settings.default_plan,
        "metrics": state.metrics,
        "registry_cache": state.registry_cache,
    }


async def freeswitch_answer(
    state: State, _actor: Actor, body: bytes, content_type: str
) -> tuple[int, bytes]:
    """One leg mapped, rated and stored (or kept in suspense as posted), committed before it
    is answered 200: FreeSWITCH posts again only after a non-2xx."""
    if not body.strip():
        raise EmptyBody("body is empty: FreeSWITCH posts one CDR document per request")
    mapped = [map_leg(body, content_type, switch_areas=state.mediation.switch_areas)]

    def ingest() -> bytes:
        with state.sessions() as session:
            # one record: the per-call path costs less than a kernel pass (pipeline's rule)
            work = {**_state_work(state), "batch": None}
            outcomes = ingest_mapped(session, mapped=mapped, **work)
            session.commit()
        return orjson.dumps(mapped_answer(mapped, outcomes))

    return 200, await run_in_threadpool(ingest)


async def threegpp_answer(
    state: State, _actor: Actor, body: bytes, _content_type: str
) -> tuple[int, bytes]:
    """One MSC file's records mapped, rated and stored, committed before it is answered."""
    if not body:
        raise EmptyBody("body is empty: post one TS 32.298 CDR file")

    def ingest() -> bytes:
        with state.sessions() as session:
            answer = ingest_msc_file(
                session, data=body, mediation=state.mediation, **_state_work(state)
            )
            session.commit()
        return orjson.dumps(answer)

    return 200, await run_in_threadpool(ingest)


FREESWITCH_DIRECT = DirectRoute(SWITCH, freeswitch_answer)
THREEGPP_DIRECT = DirectRoute(SWITCH, threegpp_answer)
_ERRORS = error_responses(EmptyBody, Unauthenticated, Forbidden, BodyTooLarge)


@router.post(
    FREESWITCH_PATH,
    summary="Ingest one FreeSWITCH call leg (mod_json_cdr / mod_xml_cdr, any encoding)",
    response_model=BatchResponse,
    openapi_extra=FREESWITCH_BODY,
    responses=_ERRORS,
)
async def post_freeswitch(request: Request, actor: SwitchActor, body: BodyDep) -> Response:
    """The leg's §6.2 result: rated, duplicate, or rejected and kept in suspense as posted."""
    status, payload = await freeswitch_answer(
        request.app.state, actor, body, request.headers.get("content-type", "")
    )
    return Response(payload, status_code=status, media_type="application/json")


@router.post(
    THREEGPP_PATH,
    summary="Ingest one MSC CDR file (3GPP TS 32.298 CS domain, BER)",
    response_model=MscFileResponse,
    openapi_extra=THREEGPP_BODY,
    responses=_ERRORS,
)
async def post_3gpp(request: Request, actor: SwitchActor, body: BodyDep) -> Response:
    """Per record: rated, duplicate, or rejected (kept in suspense as its own bytes); `file`
    says whether the whole file was read (a truncated file: its whole records are taken)."""
    status, payload = await threegpp_answer(
        request.app.state, actor, body, request.headers.get("content-type", "")
    )
    return Response(payload, status_code=status, media_type="application/json")
