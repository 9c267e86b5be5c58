"""Quotes (POST /v1/quote): a request rated by the per-call path, and its audit row."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from service.clock import utcnow
from service.errors import BadBody, InvalidInput
from service.flows.registry import default_profile
from service.rating.cdr import (
    CallRecord,
    normalize_msisdn,
    parse_cdr,
)
from service.rating.rejections import Rejected
from service.rating.result import Rating
from service.rating.scalar import Rater, SubscriberProfile
from service.security import Actor, mask_number, mask_text


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A body that must be one JSON object."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadBody(f"body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidInput("body must be a JSON object")
    return value


def parse_quote(request: object) -> CallRecord | Rejected:
    """A quote request as a call, or why it is not one."""
    try:
        return parse_cdr(request, require_id=False)
    except Rejected as rejection:
        return rejection


def rate_quote(
    request: object,
    call: CallRecord | Rejected,
    *,
    registered: SubscriberProfile | None,
    rater: Rater,
    default_plan: str | None,
    actor: Actor,
    now: datetime | None = None,
) -> tuple[Rating | Rejected, dict[str, Any]]:
    """Rate a parsed quote request (`registered`: the caller's registry profile, None when
    the registry does not know them) and the audit row to write before answering (also for
    a rejected quote): subject the caller, detail the masked callee and the outcome."""
    result: Rating | Rejected
    if isinstance(call, Rejected):
        result = call
    else:
        try:
            result = rater.rate(
                call,
                subscriber=registered if registered is not None else default_profile(default_plan),
            )
        except Rejected as rejection:
            result = rejection
    if isinstance(call, CallRecord):
        subject: str | None = call.caller
        callee = mask_number(call.callee)
    else:  # rejected while parsing: the fields as sent, masked (they are not checked numbers)
        subject = _sent_caller(request)
        callee = _sent_text(request, "callee", AUDIT_CALLEE_CHARS) or "-"
    outcome = (
        f"rejected {result.code}" if isinstance(result, Rejected) else f"{result.charge_fen} fen"
    )
    audit = {
        "at": now or utcnow(),
        "key_id": actor.key_id,
        "role": actor.role,
        "action": "quote",
        "subject": subject,
        "detail": f"callee {callee}; {outcome}"[:AUDIT_DETAIL_CHARS],
    }
    return result, audit


AUDIT_SUBJECT_CHARS = 64  # audit_log.subject


AUDIT_DETAIL_CHARS = 128  # audit_log.detail


AUDIT_CALLEE_CHARS = 40


def _sent_caller(request: object) -> str | None:
    """The subject of a quote that did not parse: its caller as the audit log keeps every
    subject (the national number) when it is one, else the text sent, masked."""
    if isinstance(request, Mapping):
        try:
            return normalize_msisdn(request.get("caller"))
        except Rejected:
            pass
    return _sent_text(request, "caller", AUDIT_SUBJECT_CHARS)


def _sent_text(request: object, name: str, limit: int) -> str | None:
    """A field of a request that did not parse, fit for the audit log: printable text with
    numbers masked, cut to the column; None when absent."""
    if not isinstance(request, Mapping) or request.get(name) is None:
        return None
    value = request[name]
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    text = "".join(c for c in text if c.isprintable()).encode("utf-8", "replace").decode()
    return mask_text(text)[:limit] or None
