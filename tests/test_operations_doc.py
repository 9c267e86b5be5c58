"""docs/operations.md lists every setting the service reads and every endpoint it serves."""

from __future__ import annotations

import re

from service.api.app import create_app
from service.config import Settings
from tests.conftest import ROOT

OPERATIONS = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
# served outside the OpenAPI document: the API pages, the console, the front page
UNDOCUMENTED_IN_OPENAPI = {"/", "/docs", "/redoc", "/openapi.json", "/agent/"}
ENDPOINT = re.compile(r"`(?:(GET|POST|PUT|DELETE|PATCH) )?(/[^`\s]*)`")


def _section(title: str) -> str:
    start = OPERATIONS.index(f"\n## {title}\n")
    end = OPERATIONS.find("\n## ", start + 1)
    return OPERATIONS[start : end if end > 0 else None]


def _table_rows(title: str) -> list[str]:
    """The first cell of each row of the section's table."""
    return [line.split("|")[1] for line in _section(title).splitlines() if line.startswith("| `")]


def _variable(name: str) -> str:
    field = Settings.model_fields[name]
    alias = field.validation_alias
    return alias if isinstance(alias, str) else f"CALLRATE_{name.upper()}"


def test_every_setting_is_listed_and_every_listed_one_exists() -> None:
    listed = {v for cell in _table_rows("Settings") for v in re.findall(r"`([A-Z_]+)`", cell)}
    settings = {_variable(name) for name in Settings.model_fields}
    assert settings - listed == set(), "settings missing from docs/operations.md"
    assert listed - settings == set(), "docs/operations.md lists settings that do not exist"


def _documented() -> set[tuple[str | None, str]]:
    """(method or None, path with {parameters} as `{}`) of each endpoint the table names."""
    found = set()
    for cell in _table_rows("Endpoints"):
        for method, path in ENDPOINT.findall(cell):
            found.add((method or None, re.sub(r"\{[^}]*\}", "{}", path)))
    return found


def _served() -> set[tuple[str, str]]:
    app = create_app(Settings(api_keys="switch=k"))
    return {
        (method.upper(), re.sub(r"\{[^}]*\}", "{}", path))
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }


def test_every_endpoint_is_listed_and_every_listed_one_is_served() -> None:
    documented = _documented()
    documented_paths = {path for _, path in documented}
    served = _served()
    missing = {
        (method, path)
        for method, path in served
        if (method, path) not in documented and (None, path) not in documented
    }
    assert not missing, "endpoints missing from docs/operations.md"
    assert documented_paths >= UNDOCUMENTED_IN_OPENAPI
    unknown = documented_paths - {path for _, path in served} - UNDOCUMENTED_IN_OPENAPI
    assert not unknown, "docs/operations.md lists endpoints the app does not serve"


def test_the_table_is_read_as_the_app_serves_it() -> None:
    served = _served()
    assert ("GET", "/v1/subscribers/{}/usage") in served
    assert ("GET", "/v1/subscribers/{}/usage") in _documented()
    assert len(served) >= 14
