"""Registry profiles cached per worker, invalidated by every registry write in any worker.

PostgreSQL: every registry write sends `NOTIFY callrate_registry` in its transaction
(repository.put_subscriber), which the server delivers at commit; each worker LISTENs on a
connection of its own (a thread) and empties its cache when told. The cache is used only
while that connection is listening: before LISTEN and after the connection is lost nothing
is served from it (notifications may have been missed) and it is emptied again once it
listens again. A read that started before an invalidation is not kept (generation check),
so a profile read before a write can never outlive the write's notification. A quote sent
after a write's 200 may still see the old entry in another worker for the notification's
delivery time (about a millisecond on one host); in the worker that wrote, never (the cache is
emptied after the commit, before the answer: RegistryCache.watch). Ingest reads its batch's
callers through it too (`profiles`): a batch rated in another worker within that delivery
time is rated with the old profile, as it would have been had it arrived just before the write.

SQLite: no cache. Its registry read is an in-process B-tree lookup that costs about as
much as any version check would, and SQLite has no cross-process notification.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, Final

import psycopg
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from service.db import repository
from service.db.retry import run_retrying
from service.flows.registry import Registry, profile_of
from service.rating.scalar import SubscriberProfile

log = logging.getLogger("callrate")


class Missing:
    """The type of MISSING: not in the cache (None is a cached "not registered")."""


MISSING: Final = Missing()
RECONNECT_S = 0.5
STOP_CHECK_S = 1.0  # the listening thread sees stop() within this
# TCP keepalives: a listening connection whose peer vanished silently fails within ~15 s
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 5,
    "keepalives_count": 2,
}


class RegistryCache:
    """caller -> registry profile (None: not registered), bounded to `max_entries`."""

    def __init__(self, engine: Engine, *, max_entries: int = 100_000) -> None:
        self.engine = engine
        self.max_entries = max_entries
        self._entries: dict[str, SubscriberProfile | None] = {}
        self._lock = threading.Lock()
        self._generation = 0
        self._listening = False
        self._stopped = threading.Event()
        self._connection: psycopg.Connection[Any] | None = None
        self.invalidations = 0

    @property
    def listening(self) -> bool:
        """Whether entries are being cached (PostgreSQL, LISTEN in place)."""
        return self._listening

    def watch(self, sessions: sessionmaker[Session]) -> None:
        """Empty the cache after each commit of these sessions that wrote the registry: in
        the writing worker a quote sent after the write's answer never sees the old entry."""

        def after_commit(session: Session) -> None:
            if session.info.pop(repository.REGISTRY_WRITTEN, False):
                self.invalidate()

        event.listen(sessions, "after_commit", after_commit)

    def start(self) -> None:
        """Listen for registry writes (PostgreSQL); on SQLite the cache stays off."""
        if self.engine.dialect.name != "postgresql":
            return
        threading.Thread(target=self._listen, name="callrate-registry-listen", daemon=True).start()

    def stop(self) -> None:
        """Stop listening; nothing is served from the cache any more. The thread closes its
        connection within STOP_CHECK_S (closing it from here would wait as long)."""
        self._stopped.set()
        with self._lock:
            self._listening = False
            self._entries.clear()

    def cached(self, msisdn: str) -> SubscriberProfile | Missing | None:
        """The cached profile, or MISSING (no I/O: called on the event loop)."""
        return self._entries.get(msisdn, MISSING)

    def load(self, msisdn: str) -> SubscriberProfile | None:
        """The profile from the database (blocking), kept if no write was notified meanwhile."""
        generation = self._generation
        entry = run_retrying(
            self.engine, lambda connection: repository.registry_entry(connection, msisdn=msisdn)
        )
        profile = None if entry is None else profile_of(entry)
        with self._lock:
            if self._listening and generation == self._generation:
                self._keep(msisdn, profile)
        return profile

    def profiles(self, msisdns: Sequence[str], read: Registry) -> dict[str, SubscriberProfile]:
        """The registered profiles of these numbers (an ingested batch's callers): those
        cached, and the others from `read` (one query in the batch's session), kept as `load`
        keeps its entry."""
        generation = self._generation
        found: dict[str, SubscriberProfile] = {}
        missing: list[str] = []
        for msisdn in msisdns:
            profile = self._entries.get(msisdn, MISSING)
            if isinstance(profile, Missing):
                missing.append(msisdn)
            elif profile is not None:
                found[msisdn] = profile
        if not missing:
            return found
        loaded = read(missing)
        found.update(loaded)
        with self._lock:
            if self._listening and generation == self._generation:
                for msisdn in missing:
                    self._keep(msisdn, loaded.get(msisdn))
        return found

    def _keep(self, msisdn: str, profile: SubscriberProfile | None) -> None:
        if len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]  # the oldest
        self._entries[msisdn] = profile

    def invalidate(self) -> None:
        """Forget every entry, and every read in progress."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self.invalidations += 1

    def _listen(self) -> None:
        while not self._stopped.is_set():
            try:
                self._listen_once()
            except Exception as exc:
                log.warning("registry cache off: its connection failed (%s)", type(exc).__name__)
            self._stop_listening()
            self._stopped.wait(RECONNECT_S)

    def _listen_once(self) -> None:
        cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
        connection: psycopg.Connection[Any] = psycopg.connect(
            *cargs, **{**cparams, **KEEPALIVES, "autocommit": True}
        )
        self._connection = connection
        connection.execute(f"LISTEN {repository.REGISTRY_CHANNEL}")
        self.invalidate()  # writes before LISTEN may have been cached by reads in flight
        with self._lock:
            self._listening = True
        while not self._stopped.is_set():
            # raises when the connection is lost (closed by the server, or keepalives fail)
            for _ in connection.notifies(timeout=STOP_CHECK_S):
                self.invalidate()

    def _stop_listening(self) -> None:
        with self._lock:
            self._listening = False
            self._generation += 1
            self._entries.clear()
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # already broken
                log.debug("closing the registry listener failed", exc_info=True)
