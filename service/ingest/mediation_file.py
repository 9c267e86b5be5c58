"""The mediation file (SPEC §3.4, `CALLRATE_MEDIATION_FILE`, TOML): what a site configures for
its switches' own formats. Without it, no switch has a visited area (FreeSWITCH legs are not
roaming; every 3GPP record is rejected `visited_area.unknown_msc`)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any


class MediationFileError(ValueError):
    """The mediation file cannot be read; the message names the file and the key at fault."""


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Mediation:
    """`[freeswitch.switch_areas]`: switchname -> area code; `[3gpp.msc_areas]`: MSC number
    (international digits, as in recordingEntity) -> area code."""

    switch_areas: Mapping[str, str] = field(default_factory=_empty)
    msc_areas: Mapping[str, str] = field(default_factory=_empty)


NO_MEDIATION = Mediation()


def _table(document: Mapping[str, Any], section: str, name: str, path: Path) -> dict[str, str]:
    outer = document.get(section, {})
    if not isinstance(outer, dict):
        raise MediationFileError(f"{path}: [{section}] must be a table")
    inner = outer.get(name, {})
    if not isinstance(inner, dict):
        raise MediationFileError(f"{path}: [{section}.{name}] must be a table")
    for key, value in inner.items():
        if not isinstance(value, str) or not value.isascii() or not value.isdigit():
            raise MediationFileError(
                f'{path}: [{section}.{name}] {key!r} must be an area code string such as "021"'
            )
    return dict(inner)


def load_mediation(path: Path | None) -> Mediation:
    """The mediation file at `path` (None: the defaults)."""
    if path is None:
        return NO_MEDIATION
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MediationFileError(f"{path}: {exc}") from exc
    msc_areas = {
        "".join(ch for ch in key if ch.isdigit()): area
        for key, area in _table(document, "3gpp", "msc_areas", path).items()
    }
    return Mediation(
        switch_areas=MappingProxyType(_table(document, "freeswitch", "switch_areas", path)),
        msc_areas=MappingProxyType(msc_areas),
    )
