"""A fast reading of the call records of TS 32.298 (moCallRecord, mtCallRecord): only the
fields SPEC §3.4 maps, walked straight over the BER, in the shape pycrate's `get_val()`
gives them.

The layout (each record's tag, each field's tag and type) is read from pycrate's compiled
32.298 modules, not written here. Anything out of the ordinary (another record type, an
indefinite length, a constructed string, a mandatory field missing, a cut-short TLV) returns
None, and the caller decodes that record with pycrate itself. tests/mediation/test_ber_fast.py
proves the two equal, field for field, on generated records."""

from __future__ import annotations

from functools import cache
from typing import Any

# the fields service.ingest.threegpp.map_record reads
USED_FIELDS = frozenset(
    {
        "recordType",
        "servedMSISDN",
        "callingNumber",
        "calledNumber",
        "recordingEntity",
        "mSCAddress",
        "supplServicesUsed",
        "seizureTime",
        "answerTime",
        "releaseTime",
        "callDuration",
        "causeForTerm",
        "callReference",
        "sequenceNumber",
    }
)
CALL_RECORDS = ("moCallRecord", "mtCallRecord")
_CONTEXT = 2
_INTEGER, _OCTETS, _SEQUENCE_OF = "INTEGER", "OCTET STRING", "SEQUENCE OF"

# record tag -> (record name, {used field's tag: (field name, type)}, mandatory fields' tags)
Layout = dict[int, tuple[str, dict[int, tuple[str, str]], frozenset[int]]]


@cache
def layout() -> Layout:
    """The call records' tags and their used fields' tags and types, from pycrate's modules."""
    from pycrate_asn1dir import CDR

    choice = CDR.CSChargingDataTypes.CSRecord
    found: Layout = {}
    for name in CALL_RECORDS:
        record = choice._cont[name]
        ((tag_class, number),) = record._tagc
        assert tag_class == _CONTEXT
        fields = {}
        mandatory = set()
        for field, member in record._cont.items():
            ((member_class, member_number),) = member._tagc
            assert member_class == _CONTEXT
            if field in USED_FIELDS:
                fields[member_number] = (field, member.TYPE)
            if field in record._root_mand:
                mandatory.add(member_number)
        found[number] = (name, fields, frozenset(mandatory))
    return found


def _tag(data: bytes, at: int, end: int) -> tuple[int, bool, int, int] | None:
    """(class, constructed, number, next offset) of the tag at `at`."""
    if at >= end:
        return None
    first = data[at]
    number = first & 0x1F
    at += 1
    if number == 0x1F:  # high tag number: base 128, the last octet without its top bit
        number = 0
        while True:
            if at >= end:
                return None
            octet = data[at]
            at += 1
            number = (number << 7) | (octet & 0x7F)
            if not octet & 0x80:
                break
    return first >> 6, bool(first & 0x20), number, at


def _length(data: bytes, at: int, end: int) -> tuple[int, int] | None:
    """(length, next offset) of a definite length; None for the indefinite form."""
    if at >= end:
        return None
    first = data[at]
    at += 1
    if first < 0x80:
        return first, at
    count = first & 0x7F
    if count == 0 or count > 4 or at + count > end:
        return None
    return int.from_bytes(data[at : at + count], "big"), at + count


def _services(data: bytes, at: int, end: int) -> list[dict[str, bytes]] | None:
    """supplServicesUsed: SEQUENCE OF SEQUENCE { ssCode [0], ssTime [1], ... }."""
    services = []
    while at < end:
        head = _tag(data, at, end)
        if head is None or head[:3] != (0, True, 16):
            return None
        size = _length(data, head[3], end)
        if size is None or size[1] + size[0] > end:
            return None
        inner, stop = size[1], size[1] + size[0]
        service: dict[str, bytes] = {}
        while inner < stop:
            field = _tag(data, inner, stop)
            if field is None or field[1]:
                return None
            value = _length(data, field[3], stop)
            if value is None or value[1] + value[0] > stop:
                return None
            if field[0] == _CONTEXT and field[2] in (0, 1):
                service["ssCode" if field[2] == 0 else "ssTime"] = data[
                    value[1] : value[1] + value[0]
                ]
            inner = value[1] + value[0]
        services.append(service)
        at = stop
    return services


def read_call(data: bytes, at: int = 0) -> tuple[tuple[str, dict[str, Any]], int] | None:
    """The call record at `at`: ((record name, its used fields), the offset after it), or
    None when pycrate must decode it."""
    end = len(data)
    head = _tag(data, at, end)
    if head is None or head[0] != _CONTEXT or not head[1]:
        return None
    known = layout().get(head[2])
    size = _length(data, head[3], end)
    if known is None or size is None or size[1] + size[0] > end:
        return None
    name, fields, mandatory = known
    at, stop = size[1], size[1] + size[0]
    values: dict[str, Any] = {}
    seen: set[int] = set()
    while at < stop:
        field = _tag(data, at, stop)
        if field is None:
            return None
        value = _length(data, field[3], stop)
        if value is None or value[1] + value[0] > stop:
            return None
        start, after = value[1], value[1] + value[0]
        if field[0] == _CONTEXT:
            if field[2] in seen:
                return None  # a SET holds each member once
            seen.add(field[2])
        if field[0] == _CONTEXT and field[2] in fields:
            member, kind = fields[field[2]]
            if kind == _INTEGER and not field[1] and value[0]:
                values[member] = int.from_bytes(data[start:after], "big", signed=True)
            elif kind == _OCTETS and not field[1]:
                values[member] = data[start:after]
            elif kind == _SEQUENCE_OF and field[1]:
                services = _services(data, start, after)
                if services is None:
                    return None
                values[member] = services
            else:
                return None
        at = after
    if not mandatory <= seen:
        return None
    return (name, values), stop
