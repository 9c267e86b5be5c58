"""GET /v1/suspense and POST /v1/suspense/recycle: rejected records, kept whole."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from service.api.deps import AdminActor, MetricsDep, RaterDep, SessionDep, SettingsDep
from service.api.errors import error_responses
from service.errors import Forbidden, Unauthenticated
from service.ingest.recycled import row_decoder
from service.ingest.suspense import list_suspense, recycle_suspense
from service.schemas import MAX_ROW_ID, RecycleRequest, RecycleResponse, SuspenseList

router = APIRouter(tags=["suspense"])


@router.get(
    "/v1/suspense",
    summary="Records that could not be rated, with their reasons",
    response_model=SuspenseList,
    responses=error_responses(Unauthenticated, Forbidden),
)
def get_suspense(
    session: SessionDep,
    actor: AdminActor,
    after_id: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    include_resolved: bool = False,
) -> SuspenseList:
    """Open suspense rows by id (resolved ones too on request), paged by after_id; the read
    is written to the audit log."""
    return list_suspense(
        session, after_id=after_id, limit=limit, include_resolved=include_resolved, actor=actor
    )


@router.post(
    "/v1/suspense/recycle",
    summary="Re-rate suspense rows after their cause was fixed",
    response_model=RecycleResponse,
    responses=error_responses(Unauthenticated, Forbidden),
)
def recycle(
    http: Request,
    request: RecycleRequest,
    session: SessionDep,
    rater: RaterDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    actor: AdminActor,
) -> RecycleResponse:
    """Rows that now rate move to the CDRs (or are found already stored); others stay."""
    return recycle_suspense(
        session,
        rater=rater,
        default_plan=settings.default_plan,
        ids=request.ids,
        limit=request.limit,
        metrics=metrics,
        decode=row_decoder(http.app.state.mediation),
    )
