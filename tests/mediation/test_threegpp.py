"""service.ingest.threegpp: TS 32.298 CS records (encoded here by pycrate) -> §3.1 CDRs."""

from __future__ import annotations

import pytest

from service.ingest.threegpp import (
    dialing_number,
    is_complete,
    merge_parts,
    read_file,
    tbcd,
    timestamp,
)
from tests.mediation.fixtures import (
    MSC_AREAS,
    address,
    bcd_time,
    cs_record,
    framed,
)
from tests.mediation.fixtures import tbcd as to_tbcd


def one(data: bytes) -> dict[str, object]:
    (part,) = read_file(data, msc_areas=MSC_AREAS).parts
    assert part.mapped.rejection is None, part.mapped.rejection
    assert part.mapped.cdr is not None
    return part.mapped.cdr


def test_tbcd_reads_low_nibble_first_up_to_the_filler() -> None:
    assert tbcd(to_tbcd("8613800138000")) == "8613800138000"
    assert tbcd(bytes([0x21, 0xF3])) == "123"
    assert tbcd(bytes([0xBA])) == "*#"


@pytest.mark.parametrize(
    ("digits", "international", "expected"),
    [
        ("8613800138000", True, "13800138000"),  # 86 + mobile: the national number
        ("862188001234", True, "02188001234"),  # 86 + fixed line: with the trunk prefix
        ("14155550123", True, "0014155550123"),  # another country: 00 + digits
        ("02188001234", False, "02188001234"),  # unknown: as dialed
        ("10086", False, "10086"),
    ],
)
def test_numbers_by_type_of_number(digits: str, international: bool, expected: str) -> None:
    assert dialing_number(address(digits, international=international)) == expected


def test_national_type_of_number_is_as_dialed() -> None:
    assert dialing_number(bytes([0xA1]) + to_tbcd("13912345678")) == "13912345678"


def test_bcd_times_with_their_offset() -> None:
    assert timestamp(bcd_time("100301100000+0800")) == "2010-03-01T10:00:00+08:00"
    assert timestamp(bcd_time("091231235959-0530")) == "2009-12-31T23:59:59-05:30"
    assert timestamp(bcd_time("101301100000+0800")) is None  # month 13
    assert timestamp(b"\x10\x03\x01\x10\x00\x00X\x08\x00") is None  # no sign


def test_mo_record() -> None:
    cdr = one(cs_record())
    assert cdr == {
        "id": "3gpp:8613900210:0001:1",
        "caller": "13800138000",
        "callee": "02188001234",
        "start": "2010-03-01T10:00:00+08:00",
        "duration_s": 125,
        "visited_area": "021",
    }


def test_mt_record_is_terminating_from_the_calling_number() -> None:
    cdr = one(cs_record("mtCallRecord"))
    assert (cdr["type"], cdr["callee"], cdr["id"]) == (
        "terminating",
        "13912345678",
        "3gpp:8613900210:0001:2",
    )


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (0x21, "unconditional"),
        (0x20, "unconditional"),
        (0x29, "conditional"),
        (0x2A, "conditional"),
        (0x2B, "conditional"),
        (0x28, "conditional"),
    ],
)
def test_forwarding_ss_codes_make_a_forwarded_leg(code: int, kind: str) -> None:
    record = cs_record(
        calledNumber=address("8613912345678"),
        supplServicesUsed=[{"ssCode": b"\x11"}, {"ssCode": bytes([code])}],
    )
    cdr = one(record)
    assert (cdr["type"], cdr["forward_kind"], cdr["callee"]) == ("forwarded", kind, "13912345678")


def test_other_ss_codes_leave_an_originating_call() -> None:
    assert "type" not in one(cs_record(supplServicesUsed=[{"ssCode": b"\x11"}]))  # clip


def test_no_answer_time_is_no_duration_from_the_seizure() -> None:
    cdr = one(cs_record(answerTime=None, seizureTime=bcd_time("100301095950+0800")))
    assert (cdr["duration_s"], cdr["start"]) == (0, "2010-03-01T09:59:50+08:00")


def test_a_record_that_is_no_call_and_an_unknown_msc_are_rejected() -> None:
    from pycrate_asn1dir import CDR

    sms = CDR.CSChargingDataTypes.CSRecord
    sms.set_val(
        (
            "moSMSRecord",
            {
                "recordType": 6,
                "servedIMSI": to_tbcd("460001234567890"),
                "recordingEntity": address("8613900210"),
                "serviceCentre": address("8613800210500"),
                "msClassmark": b"\x00\x00\x00",
                "messageReference": b"\x01",
                "originationTime": bcd_time("100301100000+0800"),
            },
        )
    )
    data = bytes(sms.to_ber()) + cs_record(recordingEntity=address("8613999999"))
    parts = read_file(data, msc_areas=MSC_AREAS).parts
    codes = [p.mapped.rejection.code if p.mapped.rejection else None for p in parts]
    assert codes == ["record.not_a_call", "visited_area.unknown_msc"]
    assert parts[1].mapped.record_id == "3gpp:8613999999:0001:1"
    assert b"".join(p.mapped.original for p in parts) == data


def test_framed_and_bare_files_give_the_same_records() -> None:
    records = [cs_record(callReference=bytes([i])) for i in range(3)]
    bare = read_file(b"".join(records), msc_areas=MSC_AREAS)
    file = read_file(framed(*records), msc_areas=MSC_AREAS)
    assert (bare.framed, file.framed) == (False, True)
    assert [p.mapped.cdr for p in bare.parts] == [p.mapped.cdr for p in file.parts]
    assert [p.mapped.original for p in file.parts] == records


def test_a_corrupt_record_of_a_framed_file_is_rejected_and_the_rest_read() -> None:
    good = cs_record()
    data = bytearray(framed(good, good, good))
    second = 54 + 4 + len(good) + 4
    data[second] = 0x05  # not the CHOICE's tag
    parts = read_file(bytes(data), msc_areas=MSC_AREAS)
    assert [p.mapped.rejection is None for p in parts.parts] == [True, False, True]
    assert parts.fault_offset == second - 4


def test_parts_merge_into_one_call() -> None:
    parts = read_file(
        cs_record(
            sequenceNumber=2,
            causeForTerm=0,
            callDuration=10,
            answerTime=bcd_time("100301103000+0800"),
        )
        + cs_record(sequenceNumber=1, causeForTerm=1, callDuration=1800),
        msc_areas=MSC_AREAS,
    ).parts
    assert [p.partial for p in parts] == [False, True]
    assert is_complete(parts)
    assert not is_complete(parts[1:])
    assert not is_complete(parts[:1] + [p for p in parts if p.sequence == 5])
    merged = merge_parts(parts)
    assert merged.cdr is not None
    assert (merged.cdr["duration_s"], merged.cdr["start"]) == (1810, "2010-03-01T10:00:00+08:00")
    assert merged.original == parts[1].mapped.original + parts[0].mapped.original
