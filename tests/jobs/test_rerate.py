"""Bulk re-rating (SPEC §6.3) on SQLite and PostgreSQL: a 2009 and a 2010 tariff correction
change exactly the expected records, history is kept, a second run and a resumed run are safe."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from service.cli import main
from service.config import Settings
from service.db.models import RatingRow, RerateJob
from service.db.session import make_engine, make_sessionmaker
from service.flows.cdrs import DETAIL_GONE
from service.jobs import rerate
from service.rating.scalar import Rater
from service.security import Actor
from tests.conftest import TARIFFS, write_correction
from tests.conftest_db import Api

WINDOW = {"from": "2009-01-01T00:00:00+08:00", "to": "2011-01-01T00:00:00+08:00"}


def cdr(record_id: str, start: str, callee: str, duration_s: int) -> dict[str, Any]:
    """A gotone call from Beijing at home."""
    return {
        "id": record_id,
        "caller": "13800138000",
        "callee": callee,
        "start": start,
        "duration_s": duration_s,
        "plan": "gotone",
    }


CDRS = [
    cdr("a-2009-nov", "2009-11-15T10:00:00+08:00", "02188001234", 125),  # 267, before the fix
    cdr("b-2009-dec", "2009-12-15T10:00:00+08:00", "02188001234", 125),  # 267 -> 246
    cdr("c-2010-mar", "2010-03-01T10:00:00+08:00", "02188001234", 125),  # 126, before the fix
    cdr("d-2010-jul", "2010-07-01T10:00:00+08:00", "02188001234", 125),  # 126 -> 105
    cdr("e-2010-jul-local", "2010-07-01T11:00:00+08:00", "88001234", 61),  # 80, version only
]


@pytest.fixture(scope="module")
def corrected_tariffs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled tariffs plus two corrections: LD 6 fen/6 s from 2009-12-01 (to the
    2009 version's end), and LD 5 fen/6 s from 2010-06-01."""
    directory = tmp_path_factory.mktemp("tariffs")
    for path in TARIFFS.glob("*.toml"):
        shutil.copy(path, directory / path.name)
    shutil.copytree(TARIFFS / "numbering", directory / "numbering")
    write_correction(
        directory,
        "cmcc-2009",
        "cmcc-2009-fix",
        starts="2009-12-01T00:00:00+08:00",
        domestic_per_6s=6,
    )
    write_correction(
        directory,
        "cmcc-2010",
        "cmcc-2010-fix",
        starts="2010-06-01T00:00:00+08:00",
        domestic_per_6s=5,
    )
    return directory


CORRECTIONS = ("cmcc-2009-fix.toml", "cmcc-2010-fix.toml")


def publish_corrections(api: Api, corrected_tariffs: Path) -> Rater:
    """The two corrections published; the rater the server now rates with."""
    api.publish(*(corrected_tariffs / name for name in CORRECTIONS))
    rater: Rater = api.app.state.rater
    return rater


def _ingest(api: Api) -> None:
    response = api.post("/v1/cdrs", role="switch", json=CDRS)
    assert response.status_code == 200, response.text
    assert [r["charge_fen"] for r in response.json()["results"]] == [267, 267, 126, 126, 80]


def _rating_count(settings: Settings) -> int:
    engine = create_engine(settings.effective_database_url)
    with engine.connect() as connection:
        count = int(connection.scalar(select(func.count()).select_from(RatingRow)) or 0)
    engine.dispose()
    return count


def _job(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    started = api.post("/v1/rerate", role="admin", json=body)
    assert started.status_code == 202, started.text
    # The job runs as a background task; by the time the client has the answer it is done.
    job = api.get(f"/v1/rerate/{started.json()['id']}", role="admin")
    assert job.status_code == 200
    result: dict[str, Any] = job.json()
    return result


def test_correction_changes_exactly_the_expected_records(
    api: Api, settings: Settings, corrected_tariffs: Path
) -> None:
    _ingest(api)
    publish_corrections(api, corrected_tariffs)
    dry = _job(api, {**WINDOW, "dry_run": True})
    assert (dry["status"], dry["changed"], dry["delta_fen"]) == ("done", 3, -42)
    assert all(dry[k].endswith(("Z", "+00:00")) for k in ("created_at", "finished_at"))
    assert _rating_count(settings) == 5  # a dry run writes no rating

    job = _job(api, WINDOW)
    assert job["status"] == "done"
    assert (job["total"], job["processed"], job["changed"], job["rejected"]) == (5, 5, 3, 0)
    assert job["delta_fen"] == (246 - 267) + (105 - 126)
    assert _rating_count(settings) == 8

    history = api.get("/v1/cdrs/b-2009-dec", role="agent").json()["ratings"]
    assert [(r["seq"], r["tariff"], r["charge_fen"]) for r in history] == [
        (1, "cmcc-2009", 267),
        (2, "cmcc-2009-fix", 246),
    ]
    for rating in history:  # each rating of the history explained, the old one too
        assert rating["items"], rating
        assert DETAIL_GONE not in rating["explanation_zh"]
    version_only = api.get("/v1/cdrs/e-2010-jul-local", role="agent").json()["ratings"]
    assert [(r["tariff"], r["charge_fen"]) for r in version_only] == [
        ("cmcc-2010", 80),
        ("cmcc-2010-fix", 80),
    ]
    untouched = api.get("/v1/cdrs/c-2010-mar", role="agent").json()["ratings"]
    assert len(untouched) == 1

    audit = api.get("/v1/audit", role="admin").json()["items"]
    assert {row["detail"] for row in audit if row["action"] == "rerate"} == {
        dry["id"],
        job["id"],
    }

    again = _job(api, WINDOW)
    assert (again["changed"], again["delta_fen"], again["processed"]) == (0, 0, 5)
    assert _rating_count(settings) == 8


def test_window_limits_the_job(api: Api, corrected_tariffs: Path) -> None:
    _ingest(api)
    publish_corrections(api, corrected_tariffs)
    job = _job(api, {"from": "2010-01-01T00:00:00+08:00", "to": "2011-01-01T00:00:00"})
    assert (job["total"], job["changed"], job["delta_fen"]) == (3, 2, -21)


def test_rerate_api_errors(api: Api) -> None:
    assert api.post("/v1/rerate", json=WINDOW).status_code == 401
    assert api.post("/v1/rerate", role="agent", json=WINDOW).status_code == 403
    backwards = {"from": WINDOW["to"], "to": WINDOW["from"]}
    assert api.post("/v1/rerate", role="admin", json=backwards).status_code == 422
    assert api.post("/v1/rerate", role="admin", json={"from": "soon"}).status_code == 422
    assert api.get("/v1/rerate/nope", role="admin").status_code == 404
    audit = api.get("/v1/audit", role="admin").json()
    assert not any(row["action"] == "rerate" for row in audit["items"])


def _start(sessions: sessionmaker[Session]) -> RerateJob:
    with sessions.begin() as session:
        return rerate.start_job(
            session,
            window_from=datetime.fromisoformat(WINDOW["from"]),
            window_to=datetime.fromisoformat(WINDOW["to"]),
            dry_run=False,
            actor=Actor(key_id="test", role="admin"),
        )


def test_interrupted_job_then_a_new_run_finishes_safely(
    api: Api, settings: Settings, corrected_tariffs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ingest(api)
    corrected = publish_corrections(api, corrected_tariffs)
    engine = make_engine(settings.effective_database_url, pool_size=2)
    sessions = make_sessionmaker(engine)
    real_chunk = rerate.rerate_chunk
    calls = {"n": 0}

    def crash_on_second_chunk(*args: Any, **kwargs: Any) -> rerate.ChunkResult:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("power cut")
        return real_chunk(*args, **kwargs)

    monkeypatch.setattr(rerate, "rerate_chunk", crash_on_second_chunk)
    first = _start(sessions)
    with pytest.raises(RuntimeError, match="power cut"):
        rerate.run_job(sessions, job_id=first.id, rater=corrected, default_plan=None, chunk_rows=2)
    with sessions() as session:
        failed = rerate.read_job(session, job_id=first.id)
    # The first chunk (a-2009-nov, b-2009-dec) committed with the job's progress.
    assert (failed.status, failed.processed, failed.changed) == ("failed", 2, 1)
    assert failed.error is not None
    assert "power cut" in failed.error

    monkeypatch.setattr(rerate, "rerate_chunk", real_chunk)
    second = _start(sessions)
    done = rerate.run_job(
        sessions, job_id=second.id, rater=corrected, default_plan=None, chunk_rows=2
    )
    engine.dispose()
    assert (done.status, done.changed, done.delta_fen) == ("done", 2, -21)
    assert _rating_count(settings) == 8  # every changed CDR got exactly one new rating


def test_cli_rerate(
    api: Api, settings: Settings, corrected_tariffs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _ingest(api)
    url = settings.effective_database_url
    argv = ["--tariffs", str(corrected_tariffs), "rerate", "--url", url]
    assert main([*argv, "--from", WINDOW["from"], "--to", WINDOW["to"], "--dry-run"]) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["changed"] == 3
    assert (job["from"], job["to"]) == (WINDOW["from"], WINDOW["to"])  # in the offset given
    assert _rating_count(settings) == 5
    assert main([*argv, "--from", WINDOW["from"], "--to", WINDOW["to"]]) == 0
    out = capsys.readouterr().out
    assert '"changed":3' in out
    assert '"delta_fen":-42' in out
    assert _rating_count(settings) == 8


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("2009-06-30T16:00:00Z", "2009-06-30T16:00:00Z"),
        ("2009-07-01T00:00:00+08:00", "2009-07-01T00:00:00+08:00"),
        ("2009-06-30T12:00:00-04:00", "2009-06-30T12:00:00-04:00"),
        ("2009-07-01T00:00:00", "2009-07-01T00:00:00+08:00"),  # no offset: +08:00 (SPEC §1)
    ],
)
def test_a_job_shows_its_window_in_the_offset_it_was_given(
    api: Api, given: str, shown: str
) -> None:
    job = api.post(
        "/v1/rerate", role="admin", json={"from": given, "to": WINDOW["to"], "dry_run": True}
    )
    assert job.status_code == 202, job.text
    assert (job.json()["from"], job.json()["to"]) == (shown, WINDOW["to"])
    again = api.get(f"/v1/rerate/{job.json()['id']}", role="admin").json()
    assert (again["from"], again["to"]) == (shown, WINDOW["to"])
