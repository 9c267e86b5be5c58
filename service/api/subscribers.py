"""PUT/GET /v1/subscribers/{msisdn}: the subscriber registry."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import AdminActor, AgentActor, Msisdn, RaterDep, SessionDep
from service.api.errors import error_responses
from service.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from service.flows import registry
from service.schemas import SubscriberIn, SubscriberOut

router = APIRouter(tags=["subscribers"])


@router.put(
    "/v1/subscribers/{msisdn}",
    summary="Register or replace a subscriber",
    response_model=SubscriberOut,
    responses=error_responses(Unauthenticated, Forbidden, InvalidInput),
)
def put_subscriber(
    msisdn: Msisdn, entry: SubscriberIn, session: SessionDep, rater: RaterDep, actor: AdminActor
) -> SubscriberOut:
    """Plan and packages must exist in a tariff version; home_area in the numbering plan."""
    return registry.put_subscriber(session, rater=rater, msisdn=msisdn, entry=entry, actor=actor)


@router.get(
    "/v1/subscribers/{msisdn}",
    summary="A subscriber's registry entry (audited)",
    response_model=SubscriberOut,
    responses=error_responses(Unauthenticated, Forbidden, InvalidInput, NotFound),
)
def get_subscriber(
    msisdn: Msisdn, session: SessionDep, rater: RaterDep, actor: AgentActor
) -> SubscriberOut:
    """The registry entry of one number; home_area from the number range when not set."""
    return registry.read_subscriber(session, rater=rater, msisdn=msisdn, actor=actor)
