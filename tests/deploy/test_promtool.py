"""The rule files pass `promtool check rules` and their unit tests (`promtool test rules`);
every alert is tested firing and not firing and carries a runbook."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from service.ops.metrics import Metrics, RerateProgress
from tests.deploy.conftest import EXAMPLE_CONFIG, PROMETHEUS_DIR, RULE_FILES, rules, tool

TEST_FILES = sorted(PROMETHEUS_DIR.glob("*test*.yml"))


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> str:
    done = subprocess.run(
        [tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_check_rules() -> None:
    out = promtool("check", "rules", *(str(path) for path in RULE_FILES))
    assert out.count("SUCCESS") == len(RULE_FILES)


def test_rule_unit_tests_pass() -> None:
    assert {path.name for path in TEST_FILES} == {"alerts_test.yml", "recording_test.yml"}
    out = promtool("test", "rules", *(path.name for path in TEST_FILES))
    assert out.count("SUCCESS") == len(TEST_FILES)


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", ()):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    alerts = {rule["alert"] for rule in rules("alert")}
    assert len(alerts) >= 9
    assert firing == alerts
    assert silent == alerts


def test_every_recording_rule_is_tested() -> None:
    tested = {
        check["expr"]
        for case in yaml.safe_load((PROMETHEUS_DIR / "recording_test.yml").read_text())["tests"]
        for check in case.get("promql_expr_test", ())
    }
    assert tested == {rule["record"] for rule in rules("record")}


def test_every_alert_has_a_summary_runbook_and_severity() -> None:
    for rule in rules("alert"):
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert len(rule["annotations"]["runbook"]) > 100, rule["alert"]


def test_example_config_is_valid(tmp_path: Path) -> None:
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    key = tmp_path / "ops.key"
    key.write_text("an-ops-key\n")
    config["scrape_configs"][0]["authorization"]["credentials_file"] = str(key)
    config["rule_files"] = [str(path) for path in RULE_FILES]
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config))
    promtool("check", "config", str(checked))


def test_check_metrics_of_one_process_is_clean() -> None:
    """`promtool check metrics` on a single-process /metrics (the served test checks the
    multi-worker one) with every metric holding values."""
    metrics = Metrics()
    metrics.count_results(["rated", "rejected"])
    metrics.charged_fen.labels(call_class="local").inc(80)
    metrics.rating_seconds.observe(0.0001)
    metrics.http_seconds.labels(method="POST", route="/v1/quote", status="200").observe(0.002)
    metrics.set_suspense({"plan.missing": 1})
    metrics.database_up.set(1)
    metrics.set_build_info(version="0.1.0", tariffs=["cmcc-2009", "cmcc-2010"])
    progress = RerateProgress(metrics)
    progress.start(total=3, processed=0)
    progress.chunk(processed=3, changed=1, rejected=0)
    progress.finish("done")
    done = subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=metrics.render(),
        capture_output=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, b"")
