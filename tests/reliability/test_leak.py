"""SPEC §8: logs never contain a full phone number. A real `callrate serve` is driven with
payloads full of numbers (valid, rejected, malformed, NUL bytes, a broken audit table that
makes statements fail with their parameters) and its captured stdout/stderr is searched for
every number the payloads held."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import create_engine, pool, text

from tests.api.test_cdrs import cdr
from tests.conftest_db import KEYS
from tests.reliability.test_outage import callrate_serve

NUMBERS = ("13800138000", "13912345678", "13712345678", "13612345678", "02188001234")


def headers(role: str, content_type: str = "application/json") -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}", "Content-Type": content_type}


def drive(client: httpx.Client) -> list[int]:
    """The payloads; the statuses they got."""
    records: list[Any] = [
        cdr("leak-ok", callee="13912345678", calling_number="+8613712345678"),
        cdr("leak-bad", callee="x", redirect={"to": ["13612345678"]}),
        cdr("leak-nul\u0000", callee="13912345678"),
        cdr("leak-nul-field", callee="1391234\u00005678"),
        {"id": "leak-nested", "caller": "13800138000", "deep": [[[["13712345678"]]]]},
        "13612345678",
    ]
    quote = {k: v for k, v in cdr("q", callee="13912345678").items() if k != "id"}
    ndjson = b"\n".join(orjson.dumps(r) for r in records[:2]) + b'\n{"caller":"13712345678"'
    calls = [
        ("POST", "/v1/cdrs", "switch", orjson.dumps(records), "application/json"),
        ("POST", "/v1/cdrs", "switch", ndjson, "application/x-ndjson"),
        ("POST", "/v1/cdrs", "switch", b'[{"caller": "13612345678",', "application/json"),
        ("POST", "/v1/quote", "agent", orjson.dumps(quote), "application/json"),
        ("POST", "/v1/quote", "agent", orjson.dumps({**quote, "duration_s": "x"}), None),
        ("GET", "/v1/cdrs/leak-ok", "agent", b"", None),
        ("GET", "/v1/cdrs/13912345678", "agent", b"", None),
        ("GET", "/v1/subscribers/13912345678", "agent", b"", None),
        ("PUT", "/v1/subscribers/13912345678", "admin", b'{"plan": 13712345678}', None),
    ]
    statuses = []
    for method, path, role, body, content_type in calls:
        response = client.request(
            method, path, content=body, headers=headers(role, content_type or "application/json")
        )
        statuses.append(response.status_code)
    return statuses


def test_no_full_number_in_the_served_process_output(database_url: str, tmp_path: Path) -> None:
    with (
        callrate_serve(database_url, tmp_path) as served,
        httpx.Client(base_url=served.base_url, timeout=30) as client,
    ):
        first = drive(client)
        # statements that fail now carry numbers in their parameters: the audit row of a quote
        engine = create_engine(database_url, poolclass=pool.NullPool)
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE audit_log RENAME TO audit_log_away"))
        try:
            statuses = drive(client)
        finally:
            with engine.begin() as connection:
                connection.execute(text("ALTER TABLE audit_log_away RENAME TO audit_log"))
            engine.dispose()
    print(f"leak: statuses {first} then, audit table away, {statuses}")
    output = served.output.read_text(encoding="utf-8", errors="replace")
    assert 500 in statuses  # a failed audit insert: logged with its statement
    assert "audit_log" in output  # the failure was logged, so the output was searched
    leaked = [number for number in NUMBERS if number in re.sub(r"\s", "", output)]
    assert not leaked, output[-5000:]
