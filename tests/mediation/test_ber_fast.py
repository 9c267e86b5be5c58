"""service.ingest.ber_fast: the fast reading of call records equals pycrate's decoding, field
for field, on every record generated here; what it does not read, it leaves to pycrate."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from service.ingest.ber_fast import USED_FIELDS, read_call
from service.ingest.threegpp import read_file
from tests.mediation.fixtures import MSC_AREAS, address, bcd_time, cs_record, tbcd

DIGITS = st.text(alphabet="0123456789", min_size=3, max_size=15)
OCTETS = st.binary(min_size=1, max_size=8)
TIMES = st.sampled_from(["100301100000+0800", "091231235959-0530", "100101000000+0000"])
OPTIONAL = {
    "servedMSISDN": DIGITS.map(address),
    "calledNumber": DIGITS.map(lambda d: address(d, international=False)),
    "mSCAddress": DIGITS.map(address),
    "seizureTime": TIMES.map(bcd_time),
    "answerTime": TIMES.map(bcd_time),
    "releaseTime": TIMES.map(bcd_time),
    "sequenceNumber": st.integers(0, 2**31 - 1),
    "supplServicesUsed": st.lists(
        st.fixed_dictionaries(
            {"ssCode": st.binary(min_size=1, max_size=1)},
            optional={"ssTime": TIMES.map(bcd_time)},
        ),
        max_size=3,
    ),
    "servedIMEI": st.just(tbcd("3520990017614823")),
}


def library(raw: bytes) -> tuple[str, dict[str, Any]]:
    from pycrate_asn1dir import CDR

    record = CDR.CSChargingDataTypes.CSRecord
    record.from_ber(raw)
    name, value = record.get_val()
    return name, {k: v for k, v in value.items() if k in USED_FIELDS}


@st.composite
def records(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["moCallRecord", "mtCallRecord"]))
    fields: dict[str, Any] = {
        "callDuration": draw(st.integers(0, 86_400)),
        "causeForTerm": draw(st.sampled_from([0, 1, 2, 3, 4])),
        "callReference": draw(OCTETS),
        "recordingEntity": address(draw(DIGITS)),
    }
    for name, strategy in OPTIONAL.items():
        if draw(st.booleans()):
            fields[name] = draw(strategy)
    if kind == "mtCallRecord":
        fields.pop("calledNumber", None)
        fields["callingNumber"] = address(draw(DIGITS))
    if not fields.get("answerTime"):
        fields["answerTime"] = None
    return cs_record(kind, **fields)


@settings(max_examples=300, deadline=None)
@given(records())
def test_the_fast_reading_equals_the_library_on_every_record(raw: bytes) -> None:
    fast = read_call(raw)
    assert fast is not None
    assert fast == (library(raw), len(raw))


@settings(max_examples=100, deadline=None)
@given(st.lists(records(), min_size=1, max_size=4))
def test_a_file_maps_the_same_either_way(raws: list[bytes]) -> None:
    data = b"".join(raws)
    mapped = [p.mapped for p in read_file(data, msc_areas=MSC_AREAS).parts]
    from service.ingest.threegpp import map_record

    expected = [map_record(library(raw), raw, 0, MSC_AREAS).mapped for raw in raws]
    assert [(m.cdr, m.rejection and m.rejection.code, m.original) for m in mapped] == [
        (m.cdr, m.rejection and m.rejection.code, m.original) for m in expected
    ]


def test_what_it_does_not_read_is_left_to_the_library() -> None:
    raw = cs_record()
    assert read_call(raw[:-3]) is None  # cut short
    assert read_call(b"\xa6" + raw[1:]) is None  # another record type (moSMSRecord's tag)
    assert read_call(b"\xa0\x80" + raw[2:] + b"\x00\x00") is None  # indefinite length
    assert read_call(raw + raw) == (read_call(raw)[0], len(raw))  # type: ignore[index]
