"""`callrate` as a user meets it: a mistake is one line on stderr and exit code 2, checked before
any work starts; --help documents every option; a SQLite typo is refused unless --create."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.cli import build_parser, main
from service.config import get_settings
from tests.conftest import ROOT

CALLRATE = Path(sys.executable).parent / "callrate"
WINDOW = ["--from", "2010-01-01T00:00:00+08:00", "--to", "2011-01-01T00:00:00+08:00"]
CSV = (
    "id,caller,callee,start,duration_s,plan\n"
    "c1,13800138000,02188001234,2010-03-01T10:00:00+08:00,125,gotone\n"
    "c2,13800138000,02188001234,2010-03-01T10:00:00+08:00,125,\n"
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """No CALLRATE_* setting but a temporary data dir; the CLI reads its settings afresh."""
    for name in list(os.environ):
        if name.startswith("CALLRATE_") and not name.startswith(("CALLRATE_TEST_", "CALLRATE_REQ")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CALLRATE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`callrate ARGV` in this process: exit code, stdout, stderr."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_refusal(code: int, err: str, fragment: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("callrate")
    assert fragment in err


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["rate", "{tmp}/missing.csv", "-o", "{tmp}/out.csv"], "no input file"),
        (["rate", "{tmp}/in.csv", "-o", "{tmp}/out.xlsx"], "unknown extension '.xlsx'"),
        (["rate", "{tmp}/in.txt", "-o", "{tmp}/out.csv"], "unknown extension '.txt'"),
        (["rate", "{tmp}/in.csv", "-o", "{tmp}/o.csv", "--rejected", "{tmp}/r.x"], "'.x'"),
        (["rate", "{tmp}/in.csv", "-o", "{tmp}/nowhere/out.csv"], "no directory"),
        (["rate", "{tmp}/in.csv", "-o", "{tmp}/in.csv"], "is the input file"),
        (["rate", "{tmp}/in.csv", "-o", "{tmp}/o.csv", "--default-plan", "gold"], "'gold'"),
        (["rate", "{tmp}/in.csv", "-o", "{tmp}/o.csv", "--batch-rows", "0"], "--batch-rows"),
        (["rate", "{tmp}/in.csv"], "-o/--output"),
        (["--tariffs", "{tmp}", "rate", "{tmp}/in.csv", "-o", "{tmp}/o.csv"], "tariffs"),
        (["quote", "{{not json"], "not JSON"),
        (["--tariffs", "{tmp}", "quote", "{{}}"], "cannot load the tariffs"),
        (["rerate", "--from", "yesterday", "--to", "2011-01-01"], "RFC 3339"),
        (["rerate", "--from", WINDOW[3], "--to", WINDOW[1]], "--from must be before --to"),
        (["rerate", "--url", "sqlite:///{tmp}/typo/x.sqlite3", *WINDOW], "no directory"),
        (["rerate", "--url", "sqlite:///{tmp}/typo.sqlite3", *WINDOW], "no SQLite database"),
        (["db", "upgrade", "--url", "sqlite:///{tmp}/typo.sqlite3"], "--create"),
        (["db", "upgrade", "--url", "not a url"], "not one"),
        (["keys", "list"], "callrate serve makes it"),
        (["keys", "revoke", "0123456789ab"], "no directory"),
        (["keys", "create", "boss"], "invalid choice"),
        (["bench", "--rows", "-5"], "--rows"),
        (["serve", "--workers", "0"], "--workers"),
        (["loadtest", "quote", "--key", "k", "--url", "http://example.com"], "loopback"),
        (["loadtest", "ingest", "--key", "k", "--concurrency", "0"], "concurrency"),
        (["nonsense"], "invalid choice"),
        ([], "COMMAND"),
    ],
)
def test_a_mistake_is_one_line_and_exit_2(
    argv: list[str], fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in.csv").write_text(CSV)
    (tmp_path / "in.txt").write_text(CSV)
    before = sorted(tmp_path.rglob("*"))
    code, out, err = run([arg.format(tmp=tmp_path) for arg in argv], capsys)
    assert_one_line_refusal(code, err, fragment)
    assert out == ""
    assert sorted(tmp_path.rglob("*")) == before  # refused before any work: nothing written


def test_a_bad_setting_is_one_line(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("CALLRATE_PORT", "eighty")
    code, _, err = run(["keys", "list"], capsys)
    assert_one_line_refusal(code, err, "CALLRATE_PORT")


def test_an_unreadable_input_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "cdrs.parquet"
    source.write_bytes(b"this is not parquet")
    code, _, err = run(["rate", str(source), "-o", str(tmp_path / "out.parquet")], capsys)
    assert_one_line_refusal(code, err, f"cannot rate {source}")


def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(CALLRATE), "rate", str(tmp_path / "cdrs.ndjson"), "-o", str(tmp_path / "out.xls")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [f"callrate rate: no input file {tmp_path / 'cdrs.ndjson'}"]


def test_the_default_plan_comes_from_the_setting_and_is_checked(
    env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.ndjson"
    source.write_text(CSV)
    assert run(["rate", str(source), "-o", str(out)], capsys)[0] == 0
    assert len(out.read_text().splitlines()) == 1  # the row without a plan is rejected

    env.setenv("CALLRATE_DEFAULT_PLAN", "gold")
    get_settings.cache_clear()
    code, _, err = run(["rate", str(source), "-o", str(out)], capsys)
    assert_one_line_refusal(code, err, "CALLRATE_DEFAULT_PLAN 'gold' is not a plan")
    assert "gotone" in err  # the plans it could have been

    env.setenv("CALLRATE_DEFAULT_PLAN", "gotone")
    get_settings.cache_clear()
    code, printed, _ = run(["rate", str(source), "-o", str(out)], capsys)
    assert code == 0
    assert "2 rated, 0 rejected" in printed
    assert [json.loads(line)["charge_fen"] for line in out.read_text().splitlines()] == [126, 126]


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _subcommands(child)


def test_every_option_of_every_command_is_described() -> None:
    parsers = list(_subcommands(build_parser()))
    assert len(parsers) > 10
    for parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            assert len(action.help or "") > 10, (parser.prog, action.dest)


def test_help_gives_formats_and_defaults() -> None:
    helps = {parser.prog: parser.format_help() for parser in _subcommands(build_parser())}
    rerate = " ".join(helps["callrate rerate"].split())
    assert "--from TIME window start, inclusive: RFC 3339, e.g. 2010-01-01T00:00:00+08:00" in rerate
    assert "CALLRATE_DATABASE_URL" in rerate
    rate = " ".join(helps["callrate rate"].split())
    assert "(default: 131072)" in rate
    assert "(default: OUT.rejected.EXT)" in rate
    loadtest = " ".join(helps["callrate loadtest"].split())
    for option in ("--url", "--key", "--batches", "--batch-size", "--concurrency", "--rate"):
        assert option in loadtest
    assert "(default: http://127.0.0.1:8000)" in loadtest
    assert "(default: 500.0)" in loadtest
    assert "revoke" in helps["callrate keys"]


def test_db_upgrade_and_rerate_make_a_database_only_with_create(
    env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "new" / "callrate.sqlite3"
    url = f"sqlite:///{database}"
    code, _, err = run(["rerate", "--url", url, *WINDOW, "--dry-run"], capsys)
    assert_one_line_refusal(code, err, f"no directory {database.parent}")
    assert not database.parent.exists()

    code, out, _ = run(["db", "upgrade", "--url", url, "--create"], capsys)
    assert code == 0
    assert database.is_file()
    lines = out.splitlines()
    applied = [line for line in lines if line.startswith("callrate: applied revision")]
    assert applied[0] == "callrate: applied revision 0001: initial schema"
    assert len(applied) == len(list((ROOT / "migrations" / "versions").glob("0*.py")))
    newest = applied[-1].split()[3].rstrip(":")
    assert lines[len(applied)] == f"callrate: database is at the newest revision ({newest})"
    published = [line.split()[3] for line in lines[len(applied) + 1 :]]
    assert published == ["cmcc-2009", "cmcc-2010"]  # the bundled tariffs, published
    code, out, _ = run(["db", "upgrade", "--url", url], capsys)
    assert code == 0  # it exists now, and nothing is left to apply
    assert out == "callrate: database is already at the newest revision\n"
    code, out, _ = run(["rerate", "--url", url, *WINDOW, "--dry-run"], capsys)
    assert code == 0
    assert json.loads(out)["total"] == 0

    other = tmp_path / "other.sqlite3"
    code, out, _ = run(["rerate", "--url", f"sqlite:///{other}", *WINDOW, "--create"], capsys)
    assert code == 0
    assert other.is_file()
