"""House rule 1: the rating core is pure: no web framework, no database, no network."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import service.rating

FORBIDDEN = (
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "uvicorn",
    "httpx",
    "prometheus_client",
    "phonenumbers",
    "service.db",
    "service.api",
    "service.flows",
    "service.ingest",
    "service.jobs",
    "service.ops",
    "service.config",
)
# The core itself opens no connection; numpy and pydantic may load socket, so only the
# core's own imports are checked for it.
FORBIDDEN_DIRECT = (*FORBIDDEN, "socket", "urllib", "http")
CORE = Path(service.rating.__file__).parent


def _forbidden(module: str, forbidden: tuple[str, ...]) -> bool:
    """`module` is one of `forbidden`, inside one of them, or a top-level name among them."""
    return module.split(".")[0] in forbidden or any(
        module == f or module.startswith(f + ".") for f in forbidden
    )


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_modules_import_nothing_forbidden() -> None:
    for path in CORE.glob("*.py"):
        bad = {n for n in _imports(path) if _forbidden(n, FORBIDDEN_DIRECT)}
        assert not bad, f"{path.name} imports {bad}"


def test_importing_the_core_loads_nothing_forbidden() -> None:
    code = (
        "import sys, service.rating.scalar, service.rating.pricing;"
        f"f={FORBIDDEN!r};"
        "bad=[m for m in sys.modules if m.split('.')[0] in f"
        " or any(m == p or m.startswith(p + '.') for p in f)];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
