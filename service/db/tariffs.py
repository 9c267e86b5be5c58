"""Published tariff versions (SPEC §7): publishing one, and the set every process rates with.

A version is published once and never changed or removed. Publishing a version id again
with the same content (the same digest: comments and layout do not count) changes nothing;
with other content it is refused with the keys that differ. A correction is a new version
with a later effective_from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import TariffVersionRow
from service.db.repository import Executor
from service.errors import Conflict
from service.rating.tariff import (
    Tariff,
    TariffBook,
    TariffError,
    load_tariff,
    make_book,
    parse_tariff,
    tariff_differences,
    tariff_digest,
)

Stamp = tuple[tuple[str, str], ...]  # (version, digest) of every published version


@dataclass(frozen=True)
class Published:
    """A publish request's outcome: the version, its digest and start, whether it was new."""

    version: str
    digest: str
    effective_from: datetime
    new: bool

    @classmethod
    def of(cls, row: TariffVersionRow, *, new: bool) -> Published:
        """The outcome for a stored row (its values: they outlive the session)."""
        return cls(row.version, row.digest, row.effective_from, new)


def published_rows(session: Session) -> list[TariffVersionRow]:
    """Every published version, oldest effective_from first."""
    query = select(TariffVersionRow).order_by(TariffVersionRow.effective_from)
    return list(session.scalars(query))


def stamp(db: Executor) -> Stamp:
    """What identifies the published set: a change means a version was published."""
    rows = db.execute(
        select(TariffVersionRow.version, TariffVersionRow.digest).order_by(TariffVersionRow.version)
    )
    return tuple((version, digest) for version, digest in rows)


def stamp_of(book: TariffBook) -> Stamp:
    """The stamp a book of tariffs would have published."""
    return tuple(sorted((t.version, tariff_digest(t)) for t in book.tariffs))


def published_book(session: Session) -> TariffBook:
    """The published versions as a book; TariffError when none is published."""
    rows = published_rows(session)
    if not rows:
        raise TariffError(
            "no tariff version is published in the database: run `callrate db upgrade`"
        )
    return make_book((parse_tariff(r.source, f"published {r.version}") for r in rows), "published")


def publish(session: Session, *, source: str, origin: str, by: str, now: datetime) -> Published:
    """Validate a tariff's TOML text and publish it (TariffError when invalid, Conflict when
    its version id is published with other content or it cannot join the published set)."""
    tariff = parse_tariff(source, origin)
    digest = tariff_digest(tariff)
    existing = session.get(TariffVersionRow, tariff.version, with_for_update=True)
    if existing is not None:
        stored = parse_tariff(existing.source, f"published {existing.version}")
        if tariff_digest(stored) == digest:
            return Published.of(existing, new=False)
        differences = "; ".join(tariff_differences(stored, tariff))
        raise Conflict(
            f"{tariff.version} is published with other content and a published version never "
            f"changes (publish a correction as a new version): {differences}",
            field="version",
        )
    others = [parse_tariff(r.source, f"published {r.version}") for r in published_rows(session)]
    try:
        make_book([*others, tariff], origin)
    except TariffError as exc:
        raise Conflict(str(exc), field="effective_from") from exc
    row = TariffVersionRow(
        version=tariff.version,
        digest=digest,
        source=source,
        effective_from=tariff.effective_from,
        effective_until=tariff.effective_until,
        published_at=now,
        published_by=by,
    )
    session.add(row)
    session.flush()
    return Published.of(row, new=True)


def publish_files(
    session: Session, *, paths: Sequence[Path], by: str, now: datetime
) -> list[Published]:
    """Publish tariff files (each validated, its name the version id) in one transaction."""
    loaded: list[tuple[Path, Tariff]] = [(path, load_tariff(path)) for path in paths]
    return [
        publish(session, source=path.read_text(encoding="utf-8"), origin=str(path), by=by, now=now)
        for path, _ in sorted(loaded, key=lambda pair: pair[1].from_epoch_s)
    ]


def write_published(session: Session, directory: Path) -> None:
    """Write each published version's TOML as `<version>.toml` into `directory` (for a
    process that loads tariffs from files: Spark's executors)."""
    for row in published_rows(session):
        (directory / f"{row.version}.toml").write_text(row.source, encoding="utf-8")
