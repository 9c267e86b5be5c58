"""Repository queries on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from service.db import repository
from service.db.session import make_engine, make_sessionmaker
from service.ingest.records import retrying

NOW = datetime(2010, 3, 1, 2, 0, tzinfo=UTC)
SQLITE_FK = "FOREIGN KEY constraint failed"


def _cdr(cdr_id: str) -> tuple[object, ...]:  # repository.CDR_COLUMNS
    return (cdr_id, "13800138000", "02188001234", 1_267_408_800, 60, "originating", "{}", NOW)


def _rating(cdr_id: str, seq: int, charge_fen: int) -> tuple[object, ...]:
    profile = ("gotone", None, "[]", True)
    return (
        cdr_id,
        seq,
        "cmcc-2010",
        charge_fen,
        "domestic_ld",
        "direct",
        "home",
        NOW,
        "ingest",
        *profile,
    )


def test_current_charges_are_those_of_the_highest_seq(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1)
    sessions = make_sessionmaker(engine)
    try:
        with sessions.begin() as session:
            inserted = repository.insert_cdrs_new(session, rows=[_cdr("a"), _cdr("b"), _cdr("c")])
            assert inserted == {"a", "b", "c"}
            repository.insert_ratings(
                session,
                rows=[
                    _rating("a", 1, 70),
                    _rating("b", 1, 30),
                    _rating("b", 3, 10),  # seqs need not be dense
                    _rating("b", 2, 20),
                    _rating("c", 1, 0),
                ],
            )
        with sessions() as session:
            charges = repository.current_charges(session, cdr_ids=["b", "missing", "a", "c", "a"])
        assert charges == {"a": 70, "b": 10, "c": 0}
    finally:
        engine.dispose()


def test_insert_cdrs_new_skips_ids_already_stored(database_url: str) -> None:
    """A concurrent batch stored some ids first: the rest still go in, once each. On
    PostgreSQL the first conflict loses the transaction (no savepoint round trips): the
    caller's work runs again, and from then on the session skips stored ids."""
    engine = make_engine(database_url, pool_size=1)
    sessions = make_sessionmaker(engine)
    postgres = engine.dialect.name == "postgresql"
    try:
        with sessions.begin() as session:
            assert repository.insert_cdrs_new(session, rows=[_cdr("a")]) == {"a"}
        with sessions() as session:
            attempts: list[int] = []

            def work() -> tuple[set[str], set[str]]:
                attempts.append(1)
                inserted = repository.insert_cdrs_new(
                    session, rows=[_cdr("b"), _cdr("a"), _cdr("c")]
                )
                # the same transaction goes on after the conflict
                return inserted, repository.insert_cdrs_new(session, rows=[_cdr("d")])

            assert retrying(session, work) == ({"b", "c"}, {"d"})
            assert len(attempts) == (2 if postgres else 1)
            session.commit()
        with sessions() as session:
            assert repository.count_cdrs(session) == 4
    finally:
        engine.dispose()


def test_a_rating_needs_its_cdr_stored_and_a_rated_cdr_stays(database_url: str) -> None:
    """PostgreSQL's triggers that replace the foreign key (migration 0005), and SQLite's
    foreign key: a statement inserting a rating of an unstored CDR fails whole; a rated CDR
    cannot be deleted or change its id."""
    engine = make_engine(database_url, pool_size=1)
    sessions = make_sessionmaker(engine)
    refused = (psycopg.errors.ForeignKeyViolation, sqlite3.IntegrityError, IntegrityError)
    try:
        with sessions.begin() as session:
            repository.insert_cdrs_new(session, rows=[_cdr("a"), _cdr("b")])
            repository.insert_ratings(session, rows=[_rating("a", 1, 70)])
        with (
            pytest.raises(refused, match=rf"not stored|{SQLITE_FK}"),
            sessions.begin() as session,
        ):
            repository.insert_ratings(session, rows=[_rating("b", 1, 5), _rating("x", 1, 5)])
        for statement in (
            "DELETE FROM cdrs WHERE id = 'a'",
            "UPDATE cdrs SET id = 'a2' WHERE id = 'a'",
            "UPDATE ratings SET cdr_id = 'x'",
        ):
            with (
                pytest.raises(refused, match=rf"not stored|cannot be deleted|{SQLITE_FK}"),
                sessions.begin() as session,
            ):
                session.execute(text(statement))
        with sessions.begin() as session:  # what a foreign key allows, the triggers allow
            session.execute(text("UPDATE cdrs SET duration_s = 61 WHERE id = 'a'"))
            session.execute(text("UPDATE ratings SET charge_fen = 71 WHERE cdr_id = 'a'"))
            session.execute(text("DELETE FROM cdrs WHERE id = 'b'"))
        with sessions() as session:
            assert repository.current_charges(session, cdr_ids=["a", "b"]) == {"a": 71}
            assert repository.count_cdrs(session) == 1
    finally:
        engine.dispose()
