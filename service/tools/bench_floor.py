"""The bare audited ASGI app `callrate bench service` compares quote capacity to.

What any audited quote service pays at least: an HTTP request parsed by uvicorn, its JSON
body decoded, one audit row inserted and committed (PostgreSQL, synchronous_commit off, an
async connection per request in flight), a JSON answer. No framework, no auth, no rating.
Run as `uvicorn service.tools.bench_floor:app` with CALLRATE_BENCH_FLOOR_DSN set (a libpq
conninfo or postgresql:// URL whose search_path holds audit_log).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import orjson
import psycopg

CONNECTIONS = 8  # per worker, like the service's pool
_INSERT = (
    "INSERT INTO audit_log (at, key_id, role, action, subject, detail) "
    "VALUES (now(), 'floor', 'agent', 'quote', %s, %s)"
)
_HEADERS = [(b"content-type", b"application/json")]
_idle: asyncio.Queue[psycopg.AsyncConnection[Any]] | None = None
_opened = 0


async def _connection() -> psycopg.AsyncConnection[Any]:
    global _idle, _opened
    if _idle is None:
        _idle = asyncio.Queue()
    if _idle.empty() and _opened < CONNECTIONS:
        _opened += 1
        connection = await psycopg.AsyncConnection.connect(
            os.environ["CALLRATE_BENCH_FLOOR_DSN"], autocommit=True
        )
        await connection.execute("SET synchronous_commit = off")
        return connection
    return await _idle.get()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """POST any path: JSON object in, one audit row, JSON out; GET /healthz: ok."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    answer: dict[str, Any] = {"ok": True}
    if scope["method"] == "POST":
        request = orjson.loads(body)
        connection = await _connection()
        try:
            await connection.execute(_INSERT, (request.get("caller"), request.get("callee")))
        finally:
            assert _idle is not None
            _idle.put_nowait(connection)
        answer = {"caller": request.get("caller"), "charge_fen": 0}
    payload = orjson.dumps(answer)
    headers = [*_HEADERS, (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
