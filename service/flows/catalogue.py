"""The tariff catalogue (GET /v1/tariffs): each version, its window, plans and packages."""

from __future__ import annotations

from service import schemas
from service.rating.scalar import Rater
from service.rating.tariff import Tariff


def tariffs(rater: Rater) -> list[schemas.TariffOut]:
    """The catalogue: each tariff version, its window, its plans with fees and its packages."""
    versions = rater.book.tariffs
    catalogue = []
    for index, t in enumerate(versions):
        ends = [t.effective_until] if t.effective_until is not None else []
        if index + 1 < len(versions):
            ends.append(versions[index + 1].effective_from)
        catalogue.append(
            schemas.TariffOut(
                version=t.version,
                name=t.name,
                timezone=t.timezone,
                effective_from=t.effective_from,
                effective_until=t.effective_until,
                in_force_until=min(ends) if ends else None,
                plans=[_plan_out(t, plan_id) for plan_id in t.plans],
                packages=[
                    schemas.PackageOut(
                        id=package_id,
                        name=package.name,
                        monthly_fee_fen=package.monthly_fee_fen,
                        free_from=package.free_from.isoformat(),
                        free_until=package.free_until.isoformat(),
                    )
                    for package_id, package in t.packages.items()
                ],
            )
        )
    return catalogue


def _plan_out(tariff: Tariff, plan_id: str) -> schemas.PlanOut:
    plan = tariff.plans[plan_id]
    ld = (
        schemas.LdFee(rate_fen=plan.ld_per_min, unit_s=60)
        if plan.ld_per_min is not None
        else schemas.LdFee(rate_fen=tariff.ld.domestic_per_6s, unit_s=6)
    )
    return schemas.PlanOut(
        id=plan_id,
        brand=plan.brand,
        fees=schemas.PlanFees(
            local_per_min=plan.local_per_min,
            ld=ld,
            roam_call_per_min=plan.roam_call_per_min,
            roam_called_per_min=plan.roam_called_per_min,
            ip12593_national_per_min=plan.ip12593_national_per_min,
        ),
    )
