"""Build the numbering-plan tables under tariffs/numbering/ from phonenumbers' metadata.

This is a build tool, not part of the rating core: it imports phonenumbers, the core only
reads the generated tables. Run it with `callrate numbering build` after upgrading
phonenumbers; a test fails while the committed tables are stale.
"""

from __future__ import annotations

import re
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneNumber
from phonenumbers.carrierdata import CARRIER_DATA
from phonenumbers.geodata import GEOCODE_DATA
from phonenumbers.geodata.locale import LOCALE_DATA

from service.rating.numbering import (
    AREAS_FILE,
    COUNTRIES_FILE,
    MOBILE_FILE,
    MOBILE_PREFIX_DIGITS,
    MOBILE_PREFIX_FIRST,
    area_code_length,
)

CHINA = "86"
CHINA_MOBILE = "中国移动"
ALIASES_FILE = "city_aliases.toml"

# Mainland provinces, autonomous regions and municipalities by the short name that starts
# every description phonenumbers gives (some spell the suffix out, some do not).
PROVINCES = (
    "北京", "天津", "上海", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江",
    "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "广西", "海南", "四川",
    "贵州", "云南", "西藏", "陕西", "甘肃", "青海", "宁夏", "新疆", "内蒙古",
)  # fmt: skip
_PROVINCE_SUFFIX = re.compile(r"^(?:壮族自治区|回族自治区|维吾尔自治区|自治区|省|市)")
_CITY_SUFFIX = re.compile(r"(?:市|地区|林区|盟|自治州|自治县)$")

# Sample subscriber digits used to ask phonenumbers which region owns a +1 area code or the
# first three digits after +7.
_SAMPLES = ("2345678", "5550100", "2000000", "3456789", "4567890", "6789012", "9012345")
# Country codes whose region depends on the digits after them (SPEC §4 step 3).
SPLIT_COUNTRY_CODES = (1, 7)


@dataclass(frozen=True)
class Place:
    province: str
    cities: tuple[str, ...]


@dataclass
class BuildReport:
    """What the build found, written into the generated headers and printed."""

    mobile_prefixes: int = 0
    cmcc_prefixes: int = 0
    unmapped_cmcc_no_location: int = 0
    unmapped_cmcc_no_area: list[str] = field(default_factory=list)
    ambiguous_cities: list[str] = field(default_factory=list)
    nanp_unassigned: int = 0

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        return [
            f"7-digit mobile prefixes with an area code: {self.mobile_prefixes}",
            f"China Mobile prefixes (carrier data): {self.cmcc_prefixes}",
            "China Mobile prefixes left unmapped because phonenumbers gives them no location:"
            f" {self.unmapped_cmcc_no_location}",
            "China Mobile prefixes placed in a city that no area code could be found for:"
            f" {len(self.unmapped_cmcc_no_area)}",
            f"+1 area codes (200-999) phonenumbers assigns to no region: {self.nanp_unassigned}",
        ]


def parse_place(description: str) -> Place:
    """Split a phonenumbers zh description into province and city names."""
    for province in sorted(PROVINCES, key=len, reverse=True):
        if description.startswith(province):
            rest = _PROVINCE_SUFFIX.sub("", description[len(province) :], count=1)
            cities = tuple(_city_key(c) for c in rest.split("、") if c) or (province,)
            return Place(province=province, cities=cities)
    raise ValueError(f"description names no known province: {description!r}")


def _city_key(name: str) -> str:
    return _CITY_SUFFIX.sub("", name) or name


def _same_city(a: str, b: str) -> bool:
    # "红河" names the same city as "红河哈尼族彝族自治州"; one name prefixes the other.
    short, long_ = sorted((a, b), key=len)
    return len(short) >= 2 and long_.startswith(short)


def _zh(value: dict[str, str]) -> str | None:
    return value.get("zh")


def build_areas() -> tuple[dict[str, Place], dict[str, list[tuple[int, int, str]]]]:
    """Area code -> place (from its own key), and city -> candidate (rank, position, code)."""
    main: dict[str, Place] = {}
    candidates: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for key, value in GEOCODE_DATA.items():
        if not key.startswith(CHINA):
            continue
        digits = key[len(CHINA) :]
        if digits[:1] == "1" and digits[:2] != "10":
            continue  # mobile ranges
        description = _zh(value)
        if description is None:
            continue
        code = digits[: area_code_length(digits)]
        place = parse_place(description)
        is_main = digits == code
        if is_main:
            main[code] = place
        for position, city in enumerate(place.cities):
            candidates[f"{place.province}/{city}"].append((0 if is_main else 1, position, code))
    return main, candidates


def _resolve_city(
    description: str,
    candidates: dict[str, list[tuple[int, int, str]]],
    aliases: dict[str, str],
    report: BuildReport,
) -> str | None:
    if description in aliases:
        return aliases[description]
    place = parse_place(description)
    city = place.cities[0]
    found = [
        cand
        for key, cands in candidates.items()
        if key.split("/")[0] == place.province and _same_city(key.split("/")[1], city)
        for cand in cands
    ]
    if not found:
        return None
    best = min(found)
    tied = sorted({c for r, p, c in found if (r, p) == best[:2]})
    if len(tied) > 1:
        report.ambiguous_cities.append(f"{description}: {', '.join(tied)}")
    return best[2]


def _expand(prefix_map: dict[str, str]) -> list[str | None]:
    """Longest-prefix map over 7-digit mobile prefixes, as a dense list."""
    dense: list[str | None] = [None] * (10**MOBILE_PREFIX_DIGITS - MOBILE_PREFIX_FIRST)
    for prefix in sorted(prefix_map, key=len):
        span = 10 ** (MOBILE_PREFIX_DIGITS - len(prefix))
        first = int(prefix) * span - MOBILE_PREFIX_FIRST
        if first < 0:
            continue
        dense[first : first + span] = [prefix_map[prefix]] * span
    return dense


def _mobile_prefixes(data: dict[str, dict[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        digits = key[len(CHINA) :]
        description = _zh(value)
        if (
            key.startswith(CHINA)
            and digits[:1] == "1"
            and digits[1:2] in "3456789"
            and 0 < len(digits) <= MOBILE_PREFIX_DIGITS
            and description is not None
        ):
            out[digits] = description
    return out


def build_mobile(
    candidates: dict[str, list[tuple[int, int, str]]],
    aliases: dict[str, str],
    report: BuildReport,
) -> list[tuple[int, int, str, str]]:
    """Ranges of 7-digit mobile prefixes: (first, last, area code, carrier)."""
    locations = _expand(_mobile_prefixes(GEOCODE_DATA))
    carriers = _expand(_mobile_prefixes(CARRIER_DATA))
    area_of: dict[str, str | None] = {}
    rows: list[tuple[int, int, str, str]] = []
    for index, (where, carrier) in enumerate(zip(locations, carriers, strict=True)):
        prefix = index + MOBILE_PREFIX_FIRST
        is_cmcc = carrier == CHINA_MOBILE
        report.cmcc_prefixes += is_cmcc
        if where is None:
            report.unmapped_cmcc_no_location += is_cmcc
            continue
        if where not in area_of:
            area_of[where] = _resolve_city(where, candidates, aliases, report)
        code = area_of[where]
        if code is None:
            if is_cmcc:
                report.unmapped_cmcc_no_area.append(str(prefix))
            continue
        report.mobile_prefixes += 1
        net = "cmcc" if is_cmcc else "other"
        if rows and rows[-1][1] == prefix - 1 and rows[-1][2:] == (code, net):
            rows[-1] = (rows[-1][0], prefix, code, net)
        else:
            rows.append((prefix, prefix, code, net))
    return rows


def build_countries(report: BuildReport) -> list[tuple[str, str]]:
    """(international prefix, ISO region): country codes, +1 and +7 split by what follows."""
    rows: list[tuple[str, str]] = []
    for code, regions in sorted(COUNTRY_CODE_TO_REGION_CODE.items()):
        if code == int(CHINA):
            continue
        if code not in SPLIT_COUNTRY_CODES:
            rows.append((str(code), regions[0]))
            continue
        for following in range(1000):
            region = _split_region(code, f"{following:03d}")
            if region is None:
                report.nanp_unassigned += code == 1 and following >= 200
                continue
            rows.append((f"{code}{following:03d}", region))
    return rows


def _split_region(code: int, following: str) -> str | None:
    """The region phonenumbers gives numbers of +1 / +7 beginning with `following`, or None:
    no +1 area code starts with 0 or 1, and no national number of +7 with 0 (its integer
    form would lose the digit). +7 digits placed in neither Russia nor Kazakhstan (+7 6...)
    are unassigned, as +1 area codes are (SPEC §9)."""
    if following[0] in ("01" if code == 1 else "0"):
        return None
    for sample in _SAMPLES:
        number = PhoneNumber(country_code=code, national_number=int(following + sample))
        region: str | None = phonenumbers.region_code_for_number(number)
        if region:
            return region
    return None


def region_name_zh(region: str) -> str:
    """Chinese name of an ISO region from phonenumbers' locale data ("" when it has none)."""
    names: dict[str, str] = LOCALE_DATA.get(region, {})
    name = names.get("zh", "")
    seen: set[str] = set()
    while name.startswith("*") and name not in seen:  # "*ja": the same text as for ja
        seen.add(name)
        name = names.get(name[1:], "")
    return "" if name.startswith("*") else name


def _header(title: str, columns: str, report_lines: list[str]) -> str:
    lines = [
        f"# {title}",
        f"# generated by `callrate numbering build` from phonenumbers {phonenumbers.__version__}"
        " - do not edit",
        *(f"# {line}" for line in report_lines),
        columns,
    ]
    return "\n".join(lines) + "\n"


def render(aliases_path: Path) -> tuple[dict[str, str], BuildReport]:
    """Every generated file's name and text, and the build report."""
    aliases = tomllib.loads(aliases_path.read_text(encoding="utf-8"))["aliases"]
    report = BuildReport()
    main, candidates = build_areas()
    mobile_rows = build_mobile(candidates, aliases, report)
    used_codes = {row[2] for row in mobile_rows}
    missing = sorted(used_codes - main.keys())
    if missing:
        raise ValueError(f"mobile ranges use area codes with no fixed-line entry: {missing}")
    if report.ambiguous_cities:
        raise ValueError(
            f"cities with more than one equally good area code; name one in {aliases_path}: "
            f"{report.ambiguous_cities}"
        )
    if report.unmapped_cmcc_no_area:
        raise ValueError(
            f"{len(report.unmapped_cmcc_no_area)} China Mobile prefixes are placed in a city"
            f" with no area code; add the city to {aliases_path}: "
            f"{report.unmapped_cmcc_no_area[:5]}"
        )
    country_rows = build_countries(report)
    areas = _header("area code (no trunk 0) -> province, cities", "area_code\tprovince\tcities", [])
    areas += "".join(
        f"{code}\t{place.province}\t{'、'.join(place.cities)}\n"
        for code, place in sorted(main.items())
    )
    mobile = _header(
        "7-digit China mobile prefix ranges -> area code, network",
        "first\tlast\tarea_code\tnetwork",
        report.lines(),
    )
    mobile += "".join(f"{a}\t{b}\t{code}\t{net}\n" for a, b, code, net in mobile_rows)
    countries = _header(
        "international prefix (country code, +1/+7 with 3 more digits) -> ISO region",
        "prefix\tregion\tname_zh",
        [],
    )
    countries += "".join(
        f"{prefix}\t{region}\t{region_name_zh(region)}\n" for prefix, region in country_rows
    )
    return {AREAS_FILE: areas, MOBILE_FILE: mobile, COUNTRIES_FILE: countries}, report


def build(directory: Path) -> BuildReport:
    """Write the generated tables into `directory` and return the report."""
    files, report = render(directory / ALIASES_FILE)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return report
