"""Shared fixtures: the bundled tariffs and numbering, loaded once per test session."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from service.rating import load_rater
from service.rating.scalar import Rater

ROOT = Path(__file__).resolve().parent.parent
TARIFFS = ROOT / "tariffs"
GOLDEN = ROOT / "tests" / "cases" / "golden.jsonl"


def golden_cases() -> list[dict[str, Any]]:
    """The golden cases: quote requests with the exact fen expected (docs/spec.md)."""
    return [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines() if line]


def write_correction(
    directory: Path, source: str, version: str, *, starts: str | None = None, **values: int
) -> None:
    """A new tariff file copied from `source`: another version name, start and rate values."""
    text = (directory / f"{source}.toml").read_text(encoding="utf-8")
    text = text.replace(f'version = "{source}"', f'version = "{version}"')
    if starts is not None:
        text = re.sub(r"(?m)^effective_from = .*$", f"effective_from = {starts}", text)
    for key, value in values.items():
        text, count = re.subn(rf"(?m)^{key} = \d+", f"{key} = {value}", text)
        assert count == 1, key
    (directory / f"{version}.toml").write_text(text, encoding="utf-8")


def column_record(row: dict[str, Any]) -> dict[str, Any]:
    """A row of CDR columns as the CDR object it stands for: a null cell is an absent field."""
    return {name: value for name, value in row.items() if value is not None}


@pytest.fixture(scope="session")
def rater() -> Rater:
    return load_rater(TARIFFS)


# --- database and API fixtures (service, persistence) ----------------------------------------

from collections.abc import Iterator  # noqa: E402

from service.config import Settings  # noqa: E402
from tests.conftest_db import BACKENDS, KEYS_SPEC, Api, fresh_database, running_api  # noqa: E402


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database migrated by Alembic, on SQLite and on PostgreSQL."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for a test app: the fresh database and fixed keys per role."""
    return Settings(
        database_url=database_url,
        data_dir=tmp_path,
        tariffs_dir=TARIFFS,
        api_keys=KEYS_SPEC,
        default_plan=None,
    )


@pytest.fixture
def api(settings: Settings, rater: Rater) -> Iterator[Api]:
    """The app, running in-process on the fresh database."""
    with running_api(settings, rater) as client:
        yield client
