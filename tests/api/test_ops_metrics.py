"""The metrics ops alert on: recycle counting, suspense by reason, re-rating, database
availability, build info; and no `_created` series."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError, OperationalError

from service.config import Settings
from service.db.session import make_engine, make_sessionmaker
from service.jobs import rerate
from service.ops.metrics import SUSPENSE_REASONS, Metrics
from service.rating.scalar import Rater
from service.security import Actor
from tests.api.test_cdrs import cdr
from tests.conftest import TARIFFS
from tests.conftest_db import KEYS_SPEC, Api, fresh_database, running_api

Labels = frozenset[tuple[str, str]]


def samples(text: str) -> dict[tuple[str, Labels], float]:
    """Every sample of a /metrics answer by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    """One sample's value; KeyError when the series is absent."""
    return samples(text)[(name, frozenset(labels.items()))]


def scrape(api: Api) -> str:
    response = api.get("/metrics", role="ops")
    assert response.status_code == 200
    return response.text


def unregistered(record_id: str) -> dict[str, object]:
    """A record that is rejected with plan.missing until its caller is registered."""
    record = cdr(record_id)
    del record["plan"]
    return record


def test_recycle_counts_the_rated_record_as_it_counts_its_charge(api: Api) -> None:
    api.post("/v1/cdrs", role="switch", json=[unregistered("u1"), cdr("x", callee="x")])
    before = scrape(api)
    assert value(before, "callrate_cdrs_total", result="rejected") == 2
    assert value(before, "callrate_cdrs_total", result="rated") == 0
    assert value(before, "callrate_suspense_records", code="plan.missing") == 1
    assert value(before, "callrate_suspense_records", code="callee.invalid_characters") == 1

    assert api.post("/v1/suspense/recycle", role="admin", json={}).status_code == 200
    again = scrape(api)  # still rejected: not counted a second time
    assert value(again, "callrate_cdrs_total", result="rejected") == 2

    api.put("/v1/subscribers/13800138000", role="admin", json={"plan": "gotone"})
    recycled = api.post("/v1/suspense/recycle", role="admin", json={}).json()
    assert recycled["counts"] == {"rated": 1, "duplicate": 0, "rejected": 1}
    after = scrape(api)
    assert value(after, "callrate_cdrs_total", result="rated") == 1
    assert value(after, "callrate_cdrs_total", result="rejected") == 2
    assert value(after, "callrate_charged_fen_total", call_class="domestic_ld") == 126
    assert value(after, "callrate_suspense_records", code="plan.missing") == 0
    assert value(after, "callrate_suspense_records", code="callee.invalid_characters") == 1


def test_no_created_series_and_bounded_reason_labels(api: Api) -> None:
    text = scrape(api)
    assert "_created" not in text
    codes = {
        dict(labels)["code"]
        for (name, labels) in samples(text)
        if name == "callrate_suspense_records"
    }
    assert codes == set(SUSPENSE_REASONS)


def test_unknown_stored_reason_counts_as_other() -> None:
    metrics = Metrics()
    metrics.set_suspense({"plan.missing": 2, "code.from_an_old_version": 3})
    text = metrics.render().decode()
    assert value(text, "callrate_suspense_records", code="plan.missing") == 2
    assert value(text, "callrate_suspense_records", code="other") == 3
    assert "code.from_an_old_version" not in text


def test_build_info_names_the_tariff_versions(api: Api) -> None:
    text = scrape(api)
    info = value(text, "callrate_build_info", version="0.1.0", tariffs="cmcc-2009,cmcc-2010")
    assert info == 1


def test_readyz_and_scrape_mark_the_database_up(api: Api) -> None:
    assert api.get("/readyz").status_code == 200
    assert value(scrape(api), "callrate_database_up") == 1


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens once the probe is closed


@pytest.fixture
def unreachable_api(rater: Rater, tmp_path: Path) -> Iterator[Api]:
    """The app over a PostgreSQL server that is not there (keys from settings, so it starts)."""
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/none?connect_timeout=2"
    settings = Settings(
        database_url=url, data_dir=tmp_path, tariffs_dir=TARIFFS, api_keys=KEYS_SPEC
    )
    with running_api(settings, rater) as client:
        yield client


def test_unreachable_database_is_down_and_metrics_still_answer(unreachable_api: Api) -> None:
    assert unreachable_api.get("/readyz").status_code == 503
    text = scrape(unreachable_api)  # answers without the database
    assert value(text, "callrate_database_up") == 0
    assert value(text, "callrate_build_info", version="0.1.0", tariffs="cmcc-2009,cmcc-2010")


def test_a_connection_error_on_a_watched_engine_marks_the_database_down(tmp_path: Path) -> None:
    metrics = Metrics()
    metrics.database_up.set(1)
    engine = create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite3'}")
    metrics.watch_database(engine)
    with pytest.raises(OperationalError):
        engine.connect()
    engine.dispose()
    assert value(metrics.render().decode(), "callrate_database_up") == 0


def test_rerate_jobs_count_progress_and_outcome(
    api: Api, settings: Settings, rater: Rater, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.post("/v1/cdrs", role="switch", json=[cdr("a"), cdr("b"), cdr("c")])
    metrics = Metrics()
    engine = make_engine(settings.effective_database_url, pool_size=2)
    sessions = make_sessionmaker(engine)

    def start() -> str:
        with sessions.begin() as session:
            job = rerate.start_job(
                session,
                window_from=datetime.fromisoformat("2010-01-01T00:00:00+08:00"),
                window_to=datetime.fromisoformat("2011-01-01T00:00:00+08:00"),
                dry_run=True,
                actor=Actor(key_id="test", role="admin"),
            )
            return job.id

    rerate.run_job(sessions, job_id=start(), rater=rater, default_plan=None, metrics=metrics)
    text = metrics.render().decode()
    assert value(text, "callrate_rerate_jobs_total", outcome="done") == 1
    assert value(text, "callrate_rerate_jobs_total", outcome="failed") == 0
    assert value(text, "callrate_rerate_records_total", result="processed") == 3
    assert value(text, "callrate_rerate_records_total", result="changed") == 0
    assert value(text, "callrate_rerate_running_jobs") == 0
    assert value(text, "callrate_rerate_remaining_records") == 0

    real_chunk = rerate.rerate_chunk
    calls = {"n": 0}
    seen: list[tuple[float, float]] = []

    def fail_on_second_chunk(*args: object, **kwargs: object) -> rerate.ChunkResult:
        calls["n"] += 1
        running = metrics.render().decode()
        seen.append(
            (
                value(running, "callrate_rerate_running_jobs"),
                value(running, "callrate_rerate_remaining_records"),
            )
        )
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real_chunk(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rerate, "rerate_chunk", fail_on_second_chunk)
    with pytest.raises(RuntimeError):
        rerate.run_job(
            sessions, job_id=start(), rater=rater, default_plan=None, chunk_rows=2, metrics=metrics
        )
    engine.dispose()
    assert seen == [(1, 3), (1, 1)]  # running, and the records left before each chunk
    text = metrics.render().decode()
    assert value(text, "callrate_rerate_jobs_total", outcome="failed") == 1
    assert value(text, "callrate_rerate_records_total", result="processed") == 5
    assert value(text, "callrate_rerate_running_jobs") == 0
    assert value(text, "callrate_rerate_remaining_records") == 0


def test_rerate_through_the_api_reaches_the_scrape(api: Api) -> None:
    api.post("/v1/cdrs", role="switch", json=[cdr("a")])
    window = {"from": "2010-01-01T00:00:00+08:00", "to": "2011-01-01T00:00:00+08:00"}
    assert api.post("/v1/rerate", role="admin", json=window).status_code == 202
    text = scrape(api)
    assert value(text, "callrate_rerate_jobs_total", outcome="done") == 1
    assert value(text, "callrate_rerate_records_total", result="processed") == 1


def test_a_constraint_error_leaves_the_database_up(tmp_path: Path) -> None:
    metrics = Metrics()
    metrics.database_up.set(1)
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    metrics.watch_database(engine)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
    engine.dispose()
    assert value(metrics.render().decode(), "callrate_database_up") == 1


def test_a_statement_timeout_marks_the_database_down(tmp_path: Path) -> None:
    metrics = Metrics()
    metrics.database_up.set(1)
    with fresh_database("postgresql", tmp_path) as url:
        engine = create_engine(url)
        metrics.watch_database(engine)
        with engine.connect() as connection:
            connection.execute(text("SET statement_timeout = 50"))
            with pytest.raises(OperationalError):
                connection.execute(text("SELECT pg_sleep(2)"))
        engine.dispose()
    assert value(metrics.render().decode(), "callrate_database_up") == 0


def test_the_kernels_gauge_says_when_ingestion_leaves_the_per_call_path(
    settings: Settings, rater: Rater
) -> None:
    with running_api(settings, rater) as api:  # waits for the kernels
        assert value(scrape(api), "callrate_batch_kernels_ready") == 1
