"""Published tariffs in use: the catalogue, publishing, and a running server's live set.

Every process that works on the database rates with the published versions (SPEC §7); a
running server looks for new ones every `tariffs_poll_s` and swaps its rater when the set
changed, so a version published by any process is used within 5 s without a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from service import schemas
from service.db import tariffs as published
from service.db.models import TariffVersionRow
from service.errors import InvalidInput, is_database_unavailable
from service.rating import NUMBERING_DIR
from service.rating.numbering import NumberingPlan, load_numbering
from service.rating.scalar import Rater
from service.rating.tariff import Tariff, TariffError, parse_tariff

log = logging.getLogger("callrate")


def published_rater(session: Session, numbering: NumberingPlan) -> Rater:
    """A rater of the published versions (TariffError when none is published)."""
    return Rater(published.published_book(session), numbering)


def load_published_rater(session: Session, tariffs_dir: Path) -> Rater:
    """The published versions with the numbering tables of `tariffs_dir`."""
    return published_rater(session, load_numbering(tariffs_dir / NUMBERING_DIR))


def catalogue(session: Session) -> list[schemas.TariffOut]:
    """GET /v1/tariffs: every published version with its digest, publish time, window, plans
    and packages."""
    rows = published.published_rows(session)
    tariffs = [parse_tariff(row.source, f"published {row.version}") for row in rows]
    following: list[Tariff | None] = [*tariffs[1:], None]
    return [_tariff_out(*entry) for entry in zip(tariffs, following, rows, strict=True)]


def _tariff_out(t: Tariff, following: Tariff | None, row: TariffVersionRow) -> schemas.TariffOut:
    ends = [t.effective_until] if t.effective_until is not None else []
    if following is not None:
        ends.append(following.effective_from)
    return schemas.TariffOut(
        version=t.version,
        name=t.name,
        timezone=t.timezone,
        effective_from=t.effective_from,
        effective_until=t.effective_until,
        in_force_until=min(ends) if ends else None,
        plans=[_plan_out(t, plan_id) for plan_id in t.plans],
        packages=[
            schemas.PackageOut(
                id=package_id,
                name=package.name,
                monthly_fee_fen=package.monthly_fee_fen,
                free_from=package.free_from.isoformat(),
                free_until=package.free_until.isoformat(),
            )
            for package_id, package in t.packages.items()
        ],
        free_numbers=list(t.free_numbers),
        digest=row.digest,
        published_at=row.published_at,
        published_by=row.published_by,
    )


def _plan_out(tariff: Tariff, plan_id: str) -> schemas.PlanOut:
    plan = tariff.plans[plan_id]
    ld = (
        schemas.LdFee(rate_fen=plan.ld_per_min, unit_s=60)
        if plan.ld_per_min is not None
        else schemas.LdFee(rate_fen=tariff.ld.domestic_per_6s, unit_s=6)
    )
    return schemas.PlanOut(
        id=plan_id,
        brand=plan.brand,
        fees=schemas.PlanFees(
            local_per_min=plan.local_per_min,
            ld=ld,
            roam_call_per_min=plan.roam_call_per_min,
            roam_called_per_min=plan.roam_called_per_min,
            ip12593_national_per_min=plan.ip12593_national_per_min,
        ),
    )


def publish_tariff(
    session: Session, *, source: str, by: str, now: datetime
) -> tuple[schemas.TariffOut, bool]:
    """POST /v1/tariffs: validate and publish one version; (it, whether it is new)."""
    try:
        outcome = published.publish(session, source=source, origin="tariff", by=by, now=now)
    except TariffError as exc:
        raise InvalidInput(str(exc), field="tariff") from exc
    for item in catalogue(session):
        if item.version == outcome.version:
            return item, outcome.new
    raise AssertionError("a published version is in the catalogue")


class LiveTariffs:
    """The published set a running server rates with, re-read when a version is published.

    `rater` is the current one; `on_change` gets each new one (in the polling thread).
    `fallback` (the tariff directory's files) is kept only while the database cannot be read
    at start, and as the rater when it holds the published set already (same stamp).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        numbering: NumberingPlan,
        *,
        poll_s: float,
        on_change: Callable[[Rater], None],
        fallback: Rater,
    ) -> None:
        self._sessions = sessions
        self._numbering = numbering
        self._poll_s = poll_s
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stamp: published.Stamp | None = None  # None: the published set not read yet
        self.rater = fallback
        try:
            self.check(notify=False)  # the app takes `rater` itself once built
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            # A server starts while its database is away (readiness says so); nothing can be
            # stored meanwhile, and the first poll that reaches it takes the published set.
            log.warning("callrate: the published tariffs cannot be read yet: %s", exc)

    def start(self) -> None:
        """Poll in a daemon thread until stop()."""
        self._thread = threading.Thread(target=self._poll, name="callrate-tariffs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the polling thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def check(self, *, notify: bool = True) -> bool:
        """Read the published set's stamp; when it changed, load the set and hand it on."""
        with self._sessions() as session:
            stamp = published.stamp(session)
            if stamp == self._stamp:
                return False
            if stamp == published.stamp_of(self.rater.book):
                rater = self.rater  # the fallback is the published set
            else:
                rater = published_rater(session, self._numbering)
        self._stamp = stamp
        if rater is self.rater:
            return False
        self.rater = rater
        if notify:
            self._on_change(rater)
        log.info("callrate: now rating with tariff versions %s", ", ".join(rater.book.versions))
        return True

    def _poll(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                self.check()
            except Exception:  # the database may be away for a while: look again later
                log.warning("callrate: could not read the published tariffs", exc_info=True)
