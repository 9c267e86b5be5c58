"""POST /v1/rerate and GET /v1/rerate/{job}: bulk re-rating jobs (SPEC §6.3)."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request

from service.api.deps import AdminActor, MetricsDep, RaterDep, SessionDep, SettingsDep
from service.api.errors import error_responses
from service.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from service.jobs import rerate
from service.schemas import RerateJobOut, RerateRequest

router = APIRouter(tags=["rerate"])


@router.post(
    "/v1/rerate",
    summary="Start re-rating CDRs by start time; poll the job for progress",
    status_code=202,
    response_model=RerateJobOut,
    response_model_by_alias=True,
    responses=error_responses(Unauthenticated, Forbidden, InvalidInput),
)
def start_rerate(
    body: RerateRequest,
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    rater: RaterDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    actor: AdminActor,
) -> RerateJobOut:
    """Queue a job; it runs after the response, chunk by chunk."""
    job = rerate.start_job(
        session, window_from=body.from_, window_to=body.to, dry_run=body.dry_run, actor=actor
    )
    background.add_task(
        rerate.run_job_quietly,
        request.app.state.sessions,
        job_id=job.id,
        rater=rater,
        default_plan=settings.default_plan,
        metrics=metrics,
    )
    return rerate.job_out(job)


@router.get(
    "/v1/rerate/{job_id}",
    summary="A re-rating job's progress, counts and total delta",
    response_model=RerateJobOut,
    response_model_by_alias=True,
    responses=error_responses(Unauthenticated, Forbidden, NotFound),
)
def get_rerate(job_id: str, session: SessionDep, actor: AdminActor) -> RerateJobOut:
    """The job as it stands."""
    if "\x00" in job_id:  # PostgreSQL text cannot hold NUL: no job has such an id
        raise NotFound(f"no rerate job {job_id!r}")
    return rerate.read_job(session, job_id=job_id)
