"""Tariffs, audit log, metrics, health."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Query, Request
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from service.api.deps import (
    AdminActor,
    AgentActor,
    BodyDep,
    MetricsDep,
    OpsActor,
    SessionDep,
)
from service.api.errors import (
    RETRY_AFTER_S,
    ErrorBody,
    database_unavailable,
    error_response,
    error_responses,
)
from service.api.json import OrjsonResponse
from service.clock import utcnow
from service.db import repository
from service.db.health import WriteHealth
from service.errors import (
    BodyTooLarge,
    Conflict,
    DatabaseUnavailable,
    Forbidden,
    InvalidInput,
    Unauthenticated,
)
from service.flows.audit import audit_log
from service.flows.tariffs import catalogue, publish_tariff
from service.ingest.suspense import suspense_by_code
from service.schemas import MAX_ROW_ID, AuditList, Health, TariffOut, TariffPublished

router = APIRouter()
log = logging.getLogger("callrate")


@router.get(
    "/v1/tariffs",
    tags=["tariffs"],
    summary="Tariff catalogue: published versions, digests, windows, plans with fees, packages",
    response_model=list[TariffOut],
    responses=error_responses(Unauthenticated, Forbidden),
)
def get_tariffs(session: SessionDep, actor: AgentActor) -> list[TariffOut]:
    """Every published version (SPEC §7), ordered by effective_from: what every process
    rates with (a running server within 5 s of a publish)."""
    return catalogue(session)


@router.post(
    "/v1/tariffs",
    tags=["tariffs"],
    summary="Publish a tariff version (admin; TOML body)",
    response_model=TariffPublished,
    status_code=201,
    responses={
        200: {"description": "the same content is published already", "model": TariffPublished},
        **error_responses(Unauthenticated, Forbidden, BodyTooLarge, InvalidInput, Conflict),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/toml": {"schema": {"type": "string"}}},
        }
    },
)
def post_tariffs(session: SessionDep, actor: AdminActor, body: BodyDep) -> Response:
    """Validate the TOML and publish it: 201 when new, 200 when this content is published
    already, 409 when its version id is published with other content (the keys that differ
    are named) or it starts at the same instant as a published version, 422 when invalid.
    Servers rate with it within 5 s."""
    try:
        source = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("the tariff must be UTF-8 TOML text", field="tariff") from exc
    tariff, new = publish_tariff(session, source=source, by=actor.key_id, now=utcnow())
    answer = TariffPublished(published=new, tariff=tariff)
    return OrjsonResponse(answer.model_dump(mode="json"), status_code=201 if new else 200)


@router.get(
    "/v1/audit",
    tags=["audit"],
    summary="The audit log (admin only)",
    response_model=AuditList,
    responses=error_responses(Unauthenticated, Forbidden),
)
def get_audit(
    session: SessionDep,
    actor: AdminActor,
    after_id: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditList:
    """Quotes and reads of subscribers' records: who, when, what."""
    return audit_log(session, after_id=after_id, limit=limit)


@router.get(
    "/metrics",
    tags=["ops"],
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "text format"},
        **error_responses(Unauthenticated, Forbidden),
    },
)
def get_metrics(session: SessionDep, metrics: MetricsDep, actor: OpsActor) -> Response:
    """CDRs by result, rating latency, charged fen by class, HTTP latency, suspense by reason,
    re-rating progress, database availability; answers even when the database does not."""
    try:
        metrics.set_suspense(suspense_by_code(session))
    except SQLAlchemyError:  # the last suspense values stay; callrate_database_up says why
        session.rollback()
        metrics.database_up.set(0)
    else:
        metrics.database_up.set(1)
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", tags=["ops"], summary="Liveness", response_model=Health)
def healthz() -> OrjsonResponse:
    """The process answers."""
    return OrjsonResponse({"status": "ok"})


@router.get(
    "/readyz",
    tags=["ops"],
    summary="Readiness: the database answers",
    response_model=Health,
    responses={503: {"model": ErrorBody, "description": "the database does not answer"}},
)
async def readyz(request: Request) -> OrjsonResponse:
    """200 when `SELECT 1` succeeds; 503 database_unavailable otherwise, within
    CALLRATE_READYZ_TIMEOUT_S even when the database is frozen (its own engine and bounds),
    and while writes fail for want of room (service.db.health)."""
    engine: Engine = request.app.state.ready_engine
    timeout_s: float = request.app.state.settings.readyz_timeout_s
    writes: WriteHealth = request.app.state.write_health
    if writes.failing():  # reads answer, writes do not: the clients get 503
        request.app.state.metrics.database_up.set(0)
        return error_response(
            503,
            DatabaseUnavailable.code,
            f"the database answers but takes no writes ({writes.reason}: no room, or "
            "read-only); retry later",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    try:
        await asyncio.wait_for(run_in_threadpool(repository.ping_engine, engine), timeout_s)
    except Exception as exc:  # any failure means not ready; the class goes to the log
        log.warning("readyz: database unavailable (%s)", type(exc).__name__)
        request.app.state.metrics.database_up.set(0)
        return database_unavailable()
    request.app.state.metrics.database_up.set(1)
    return OrjsonResponse({"status": "ok"})
