"""Cheap quotes stay correct: the registry cache sees writes of other workers, audit rows
are committed before the answer and grouped under concurrency, a dead pooled connection
costs no failed quote, a failed audit group answers 503."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from service.clock import utcnow
from service.config import Settings
from service.db.audit_batcher import AuditBatcher
from service.db.session import make_engine
from service.flows.registry_cache import MISSING, RegistryCache
from service.rating.scalar import Rater, SubscriberProfile
from tests.api.test_quote import AGENT
from tests.api.test_quote import REQUEST as PLANNED
from tests.conftest_db import (
    KEYS,
    KEYS_SPEC,
    TARIFFS,
    Api,
    fresh_database,
    running_api,
    through_stack,
)

REQUEST = {name: value for name, value in PLANNED.items() if name != "plan"}


def _settings(url: str, tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(
        database_url=url, data_dir=tmp_path, tariffs_dir=TARIFFS, api_keys=KEYS_SPEC, **overrides
    )


def _wait_listening(api: Api) -> None:
    cache = api.app.state.registry_cache
    if api.app.state.audit_batcher.engine.dialect.name != "postgresql":
        return
    api.portal.call(_until, lambda: cache.listening)


async def _until(condition: Any) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.005)


def test_registry_write_in_one_worker_reaches_the_cache_of_another(
    settings: Settings, rater: Rater
) -> None:
    with running_api(settings, rater) as writer, running_api(settings, rater) as reader:
        _wait_listening(reader)
        missing = reader.post("/v1/quote", role="agent", json=REQUEST)
        assert missing.json()["error"] == "plan.missing"  # unknown caller, no default plan
        cache = reader.app.state.registry_cache
        if cache.listening:  # PostgreSQL: the "not registered" answer is now cached
            assert cache.cached("13800138000") is None
        put = writer.put("/v1/subscribers/13800138000", role="admin", json={"plan": "gotone"})
        assert put.status_code == 200

        async def quote_until_rated() -> httpx.Response:
            async with asyncio.timeout(10):  # the notification's delivery, not a speed check
                while True:
                    response = await reader.client.post("/v1/quote", json=REQUEST, headers=AGENT)
                    if response.status_code == 200:
                        return response
                    await asyncio.sleep(0.01)

        rated = reader.portal.call(quote_until_rated)
        assert rated.json()["charge_fen"] > 0
        if cache.listening:
            assert cache.invalidations >= 1
            assert cache.cached("13800138000") is not None  # cached again, the new entry


def test_an_ingested_batch_reads_its_callers_through_the_cache(
    settings: Settings, rater: Rater
) -> None:
    """Ingest reads the registry through the worker's cache and sees another worker's write
    once it is notified, as quotes do."""
    record = {**REQUEST, "id": "c0"}
    with running_api(settings, rater) as writer, running_api(settings, rater) as reader:
        _wait_listening(reader)
        cache = reader.app.state.registry_cache
        first = reader.post("/v1/cdrs", role="switch", json=[record])
        assert first.json()["results"][0]["code"] == "plan.missing"
        if cache.listening:  # PostgreSQL: ingest's read kept "not registered"
            assert cache.cached(REQUEST["caller"]) is None
        put = writer.put(
            f"/v1/subscribers/{REQUEST['caller']}", role="admin", json={"plan": "gotone"}
        )
        assert put.status_code == 200

        async def ingest_until_rated() -> dict[str, Any]:
            async with asyncio.timeout(10):  # the notification's delivery, not a speed check
                for attempt in range(1, 10_000):
                    batch = [{**REQUEST, "id": f"c{attempt}"}]
                    response = await reader.client.post(
                        "/v1/cdrs",
                        json=batch,
                        headers={"Authorization": f"Bearer {KEYS['switch']}"},
                    )
                    result: dict[str, Any] = response.json()["results"][0]
                    if result["result"] == "rated":
                        return result
                    await asyncio.sleep(0.01)
            raise AssertionError("never rated")

        assert reader.portal.call(ingest_until_rated)["charge_fen"] > 0
        if cache.listening:
            assert cache.invalidations >= 1
            assert cache.cached(REQUEST["caller"]) is not None


def test_a_registry_read_that_an_invalidation_overtook_is_not_kept() -> None:
    """A batch's read that started before a registry write's notification is used by its
    batch but not kept: the next batch reads again."""
    cache = RegistryCache(create_engine("sqlite://"))
    cache._listening = True  # as once LISTEN is in place (PostgreSQL)
    profile = SubscriberProfile(plan="gotone", home_area=None, packages=())
    reads: list[list[str]] = []

    def read(msisdns: list[str]) -> dict[str, SubscriberProfile]:
        reads.append(msisdns)
        if len(reads) == 1:
            cache.invalidate()  # a write's notification arrives during the read
        return {msisdn: profile for msisdn in msisdns if msisdn.endswith("0")}

    numbers = ["13800138000", "13800138001"]
    assert cache.profiles(numbers, read) == {"13800138000": profile}
    assert cache.profiles(numbers, read) == {"13800138000": profile}
    assert cache.profiles(numbers, read) == {"13800138000": profile}
    assert reads == [numbers, numbers]  # the second read was kept, found and not found
    assert cache.cached("13800138001") is None


def test_each_answer_arrives_after_its_audit_row_is_committed(api: Api) -> None:
    engine = create_engine(api.settings.effective_database_url, poolclass=pool.NullPool)
    callers = [f"139{i:08d}" for i in range(30)]
    seen_at_answer: dict[str, int] = {}

    async def send(caller: str) -> None:
        body = {**REQUEST, "caller": caller, "plan": "gotone"}
        response = await api.client.post("/v1/quote", json=body, headers=AGENT)
        assert response.status_code == 200
        with engine.connect() as connection:  # another connection: only committed rows
            seen_at_answer[caller] = connection.execute(
                text("SELECT count(*) FROM audit_log WHERE subject = :s"), {"s": caller}
            ).scalar_one()

    async def send_all() -> None:
        await asyncio.gather(*(send(caller) for caller in callers))

    try:
        api.portal.call(send_all)
    finally:
        engine.dispose()
    assert seen_at_answer == dict.fromkeys(callers, 1)


def test_concurrent_quotes_share_audit_inserts(api: Api) -> None:
    batcher = api.app.state.audit_batcher
    quotes = 60

    async def send_all() -> list[int]:
        responses = await asyncio.gather(
            *(
                api.client.post(
                    "/v1/quote", json={**REQUEST, "plan": "gotone", "duration_s": i}, headers=AGENT
                )
                for i in range(1, quotes + 1)
            )
        )
        return [r.status_code for r in responses]

    before = batcher.statements, batcher.rows
    assert api.portal.call(send_all) == [200] * quotes
    statements, rows = batcher.statements - before[0], batcher.rows - before[1]
    assert rows == quotes  # every row written, once
    assert statements < quotes / 2  # in far fewer INSERT statements
    stored = api.get("/v1/audit", role="admin", params={"limit": 1000}).json()["items"]
    assert len(stored) == quotes
    assert {(r["action"], r["subject"]) for r in stored} == {("quote", "13800138000")}


def test_a_killed_connection_costs_no_failed_quote(tmp_path: Path, rater: Rater) -> None:
    with fresh_database("postgresql", tmp_path) as base_url:
        name = f"callrate-kill-{uuid.uuid4().hex[:12]}"
        url = make_url(base_url).update_query_dict({"application_name": name})
        settings = _settings(url.render_as_string(hide_password=False), tmp_path)
        admin = create_engine(base_url, poolclass=pool.NullPool)
        with running_api(settings, rater) as api:
            _wait_listening(api)
            body = {**REQUEST, "plan": "gotone"}
            assert api.post("/v1/quote", role="agent", json=body).status_code == 200
            with admin.connect() as connection:
                killed = connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :name"
                    ),
                    {"name": name},
                ).all()
            assert len(killed) >= 2  # the quote engine's connection and the listener's
            for _ in range(3):
                quoted = api.post("/v1/quote", role="agent", json=body)
                assert quoted.status_code == 200, quoted.text
            rows = api.get("/v1/audit", role="admin", params={"limit": 100}).json()["items"]
            assert len(rows) == 4
        admin.dispose()


def test_a_failed_audit_group_answers_each_of_its_quotes_503(tmp_path: Path, rater: Rater) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        settings = _settings(url, tmp_path, db_statement_timeout_s=0.3)
        holder = sqlite3.connect(make_url(url).database, isolation_level=None)
        with running_api(settings, rater) as api:
            holder.execute("BEGIN EXCLUSIVE")  # another writer holds the lock
            try:

                async def send_all() -> list[httpx.Response]:
                    return await asyncio.gather(
                        *(
                            api.client.post(
                                "/v1/quote", json={**REQUEST, "plan": "gotone"}, headers=AGENT
                            )
                            for _ in range(8)
                        )
                    )

                responses = api.portal.call(send_all)
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            for response in responses:
                assert response.status_code == 503
                assert response.json()["error"] == "database_unavailable"
                assert "charge_fen" not in response.text
            assert api.post("/v1/quote", role="agent", json=REQUEST | {"plan": "gotone"}).is_success


def test_sqlite_has_no_registry_cache(tmp_path: Path, rater: Rater) -> None:
    with (
        fresh_database("sqlite", tmp_path) as url,
        running_api(_settings(url, tmp_path), rater) as api,
    ):
        assert api.post("/v1/quote", role="agent", json=REQUEST).status_code == 422
        assert not api.app.state.registry_cache.listening
        assert api.app.state.registry_cache.cached("13800138000") is MISSING


def test_a_bad_row_fails_only_its_own_request(settings: Settings) -> None:
    engine = make_engine(settings.effective_database_url, audit_only=True, pre_ping=False)
    batcher = AuditBatcher(engine)
    good = {"at": utcnow(), "key_id": "k", "role": "agent", "action": "quote", "detail": None}
    bad = {**good, "at": "not a time", "subject": "bad"}

    async def write_all() -> list[BaseException | None]:
        rows = [{**good, "subject": f"s{i}"} for i in range(5)] + [bad]
        results = await asyncio.gather(*(batcher.write(r) for r in rows), return_exceptions=True)
        await batcher.close()
        return results

    try:
        results = asyncio.run(write_all())
    finally:
        engine.dispose()
    assert results[:5] == [None] * 5
    assert isinstance(results[5], Exception)
    check = create_engine(settings.effective_database_url, poolclass=pool.NullPool)
    with check.connect() as connection:
        subjects = connection.execute(text("SELECT subject FROM audit_log")).scalars().all()
    check.dispose()
    assert sorted(subjects) == [f"s{i}" for i in range(5)]


def test_the_quote_endpoint_answers_as_the_middleware_stack_would(
    settings: Settings, rater: Rater, capsys: pytest.CaptureFixture[str]
) -> None:
    """POST /v1/quote is served ahead of the middleware stack (QuoteEndpoint); the same
    requests sent through the stack (FastAPI's own __call__, as every other route is
    served) get the same answers, headers, log lines and audit rows."""
    small = settings.model_copy(update={"max_body_bytes": 1000})
    good = orjson.dumps(PLANNED)
    agent = {"Authorization": f"Bearer {KEYS['agent']}"}
    cases: list[tuple[dict[str, str], bytes]] = [
        (agent, good),
        ({"Authorization": f"Bearer {KEYS['admin']}"}, good),
        (agent, orjson.dumps({**PLANNED, "callee": "0218800ABC"})),  # 422, rejected
        (agent, orjson.dumps({**PLANNED, "plan": None, "caller": "13900000000"})),  # registry
        (agent, b"[1, 2]"),  # JSON, not an object: 422
        (agent, b"{not json"),  # 400
        (agent, b" " * 1001),  # 413
        ({}, good),  # 401
        ({"Authorization": "Bearer nobody"}, good),  # 401
        ({"Authorization": f"Bearer {KEYS['switch']}"}, good),  # 403
    ]
    with running_api(small, rater) as api:
        stack = through_stack(api.app)
        answers: dict[str, list[tuple[int, Any, list[tuple[str, str]]]]] = {}
        lines: dict[str, list[list[str]]] = {}
        for name, client in (("endpoint", api.client), ("stack", stack)):
            capsys.readouterr()
            answers[name] = []
            for headers, body in cases:
                answer = api.portal.call(
                    functools.partial(client.post, "/v1/quote", content=body, headers=headers)
                )
                assert re.fullmatch(r"[a-p]{32}", answer.headers.pop("x-request-id"))
                answers[name].append(
                    (answer.status_code, answer.json(), answer.headers.multi_items())
                )
            # time, request id, method, route, status, latency, role
            logged = capsys.readouterr().err.splitlines()
            lines[name] = [[line.split()[i] for i in (2, 3, 4, 6)] for line in logged]
        api.portal.call(stack.aclose)
        audit = api.get("/v1/audit", role="admin", params={"limit": 100}).json()["items"]
    assert answers["endpoint"] == answers["stack"]
    assert [status for status, _, _ in answers["stack"]] == [
        200, 200, 422, 422, 422, 400, 413, 401, 401, 403
    ]  # fmt: skip
    assert lines["endpoint"] == lines["stack"]
    assert len(lines["stack"]) == len(cases)
    rows = [(row["role"], row["subject"], row["detail"]) for row in audit]
    assert len(rows) == 2 * 5
    assert rows[:5] == rows[5:]


def test_a_quote_cancelled_during_its_insert_leaves_the_writer_usable(tmp_path: Path) -> None:
    """A row goes from its quote's own task when the writer is free: cancelling that task
    (the server stopping) cuts the INSERT off, and the writer serves the next row."""
    with fresh_database("postgresql", tmp_path) as url:
        engine = make_engine(url, audit_only=True, pre_ping=False)
        batcher = AuditBatcher(engine)
        row = {"at": utcnow(), "key_id": "k", "role": "agent", "action": "quote", "detail": None}
        locker = create_engine(url, poolclass=pool.NullPool)

        async def scenario() -> None:
            await batcher.write({**row, "subject": "first"})  # the connection is made
            with locker.connect() as connection:
                connection.execute(text("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE"))
                stuck = asyncio.create_task(batcher.write({**row, "subject": "cut"}))
                await asyncio.sleep(0.2)  # its INSERT waits for the lock
                stuck.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stuck
                connection.rollback()
            async with asyncio.timeout(10):
                await batcher.write({**row, "subject": "next"})
            await batcher.close()

        try:
            asyncio.run(scenario())
        finally:
            engine.dispose()
            locker.dispose()
