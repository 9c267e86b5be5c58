"""The bench generator covers every case it claims; `callrate bench` prints its figures."""

from __future__ import annotations

import pytest

from service.cli import main
from service.rating.batch import BatchRater
from service.rating.scalar import Rater
from service.tools.bench import generate_cdrs, run_bench, single_thread_environment
from tests.conftest import TARIFFS


def test_the_generator_is_seeded_and_covers_every_dimension(rater: Rater) -> None:
    table = generate_cdrs(rater, 30_000, seed=5)
    assert table.equals(generate_cdrs(rater, 30_000, seed=5))
    assert not table.equals(generate_cdrs(rater, 30_000, seed=6))
    rated = BatchRater(rater).rate(table)
    ok = rated.filter(rated["reason"].is_null())
    assert set(ok["dial"].to_pylist()) == {"direct", "17951", "12593"}
    assert set(ok["roaming"].to_pylist()) == {"home", "in_province", "national"}
    assert set(ok["tariff"].to_pylist()) == {"cmcc-2009", "cmcc-2010"}
    assert len(set(ok["call_class"].to_pylist())) == 8
    assert len(set(ok["plan"].to_pylist())) == 5
    assert {"terminating", "forwarded"} <= set(ok["type"].to_pylist())
    rejected = rated["reason"].drop_null()
    assert 0.01 < len(rejected) / len(table) < 0.15


def test_bench_runs_and_reports(
    rater: Rater, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in single_thread_environment():
        monkeypatch.setenv(name, "1")  # so the command's thread limits do not outlive the test
    result = run_bench(rater, 5_000, seed=1, scalar_rows=500)
    assert result.batch_per_s > 0
    assert result.scalar_per_s > 0
    assert main(["--tariffs", str(TARIFFS), "bench", "--rows", "3000", "--scalar-rows", "300"]) == 0
    out = capsys.readouterr().out
    assert "batch / per-call" in out
    assert "memory-copy baseline" in out


def test_measure_counts_the_whole_process_tree() -> None:
    import sys

    from service.tools.bench import measure

    # A parent that starts a child holding 300 MiB: the peak is the sum, not the parent's.
    child = "b = bytearray(300 * 2**20); import time; time.sleep(1.5)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    seconds, peak = measure([sys.executable, "-c", parent])
    assert seconds >= 1.5
    assert peak > 300 * 2**20
    with pytest.raises(RuntimeError, match="exited with 3"):
        measure([sys.executable, "-c", "raise SystemExit(3)"])
