"""The per-call path: one CDR -> classification -> call case -> priced Rating."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.rating.cdr import CallRecord, parse_cdr
from service.rating.classify import (
    check_number_syntax,
    classify_callee,
    roaming_state,
    visited_area_index,
)
from service.rating.explain import Phrases, explain, phrases
from service.rating.numbering import NO_INDEX, NumberingPlan
from service.rating.pricing import (
    CallCase,
    Destination,
    Dial,
    Leg,
    Pricing,
    Roaming,
    charged_components,
    price_case,
    require_priced,
    units,
)
from service.rating.rejections import Rejected
from service.rating.result import Item, Rating
from service.rating.tariff import Tariff, TariffBook, in_window

NIGHT_PACKAGE = "ld_night"


@dataclass(frozen=True, slots=True)
class SubscriberProfile:
    """What the registry knows of a subscriber; a CDR's own plan/packages override it."""

    plan: str
    home_area: str | None = None  # area code ("021"); None = from number range
    packages: tuple[str, ...] = ()
    registered: bool = True  # False: a default plan for a caller the registry does not hold


class Rater:
    """Rates calls against one tariff book and numbering plan; memoizes priced cases."""

    def __init__(self, book: TariffBook, numbering: NumberingPlan) -> None:
        self.book = book
        self.numbering = numbering
        self._prices: dict[CallCase, Pricing] = {}
        self._phrases: dict[CallCase, Phrases] = {}
        self._tariffs = {tariff.version: tariff for tariff in book.tariffs}

    def pricing(self, case: CallCase) -> Pricing:
        """price_case, memoized: there are few distinct cases."""
        pricing = self._prices.get(case)
        if pricing is None:
            pricing = price_case(case, self._tariffs[case.version])
            self._prices[case] = pricing
        return pricing

    def home_area(self, msisdn: str) -> str | None:
        """Area code ("021") of a mobile number's range, if the plan knows it."""
        area, _ = self.numbering.mobile(msisdn)
        return None if area == NO_INDEX else self.numbering.dialing_code(area)

    def rate_raw(
        self,
        raw: Mapping[str, Any] | object,
        *,
        subscriber: SubscriberProfile | None = None,
        require_id: bool = False,
        version: str | None = None,
    ) -> Rating:
        """Parse and rate one CDR object; raises Rejected."""
        call = parse_cdr(raw, require_id=require_id)
        return self.rate(call, subscriber=subscriber, version=version)

    def case_of(
        self, call: CallRecord, subscriber: SubscriberProfile | None, version: str | None = None
    ) -> CallCase:
        """Classify a parsed CDR (SPEC §4) into its call case, under the version in force at
        its start, or under `version` (a stored rating's, to explain it again)."""
        numbering = self.numbering
        if version is None:
            index = self.book.index_at(call.start_epoch_s)
            if index is None:
                raise Rejected("start.no_tariff")
            tariff = self.book.tariffs[index]
        elif version in self._tariffs:
            tariff = self._tariffs[version]
        else:
            raise Rejected("start.no_tariff")
        plan = call.plan or (subscriber.plan if subscriber else None)
        if plan is None:
            raise Rejected("plan.missing")
        if plan not in tariff.plans:
            raise Rejected("plan.unknown", hint=f"{tariff.version} has {', '.join(tariff.plans)}")
        packages = (
            call.packages
            if call.packages is not None
            else (subscriber.packages if subscriber else ())
        )
        if any(p not in tariff.packages for p in packages):
            raise Rejected("packages.unknown")
        home_code = subscriber.home_area if subscriber and subscriber.home_area else None
        home = numbering.area_index(home_code) if home_code else numbering.mobile(call.caller)[0]
        if home == NO_INDEX:
            raise Rejected("caller.unknown_number_range")
        if not (subscriber and subscriber.registered) and not numbering.mobile(call.caller)[1]:
            raise Rejected("caller.not_china_mobile")  # the registry may hold it (SPEC §9)
        visited = (
            None if call.visited_area is None else visited_area_index(call.visited_area, numbering)
        )
        roaming = roaming_state(home, visited, numbering)
        current = home if visited is None else visited
        if call.leg is Leg.TERMINATING:
            check_number_syntax(call.callee)
            return _case(tariff, plan, call, Dial.DIRECT, None, None, roaming)
        target = classify_callee(call.callee, numbering, tariff.free_number_set)
        area = current if target.area == NO_INDEX else target.area
        forwarded = call.leg is Leg.FORWARDED
        if target.special and not forwarded:
            destination = Destination.SPECIAL
        elif target.foreign is not None:
            destination = target.foreign
        else:
            destination = Destination.LOCAL if area == current else Destination.DOMESTIC_LD
        second = tariff.local_second_of_day(call.start_epoch_s)
        domestic_ld = destination is Destination.DOMESTIC_LD
        night = tariff.packages.get(NIGHT_PACKAGE)
        # A forwarded-to service number is an off-net number of its area (SPEC §9).
        domestic_target = target.foreign is None
        return _case(
            tariff,
            plan,
            call,
            target.dial,
            destination,
            target.region,
            roaming,
            busy=target.dial is Dial.IP12593
            and domestic_ld
            and in_window(second, tariff.ip12593.busy_from, tariff.ip12593.busy_until),
            night_free=not forwarded
            and target.dial is Dial.DIRECT
            and domestic_ld
            and roaming is Roaming.HOME
            and night is not None
            and NIGHT_PACKAGE in packages
            and in_window(second, night.free_from, night.free_until),
            target_home=forwarded and domestic_target and area == home,
            target_visited=forwarded
            and domestic_target
            and visited is not None
            and area == visited,
            target_on_net=forwarded and target.on_net,
        )

    def rate(
        self,
        call: CallRecord,
        *,
        subscriber: SubscriberProfile | None = None,
        version: str | None = None,
    ) -> Rating:
        """Rate a parsed CDR (under `version` if given, see case_of); raises Rejected."""
        case = self.case_of(call, subscriber, version)
        pricing = require_priced(self.pricing(case))
        duration = call.duration_s
        charged = charged_components(pricing, duration)
        items = tuple(
            Item(c.code, n, c.unit_s, c.rate_fen, c.rate_fen * n)
            for c in charged
            for n in (units(duration, c.unit_s),)
        )
        rules = pricing.rules
        if len(charged) < len(pricing.components):
            rules = (*rules, "R8")
        charge = sum(item.amount_fen for item in items)
        words = self._phrases.get(case)
        if words is None:
            tariff = self._tariffs[case.version]
            region_zh = self.numbering.region_names_zh.get(case.region or "")
            brand = tariff.plans[case.plan].brand
            words = phrases(case, tariff, pricing, brand, region_zh)
            self._phrases[case] = words
        return Rating(
            charge_fen=charge,
            call_class=case.call_class,
            dial=case.dial.value,
            roaming=case.roaming.value,
            tariff=case.version,
            items=items,
            rules=rules,
            explanation_zh=explain(words, items, rules, duration, charge),
        )


def _case(
    tariff: Tariff,
    plan: str,
    call: CallRecord,
    dial: Dial,
    destination: Destination | None,
    region: str | None,
    roaming: Roaming,
    *,
    busy: bool = False,
    night_free: bool = False,
    target_home: bool = False,
    target_visited: bool = False,
    target_on_net: bool = False,
) -> CallCase:
    return CallCase(
        version=tariff.version,
        plan=plan,
        leg=call.leg,
        forward_kind=call.forward_kind,
        dial=dial,
        destination=destination,
        region=region,
        roaming=roaming,
        busy=busy,
        night_free=night_free,
        target_home=target_home,
        target_visited=target_visited,
        target_on_net=target_on_net,
    )
