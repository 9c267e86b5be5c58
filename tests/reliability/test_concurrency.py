"""8 switches at once against a real `callrate serve` (SQLite and PostgreSQL): overlapping id
sets in shuffled and reversed orders, the same rejected records in every batch. SPEC §6.2:
never a 5xx (a deadlock is retried inside the service), every id rated once and stored once,
every rejected record waiting once in suspense."""

from __future__ import annotations

import random
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import OperationalError

from service.db import repository
from service.db.models import Cdr, RatingRow, SuspenseRow
from tests.api.test_cdrs import cdr, table_counts
from tests.api.test_served import auth, served
from tests.conftest_db import Api

CLIENTS = 8
BATCHES_PER_CLIENT = 3
POOL = 1_500  # distinct valid ids
BATCH_SIZE = 1_000  # valid records per batch, drawn from the pool
REJECTED = 20  # records no tariff rates (caller unknown, no plan), in every batch


def valid(number: int) -> bytes:
    return orjson.dumps(cdr(f"k{number:05d}", duration_s=1 + number % 300))


def rejected(number: int) -> bytes:
    record = cdr(f"r{number:03d}")
    del record["plan"]
    return orjson.dumps(record)


def batches(seed: int) -> tuple[list[bytes], set[str]]:
    """A client's batches (overlapping samples of the pool in shuffled or reversed order) and
    the valid ids they hold."""
    rng = random.Random(seed)
    bodies = []
    sent: set[str] = set()
    for number in range(BATCHES_PER_CLIENT):
        ids = sorted(rng.sample(range(POOL), BATCH_SIZE))
        sent.update(f"k{i:05d}" for i in ids)
        if (seed + number) % 3 == 0:
            ids.reverse()
        else:
            rng.shuffle(ids)
        records = [valid(i) for i in ids] + [rejected(i) for i in range(REJECTED)]
        rng.shuffle(records)
        if number % 2:
            bodies.append(b"[" + b",".join(records) + b"]")
        else:
            bodies.append(b"\n".join(records) + b"\n")
    return bodies, sent


def test_concurrent_overlapping_batches(database_url: str, tmp_path: Path) -> None:
    plans = [batches(seed) for seed in range(CLIENTS)]
    statuses: Counter[int] = Counter()
    results: Counter[tuple[str, str]] = Counter()  # (id, result)
    errors: list[BaseException] = []
    start = threading.Barrier(CLIENTS)

    with served(database_url, tmp_path, workers=2) as (_, base):

        def client(seed: int) -> None:
            try:
                with httpx.Client(base_url=base, timeout=120.0) as http:
                    start.wait()
                    for body in plans[seed][0]:
                        ndjson = not body.startswith(b"[")
                        kind = "application/x-ndjson" if ndjson else "application/json"
                        response = http.post(
                            "/v1/cdrs",
                            content=body,
                            headers={**auth("switch"), "Content-Type": kind},
                        )
                        statuses[response.status_code] += 1
                        if response.status_code == 200:
                            for result in response.json()["results"]:
                                results[(result["id"], result["result"])] += 1
            except BaseException as exc:  # reported below, with the statuses seen
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(seed,)) for seed in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert errors == []
    assert statuses == {200: CLIENTS * BATCHES_PER_CLIENT}, statuses
    sent = set().union(*(ids for _, ids in plans))
    rated = {record_id: n for (record_id, result), n in results.items() if result == "rated"}
    assert set(rated) == sent, "every id sent is rated by exactly one batch"
    assert max(rated.values()) == 1, "an id was rated twice"
    counts = _database_counts(database_url)
    assert counts == {
        "cdrs": len(sent),
        "distinct_ids": len(sent),
        "ratings": len(sent),
        "open_suspense": REJECTED,
    }
    assert all(
        results[(f"r{i:03d}", "rejected")] == CLIENTS * BATCHES_PER_CLIENT for i in range(REJECTED)
    )


def _database_counts(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    with engine.connect() as connection:
        counts = {
            "cdrs": connection.scalar(select(func.count()).select_from(Cdr)),
            "distinct_ids": connection.scalar(select(func.count(func.distinct(Cdr.id)))),
            "ratings": connection.scalar(select(func.count()).select_from(RatingRow)),
            "open_suspense": connection.scalar(
                select(func.count())
                .select_from(SuspenseRow)
                .where(SuspenseRow.resolved_at.is_(None))
            ),
        }
    engine.dispose()
    return counts


class DatabaseConflict(Exception):
    """What psycopg raises for a deadlock (SQLSTATE 40P01) or serialization failure (40001)."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "wrapped"), [("40P01", True), ("40001", True), ("40P01", False)]
)
def test_a_conflict_the_database_reports_is_retried_inside_the_service(
    api: Api, monkeypatch: pytest.MonkeyPatch, sqlstate: str, wrapped: bool
) -> None:
    real_insert = repository.insert_cdrs_new
    calls: list[int] = []

    def conflicting_once(session: Any, *, rows: Any) -> set[str]:
        calls.append(len(rows))
        inserted = real_insert(session, rows=rows)  # written, then taken back by the rollback
        if len(calls) == 1:  # COPY on the driver's connection raises psycopg's error itself
            conflict = DatabaseConflict(sqlstate)
            raise OperationalError("INSERT", {}, conflict) if wrapped else conflict
        return inserted

    monkeypatch.setattr(repository, "insert_cdrs_new", conflicting_once)
    batch = [cdr("d1"), cdr("d2"), {**cdr("d3"), "duration_s": -1}]
    response = api.post("/v1/cdrs", role="switch", json=batch)
    assert response.status_code == 200
    assert response.json()["counts"] == {"rated": 2, "duplicate": 0, "rejected": 1}
    assert calls == [2, 2]
    assert table_counts(api) == (2, 2, 1)


def test_other_database_errors_are_not_retried(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def failing(session: Any, *, rows: Any) -> set[str]:
        calls.append(len(rows))
        raise OperationalError("INSERT INTO cdrs", {}, DatabaseConflict("23505"))

    monkeypatch.setattr(repository, "insert_cdrs_new", failing)
    response = api.post("/v1/cdrs", role="switch", json=[cdr("e1")])
    assert response.status_code >= 500
    assert calls == [1]
    assert table_counts(api) == (0, 0, 0)
