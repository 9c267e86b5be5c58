"""Hostile bodies for POST /v1/cdrs (SQLite and PostgreSQL): every record is accounted for —
rated, duplicate, or rejected and kept in suspense byte for byte — nothing is stored twice,
one bad record never fails the others, and a retry changes nothing."""

from __future__ import annotations

import base64
import tracemalloc
from typing import Any

import orjson
import pytest
from sqlalchemy import create_engine, func, select

from service.db.models import Cdr, RatingRow, SuspenseRow
from tests.api.test_cdrs import cdr
from tests.conftest_db import Api

JSON = "application/json"
NDJSON = "application/x-ndjson"


def good(record_id: str, **overrides: Any) -> bytes:
    """A rateable record (126 fen), compact."""
    return orjson.dumps(cdr(record_id, **overrides))


def with_field(record_id: str, name: str, value_json: bytes, **overrides: Any) -> bytes:
    """A rateable record with `name` replaced (or added) by the raw JSON `value_json`."""
    record = cdr(record_id, **overrides)
    record.pop(name, None)
    head = orjson.dumps(record)[:-1]
    return head + b',"' + name.encode() + b'":' + value_json + b"}"


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# (name, element bytes, expected result, expected code when rejected)
ELEMENTS: list[tuple[str, bytes, str, str | None]] = [
    ("valid", good("ok-1"), "rated", None),
    ("pretty printed", b'{\n  "id": "ok-2",\t' + good("x")[len(b'{"id":"x",') :], "rated", None),
    ("nul escape in id", with_field("n", "id", b'"n\\u0000"'), "rejected", "id.invalid_characters"),
    ("nul escape in callee", with_field("nc", "callee", b'"021\\u0000"'), "rejected", None),
    ("nul escape in another field", with_field("ok-3", "note", b'"a\\u0000b"'), "rated", None),
    (
        "raw nul byte in a string",
        with_field("rn", "note", b'"a\x00b"'),
        "rejected",
        "record.not_json",
    ),
    ("nested 300 deep", with_field("deep", "note", nested(299)), "rejected", "record.too_deep"),
    ("nested 256 deep", with_field("deep2", "note", nested(255)), "rejected", "record.too_deep"),
    ("nested 40 deep", with_field("ok-4", "note", nested(39)), "rated", None),
    ("duration 1e400", with_field("inf", "duration_s", b"1e400"), "rejected", "duration_s.invalid"),
    (
        "1e400 elsewhere",
        with_field("inf2", "note", b"1e400"),
        "rejected",
        "record.unsupported_value",
    ),
    ("duration 1e+30", with_field("e30", "duration_s", b"1e+30"), "rejected", "duration_s.invalid"),
    (
        "duration 2^64",
        with_field("big", "duration_s", b"18446744073709551616"),
        "rejected",
        "duration_s.invalid",
    ),
    (
        "5,000-digit integer",
        with_field("long", "note", b"7" * 5000),
        "rejected",
        "record.unsupported_value",
    ),
    ("2^64 elsewhere", with_field("ok-5", "note", b"18446744073709551616"), "rated", None),
    ("negative duration", good("neg", duration_s=-1), "rejected", "duration_s.invalid"),
    ("invalid UTF-8", with_field("u8", "note", b'"\xff\xfe"'), "rejected", "record.not_utf8"),
    (
        "lone surrogate in id",
        with_field("s", "id", b'"\\ud800"'),
        "rejected",
        "id.invalid_characters",
    ),
    ("lone surrogate in callee", with_field("sc", "callee", b'"\\udfff"'), "rejected", None),
    (
        "lone surrogate elsewhere",
        with_field("s2", "note", b'"\\ud800"'),
        "rejected",
        "record.unsupported_value",
    ),
    (
        "full-width caller",
        good("fw", caller="１３８００１３８０００"),
        "rejected",
        "caller.invalid",
    ),
    ("full-width callee", good("fw2", callee="０２１８８００１２３４"), "rejected", None),
    (
        "full-width duration",
        with_field("fw3", "duration_s", '"１２５"'.encode()),
        "rejected",
        "duration_s.invalid",
    ),
    ("65-char id", good("x" * 65), "rejected", "id.invalid"),
    ("64-char id", good("y" * 64), "rated", None),
    ("numeric id", with_field("n7", "id", b"7"), "rejected", "id.invalid"),
    ("not an object", b"42", "rejected", "record.invalid"),
    ("null", b"null", "rejected", "record.invalid"),
    ("a string", b'"{\\"id\\":\\"q\\"}"', "rejected", "record.invalid"),
    ("an array", b"[" + good("arr") + b"]", "rejected", "record.invalid"),
    ("bad literal", b'{"id":"t","x":tru}', "rejected", "record.not_json"),
    ("NaN", with_field("nan", "duration_s", b"NaN"), "rejected", "record.not_json"),
    ("BOM inside", b"\xef\xbb\xbf" + good("bom"), "rejected", "record.not_json"),
    ("brackets in strings", good("ok-6", note=']},[{\\"'), "rated", None),
]


def database_counts(api: Api) -> dict[str, int]:
    engine = create_engine(api.settings.effective_database_url)
    with engine.connect() as connection:
        counts = {
            "cdrs": int(connection.scalar(select(func.count()).select_from(Cdr)) or 0),
            "ratings": int(connection.scalar(select(func.count()).select_from(RatingRow)) or 0),
            "cdr_ids": int(connection.scalar(select(func.count(func.distinct(Cdr.id)))) or 0),
            "open_suspense": int(
                connection.scalar(
                    select(func.count())
                    .select_from(SuspenseRow)
                    .where(SuspenseRow.resolved_at.is_(None))
                )
                or 0
            ),
        }
    engine.dispose()
    return counts


def open_suspense(api: Api) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        page = api.get(f"/v1/suspense?limit=1000&after_id={after}", role="admin").json()
        items += page["items"]
        if page["next_after_id"] is None:
            return items
        after = page["next_after_id"]


def post(api: Api, body: bytes, content_type: str) -> Any:
    response = api.post(
        "/v1/cdrs", role="switch", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 200, response.text
    return response.json()


def assert_accounted(
    api: Api, elements: list[bytes], answer: Any, indexes: list[int] | None = None
) -> None:
    """Each record rated, duplicate or in suspense with its exact bytes; nothing twice."""
    results = answer["results"]
    assert len(results) == len(elements)
    assert [r["index"] for r in results] == (indexes or list(range(len(elements))))
    suspended = [base64.b64decode(s["raw_base64"]) for s in open_suspense(api)]
    assert len(suspended) == len(set(suspended)), "a record waits twice in suspense"
    for element, result in zip(elements, results, strict=True):
        assert result["result"] in {"rated", "duplicate", "rejected"}
        if result["result"] == "rejected":
            assert result["reason"]
            assert result["code"].startswith(result["field"] + ".")
            assert element in suspended, f"{element!r} is not in suspense byte for byte"
        else:
            assert isinstance(result["charge_fen"], int)
    counts = database_counts(api)
    assert counts["cdrs"] == counts["cdr_ids"] == counts["ratings"]


def test_every_bad_element_in_one_json_array(api: Api) -> None:
    elements = [element for _, element, _, _ in ELEMENTS]
    body = b"[" + b",\n ".join(elements) + b"]"
    answer = post(api, body, JSON)
    for (name, _, result, code), got in zip(ELEMENTS, answer["results"], strict=True):
        assert got["result"] == result, (name, got)
        if code is not None:
            assert got["code"] == code, (name, got)
    assert_accounted(api, elements, answer)
    rated = sum(1 for _, _, result, _ in ELEMENTS if result == "rated")
    assert database_counts(api)["cdrs"] == rated
    suspense_before = database_counts(api)["open_suspense"]
    assert suspense_before == len(ELEMENTS) - rated

    retry = post(api, body, JSON)
    assert retry["counts"] == {"rated": 0, "duplicate": rated, "rejected": len(ELEMENTS) - rated}
    assert_accounted(api, elements, retry)
    assert database_counts(api)["open_suspense"] == suspense_before


@pytest.mark.parametrize(
    ("name", "element", "result", "code"), ELEMENTS, ids=[e[0] for e in ELEMENTS]
)
def test_one_bad_element_between_good_ones_in_ndjson(
    api: Api, name: str, element: bytes, result: str, code: str | None
) -> None:
    if b"\n" in element:
        element = element.replace(b"\n", b" ")
    lines = [good("before"), b"", element, b"  ", good("after")]
    answer = post(api, b"\r\n".join(lines) + b"\n", NDJSON)
    assert [r["index"] for r in answer["results"]] == [0, 2, 4]
    assert answer["results"][0]["result"] == answer["results"][2]["result"] == "rated"
    assert answer["results"][1]["result"] == result
    if code is not None:
        assert answer["results"][1]["code"] == code
    assert_accounted(api, [lines[0], element, lines[4]], answer, [0, 2, 4])


def test_ndjson_with_a_raw_nul_line_and_a_binary_line(api: Api) -> None:
    lines = [good("a"), b"\x00", b"\xff\xfe\x00garbage", good("b")]
    answer = post(api, b"\n".join(lines), NDJSON)
    assert [r["result"] for r in answer["results"]] == ["rated", "rejected", "rejected", "rated"]
    assert [r["code"] for r in answer["results"][1:3]] == ["record.not_json", "record.not_utf8"]
    assert_accounted(api, lines, answer)


def test_suspense_keeps_exact_bytes_and_shows_text(api: Api) -> None:
    element = with_field("e30", "duration_s", b"1e+30")
    post(api, b"[" + element + b"]", JSON)
    (row,) = open_suspense(api)
    assert base64.b64decode(row["raw_base64"]) == element
    assert row["raw"] == element.decode()  # not re-serialised: `1e+30`, not `1e30`
    assert row["record_id"] == "e30"
    post(api, b"[" + with_field("u8", "note", b'"\xff"') + b"]", JSON)
    binary = open_suspense(api)[1]
    assert "\ufffd" in binary["raw"]
    assert base64.b64decode(binary["raw_base64"]).count(b"\xff") == 1


def test_valid_record_after_a_rejected_one_with_its_id_is_stored(api: Api) -> None:
    body = orjson.dumps([cdr("fr1", duration_s=-1), cdr("fr1"), cdr("fr1")])
    answer = post(api, body, JSON)
    assert [r["result"] for r in answer["results"]] == ["rejected", "rated", "duplicate"]
    assert answer["results"][2]["charge_fen"] == 126
    assert api.get("/v1/cdrs/fr1", role="admin").json()["current"]["charge_fen"] == 126
    assert database_counts(api) == {"cdrs": 1, "ratings": 1, "cdr_ids": 1, "open_suspense": 1}


def test_same_id_other_content_is_a_conflict_same_content_a_duplicate(api: Api) -> None:
    post(api, good("c1"), NDJSON)
    reformatted = b'{ "duration_s" : 125, "plan":"gotone", "start": "2010-03-01T10:00:00+08:00",\t'
    reformatted += b'"callee":"02188001234","caller":"13800138000","id":"c\\u0031"}'
    changed = good("c1", duration_s=126)
    typed = with_field("c1", "duration_s", b"125.0")
    answer = post(api, b"\n".join([reformatted, changed, typed]), NDJSON)
    assert [r["result"] for r in answer["results"]] == ["duplicate", "rejected", "rejected"]
    assert answer["results"][0]["charge_fen"] == 126
    assert [r["code"] for r in answer["results"][1:]] == ["id.conflict", "id.conflict"]
    suspense = open_suspense(api)
    assert [(s["record_id"], s["code"]) for s in suspense] == [("c1", "id.conflict")] * 2
    assert sorted(base64.b64decode(s["raw_base64"]) for s in suspense) == sorted([changed, typed])
    # a conflicting record is kept once, however often it is retried
    post(api, changed, NDJSON)
    assert len(open_suspense(api)) == 2
    assert api.get("/v1/cdrs/c1", role="admin").json()["duration_s"] == 125


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error", "message_has"),
    [
        (b"", JSON, 400, "body.not_json", "empty"),
        (b"   \n", JSON, 400, "body.not_json", "empty"),
        (b"{not json", JSON, 400, "body.not_json", ""),
        (b"\x00\x00", JSON, 400, "body.not_json", ""),
        (b"[" + good("t1") + b"," + good("t2")[:20], JSON, 400, "body.not_json", "not closed"),
        (b"[" + good("t1") + b",,]", JSON, 400, "body.not_json", "empty"),
        (b"[" + good("t1") + b"] []", JSON, 400, "body.not_json", "after"),
        (
            good("a") + b"\n" + good("b") + b"\n",
            JSON,
            400,
            "body.not_json",
            "Content-Type: application/x-ndjson",
        ),
        (good("a"), JSON, 422, "input.invalid", "Content-Type: application/x-ndjson"),
        (b"42", JSON, 422, "input.invalid", "array"),
        (b"\x00\n\xff\n", NDJSON, 400, "body.not_json", "NDJSON"),
    ],
)
def test_bodies_that_are_not_a_batch(
    api: Api, body: bytes, content_type: str, status: int, error: str, message_has: str
) -> None:
    response = api.post(
        "/v1/cdrs", role="switch", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == status
    assert response.json()["error"] == error
    assert message_has in response.json()["message"]
    assert database_counts(api) == {"cdrs": 0, "ratings": 0, "cdr_ids": 0, "open_suspense": 0}


def test_json_array_sent_as_text_plain_is_rated(api: Api) -> None:
    answer = post(api, b"[" + good("tp") + b"]", "text/plain")
    assert answer["counts"]["rated"] == 1


def test_empty_array_and_empty_ndjson(api: Api) -> None:
    assert post(api, b" [ ] ", JSON)["results"] == []
    assert post(api, b"\n\n", NDJSON)["results"] == []


class CountingBody:
    """A request body streamed in 1 MiB chunks, counting how many the server pulled."""

    def __init__(self, chunks: int, chunk: bytes = b"{}," * (1 << 18)) -> None:
        self.chunks = chunks
        self.chunk = chunk
        self.pulled = 0

    async def __aiter__(self) -> Any:
        yield b"["
        for _ in range(self.chunks):
            self.pulled += 1
            yield self.chunk
        yield b"{}]"


@pytest.mark.parametrize("path", ["/v1/cdrs", "/v1/quote"])
@pytest.mark.parametrize(("role", "status"), [(None, 401), ("admin", None), ("ops", 403)])
def test_refused_requests_are_refused_before_the_body_is_read(
    api: Api, path: str, role: str | None, status: int | None
) -> None:
    body = CountingBody(chunks=15)
    response = api.post(path, role=role, content=body)
    if status is None:  # allowed: the body is read (15 MiB: too many records, not a CDR)
        assert response.status_code in {413, 422}
        assert body.pulled == body.chunks
    else:
        assert response.status_code == status
        assert body.pulled <= 1


def test_declared_length_over_the_limit_is_413_before_reading(api: Api) -> None:
    body = CountingBody(chunks=22)
    declared = 22 * len(body.chunk) + 4
    assert declared > api.settings.max_body_bytes
    headers = {"Content-Length": str(declared)}
    response = api.post("/v1/cdrs", role="switch", content=body, headers=headers)
    assert response.status_code == 413
    assert response.json()["error"] == "body.too_large"
    assert body.pulled <= 1


def test_sixteen_mib_of_empty_objects_is_413_without_building_them(api: Api) -> None:
    size = api.settings.max_body_bytes - 16
    count = size // 3
    body = b"[" + b"{}," * (count - 1) + b"{}]"
    tracemalloc.start()
    try:
        response = api.post("/v1/cdrs", role="switch", content=body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413
    assert "10000 records" in response.json()["message"]
    # the body is held at most twice while read; 5.6 million dicts would take ~400 MB
    assert peak < 3 * len(body), peak
    ndjson = b"{}\n" * count
    response = api.post("/v1/cdrs", role="switch", content=ndjson, headers={"Content-Type": NDJSON})
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/v1/suspense?after_id={2**63}", None),
        ("GET", f"/v1/suspense?after_id={2**64 + 1}", None),
        ("GET", "/v1/suspense?after_id=-1", None),
        ("GET", f"/v1/audit?after_id={2**63}", None),
        ("POST", "/v1/suspense/recycle", {"ids": [2**63]}),
        ("POST", "/v1/suspense/recycle", {"ids": [1, -(2**63) - 1]}),
        ("POST", "/v1/suspense/recycle", {"ids": [10**30]}),
    ],
)
def test_ids_beyond_64_bits_are_a_client_error(
    api: Api, method: str, path: str, body: object
) -> None:
    response = api.request(method, path, role="admin", json=body)
    assert 400 <= response.status_code < 500


def test_largest_64_bit_ids_are_answered(api: Api) -> None:
    page = api.get(f"/v1/suspense?after_id={2**63 - 1}", role="admin")
    assert page.status_code == 200
    assert page.json()["items"] == []
    recycled = api.post("/v1/suspense/recycle", role="admin", json={"ids": [2**63 - 1]})
    assert recycled.status_code == 200
    assert recycled.json()["results"] == []
