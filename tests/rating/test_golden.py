"""Every public golden case through the per-call core."""

from __future__ import annotations

from typing import Any

import pytest

from service.rating.rejections import Rejected
from service.rating.scalar import Rater
from tests.conftest import golden_cases


def outcome(rater: Rater, request: dict[str, Any]) -> dict[str, Any]:
    """The core's answer as the wire shows it: a rating or a rejection."""
    try:
        return rater.rate_raw(request).to_dict()
    except Rejected as rejection:
        return rejection.to_dict()


@pytest.mark.parametrize("case", golden_cases(), ids=lambda case: case["name"])
def test_golden_case(rater: Rater, case: dict[str, Any]) -> None:
    result = outcome(rater, case["request"])
    assert {key: result.get(key) for key in case["expect"]} == case["expect"]
