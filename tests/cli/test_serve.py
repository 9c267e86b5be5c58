"""`callrate serve` runs uvicorn on uvloop, which keeps TCP_NODELAY on for every connection."""

from __future__ import annotations

import asyncio
import socket

import uvloop

from service.cli.serve import uvicorn_options


def test_serve_names_uvloop_and_httptools() -> None:
    options = uvicorn_options(host="127.0.0.1", port=8000)
    assert options["loop"] == "uvloop"
    assert options["http"] == "httptools"
    assert options["access_log"] is False


def _listener_as_uvicorn_binds_it_for_workers() -> socket.socket:
    # uvicorn's Config.bind_socket: socket.socket(family=AF_INET), so proto stays 0
    listener = socket.socket(family=socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    assert listener.proto == 0
    return listener


async def _nodelay_of_accepted_connection() -> int:
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[int] = loop.create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    listener = _listener_as_uvicorn_binds_it_for_workers()
    server = await loop.create_server(Probe, sock=listener)
    try:
        _, writer = await asyncio.open_connection(*listener.getsockname())
        result = await asyncio.wait_for(accepted, timeout=5.0)
        writer.close()
        return result
    finally:
        server.close()
        await server.wait_closed()


def test_uvloop_sets_nodelay_on_connections_of_a_worker_listener() -> None:
    """The premise of naming uvloop: asyncio's loop would leave Nagle on here."""
    assert uvloop.run(_nodelay_of_accepted_connection()) != 0
