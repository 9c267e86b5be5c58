"""Tariff rules R1-R16 (SPEC §5): a classified call case -> the charge components.

A case holds only categorical facts (tariff version, plan, leg, dial, destination class,
roaming state, tier, windows). Its price does not depend on the duration except through
`ceil(duration / unit)` and the short-call rule, so both the per-call path and the batch
path price a case with `price_case` and apply the duration the same way (`charge_fen`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from service.rating.numbering import HMT_REGIONS
from service.rating.rejections import Rejected
from service.rating.tariff import Foreign12593, Plan, Tariff

PER_6S = 6
PER_MIN = 60


class Leg(StrEnum):
    ORIGINATING = "originating"
    TERMINATING = "terminating"
    FORWARDED = "forwarded"


class ForwardKind(StrEnum):
    UNCONDITIONAL = "unconditional"
    CONDITIONAL = "conditional"


class Dial(StrEnum):
    DIRECT = "direct"
    IP17951 = "17951"
    IP12593 = "12593"


class Destination(StrEnum):
    LOCAL = "local"
    DOMESTIC_LD = "domestic_ld"
    HMT = "hmt"
    INTERNATIONAL = "international"
    SATELLITE = "satellite"
    SPECIAL = "special"


class Roaming(StrEnum):
    HOME = "home"
    IN_PROVINCE = "in_province"
    NATIONAL = "national"


FOREIGN = (Destination.HMT, Destination.INTERNATIONAL, Destination.SATELLITE)
DOMESTIC = (Destination.LOCAL, Destination.DOMESTIC_LD)


@dataclass(frozen=True, slots=True)
class CallCase:
    """Everything about a call that decides its price, except its duration."""

    version: str
    plan: str
    leg: Leg
    forward_kind: ForwardKind | None
    dial: Dial
    destination: Destination | None  # None for a terminating leg
    region: str | None  # ISO region of a foreign destination
    roaming: Roaming
    busy: bool  # start inside the 12593 busy window
    night_free: bool  # holds ld_night and starts inside its window
    target_home: bool  # forwarded-to number is in the subscriber's home area
    target_visited: bool  # forwarded-to number is in the visited area
    target_on_net: bool  # forwarded-to number is a China Mobile number

    @property
    def call_class(self) -> str:
        """SPEC §6.1 call_class."""
        if self.leg is Leg.TERMINATING:
            return "incoming"
        if self.leg is Leg.FORWARDED:
            return "forward"
        assert self.destination is not None
        return self.destination.value


@dataclass(frozen=True, slots=True)
class Component:
    """One priced part of a call; `short_call_free` marks the LD part R8 waives."""

    code: str
    rule: str
    rate_fen: int
    unit_s: int
    short_call_free: bool = False


@dataclass(frozen=True, slots=True)
class Pricing:
    """The components of a case, or the reason it has no rate."""

    components: tuple[Component, ...]
    rules: tuple[str, ...]
    short_call_max_s: int
    rejection: str | None = None


def units(duration_s: int, unit_s: int) -> int:
    """Billing units: ceil(duration / unit), 0 for 0 s. The batch path mirrors this."""
    return -(-duration_s // unit_s)


def charged_components(pricing: Pricing, duration_s: int) -> tuple[Component, ...]:
    """Components that bill for this duration (R8 drops the LD part of a short call)."""
    if duration_s <= pricing.short_call_max_s:
        return tuple(c for c in pricing.components if not c.short_call_free)
    return pricing.components


def charge_fen(pricing: Pricing, duration_s: int) -> int:
    """Each component rounded on its own to whole units, then summed (SPEC §5)."""
    return sum(
        c.rate_fen * units(duration_s, c.unit_s) for c in charged_components(pricing, duration_s)
    )


def _tier_17951(tariff: Tariff, region: str) -> str:
    tiers = tariff.ip17951.tiers
    if region in HMT_REGIONS:
        return "hmt"
    if region in tiers.us_ca:
        return "us_ca"
    if region in tiers.tier_a:
        return "tier_a"
    return "other"


def _tier_12593(tariff: Tariff, region: str) -> str:
    tiers = tariff.ip12593.tiers
    if region in HMT_REGIONS:
        return "hmt"
    if region in tiers.b1:
        return "b1"
    if region in tiers.b2:
        return "b2"
    return "other"


def _foreign_ld(tariff: Tariff, case: CallCase, *, short_free: bool) -> Component:
    """R3: the 6-second HMT / international LD fee (satellite pays the international one)."""
    if case.destination is Destination.HMT:
        return Component("ld_hmt", "R3", tariff.ld.hmt_per_6s, PER_6S, short_free)
    code = "ld_satellite" if case.destination is Destination.SATELLITE else "ld_international"
    return Component(code, "R3", tariff.ld.international_per_6s, PER_6S, short_free)


def _domestic_ld(tariff: Tariff, plan: Plan, *, short_free: bool) -> Component:
    """R2: 6 fen / 6 s, or the per-minute LD of the two per-minute brands."""
    if plan.ld_per_min is not None:
        return Component("ld_domestic", "R2", plan.ld_per_min, PER_MIN, short_free)
    return Component("ld_domestic", "R2", tariff.ld.domestic_per_6s, PER_6S, short_free)


def _local(plan: Plan, *, short_free: bool = False) -> Component:
    return Component("local", "R1", plan.local_per_min, PER_MIN, short_free)


def _roam_call(plan: Plan) -> Component:
    return Component("roam_call", "R11", plan.roam_call_per_min, PER_MIN)


def _roam_called(plan: Plan, rule: str) -> Component:
    return Component("roam_called", rule, plan.roam_called_per_min, PER_MIN)


def _forward_fee(tariff: Tariff, case: CallCase) -> Component:
    rate = (
        tariff.forwarding.on_net_per_min
        if case.target_on_net
        else tariff.forwarding.off_net_per_min
    )
    return Component("forward_fee", "R15", rate, PER_MIN)


def _originating(tariff: Tariff, plan: Plan, case: CallCase) -> list[Component] | str:
    structure = tariff.structure
    destination, dial = case.destination, case.dial
    at_home = case.roaming is Roaming.HOME
    foreign = destination in FOREIGN
    # R8: only at home is the LD part of a short call free.
    short_free = at_home and destination is not Destination.LOCAL
    if destination is Destination.LOCAL:
        # An IP prefix (17951 or 12593) in front of a number local to where the caller is
        # changes nothing: R1 at home, R11 roaming; R4 / R6 price domestic LD only (SPEC §9).
        return [_local(plan) if at_home else _roam_call(plan)]
    if not foreign and dial is not Dial.IP12593 and not at_home:
        return [_roam_call(plan)]  # R11: the roaming fee includes domestic LD (75号)
    adds_local = at_home and (
        structure.ip17951_adds_call_fee if dial is Dial.IP17951 else structure.ld_adds_local_fee
    )
    if dial is Dial.DIRECT:
        if not foreign:
            if case.night_free:
                return []  # R10
            if plan.ld_per_min is not None:
                return [_domestic_ld(tariff, plan, short_free=short_free)]  # unchanged by 一费制
            ld = _domestic_ld(tariff, plan, short_free=short_free)
        else:
            ld = _foreign_ld(tariff, case, short_free=short_free)  # R3 / R12
            if not at_home and structure.roaming_foreign_adds_roam_fee:
                return [_roam_call(plan), ld]
    elif dial is Dial.IP17951:
        if foreign:
            assert case.region is not None
            rate = getattr(tariff.ip17951.foreign_per_min, _tier_17951(tariff, case.region))
            ld = Component("ip17951_foreign", "R5", rate, PER_MIN, short_free)
            if not at_home and structure.ip17951_adds_call_fee:
                return [_roam_call(plan), ld]
        else:
            ld = Component(
                "ip17951_domestic", "R4", tariff.ip17951.domestic_per_min, PER_MIN, short_free
            )
    else:
        return _ip12593(tariff, plan, case, short_free=short_free)
    return [_local(plan, short_free=short_free), ld] if adds_local else [ld]


def _ip12593(
    tariff: Tariff, plan: Plan, case: CallCase, *, short_free: bool
) -> list[Component] | str:
    rates = tariff.ip12593
    if case.destination in FOREIGN:
        assert case.region is not None
        table: Foreign12593
        if case.roaming is Roaming.NATIONAL:
            return "callee.no_rate_12593_foreign_national_roaming"
        table = (
            rates.foreign_home_per_min
            if case.roaming is Roaming.HOME
            else rates.foreign_in_province_per_min
        )
        rate = getattr(table, _tier_12593(tariff, case.region))
        return [Component("ip12593_foreign", "R7", rate, PER_MIN, short_free)]
    if case.roaming is Roaming.NATIONAL:
        rate = plan.ip12593_national_per_min
    else:
        rate = rates.domestic_busy_per_min if case.busy else rates.domestic_idle_per_min
    return [Component("ip12593_domestic", "R6", rate, PER_MIN, short_free)]


def _forwarded(tariff: Tariff, plan: Plan, case: CallCase) -> list[Component] | str:
    if case.dial is not Dial.DIRECT:
        return "callee.ip_prefix_on_forward"
    foreign = case.destination in FOREIGN
    fee_always = tariff.structure.forward_fee_always
    if case.roaming is Roaming.HOME or case.forward_kind is ForwardKind.UNCONDITIONAL:
        # R15 (decided at home): forwarding fee to a home-area number, else the LD fee only.
        if not foreign and case.target_home:
            return [_forward_fee(tariff, case)]
        ld = (
            _foreign_ld(tariff, case, short_free=True)
            if foreign
            else _domestic_ld(tariff, plan, short_free=True)
        )
        return [_forward_fee(tariff, case), ld] if fee_always else [ld]
    # R16: conditional forward while roaming.
    parts = [_roam_called(plan, "R16")]
    if foreign:
        parts.append(_foreign_ld(tariff, case, short_free=False))
    elif not case.target_visited:
        parts.append(Component("roam_call", "R16", plan.roam_call_per_min, PER_MIN))
    return [_forward_fee(tariff, case), *parts] if fee_always else parts


def price_case(case: CallCase, tariff: Tariff) -> Pricing:
    """Price a call case under one tariff version."""
    free_max = tariff.structure.short_ld_free_max_s
    plan = tariff.plans.get(case.plan)
    if plan is None:
        return Pricing((), (), free_max, rejection="plan.unknown")
    if case.leg is Leg.TERMINATING:
        parts: list[Component] | str = (
            [] if case.roaming is Roaming.HOME else [_roam_called(plan, "R14")]
        )
        rules: tuple[str, ...] = ("R14",)
    elif case.destination is Destination.SPECIAL:
        parts, rules = [], ("R9",)
    elif case.leg is Leg.FORWARDED:
        parts = _forwarded(tariff, plan, case)
        rules = ()
    else:
        parts = _originating(tariff, plan, case)
        rules = ("R10",) if parts == [] else ()
    if isinstance(parts, str):
        return Pricing((), (), free_max, rejection=parts)
    rules = tuple(dict.fromkeys(rules + tuple(c.rule for c in parts)))
    return Pricing(tuple(parts), rules, free_max)


def require_priced(pricing: Pricing) -> Pricing:
    """The pricing, or the Rejected it carries."""
    if pricing.rejection is not None:
        raise Rejected(pricing.rejection)
    return pricing
