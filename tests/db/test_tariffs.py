"""Published tariff versions in the database (SPEC §7), SQLite and PostgreSQL: the rules of
publishing, and a server's live set."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from service.clock import utcnow
from service.db.session import make_engine, make_sessionmaker
from service.db.tariffs import publish, published_book, stamp, stamp_of
from service.errors import Conflict
from service.flows.tariffs import LiveTariffs
from service.rating.scalar import Rater
from service.rating.tariff import TariffError
from tests.conftest import TARIFFS

CORRECTION = (
    (TARIFFS / "cmcc-2010.toml")
    .read_text(encoding="utf-8")
    .replace('version = "cmcc-2010"', 'version = "cmcc-2010-fix"')
    .replace(
        "effective_from = 2010-01-01T00:00:00+08:00", "effective_from = 2010-06-01T00:00:00+08:00"
    )
    .replace(
        'free_numbers = ["110", "112", "119", "120", "122", "10086"]', 'free_numbers = ["110"]'
    )
)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url, pool_size=2)
    yield make_sessionmaker(engine)
    engine.dispose()


def _publish(sessions: sessionmaker[Session], source: str) -> bool:
    with sessions.begin() as session:
        return publish(session, source=source, origin="test", by="test", now=utcnow()).new


def test_a_migrated_database_holds_the_bundled_versions(
    sessions: sessionmaker[Session], rater: Rater
) -> None:
    with sessions() as session:
        assert stamp(session) == stamp_of(rater.book)
        assert published_book(session).versions == ("cmcc-2009", "cmcc-2010")


def test_publishing_rules(sessions: sessionmaker[Session]) -> None:
    assert _publish(sessions, CORRECTION) is True
    assert _publish(sessions, CORRECTION + "\n# a comment changes no content\n") is False
    with pytest.raises(Conflict, match=r'free_numbers: \["110"\] -> \["110", "112"\]'):
        _publish(sessions, CORRECTION.replace('["110"]', '["110", "112"]'))
    with pytest.raises(Conflict, match="start at the same instant"):
        _publish(sessions, CORRECTION.replace('"cmcc-2010-fix"', '"cmcc-2010-twin"'))
    with pytest.raises(TariffError, match="free_numbers"):
        _publish(sessions, CORRECTION.replace('["110"]', '["1100000"]'))
    with sessions() as session:  # nothing refused was kept
        book = published_book(session)
    assert book.versions == ("cmcc-2009", "cmcc-2010", "cmcc-2010-fix")
    assert book.by_version("cmcc-2010-fix").free_numbers == ("110",)


class AwayOnce:
    """Sessions of a database that cannot be reached the first time."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.calls = 0

    def __call__(self) -> Session:
        self.calls += 1
        if self.calls == 1:
            raise sa_exc.TimeoutError("no connection")
        return self.sessions()


def test_the_live_set_follows_publishing_also_after_a_start_without_the_database(
    sessions: sessionmaker[Session], rater: Rater
) -> None:
    changes: list[Rater] = []
    live = LiveTariffs(
        AwayOnce(sessions),  # type: ignore[arg-type]
        rater.numbering,
        poll_s=1.0,
        on_change=changes.append,
        fallback=rater,
    )
    assert live.rater is rater  # the tariff directory's files, until the database answers
    assert live.check() is False  # it answers: the same set, nothing to change
    assert live.rater is rater
    _publish(sessions, CORRECTION)
    assert live.check() is True
    assert live.rater.book.versions[-1] == "cmcc-2010-fix"
    assert changes == [live.rater]
    assert live.check() is False
