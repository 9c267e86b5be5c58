"""Batch kernels are compiled outside any database transaction (a JIT compile inside one
held SQLite's write lock for ~16 s): re-rating warms them first, the app at start."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from service.config import Settings
from service.rating.scalar import Rater
from tests.conftest_db import running_api

# Run in a fresh interpreter with an empty JIT cache, so the kernels really compile there.
COLD_RERATE = textwrap.dedent(
    """
    import json, sys, threading
    from datetime import datetime
    from pathlib import Path
    from numba.core import event
    from sqlalchemy import Engine, event as sa_event
    from service.ingest.pipeline import ingest_batch
    from service.jobs import rerate
    from service.ingest.cut import decode_record
    from service.db.migrate import upgrade
    from service.db.session import make_engine, make_sessionmaker
    from service.rating import load_rater
    from service.security import Actor

    url, migrations, tariffs = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    open_transactions, compiles, inside = [0], [], []
    lock = threading.Lock()

    def begin(_connection):
        with lock:
            open_transactions[0] += 1

    def end(_connection):
        with lock:
            open_transactions[0] -= 1

    for name, listener in (("begin", begin), ("commit", end), ("rollback", end)):
        sa_event.listen(Engine, name, listener)

    class Compiles(event.Listener):
        def on_start(self, _event):
            compiles.append(1)
            with lock:
                if open_transactions[0]:
                    inside.append(1)

        def on_end(self, _event):
            pass

    event.register("numba:compile", Compiles())
    upgrade(url=url, migrations_dir=migrations)
    rater = load_rater(tariffs)
    sessions = make_sessionmaker(make_engine(url, pool_size=2))
    record = {"id": "c1", "caller": "13800138000", "callee": "02188001234",
              "start": "2010-03-01T10:00:00+08:00", "duration_s": 125, "plan": "gotone"}
    with sessions.begin() as session:
        records = [decode_record(json.dumps(record).encode(), 0, brackets=1)]
        ingest_batch(session, rater=rater, default_plan=None, records=records)
        job = rerate.start_job(
            session,
            window_from=datetime.fromisoformat("2010-01-01T00:00+08:00"),
            window_to=datetime.fromisoformat("2011-01-01T00:00+08:00"),
            dry_run=False,
            actor=Actor(key_id="test", role="admin"),
        )
    done = rerate.run_job(sessions, job_id=job.id, rater=rater, default_plan=None)
    print(done.status, done.processed, len(compiles), len(inside))
    """
)


@pytest.mark.slow
def test_rerate_compiles_its_kernels_before_its_first_transaction(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    url = f"sqlite:///{tmp_path / 'warm.sqlite3'}"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    result = subprocess.run(
        [sys.executable, "-c", COLD_RERATE, url, str(root / "migrations"), str(root / "tariffs")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    status, processed, compiles, inside = result.stdout.split()
    assert (status, processed) == ("done", "1")
    assert int(compiles) > 0  # the cache was cold: the kernels did compile in this run
    assert int(inside) == 0  # and none of it inside a transaction


def test_the_app_warms_the_kernels_at_start(settings: Settings, rater: Rater) -> None:
    with running_api(settings, rater) as api:
        assert api.app.state.kernels.done.wait(timeout=300)
        assert api.get("/healthz").status_code == 200
