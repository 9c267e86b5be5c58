"""Metrics with several worker processes: /metrics sums what every worker counted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from service.ops.metrics import Metrics

WORKER = """
from service.ops.metrics import Metrics
metrics = Metrics()
metrics.count_results(["rated"] * {rated} + ["rejected"])
metrics.charged_fen.labels(call_class="local").inc({fen})
metrics.rating_seconds.observe(0.0001)
metrics.set_suspense({{"plan.missing": {suspense}}})
"""


def _worker(metrics_dir: Path, *, rated: int, fen: int, suspense: int) -> None:
    # a fresh interpreter: prometheus_client reads PROMETHEUS_MULTIPROC_DIR when imported
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    code = WORKER.format(rated=rated, fen=fen, suspense=suspense)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


def test_render_sums_every_worker(tmp_path: Path) -> None:
    _worker(tmp_path, rated=3, fen=40, suspense=7)
    _worker(tmp_path, rated=2, fen=2, suspense=5)
    text = Metrics(multiprocess_dir=tmp_path).render().decode()
    assert 'callrate_cdrs_total{result="rated"} 5.0' in text
    assert 'callrate_cdrs_total{result="rejected"} 2.0' in text
    assert 'callrate_charged_fen_total{call_class="local"} 42.0' in text
    assert "callrate_rating_seconds_count 2.0" in text
    assert 'callrate_suspense_records{code="plan.missing"} 5.0' in text  # the latest scrape


def test_without_a_directory_render_is_this_process(tmp_path: Path) -> None:
    metrics = Metrics()
    metrics.count_results(["duplicate"])
    assert 'callrate_cdrs_total{result="duplicate"} 1.0' in metrics.render().decode()


def test_workers_render_no_created_series(tmp_path: Path) -> None:
    _worker(tmp_path, rated=1, fen=1, suspense=1)
    assert "_created" not in Metrics(multiprocess_dir=tmp_path).render().decode()
