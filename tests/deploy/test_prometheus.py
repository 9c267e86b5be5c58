"""A real Prometheus (Debian package) scrapes a real `callrate serve` with the ops key:
the target is up, the rule files load and evaluate, every recording rule and every
dashboard panel query returns data, every alert expression parses and its metric
selectors return data; `promtool check metrics` finds nothing to fix in /metrics; the
server's JSON request log holds no number."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from tests.api.test_cdrs import cdr
from tests.api.test_quote import REQUEST as QUOTE
from tests.api.test_served import _free_port, auth, served
from tests.deploy.conftest import DASHBOARD, EXAMPLE_CONFIG, RULE_FILES, rules, tool

pytestmark = pytest.mark.slow

DEADLINE_S = 120.0
NUMBERS = ("13800138000", "02188001234", "13900139000")
_NOT_SELECTORS = {
    "sum", "min", "max", "avg", "count", "topk", "bottomk", "sort", "sort_desc",
    "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset",
}  # fmt: skip
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def selectors(expr: str) -> list[str]:
    """The instant-vector selectors of a PromQL expression (metric name and matchers)."""
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range durations
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # label lists
    found = []
    position = 0
    while (match := _NAME.search(expr, position)) is not None:
        end = match.end()
        rest = expr[end:].lstrip()
        name = match.group()
        if rest.startswith("{"):
            close = expr.index("}", end)
            found.append(expr[match.start() : close + 1])
            position = close + 1
            continue
        position = end
        if not rest.startswith("(") and name not in _NOT_SELECTORS:
            found.append(name)
    return found


def test_selectors_of_an_expression() -> None:
    expr = (
        'sum by (route) (rate(a_total{route="/v1/cdrs", status=~"5.."}[5m])) / b:c:d > 0.05'
        " and on () ((hour() + 8) % 24 >= 8)"
    )
    assert selectors(expr) == ['a_total{route="/v1/cdrs", status=~"5.."}', "b:c:d"]


def dashboard_exprs() -> list[str]:
    """Every panel query of the Grafana dashboard."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [target["expr"] for panel in board["panels"] for target in panel.get("targets", ())]
    assert len(exprs) >= 15
    return exprs


@contextmanager
def prometheus(tmp_path: Path, target: str, ops_key: str) -> Iterator[httpx.Client]:
    """Prometheus with the example config: this target, 1 s scrape and rule evaluation."""
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(path) for path in RULE_FILES]
    key = tmp_path / "ops.key"
    key.write_text(ops_key)
    job = config["scrape_configs"][0]
    job["authorization"]["credentials_file"] = str(key)
    job["static_configs"] = [{"targets": [target]}]
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = _free_port()
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=log,
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0)
    try:
        wait_for(lambda: _ready(client, process), "Prometheus ready", log_path)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=30)


def _ready(client: httpx.Client, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, "prometheus exited"
    try:
        return client.get("/-/ready").status_code == 200
    except httpx.TransportError:
        return False


def wait_for(check: Any, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            pytest.fail(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.5)


def query(client: httpx.Client, expr: str) -> list[dict[str, Any]]:
    """An instant query; fails on a parse or evaluation error."""
    response = client.get("/api/v1/query", params={"query": expr})
    body = response.json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def drive_traffic(base: str) -> None:
    """Quotes (one rejected), an ingest with a rejected record, a read, a re-rate."""
    with httpx.Client(base_url=base, timeout=30.0) as client:
        for _ in range(5):
            assert client.post("/v1/quote", json=QUOTE, headers=auth("agent")).status_code == 200
        rejected_quote = {**QUOTE, "callee": "x"}
        assert (
            client.post("/v1/quote", json=rejected_quote, headers=auth("agent")).status_code == 422
        )
        batch = [cdr("p1"), cdr("p2", callee="88001234"), cdr("p3", callee="x")]
        answer = client.post("/v1/cdrs", json=batch, headers=auth("switch")).json()
        assert answer["counts"] == {"rated": 2, "duplicate": 0, "rejected": 1}
        assert client.get("/v1/cdrs/p1", headers=auth("agent")).status_code == 200
        window = {"from": "2010-01-01T00:00:00+08:00", "to": "2011-01-01T00:00:00+08:00"}
        job = client.post("/v1/rerate", json=window, headers=auth("admin")).json()
        wait_for(
            lambda: (
                client.get(f"/v1/rerate/{job['id']}", headers=auth("admin")).json()["status"]
                == "done"
            ),
            "the re-rating job",
        )
        traced = client.get("/readyz", headers={"X-Request-ID": "prom-test-1"})
        assert traced.headers["x-request-id"] == "prom-test-1"


def test_prometheus_scrapes_callrate_and_every_query_returns_data(tmp_path: Path) -> None:
    stderr_path = tmp_path / "callrate.stderr"
    database = f"sqlite:///{tmp_path / 'callrate.sqlite3'}"
    args = ("--log-format", "json")
    with (
        stderr_path.open("wb") as stderr,
        served(database, tmp_path, workers=2, args=args, stderr=stderr) as (_, base),
        prometheus(
            tmp_path, base.removeprefix("http://"), auth("ops")["Authorization"][7:]
        ) as prom,
    ):
        drive_traffic(base)

        def scraped_up() -> bool:
            targets = prom.get("/api/v1/targets").json()["data"]["activeTargets"]
            return bool(targets) and all(t["health"] == "up" for t in targets)

        wait_for(scraped_up, "the callrate target to be up")
        targets = prom.get("/api/v1/targets").json()["data"]["activeTargets"]
        assert [t["labels"]["job"] for t in targets] == ["callrate"]

        exprs = dashboard_exprs()
        records = [rule["record"] for rule in rules("record")]
        wanted = [*exprs, *records]
        # rate() needs two scrapes after the traffic, recording rules one evaluation more
        wait_for(lambda: all(query(prom, expr) for expr in wanted), "data for every query")
        for expr in wanted:
            assert query(prom, expr), expr

        groups = prom.get("/api/v1/rules").json()["data"]["groups"]
        loaded = [rule for group in groups for rule in group["rules"]]
        assert len(loaded) == len(rules("alert")) + len(rules("record"))
        for rule in loaded:
            assert rule["health"] == "ok", rule
            assert not rule.get("lastError"), rule

        for alert in rules("alert"):
            query(prom, alert["expr"])  # parses and evaluates
            for selector in selectors(alert["expr"]):
                assert query(prom, selector), (alert["alert"], selector)

        metrics_text = httpx.get(f"{base}/metrics", headers=auth("ops")).content
        lint = subprocess.run(
            [tool("promtool"), "check", "metrics"],
            input=metrics_text,
            capture_output=True,
            timeout=60,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
        assert lint.stdout + lint.stderr == b""

    log = stderr_path.read_text(encoding="utf-8", errors="replace")
    lines = [orjson.loads(line) for line in log.splitlines() if line.startswith("{")]
    routes = {(line["route"], line["role"]) for line in lines}
    assert {("/metrics", "ops"), ("/v1/quote", "agent"), ("/v1/cdrs", "switch")} <= routes
    assert any(line["request_id"] == "prom-test-1" for line in lines)
    for number in NUMBERS:
        assert number not in log
