"""A subscriber's month (详单): the summary per call class, package fees and the calls."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import MAXYEAR, datetime

import orjson
from sqlalchemy.orm import Session

from service import schemas
from service.clock import CHINA_TIME, utcnow
from service.db import repository
from service.db.models import Subscriber
from service.errors import InvalidInput
from service.flows.registry import checked_msisdn, home_area_of
from service.rating.numbering import NO_INDEX
from service.rating.scalar import Rater
from service.rating.tariff import Tariff
from service.security import Actor, audit_text, mask_number, mask_text, write_audit

_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


def month_window(month: str | None, *, now: datetime | None = None) -> tuple[str, int, int]:
    """'YYYY-MM' (default: the current month in +08:00) -> (month, from, to) epoch seconds."""
    if month is None:
        month = (now or utcnow()).astimezone(CHINA_TIME).strftime("%Y-%m")
    matched = _MONTH.fullmatch(month)
    if matched is None or int(matched[1]) < 1970:
        raise InvalidInput("month must be YYYY-MM, e.g. 2010-03", field="month")
    year, number = int(matched[1]), int(matched[2])
    if (year, number) == (MAXYEAR, 12):  # its end, 10000-01-01, is no datetime
        raise InvalidInput(f"month {month} is past the last month there can be", field="month")
    start = datetime(year, number, 1, tzinfo=CHINA_TIME)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=CHINA_TIME)
    return month, int(start.timestamp()), int(end.timestamp())


def tariffed_window(
    rater: Rater, month: str | None, *, now: datetime | None = None
) -> tuple[str, int, int]:
    """month_window, refused (InvalidInput, field `month`) for a month in which no tariff
    version is in force: no call of it can have been rated."""
    month, lo, hi = month_window(month, now=now)
    tariffs = rater.book.tariffs
    if not any(
        t.from_epoch_s < hi and (t.until_epoch_s is None or t.until_epoch_s > lo) for t in tariffs
    ):
        first = tariffs[0].effective_from.astimezone(CHINA_TIME).strftime("%Y-%m")
        last = tariffs[-1].until_epoch_s
        until = (
            " on" if last is None else f" to {datetime.fromtimestamp(last - 1, CHINA_TIME):%Y-%m}"
        )
        raise InvalidInput(
            f"no tariff version is in force in {month}: the tariffs cover months from "
            f"{first}{until}",
            field="month",
        )
    return month, lo, hi


def _month_tariff(rater: Rater, from_epoch_s: int, to_epoch_s: int) -> Tariff | None:
    """The version in force when the month starts (else when it ends): its fees and names."""
    for instant in (from_epoch_s, to_epoch_s - 1):
        index = rater.book.index_at(instant)
        if index is not None:
            return rater.book.tariffs[index]
    return None


def _usage_subscriber(
    rater: Rater,
    number: str,
    row: Subscriber | None,
    tariff: Tariff | None,
    cities: Mapping[str, str],
) -> schemas.UsageSubscriber:
    dialing = home_area_of(rater, number, row.home_area if row else None)  # "010"
    home = dialing[1:] if dialing else None  # areas.tsv names codes without the trunk 0
    area = rater.numbering.area_index(home) if home else NO_INDEX
    province = (
        rater.numbering.provinces[rater.numbering.province_of(area)] if area != NO_INDEX else None
    )
    plan = row.plan if row is not None else None
    # names: from the month's version, else the newest version that has the plan or package
    names = ([tariff] if tariff else []) + list(reversed(rater.book.tariffs))
    brand = next((t.plans[plan].brand for t in names if plan in t.plans), None)
    packages = []
    for package_id in orjson.loads(row.packages) if row is not None else []:
        known = next((t.packages[package_id] for t in names if package_id in t.packages), None)
        in_force = tariff.packages.get(package_id) if tariff is not None else None
        packages.append(
            schemas.UsagePackage(
                id=package_id,
                name=known.name if known else None,
                monthly_fee_fen=in_force.monthly_fee_fen if in_force else 0,
            )
        )
    return schemas.UsageSubscriber(
        msisdn=number,
        registered=row is not None,
        plan=plan,
        brand=brand,
        home_area=dialing,
        home_city=cities.get(home) if home else None,
        home_province=province,
        packages=packages,
    )


def usage(
    session: Session,
    *,
    rater: Rater,
    cities: Mapping[str, str],
    msisdn: str,
    month: str | None,
    offset: int,
    limit: int,
    actor: Actor,
    now: datetime | None = None,
) -> schemas.UsageOut:
    """A subscriber's month (详单): per-class summary and a page of calls from each CDR's
    current rating, package fees, total in fen; the other party masked but for admin; audited."""
    number = checked_msisdn(msisdn)
    at = now or utcnow()
    try:
        month, lo, hi = tariffed_window(rater, month, now=now)
    except InvalidInput:  # the attempt is audited too (SPEC §8); the session commits it
        detail = f"{audit_text(month or '', 40)} -> {InvalidInput.code}"
        write_audit(session, actor=actor, action="usage.read", subject=number, detail=detail, at=at)
        raise
    tariff = _month_tariff(rater, lo, hi)
    subscriber = _usage_subscriber(
        rater, number, repository.get_subscriber(session, msisdn=number), tariff, cities
    )
    summary = repository.usage_by_class(session, msisdn=number, from_epoch_s=lo, to_epoch_s=hi)
    calls = repository.usage_calls(
        session, msisdn=number, from_epoch_s=lo, to_epoch_s=hi, offset=offset, limit=limit
    )
    write_audit(session, actor=actor, action="usage.read", subject=number, detail=month, at=at)
    call_count = sum(c.calls for c in summary)
    calls_fen = sum(c.charge_fen for c in summary)
    package_fees_fen = sum(p.monthly_fee_fen for p in subscriber.packages)
    masked = actor.role != "admin"
    return schemas.UsageOut(
        month=month,
        period_from=datetime.fromtimestamp(lo, CHINA_TIME),
        period_to=datetime.fromtimestamp(hi, CHINA_TIME),
        subscriber=subscriber,
        summary=[schemas.ClassUsageOut.model_validate(c, from_attributes=True) for c in summary],
        call_count=call_count,
        calls_fen=calls_fen,
        package_fees_fen=package_fees_fen,
        total_fen=calls_fen + package_fees_fen,
        calls=[
            schemas.UsageCallOut(
                id=mask_text(c.id, own=number) if masked else c.id,
                ref=c.rating_id,
                start=datetime.fromtimestamp(c.start_epoch_s, CHINA_TIME),
                other_party=mask_number(c.callee) if masked else c.callee,
                duration_s=c.duration_s,
                type=c.leg,
                call_class=c.call_class,
                tariff=c.tariff,
                charge_fen=c.charge_fen,
                ratings=c.ratings,
            )
            for c in calls
        ],
        offset=offset,
        limit=limit,
        next_offset=offset + limit if offset + limit < call_count else None,
    )
