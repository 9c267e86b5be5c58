"""API keys and roles, number masking, the audit writer (SPEC §6, §8)."""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import secrets
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.config import ROLES, STORED_KEY_RECHECK_S
from service.db import repository

log = logging.getLogger(__name__)

ADMIN = "admin"
KEY_ID_CHARS = 12
KEY_BYTES = 24


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is calling: the key's short id (never the key) and its role."""

    key_id: str
    role: str

    def may(self, role: str) -> bool:
        """Admin may do everything; every other role only its own things."""
        return self.role in (role, ADMIN)


def hash_key(key: str) -> str:
    """sha256 hex of a key: the only form in which keys are stored."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key_hash: str) -> str:
    """A key's public id: a short prefix of its hash, safe to log and audit."""
    return key_hash[:KEY_ID_CHARS]


def new_key() -> str:
    """A fresh random key."""
    return "cr_" + secrets.token_urlsafe(KEY_BYTES)


def parse_api_keys(spec: str) -> list[tuple[str, str]]:
    """`role=key,role=key` -> [(role, key)]; raises ValueError naming the bad entry."""
    pairs: list[tuple[str, str]] = []
    for index, entry in enumerate(part.strip() for part in spec.split(",")):
        if not entry:
            continue
        role, sep, key = entry.partition("=")
        role, key = role.strip(), key.strip()
        if not sep or role not in ROLES or not key:
            raise ValueError(
                f"CALLRATE_API_KEYS entry {index + 1} must be role=key with role one of "
                f"{', '.join(ROLES)}"
            )
        pairs.append((role, key))
    return pairs


UNKNOWN_KEY_TTL_S = 10.0
UNKNOWN_KEYS_KEPT = 10_000


class KeyRing:
    """Key hash -> Actor, held in memory so authentication costs no database round trip.

    With stored keys (no CALLRATE_API_KEYS), a key not in memory is looked up among the
    stored ones once (a key made by `callrate keys create` works without a restart) and
    kept; a hash found nowhere is not looked up again for UNKNOWN_KEY_TTL_S. A stored key
    kept in memory is looked up again once STORED_KEY_RECHECK_S has passed since it was last
    found, so a key deleted by `callrate keys revoke` stops working within that time.
    """

    def __init__(
        self,
        actors_by_hash: dict[str, Actor],
        *,
        stored: Callable[[str], Actor | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._actors = actors_by_hash
        self._stored = stored
        self._clock = clock
        self._unknown: dict[str, float] = {}  # key hash -> when no stored key had it
        now = clock()
        self._found: dict[str, float] = dict.fromkeys(actors_by_hash, now)  # -> when last found

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> KeyRing:
        """From (role, key) pairs (the CALLRATE_API_KEYS setting)."""
        actors: dict[str, Actor] = {}
        for role, key in pairs:
            key_hash = hash_key(key)
            actors[key_hash] = Actor(key_id=key_id_of(key_hash), role=role)
        return cls(actors)

    @classmethod
    def from_database(
        cls, sessions: sessionmaker[Session], *, clock: Callable[[], float] = time.monotonic
    ) -> KeyRing:
        """From the stored key hashes; later keys are looked up when first used."""
        with sessions() as session:
            actors = {
                row.key_hash: Actor(key_id=row.key_id, role=row.role)
                for row in repository.all_api_keys(session)
            }
        return cls(actors, stored=functools.partial(stored_actor, sessions), clock=clock)

    @property
    def looks_up_stored(self) -> bool:
        """Whether keys unknown in memory may still be stored ones."""
        return self._stored is not None

    def authenticate(self, key: str) -> Actor | None:
        """The actor of this key among those in memory, or None (no I/O); None also when a
        stored key is due to be looked up again."""
        key_hash = hash_key(key)
        actor = self._actors.get(key_hash)
        if (
            actor is not None
            and self._stored is not None
            and self._clock() - self._found[key_hash] >= STORED_KEY_RECHECK_S
        ):
            return None
        return actor

    def authenticate_stored(self, key: str) -> Actor | None:
        """The actor of a key not in memory, from the stored keys (database I/O)."""
        if self._stored is None:
            return None
        key_hash = hash_key(key)
        missed_at = self._unknown.get(key_hash)
        if missed_at is not None and self._clock() - missed_at < UNKNOWN_KEY_TTL_S:
            return None
        try:
            actor = self._stored(key_hash)
        except SQLAlchemyError:
            if key_hash not in self._actors:
                raise
            # a re-check the database cannot answer now: the key was valid when last found
            log.warning("stored key %s could not be re-checked", self._actors[key_hash].key_id)
            return self._actors[key_hash]
        if actor is None:  # never stored, or revoked since it was last found
            self._actors.pop(key_hash, None)
            self._found.pop(key_hash, None)
            if len(self._unknown) >= UNKNOWN_KEYS_KEPT:
                self._unknown.clear()
            self._unknown[key_hash] = self._clock()
            return None
        self._unknown.pop(key_hash, None)
        self._actors[key_hash] = actor
        self._found[key_hash] = self._clock()
        return actor

    def __len__(self) -> int:
        return len(self._actors)


def stored_actor(sessions: sessionmaker[Session], key_hash: str) -> Actor | None:
    """The actor of a stored key hash, or None."""
    with sessions() as session:
        row = repository.api_key_by_hash(session, key_hash=key_hash)
        return None if row is None else Actor(key_id=row.key_id, role=row.role)


def create_key(session: Session, *, role: str, now: datetime) -> tuple[str, Actor]:
    """Make and store (hashed) a new key for `role`; the plain key is returned only here."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key = new_key()
    key_hash = hash_key(key)
    row = repository.add_api_key(
        session, key_id=key_id_of(key_hash), key_hash=key_hash, role=role, created_at=now
    )
    return key, Actor(key_id=row.key_id, role=row.role)


def revoke_key(session: Session, *, key_id: str, actor: Actor, now: datetime) -> Actor | None:
    """Delete a stored key (audited); the revoked key's actor, or None if none has this id."""
    row = repository.delete_api_key(session, key_id=key_id)
    if row is None:
        return None
    write_audit(session, actor=actor, action="key.revoke", subject=None, detail=key_id, at=now)
    return Actor(key_id=row.key_id, role=row.role)


def ensure_keys(session: Session, *, now: datetime) -> dict[str, str]:
    """First start without configured keys: one new key per role (role -> plain key)."""
    if repository.all_api_keys(session):
        return {}
    return {role: create_key(session, role=role, now=now)[0] for role in ROLES}


def mask_number(number: str) -> str:
    """Hide a third party's number: 13800138000 -> 138****8000; service numbers stay."""
    length = len(number)
    if length <= 5:  # 110, 10086, 95xxx: public service numbers, not a person's
        return number
    head, tail = (3, 4) if length >= 11 else (2, 2)
    return number[:head] + "*" * (length - head - tail) + number[length - tail :]


# A phone-number-like value: 7 or more digits, maybe after "+", whatever separates them:
# up to three spaces, tabs or line breaks, or one or two of - . / _ ( ) \ with a space
# either side (139-1234-5678, 136.9876.5432, (135)1122-3344, 150  1111  2222); "00" and
# "86" prefixes are digits like the rest. Commas and colons part numbers (a list, key: value)
# and "*" is a mask's. Dates and times are no one's number: 2010-03-01,
# 2010-03-01 10:00:00.123 and 23:59:59 stay as they are.
_GAP = r"(?:\s{1,3}|\s?[-./_()\\]{1,2}\s?)"
PHONE_LIKE = re.compile(rf"(?<!\d)\+?\d(?:{_GAP}?\d){{6,}}(?!\d)")
_MONTH_DAY = r"(?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])"
_TIME = r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:[.,]\d+)?)?"
_DATE_OR_TIME = rf"(?:\d{{4}}[-/.]{_MONTH_DAY}(?:[T ]{_TIME})?|{_TIME})"
_MASKABLE = re.compile(rf"(?<!\d)(?P<keep>{_DATE_OR_TIME})(?!\d)|(?P<phone>{PHONE_LIKE.pattern})")


def _own_forms(own: str | None) -> frozenset[str]:
    """The ways a record may write the subscriber's own number."""
    if not own:
        return frozenset()
    return frozenset({own, "0" + own, "86" + own, "+86" + own, "0086" + own})


def _mask_match(match: re.Match[str], own: frozenset[str]) -> str:
    found = match.group()
    if match.group("phone") is None:  # a date or a time
        return found
    digits = ("+" if found.startswith("+") else "") + "".join(c for c in found if c.isdigit())
    return found if digits in own else mask_number(digits)


def mask_text(text: str, *, own: str | None = None) -> str:
    """Every phone-number-like run in `text` masked (138****8000), except the own number."""
    forms = _own_forms(own)
    return _MASKABLE.sub(lambda match: _mask_match(match, forms), text)


def mask_numbers(value: Any, *, own: str | None = None) -> Any:
    """A JSON value with every phone-number-like string or number masked, nested values and
    object keys too, except the subscriber's own number: what an agent may see of a record
    that holds other parties' numbers in any field a switch chose to send."""
    forms = _own_forms(own)

    def mask(item: Any) -> Any:
        if isinstance(item, str):
            return _MASKABLE.sub(lambda match: _mask_match(match, forms), item)
        if isinstance(item, dict):
            return {mask(key): mask(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [mask(inner) for inner in item]
        if isinstance(item, int | float) and not isinstance(item, bool):
            text = str(item)
            masked = _MASKABLE.sub(lambda match: _mask_match(match, forms), text)
            return item if masked == text else masked
        return item

    return mask(value)


def _masked_record(record: logging.LogRecord) -> None:
    """Rewrite a log record so that no full number reaches any handler."""
    if record.name == "uvicorn.access" and isinstance(record.args, tuple):
        # its formatter unpacks args: mask them one by one (paths hold numbers)
        record.args = tuple(mask_text(a) if isinstance(a, str) else a for a in record.args)
    else:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: log its format string, not nothing
            message = str(record.msg)
        record.msg, record.args = mask_text(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = mask_text("".join(traceback.format_exception(*record.exc_info)))
        record.exc_text = record.exc_text.rstrip("\n")
    if record.stack_info:
        record.stack_info = mask_text(record.stack_info)


def install_log_masking() -> None:
    """Every log record of the process, whatever its logger or handler, is created with its
    numbers masked (SPEC §8: logs never contain a full phone number). Idempotent."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "masks_numbers", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _masked_record(record)
        return record

    factory.masks_numbers = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def audit_text(text: str, limit: int) -> str:
    """Text a caller sent (an id asked for), fit for an audit column: printable, cut."""
    printable = "".join(c for c in text if c.isprintable()).encode("utf-8", "replace").decode()
    return printable[:limit]


def write_audit(
    db: repository.Executor,
    *,
    actor: Actor,
    action: str,
    subject: str | None,
    detail: str | None,
    at: datetime,
) -> None:
    """Append an audit row: who (key id, role), when, what (action, subject, detail)."""
    repository.add_audit(
        db,
        at=at,
        key_id=actor.key_id,
        role=actor.role,
        action=action,
        subject=subject,
        detail=detail,
    )
