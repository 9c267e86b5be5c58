"""Group commit of audit rows: one INSERT for the quotes that wait at the same time.

A quote's audit row is committed before its answer is sent (SPEC: every read of customer
data audited). A row goes at once on a free writer (a connection), from the quote's own
task; rows that arrive while every writer runs an INSERT wait for the next free one, which
takes them all (up to `max_rows`) in a task of its own: at low load each row goes alone at
once (no added latency, no extra turn of the event loop), under load one statement and one
thread hop serve many quotes. When the INSERT fails, every quote that waited on it gets the
error (the handlers answer 503 database_unavailable); an error that is not the database's
unavailability is narrowed to the row(s) that cause it by inserting the rows of that group
one by one.

On PostgreSQL the batcher writes on asyncio connections of its own (WRITERS of them, one
INSERT at a time on each; no thread hop, no pool) with the service's bounds:
connect_timeout, the server's statement_timeout, and a client-side deadline for a server
that does not answer at all; one statement, `INSERT ... SELECT FROM
json_populate_recordset`, prepared once, whatever the group size. A connection found dead
is replaced and the INSERT retried once. SQLite: the INSERT runs in a worker thread on the
engine.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

import orjson
import psycopg
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from service.db import repository
from service.db.retry import run_retrying
from service.db.session import CLIENT_GRACE_S, LIBPQ_MIN_CONNECT_TIMEOUT_S, DbTimeouts
from service.errors import is_database_unavailable

log = logging.getLogger("callrate")

# PostgreSQL connections writing at once, per worker. Measured with 2: at 2 requests in
# flight per worker a quote waited less for another's INSERT (+9 % answers/s), at 8 the
# groups halved and CPU per answer rose by a fifth (-20 % answers/s): one.
WRITERS = 1

Row = Mapping[str, Any]
T = TypeVar("T")


class AuditBatcher:
    """Collects audit rows on the event loop; writes them in groups, on up to `writers`
    connections at once (PostgreSQL; SQLite: one, its writes take a file lock)."""

    def __init__(
        self,
        engine: Engine,
        *,
        timeouts: DbTimeouts | None = None,
        max_rows: int = 256,
        writers: int = WRITERS,
    ) -> None:
        self.engine = engine
        self.max_rows = max_rows
        postgres = engine.dialect.name == "postgresql"
        self._idle: list[_PostgresWriter | None] = (
            [_PostgresWriter(engine, timeouts or DbTimeouts()) for _ in range(writers)]
            if postgres
            else [None]
        )
        self._writers = list(self._idle)
        self._pending: list[tuple[Row, asyncio.Future[None]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.statements = 0  # INSERTs issued (tests and the benchmark read it)
        self.rows = 0

    async def write(self, row: Row) -> None:
        """Return once `row` is committed; raise the database's error if it is not."""
        if self._idle and not self._pending:
            # a free writer and no row waiting: this row goes now, from this task (a task of
            # its own would cost a turn of the event loop, most of a quote's CPU at low load)
            writer = self._idle.pop()
            try:
                # cancelled (the quote's deadline): the INSERT goes on, detached (_bounded)
                await self._insert(writer, [row])
            finally:
                self._release(writer)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, done))  # the next free writer takes it, with the others
        if self._idle:
            self._drain(self._idle.pop())
        await done

    def _release(self, writer: _PostgresWriter | None) -> None:
        if self._pending:
            self._drain(writer)
        else:
            self._idle.append(writer)

    def _drain(self, writer: _PostgresWriter | None) -> None:
        """Write the waiting rows on `writer` in a task of its own: it runs at the loop's
        next turn, and rows added meanwhile go in the same INSERT."""
        task = asyncio.get_running_loop().create_task(self._write_pending(writer))
        self._tasks.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)

    async def _write_pending(self, writer: _PostgresWriter | None) -> None:
        try:
            while self._pending:
                group = self._pending[: self.max_rows]
                del self._pending[: self.max_rows]
                rows = [row for row, _ in group]
                try:
                    await self._insert(writer, rows)
                except Exception as exc:
                    if len(group) > 1 and not is_database_unavailable(exc):
                        await self._one_by_one(writer, group)
                        continue
                    _settle(group, exc)
                else:
                    _settle(group, None)
        finally:
            self._idle.append(writer)

    async def _one_by_one(
        self, writer: _PostgresWriter | None, group: Sequence[tuple[Row, asyncio.Future[None]]]
    ) -> None:
        for row, done in group:
            try:
                await self._insert(writer, [row])
            except Exception as exc:
                _settle([(row, done)], exc)
            else:
                _settle([(row, done)], None)

    async def _insert(self, writer: _PostgresWriter | None, rows: list[Row]) -> None:
        if writer is not None:
            await writer.insert(rows)
        else:
            await run_in_threadpool(
                run_retrying,
                self.engine,
                lambda connection: repository.add_audits(connection, rows=rows),
            )
        self.statements += 1
        self.rows += len(rows)

    async def close(self) -> None:
        """Close the PostgreSQL connections, if any."""
        for writer in self._writers:
            if writer is not None:
                await writer.close()


# The group as one JSON text parameter: rendering it (orjson) costs a few µs, where psycopg
# adapting a parameter per column and row cost ~100 µs a group.
_GROUP_INSERT = (
    "INSERT INTO audit_log (at, key_id, role, action, subject, detail) "
    "SELECT at, key_id, role, action, subject, detail "
    "FROM json_populate_recordset(NULL::audit_log, %s::json)"
)


class _Deadline(psycopg.OperationalError):
    """The database did not answer within the bound (not retried)."""


class _PostgresWriter:
    """One asyncio psycopg connection, autocommit, synchronous_commit off, bounded waits."""

    def __init__(self, engine: Engine, timeouts: DbTimeouts) -> None:
        _, params = engine.dialect.create_connect_args(engine.url)
        self.params: dict[str, Any] = {
            **params,
            "autocommit": True,
            "connect_timeout": max(LIBPQ_MIN_CONNECT_TIMEOUT_S, math.ceil(timeouts.connect_s)),
        }
        self.timeouts = timeouts
        self._connection: psycopg.AsyncConnection[Any] | None = None

    async def insert(self, rows: Sequence[Row]) -> None:
        """INSERT the rows; every wait of it (connect, settings, the statement, a reconnect
        when the connection was found dead) within one bound, the statement's plus the
        client's grace: past it _Deadline, never retried (the server is frozen)."""
        limit = max(self.timeouts.statement_s, self.timeouts.connect_s) + CLIENT_GRACE_S
        deadline = asyncio.get_running_loop().time() + limit
        values = (orjson.dumps(rows).decode(),)
        fresh = self._connection is None
        connection = await self._connect(deadline)
        try:
            await self._bounded(
                connection.execute(_GROUP_INSERT, values, prepare=True), deadline, connection
            )
        except _Deadline:
            raise
        except psycopg.OperationalError:
            dead = (not connection.closed and connection.broken) or connection.closed
            self._drop()
            if fresh or not dead:
                raise
            connection = await self._connect(deadline)  # the pooled one was dead: once more
            try:
                await self._bounded(
                    connection.execute(_GROUP_INSERT, values, prepare=True), deadline, connection
                )
            except psycopg.OperationalError:
                self._drop()
                raise

    async def _connect(self, deadline: float) -> psycopg.AsyncConnection[Any]:
        if self._connection is None:
            connect = psycopg.AsyncConnection.connect(**self.params)
            connection: psycopg.AsyncConnection[Any] = await self._bounded(connect, deadline)
            self._connection = connection
            statement_ms = round(self.timeouts.statement_s * 1000)
            for setting in (
                "SET synchronous_commit = off",
                f"SET statement_timeout = {statement_ms}",
            ):
                await self._bounded(connection.execute(setting), deadline, connection)
        return self._connection

    async def _bounded(
        self,
        work: Awaitable[T],
        deadline: float,
        connection: psycopg.AsyncConnection[Any] | None = None,
    ) -> T:
        """`work` (on `connection`, or making one) until `deadline` (loop time). Not done by
        then (_Deadline), or the caller cancelled: the work is left to end on its own, never
        cancelled (psycopg would then wait up to 10 s for a frozen server to cancel the
        statement), and its connection is closed once it does."""
        task = asyncio.ensure_future(work)
        remaining = max(deadline - asyncio.get_running_loop().time(), 0.0)
        try:
            done, _ = await asyncio.wait({task}, timeout=remaining)
        except asyncio.CancelledError:
            self._detach(task, connection)
            raise
        if not done:
            self._detach(task, connection)
            raise _Deadline("the database did not answer within the statement bound")
        return task.result()

    def _detach(
        self, task: asyncio.Future[Any], connection: psycopg.AsyncConnection[Any] | None
    ) -> None:
        if connection is not None and self._connection is connection:
            self._connection = None  # never reused: the server's state is unknown

        def finished(ended: asyncio.Future[Any]) -> None:
            if ended.cancelled():
                return
            error = ended.exception()  # retrieved: no "never retrieved" warning
            made = ended.result() if error is None and connection is None else None
            for leftover in (connection, made):
                if isinstance(leftover, psycopg.AsyncConnection) and not leftover.closed:
                    leftover.pgconn.finish()

        task.add_done_callback(finished)

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            connection.pgconn.finish()  # never reused: the server's state is unknown

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()


def _settle(group: Sequence[tuple[Row, asyncio.Future[None]]], error: Exception | None) -> None:
    for _, done in group:
        if done.done():  # its request was cancelled (client gone): the row is written anyway
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
