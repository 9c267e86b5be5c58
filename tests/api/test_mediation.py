"""POST /v1/cdrs/freeswitch and POST /v1/cdrs/3gpp (SPEC §3.4): a switch's own format rated
as its §3.1 CDRs are, idempotent, and nothing it sends lost (suspense keeps its bytes)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.config import Settings
from service.ingest.mediation_file import load_mediation
from service.rating.scalar import Rater
from tests.api.test_cdrs import table_counts
from tests.conftest_db import Api, running_api, through_stack
from tests.mediation.fixtures import (
    BASE64,
    MEDIATION_TOML,
    MSC_BJ,
    URLENCODED,
    address,
    bcd_time,
    cs_record,
    form,
    form_base64,
    framed,
    fs_json,
    fs_json_bytes,
    fs_xml_bytes,
)

FS = "/v1/cdrs/freeswitch"
GPP = "/v1/cdrs/3gpp"
OCTETS = {"content-type": "application/octet-stream"}


@pytest.fixture
def mediated(settings: Settings, rater: Rater, tmp_path: Path) -> Iterator[Api]:
    """The app with a mediation file: fs-sh-1 and MSC 8613900210 in Shanghai (021)."""
    path = tmp_path / "mediation.toml"
    path.write_text(MEDIATION_TOML, encoding="utf-8")
    update = {"mediation_file": path, "default_plan": "gotone"}  # MSC records name no plan
    with running_api(settings.model_copy(update=update), rater) as client:
        yield client


def post_fs(api: Api, body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    response = api.post(FS, role="switch", content=body, headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert len(answer["results"]) == 1
    return answer


def quote_charge(api: Api, cdr: dict[str, Any]) -> int:
    """What POST /v1/cdrs charges for the same call as a §3.1 CDR (under another id)."""
    response = api.post("/v1/cdrs", role="switch", json=[{**cdr, "id": "native-" + cdr["id"]}])
    result = response.json()["results"][0]
    assert result["result"] == "rated", result
    return int(result["charge_fen"])


def suspense_items(api: Api) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get("/v1/suspense", role="admin").json()["items"]
    return items


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (fs_json_bytes(fs_json()), "application/json"),
        (form(fs_json_bytes(fs_json(encode_values=True))), URLENCODED),
        (form_base64(fs_xml_bytes()), BASE64),
        (fs_xml_bytes(), "text/xml"),
    ],
    ids=["json", "form-json", "base64-xml", "xml"],
)
def test_a_leg_is_rated_as_its_cdr_is(mediated: Api, body: bytes, content_type: str) -> None:
    answer = post_fs(mediated, body, content_type)
    result = answer["results"][0]
    assert answer["counts"] == {"rated": 1, "duplicate": 0, "rejected": 0}
    assert result["id"].startswith("fs:a1b2c3d4-")
    stored = mediated.get(f"/v1/cdrs/{result['id']}", role="admin").json()
    assert stored["ratings"][-1]["roaming"] != "home"  # fs-sh-1 is in Shanghai
    cdr = stored["record"]
    assert cdr["visited_area"] == "021"
    assert cdr["duration_s"] == 125
    assert result["charge_fen"] == quote_charge(mediated, cdr)


def test_a_forwarded_leg_is_billed_to_the_diverting_subscriber(mediated: Api) -> None:
    diversion = "<sip:13800138000@ims>;reason=user-busy"
    body = fs_json_bytes(
        fs_json(caller="13512345678", callee="13912345678", sip_h_Diversion=diversion)
    )
    result = post_fs(mediated, body)["results"][0]
    assert result["result"] == "rated"
    assert result["call_class"] == "forward"
    cdr = mediated.get(f"/v1/cdrs/{result['id']}", role="admin").json()["record"]
    assert (cdr["caller"], cdr["type"], cdr["forward_kind"]) == (
        "13800138000",
        "forwarded",
        "conditional",
    )
    assert result["charge_fen"] == quote_charge(mediated, cdr)


def test_an_unanswered_leg_is_stored_with_charge_zero(mediated: Api) -> None:
    body = fs_json_bytes(fs_json(answer_epoch="0", answer_uepoch="0", billsec="0", billmsec="0"))
    result = post_fs(mediated, body)["results"][0]
    assert (result["result"], result["charge_fen"]) == ("rated", 0)


def test_the_same_leg_twice_adds_nothing(mediated: Api) -> None:
    body = fs_json_bytes(fs_json())
    first = post_fs(mediated, body)["results"][0]
    counts = table_counts(mediated)
    again = post_fs(mediated, form(body), URLENCODED)["results"][0]  # re-sent another way
    assert again["result"] == "duplicate"
    assert again["charge_fen"] == first["charge_fen"]
    assert table_counts(mediated) == counts


def test_the_same_uuid_with_other_content_is_an_id_conflict(mediated: Api) -> None:
    post_fs(mediated, fs_json_bytes(fs_json()))
    other = fs_json_bytes(fs_json(billmsec="200000"))
    result = post_fs(mediated, other)["results"][0]
    assert (result["result"], result["code"]) == ("rejected", "id.conflict")
    assert base64.b64decode(suspense_items(mediated)[-1]["raw_base64"]) == other


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>'
    b"<cdr><variables><uuid>&lol2;</uuid></variables></cdr>"
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE cdr [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b"<cdr><variables><uuid>&xxe;</uuid></variables></cdr>"
)


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        (b'{"caller": "13800138000"}', "application/json", "record.not_freeswitch"),
        (b"<cdr><variables><uuid>1</variables>", "text/xml", "record.malformed"),
        (form(b"<cdr><sip:1001@10.0.0.8></cdr>"), URLENCODED, "record.malformed"),
        (BILLION_LAUGHS, "text/xml", "record.forbidden_xml"),
        (EXTERNAL_ENTITY, "application/xml", "record.forbidden_xml"),
        (b"cdr=!!!not-base64!!!", BASE64, "record.bad_encoding"),
        (
            fs_json_bytes(fs_json(caller="1001", callrate_plan="")),
            "application/json",
            "caller.invalid",
        ),
    ],
)
def test_a_bad_document_is_answered_200_rejected_and_kept_byte_for_byte(
    mediated: Api, body: bytes, content_type: str, code: str
) -> None:
    answer = post_fs(mediated, body, content_type)
    result = answer["results"][0]
    assert (result["result"], result["code"]) == ("rejected", code)
    assert result["field"] == code.split(".")[0]
    items = suspense_items(mediated)
    assert [base64.b64decode(item["raw_base64"]) for item in items] == [body]
    assert items[0]["code"] == code
    post_fs(mediated, body, content_type)  # FreeSWITCH's retry: no second suspense row
    assert len(suspense_items(mediated)) == 1


def test_an_empty_body_is_400_in_the_one_envelope(mediated: Api) -> None:
    for path in (FS, GPP):
        response = mediated.post(path, role="switch", content=b"")
        assert response.status_code == 400
        assert response.json()["error"] == "body.empty"


def test_an_unauthenticated_post_is_refused(mediated: Api) -> None:
    for path in (FS, GPP):
        assert mediated.post(path, content=b"x").status_code == 401
        assert mediated.post(path, role="agent", content=b"x").status_code == 403


def test_the_documenting_route_answers_the_same(mediated: Api) -> None:
    body = fs_json_bytes(fs_json())
    direct = post_fs(mediated, body)

    async def through() -> Any:
        async with through_stack(mediated.app) as client:
            return await client.post(
                FS,
                content=body,
                headers={
                    "authorization": "Bearer "
                    + mediated.settings.api_keys.split("switch=")[1].split(",")[0],
                    "content-type": "application/json",
                },
            )

    response = mediated.portal.call(through)
    assert response.status_code == 200
    assert response.json()["results"][0]["result"] == "duplicate"
    assert response.json()["results"][0]["charge_fen"] == direct["results"][0]["charge_fen"]


# --- 3GPP TS 32.298 --------------------------------------------------------------------------


def post_file(api: Api, data: bytes) -> dict[str, Any]:
    response = api.post(GPP, role="switch", content=data, headers=OCTETS)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


MO = cs_record("moCallRecord", callReference=b"\x00\x01")
MT = cs_record("mtCallRecord", callReference=b"\x00\x02", callDuration=30)
FORWARDED = cs_record(
    "moCallRecord",
    callReference=b"\x00\x03",
    calledNumber=address("8613912345678"),
    supplServicesUsed=[{"ssCode": b"\x21"}],
)


@pytest.mark.parametrize("framing", ["bare", "framed"])
def test_a_file_is_rated_as_its_cdrs_are(mediated: Api, framing: str) -> None:
    data = MO + MT + FORWARDED if framing == "bare" else framed(MO, MT, FORWARDED)
    answer = post_file(mediated, data)
    assert answer["counts"] == {"rated": 3, "duplicate": 0, "rejected": 0}
    assert answer["file"] == {
        "records": 3,
        "framed": framing == "framed",
        "failed": False,
        "fault_offset": None,
    }
    classes = []
    for result in answer["results"]:
        cdr = mediated.get(f"/v1/cdrs/{result['id']}", role="admin").json()["record"]
        assert cdr["visited_area"] == "021"
        assert result["charge_fen"] == quote_charge(mediated, cdr)
        classes.append(result["call_class"])
    assert classes == ["local", "incoming", "forward"]  # visiting Shanghai, calling 021
    assert answer["results"][0]["id"] == "3gpp:8613900210:0001:1"


def test_a_file_twice_adds_nothing(mediated: Api) -> None:
    data = framed(MO, MT)
    post_file(mediated, data)
    counts = table_counts(mediated)
    again = post_file(mediated, data)
    assert again["counts"] == {"rated": 0, "duplicate": 2, "rejected": 0}
    assert table_counts(mediated) == counts


@pytest.mark.parametrize("framing", ["bare", "framed"])
def test_a_truncated_file_ingests_its_whole_records_and_keeps_the_rest(
    mediated: Api, framing: str
) -> None:
    data = (
        (MO + MT + FORWARDED)[:-5]
        if framing == "bare"
        else framed(MO, MT, FORWARDED, truncate_last=5)
    )
    answer = post_file(mediated, data)
    assert answer["counts"] == {"rated": 2, "duplicate": 0, "rejected": 1}
    assert answer["file"]["failed"] is True
    offset = answer["file"]["fault_offset"]
    assert answer["results"][2]["code"] == "record.not_ber"
    (item,) = suspense_items(mediated)
    assert base64.b64decode(item["raw_base64"]) == data[offset:]


def test_an_msc_missing_from_the_table_is_rejected_never_rated_as_home(mediated: Api) -> None:
    unknown = cs_record(recordingEntity=address("8613900999"), callReference=b"\x09")
    answer = post_file(mediated, MO + unknown)
    assert [r["result"] for r in answer["results"]] == ["rated", "rejected"]
    assert answer["results"][1]["code"] == "visited_area.unknown_msc"
    assert answer["results"][1]["id"] == "3gpp:8613900999:09:1"
    (item,) = suspense_items(mediated)
    assert base64.b64decode(item["raw_base64"]) == unknown


def test_the_msc_address_is_used_without_a_recording_entity(mediated: Api) -> None:
    record = cs_record(recordingEntity=address(MSC_BJ), callReference=b"\x0a")
    result = post_file(mediated, record)["results"][0]
    cdr = mediated.get(f"/v1/cdrs/{result['id']}", role="admin").json()["record"]
    assert cdr["visited_area"] == "010"  # the table's key "+8613900100" means these digits


def test_partial_records_are_held_until_the_last_part_and_rated_once(mediated: Api) -> None:
    def part(sequence: int, cause: int, seconds: int, answered: str) -> bytes:
        return cs_record(
            callReference=b"\x77",
            sequenceNumber=sequence,
            causeForTerm=cause,
            callDuration=seconds,
            answerTime=bcd_time(answered),
        )

    first = part(1, 1, 1800, "100301100000+0800")
    second = part(2, 1, 1800, "100301103000+0800")
    last = part(3, 0, 65, "100301110000+0800")
    held = post_file(mediated, first + second)
    assert [r["code"] for r in held["results"]] == ["record.partial_held"] * 2
    assert held["counts"]["rated"] == 0
    answer = post_file(mediated, last)
    (result,) = answer["results"]
    assert result["result"] == "rated"
    cdr = mediated.get(f"/v1/cdrs/{result['id']}", role="admin").json()["record"]
    assert cdr["duration_s"] == 1800 + 1800 + 65
    assert cdr["start"] == "2010-03-01T10:00:00+08:00"  # the first part's answer time
    assert result["charge_fen"] == quote_charge(mediated, cdr)
    assert not suspense_items(mediated)  # the held parts left suspense: merged
    counts = table_counts(mediated)
    for data in (first + second, last, first + second + last):  # each file again
        again = post_file(mediated, data)
        assert again["counts"]["rated"] == 0
        assert table_counts(mediated) == counts


# --- recycling a switch's own bytes -----------------------------------------------------------


def recycle(api: Api) -> dict[str, Any]:
    response = api.post("/v1/suspense/recycle", role="admin", json={})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_a_recycle_maps_the_switch_bytes_again_with_todays_mediation_file(
    mediated: Api, tmp_path: Path
) -> None:
    unknown = cs_record(recordingEntity=address("8613900999"), callReference=b"\x0b")
    post_file(mediated, unknown)
    leg = form_base64(fs_json_bytes(fs_json(caller="1001", callrate_plan="")))
    post_fs(mediated, leg, BASE64)
    part = cs_record(callReference=b"\x0c", sequenceNumber=1, causeForTerm=1)
    post_file(mediated, part)

    answer = recycle(mediated)
    codes = sorted(r["code"] for r in answer["results"])
    assert codes == ["caller.invalid", "record.partial_held", "visited_area.unknown_msc"]
    assert sorted(item["code"] for item in suspense_items(mediated)) == codes  # reasons kept

    path = tmp_path / "fixed.toml"
    path.write_text(MEDIATION_TOML + '"8613900999" = "0571"\n', encoding="utf-8")
    mediated.app.state.mediation = load_mediation(path)  # the site's fix, and a restart
    answer = recycle(mediated)
    rated = [r for r in answer["results"] if r["result"] == "rated"]
    assert [r["record_id"] for r in rated] == ["3gpp:8613900999:0b:1"]
    cdr = mediated.get("/v1/cdrs/3gpp:8613900999:0b:1", role="admin").json()["record"]
    assert cdr["visited_area"] == "0571"

    last = cs_record(callReference=b"\x0c", sequenceNumber=2, causeForTerm=0, callDuration=7)
    assert post_file(mediated, last)["results"][0]["result"] == "rated"  # held part still there


def test_a_locked_database_is_503_so_that_the_switch_retries(tmp_path: Path, rater: Rater) -> None:
    import sqlite3

    from sqlalchemy.engine import make_url

    from tests.conftest import TARIFFS
    from tests.conftest_db import KEYS_SPEC, fresh_database

    with fresh_database("sqlite", tmp_path) as url:
        settings = Settings(
            database_url=url,
            data_dir=tmp_path,
            tariffs_dir=TARIFFS,
            api_keys=KEYS_SPEC,
            default_plan="gotone",
            db_statement_timeout_s=0.5,
        )
        holder = sqlite3.connect(str(make_url(url).database), isolation_level=None)
        leg = fs_json_bytes(fs_json())
        with running_api(settings, rater) as api:
            holder.execute("BEGIN EXCLUSIVE")  # another writer holds the lock
            try:
                for path, body in ((FS, leg), (GPP, MO)):
                    response = api.post(path, role="switch", content=body)
                    assert response.status_code == 503, response.text
                    assert response.json()["error"] == "database_unavailable"
                    assert int(response.headers["retry-after"]) > 0
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            assert post_fs(api, leg)["results"][0]["result"] == "rated"  # FreeSWITCH's retry
