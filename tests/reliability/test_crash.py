"""Exactly-once under SIGKILL on PostgreSQL with `callrate serve --workers 2`: batches in
flight on both workers when the whole server is killed are stored all or nothing, and the
switch's retries leave every record stored once (SPEC §6.2). The single-worker test on both
databases is tests/api/test_served.py."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.api.test_served import BATCH_SIZE, _batch, _post
from tests.conftest_db import fresh_database
from tests.reliability.test_outage import callrate_serve, stored_counts

KILLS = 2
ACKNOWLEDGED_PER_ROUND = 2
IN_FLIGHT_PER_ROUND = 2  # one per worker, most likely


def _send(base_url: str, batch: int, answers: dict[int, object]) -> None:
    """Post one batch; its counts, or the error the kill caused."""
    try:
        with httpx.Client(base_url=base_url) as client:
            answers[batch] = _post(client, _batch(batch))
    except (httpx.TransportError, AssertionError) as exc:
        answers[batch] = exc


@pytest.mark.slow
def test_sigkill_of_two_workers_then_retries_store_every_record_once(tmp_path: Path) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    number = 0
    unacknowledged: list[int] = []
    acknowledged: list[int] = []
    with fresh_database("postgresql", tmp_path) as url:
        for _ in range(KILLS):
            with callrate_serve(url, tmp_path, workers=2, **env) as served:
                with httpx.Client(base_url=served.base_url) as client:
                    for _ in range(ACKNOWLEDGED_PER_ROUND):
                        assert _post(client, _batch(number))["rated"] == BATCH_SIZE
                        acknowledged.append(number)
                        number += 1
                answers: dict[int, object] = {}
                senders = []
                for _ in range(IN_FLIGHT_PER_ROUND):
                    senders.append(
                        threading.Thread(target=_send, args=(served.base_url, number, answers))
                    )
                    number += 1
                for sender in senders:
                    sender.start()
                time.sleep(0.15)  # the batches are being read, rated or written
                os.killpg(served.process.pid, signal.SIGKILL)
                served.process.wait(timeout=10)
                for sender in senders:
                    sender.join(timeout=60)
                for batch, answer in answers.items():
                    (acknowledged if isinstance(answer, dict) else unacknowledged).append(batch)

        assert unacknowledged, "every batch finished before its kill: nothing was tested"
        with (
            callrate_serve(url, tmp_path, workers=2, **env) as served,
            httpx.Client(base_url=served.base_url) as client,
        ):
            for batch in unacknowledged:  # the switch retries what was not acknowledged
                retry = _post(client, _batch(batch))
                assert retry["rated"] + retry["duplicate"] == BATCH_SIZE
                assert BATCH_SIZE in (retry["rated"], retry["duplicate"]), "batch half-stored"
            assert _post(client, _batch(acknowledged[-1]))["duplicate"] == BATCH_SIZE
        stored = stored_counts(url)
    print(f"crash: {KILLS} kills, {len(unacknowledged)} batches in flight, stored {stored}")
    assert stored == (number * BATCH_SIZE,) * 3  # 0 lost, 0 doubled
