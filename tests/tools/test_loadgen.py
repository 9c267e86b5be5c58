"""service.tools.loadgen counts what a server answered: 200, 503, and no answer at all."""

from __future__ import annotations

import asyncio
from typing import Any

from service.tools import loadgen


async def _serve(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, writers: set[asyncio.StreamWriter]
) -> None:
    """/ok: 200; /busy: 503; /drop: the connection is closed without an answer."""
    writers.add(writer)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1]
            if path == b"/drop":
                writer.close()
                return
            status = b"200 OK" if path == b"/ok" else b"503 Service Unavailable"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


def _request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode()


async def _against_server(mode: str, requests: list[bytes], **params: Any) -> dict[str, Any]:
    writers: set[asyncio.StreamWriter] = set()
    server = await asyncio.start_server(
        lambda reader, writer: _serve(reader, writer, writers), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    try:
        if mode == "open":
            return await loadgen.open_loop("127.0.0.1", port, requests, **params)
        return await loadgen.closed_loop("127.0.0.1", port, requests, **params)
    finally:
        # Every server-side connection is closed while the loop runs: one left to the garbage
        # collector after asyncio.run ends warns "loop is closed" (an error under pytest).
        server.close()
        for writer in writers:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)
        await server.wait_closed()


def test_open_loop_counts_answers_refusals_and_lost_requests() -> None:
    requests = [_request("/ok"), _request("/busy"), _request("/ok"), _request("/drop")]
    figures = asyncio.run(_against_server("open", requests, rate=400.0, seconds=0.5))
    assert figures["requests"] == 200  # after a warm-up of 40, counted apart
    assert figures["warm_up"]["requests"] == 40
    assert figures["admitted"] == 100
    assert figures["share_503"] == 0.25
    assert figures["no_answer"] == 50
    assert figures["other_status"] == 0
    assert 0 < figures["admitted_p50_ms"] <= figures["admitted_p99_ms"] < 1000


def test_closed_loop_answers_per_second() -> None:
    figures = asyncio.run(
        _against_server("closed", [_request("/ok"), _request("/busy")], connections=2, seconds=0.3)
    )
    assert figures["per_s"] > 0
    assert set(figures["statuses"]) == {"200", "503"}
    assert figures["answered"] >= sum(figures["statuses"].values())
