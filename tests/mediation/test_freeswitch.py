"""service.ingest.freeswitch: SPEC §3.4's mapping of one FreeSWITCH leg, every encoding."""

from __future__ import annotations

import json

import pytest

from service.ingest.freeswitch import map_leg
from tests.mediation.fixtures import (
    BASE64,
    SETUP_US,
    URLENCODED,
    form,
    form_base64,
    fs_json,
    fs_json_bytes,
    fs_old_json_bytes,
    fs_xml_bytes,
)

AREAS = {"fs-sh-1": "021"}
UUID = "a1b2c3d4-0000-4000-8000-000000000001"
EXPECTED = {
    "id": f"fs:{UUID}",
    "caller": "13800138000",
    "callee": "02188001234",
    "start": "2010-03-01T10:00:00.250000+08:00",
    "duration_s": 125,  # billmsec 124200: a started second counts
    "visited_area": "021",
    "plan": "gotone",
}


def mapped(body: bytes, content_type: str = "application/json") -> dict[str, object]:
    record = map_leg(body, content_type, switch_areas=AREAS)
    assert record.rejection is None, record.rejection
    assert record.cdr is not None
    assert record.original == body
    return record.cdr


JSON_DOC = fs_json_bytes(fs_json(UUID))
XML_DOC = fs_xml_bytes(UUID)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (JSON_DOC, "application/json"),
        (fs_json_bytes(fs_json(UUID, encode_values=True)), "application/json"),
        (form(JSON_DOC), URLENCODED),
        (form(fs_json_bytes(fs_json(UUID, encode_values=True))), URLENCODED),
        (form_base64(JSON_DOC), BASE64),
        (XML_DOC, "text/xml"),
        (XML_DOC, "application/xml"),
        (form(XML_DOC), URLENCODED),
        (form_base64(XML_DOC), BASE64),
        (b"uuid=x&" + form(XML_DOC), URLENCODED),
    ],
    ids=[
        "json",
        "json-encode-values",
        "form-json",
        "form-json-encode-values",
        "base64-json",
        "xml",
        "application-xml",
        "form-xml",
        "base64-xml",
        "form-xml-with-other-fields",
    ],
)
def test_every_encoding_maps_to_the_same_cdr(body: bytes, content_type: str) -> None:
    assert mapped(body, content_type) == EXPECTED


def test_old_repeated_callflow_keys_keep_every_profile() -> None:
    body = fs_old_json_bytes(UUID, caller="13800138000", callee="02188001234")
    cdr = mapped(body)
    assert cdr["caller"] == "13800138000"  # the oldest profile (index 1), not the last key
    assert cdr["callee"] == "02188001234"


def test_unanswered_leg_starts_at_setup_with_no_duration() -> None:
    body = fs_json_bytes(fs_json(UUID, answer_epoch="0", answer_uepoch="0", billmsec="0"))
    cdr = mapped(body)
    assert cdr["duration_s"] == 0
    assert cdr["start"] == "2010-03-01T09:59:53.250000+08:00"
    assert SETUP_US % 1_000_000 == 250_000


def test_billsec_when_there_is_no_billmsec() -> None:
    assert mapped(fs_json_bytes(fs_json(UUID, billmsec="")))["duration_s"] == 124
    assert mapped(fs_json_bytes(fs_json(UUID, billmsec="1")))["duration_s"] == 1
    assert mapped(fs_json_bytes(fs_json(UUID, billmsec="1000")))["duration_s"] == 1


def test_answer_epoch_when_there_is_no_answer_uepoch() -> None:
    cdr = mapped(fs_json_bytes(fs_json(UUID, answer_uepoch="")))
    assert cdr["start"] == "2010-03-01T10:00:00+08:00"


def test_channel_variables_override_the_mapping() -> None:
    body = fs_json_bytes(
        fs_json(
            UUID,
            callrate_subscriber="+8613900139000",
            callrate_callee="13912345678",
            callrate_leg="terminating",
            callrate_visited_area="010",
            callrate_plan="easyown",
            callrate_packages="ld_night, other",
        )
    )
    cdr = mapped(body)
    assert cdr["caller"] == "+8613900139000"
    assert cdr["callee"] == "13912345678"
    assert cdr["type"] == "terminating"
    assert cdr["visited_area"] == "010"
    assert cdr["plan"] == "easyown"
    assert cdr["packages"] == ["ld_night", "other"]


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("<sip:13800138000@ims.example>;reason=unconditional;counter=1", "unconditional"),
        ('"Li" <tel:+8613800138000>;reason="user-busy"', "conditional"),
        ("<sip:13800138000@ims.example>;reason=no-answer", "conditional"),
        ("<sip:13800138000@ims.example>;reason=unavailable", "conditional"),
        ("<sip:13800138000@ims.example>", "conditional"),
        (
            "<sip:13800138000@a>;reason=unconditional, <sip:13999999999@b>;reason=user-busy",
            "unconditional",
        ),
    ],
)
def test_a_diversion_header_makes_a_forwarded_leg_billed_to_the_diverting_party(
    header: str, kind: str
) -> None:
    body = fs_json_bytes(
        fs_json(UUID, caller="13512345678", callee="13912345678", sip_h_Diversion=header)
    )
    cdr = mapped(body)
    assert cdr["type"] == "forwarded"
    assert cdr["forward_kind"] == kind
    assert cdr["caller"].endswith("13800138000")  # type: ignore[union-attr]
    assert cdr["callee"] == "13912345678"  # the forwarded-to number


def test_switchname_sets_the_visited_area_and_an_unknown_switch_is_not_roaming() -> None:
    assert "visited_area" not in mapped(fs_json_bytes(fs_json(UUID, switchname="other")))
    assert "visited_area" not in mapped(fs_xml_bytes(UUID, switchname="other"), "text/xml")


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        (b'{"hello": "world"}', "application/json", "record.not_freeswitch"),
        (b"[1, 2, 3]", "application/json", "record.not_freeswitch"),
        (b'{"variables": {"uuid": "x"', "application/json", "record.malformed"),
        (b"\xff\xfe not text", "application/json", "record.malformed"),
        (b"<cdr><variables><uuid>x</variables></cdr>", "text/xml", "record.malformed"),
        (b"<html><body/></html>", "text/xml", "record.not_freeswitch"),
        (b"cdr=%ZZ%", BASE64, "record.bad_encoding"),
        (b"other=1", URLENCODED, "record.bad_encoding"),
        (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><cdr><variables><uuid>&lol2;</uuid>'
            b"</variables></cdr>",
            "text/xml",
            "record.forbidden_xml",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE cdr [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            b"<cdr><variables><uuid>&xxe;</uuid></variables></cdr>",
            "text/xml",
            "record.forbidden_xml",
        ),
        (
            fs_json_bytes(fs_json(UUID, answer_uepoch="12x")),
            "application/json",
            "start.invalid_epoch",
        ),
        (
            fs_json_bytes(fs_json(UUID, billmsec="-5")),
            "application/json",
            "duration_s.invalid_billsec",
        ),
        (
            fs_json_bytes(fs_json(UUID, sip_h_Diversion="garbage")),
            "application/json",
            "caller.invalid_diversion",
        ),
    ],
)
def test_a_document_that_cannot_be_mapped_is_rejected_with_its_bytes(
    body: bytes, content_type: str, code: str
) -> None:
    record = map_leg(body, content_type, switch_areas=AREAS)
    assert record.cdr is None
    assert record.rejection is not None
    assert record.rejection.code == code
    assert record.original == body


def test_a_rejected_leg_keeps_its_id_when_it_has_one() -> None:
    record = map_leg(
        fs_json_bytes(fs_json(UUID, billmsec="x")), "application/json", switch_areas=AREAS
    )
    assert record.record_id == f"fs:{UUID}"
    assert json.loads(JSON_DOC)["variables"]["uuid"] == UUID
