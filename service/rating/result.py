"""What the per-call path answers (SPEC §6.1): a Rating and its charged Items. Both the
rater and the explanation use these, so they live apart from either."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Item:
    code: str
    units: int
    unit_s: int
    rate_fen: int
    amount_fen: int

    def to_dict(self) -> dict[str, Any]:
        """SPEC §6.1 item."""
        return {
            "code": self.code,
            "units": self.units,
            "unit_s": self.unit_s,
            "rate_fen": self.rate_fen,
            "amount_fen": self.amount_fen,
        }


@dataclass(frozen=True, slots=True)
class Rating:
    """SPEC §6.1 rating result."""

    charge_fen: int
    call_class: str
    dial: str
    roaming: str
    tariff: str
    items: tuple[Item, ...]
    rules: tuple[str, ...]
    explanation_zh: str

    def to_dict(self) -> dict[str, Any]:
        """The rating as the wire shows it."""
        return {
            "charge_fen": self.charge_fen,
            "call_class": self.call_class,
            "dial": self.dial,
            "roaming": self.roaming,
            "tariff": self.tariff,
            "items": [item.to_dict() for item in self.items],
            "rules": list(self.rules),
            "explanation_zh": self.explanation_zh,
        }
