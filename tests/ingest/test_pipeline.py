"""Ingestion through the batch path stores, record for record, what the per-call path stores,
and the detail rebuilt on read is the per-call path's (SPEC §6.1, §6.2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from service.db import repository
from service.db.session import make_engine, make_sessionmaker
from service.flows.cdrs import DETAIL_GONE, read_cdr
from service.flows.registry import default_profile
from service.ingest import columns
from service.ingest.pipeline import COLUMN_WAY_FROM, ingest_batch, ingest_body, parse_batch
from service.ingest.records import record_result
from service.rating.batch import BatchRater
from service.rating.scalar import Rater, SubscriberProfile
from service.security import Actor
from service.tools.bench import generate_cdrs
from tests.conftest import column_record, golden_cases
from tests.rating.test_batch import decision_rows

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ADMIN = Actor(key_id="test", role="admin")
# In the registry: a China Mobile number with a package and a home area of its own, and a
# number of another network (registered, so it rates).
REGISTRY = {
    "13800138000": SubscriberProfile("mzone", home_area="021", packages=("ld_night",)),
    "18612345678": SubscriberProfile("gotone", home_area="0755"),
}
ODD_VALUES: list[Any] = [
    {"duration_s": 60.0},
    {"duration_s": 60.5},
    {"duration_s": True},
    {"duration_s": "60"},
    {"duration_s": 2**64},
    {"duration_s": -(2**63) - 1},
    {"caller": 13800138000},
    {"callee": ["02188001234"]},
    {"start": 1267408800},
    {"type": 1},
    {"type": "originating", "forward_kind": 5},  # ignored off a forwarded leg
    {"type": "forwarded", "forward_kind": 5},
    {"visited_area": 21},
    {"visited_area": None},  # refused: only an absent visited_area is "not roaming"
    {"visited_area": ""},
    {"type": None},  # refused: only an absent type is originating
    {"plan": {"name": "gotone"}},
    {"plan": False},
    {"packages": "ld_night"},
    {"packages": ["ld_night", 1]},
    {"packages": {"ld_night": True}},
    {"packages": [["ld_night"]]},
    {"id": "nul\u0000"},
    {"id": 7},
    {"id": None},
    {"id": ""},
    {"callee": "021\u00008800"},
    {"caller": "1380013800\u0000"},
    {"plan": "gotone\u0000"},
]


def _records(rater: Rater) -> list[bytes]:
    """NDJSON lines: the SPEC §9 combinations, generated traffic (with its invalid share),
    wrongly typed values, records that are not objects, and ids met twice in the batch."""
    base = {
        "caller": "13800138000",
        "callee": "02188001234",
        "start": "2010-03-01T23:30:00+08:00",
        "duration_s": 125,
    }
    rows = [*decision_rows(), *generate_cdrs(rater, 1500, seed=9).to_pylist()]
    values: list[Any] = [column_record(row) for row in rows]
    values += [{**base, **odd} for odd in ODD_VALUES]
    lines = [
        json.dumps({"id": f"r{index}", **value}, sort_keys=True).encode()  # any integer
        for index, value in enumerate(values)
    ]
    lines += [b"[1, 2]", b'"text"', b"17", b"null", b'{"id": "no-caller"}', b"{]"]
    same = orjson.dumps({**base, "id": "twice"})
    lines += [
        same,
        orjson.dumps({**base, "id": "twice", "duration_s": 7}),  # id.conflict in the batch
        b" " + same,  # the same content formatted otherwise: a duplicate
        orjson.dumps({**base, "id": "late", "caller": "x"}),  # rejected: does not claim
        orjson.dumps({**base, "id": "late"}),
    ]
    return lines


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the fresh database (SQLite and PostgreSQL)."""
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _register(session: Session) -> None:
    for msisdn, profile in REGISTRY.items():
        repository.put_subscriber(
            session,
            msisdn=msisdn,
            plan=profile.plan,
            home_area=profile.home_area,
            packages=orjson.dumps(profile.packages).decode(),
            updated_at=NOW,
        )


def _stored(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    queries = {
        "cdrs": "SELECT id, caller, callee, start_epoch_s, duration_s, leg, raw, received_at"
        " FROM cdrs",
        "ratings": "SELECT cdr_id, seq, tariff, charge_fen, call_class, dial, roaming, items,"
        " rules, explanation_zh, source, profile_plan, profile_home_area, profile_packages,"
        " profile_registered, rated_at FROM ratings",
        "suspense": "SELECT record_id, raw, raw_sha256, field, code, reason FROM suspense",
    }
    return {
        name: sorted(
            (
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                for row in session.execute(text(query))
            ),
            key=repr,
        )
        for name, query in queries.items()
    }


LANES = ("per-call", "batch", "scanned")


def _ingest(
    session: Session, rater: Rater, lane: str, body: bytes, default_plan: str | None
) -> list[dict[str, Any]]:
    """Ingest an NDJSON body one of three ways: every record through the per-call path, the
    batch path record by record, or as the service does (scanned records as columns)."""
    if lane == "scanned":
        answer = ingest_body(
            session,
            body=body,
            ndjson=True,
            max_records=100_000,
            rater=rater,
            batch=BatchRater(rater),
            default_plan=default_plan,
            now=NOW,
        )
        answer = orjson.loads(orjson.dumps(answer))  # its results are JSON text, partly
        results: list[dict[str, Any]] = answer["results"]
        assert answer["counts"] == {
            kind: sum(1 for r in results if r["result"] == kind)
            for kind in ("rated", "duplicate", "rejected")
        }
        return results
    records = parse_batch(body, ndjson=True, max_records=100_000)
    batch = BatchRater(rater) if lane == "batch" else None
    outcomes = ingest_batch(
        session, rater=rater, batch=batch, default_plan=default_plan, records=records, now=NOW
    )
    return [record_result(r.index, o) for r, o in zip(records, outcomes, strict=True)]


@pytest.mark.parametrize("default_plan", [None, "easyown"])
def test_every_lane_stores_what_the_per_call_path_stores(
    sessions: sessionmaker[Session],
    rater: Rater,
    default_plan: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    as_columns: list[int] = []  # rows the scanned lane stored as columns
    store = columns.store

    def counted(session: Session, part: columns.FastPart, **kwargs: Any) -> bool:
        as_columns.append(part.rows.num_rows)
        return store(session, part, **kwargs)

    monkeypatch.setattr(columns, "store", counted)
    body = b"\n".join(_records(rater))
    with sessions.begin() as session:
        _register(session)
    seen = []
    for lane in LANES:
        session = sessions()
        try:
            with session.begin():
                results = _ingest(session, rater, lane, body, default_plan)
                seen.append((results, _stored(session)))
                session.rollback()
        finally:
            session.close()
    (per_call, stored_per_call), *others = seen
    for batched, stored_batched in others:
        assert batched == per_call
        assert stored_batched == stored_per_call
    counts = {r: sum(1 for x in batched if x["result"] == r) for r in ("rated", "rejected")}
    assert counts["rated"] > 2_000
    assert counts["rejected"] > 500
    assert {x.get("code") for x in batched} >= {
        "duration_s.invalid",
        "caller.invalid",
        "packages.invalid",
        "caller.not_china_mobile",
        "id.conflict",
        "record.invalid",
        "record.not_json",
    }
    assert sum(as_columns) > 2_000  # most rated records went the column way
    ratings = stored_batched["ratings"]
    assert all(row[7] is None and row[9] is None for row in ratings)  # detail: rebuilt on read
    assert {row[11] for row in ratings} >= {"mzone", "gotone"}  # the profile used is kept


def test_the_rebuilt_detail_is_the_per_call_paths(
    sessions: sessionmaker[Session], rater: Rater
) -> None:
    lines = _records(rater)[::7]
    fallback = default_profile("easyown")
    with sessions.begin() as session:
        _register(session)
    with sessions.begin() as session:
        results = _ingest(session, rater, "scanned", b"\n".join(lines), "easyown")
    rated = [r["id"] for r in results if r["result"] == "rated"]
    assert len(rated) > 300
    with sessions.begin() as session:
        for cdr_id in rated:
            out = read_cdr(session, rater=rater, cdr_id=cdr_id, actor=ADMIN, now=NOW)
            record = out.record
            caller = out.caller
            expected = rater.rate_raw(
                record, subscriber=REGISTRY.get(caller, fallback), require_id=True
            )
            current = out.current
            assert current.charge_fen == expected.charge_fen
            assert [i.model_dump() for i in current.items] == [i.to_dict() for i in expected.items]
            assert current.rules == list(expected.rules)
            assert current.explanation_zh == expected.explanation_zh


def test_a_rating_its_tariff_no_longer_gives_keeps_its_charge_without_detail(
    sessions: sessionmaker[Session], rater: Rater
) -> None:
    line = _records(rater)[0]
    with sessions.begin() as session:
        (result,) = _ingest(session, rater, "scanned", line, "easyown")
        assert result["result"] == "rated"
        # as if the tariff version had been edited in place after the rating
        session.execute(text("UPDATE ratings SET charge_fen = charge_fen + 1"))
    with sessions.begin() as session:
        current = read_cdr(session, rater=rater, cdr_id="r0", actor=ADMIN, now=NOW).current
    assert current.charge_fen == result["charge_fen"] + 1
    assert current.items == []
    fen = current.charge_fen
    assert current.explanation_zh == f"{DETAIL_GONE}合计{fen // 100}.{fen % 100:02d}元"


def test_a_rating_stored_with_its_detail_is_read_as_stored(
    sessions: sessionmaker[Session], rater: Rater
) -> None:
    line = _records(rater)[0]
    item = {"code": "x", "units": 1, "unit_s": 60, "rate_fen": 9, "amount_fen": 9}
    with sessions.begin() as session:
        _ingest(session, rater, "per-call", line, "easyown")
        session.execute(  # as written before migration 0004: the detail, no profile
            text(
                "UPDATE ratings SET items = :items, rules = '[\"R1\"]', explanation_zh = 'old',"
                " profile_plan = NULL"
            ),
            {"items": orjson.dumps([item]).decode()},
        )
    with sessions.begin() as session:
        current = read_cdr(session, rater=rater, cdr_id="r0", actor=ADMIN, now=NOW).current
    assert [i.model_dump() for i in current.items] == [item]
    assert (current.rules, current.explanation_zh) == (["R1"], "old")


@pytest.mark.parametrize("lane", LANES[1:])
def test_ids_and_columns_line_up_across_many_batches(
    sessions: sessionmaker[Session], rater: Rater, lane: str
) -> None:
    """Batches that share ids with stored CDRs and each other: each id stored once, with
    the charge of its first rated record."""
    lines = _records(rater)[-700:]
    first: dict[str, int] = {}
    for start in range(0, len(lines), 100):  # each batch overlaps the one before by half
        chunk = lines[max(0, start - 100) : start + 100]
        with sessions() as session:  # as a request's: a stored id met runs the work again
            results = _ingest(session, rater, lane, b"\n".join(chunk), "easyown")
            session.commit()
        for r in results:
            if r["result"] == "rated":
                assert r["id"] not in first
                first[r["id"]] = r["charge_fen"]
            elif r["result"] == "duplicate":
                assert first[r["id"]] == r["charge_fen"]
    with sessions.begin() as session:
        assert repository.current_charges(session, cdr_ids=list(first)) == first


@pytest.mark.parametrize("lane", LANES)
def test_every_golden_case_ingests_as_expected(
    sessions: sessionmaker[Session], rater: Rater, lane: str
) -> None:
    cases = golden_cases()
    body = b"\n".join(
        json.dumps({**case["request"], "id": f"g{index}"}).encode()
        for index, case in enumerate(cases)
    )
    with sessions.begin() as session:
        results = _ingest(session, rater, lane, body, None)
    with sessions.begin() as session:
        for case, result in zip(cases, results, strict=True):
            expect = case["expect"]
            if expect.get("rejected"):
                assert result["result"] == "rejected", case["name"]
                continue
            assert result["result"] == "rated", case["name"]
            current = read_cdr(
                session, rater=rater, cdr_id=result["id"], actor=ADMIN, now=NOW
            ).current
            got = current.model_dump()
            assert {key: got.get(key) for key in expect} == expect, case["name"]


def test_a_batch_whose_scanned_records_all_fail_answers_as_the_per_call_path(
    sessions: sessionmaker[Session], rater: Rater
) -> None:
    """Every scanned record rejected (no plan for an unregistered caller): nothing is left
    for the column way, and the answers and suspense rows are the per-call path's."""
    body = b"\n".join(
        orjson.dumps(
            {
                "id": f"u{index}",
                "caller": "13900000000",
                "callee": "02188001234",
                "start": "2010-03-01T10:00:00+08:00",
                "duration_s": 60,
            }
        )
        for index in range(COLUMN_WAY_FROM)  # fewer would go the per-call path
    )
    seen = []
    for lane in ("per-call", "scanned"):
        session = sessions()
        try:
            with session.begin():
                seen.append((_ingest(session, rater, lane, body, None), _stored(session)))
                session.rollback()
        finally:
            session.close()
    assert seen[0] == seen[1]
    assert {r["code"] for r in seen[0][0]} == {"plan.missing"}
    assert len(seen[0][1]["suspense"]) == COLUMN_WAY_FROM


@pytest.mark.parametrize(
    ("size", "as_columns_expected"),
    [(1, False), (COLUMN_WAY_FROM - 1, False), (COLUMN_WAY_FROM, True)],
)
def test_a_small_batch_goes_the_per_call_path(
    sessions: sessionmaker[Session],
    rater: Rater,
    size: int,
    as_columns_expected: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Below COLUMN_WAY_FROM records the column way's fixed cost outweighs what it saves:
    such a batch is rated and stored record by record, with the same answers and rows."""
    as_columns: list[int] = []
    store = columns.store

    def counted(session: Session, part: columns.FastPart, **kwargs: Any) -> bool:
        as_columns.append(part.rows.num_rows)
        return store(session, part, **kwargs)

    monkeypatch.setattr(columns, "store", counted)
    body = b"\n".join(_records(rater)[200 : 200 + size])
    seen = []
    for lane in ("per-call", "scanned"):
        session = sessions()
        try:
            with session.begin():
                seen.append((_ingest(session, rater, lane, body, "easyown"), _stored(session)))
                session.rollback()
        finally:
            session.close()
    assert seen[0] == seen[1]
    assert (sum(as_columns) > 0) == as_columns_expected
