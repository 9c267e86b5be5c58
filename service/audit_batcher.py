"""Group commit of audit rows: one INSERT for the quotes that wait at the same time.

A quote's audit row is committed before its answer is sent (SPEC: every read of customer
data audited). Rows that arrive while an INSERT is running wait for the next one, which
takes them all (up to `max_rows`): at low load each row goes alone at once (no added
latency), under load one statement and one thread hop serve many quotes. When the INSERT
fails, every quote that waited on it gets the error (the handlers answer 503
database_unavailable); an error that is not the database's unavailability is narrowed to
the row(s) that cause it by inserting the rows of that group one by one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from service.db import repository
from service.db.retry import run_retrying
from service.errors import is_database_unavailable

log = logging.getLogger("callrate")

Row = Mapping[str, Any]


class AuditBatcher:
    """Collects audit rows on the event loop; writes them in groups on an autocommit engine."""

    def __init__(self, engine: Engine, *, max_rows: int = 256) -> None:
        self.engine = engine
        self.max_rows = max_rows
        self._pending: list[tuple[Row, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.statements = 0  # INSERTs issued (tests and the benchmark read it)
        self.rows = 0

    async def write(self, row: Row) -> None:
        """Return once `row` is committed; raise the database's error if it is not."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((row, done))
        if self._writer is None:
            # runs at the loop's next turn: rows added meanwhile go in the same INSERT
            self._writer = loop.create_task(self._write_pending())
        await done

    async def _write_pending(self) -> None:
        try:
            while self._pending:
                group = self._pending[: self.max_rows]
                del self._pending[: self.max_rows]
                rows = [row for row, _ in group]
                try:
                    await run_in_threadpool(self._insert, rows)
                except Exception as exc:
                    if len(group) > 1 and not is_database_unavailable(exc):
                        await self._one_by_one(group)
                        continue
                    _settle(group, exc)
                else:
                    _settle(group, None)
        finally:
            self._writer = None

    async def _one_by_one(self, group: Sequence[tuple[Row, asyncio.Future[None]]]) -> None:
        for row, done in group:
            try:
                await run_in_threadpool(self._insert, [row])
            except Exception as exc:
                _settle([(row, done)], exc)
            else:
                _settle([(row, done)], None)

    def _insert(self, rows: list[Row]) -> None:
        run_retrying(self.engine, lambda connection: repository.add_audits(connection, rows=rows))
        self.statements += 1
        self.rows += len(rows)


def _settle(group: Sequence[tuple[Row, asyncio.Future[None]]], error: Exception | None) -> None:
    for _, done in group:
        if done.done():  # its request was cancelled (client gone): the row is written anyway
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
