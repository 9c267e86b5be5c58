"""Read-path consistency: derived home areas, rejected ids pointing to suspense, quote audit
rows with their detail."""

from __future__ import annotations

from urllib.parse import quote

from tests.api.test_cdrs import cdr
from tests.conftest_db import Api


def test_home_area_from_the_number_range_when_the_registry_has_none(api: Api) -> None:
    api.put("/v1/subscribers/13800138000", role="admin", json={"plan": "gotone"})
    read = api.get("/v1/subscribers/13800138000", role="agent").json()
    assert (read["home_area"], read["home_area_from"]) == ("010", "number_range")  # Beijing
    api.post("/v1/cdrs", role="switch", json=[cdr("h1")])
    assert api.get("/v1/cdrs/h1", role="agent").json()["home_area"] == "010"
    put = api.put(
        "/v1/subscribers/13800138000", role="admin", json={"plan": "gotone", "home_area": "21"}
    ).json()
    assert (put["home_area"], put["home_area_from"]) == ("021", "registry")
    assert api.get("/v1/cdrs/h1", role="agent").json()["home_area"] == "021"


def test_a_rejected_id_answers_404_pointing_to_suspense(api: Api) -> None:
    api.post("/v1/cdrs", role="switch", json=[cdr("r1", callee="x")])
    response = api.get("/v1/cdrs/r1", role="agent")
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "cdr.in_suspense"
    assert "GET /v1/suspense" in body["message"]
    assert api.get("/v1/cdrs/never-sent", role="agent").json()["error"] == "not_found"


def test_quote_audit_rows_name_subject_masked_callee_and_outcome(api: Api) -> None:
    good = cdr("unused", callee="13912345678")
    del good["id"]
    assert api.post("/v1/quote", role="agent", json=good).status_code == 200
    bad_duration = {**good, "duration_s": "long"}
    assert api.post("/v1/quote", role="agent", json=bad_duration).status_code == 422
    bad_caller = {**good, "caller": "1390000\u00001234567"}
    assert api.post("/v1/quote", role="agent", json=bad_caller).status_code == 422
    rows = api.get("/v1/audit", role="admin").json()["items"]
    charge = api.post("/v1/quote", role="agent", json=good).json()["charge_fen"]
    assert [(r["subject"], r["detail"]) for r in rows] == [
        ("13800138000", f"callee 139****5678; {charge} fen"),
        ("13800138000", "callee 139****5678; rejected duration_s.invalid"),
        ("139*******4567", "callee 139****5678; rejected caller.invalid"),
    ]
    assert "13912345678" not in str(rows)


def test_ids_with_nul_are_not_found_not_a_server_error(api: Api) -> None:
    for path, role in (("/v1/cdrs/a%00", "agent"), ("/v1/rerate/%00", "admin")):
        response = api.get(path, role=role)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"


def test_an_id_holding_a_slash_or_url_characters_reads_back(api: Api) -> None:
    ids = ["d3/x", "/lead", "trail/", "a//b", "a/../b", "q?x=1#f", "p%2Fq", "sp ace"]
    stored = api.post("/v1/cdrs", role="switch", json=[cdr(i) for i in ids]).json()
    assert stored["counts"]["rated"] == len(ids)
    for record_id in ids:
        response = api.get("/v1/cdrs/" + quote(record_id, safe=""), role="agent")
        assert response.status_code == 200, (record_id, response.text)
        assert response.json()["id"] == record_id
    missing = api.get("/v1/cdrs/" + quote("d3/y", safe=""), role="agent")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    # the route keeps its template in metrics (never the concrete id)
    metrics = api.get("/metrics", role="ops").text
    assert 'route="/v1/cdrs/{cdr_id}"' in metrics
    assert "d3/x" not in metrics


def test_integers_beyond_64_bits_read_back_exactly(api: Api) -> None:
    sent = (
        b'[{"id":"big","caller":"13800138000","callee":"02188001234",'
        b'"start":"2010-03-01T10:00:00+08:00","duration_s":125,"plan":"gotone",'
        b'"n1":-9223372036854775809,"n2":18446744073709551616,"n3":[123456789012345678901234567890],'
        b'"n4":9223372036854775807,"n5":{"deep":-100000000000000000000}}]'
    )
    stored = api.post(
        "/v1/cdrs", role="switch", content=sent, headers={"Content-Type": "application/json"}
    )
    assert stored.json()["counts"]["rated"] == 1, stored.text
    response = api.get("/v1/cdrs/big", role="admin")
    record = response.json()["record"]
    assert record["n1"] == -9223372036854775809
    assert record["n2"] == 18446744073709551616
    assert record["n3"] == [123456789012345678901234567890]
    assert record["n4"] == 9223372036854775807
    assert record["n5"] == {"deep": -100000000000000000000}
    for text in (b"-9223372036854775809", b"18446744073709551616", b"-100000000000000000000"):
        assert text in response.content
    assert b"e+" not in response.content
