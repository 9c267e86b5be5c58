"""GET /v1/subscribers/{msisdn}/usage: a subscriber's month, the bill inquiry (详单)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.api.deps import AgentActor, Msisdn, RaterDep, SessionDep, SettingsDep
from service.api.errors import error_responses
from service.errors import Forbidden, InvalidInput, Unauthenticated
from service.flows.usage import usage
from service.rating import NUMBERING_DIR
from service.rating.numbering import area_cities
from service.schemas import MAX_ROW_ID, UsageOut

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
