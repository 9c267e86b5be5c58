"""Against a real `callrate serve` process: golden quotes over HTTP, and SIGKILL mid-stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import orjson
import pytest
from sqlalchemy import create_engine, func, select

from service.db.models import Cdr, RatingRow
from service.tools.loadtest import free_port as _free_port
from tests.api.test_cdrs import cdr
from tests.conftest import golden_cases
from tests.conftest_db import KEYS, KEYS_SPEC

CALLRATE = Path(sys.executable).parent / "callrate"
START_TIMEOUT_S = 30.0


@contextmanager
def served(
    database_url: str,
    data_dir: Path,
    *,
    workers: int = 1,
    args: Sequence[str] = (),
    stderr: IO[bytes] | int = subprocess.DEVNULL,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`callrate serve` (with extra `args`) on a free loopback port; yields the process and
    its base URL."""
    port = _free_port()
    env = {
        **os.environ,
        "CALLRATE_DATABASE_URL": database_url,
        "CALLRATE_DATA_DIR": str(data_dir),
        "CALLRATE_API_KEYS": KEYS_SPEC,
    }
    process = subprocess.Popen(
        [str(CALLRATE), "serve", "--port", str(port), "--workers", str(workers), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, "callrate serve exited during start"
            try:
                if httpx.get(f"{base}/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "callrate serve did not become ready"
            time.sleep(0.1)
        yield process, base
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


def auth(role: str) -> dict[str, str]:
    """Authorization header of a test role."""
    return {"Authorization": f"Bearer {KEYS[role]}"}


def test_golden_cases_through_callrate_serve(database_url: str, tmp_path: Path) -> None:
    with served(database_url, tmp_path) as (_, base), httpx.Client(base_url=base) as client:
        for case in golden_cases():
            response = client.post("/v1/quote", json=case["request"], headers=auth("agent"))
            body: dict[str, Any] = response.json()
            if case["expect"].get("rejected"):
                assert response.status_code == 422, case["name"]
                assert set(body) == {"error", "message", "field"}, body
            else:
                assert response.status_code == 200, case["name"]
                for key, value in case["expect"].items():
                    assert body[key] == value, (case["name"], key)


BATCHES = 8
BATCH_SIZE = 10_000  # the most a batch holds: the one in flight still is when the kill comes
KILL_BEFORE = 4  # batches 0..3 are acknowledged; batch 4 is in flight when the server dies


def _batch(number: int) -> bytes:
    return b"\n".join(
        orjson.dumps(cdr(f"b{number}-{i}", duration_s=1 + i % 500)) for i in range(BATCH_SIZE)
    )


def _post(client: httpx.Client, body: bytes) -> dict[str, int]:
    response = client.post(
        "/v1/cdrs",
        content=body,
        headers={**auth("switch"), "Content-Type": "application/x-ndjson"},
        timeout=60.0,
    )
    assert response.status_code == 200
    counts: dict[str, int] = response.json()["counts"]
    return counts


@pytest.mark.slow
def test_sigkill_mid_stream_then_retries_store_every_record_once(
    database_url: str, tmp_path: Path
) -> None:
    bodies = [_batch(n) for n in range(BATCHES)]
    with served(database_url, tmp_path) as (process, base), httpx.Client(base_url=base) as client:
        for number in range(KILL_BEFORE):
            assert _post(client, bodies[number])["rated"] == BATCH_SIZE
        in_flight: list[BaseException | dict[str, int]] = []

        def send() -> None:
            try:
                in_flight.append(_post(client, bodies[KILL_BEFORE]))
            except BaseException as exc:  # the connection dies with the server
                in_flight.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(0.02)  # the batch is being read, rated or written
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        sender.join(timeout=30)
        assert in_flight
        assert not isinstance(in_flight[0], dict), "the batch finished before the kill"

    with served(database_url, tmp_path) as (_, base), httpx.Client(base_url=base) as client:
        # the switch retries everything not acknowledged, and re-sends the last acknowledged
        retry = _post(client, bodies[KILL_BEFORE])
        assert retry["rated"] + retry["duplicate"] == BATCH_SIZE
        assert BATCH_SIZE in (retry["rated"], retry["duplicate"]), "batch half-stored"
        for number in range(KILL_BEFORE + 1, BATCHES):
            assert _post(client, bodies[number])["rated"] == BATCH_SIZE
        assert _post(client, bodies[KILL_BEFORE - 1])["duplicate"] == BATCH_SIZE

    engine = create_engine(database_url)
    with engine.connect() as connection:
        cdrs = connection.scalar(select(func.count()).select_from(Cdr))
        ratings = connection.scalar(select(func.count()).select_from(RatingRow))
        distinct = connection.scalar(select(func.count(func.distinct(RatingRow.cdr_id))))
    engine.dispose()
    assert cdrs == ratings == distinct == BATCHES * BATCH_SIZE
