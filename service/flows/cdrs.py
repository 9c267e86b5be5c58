"""A stored CDR read back: the record as received and its ratings, each explained."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.orm import Session

from service import schemas
from service.clock import utcnow
from service.db import repository
from service.db.models import RatingRow
from service.errors import InSuspense, NotFound
from service.flows.registry import checked_msisdn, home_area_of, profile_of_rating
from service.rating.explain import yuan
from service.rating.rejections import Rejected
from service.rating.result import Rating
from service.rating.scalar import Rater
from service.security import (
    Actor,
    audit_text,
    mask_number,
    mask_numbers,
    mask_text,
    write_audit,
)


def stored_rating_out(row: RatingRow, *, rater: Rater, record: object) -> schemas.StoredRating:
    """Ratings row -> schema. A row written since the detail is rebuilt on read holds no
    items or explanation: they come from `rebuild_detail` on the record as received."""
    if row.items is not None:  # written before: the detail was stored
        items = [schemas.Item.model_validate(item) for item in orjson.loads(row.items)]
        rules: list[str] = orjson.loads(row.rules or "[]")
        explanation = row.explanation_zh or ""
    else:
        detail = rebuild_detail(row, rater=rater, record=record)
        items = [schemas.Item.model_validate(item.to_dict()) for item in detail.items]
        rules, explanation = list(detail.rules), detail.explanation_zh
    return schemas.StoredRating(
        seq=row.seq,
        tariff=row.tariff,
        charge_fen=row.charge_fen,
        call_class=row.call_class,
        dial=row.dial,
        roaming=row.roaming,
        items=items,
        rules=rules,
        explanation_zh=explanation,
        rated_at=row.rated_at,
        source=row.source,
    )


# The explanation of a stored rating whose tariff no longer prices it as it did.
DETAIL_GONE = "本次通话计费所依据的资费此后已变更，计费明细无法重建，以当时计费金额为准："


def rebuild_detail(row: RatingRow, *, rater: Rater, record: object) -> Rating:
    """A stored rating's items, rules and explanation, by the per-call path on the record as
    received with the subscriber profile and the tariff version the rating used: published
    versions never change (SPEC §7), so a rating superseded by a correction is explained as
    it was made. Should it still not come out as stored (a version rated with before it was
    published, say), the detail is not made up: no items, and an explanation that says why
    and gives the stored charge."""
    profile = profile_of_rating(row)
    try:
        rating: Rating | None = rater.rate_raw(
            record, subscriber=profile, require_id=True, version=row.tariff
        )
    except Rejected:
        rating = None
    figures = (row.charge_fen, row.tariff, row.call_class, row.dial, row.roaming)
    if rating is not None and figures == (
        rating.charge_fen,
        rating.tariff,
        rating.call_class,
        rating.dial,
        rating.roaming,
    ):
        return rating
    return Rating(
        charge_fen=row.charge_fen,
        call_class=row.call_class,
        dial=row.dial,
        roaming=row.roaming,
        tariff=row.tariff,
        items=(),
        rules=(),
        explanation_zh=f"{DETAIL_GONE}合计{yuan(row.charge_fen)}",
    )


# 19 digits or more: an integer that may not fit in 64 bits (orjson reads those as floats)
_LONG_DIGITS = re.compile(r"\d{19}")


def parse_record(raw: str) -> Any:
    """The record as received, as JSON values: integers of any size exactly as the bytes
    say (-9223372036854775809 stays that, not -9.223372036854776e+18)."""
    if _LONG_DIGITS.search(raw) is not None:
        try:
            return json.loads(raw)  # exact integers, slower: only where one may be long
        except ValueError:
            pass
    return orjson.loads(raw)


def read_cdr(
    session: Session, *, rater: Rater, cdr_id: str, actor: Actor, now: datetime | None = None
) -> schemas.CdrOut:
    """A stored CDR with its rating history. Agents see every phone-number-like value of the
    record masked (any field, nested too), except the subscriber's own number."""
    at = now or utcnow()
    # PostgreSQL text cannot hold NUL: no stored id has one, and the query would fail
    row = None if "\x00" in cdr_id else repository.get_cdr(session, cdr_id=cdr_id)
    if row is None:
        # the attempt is audited too (SPEC §8); the session commits it with the 404
        missing: NotFound
        if "\x00" not in cdr_id and repository.open_suspense_record_ids(
            session, record_ids=[cdr_id]
        ):
            missing = InSuspense(
                f"CDR {cdr_id!r} was rejected and is not stored: it waits in suspense with "
                "its reason (GET /v1/suspense, admin)"
            )
        else:
            missing = NotFound(f"no CDR with id {cdr_id!r}")
        detail = f"{audit_text(cdr_id, 100)} -> {missing.code}"  # audit_log.detail: 128
        write_audit(session, actor=actor, action="cdr.read", subject=None, detail=detail, at=at)
        raise missing
    record = parse_record(row.raw)
    ratings = [
        stored_rating_out(r, rater=rater, record=record)
        for r in repository.ratings_of(session, cdr_id=cdr_id)
    ]
    write_audit(session, actor=actor, action="cdr.read", subject=row.caller, detail=cdr_id, at=at)
    callee = row.callee
    if actor.role != "admin":
        callee = mask_number(callee)
        record = mask_numbers(record, own=row.caller)
    registered = repository.registry_entry(session, msisdn=row.caller)
    return schemas.CdrOut(
        id=row.id if actor.role == "admin" else mask_text(row.id, own=row.caller),
        caller=row.caller,
        home_area=home_area_of(rater, row.caller, registered.home_area if registered else None),
        callee=callee,
        start_epoch_s=row.start_epoch_s,
        duration_s=row.duration_s,
        type=row.leg,
        received_at=row.received_at,
        record=record,
        current=ratings[-1],
        ratings=ratings,
    )


def read_call(
    session: Session,
    *,
    rater: Rater,
    msisdn: str,
    ref: int,
    actor: Actor,
    now: datetime | None = None,
) -> schemas.CdrOut:
    """A subscriber's call by its reference in the usage list (`ref`), as read_cdr gives it:
    an agent opens a call whose id it sees masked."""
    number = checked_msisdn(msisdn)
    cdr_id = repository.cdr_id_of_rating(session, rating_id=ref)
    row = None if cdr_id is None else repository.get_cdr(session, cdr_id=cdr_id)
    if row is None or row.caller != number:
        write_audit(
            session,
            actor=actor,
            action="cdr.read",
            subject=number,
            detail=f"call {ref} -> {NotFound.code}",
            at=now or utcnow(),
        )
        raise NotFound(f"subscriber {number} has no call {ref}")
    return read_cdr(session, rater=rater, cdr_id=row.id, actor=actor, now=now)
