"""GET /v1/subscribers/{msisdn}/usage: a subscriber's month, the bill inquiry (详单)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi import Path as FastApiPath

from service.api.deps import AgentActor, Msisdn, RaterDep, SessionDep, SettingsDep
from service.api.errors import error_responses
from service.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from service.flows.cdrs import read_call
from service.flows.usage import usage
from service.rating import NUMBERING_DIR
from service.rating.numbering import area_cities
from service.schemas import MAX_ROW_ID, CdrOut, UsageOut

router = APIRouter(tags=["subscribers"])


@router.get(
    "/v1/subscribers/{msisdn}/usage",
    summary="A subscriber's month: usage per call class, package fees, calls (audited)",
    response_model=UsageOut,
    responses=error_responses(Unauthenticated, Forbidden, InvalidInput),
)
def get_usage(
    msisdn: Msisdn,
    session: SessionDep,
    rater: RaterDep,
    settings: SettingsDep,
    actor: AgentActor,
    month: Annotated[
        str | None,
        Query(
            description="YYYY-MM in +08:00; default: the current month",
            # documented only: month_window checks it with a message naming the format
            json_schema_extra={"pattern": r"^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$"},
        ),
    ] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_ROW_ID, description="calls to skip (paging)")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="calls per page")] = 100,
) -> UsageOut:
    """Totals come from each CDR's current rating, in fen; other parties' numbers are masked
    (but for admin); the read is written to the audit log."""
    return usage(
        session,
        rater=rater,
        cities=area_cities(settings.tariffs_dir / NUMBERING_DIR),
        msisdn=msisdn,
        month=month,
        offset=offset,
        limit=limit,
        actor=actor,
    )


@router.get(
    "/v1/subscribers/{msisdn}/calls/{ref}",
    summary="One call of a subscriber's usage list, by its reference (audited)",
    response_model=CdrOut,
    responses=error_responses(Unauthenticated, Forbidden, InvalidInput, NotFound),
)
def get_call(
    msisdn: Msisdn,
    ref: Annotated[int, FastApiPath(ge=1, le=MAX_ROW_ID, description="`ref` of a usage call")],
    session: SessionDep,
    rater: RaterDep,
    actor: AgentActor,
) -> CdrOut:
    """The stored CDR of a call listed by GET /v1/subscribers/{msisdn}/usage, as
    GET /v1/cdrs/{id} answers it: an agent opens a call whose id holds a number it may not
    see."""
    return read_call(session, rater=rater, msisdn=msisdn, ref=ref, actor=actor)
