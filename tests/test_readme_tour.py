"""The README's two-minute tour, pasted as written into bash: it starts a real `callrate serve`
(here on a free port) on a new data dir, keeps the keys printed on first start, and every
block answers what the README shows."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from service.rating.scalar import Rater
from tests.api.test_served import _free_port
from tests.conftest import ROOT

README = ROOT / "README.md"
BLOCK = re.compile(
    r"<!-- (?P<kind>tour|answer): (?P<name>[\w-]+) -->\n```\w+\n(?P<body>.*?)```", re.S
)
MARK = "@@tour-block"
STATUS = "@@http-status"
TOUR = ["serve", "quote", "ingest", "read", "cli-quote", "cli-rate"]
TIMEOUT_S = 240  # the first `callrate rate` of a fresh clone compiles the batch kernels


def readme_blocks(kind: str) -> dict[str, str]:
    """The README's fenced blocks marked `<!-- KIND: NAME -->`, by name, in order."""
    return {
        match["name"]: match["body"]
        for match in BLOCK.finditer(README.read_text(encoding="utf-8"))
        if match["kind"] == kind
    }


def tour_script(port: int) -> str:
    """The tour blocks as one bash script: each announced by a marker line, the README's port
    replaced by `port`, and each curl made to print its HTTP status after the body."""
    lines = ["set -e"]
    for name, body in readme_blocks("tour").items():
        body = body.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        body = body.replace("curl -s", f"curl -w '\\n{STATUS} %{{http_code}}\\n' -s")
        lines += [f"echo '{MARK} {name}'", body]
    return "\n".join(lines) + "\n"


def run_tour(tmp_path: Path) -> dict[str, str]:
    """Run the tour in `tmp_path` (its `.venv` is this interpreter's); output by block."""
    port = _free_port()
    (tmp_path / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLRATE_")}
    env.update(CALLRATE_PORT=str(port), TMPDIR=str(tmp_path))  # the tour's mktemp -d
    env.pop("VIRTUAL_ENV", None)
    process = subprocess.Popen(
        ["bash", "-c", tour_script(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the server the tour starts in the background is in its group
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the tour's server (and the shell if still up)
        process.wait(timeout=10)
    assert process.returncode == 0, output
    outputs: dict[str, str] = {}
    name = ""
    for line in output.splitlines(keepends=True):
        if line.startswith(MARK):
            name = line.split()[1]
            outputs[name] = ""
        elif name:
            outputs[name] += line
    return outputs


def http(output: str) -> tuple[int, Any]:
    """The status and the JSON body of the one curl in a block's output."""
    body, _, status = output.rpartition(STATUS)
    return int(status), json.loads(body)


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return run_tour(tmp_path_factory.mktemp("tour"))


def test_the_readme_marks_the_whole_tour() -> None:
    assert list(readme_blocks("tour")) == TOUR
    assert list(readme_blocks("answer")) == ["quote", "ingest", "cli-rate"]


def test_the_first_start_prints_a_key_per_role(tour: dict[str, str]) -> None:
    printed = re.findall(r"^  (\w+)=cr_\S+$", tour["serve"], re.M)
    assert printed == ["switch", "agent", "ops", "admin"]


def test_the_quote_answers_what_the_readme_shows(tour: dict[str, str]) -> None:
    status, answer = http(tour["quote"])
    assert status == 200
    assert (answer["charge_fen"], answer["call_class"]) == (126, "domestic_ld")  # golden case
    shown = json.loads(readme_blocks("answer")["quote"])
    for key in ("charge_fen", "call_class", "dial", "roaming", "tariff", "items"):
        assert shown[key] == answer[key], key


def test_the_ingest_answers_what_the_readme_shows(tour: dict[str, str]) -> None:
    status, answer = http(tour["ingest"])
    assert status == 200
    assert answer["counts"] == {"rated": 2, "duplicate": 0, "rejected": 0}
    charged = [(r["id"], r["charge_fen"], r["call_class"]) for r in answer["results"]]
    assert charged == [("tour-1", 126, "domestic_ld"), ("tour-2", 100, "hmt")]  # golden cases
    assert json.loads(readme_blocks("answer")["ingest"]) == answer


def test_the_stored_cdr_reads_back(tour: dict[str, str]) -> None:
    status, cdr = http(tour["read"])
    assert status == 200
    assert cdr["id"] == "tour-2"
    assert (cdr["current"]["charge_fen"], cdr["current"]["call_class"]) == (100, "hmt")
    assert [rating["charge_fen"] for rating in cdr["ratings"]] == [100]
    assert cdr["record"]["callee"] != "0085223456789"  # masked for an agent
    assert "****" in cdr["record"]["callee"]


def test_callrate_quote_from_the_command_line(tour: dict[str, str]) -> None:
    answer = json.loads(tour["cli-quote"])
    assert (answer["charge_fen"], answer["call_class"]) == (80, "local")  # golden case


def test_callrate_rate_writes_what_the_readme_shows(tour: dict[str, str]) -> None:
    summary, *lines = tour["cli-rate"].splitlines()
    assert summary.startswith("3 records: 2 rated, 1 rejected in ")
    rows = list(csv.reader(lines))  # rated.csv, then rated.rejected.csv: each with its header
    rated_header, rejected_header = (row for row in rows if row[0] == "id")
    rated = [dict(zip(rated_header, row, strict=True)) for row in rows[1:3]]
    assert [(r["id"], int(r["charge_fen"]), r["call_class"]) for r in rated] == [
        ("c1", 880, "international"),  # golden case: USA direct 61 s
        ("c2", 60, "domestic_ld"),  # golden case: 17951 domestic LD 61 s
    ]
    rejected = dict(zip(rejected_header, rows[4], strict=True))
    assert (rejected["id"], rejected["reason"]) == ("c3", "callee.invalid_characters")
    shown_summary, *shown_lines = readme_blocks("answer")["cli-rate"].splitlines()
    assert shown_summary.split(" in ")[0] == summary.split(" in ")[0]
    assert shown_lines == lines


CDR_EXAMPLE = re.compile(
    r"(?P<text>[^\n]+\n[^\n]+)\n\n<!-- cdr: (?P<name>[\w-]+) (?P<fen>\d+) -->\n```json\n"
    r"(?P<body>[^\n]+)\n```"
)


def test_the_readme_cdr_examples_cost_what_it_says(rater: Rater) -> None:
    examples = list(CDR_EXAMPLE.finditer(README.read_text(encoding="utf-8")))
    assert [m["name"] for m in examples] == ["roaming", "forwarded"]
    ratings = {m["name"]: rater.rate_raw(json.loads(m["body"])) for m in examples}
    for m in examples:
        fen = ratings[m["name"]].charge_fen
        assert fen == int(m["fen"]), m["name"]
        assert f"{fen // 100}.{fen % 100:02d} yuan ({ratings[m['name']].rules[0]})" in m["text"]
    assert ratings["roaming"].roaming == "national"
    assert ratings["forwarded"].call_class == "forward"
