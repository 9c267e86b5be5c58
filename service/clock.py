"""Time, one way for the whole service: instants are UTC; tariffs and bill months run on +08:00."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

CHINA_TIME_S = 8 * 3600  # SPEC §1: tariffs and bill months run on +08:00
CHINA_TIME = timezone(timedelta(seconds=CHINA_TIME_S))


def utcnow() -> datetime:
    """The current instant, UTC."""
    return datetime.now(UTC)
