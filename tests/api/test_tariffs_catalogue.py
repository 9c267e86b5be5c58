"""GET /v1/tariffs: the catalogue of versions, plans with fees and packages, from the files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from service.flows.catalogue import tariffs
from service.rating import load_rater
from tests.conftest import TARIFFS
from tests.conftest_db import Api

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


def test_catalogue_is_generated_from_the_tariff_files(tmp_path: Path) -> None:
    """A plan, a package and a correction added as data show up with their values."""
    directory = tmp_path / "tariffs"
    shutil.copytree(TARIFFS, directory)
    text = (directory / "cmcc-2010.toml").read_text(encoding="utf-8")
    text = text.replace('version = "cmcc-2010"', 'version = "cmcc-2010-fix"')
    text = text.replace(
        "effective_from = 2010-01-01T00:00:00+08:00", "effective_from = 2010-06-01T00:00:00+08:00"
    )
    text += (
        '\n[plans.trial]\nbrand = "试用卡"\nlocal_per_min = 11\nroam_call_per_min = 61\n'
        "roam_called_per_min = 41\nip12593_national_per_min = 51\n"
        '\n[packages.day_talk]\nname = "日间包"\nmonthly_fee_fen = 300\n'
        "free_from = 09:00:00\nfree_until = 17:00:00\n"
    )
    (directory / "cmcc-2010-fix.toml").write_text(text, encoding="utf-8")
    catalogue = [t.model_dump(mode="json") for t in tariffs(load_rater(directory))]
    assert [t["version"] for t in catalogue] == ["cmcc-2009", "cmcc-2010", "cmcc-2010-fix"]
    assert catalogue[1]["in_force_until"] == "2010-06-01T00:00:00+08:00"
    fix = catalogue[2]
    trial = next(p for p in fix["plans"] if p["id"] == "trial")
    assert _plan_row(trial) == ("试用卡", 11, (6, 6), 61, 41, 51)
    assert [p["id"] for p in catalogue[1]["plans"]] == list(SPEC_PLANS_2010)
    day = next(p for p in fix["packages"] if p["id"] == "day_talk")
    assert (day["name"], day["monthly_fee_fen"], day["free_from"]) == ("日间包", 300, "09:00:00")


@pytest.mark.parametrize("version", ["cmcc-2009", "cmcc-2010"])
def test_every_plan_and_package_has_a_chinese_name(version: str) -> None:
    (tariff,) = [t for t in tariffs(load_rater(TARIFFS)) if t.version == version]
    names = [p.brand for p in tariff.plans] + [p.name for p in tariff.packages]
    assert names
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in name) for name in names)
