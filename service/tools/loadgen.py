"""A lean HTTP/1.1 load generator for loopback benchmarks, run in a process of its own.

The client shares this machine's cores with the server it measures, so what it costs and
when it stalls counts in every latency it reports. This one keeps both small: asyncio
protocols on uvloop (no task, future or stream per request), requests pre-rendered as bytes
and written in one send with TCP_NODELAY, answers parsed from the status line and
Content-Length only, results kept in arrays of floats. Run as `python -m service.tools.loadgen`
(what `run` does) it imports nothing but the standard library and uvloop, and the cyclic
garbage collector is frozen and off while it sends: a full collection in a client that
had loaded the service stalled it for 70-110 ms (measured), late for every request due then.

Open loop: request i is due at start + i / rate, sent then on an idle keep-alive connection
(a new one when none is idle, up to `max_connections`, else it waits for one); its latency
runs from the due time to the whole answer, so time lost in this client counts too, and is
reported apart (`client_late_p99_ms`). Closed loop: `connections` connections each send
the next request as soon as the last answer arrived; answers per second after a warm-up.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import subprocess
import sys
from array import array
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any, cast

import orjson
import uvloop

MAX_CONNECTIONS = 256
REQUEST_TIMEOUT_S = 10.0
CONNECT_STAGGER_S = 0.05  # see closed_loop
_HEAD_END = b"\r\n\r\n"
_CONTENT_LENGTH = b"\r\ncontent-length:"


class _Sink:
    """What a connection reports to: the request to send, its answer, a lost connection."""

    def request_of(self, index: int) -> bytes:
        raise NotImplementedError

    def finish(self, connection: _Connection | None, index: int, status: int) -> None:
        raise NotImplementedError

    def lost(self, connection: _Connection, index: int) -> None:
        raise NotImplementedError


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request outstanding."""

    def __init__(self, sink: _Sink) -> None:
        self.sink = sink
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.index = -1  # the request outstanding; -1: none
        self.served = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, index: int) -> None:
        assert self.transport is not None
        self.index = index
        self.transport.write(self.sink.request_of(index))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        end = buffer.find(_HEAD_END)
        if end < 0:
            return
        head = bytes(buffer[:end]).lower()
        at = head.find(_CONTENT_LENGTH)
        if at < 0:  # this client reads only answers that give their length
            index, self.index = self.index, -1
            self.abort()
            self.sink.finish(None, index, OTHER)
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + len(_CONTENT_LENGTH) : stop if stop >= 0 else len(head)])
        whole = end + 4 + length
        if len(buffer) < whole:
            return
        del buffer[:whole]
        index, self.index = self.index, -1
        self.served += 1
        self.sink.finish(self, index, int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        index, self.index = self.index, -1
        self.sink.lost(self, index)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


NO_ANSWER = -1  # a status: no answer (connection refused or lost, or the timeout passed)
OTHER = -2  # a status: an answer this client does not read


class _OpenLoop(_Sink):
    """Connections, the requests waiting for one, and when each request was due, sent and
    answered (arrays of floats: nothing for the collector to track)."""

    def __init__(
        self, host: str, port: int, requests: Sequence[bytes], *, max_connections: int, count: int
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.host = host
        self.port = port
        self.requests = requests
        self.max_connections = max_connections
        self.connections: set[_Connection] = set()
        self.idle: list[_Connection] = []
        self.opening = 0
        self.most_open = 0
        self.waiting: deque[int] = deque()
        self.due = array("d", bytes(8 * count))
        self.sent = array("d", bytes(8 * count))
        self.took = array("d", bytes(8 * count))
        self.status = array("h", bytes(2 * count))  # 0: not answered yet
        self.retried: set[int] = set()
        self.pending = count
        self.done = self.loop.create_future()

    def request_of(self, index: int) -> bytes:
        return self.requests[index % len(self.requests)]

    def dispatch(self, index: int) -> None:
        """Request `index` is due: send it on an idle connection, else let it wait."""
        self.sent[index] = self.loop.time()
        while self.idle:
            connection = self.idle.pop()
            if not connection.closed:
                connection.send(index)
                return
        self.waiting.append(index)
        if len(self.connections) + self.opening < self.max_connections:
            self.opening += 1
            self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            _, connection = await self.loop.create_connection(
                lambda: _Connection(self), self.host, self.port
            )
        except OSError:
            self.opening -= 1
            if self.waiting and not self.connections and not self.opening:
                self.finish(None, self.waiting.popleft(), NO_ANSWER)
            return
        self.opening -= 1
        self.connections.add(connection)
        self.most_open = max(self.most_open, len(self.connections))
        self._free(connection)

    def _free(self, connection: _Connection) -> None:
        while self.waiting:
            index = self.waiting.popleft()
            if self.status[index] == 0:  # not expired meanwhile
                connection.send(index)
                return
        self.idle.append(connection)

    def finish(self, connection: _Connection | None, index: int, status: int) -> None:
        if index >= 0 and self.status[index] == 0:
            self.took[index] = self.loop.time() - self.due[index]
            self.status[index] = status
            self.pending -= 1
            if self.pending == 0 and not self.done.done():
                self.done.set_result(None)
        if connection is not None and not connection.closed:
            self._free(connection)

    def lost(self, connection: _Connection, index: int) -> None:
        """A connection closed; with a request outstanding, that one is sent once more on
        another connection if this one had served before (an idle keep-alive connection
        the server closed), else it got no answer."""
        self.connections.discard(connection)
        if index < 0:
            return
        if connection.served and index not in self.retried:
            self.retried.add(index)
            self.waiting.appendleft(index)
            self.opening += 1
            self.loop.create_task(self._connect())
        else:
            self.finish(None, index, NO_ANSWER)

    def expire(self, timeout_s: float) -> None:
        """Requests unanswered `timeout_s` after their due time got no answer; a connection
        that holds one is closed."""
        limit = self.loop.time() - timeout_s
        for connection in list(self.connections):
            index = connection.index
            if index >= 0 and self.due[index] < limit:
                connection.index = -1
                connection.abort()
                self.connections.discard(connection)
                self.finish(None, index, NO_ANSWER)
        for index in list(self.waiting):
            if self.due[index] < limit:
                self.finish(None, index, NO_ANSWER)

    def close(self) -> None:
        for connection in list(self.connections):
            connection.abort()


def _percentile_ms(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 2)


async def open_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    rate: float,
    seconds: float,
    max_connections: int = MAX_CONNECTIONS,
    timeout_s: float = REQUEST_TIMEOUT_S,
) -> dict[str, Any]:
    """Request i due at start + i / rate whatever the server does (see the module), for a
    warm-up of a fifth of `seconds` and then `seconds`. The figures are those of the
    requests due after the warm-up; the warm-up's, when the client opens its connections
    (a step from nothing to the full rate: the first requests wait for connections to be
    made and accepted), are given apart under "warm_up"."""
    warm_up = max(0, int(rate * seconds / 5))
    count = warm_up + max(1, int(rate * seconds))
    run = _OpenLoop(host, port, requests, max_connections=max_connections, count=count)
    loop = run.loop
    start = loop.time() + 0.05  # the schedule starts once every timer is set
    for index in range(count):
        due = start + index / rate
        run.due[index] = due
        loop.call_at(due, run.dispatch, index)

    async def watch() -> None:
        while True:
            await asyncio.sleep(0.1)
            run.expire(timeout_s)

    watcher = loop.create_task(watch())
    try:
        await run.done
    finally:
        watcher.cancel()
        run.close()
    figures = _figures(run, range(warm_up, count), rate=rate)
    figures["warm_up"] = {
        key: value
        for key, value in _figures(run, range(warm_up), rate=rate).items()
        if key in ("requests", "admitted_p99_ms", "share_503", "no_answer")
    }
    figures["client_connections"] = run.most_open
    return figures


def _figures(run: _OpenLoop, indexes: range, *, rate: float) -> dict[str, Any]:
    count = max(1, len(indexes))
    statuses = Counter(run.status[i] for i in indexes)
    admitted = [run.took[i] for i in indexes if run.status[i] == 200]
    late = [run.sent[i] - run.due[i] for i in indexes]
    return {
        "offered_per_s": round(rate, 1),
        "requests": len(indexes),
        "admitted": len(admitted),
        "admitted_p50_ms": _percentile_ms(admitted, 0.5),
        "admitted_p99_ms": _percentile_ms(admitted, 0.99),
        "share_503": round(statuses[503] / count, 4),
        "no_answer": statuses[NO_ANSWER],
        "other_status": sum(n for s, n in statuses.items() if s not in (NO_ANSWER, 200, 503)),
        # the client shares the cores: a late start counts in the latencies above
        "client_late_p99_ms": _percentile_ms(late, 0.99),
    }


class _ClosedLoop(_Sink):
    """Each connection sends the next request when the last answer arrived, until `end`;
    answers are counted by status once the warm-up is over."""

    def __init__(self, requests: Sequence[bytes], *, warm_until: float, end: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.requests = requests
        self.warm_until = warm_until
        self.end = end
        self.sent = 0
        self.answered = 0  # warm-up included
        self.statuses: Counter[int] = Counter()
        self.connections: list[_Connection] = []
        self.open = 0
        self.done = self.loop.create_future()

    def request_of(self, index: int) -> bytes:
        return self.requests[index % len(self.requests)]

    def next_on(self, connection: _Connection) -> None:
        if self.loop.time() >= self.end:
            connection.abort()
            return
        self.sent += 1
        connection.send(self.sent)

    def finish(self, connection: _Connection | None, index: int, status: int) -> None:
        now = self.loop.time()
        self.answered += 1
        if self.warm_until <= now < self.end:
            self.statuses[status] += 1
        if connection is not None and not connection.closed:
            self.next_on(connection)

    def lost(self, connection: _Connection, index: int) -> None:
        self.open -= 1
        if index >= 0 and self.warm_until <= self.loop.time() < self.end:
            self.statuses[NO_ANSWER] += 1
        if self.open == 0 and not self.done.done():
            self.done.set_result(None)


async def closed_loop(
    host: str, port: int, requests: Sequence[bytes], *, connections: int, seconds: float
) -> dict[str, Any]:
    """Answers 200 per second on `connections` connections, each sending the next request
    as soon as the last answer arrived, after a warm-up of a fifth of `seconds`; their
    statuses, and how many answers came in all (the warm-up's too)."""
    loop = asyncio.get_running_loop()
    warm_until = loop.time() + connections * CONNECT_STAGGER_S + seconds / 5
    run = _ClosedLoop(requests, warm_until=warm_until, end=warm_until + seconds)
    # Connections opened at one instant all land on the server worker process that wakes
    # first (its accept loop drains the backlog): 4 of 4 on one process, measured with ss.
    # Opened a little apart, as a switch's are, each worker takes its share.
    for number in range(connections):
        if number:
            await asyncio.sleep(CONNECT_STAGGER_S)
        _, connection = await loop.create_connection(lambda: _Connection(run), host, port)
        run.connections.append(connection)
        run.open += 1
        run.next_on(connection)
    try:  # a server that stops answering: its requests count as unanswered
        await asyncio.wait_for(asyncio.shield(run.done), run.end - loop.time() + REQUEST_TIMEOUT_S)
    except TimeoutError:
        for connection in run.connections:
            connection.abort()
        await run.done
    return {
        "per_s": run.statuses[200] / seconds,
        "statuses": {str(s): n for s, n in run.statuses.items()},
        "answered": run.answered,
    }


def run(url: str, requests: Sequence[bytes], *, mode: str, **params: Any) -> dict[str, Any]:
    """Run `open_loop` (mode "open": rate, seconds) or `closed_loop` (mode "closed":
    connections, seconds) in a new process of this interpreter; its figures."""
    spec = {"url": url, "requests": [request.hex() for request in requests], "mode": mode}
    done = subprocess.run(
        [sys.executable, "-m", "service.tools.loadgen"],
        input=orjson.dumps({**spec, **params}),
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed: {done.stderr.decode()[-2000:]}")
    result: dict[str, Any] = orjson.loads(done.stdout)
    return result


def _split(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = rest.rpartition(":")
    return host or "127.0.0.1", int(port or 80)


def main() -> int:
    """`python -m service.tools.loadgen` < JSON spec: prints the figures as JSON."""
    spec = orjson.loads(sys.stdin.buffer.read())
    host, port = _split(spec["url"])
    requests = [bytes.fromhex(text) for text in spec["requests"]]
    gc.collect()
    gc.freeze()
    gc.disable()
    if spec["mode"] == "open":
        result = uvloop.run(
            open_loop(
                host,
                port,
                requests,
                rate=spec["rate"],
                seconds=spec["seconds"],
                max_connections=spec.get("max_connections", MAX_CONNECTIONS),
            )
        )
    else:
        result = uvloop.run(
            closed_loop(
                host, port, requests, connections=spec["connections"], seconds=spec["seconds"]
            )
        )
    sys.stdout.buffer.write(orjson.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
