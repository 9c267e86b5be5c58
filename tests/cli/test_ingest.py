"""`callrate ingest`: file pickup of native, FreeSWITCH and 3GPP files (SPEC §3.4), idempotent
per record, done/ and failed/, one summary line, exit 1 when records went to suspense."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from service.cli import main
from service.config import get_settings
from service.db.models import Cdr, SuspenseRow
from tests.mediation.fixtures import (
    MEDIATION_TOML,
    bcd_time,
    cs_record,
    framed,
    fs_json,
    fs_json_bytes,
    fs_xml_bytes,
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Iterator[str]:
    """The CLI's settings: the fresh database, gotone for unregistered callers, a mediation
    file."""
    for name in list(os.environ):
        if name.startswith("CALLRATE_") and not name.startswith(("CALLRATE_TEST_", "CALLRATE_REQ")):
            monkeypatch.delenv(name)
    mediation = tmp_path / "mediation.toml"
    mediation.write_text(MEDIATION_TOML, encoding="utf-8")
    monkeypatch.setenv("CALLRATE_DATABASE_URL", database_url)
    monkeypatch.setenv("CALLRATE_DEFAULT_PLAN", "gotone")
    monkeypatch.setenv("CALLRATE_MEDIATION_FILE", str(mediation))
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


def ingest(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["ingest", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def rows(url: str) -> tuple[int, int]:
    engine = create_engine(url)
    with engine.connect() as connection:
        counts = tuple(
            int(connection.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Cdr, SuspenseRow)
        )
    engine.dispose()
    return counts  # type: ignore[return-value]


def native_line(record_id: str) -> str:
    cdr = {
        "id": record_id,
        "caller": "13800138000",
        "callee": "02188001234",
        "start": "2010-03-01T10:00:00+08:00",
        "duration_s": 125,
    }
    return json.dumps(cdr)


def test_a_pickup_directory(env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pickup = tmp_path / "pickup"
    pickup.mkdir()
    (pickup / "a.ndjson").write_text(
        "\n".join(native_line(f"n{i}") for i in range(40)) + "\n", encoding="utf-8"
    )
    (pickup / "b.cdr.json").write_bytes(fs_json_bytes(fs_json()))
    (pickup / "c.cdr.xml").write_bytes(fs_xml_bytes())
    records = [cs_record(callReference=bytes([i])) for i in range(3)]
    (pickup / "d.msc").write_bytes(framed(*records))
    truncated = b"".join(cs_record(callReference=bytes([9, i])) for i in range(2))[:-4]
    (pickup / "e.msc").write_bytes(truncated)
    (pickup / "f.tmp").write_bytes(b"a transfer in progress")

    code, out, _ = ingest([str(pickup)], capsys)
    assert code == 1  # the truncated file's remainder went to suspense
    assert out.strip() == (
        "callrate ingest: 5 files (1 failed), 46 rated, 0 duplicate, "
        "1 rejected to suspense, 0 partial held (record.not_ber 1)"
    )
    assert sorted(p.name for p in (pickup / "done").iterdir()) == [
        "a.ndjson",
        "b.cdr.json",
        "c.cdr.xml",
        "d.msc",
    ]
    assert sorted(p.name for p in (pickup / "failed").iterdir()) == ["e.msc", "e.msc.reason"]
    assert "truncated" in (pickup / "failed" / "e.msc.reason").read_text(encoding="utf-8")
    assert (pickup / "f.tmp").exists()
    assert rows(env) == (46, 1)

    # the same files again (an operator moves them back): nothing added, exit 0
    for name in ("a.ndjson", "b.cdr.json", "c.cdr.xml", "d.msc"):
        shutil.move(pickup / "done" / name, pickup / name)
    code, out, _ = ingest([str(pickup)], capsys)
    assert code == 0
    assert "0 rated, 45 duplicate, 0 rejected" in out
    assert rows(env) == (46, 1)


def test_files_by_name_and_format_3gpp(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "part1.ber"
    first.write_bytes(cs_record(callReference=b"\x55", sequenceNumber=1, causeForTerm=1))
    last = tmp_path / "part2.ber"
    last.write_bytes(
        cs_record(
            callReference=b"\x55",
            sequenceNumber=2,
            causeForTerm=0,
            callDuration=5,
            answerTime=bcd_time("100301102000+0800"),
        )
    )
    code, out, _ = ingest(["--format", "3gpp", str(first)], capsys)
    assert (code, "1 partial held" in out) == (0, True)
    code, out, _ = ingest(["--format", "3gpp", str(last)], capsys)
    assert code == 0
    assert "1 rated" in out
    assert first.exists()  # named files are not moved
    assert last.exists()
    assert rows(env)[0] == 1


def test_a_missing_path_is_one_line_and_exit_2(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = ingest([str(tmp_path / "nowhere")], capsys)
    assert code == 2
    assert err.startswith("callrate")
    assert "no such file" in err
