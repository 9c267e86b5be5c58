"""The subscriber registry (SPEC §3.2): the profiles rating reads; subscribers read and written."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

import orjson
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from service import schemas
from service.clock import utcnow
from service.db import repository
from service.db.models import RatingRow, Subscriber
from service.errors import InvalidInput, NotFound
from service.rating.cdr import (
    normalize_area,
    normalize_msisdn,
)
from service.rating.numbering import NO_INDEX
from service.rating.rejections import Rejected
from service.rating.scalar import Rater, SubscriberProfile
from service.security import Actor, write_audit


def default_profile(default_plan: str | None) -> SubscriberProfile | None:
    """The profile of a caller the registry does not know (CALLRATE_DEFAULT_PLAN), if any."""
    return SubscriberProfile(plan=default_plan, registered=False) if default_plan else None


def profile_of(row: Subscriber | repository.RegistryEntry) -> SubscriberProfile:
    """Registry row -> the core's SubscriberProfile."""
    return SubscriberProfile(
        plan=row.plan, home_area=row.home_area, packages=tuple(orjson.loads(row.packages))
    )


def profile_of_rating(row: RatingRow) -> SubscriberProfile | None:
    if row.profile_plan is None:
        return None
    return SubscriberProfile(
        plan=row.profile_plan,
        home_area=row.profile_home_area,
        packages=tuple(orjson.loads(row.profile_packages or "[]")),
        registered=bool(row.profile_registered),
    )


Registry = Callable[[list[str]], Mapping[str, SubscriberProfile]]


class ProfileCache(Protocol):
    """Registry profiles cached per worker (service.flows.registry_cache.RegistryCache)."""

    def profiles(self, msisdns: Sequence[str], read: Registry) -> dict[str, SubscriberProfile]:
        """The registered profiles of these numbers, the uncached ones from `read`."""
        ...


def registry_reader(session: Session, cache: ProfileCache | None = None) -> Registry:
    """Registry profiles of some numbers, through `cache` when given. On SQLite read outside
    the session's transaction: that one takes the write lock when it begins (IMMEDIATE), and
    the batch is rated before it, so the other workers' batches are not kept waiting while
    this one is rated."""
    reader = _database_reader(session)
    if cache is None:
        return reader
    return functools.partial(cache.profiles, read=reader)


def _database_reader(session: Session) -> Registry:

    def read(db: repository.Executor, msisdns: list[str]) -> dict[str, SubscriberProfile]:
        rows = repository.subscribers_by_msisdn(db, msisdns=msisdns)
        return {msisdn: profile_of(row) for msisdn, row in rows.items()}

    bind = session.get_bind()
    if bind.dialect.name != "sqlite" or not isinstance(bind, Engine):
        return functools.partial(read, session)

    def read_apart(msisdns: list[str]) -> dict[str, SubscriberProfile]:
        with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            return read(connection, msisdns)

    return read_apart


def home_area_of(rater: Rater, msisdn: str, registered: str | None) -> str | None:
    """The home area rating uses: the registry's, else the number range's (dialing form)."""
    area = registered or rater.home_area(msisdn)
    return normalize_area(area) if area else None  # rows stored before §9: "21"


def subscriber_out(row: Subscriber, rater: Rater) -> schemas.SubscriberOut:
    """Registry row -> schema; home_area as rating uses it, from the number range if unset."""
    return schemas.SubscriberOut(
        msisdn=row.msisdn,
        plan=row.plan,
        home_area=home_area_of(rater, row.msisdn, row.home_area),
        home_area_from="registry" if row.home_area else "number_range",
        packages=orjson.loads(row.packages),
        updated_at=row.updated_at,
    )


def checked_msisdn(value: str) -> str:
    try:
        return normalize_msisdn(value)
    except Rejected as exc:
        raise InvalidInput("msisdn must be an 11-digit mobile number", field="msisdn") from exc


def read_subscriber(
    session: Session, *, rater: Rater, msisdn: str, actor: Actor, now: datetime | None = None
) -> schemas.SubscriberOut:
    """A registry entry; the read is audited."""
    number = checked_msisdn(msisdn)
    row = repository.get_subscriber(session, msisdn=number)
    write_audit(  # the attempt too (SPEC §8): the session commits it with the 404
        session,
        actor=actor,
        action="subscriber.read",
        subject=number,
        detail=None if row is not None else f"-> {NotFound.code}",
        at=now or utcnow(),
    )
    if row is None:
        raise NotFound("subscriber is not registered")
    return subscriber_out(row, rater)


def put_subscriber(
    session: Session,
    *,
    rater: Rater,
    msisdn: str,
    entry: schemas.SubscriberIn,
    actor: Actor,
    now: datetime | None = None,
) -> schemas.SubscriberOut:
    """Create or replace a registry entry, checked against the tariffs and numbering plan."""
    number = checked_msisdn(msisdn)
    tariffs = rater.book.tariffs
    if entry.plan not in rater.book.plans:
        plans = ", ".join(rater.book.plans)
        raise InvalidInput(
            f"plan {entry.plan!r} is in no tariff version (plans: {plans})", field="plan"
        )
    unknown = [p for p in entry.packages if not any(p in t.packages for t in tariffs)]
    if unknown:
        raise InvalidInput(
            f"packages not in any tariff version: {', '.join(unknown)}", field="packages"
        )
    try:
        home_area = normalize_area(entry.home_area) if entry.home_area else None
    except Rejected as exc:
        raise InvalidInput(
            "home_area must be a China area code such as 021", field="home_area"
        ) from exc
    if home_area is not None and rater.numbering.area_index(home_area) == NO_INDEX:
        raise InvalidInput("home_area is not an area code in the numbering plan", field="home_area")
    at = now or utcnow()
    row = repository.put_subscriber(
        session,
        msisdn=number,
        plan=entry.plan,
        home_area=home_area,
        packages=orjson.dumps(sorted(set(entry.packages))).decode(),
        updated_at=at,
    )
    write_audit(session, actor=actor, action="subscriber.write", subject=number, detail=None, at=at)
    return subscriber_out(row, rater)
