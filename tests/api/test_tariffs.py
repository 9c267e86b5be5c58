"""GET /v1/tariffs, the catalogue of published versions, and publishing (POST /v1/tariffs,
`callrate tariffs publish`, `db upgrade`): SPEC §7."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, pool

from service.cli import main
from service.config import Settings
from service.db.migrate import alembic_config, upgrade
from service.flows.cdrs import DETAIL_GONE
from service.jobs.batchio import TARIFFS_METADATA
from service.rating import load_rater
from service.rating.scalar import Rater
from service.security import hash_key, key_id_of
from tests.conftest import TARIFFS
from tests.conftest_db import KEYS, MIGRATIONS, Api, running_api

# SPEC §5.9: plan id -> (brand, local_per_min, (ld rate, unit_s), roam_call, roam_called, 12593)
SPEC_PLANS_2010 = {
    "gotone": ("全球通", 40, (6, 6), 60, 40, 35),
    "mzone": ("动感地带", 20, (6, 6), 60, 40, 50),
    "easyown": ("神州行", 30, (6, 6), 60, 40, 50),
    "easyown_easy": ("神州行新轻松卡", 15, (60, 60), 60, 40, 50),
    "easyown_home": ("新神州行家园卡", 15, (60, 60), 60, 40, 50),
}


def _plan_row(plan: dict[str, object]) -> tuple[object, ...]:
    fees = plan["fees"]
    assert isinstance(fees, dict)
    return (
        plan["brand"],
        fees["local_per_min"],
        (fees["ld"]["rate_fen"], fees["ld"]["unit_s"]),
        fees["roam_call_per_min"],
        fees["roam_called_per_min"],
        fees["ip12593_national_per_min"],
    )


def test_catalogue_lists_plans_fees_and_packages(api: Api) -> None:
    response = api.get("/v1/tariffs", role="agent")
    assert response.status_code == 200
    v2009, v2010 = response.json()
    assert v2010["version"] == "cmcc-2010"
    assert v2010["effective_from"] == "2010-01-01T00:00:00+08:00"
    assert v2010["effective_until"] is None
    assert v2010["in_force_until"] is None
    assert {p["id"]: _plan_row(p) for p in v2010["plans"]} == SPEC_PLANS_2010
    assert v2010["packages"] == [
        {
            "id": "ld_night",
            "name": "长话夜聊包",
            "monthly_fee_fen": 500,
            "free_from": "23:00:00",
            "free_until": "07:00:00",
        }
    ]
    # 2009: the domestic LD fee was 7 fen / 6 s; per-minute plans keep 60 fen / min.
    fees_2009 = {p["id"]: p["fees"]["ld"] for p in v2009["plans"]}
    assert fees_2009["gotone"] == {"rate_fen": 7, "unit_s": 6}
    assert fees_2009["easyown_home"] == {"rate_fen": 60, "unit_s": 60}
    assert v2009["in_force_until"] == "2010-01-01T00:00:00+08:00"
    assert api.get("/v1/tariffs").status_code == 401


def _fix_source() -> str:
    """A correction from 2010-06-01 that adds a plan and a package."""
    text = (TARIFFS / "cmcc-2010.toml").read_text(encoding="utf-8")
    text = text.replace('version = "cmcc-2010"', 'version = "cmcc-2010-fix"')
    text = text.replace(
        "effective_from = 2010-01-01T00:00:00+08:00", "effective_from = 2010-06-01T00:00:00+08:00"
    )
    return text + (
        '\n[plans.trial]\nbrand = "试用卡"\nlocal_per_min = 11\nroam_call_per_min = 61\n'
        "roam_called_per_min = 41\nip12593_national_per_min = 51\n"
        '\n[packages.day_talk]\nname = "日间包"\nmonthly_fee_fen = 300\n'
        "free_from = 09:00:00\nfree_until = 17:00:00\n"
    )


def test_the_catalogue_shows_each_published_version_with_its_data(api: Api, tmp_path: Path) -> None:
    """A plan, a package and a correction published as data show up with their values."""
    fix = tmp_path / "cmcc-2010-fix.toml"
    fix.write_text(_fix_source(), encoding="utf-8")
    (published,) = api.publish(fix)
    assert published.status_code == 201
    catalogue = api.get("/v1/tariffs", role="agent").json()
    assert [t["version"] for t in catalogue] == ["cmcc-2009", "cmcc-2010", "cmcc-2010-fix"]
    assert catalogue[1]["in_force_until"] == "2010-06-01T00:00:00+08:00"
    assert [t["published_by"] for t in catalogue[:2]] == ["db upgrade", "db upgrade"]
    assert catalogue[2]["published_by"] == key_id_of(hash_key(KEYS["admin"]))
    assert catalogue[2]["digest"] == published.json()["tariff"]["digest"]
    assert catalogue[2]["free_numbers"] == ["110", "112", "119", "120", "122", "10086"]
    trial = next(p for p in catalogue[2]["plans"] if p["id"] == "trial")
    assert _plan_row(trial) == ("试用卡", 11, (6, 6), 61, 41, 51)
    assert [p["id"] for p in catalogue[1]["plans"]] == list(SPEC_PLANS_2010)
    day = next(p for p in catalogue[2]["packages"] if p["id"] == "day_talk")
    assert (day["name"], day["monthly_fee_fen"], day["free_from"]) == ("日间包", 300, "09:00:00")


@pytest.mark.parametrize("version", ["cmcc-2009", "cmcc-2010"])
def test_every_plan_and_package_has_a_chinese_name(version: str) -> None:
    tariff = load_rater(TARIFFS).book.by_version(version)
    names = [p.brand for p in tariff.plans.values()] + [p.name for p in tariff.packages.values()]
    assert names
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in name) for name in names)


QUOTE = {
    "caller": "13800138000",
    "callee": "02188001234",
    "start": "2010-07-01T10:00:00+08:00",
    "duration_s": 60,
    "plan": "gotone",
}


def _post(api: Api, source: str, role: str = "admin") -> tuple[int, dict[str, object]]:
    answer = api.post(
        "/v1/tariffs", role=role, content=source.encode(), headers={"content-type": "text/plain"}
    )
    body: dict[str, object] = answer.json()
    return answer.status_code, body


def _correction(ld_per_6s: int, *, version: str = "cmcc-2010-ld5") -> str:
    text = (TARIFFS / "cmcc-2010.toml").read_text(encoding="utf-8")
    text = text.replace('version = "cmcc-2010"', f'version = "{version}"')
    text = text.replace(
        "effective_from = 2010-01-01T00:00:00+08:00", "effective_from = 2010-06-01T00:00:00+08:00"
    )
    return text.replace("domestic_per_6s = 6", f"domestic_per_6s = {ld_per_6s}")


def test_a_published_correction_is_quoted_within_5_s_rerated_explained_and_kept(
    api: Api, settings: Settings, rater: Rater
) -> None:
    """SPEC §7 end to end: publish, the server quotes with it within 5 s, a re-rate changes
    the stored CDR, both ratings are explained, a second re-rate changes nothing, the id
    republished with other content is refused, and a restart still rates with it."""
    cdr = {**QUOTE, "id": "jul-ld"}
    assert api.post("/v1/cdrs", role="switch", json=[cdr]).json()["results"][0]["charge_fen"] == 60
    status, body = _post(api, _correction(5))
    assert status == 201, body
    published_at = time.monotonic()
    while api.post("/v1/quote", role="agent", json=QUOTE).json()["charge_fen"] != 50:
        assert time.monotonic() - published_at < 5.0, "not quoted with the correction in 5 s"
        time.sleep(0.05)

    window = {"from": "2010-06-01T00:00:00+08:00", "to": "2010-08-01T00:00:00+08:00"}
    job = api.get(
        f"/v1/rerate/{api.post('/v1/rerate', role='admin', json=window).json()['id']}", role="admin"
    ).json()
    assert (job["status"], job["changed"], job["delta_fen"]) == ("done", 1, -10)
    ratings = api.get("/v1/cdrs/jul-ld", role="agent").json()["ratings"]
    assert [(r["tariff"], r["charge_fen"]) for r in ratings] == [
        ("cmcc-2010", 60),
        ("cmcc-2010-ld5", 50),
    ]
    for rating in ratings:
        assert rating["items"], rating
        assert DETAIL_GONE not in rating["explanation_zh"]
        assert "元" in rating["explanation_zh"]
    again = api.get(
        f"/v1/rerate/{api.post('/v1/rerate', role='admin', json=window).json()['id']}", role="admin"
    ).json()
    assert (again["changed"], again["delta_fen"]) == (0, 0)

    status, refused = _post(api, _correction(4))
    assert status == 409
    assert refused["error"] == "conflict"
    assert "ld.domestic_per_6s: 5 -> 4" in str(refused["message"])

    # A restart with no tariff setting at all: the published set, correction included.
    with running_api(settings.model_copy(update={"tariffs_poll_s": 0.5}), rater) as restarted:
        assert restarted.app.state.rater.book.versions[-1] == "cmcc-2010-ld5"
        quote = restarted.post("/v1/quote", role="agent", json=QUOTE).json()
        assert (quote["charge_fen"], quote["tariff"]) == (50, "cmcc-2010-ld5")


def test_publishing_is_validated_idempotent_and_admin_only(api: Api) -> None:
    source = _correction(5)
    assert _post(api, source, role="agent")[0] == 403
    assert _post(api, source)[0] == 201
    status, body = _post(api, "# republished with another comment\n" + source)
    assert (status, body["published"]) == (200, False)  # same content: nothing changes
    status, body = _post(api, source.replace("domestic_per_6s = 5", "domestic_per_6s = -1"))
    assert (status, body["field"]) == (422, "tariff")  # validated before anything else
    status, body = _post(
        api,
        _correction(5, version="cmcc-2010-bad").replace(
            "domestic_per_6s = 5", "domestic_per_6s = -1"
        ),
    )
    assert (status, body["field"]) == (422, "tariff")
    assert "ld.domestic_per_6s" in str(body["message"])
    status, body = _post(api, "version = ")
    assert status == 422
    status, body = _post(api, _correction(5, version="cmcc-2010-same-start"))
    assert (status, body["field"]) == (409, "effective_from")  # two versions, one instant
    assert "start at the same instant" in str(body["message"])
    versions = [t["version"] for t in api.get("/v1/tariffs", role="agent").json()]
    assert versions == ["cmcc-2009", "cmcc-2010", "cmcc-2010-ld5"]


def test_cli_publishes_lists_and_refuses_a_changed_version(
    api: Api, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = settings.effective_database_url
    fix = tmp_path / "cmcc-2010-ld5.toml"
    fix.write_text(_correction(5), encoding="utf-8")
    assert main(["tariffs", "publish", str(fix), "--url", url]) == 0
    assert "published cmcc-2010-ld5 (sha256:" in capsys.readouterr().out
    assert main(["tariffs", "publish", str(fix), "--url", url]) == 0
    assert "already published, unchanged" in capsys.readouterr().out
    fix.write_text(_correction(4), encoding="utf-8")
    assert main(["tariffs", "publish", str(fix), "--url", url]) == 1
    assert "ld.domestic_per_6s: 5 -> 4" in capsys.readouterr().err
    assert main(["tariffs", "list", "--url", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["cmcc-2009", "cmcc-2010", "cmcc-2010-ld5"]
    assert all("sha256:" in line for line in lines)
    # `db upgrade` with a directory whose cmcc-2010 differs keeps the published one.
    directory = tmp_path / "changed"
    directory.mkdir()
    (directory / "cmcc-2010.toml").write_text(
        (TARIFFS / "cmcc-2010.toml")
        .read_text(encoding="utf-8")
        .replace("domestic_per_6s = 6", "domestic_per_6s = 9"),
        encoding="utf-8",
    )
    assert main(["--tariffs", str(directory), "db", "upgrade", "--url", url]) == 0
    err = capsys.readouterr().err
    assert "kept the published version" in err
    assert "ld.domestic_per_6s: 6 -> 9" in err
    assert (
        api.post("/v1/quote", role="agent", json={**QUOTE, "start": "2010-03-01T10:00:00"}).json()[
            "charge_fen"
        ]
        == 60
    )


def test_rate_with_database_url_uses_the_published_set_and_records_digests(
    api: Api, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _post(api, _correction(5))[0] == 201
    source, out = tmp_path / "in.ndjson", tmp_path / "out.parquet"
    source.write_text(orjson.dumps({**QUOTE, "id": "x"}).decode() + "\n", encoding="utf-8")
    url = settings.effective_database_url
    assert main(["rate", str(source), "-o", str(out), "--database-url", url]) == 0
    assert "cmcc-2010-ld5 sha256:" in capsys.readouterr().out
    table = pq.read_table(out)
    assert table.column("charge_fen").to_pylist() == [50]
    digests = orjson.loads(table.schema.metadata[TARIFFS_METADATA.encode()])
    catalogue = api.get("/v1/tariffs", role="agent").json()
    assert digests == {t["version"]: t["digest"] for t in catalogue}
    # without it, the tariff directory's files (no correction) and their digests
    assert main(["rate", str(source), "-o", str(out)]) == 0
    assert pq.read_table(out).column("charge_fen").to_pylist() == [60]


def test_an_existing_database_is_migrated_to_published_tariffs_keeping_every_rating(
    api: Api, settings: Settings, rater: Rater
) -> None:
    """A database from before migration 0007 (ratings, no published tariffs): `db upgrade`
    publishes the tariff directory's versions; every rating stays and is explained."""
    cdrs = [{**QUOTE, "id": "old-1"}, {**QUOTE, "id": "old-2", "start": "2009-07-01T10:00:00"}]
    assert api.post("/v1/cdrs", role="switch", json=cdrs).json()["counts"]["rated"] == 2
    url = settings.effective_database_url
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as connection:
        config = alembic_config(url=url, migrations_dir=MIGRATIONS)
        config.attributes["connection"] = connection
        command.downgrade(config, "0006")
        assert "tariff_versions" not in inspect(connection).get_table_names()
    engine.dispose()
    done = upgrade(url=url, migrations_dir=MIGRATIONS)
    assert [a.revision for a in done.applied] == ["0007"]
    assert [(p.version, p.new) for p in done.published] == [
        ("cmcc-2009", True),
        ("cmcc-2010", True),
    ]
    with running_api(settings, rater) as restarted:
        for cdr_id, tariff in (("old-1", "cmcc-2010"), ("old-2", "cmcc-2009")):
            (rating,) = restarted.get(f"/v1/cdrs/{cdr_id}", role="agent").json()["ratings"]
            assert rating["tariff"] == tariff
            assert rating["items"]
            assert DETAIL_GONE not in rating["explanation_zh"]
