"""SPEC §6.2: an `id.conflict` goes to suspense byte for byte, whichever lane rated the
batch (per record below 32 records, as columns from 32 on), array or NDJSON."""

from __future__ import annotations

import base64

import orjson
import pytest

from tests.api.test_cdrs import cdr
from tests.conftest_db import Api


@pytest.mark.parametrize("others", [2, 39])
@pytest.mark.parametrize("ndjson", [False, True])
def test_id_conflict_is_kept_in_suspense(api: Api, others: int, ndjson: bool) -> None:
    first = api.post("/v1/cdrs", role="switch", json=[cdr("X", duration_s=10)])
    assert first.json()["counts"]["rated"] == 1
    conflicting = orjson.dumps(cdr("X", duration_s=20))
    records = [conflicting, *(orjson.dumps(cdr(f"v{n}")) for n in range(others))]
    if ndjson:
        body, kind = b"\n".join(records) + b"\n", "application/x-ndjson"
    else:
        body, kind = b"[" + b",".join(records) + b"]", "application/json"
    answer = api.post(
        "/v1/cdrs", role="switch", content=body, headers={"Content-Type": kind}
    ).json()
    assert answer["counts"] == {"rated": others, "duplicate": 0, "rejected": 1}
    assert answer["results"][0]["code"] == "id.conflict"
    items = api.get("/v1/suspense", role="admin").json()["items"]
    assert [(s["record_id"], s["code"]) for s in items] == [("X", "id.conflict")]
    assert base64.b64decode(items[0]["raw_base64"]) == conflicting
    # the switch's retry adds no second open row
    api.post("/v1/cdrs", role="switch", content=body, headers={"Content-Type": kind})
    assert len(api.get("/v1/suspense", role="admin").json()["items"]) == 1
