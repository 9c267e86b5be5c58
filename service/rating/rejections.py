"""Why a record cannot be rated: a stable code, the field it concerns, and a message."""

from __future__ import annotations

from typing import Any

# code -> message; the code's first part is the field. Both paths use these codes.
REASONS: dict[str, str] = {
    "id.invalid": "id must be a string of 1 to 64 characters",
    "caller.missing": "caller is required",
    "caller.invalid": "caller must be an 11-digit mobile number, optionally +86/86/0086 prefixed",
    "caller.unknown_number_range": "caller's number range is not in the numbering plan",
    "caller.not_china_mobile": (
        "caller is not a China Mobile number and not in the subscriber registry"
    ),
    "callee.missing": "callee is required",
    "callee.empty": "callee is empty",
    "callee.invalid_characters": "callee may hold only digits and one leading '+'",
    "callee.too_long": "callee is longer than any dialable number",
    "callee.invalid_number": "callee is not a dialable number",
    "callee.invalid_plus86": "callee after +86 is neither a mobile number nor an area code",
    "callee.unknown_area_code": "callee's area code is not in the numbering plan",
    "callee.unknown_mobile_prefix": "callee's mobile number range is not in the numbering plan",
    "callee.information_line": "callee is an information line (160x, 168x): outside this tariff",
    "callee.unknown_country_code": "callee's country calling code does not exist",
    "callee.unassigned_nanp_area": "callee's +1 area code is assigned to no country",
    "callee.unknown_destination": "callee's number belongs to no country of the numbering plan",
    "callee.incomplete": "callee is an IP prefix (17951, 12593) with no number after it",
    "callee.invalid_foreign_length": "callee's international number has the wrong length",
    "callee.ip_prefix_on_forward": "callee: a forwarded-to number cannot carry an IP prefix",
    "callee.no_rate_12593_foreign_national_roaming": (
        "callee: 12593 calls abroad while roaming nationally have no rate in this tariff"
    ),
    "start.missing": "start is required",
    "start.invalid": "start must be an RFC 3339 timestamp, e.g. 2010-03-01T10:00:00+08:00",
    "start.no_tariff": "no tariff version is in force at start",
    "duration_s.missing": "duration_s is required",
    "duration_s.invalid": "duration_s must be a whole number of seconds from 0 to 86400",
    "type.invalid": "type must be originating, terminating or forwarded",
    "forward_kind.missing": "forward_kind is required when type is forwarded",
    "forward_kind.invalid": "forward_kind must be unconditional or conditional",
    "visited_area.invalid": "visited_area must be a China area code such as 021",
    "visited_area.unknown_area_code": "visited_area is not an area code in the numbering plan",
    "visited_area.international_roaming": "visited_area is abroad: no international roaming rates",
    "plan.missing": "no plan: the caller is not registered and the record names no plan",
    "plan.unknown": "plan is not in the tariff in force",
    "packages.invalid": "packages must be a list of package names",
    "packages.unknown": "packages names a package that is not in the tariff in force",
    "record.invalid": "record: a CDR must be a JSON object",
    "record.not_json": "record is not JSON",
    "record.not_utf8": "record is not UTF-8 text",
    "record.too_deep": "record is nested more than 64 levels deep",
    "record.unsupported_value": (
        "record holds a number beyond 64-bit floating point or an unpaired surrogate escape"
    ),
    "id.invalid_characters": "id may not hold NUL or unpaired surrogate (\\ud800) characters",
    "id.conflict": "id is already stored with different content",
    # SPEC §3.4: a switch's own format that cannot be mapped to a CDR (service/ingest/).
    "record.not_freeswitch": (
        "record is not a FreeSWITCH mod_json_cdr or mod_xml_cdr document (no variables.uuid)"
    ),
    "record.malformed": "record is not well-formed JSON or XML",
    "record.forbidden_xml": "record declares a DTD, an entity or an external reference: refused",
    "record.bad_encoding": (
        "record: the cdr= form field is missing, or its urlencoding or base64 is invalid"
    ),
    "start.invalid_epoch": (
        "start: answer_uepoch, answer_epoch and start_uepoch must be whole numbers from 0"
    ),
    "duration_s.invalid_billsec": "duration_s: billmsec and billsec must be whole numbers from 0",
    "caller.invalid_diversion": (
        "caller: sip_h_Diversion holds no sip:, sips: or tel: URI with a user part"
    ),
    "record.not_ber": (
        "record: not a whole BER CallEventRecord (a truncated or corrupt file from here on)"
    ),
    "record.not_a_call": "record is not an moCallRecord or mtCallRecord: nothing to rate",
    "record.partial_held": "record is a partial record: held until its call's last part",
    "start.invalid_answer_time": (
        "start: answerTime must be BCD YYMMDDhhmmss, a sign and an offset hhmm"
    ),
    "visited_area.unknown_msc": (
        "visited_area: the MSC (recordingEntity, else mSCAddress) is not in [3gpp.msc_areas]"
    ),
}
REASON_CODES: tuple[str, ...] = tuple(REASONS)


class Rejected(Exception):
    """The record cannot be rated; it goes to suspense whole with this reason."""

    def __init__(self, code: str, *, hint: str | None = None) -> None:
        if code not in REASONS:
            raise ValueError(f"unknown rejection code {code!r}")
        self.code = code
        self.field = code.split(".", 1)[0]
        self.message = REASONS[code]  # what is stored, the same on every path
        # What the one asking could do instead, e.g. the plans there are: told in a quote's
        # answer; not stored (a stored reason stays the code's message on every path).
        self.hint = hint
        super().__init__(f"{self.field}: {self.message}")

    def to_dict(self) -> dict[str, Any]:
        """The rejection as a quote's answer shows it."""
        reason = self.message if self.hint is None else f"{self.message} ({self.hint})"
        return {"rejected": True, "field": self.field, "code": self.code, "reason": reason}
