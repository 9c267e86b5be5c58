"""MSC CDR files, 3GPP TS 32.298 circuit-switched domain in BER (SPEC §3.4): one file -> its
records, each mapped to a §3.1 CDR or rejected, with the bytes it came from.

Pure: bytes in, `MscFile` out. A file is TS 32.297 framed (a file header, then a header per
CDR) or bare concatenated CallEventRecords; both are read. A call record is read by
service.ingest.ber_fast (its layout taken from pycrate's modules, proven equal to pycrate by
tests); any other record is decoded by pycrate with the standard's own ASN.1 modules
(`pycrate_asn1dir.CDR`, CSChargingDataTypes.CSRecord), never by a grammar written here.
Partial records are returned as parts; `merge_parts` makes one call of a call's parts
(service.ingest.msc_files holds parts across files)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from service.ingest.ber_fast import read_call
from service.ingest.mediated import Mapped
from service.rating.rejections import Rejected

ID_PREFIX = "3gpp:"
MO_CALL, MT_CALL = "moCallRecord", "mtCallRecord"
# TS 32.298 RecordType of the records that are calls
RECORD_TYPES = {MO_CALL: 1, MT_CALL: 2}
# TS 29.002 SS-Codes of call forwarding (MAP-SS-Code)
UNCONDITIONAL_FORWARDING = frozenset({0x20, 0x21})  # allForwardingSS, cfu
CONDITIONAL_FORWARDING = frozenset({0x28, 0x29, 0x2A, 0x2B})  # allCondForwardingSS, cfb,
# cfnry, cfnrc
# TS 32.298 CauseForTerm: the record is one part of a call and more parts follow
PARTIAL_CAUSES = frozenset({1, 2})  # partialRecord, partialRecordCallReestablishment
INTERNATIONAL = 1  # type of number (TS 29.002 AddressString, TS 24.008 §10.5.4.7)
CHINA = "86"
TBCD = "0123456789*#abc"  # nibbles 0-14; 15 is the filler
# TS 32.297 §6.1: a CDR file starts with a file header; its first four octets are the file's
# length, so a framed file never starts with a CallEventRecord's context tag (0xA0-0xBF).
_BARE_FIRST = range(0xA0, 0xC0)
_FILE_HEADER_MIN = 50
_CDR_HEADER = 4
_RELEASE_EXTENSION = 7  # release identifier 7: one octet more in the CDR header
_BER_FORMAT = 1  # data record format: BER

_decoding = threading.Lock()  # a pycrate object holds the value it decoded: one at a time


@cache
def library_record() -> Any:
    """TS 32.298's CSRecord (the CS domain's CallEventRecord CHOICE); loaded on first use (the
    compiled 32.298 modules take seconds to import)."""
    from pycrate_asn1dir import CDR

    return CDR.CSChargingDataTypes.CSRecord


def _charpy(data: bytes) -> Any:
    from pycrate_core.charpy import Charpy

    return Charpy(data)


@dataclass(frozen=True, slots=True)
class Part:
    """One record of a file: mapped (or rejected), with the call it belongs to."""

    mapped: Mapped
    offset: int  # of its bytes in the file
    call_id: str | None = None  # `id` of its call; None when the record could not be read
    partial: bool = False  # more parts of its call follow
    sequence: int | None = None  # recordSequenceNumber / sequenceNumber


@dataclass(frozen=True, slots=True)
class MscFile:
    """A file's records in order; `fault_offset` where an unreadable remainder starts (its
    bytes are the last part, rejected `record.not_ber`)."""

    parts: list[Part]
    fault_offset: int | None = None
    framed: bool = False


def read_file(data: bytes, *, msc_areas: Mapping[str, str]) -> MscFile:
    """Every record of a TS 32.297 framed or bare BER file; a truncated or corrupt file gives
    its whole records and the rest as one rejected part."""
    if data and data[0] not in _BARE_FIRST and len(data) >= 8:
        return _framed(data, msc_areas)
    return _bare(data, msc_areas)


def _unreadable(data: bytes, offset: int) -> Part:
    return Part(Mapped.rejected(data[offset:], "record.not_ber"), offset)


def _bare(data: bytes, msc_areas: Mapping[str, str]) -> MscFile:
    parts: list[Part] = []
    offset = 0
    while offset < len(data):
        found = read_call(data, offset) or _library_read(data, offset)
        if found is None:
            return MscFile([*parts, _unreadable(data, offset)], offset)
        value, end = found
        parts.append(map_record(value, data[offset:end], offset, msc_areas))
        offset = end
    return MscFile(parts)


def _library_read(data: bytes, offset: int) -> tuple[Any, int] | None:
    """The record at `offset` decoded by pycrate: (its value, the offset after it)."""
    char = _charpy(data[offset:])
    record = library_record()
    with _decoding:
        try:
            record.from_ber(char)
        except Exception:  # pycrate raises its own errors and IndexError on short input
            return None
        value = record.get_val()
    end = len(data) - char.len_byte()
    return (value, end) if end > offset else None


def _framed(data: bytes, msc_areas: Mapping[str, str]) -> MscFile:
    header_length = int.from_bytes(data[4:8], "big")
    if header_length < _FILE_HEADER_MIN or header_length > len(data):
        return MscFile([_unreadable(data, 0)], 0, framed=True)
    parts: list[Part] = []
    fault: int | None = None
    offset = header_length
    while offset < len(data):
        if offset + _CDR_HEADER > len(data):
            return MscFile([*parts, _unreadable(data, offset)], offset, framed=True)
        length = int.from_bytes(data[offset : offset + 2], "big")
        release = data[offset + 2] >> 5
        record_format = data[offset + 3] >> 5
        start = offset + _CDR_HEADER + (1 if release == _RELEASE_EXTENSION else 0)
        end = start + length
        if length == 0 or end > len(data):
            return MscFile([*parts, _unreadable(data, offset)], offset, framed=True)
        raw = data[start:end]
        part = decode_record(raw, offset) if record_format == _BER_FORMAT else None
        if part is None:
            parts.append(Part(Mapped.rejected(data[offset:end], "record.not_ber"), offset))
            fault = offset if fault is None else fault
        else:
            parts.append(_with_areas(part, msc_areas))
        offset = end
    return MscFile(parts, fault, framed=True)


def decode_record(raw: bytes, offset: int) -> tuple[Any, bytes, int] | None:
    """One whole CallEventRecord's value (pycrate's), or None when `raw` is not exactly one."""
    fast = read_call(raw)
    if fast is not None and fast[1] == len(raw):
        return fast[0], raw, offset
    record = library_record()
    with _decoding:
        try:
            char = _charpy(raw)
            record.from_ber(char)
            if char.len_byte():
                return None
            return record.get_val(), raw, offset
        except Exception:  # pycrate raises its own errors and IndexError on short input
            return None


def _with_areas(decoded: tuple[Any, bytes, int], msc_areas: Mapping[str, str]) -> Part:
    value, raw, offset = decoded
    return map_record(value, raw, offset, msc_areas)


def tbcd(octets: bytes) -> str:
    """TBCD digits, the low nibble first, up to the filler."""
    digits: list[str] = []
    for octet in octets:
        for nibble in (octet & 0x0F, octet >> 4):
            if nibble == 0x0F:
                return "".join(digits)
            digits.append(TBCD[nibble])
    return "".join(digits)


def address_digits(address: bytes) -> str:
    """An AddressString's digits (after its type-of-number octet)."""
    return tbcd(address[1:])


def dialing_number(address: bytes) -> str:
    """SPEC §3.4: an international `86…` number -> the national number (a mobile as is, any
    other with the trunk prefix 0: the dialing form of §9); another country -> `00` + digits;
    national and unknown -> as dialed."""
    if not address:
        return ""
    digits = address_digits(address)
    if (address[0] >> 4) & 0x07 != INTERNATIONAL:
        return digits
    if digits.startswith(CHINA):
        national = digits[len(CHINA) :]
        is_mobile = len(national) == 11 and national.startswith("1")
        return national if is_mobile else "0" + national
    return "00" + digits


def timestamp(octets: bytes) -> str | None:
    """TS 32.298 TimeStamp (BCD YYMMDDhhmmss, ASCII sign, BCD hhmm offset) -> RFC 3339."""
    if len(octets) != 9 or chr(octets[6]) not in "+-":
        return None
    text = octets[:6].hex() + octets[7:].hex()
    if not text.isdigit():
        return None
    yy, mo, dd, hh, mi, ss, oh, om = (text[i : i + 2] for i in range(0, 16, 2))
    rfc3339 = f"20{yy}-{mo}-{dd}T{hh}:{mi}:{ss}{chr(octets[6])}{oh}:{om}"
    try:
        datetime.fromisoformat(rfc3339)
    except ValueError:
        return None
    return rfc3339


def _forward_kind(record: Mapping[str, Any]) -> str | None:
    for service in record.get("supplServicesUsed", ()):
        code = service.get("ssCode", b"")
        if code and code[0] in UNCONDITIONAL_FORWARDING:
            return "unconditional"
        if code and code[0] in CONDITIONAL_FORWARDING:
            return "conditional"
    return None


def map_record(value: Any, raw: bytes, offset: int, msc_areas: Mapping[str, str]) -> Part:
    """One decoded CallEventRecord -> its part (SPEC §3.4's mapping, docs/mediation.md)."""
    kind, record = value
    if kind not in RECORD_TYPES:
        return Part(Mapped.rejected(raw, "record.not_a_call"), offset)
    msc_address = record.get("recordingEntity") or record.get("mSCAddress") or b""
    msc = address_digits(msc_address)
    call_id = f"{ID_PREFIX}{msc}:{record['callReference'].hex()}:{RECORD_TYPES[kind]}"
    partial = record.get("causeForTerm") in PARTIAL_CAUSES
    sequence = record.get("sequenceNumber")

    def part(mapped: Mapped) -> Part:
        return Part(mapped, offset, call_id, partial, sequence)

    cdr: dict[str, Any] = {"id": call_id, "duration_s": 0}
    if "servedMSISDN" in record:
        cdr["caller"] = dialing_number(record["servedMSISDN"])
    other = record.get("calledNumber" if kind == MO_CALL else "callingNumber")
    if other is not None:
        cdr["callee"] = dialing_number(other)
    if kind == MT_CALL:
        cdr["type"] = "terminating"
    elif (forward_kind := _forward_kind(record)) is not None:
        cdr["type"] = "forwarded"
        cdr["forward_kind"] = forward_kind
    answer = record.get("answerTime")
    when = answer if answer is not None else record.get("seizureTime", record.get("releaseTime"))
    if when is not None:
        start = timestamp(when)
        if start is None:
            return part(Mapped.rejected(raw, "start.invalid_answer_time", record_id=call_id))
        cdr["start"] = start
    if answer is not None:
        cdr["duration_s"] = record.get("callDuration", 0)
    area = msc_areas.get(msc) or msc_areas.get(address_digits(record.get("mSCAddress", b"")))
    if area is None:
        return part(Mapped.rejected(raw, "visited_area.unknown_msc", record_id=call_id))
    cdr["visited_area"] = area
    return part(Mapped(raw, cdr=cdr, record_id=call_id))


def is_complete(parts: Sequence[Part]) -> bool:
    """A call's parts hold its last part and every part before it (TS 32.298 numbers the
    parts of a call from 1)."""
    finals = [p for p in parts if not p.partial]
    if not finals:
        return False
    sequences = sorted({p.sequence for p in parts if p.sequence is not None})
    return not sequences or sequences == list(range(1, len(sequences) + 1))


def _part_order(part: Part) -> tuple[int, int]:
    """Parts by sequence number; without one, a partial part before the last part."""
    if part.sequence is not None:
        return (part.sequence, part.offset)
    return (0 if part.partial else 1 << 30, part.offset)


def merge_parts(parts: Sequence[Part]) -> Mapped:
    """A whole call of its parts (SPEC §9: one call, one charge): durations summed, the first
    part's answer time; its bytes are the parts' bytes, in order (a bare file of them)."""
    ordered = sorted(parts, key=_part_order)
    original = b"".join(p.mapped.original for p in ordered)
    call_id = ordered[0].call_id
    for p in ordered:
        if p.mapped.rejection is not None:
            return Mapped(original, rejection=p.mapped.rejection, record_id=call_id)
    cdrs = [p.mapped.cdr for p in ordered if p.mapped.cdr is not None]
    merged = dict(cdrs[0])
    merged["duration_s"] = sum(c["duration_s"] for c in cdrs)
    return Mapped(original, cdr=merged, record_id=call_id)


def held(part: Part) -> Mapped:
    """A part waiting for the rest of its call: rejected `record.partial_held`, so it is kept
    in suspense (as its own bytes) until the last part arrives."""
    return Mapped(
        part.mapped.original, rejection=Rejected("record.partial_held"), record_id=part.call_id
    )
