"""Suspense rows of a switch's own format read back for a recycle (SPEC §6.2, §3.4): a row
keeps the switch's bytes, so it is mapped again, with today's mediation file (an MSC added
to `[3gpp.msc_areas]` makes its records rate), not read as a §3.1 CDR."""

from __future__ import annotations

from collections.abc import Callable

from service.db.models import SuspenseRow
from service.ingest.cut import Incoming, decode_record
from service.ingest.freeswitch import ID_PREFIX as FREESWITCH_PREFIX
from service.ingest.freeswitch import map_leg
from service.ingest.mediated import Mapped, incoming
from service.ingest.mediation_file import Mediation
from service.ingest.threegpp import ID_PREFIX as THREEGPP_PREFIX
from service.ingest.threegpp import merge_parts, read_file
from service.rating.rejections import Rejected

# Rejections only a FreeSWITCH document gets (its record id may be unknown)
FREESWITCH_CODES = frozenset(
    {"record.not_freeswitch", "record.malformed", "record.forbidden_xml", "record.bad_encoding"}
)
# Rejections of an MSC file's bytes that mapping again cannot change: they are kept as they are
KEPT_CODES = frozenset({"record.not_ber", "record.not_a_call", "record.partial_held"})

RowDecoder = Callable[[SuspenseRow, int], Incoming]


def json_record(row: SuspenseRow, index: int) -> Incoming:
    """A §3.1 row: its bytes decoded as the record they are."""
    return decode_record(row.raw, index, brackets=row.raw.count(b"[") + row.raw.count(b"{"))


def _mapped(row: SuspenseRow, mediation: Mediation) -> Mapped | None:
    """The row mapped again when it holds a switch's own format; None for a §3.1 record."""
    record_id = row.record_id or ""
    if row.code in KEPT_CODES:
        return Mapped(row.raw, rejection=Rejected(row.code), record_id=row.record_id)
    if record_id.startswith(FREESWITCH_PREFIX) or row.code in FREESWITCH_CODES:
        return map_leg(row.raw, "", switch_areas=mediation.switch_areas)
    if record_id.startswith(THREEGPP_PREFIX):
        parts = read_file(row.raw, msc_areas=mediation.msc_areas).parts
        if len(parts) == 1:
            return parts[0].mapped
        return merge_parts(parts)  # a call of several parts, kept as their bytes in order
    return None


def row_decoder(mediation: Mediation) -> RowDecoder:
    """How a recycle reads a suspense row: mapped again if a switch's format, else as JSON."""

    def decode(row: SuspenseRow, index: int) -> Incoming:
        mapped = _mapped(row, mediation)
        if mapped is None:
            return json_record(row, index)
        return incoming([mapped], [index])[0]

    return decode
