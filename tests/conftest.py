"""Shared fixtures: the bundled tariffs and numbering, loaded once per test session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.rating import load_rater
from service.rating.scalar import Rater

ROOT = Path(__file__).resolve().parent.parent
TARIFFS = ROOT / "tariffs"
GOLDEN = ROOT.parent / "shared" / "cases" / "golden-public.jsonl"


def golden_cases() -> list[dict[str, Any]]:
    """The public golden cases (SPEC examples with exact fen)."""
    if not GOLDEN.is_file():
        pytest.fail(f"golden cases not found at {GOLDEN}")
    return [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(scope="session")
def rater() -> Rater:
    return load_rater(TARIFFS)
