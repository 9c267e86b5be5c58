"""service.ingest.mediation_file: the site's TOML, read once, refused with the key at fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.ingest.mediation_file import NO_MEDIATION, MediationFileError, load_mediation
from tests.mediation.fixtures import MEDIATION_TOML


def test_the_tables_are_read_and_msc_keys_are_digits(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text(MEDIATION_TOML, encoding="utf-8")
    mediation = load_mediation(path)
    assert dict(mediation.switch_areas) == {"fs-sh-1": "021", "fs-bj-1": "010"}
    assert dict(mediation.msc_areas) == {"8613900210": "021", "8613900100": "010"}
    assert load_mediation(None) is NO_MEDIATION


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[3gpp.msc_areas]\n"861" = 21\n', "'861'"),
        ('[freeswitch]\nswitch_areas = "x"\n', "[freeswitch.switch_areas]"),
        ("[3gpp\n", "m.toml"),
    ],
)
def test_a_bad_file_names_what_is_wrong(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MediationFileError, match=problem.replace("[", r"\[").replace(".", r"\.")):
        load_mediation(path)
