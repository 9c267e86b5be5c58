"""SPEC §4: dialed digits -> destination, against the numbering plan (per-call path)."""

from __future__ import annotations

from dataclasses import dataclass

from service.rating.numbering import (
    HMT_REGIONS,
    NO_INDEX,
    NON_GEOGRAPHIC_REGION,
    SATELLITE_CODES,
    NumberingPlan,
    area_code_length,
)
from service.rating.pricing import Destination, Dial, Roaming
from service.rating.rejections import Rejected

IP_PREFIXES = {"17951": Dial.IP17951, "12593": Dial.IP12593}
IP_PREFIX_LEN = 5
MAX_NUMBER_CHARS = 32
MOBILE_LEN = 11
MOBILE_SECOND_DIGITS = "3456789"
SUBSCRIBER_FIRST_DIGITS = "23456789"
SUBSCRIBER_LENGTHS = (7, 8)
# SPEC §4 step 4: a short number (114, 12580, 95588, 96110 ...) is a number of an area; only the
# tariff's free_numbers (110, 10086 ...) are free when dialed bare.
SHORT_LENGTHS = (3, 4, 5, 6)
SHORT_FIRST_DIGITS = "19"
INFORMATION_PREFIXES = ("160", "168")
MAX_E164_DIGITS = 15
MIN_FOREIGN_NATIONAL_DIGITS = 4
NANP_NATIONAL_DIGITS = 10
NANP_CODE = "1"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a dialed number goes. area is NO_INDEX for a bare local number."""

    dial: Dial
    foreign: Destination | None  # HMT / INTERNATIONAL / SATELLITE, else None
    special: bool
    area: int
    on_net: bool
    region: str | None


def is_ascii_digits(text: str) -> bool:
    """Only the characters 0-9 (str.isdigit also accepts other scripts' digits)."""
    return text.isascii() and text.isdigit()


def check_number_syntax(number: str) -> None:
    """Digits with at most one leading '+', within the length any number could have."""
    if not number:
        raise Rejected("callee.empty")
    if len(number) > MAX_NUMBER_CHARS:
        raise Rejected("callee.too_long")
    body = number[1:] if number.startswith("+") else number
    if not is_ascii_digits(body):
        raise Rejected("callee.invalid_characters")


def classify_callee(callee: str, numbering: NumberingPlan, free_numbers: frozenset[str]) -> Target:
    """SPEC §4 steps 1-4 and 7 for the dialed digits; `free_numbers` are the tariff's (R9)."""
    if not callee:
        raise Rejected("callee.empty")
    if len(callee) > MAX_NUMBER_CHARS:
        raise Rejected("callee.too_long")
    dial = Dial.DIRECT
    rest = callee
    if rest[:IP_PREFIX_LEN] in IP_PREFIXES:
        if len(rest) == IP_PREFIX_LEN:
            raise Rejected("callee.incomplete")  # a bare IP prefix (SPEC §4 step 4)
        dial, rest = IP_PREFIXES[rest[:IP_PREFIX_LEN]], rest[IP_PREFIX_LEN:]
    international: str | None = None
    if rest.startswith("+"):
        if dial is not Dial.DIRECT:  # `+` only as the first character (SPEC §9)
            raise Rejected("callee.invalid_characters")
        international = rest[1:]
        if not is_ascii_digits(international):
            raise Rejected("callee.invalid_characters")
    elif not is_ascii_digits(rest):
        raise Rejected("callee.invalid_characters")
    elif rest.startswith("00"):
        international = rest[2:]
    if international is not None:
        if international.startswith("86"):
            return _after_86(dial, international[2:], numbering)
        return _foreign(dial, international, numbering)
    if len(rest) == MOBILE_LEN + 2 and rest.startswith("861"):
        return _mobile(dial, rest[2:], numbering)
    return _domestic(dial, rest, numbering, free_numbers)


def _is_mobile(digits: str) -> bool:
    return len(digits) == MOBILE_LEN and digits[0] == "1" and digits[1] in MOBILE_SECOND_DIGITS


def _is_short(digits: str) -> bool:
    return len(digits) in SHORT_LENGTHS and digits[0] in SHORT_FIRST_DIGITS


def _after_86(dial: Dial, national: str, numbering: NumberingPlan) -> Target:
    if _is_mobile(national):
        return _mobile(dial, national, numbering)
    if national[:1] in SUBSCRIBER_FIRST_DIGITS or national.startswith("10"):
        return _area_number(dial, national, numbering)
    raise Rejected("callee.invalid_plus86")


def _mobile(dial: Dial, number: str, numbering: NumberingPlan) -> Target:
    area, on_net = numbering.mobile(number)
    if area == NO_INDEX:
        raise Rejected("callee.unknown_mobile_prefix")
    return Target(dial, None, False, area, on_net, None)


def _domestic(
    dial: Dial, digits: str, numbering: NumberingPlan, free_numbers: frozenset[str]
) -> Target:
    if digits.startswith("0"):
        if len(digits) == MOBILE_LEN + 1 and _is_mobile(digits[1:]):
            return _mobile(dial, digits[1:], numbering)
        return _area_number(dial, digits[1:], numbering)
    if digits.startswith(INFORMATION_PREFIXES):
        raise Rejected("callee.information_line")
    if len(digits) == MOBILE_LEN and digits[0] == "1":
        return _mobile(dial, digits, numbering)
    if len(digits) in SUBSCRIBER_LENGTHS and digits[0] in SUBSCRIBER_FIRST_DIGITS:
        return Target(dial, None, False, NO_INDEX, False, None)
    if _is_short(digits):  # free, or a call to the caller's current area
        return Target(dial, None, digits in free_numbers, NO_INDEX, False, None)
    raise Rejected("callee.invalid_number")


def _area_number(dial: Dial, digits: str, numbering: NumberingPlan) -> Target:
    """Area code (without trunk 0) + subscriber or short number: a normal call to that area."""
    if len(digits) < 3:
        raise Rejected("callee.invalid_number")
    area = int(numbering.area_by_digits[int(digits[:3])])
    if area == NO_INDEX:
        raise Rejected("callee.unknown_area_code")
    subscriber = digits[area_code_length(digits) :]
    if subscriber.startswith(INFORMATION_PREFIXES):
        raise Rejected("callee.information_line")
    ordinary = len(subscriber) in SUBSCRIBER_LENGTHS and subscriber[0] in SUBSCRIBER_FIRST_DIGITS
    if not (ordinary or _is_short(subscriber)):
        raise Rejected("callee.invalid_number")
    return Target(dial, None, False, area, False, None)


def _foreign(dial: Dial, digits: str, numbering: NumberingPlan) -> Target:
    code_len = int(numbering.country_code_len[int(digits[:3].ljust(3, "0"))]) if digits else 0
    if code_len == 0 or len(digits) < code_len:
        raise Rejected("callee.unknown_country_code")
    code, national = digits[:code_len], digits[code_len:]
    if len(digits) > MAX_E164_DIGITS or len(national) < MIN_FOREIGN_NATIONAL_DIGITS:
        raise Rejected("callee.invalid_foreign_length")
    if code in SATELLITE_CODES:
        return Target(dial, Destination.SATELLITE, False, NO_INDEX, False, NON_GEOGRAPHIC_REGION)
    if int(code) in numbering.split_codes:
        if code == NANP_CODE and len(national) != NANP_NATIONAL_DIGITS:
            raise Rejected("callee.invalid_foreign_length")
        region_index = int(numbering.split_region[int(code) * 1000 + int(national[:3])])
        if region_index == NO_INDEX and code == NANP_CODE:
            raise Rejected("callee.unassigned_nanp_area")
        if region_index == NO_INDEX:  # +7 digits in neither Russia nor Kazakhstan (SPEC §9)
            raise Rejected("callee.unknown_destination")
    else:
        region_index = int(numbering.country_region[int(code)])
        if region_index == NO_INDEX:  # a code length is known only for assigned codes
            raise Rejected("callee.unknown_country_code")
    region = numbering.regions[region_index]
    kind = Destination.HMT if region in HMT_REGIONS else Destination.INTERNATIONAL
    return Target(dial, kind, False, NO_INDEX, False, region)


def visited_area_index(visited: str, numbering: NumberingPlan) -> int:
    """Area index of a visited area code in dialing form ("021"): always a Chinese area
    ("0886" is 怒江, never Taiwan; SPEC §4 step 6)."""
    area = numbering.area_index(visited)
    if area == NO_INDEX:
        raise Rejected("visited_area.unknown_area_code")
    return area


def roaming_state(home: int, visited: int | None, numbering: NumberingPlan) -> Roaming:
    """SPEC §4 step 6."""
    if visited is None or visited == home:
        return Roaming.HOME
    if numbering.province_of(visited) == numbering.province_of(home):
        return Roaming.IN_PROVINCE
    return Roaming.NATIONAL
