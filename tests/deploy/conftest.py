"""Shared by the deploy tests: the rule files and the Prometheus tools (Debian `prometheus`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULE_FILES = (PROMETHEUS_DIR / "alerts.yml", PROMETHEUS_DIR / "recording.yml")
EXAMPLE_CONFIG = PROMETHEUS_DIR / "prometheus.example.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "callrate.json"


def tool(name: str) -> str:
    """The path of a Prometheus tool; CI installs the Debian package `prometheus`."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: apt-get install prometheus (as .ci/run does)")
    return path


def rules(kind: str) -> list[dict[str, Any]]:
    """Every rule of `kind` ("alert" or "record") in the rule files."""
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            found.extend(rule for rule in group["rules"] if kind in rule)
    return found
