"""Tariff files: validation messages, version windows, and the 2009/2010 boundary."""

from __future__ import annotations

import shutil
from datetime import time
from pathlib import Path

import pytest

from service.rating.scalar import Rater
from service.rating.tariff import TariffError, in_window, load_book, load_tariff
from tests.conftest import TARIFFS, write_correction


def _copy_tariffs(tmp_path: Path) -> Path:
    for path in TARIFFS.glob("*.toml"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_bundled_tariffs_load() -> None:
    book = load_book(TARIFFS)
    assert [t.version for t in book.tariffs] == ["cmcc-2009", "cmcc-2010"]
    assert book.tariffs[1].plans["gotone"].local_per_min == 40
    assert book.tariffs[0].ld.domestic_per_6s == 7


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        (
            "local_per_min = 40",
            "local_per_min = -40",
            "plans.gotone.local_per_min",
            "greater than or equal to 0",
        ),
        (
            "local_per_min = 40",
            'local_per_min = "40"',
            "plans.gotone.local_per_min",
            "valid integer",
        ),
        ("hmt_per_6s = 20", "hmt_per_6s = 20\nhmt_per_60s = 20", "ld.hmt_per_60s", "Extra inputs"),
        ("hmt_per_6s = 20\n", "", "ld.hmt_per_6s", "Field required"),
        ('us_ca = ["US", "CA"]', 'us_ca = ["USA"]', "ip17951.tiers.us_ca.0", "pattern"),
        ('timezone = "Asia/Shanghai"', 'timezone = "Mars/Base"', "timezone", "unknown time zone"),
        ("busy_from = 08:00:00", 'busy_from = "8am"', "ip12593.busy_from", "valid time"),
        (
            "effective_from = 2010-01-01T00:00:00+08:00",
            "effective_from = 2010-01-01T00:00:00",
            "effective_from",
            "UTC offset",
        ),
    ],
)
def test_bad_file_names_file_key_and_problem(
    tmp_path: Path, old: str, new: str, key: str, problem: str
) -> None:
    directory = _copy_tariffs(tmp_path)
    _edit(directory / "cmcc-2010.toml", old, new)
    with pytest.raises(TariffError) as caught:
        load_book(directory)
    message = str(caught.value)
    assert "cmcc-2010.toml" in message
    assert f"key {key}" in message
    assert problem in message


def test_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "cmcc-2011.toml"
    path.write_text("version = \n", encoding="utf-8")
    with pytest.raises(TariffError, match=r"cmcc-2011\.toml"):
        load_tariff(path)


def test_version_must_match_file_name(tmp_path: Path) -> None:
    directory = _copy_tariffs(tmp_path)
    (directory / "cmcc-2010.toml").rename(directory / "cmcc-2010b.toml")
    with pytest.raises(TariffError, match=r"cmcc-2010b\.toml: key version"):
        load_book(directory)


def test_same_start_is_refused(tmp_path: Path) -> None:
    directory = _copy_tariffs(tmp_path)
    write_correction(directory, "cmcc-2010", "cmcc-2010b")
    with pytest.raises(TariffError, match="start at the same instant"):
        load_book(directory)


def test_a_correction_inside_a_closed_window_takes_over_until_its_end(tmp_path: Path) -> None:
    directory = _copy_tariffs(tmp_path)
    write_correction(
        directory,
        "cmcc-2009",
        "cmcc-2009-fix",
        starts="2009-12-01T00:00:00+08:00",
    )
    book = load_book(directory)
    versions = {
        stamp: book.tariffs[i].version if (i := book.index_at(stamp)) is not None else None
        for stamp in (1_259_596_799, 1_259_596_800, 1_262_275_199, 1_262_275_200)
    }
    assert list(versions.values()) == ["cmcc-2009", "cmcc-2009-fix", "cmcc-2009-fix", "cmcc-2010"]


def test_no_files(tmp_path: Path) -> None:
    with pytest.raises(TariffError, match="no tariff files"):
        load_book(tmp_path)


def test_a_correction_is_a_new_file_that_takes_over(tmp_path: Path) -> None:
    directory = _copy_tariffs(tmp_path)
    write_correction(
        directory,
        "cmcc-2010",
        "cmcc-2010-fix",
        starts="2010-06-01T00:00:00+08:00",
        domestic_per_6s=5,
    )
    book = load_book(directory)
    may = int(book.tariffs[1].effective_from.timestamp()) + 150 * 86_400
    june = int(book.tariffs[2].effective_from.timestamp())
    assert book.tariffs[book.index_at(may) or 0].version == "cmcc-2010"
    assert book.tariffs[book.index_at(june) or 0].version == "cmcc-2010-fix"
    assert book.index_at(int(book.tariffs[0].effective_from.timestamp()) - 1) is None


BOUNDARY = [
    ("2009-12-31T23:59:59+08:00", "cmcc-2009"),
    ("2010-01-01T00:00:00+08:00", "cmcc-2010"),
    ("2009-12-31T23:59:59", "cmcc-2009"),  # no offset means +08:00
    ("2010-01-01T00:00:00", "cmcc-2010"),
    ("2009-12-31T15:59:59Z", "cmcc-2009"),
    ("2009-12-31T16:00:00Z", "cmcc-2010"),
    ("2009-12-31T16:00:00+00:00", "cmcc-2010"),
    ("2009-12-31T10:59:59-05:00", "cmcc-2009"),
    ("2009-12-31T11:00:00-05:00", "cmcc-2010"),
    ("2010-01-01T00:59:59+09:00", "cmcc-2009"),
    ("2010-01-01T01:00:00+09:00", "cmcc-2010"),
    ("2009-12-31T23:59:59.999999+08:00", "cmcc-2009"),
    ("2010-01-01T00:00:00.5+08:00", "cmcc-2010"),
    ("2008-03-01T00:00:00+08:00", "cmcc-2009"),
]


@pytest.mark.parametrize(("start", "version"), BOUNDARY)
def test_reform_boundary_in_several_zones(rater: Rater, start: str, version: str) -> None:
    rating = rater.rate_raw(
        {
            "caller": "13800138000",
            "callee": "02188001234",
            "start": start,
            "duration_s": 125,
            "plan": "gotone",
        }
    )
    assert rating.tariff == version
    assert rating.charge_fen == (267 if version == "cmcc-2009" else 126)


@pytest.mark.parametrize(
    ("second", "inside"),
    [
        (0, True),
        (6 * 3600 + 3599, True),
        (7 * 3600, False),
        (22 * 3600 + 3599, False),
        (23 * 3600, True),
    ],
)
def test_window_wrapping_midnight(second: int, inside: bool) -> None:
    assert in_window(second, time(23), time(7)) is inside


def test_window_within_a_day() -> None:
    assert in_window(8 * 3600, time(8), time(20))
    assert not in_window(20 * 3600, time(8), time(20))
