"""The pure rating core: numbering, tariffs, classification, per-call and batch rating."""

from __future__ import annotations

from pathlib import Path

from service.rating.numbering import load_numbering
from service.rating.scalar import Rater
from service.rating.tariff import load_book

NUMBERING_DIR = "numbering"


def load_rater(tariffs_dir: Path) -> Rater:
    """Load and validate every tariff file and the numbering tables under `tariffs_dir`."""
    return Rater(load_book(tariffs_dir), load_numbering(tariffs_dir / NUMBERING_DIR))
