"""FreeSWITCH mod_json_cdr and mod_xml_cdr (SPEC §3.4): one posted call leg -> one §3.1 CDR.

Pure: the body and its content type in, a `Mapped` record out. Every encoding FreeSWITCH
posts is read: `application/json` (`encode=false`), `cdr=<urlencoded>` (`encode=true`),
`cdr=<base64>` (`application/x-www-form-base64-encoded`), and the XML document raw or in
`cdr=`. Values URL-encoded inside the document (mod_json_cdr's `encode-values`, always in
mod_xml_cdr) are decoded. XML goes through defusedxml: no DTD, no entity, no external
reference. The field mapping is docs/mediation.md's table."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, unquote

import defusedxml
from defusedxml import ElementTree as SafeElementTree

from service.ingest.mediated import Mapped
from service.rating.cdr import DEFAULT_OFFSET

ID_PREFIX = "fs:"
FORM = "application/x-www-form-urlencoded"
FORM_BASE64 = "application/x-www-form-base64-encoded"
# RFC 5806 §4: the one reason that is not conditional on the called party's state
UNCONDITIONAL_REASON = "unconditional"
_CHANNEL_PREFIX = "callrate_"
_URI = re.compile(r"(?:sips?|tel):([^@;>\s]+)", re.IGNORECASE)
_REASON = re.compile(r";\s*reason\s*=\s*\"?([A-Za-z0-9_-]+)", re.IGNORECASE)
_US = 1_000_000


class _Unmappable(Exception):
    """The document cannot be mapped; `code` says why (a rejection code)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def map_leg(body: bytes, content_type: str, *, switch_areas: Mapping[str, str]) -> Mapped:
    """One posted leg (the request body as sent) -> its §3.1 CDR, or why it has none."""
    try:
        leg = _leg(_document(body, content_type.split(";")[0].strip().lower()))
    except _Unmappable as exc:
        return Mapped.rejected(body, exc.code)
    try:
        return Mapped(body, cdr=_cdr(leg, switch_areas), record_id=leg.record_id)
    except _Unmappable as exc:
        return Mapped.rejected(body, exc.code, record_id=leg.record_id)


def _document(body: bytes, media_type: str) -> bytes:
    """The CDR document inside the body, whichever way it was encoded."""
    text = body.lstrip()
    if not text.startswith(b"cdr=") and not (media_type in (FORM, FORM_BASE64) and b"=" in text):
        return text
    try:
        if media_type == FORM_BASE64:
            return _base64_field(text)
        fields = parse_qs(text.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        document = fields["cdr"][0].encode("utf-8")
        if media_type != FORM and document.lstrip()[:1] not in (b"{", b"<"):
            # no content type said which (a body read back from suspense): base64 then
            return _base64_field(text)
        return document
    except (KeyError, IndexError, UnicodeDecodeError, binascii.Error, ValueError) as exc:
        raise _Unmappable("record.bad_encoding") from exc


def _base64_field(text: bytes) -> bytes:
    """The cdr= field's base64 (as mod_json_cdr / mod_xml_cdr write it: not urlencoded)."""
    fields = dict(part.split(b"=", 1) for part in text.split(b"&") if b"=" in part)
    return base64.b64decode(unquote(fields[b"cdr"].decode("ascii")), validate=True)


class _Leg:
    """What the mapping reads of one document: the variables, the callflow profiles, the
    switch's name."""

    __slots__ = ("profiles", "record_id", "switchname", "variables")

    def __init__(
        self, variables: dict[str, str], profiles: list[dict[str, str]], switchname: str | None
    ) -> None:
        self.variables = variables
        self.profiles = profiles  # the callflow's caller_profile, oldest first
        self.switchname = switchname
        uuid = variables.get("uuid")
        if not uuid:
            raise _Unmappable("record.not_freeswitch")
        self.record_id = ID_PREFIX + uuid


def _leg(document: bytes) -> _Leg:
    if document.startswith(b"<"):
        return _xml_leg(document)
    return _json_leg(document)


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object keeping every repetition of `callflow` (old FreeSWITCH repeated the key
    once per caller profile instead of writing an array)."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key == "callflow" and key in obj:
            previous = obj[key]
            obj[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            obj[key] = value
    return obj


def _text(value: object) -> str | None:
    """A document value as text, URL-decoded (encode-values); None when it is no scalar."""
    if isinstance(value, str):
        return unquote(value) if "%" in value else value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    return None


def _json_leg(document: bytes) -> _Leg:
    try:
        parsed = json.loads(document.decode("utf-8"), object_pairs_hook=_pairs)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Unmappable("record.malformed") from exc
    if not isinstance(parsed, dict) or not isinstance(parsed.get("variables"), dict):
        raise _Unmappable("record.not_freeswitch")
    variables = {
        key: text
        for key, value in parsed["variables"].items()
        if (text := _text(value)) is not None
    }
    flows = parsed.get("callflow", [])
    flows = flows if isinstance(flows, list) else [flows]
    indexed = []
    for position, flow in enumerate(flows):
        if not isinstance(flow, dict) or not isinstance(flow.get("caller_profile"), dict):
            continue
        profile = {
            key: text for key, value in flow["caller_profile"].items() if (text := _text(value))
        }
        indexed.append((_profile_index(_text(flow.get("profile_index")), position), profile))
    return _Leg(variables, _oldest_first(indexed), _text(parsed.get("switchname")))


def _profile_index(value: str | None, position: int) -> tuple[int, int]:
    """The sort key of a callflow entry: FreeSWITCH numbers profiles from 1 (oldest) and
    writes the newest first; without a number, document order is newest first."""
    if value is not None and value.isdigit():
        return (int(value), 0)
    return (1 << 30, -position)


def _oldest_first(indexed: list[tuple[tuple[int, int], dict[str, str]]]) -> list[dict[str, str]]:
    return [profile for _, profile in sorted(indexed, key=lambda item: item[0])]


def _xml_leg(document: bytes) -> _Leg:
    try:
        root = SafeElementTree.fromstring(document, forbid_dtd=True)
    except defusedxml.DefusedXmlException as exc:
        raise _Unmappable("record.forbidden_xml") from exc
    except SafeElementTree.ParseError as exc:
        raise _Unmappable("record.malformed") from exc
    variables_node = root.find("variables")
    if root.tag != "cdr" or variables_node is None:
        raise _Unmappable("record.not_freeswitch")
    variables = {child.tag: unquote(child.text or "") for child in variables_node}
    indexed = []
    for position, flow in enumerate(root.findall("callflow")):
        node = flow.find("caller_profile")
        if node is None:
            continue
        profile = {child.tag: unquote(child.text) for child in node if child.text}
        indexed.append((_profile_index(flow.get("profile_index"), position), profile))
    switchname = root.get("switchname")
    if switchname is None and (node := root.find("switchname")) is not None:
        switchname = node.text
    return _Leg(variables, _oldest_first(indexed), switchname)


def _whole(value: str | None, code: str) -> int | None:
    """A whole number from 0 (FreeSWITCH writes them as text), None when absent."""
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit():
        raise _Unmappable(code)
    return int(value)


def _start_and_duration(variables: Mapping[str, str]) -> tuple[str, int]:
    """SPEC §3.4: answer time and billed seconds, a started second counting; an unanswered
    leg starts at its setup, with no duration."""
    code = "start.invalid_epoch"
    answer_us = _whole(variables.get("answer_uepoch"), code)
    if answer_us is None and (answer_s := _whole(variables.get("answer_epoch"), code)):
        answer_us = answer_s * _US
    if not answer_us:
        setup_us = _whole(variables.get("start_uepoch"), code)
        if setup_us is None and (setup_s := _whole(variables.get("start_epoch"), code)):
            setup_us = setup_s * _US
        if setup_us is None:
            raise _Unmappable(code)
        return _rfc3339(setup_us), 0
    billmsec = _whole(variables.get("billmsec"), "duration_s.invalid_billsec")
    if billmsec is not None:
        return _rfc3339(answer_us), -(-billmsec // 1000)
    billsec = _whole(variables.get("billsec"), "duration_s.invalid_billsec")
    return _rfc3339(answer_us), billsec or 0


def _rfc3339(epoch_us: int) -> str:
    """Microseconds since the epoch -> RFC 3339 at +08:00 (the tariff's own offset)."""
    seconds, micro = divmod(epoch_us, _US)
    at = datetime.fromtimestamp(seconds, DEFAULT_OFFSET).replace(microsecond=micro)
    return at.isoformat(timespec="microseconds" if micro else "seconds")


def _diversion(header: str) -> tuple[str, str]:
    """(the diverting party's number, forward_kind) of the topmost Diversion value."""
    first = header.split(",", 1)[0]
    uri = _URI.search(first)
    if uri is None:
        raise _Unmappable("caller.invalid_diversion")
    reason = _REASON.search(first)
    kind = (
        "unconditional"
        if reason is not None and reason.group(1).lower() == UNCONDITIONAL_REASON
        else "conditional"
    )
    return uri.group(1), kind


def _cdr(leg: _Leg, switch_areas: Mapping[str, str]) -> dict[str, Any]:
    """SPEC §3.4's mapping of one leg; the `callrate_*` channel variables override it."""
    variables = leg.variables
    own = {
        key[len(_CHANNEL_PREFIX) :]: value
        for key, value in variables.items()
        if key.startswith(_CHANNEL_PREFIX)
    }
    oldest = leg.profiles[0] if leg.profiles else {}
    start, duration_s = _start_and_duration(variables)
    cdr: dict[str, Any] = {"id": leg.record_id, "start": start, "duration_s": duration_s}
    caller = oldest.get("caller_id_number") or variables.get("sip_from_user")
    callee = oldest.get("destination_number") or variables.get("sip_req_user")
    leg_type = own.get("leg")
    diversion = variables.get("sip_h_Diversion")
    if leg_type is None and diversion:
        caller, cdr["forward_kind"] = _diversion(diversion)
        leg_type = "forwarded"
    caller = own.get("subscriber", caller)
    callee = own.get("callee", callee)
    for name, value in (("caller", caller), ("callee", callee), ("type", leg_type)):
        if value is not None:
            cdr[name] = value
    if "forward_kind" in own:
        cdr["forward_kind"] = own["forward_kind"]
    visited = own.get("visited_area")
    if visited is None and leg.switchname is not None:
        visited = switch_areas.get(leg.switchname)
    if visited is not None:
        cdr["visited_area"] = visited
    if "plan" in own:
        cdr["plan"] = own["plan"]
    if "packages" in own:
        cdr["packages"] = [name for name in re.split(r"[,\s]+", own["packages"]) if name]
    return cdr
