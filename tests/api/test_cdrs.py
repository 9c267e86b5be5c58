"""POST /v1/cdrs and GET /v1/cdrs/{id}: SPEC §6.2 ingestion semantics, masking, audit."""

from __future__ import annotations

import functools
import re
from typing import Any

import orjson
import pytest
from sqlalchemy import create_engine, func, select

from service.config import Settings
from service.db import repository
from service.db.models import Cdr, RatingRow, SuspenseRow
from service.rating.scalar import Rater
from tests.conftest_db import KEYS, Api, running_api, through_stack


def cdr(record_id: str, **overrides: Any) -> dict[str, Any]:
    """A rateable CDR: 125 s domestic LD from home on gotone = 126 fen."""
    return {
        "id": record_id,
        "caller": "13800138000",
        "callee": "02188001234",
        "start": "2010-03-01T10:00:00+08:00",
        "duration_s": 125,
        "plan": "gotone",
        **overrides,
    }


def table_counts(api: Api) -> tuple[int, int, int]:
    """(cdrs, ratings, suspense) rows in the database."""
    engine = create_engine(api.settings.effective_database_url)
    with engine.connect() as connection:
        counts = tuple(
            int(connection.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Cdr, RatingRow, SuspenseRow)
        )
    engine.dispose()
    return counts  # type: ignore[return-value]


def test_batch_rates_stores_and_answers_per_record(api: Api) -> None:
    batch = [cdr("a"), cdr("b", duration_s=3), cdr("c", callee="02188ABC234")]
    response = api.post("/v1/cdrs", role="switch", json=batch)
    assert response.status_code == 200
    body = response.json()
    assert body["counts"] == {"rated": 2, "duplicate": 0, "rejected": 1}
    results = body["results"]
    assert [(r["index"], r["id"], r["result"]) for r in results] == [
        (0, "a", "rated"),
        (1, "b", "rated"),
        (2, "c", "rejected"),
    ]
    assert results[0]["charge_fen"] == 126
    assert results[0]["call_class"] == "domestic_ld"
    assert results[1]["charge_fen"] == 0
    assert results[2]["field"] == "callee"
    assert results[2]["code"] == "callee.invalid_characters"
    assert table_counts(api) == (2, 2, 1)


def test_retried_batch_is_duplicate_and_writes_nothing(api: Api) -> None:
    batch = [cdr("a"), cdr("b", duration_s=61), cdr("bad", callee="x")]
    first = api.post("/v1/cdrs", role="switch", json=batch).json()
    counts_after_first = table_counts(api)
    retry = api.post("/v1/cdrs", role="switch", json=batch).json()
    assert retry["counts"] == {"rated": 0, "duplicate": 2, "rejected": 1}
    assert [r.get("charge_fen") for r in retry["results"][:2]] == [
        r["charge_fen"] for r in first["results"][:2]
    ]
    assert "call_class" not in retry["results"][0]
    assert table_counts(api) == counts_after_first


def test_same_id_twice_in_one_batch_claimed_by_the_stored_record(api: Api) -> None:
    batch = [cdr("a"), cdr("a", duration_s=600), cdr("z", callee="x"), cdr("z"), cdr("a")]
    results = api.post("/v1/cdrs", role="switch", json=batch).json()["results"]
    assert [r["result"] for r in results] == [
        "rated",
        "rejected",
        "rejected",
        "rated",
        "duplicate",
    ]
    assert results[1]["code"] == "id.conflict"
    assert results[2]["code"] == "callee.invalid_characters"
    assert results[3]["charge_fen"] == 126
    assert results[4]["charge_fen"] == 126
    assert table_counts(api) == (2, 2, 2)


def test_ndjson_batch_with_a_line_that_is_not_json(api: Api) -> None:
    lines = [orjson.dumps(cdr("n1")), b"{not json", b"", orjson.dumps(cdr("n2"))]
    response = api.post(
        "/v1/cdrs",
        role="switch",
        content=b"\n".join(lines) + b"\n",
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["id"], r["result"]) for r in results] == [
        ("n1", "rated"),
        (None, "rejected"),
        ("n2", "rated"),
    ]
    assert results[1]["code"] == "record.not_json"
    suspense = api.get("/v1/suspense", role="admin").json()["items"]
    assert [s["raw"] for s in suspense] == ["{not json"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"", "application/json"),
        (b"garbage\nmore garbage\n", "application/x-ndjson"),
    ],
)
def test_body_that_is_not_json_is_400(api: Api, content: bytes, content_type: str) -> None:
    response = api.post(
        "/v1/cdrs", role="switch", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "body.not_json"
    assert table_counts(api) == (0, 0, 0)


def test_body_that_is_not_an_array_is_422(api: Api) -> None:
    response = api.post("/v1/cdrs", role="switch", json=cdr("a"))
    assert response.status_code == 422
    assert response.json()["error"] == "input.invalid"


def test_too_many_records_is_413(api: Api) -> None:
    api.settings.max_batch_records = 3
    response = api.post("/v1/cdrs", role="switch", json=[cdr(str(i)) for i in range(4)])
    assert response.status_code == 413
    assert table_counts(api) == (0, 0, 0)


def test_too_many_bytes_is_413(api: Api) -> None:
    api.settings.max_body_bytes = 1000
    response = api.post("/v1/cdrs", role="switch", json=[cdr(str(i)) for i in range(20)])
    assert response.status_code == 413
    assert response.json()["error"] == "body.too_large"


@pytest.mark.parametrize(("role", "status"), [(None, 401), ("agent", 403), ("admin", 200)])
def test_post_cdrs_roles(api: Api, role: str | None, status: int) -> None:
    assert api.post("/v1/cdrs", role=role, json=[cdr("a")]).status_code == status


def test_failure_mid_batch_leaves_no_record_of_the_batch(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_insert_ratings(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("injected failure after the CDR rows were inserted")

    batch = [cdr("a"), cdr("b"), cdr("bad", callee="x")]
    with monkeypatch.context() as patch:
        patch.setattr(repository, "insert_ratings", broken_insert_ratings)
        failed = api.post("/v1/cdrs", role="switch", json=batch)
    assert failed.status_code == 500
    assert table_counts(api) == (0, 0, 0)
    retried = api.post("/v1/cdrs", role="switch", json=batch).json()
    assert retried["counts"] == {"rated": 2, "duplicate": 0, "rejected": 1}
    assert table_counts(api) == (2, 2, 1)


def test_a_record_stored_by_a_concurrent_batch_is_answered_duplicate(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = api.post("/v1/cdrs", role="switch", json=[cdr("b", duration_s=61)]).json()
    stored_charge = first["results"][0]["charge_fen"]
    seen_before_insert = repository.current_charges

    def lookup_that_misses_once(session: Any, *, cdr_ids: Any) -> dict[str, int]:
        # as if "b" were committed by another batch between this batch's lookup and insert
        patch.setattr(repository, "current_charges", seen_before_insert)
        return {}

    with monkeypatch.context() as patch:
        patch.setattr(repository, "current_charges", lookup_that_misses_once)
        answer = api.post(
            "/v1/cdrs", role="switch", json=[cdr("a"), cdr("b", duration_s=61), cdr("c")]
        ).json()
    assert answer["counts"] == {"rated": 2, "duplicate": 1, "rejected": 0}
    assert answer["results"][1]["result"] == "duplicate"
    assert answer["results"][1]["charge_fen"] == stored_charge
    assert table_counts(api) == (3, 3, 0)


def test_get_cdr_masks_callee_for_agents_and_audits(api: Api) -> None:
    api.post("/v1/cdrs", role="switch", json=[cdr("rec-1", callee="13912345678")])
    agent_view = api.get("/v1/cdrs/rec-1", role="agent").json()
    assert agent_view["callee"] == "139****5678"
    assert agent_view["record"]["callee"] == "139****5678"
    assert agent_view["caller"] == "13800138000"
    assert "13912345678" not in str(agent_view)
    assert [r["seq"] for r in agent_view["ratings"]] == [1]
    assert agent_view["current"]["charge_fen"] == agent_view["ratings"][0]["charge_fen"]
    assert agent_view["current"]["source"] == "ingest"
    admin_view = api.get("/v1/cdrs/rec-1", role="admin").json()
    assert admin_view["callee"] == "13912345678"
    audit = api.get("/v1/audit", role="admin").json()["items"]
    assert [(a["action"], a["role"], a["subject"], a["detail"]) for a in audit] == [
        ("cdr.read", "agent", "13800138000", "rec-1"),
        ("cdr.read", "admin", "13800138000", "rec-1"),
    ]


def test_get_cdr_errors(api: Api) -> None:
    assert api.get("/v1/cdrs/nope", role="agent").status_code == 404
    assert api.get("/v1/cdrs/nope").status_code == 401
    assert api.get("/v1/cdrs/nope", role="switch").status_code == 403
    assert api.get("/v1/audit", role="agent").status_code == 403


def test_the_direct_endpoint_ingests_as_the_middleware_stack_would(
    settings: Settings, rater: Rater, capsys: pytest.CaptureFixture[str]
) -> None:
    """POST /v1/cdrs is served ahead of the middleware stack (service.api.direct); the same
    requests sent through the stack (FastAPI's own __call__, as every other route is served)
    get the same answers, headers and log lines, and store the same rows. Each way sends its
    own ids (`{way}-...`), compared with the way's name taken out."""
    small = settings.model_copy(update={"max_body_bytes": 20_000})
    switch = {"Authorization": f"Bearer {KEYS['switch']}"}
    ndjson = {**switch, "Content-Type": "application/x-ndjson; charset=utf-8"}

    def cases(way: str) -> list[tuple[dict[str, str], bytes]]:
        many = [cdr(f"{way}-m{i}", duration_s=1 + i) for i in range(40)]  # the column way
        return [
            (switch, orjson.dumps([cdr(f"{way}-a"), cdr(f"{way}-b", callee="02188ABC234")])),
            (ndjson, b"\n".join(orjson.dumps(record) for record in many)),
            (
                switch,
                orjson.dumps([cdr(f"{way}-a"), cdr(f"{way}-a", duration_s=9)]),
            ),  # dup, conflict
            (switch, b"{not json"),  # 400
            (switch, b" " * 20_001),  # 413
            ({}, orjson.dumps([cdr(f"{way}-c")])),  # 401
            ({"Authorization": "Bearer nobody"}, orjson.dumps([cdr(f"{way}-c")])),  # 401
            ({"Authorization": f"Bearer {KEYS['agent']}"}, orjson.dumps([cdr(f"{way}-c")])),  # 403
        ]

    with running_api(small, rater) as api:
        stack = through_stack(api.app)
        answers: dict[str, list[tuple[int, str, list[tuple[str, str]]]]] = {}
        lines: dict[str, list[list[str]]] = {}
        for way, client in (("direct", api.client), ("stack", stack)):
            capsys.readouterr()
            answers[way] = []
            for headers, body in cases(way):
                answer = api.portal.call(
                    functools.partial(client.post, "/v1/cdrs", content=body, headers=headers)
                )
                assert re.fullmatch(r"[a-p]{32}", answer.headers.pop("x-request-id"))
                headers_seen = [
                    (name, value)
                    for name, value in answer.headers.multi_items()
                    if name != "content-length"  # the ids' lengths differ by way
                ]
                answers[way].append(
                    (answer.status_code, answer.text.replace(way, "WAY"), headers_seen)
                )
            # time, request id, method, route, status, latency, role
            logged = capsys.readouterr().err.splitlines()
            lines[way] = [[line.split()[i] for i in (2, 3, 4, 6)] for line in logged]
        api.portal.call(stack.aclose)
        engine = create_engine(api.settings.effective_database_url)
        with engine.connect() as connection:
            stored = {
                way: sorted(
                    (cdr_id.replace(way, "WAY"), charge)
                    for cdr_id, charge in connection.execute(
                        select(RatingRow.cdr_id, RatingRow.charge_fen).where(
                            RatingRow.cdr_id.startswith(way)
                        )
                    )
                )
                for way in ("direct", "stack")
            }
            suspended = connection.scalar(select(func.count()).select_from(SuspenseRow))
        engine.dispose()
    assert answers["direct"] == answers["stack"]
    assert [status for status, _, _ in answers["stack"]] == [
        200, 200, 200, 400, 413, 401, 401, 403
    ]  # fmt: skip
    assert lines["direct"] == lines["stack"]
    assert len(lines["stack"]) == len(cases("stack"))
    assert stored["direct"] == stored["stack"]
    assert len(stored["stack"]) == 1 + 40
    assert suspended == 2 * 2  # per way: the bad callee, the id sent twice differently
