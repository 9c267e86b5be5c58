"""Tariff versions as frozen, validated data; choosing the version in force at a call's start."""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

Fen = Annotated[int, Field(ge=0, le=1_000_000)]
# TOML arrays are lists; a frozen tariff keeps them as tuples.
RegionList = Annotated[tuple[Annotated[str, Field(pattern=r"^[A-Z]{2}$")], ...], Strict(False)]
# SPEC §4 step 4: the closed list of numbers that are free dialed bare (R9).
FreeNumbers = Annotated[
    tuple[Annotated[str, Field(pattern=r"^[19][0-9]{2,5}$")], ...],
    Strict(False),
    Field(min_length=1),
]
SECONDS_PER_DAY = 86_400


class TariffError(ValueError):
    """A tariff file is missing or invalid; the message names the file, key and problem."""


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def seconds_of_day(value: time) -> int:
    """Seconds since midnight of a wall-clock time."""
    return value.hour * 3600 + value.minute * 60 + value.second


def in_window(second_of_day: int, start: time, until: time) -> bool:
    """Whether a local second of day lies in [start, until), a window that may wrap midnight."""
    lo, hi = seconds_of_day(start), seconds_of_day(until)
    if lo <= hi:
        return lo <= second_of_day < hi
    return second_of_day >= lo or second_of_day < hi


class Structure(_Data):
    ld_adds_local_fee: bool
    ip17951_adds_call_fee: bool
    roaming_foreign_adds_roam_fee: bool
    forward_fee_always: bool
    short_ld_free_max_s: Annotated[int, Field(ge=0, le=60)]


class LdRates(_Data):
    domestic_per_6s: Fen
    hmt_per_6s: Fen
    international_per_6s: Fen


class Foreign17951(_Data):
    hmt: Fen
    us_ca: Fen
    tier_a: Fen
    other: Fen


class Tiers17951(_Data):
    us_ca: RegionList
    tier_a: RegionList


class Ip17951(_Data):
    domestic_per_min: Fen
    foreign_per_min: Foreign17951
    tiers: Tiers17951


class Foreign12593(_Data):
    hmt: Fen
    b1: Fen
    b2: Fen
    other: Fen


class Tiers12593(_Data):
    b1: RegionList
    b2: RegionList


class Ip12593(_Data):
    domestic_busy_per_min: Fen
    domestic_idle_per_min: Fen
    busy_from: time
    busy_until: time
    foreign_home_per_min: Foreign12593
    foreign_in_province_per_min: Foreign12593
    tiers: Tiers12593


class Forwarding(_Data):
    on_net_per_min: Fen
    off_net_per_min: Fen


class Package(_Data):
    name: str
    monthly_fee_fen: Fen
    free_from: time
    free_until: time


class Plan(_Data):
    brand: str
    local_per_min: Fen
    ld_per_min: Fen | None = None
    roam_call_per_min: Fen
    roam_called_per_min: Fen
    ip12593_national_per_min: Fen


class Tariff(_Data):
    """One released tariff version (one TOML file)."""

    version: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,31}$")]
    name: str
    timezone: str
    effective_from: datetime
    effective_until: datetime | None = None
    structure: Structure
    ld: LdRates
    ip17951: Ip17951
    ip12593: Ip12593
    forwarding: Forwarding
    free_numbers: FreeNumbers
    packages: dict[Annotated[str, Field(pattern=r"^[a-z0-9_]+$")], Package]
    plans: dict[Annotated[str, Field(pattern=r"^[a-z0-9_]+$")], Plan]

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("effective_from", "effective_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("needs a UTC offset, e.g. 2010-01-01T00:00:00+08:00")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Tariff:
        if self.effective_until is not None and self.effective_until <= self.effective_from:
            raise ValueError("effective_until must be after effective_from")
        if not self.plans:
            raise ValueError("plans: at least one plan is needed")
        return self

    @cached_property
    def free_number_set(self) -> frozenset[str]:
        """free_numbers as a set, for lookups."""
        return frozenset(self.free_numbers)

    @cached_property
    def from_epoch_s(self) -> int:
        """Start of the version's window, seconds since the epoch."""
        return int(self.effective_from.timestamp())

    @cached_property
    def until_epoch_s(self) -> int | None:
        """End (exclusive) of the version's window, or None when open."""
        return None if self.effective_until is None else int(self.effective_until.timestamp())

    @cached_property
    def utc_offset_s(self) -> int:
        """The tariff zone's offset in its window: Asia/Shanghai has kept +08:00 since 1991."""
        offset = self.effective_from.astimezone(ZoneInfo(self.timezone)).utcoffset()
        assert offset is not None
        return int(offset.total_seconds())

    def local_second_of_day(self, epoch_s: int) -> int:
        """Wall-clock second of day in the tariff's zone."""
        return (epoch_s + self.utc_offset_s) % SECONDS_PER_DAY


@dataclass(frozen=True)
class TariffBook:
    """Every tariff version, ordered by effective_from."""

    tariffs: tuple[Tariff, ...]

    def __post_init__(self) -> None:
        starts = [t.from_epoch_s for t in self.tariffs]
        if starts != sorted(starts):
            raise TariffError("tariff versions must be ordered by effective_from")

    @cached_property
    def plans(self) -> tuple[str, ...]:
        """Every plan id of every version, sorted."""
        return tuple(sorted({plan for t in self.tariffs for plan in t.plans}))

    @cached_property
    def versions(self) -> tuple[str, ...]:
        """The version ids, ordered by effective_from."""
        return tuple(t.version for t in self.tariffs)

    @cached_property
    def digests(self) -> dict[str, str]:
        """Each version's digest (tariff_digest), in effective_from order."""
        return {t.version: tariff_digest(t) for t in self.tariffs}

    @cached_property
    def starts(self) -> tuple[int, ...]:
        """effective_from of each version, seconds since the epoch."""
        return tuple(t.from_epoch_s for t in self.tariffs)

    def index_at(self, epoch_s: int) -> int | None:
        """Index of the version in force at an instant, or None."""
        position = bisect.bisect_right(self.starts, epoch_s) - 1
        if position < 0:
            return None
        until = self.tariffs[position].until_epoch_s
        return position if until is None or epoch_s < until else None

    def by_version(self, version: str) -> Tariff:
        """The tariff with this version name."""
        for tariff in self.tariffs:
            if tariff.version == version:
                return tariff
        raise KeyError(version)


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(file)"
        problems.append(f"key {key}: {item['msg']}")
    return "; ".join(problems)


def parse_tariff(source: str, origin: str) -> Tariff:
    """Validate one tariff's TOML text; a TariffError names `origin`, the key and the problem."""
    try:
        raw: dict[str, Any] = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise TariffError(f"{origin}: {exc}") from exc
    try:
        return Tariff.model_validate(raw)
    except ValidationError as exc:
        raise TariffError(f"{origin}: {_describe(exc)}") from exc


def canonical(tariff: Tariff) -> dict[str, Any]:
    """A tariff's content as plain JSON values: what its digest covers (not the TOML's
    comments, layout or key order)."""
    content: dict[str, Any] = tariff.model_dump(mode="json")
    return content


def tariff_digest(tariff: Tariff) -> str:
    """sha256 of the canonical content, hex: the same for the same tariff however written."""
    encoded = json.dumps(canonical(tariff), sort_keys=True, ensure_ascii=False).encode()
    return "sha256:" + hashlib.sha256(encoded).hexdigest()


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flat(item, f"{prefix}{key}."))
        return flat
    return {prefix.removesuffix("."): value}


def tariff_differences(old: Tariff, new: Tariff) -> list[str]:
    """Each key whose value differs between two tariffs: "ld.domestic_per_6s: 6 -> 7"."""
    before, after = _flat(canonical(old)), _flat(canonical(new))
    return [
        f"{key}: {json.dumps(before.get(key), ensure_ascii=False)} -> "
        f"{json.dumps(after.get(key), ensure_ascii=False)}"
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    ]


def load_tariff(path: Path) -> Tariff:
    """Load and validate one tariff TOML file."""
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TariffError(f"{path}: {exc}") from exc
    tariff = parse_tariff(source, str(path))
    if tariff.version != path.stem:
        raise TariffError(f"{path}: key version: {tariff.version!r} must match the file name")
    return tariff


def load_book(directory: Path) -> TariffBook:
    """Load every *.toml tariff in `directory`.

    At any instant the version with the latest effective_from at or before it is in force
    (none once that version's effective_until has passed): a correction is a new file that
    starts inside an older version's window and takes over from there.
    """
    paths = sorted(directory.glob("*.toml"))
    if not paths:
        raise TariffError(f"{directory}: no tariff files (*.toml)")
    return make_book((load_tariff(p) for p in paths), str(directory))


def make_book(tariffs: Iterable[Tariff], origin: str) -> TariffBook:
    """The versions as a book, ordered by effective_from; two that start at the same instant
    (which would be in force?) or share a version id are refused."""
    ordered = sorted(tariffs, key=lambda t: t.from_epoch_s)
    for earlier, later in itertools.pairwise(ordered):
        if earlier.from_epoch_s == later.from_epoch_s:
            raise TariffError(
                f"{origin}: {earlier.version} and {later.version} start at the same instant"
            )
    versions = [t.version for t in ordered]
    if len(set(versions)) != len(versions):
        raise TariffError(f"{origin}: a version id occurs twice")
    return TariffBook(tuple(ordered))
