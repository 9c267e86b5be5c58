"""FreeSWITCH documents and MSC files written by the tests, in the shapes real switches send
(mod_json_cdr, mod_xml_cdr; TS 32.298 CS records encoded by pycrate)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote, urlencode

ANSWER_US = 1267408800_250000  # 2010-03-01T10:00:00.25+08:00
SETUP_US = ANSWER_US - 7_000_000


def fs_variables(uuid: str, **variables: str) -> dict[str, str]:
    """A leg's channel variables: answered, 124.2 s billed (125 s as a started second)."""
    base = {
        "uuid": uuid,
        "sip_from_user": "13800138000",
        "sip_req_user": "02188001234",
        "start_uepoch": str(SETUP_US),
        "answer_epoch": str(ANSWER_US // 1_000_000),
        "answer_uepoch": str(ANSWER_US),
        "billsec": "124",
        "billmsec": "124200",
        "callrate_plan": "gotone",
    }
    base.update(variables)
    return {k: v for k, v in base.items() if v != ""}


def fs_json(
    uuid: str = "a1b2c3d4-0000-4000-8000-000000000001",
    *,
    caller: str = "13800138000",
    callee: str = "02188001234",
    switchname: str = "fs-sh-1",
    encode_values: bool = False,
    **variables: str,
) -> dict[str, Any]:
    """A mod_json_cdr document (FreeSWITCH >= 1.6: callflow an array, newest first)."""
    values = fs_variables(uuid, **variables)
    if encode_values:
        values = {k: quote(v, safe="") for k, v in values.items()}
    profile = {"caller_id_number": caller, "destination_number": callee, "uuid": uuid}
    newer = {"caller_id_number": "transfer", "destination_number": "park", "uuid": uuid}
    return {
        "core-uuid": "eb8bcdd2-d9eb-4f8f-80c3-1a4042aabe31",
        "switchname": switchname,
        "channel_data": {"state": "CS_REPORTING", "direction": "inbound"},
        "variables": values,
        "app_log": {"applications": [{"app_name": "bridge", "app_data": "sofia/gw/x"}]},
        "callflow": [
            {"dialplan": "XML", "profile_index": "2", "caller_profile": newer},
            {"dialplan": "XML", "profile_index": "1", "caller_profile": profile},
        ],
    }


def fs_json_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def fs_old_json_bytes(uuid: str, *, caller: str, callee: str, **variables: str) -> bytes:
    """FreeSWITCH 1.2's mod_json_cdr: one `callflow` key per caller profile, newest first."""
    values = json.dumps(fs_variables(uuid, **variables))
    newer = json.dumps({"profile_index": "2", "caller_profile": {"caller_id_number": "x"}})
    oldest = json.dumps(
        {
            "profile_index": "1",
            "caller_profile": {"caller_id_number": caller, "destination_number": callee},
        }
    )
    head = f'{{"switchname":"fs-sh-1","variables":{values}'
    return f'{head},"callflow":{newer},"callflow":{oldest}}}'.encode()


def fs_xml_bytes(
    uuid: str = "a1b2c3d4-0000-4000-8000-000000000002",
    *,
    caller: str = "13800138000",
    callee: str = "02188001234",
    switchname: str = "fs-sh-1",
    **variables: str,
) -> bytes:
    """A mod_xml_cdr document: every variable's value URL-encoded, as FreeSWITCH writes it."""
    values = "".join(
        f"<{k}>{quote(v, safe='')}</{k}>" for k, v in fs_variables(uuid, **variables).items()
    )
    return (
        f'<?xml version="1.0"?>\n<cdr core-uuid="8e67d722" switchname="{switchname}">'
        f"<channel_data><state>CS_REPORTING</state></channel_data><variables>{values}</variables>"
        '<callflow dialplan="XML" profile_index="2"><caller_profile>'
        "<caller_id_number>transfer</caller_id_number></caller_profile></callflow>"
        '<callflow dialplan="XML" profile_index="1"><caller_profile>'
        f"<caller_id_number>{caller}</caller_id_number>"
        f"<destination_number>{callee}</destination_number></caller_profile></callflow></cdr>"
    ).encode()


def form(document: bytes) -> bytes:
    """`encode=true`: cdr=<urlencoded document>."""
    return urlencode({"cdr": document.decode()}).encode()


def form_base64(document: bytes) -> bytes:
    """`encode=base64`: cdr=<base64 document>."""
    return b"cdr=" + base64.b64encode(document)


URLENCODED = "application/x-www-form-urlencoded"
BASE64 = "application/x-www-form-base64-encoded"


# --- 3GPP TS 32.298 -------------------------------------------------------------------------

MSC_SH = "8613900210"  # an MSC in Shanghai (021)
MSC_BJ = "8613900100"  # one in Beijing (010)
MSC_AREAS = {MSC_SH: "021", MSC_BJ: "010"}
MEDIATION_TOML = f"""
[freeswitch.switch_areas]
"fs-sh-1" = "021"
"fs-bj-1" = "010"

[3gpp.msc_areas]
"{MSC_SH}" = "021"
"+{MSC_BJ}" = "010"
"""


def tbcd(digits: str) -> bytes:
    """Digits as TBCD, the low nibble first, 0xF filling an odd count."""
    if len(digits) % 2:
        digits += "F"
    return bytes(int(digits[i + 1] + digits[i], 16) for i in range(0, len(digits), 2))


def address(digits: str, *, international: bool = True) -> bytes:
    """An AddressString: ext bit, type of number (1 international, 0 unknown), ISDN plan."""
    return bytes([0x91 if international else 0x81]) + tbcd(digits)


def bcd_time(text: str) -> bytes:
    """`1003011000002B0800` style: YYMMDDhhmmss BCD, then '+', then hhmm."""
    return bytes.fromhex(text[:12]) + text[12].encode() + bytes.fromhex(text[13:])


def cs_record(kind: str = "moCallRecord", **fields: Any) -> bytes:
    """One CallEventRecord (TS 32.298 CSRecord) encoded in BER by pycrate."""
    from pycrate_asn1dir import CDR

    value: dict[str, Any] = {
        "recordType": 1 if kind == "moCallRecord" else 2,
        "servedMSISDN": address("8613800138000"),
        "recordingEntity": address(MSC_SH),
        "answerTime": bcd_time("100301100000+0800"),
        "callDuration": 125,
        "causeForTerm": 0,
        "callReference": b"\x00\x01",
    }
    if kind == "mtCallRecord":
        value["servedIMSI"] = tbcd("460001234567890")
        value["callingNumber"] = address("8613912345678")
    else:
        value["calledNumber"] = address("862188001234")
    value.update(fields)
    for key in [k for k, v in value.items() if v is None]:
        del value[key]
    record = CDR.CSChargingDataTypes.CSRecord
    record.set_val((kind, value))
    return bytes(record.to_ber())


def framed(*records: bytes, truncate_last: int = 0) -> bytes:
    """A TS 32.297 file: a 54-octet file header, then a 4-octet header per CDR (BER, 32.298)."""
    body = b"".join(len(r).to_bytes(2, "big") + bytes([0x4F, (1 << 5) | 5]) + r for r in records)
    header_length = 54
    header = bytearray(header_length)
    header[0:4] = (header_length + len(body)).to_bytes(4, "big")
    header[4:8] = header_length.to_bytes(4, "big")
    header[8], header[9] = 0x4F, 0x4F
    header[18:22] = len(records).to_bytes(4, "big")
    data = bytes(header) + body
    return data[: len(data) - truncate_last] if truncate_last else data
