"""Request dependencies as Annotated aliases: session, rater, settings, metrics, actors, body.

The ones that do no I/O are `async def` so they run on the event loop, not in a thread hop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from service.config import Settings
from service.errors import BodyTimeout, BodyTooLarge, DomainError, Forbidden, Unauthenticated
from service.ops.metrics import Metrics
from service.rating.batch import BatchRater
from service.rating.scalar import Rater
from service.security import Actor, KeyRing

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>")


def get_session(request: Request) -> Iterator[Session]:
    """One session per request: commits once after the endpoint succeeded, else rolls back;
    but a GET answered with a domain error (404, 422) commits too: a read writes nothing but
    its audit row, and an attempt is audited as a read is (SPEC §8)."""
    session: Session = request.app.state.sessions()
    try:
        yield session
        session.commit()
    except DomainError:
        if request.method == "GET":
            _commit_or_roll_back(session)
        else:
            session.rollback()
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _commit_or_roll_back(session: Session) -> None:
    try:
        session.commit()
    except Exception:  # the database is out: the domain error is still the answer
        session.rollback()


async def get_rater(request: Request) -> Rater:
    """The tariffs and numbering loaded at start."""
    rater: Rater = request.app.state.rater
    return rater


async def get_settings_dep(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> Metrics:
    """The app's metrics."""
    metrics: Metrics = request.app.state.metrics
    return metrics


# scope="function": the commit runs before the response is sent, so a 2xx means durable.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
RaterDep = Annotated[Rater, Depends(get_rater)]


async def get_batch_rater(request: Request) -> BatchRater | None:
    """The batch path's rater once its kernels are compiled (see main.WarmKernels), else None:
    ingestion rates through the per-call path meanwhile."""
    batch: BatchRater | None = request.app.state.kernels.batch
    return batch


BatchRaterDep = Annotated[BatchRater | None, Depends(get_batch_rater)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def single_authorization(values: Sequence[str]) -> str | None:
    """The request's one Authorization header (None without one); 401 when it carries more
    than one: which of them would count is not for a route to choose."""
    if len(values) > 1:
        raise Unauthenticated(
            f"a request carries at most one Authorization header; this one has {len(values)}"
        )
    return values[0] if values else None


async def identify(keys: KeyRing, authorization: str | None) -> Actor:
    """The actor of an Authorization header's key; 401 without a valid one."""
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not credentials or scheme.lower() != "bearer":
        raise Unauthenticated("an Authorization: Bearer <key> header is required")
    actor = keys.authenticate(credentials)
    if actor is None and keys.looks_up_stored:
        actor = await run_in_threadpool(keys.authenticate_stored, credentials)
    if actor is None:
        raise Unauthenticated("the key is not valid")
    return actor


def check_role(actor: Actor, role: str) -> None:
    """403 unless the actor may do what `role` does."""
    if not actor.may(role):
        raise Forbidden(f"role {actor.role} may not do this; it needs {role}")


async def authenticate(request: Request, role: str) -> Actor:
    """The caller's actor: its key must be valid (401) and allow `role` (403)."""
    authorization = single_authorization(request.headers.getlist("authorization"))
    actor = await identify(request.app.state.keys, authorization)
    request.state.role = actor.role  # for the request log line
    check_role(actor, role)
    return actor


def require(role: str) -> Callable[..., Awaitable[Actor]]:
    """Dependency: the caller's key must be valid (401) and allow `role` (403)."""

    async def dependency(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Actor:
        return await authenticate(request, role)

    return dependency


SwitchActor = Annotated[Actor, Depends(require("switch"))]
AgentActor = Annotated[Actor, Depends(require("agent"))]
OpsActor = Annotated[Actor, Depends(require("ops"))]
AdminActor = Annotated[Actor, Depends(require("admin"))]


async def read_body(request: Request) -> bytes:
    """The request body, refused with BodyTooLarge before reading when Content-Length says it
    passes max_body_bytes, else as soon as the stream does. Routes declare their actor before
    this dependency, so an unauthenticated request is refused before its body is read."""
    settings: Settings = request.app.state.settings
    return await receive_body(
        request.receive,
        declared=request.headers.get("content-length"),
        limit=settings.max_body_bytes,
        timeout_s=settings.body_timeout_s,
    )


async def receive_body(
    receive: Receive, *, declared: str | None, limit: int, timeout_s: float
) -> bytes:
    """The body from ASGI `receive`, refused with BodyTooLarge before reading when the
    declared Content-Length passes `limit`, else as soon as the stream does; BodyTimeout
    when it is not whole within `timeout_s`; ClientDisconnect when the client leaves first."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body is larger than {limit} bytes")
    body = bytearray()  # grows in place: no list of chunks joined into a second copy
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message: Message = await receive()
                if message["type"] != "http.request":
                    raise ClientDisconnect()
                chunk = message.get("body", b"")
                if len(body) + len(chunk) > limit:
                    raise BodyTooLarge(f"body is larger than {limit} bytes")
                body += chunk
                if not message.get("more_body", False):
                    return bytes(body)
    except TimeoutError:
        raise body_timeout(timeout_s) from None


def body_timeout(timeout_s: float) -> BodyTimeout:
    """The 408 of a body that did not arrive whole in time."""
    return BodyTimeout(f"the request body did not arrive whole within {timeout_s:g} s")


BodyDep = Annotated[bytes, Depends(read_body)]

# A subscriber in a path: an 11-digit mobile, optionally +86/86/0086 prefixed.
Msisdn = Annotated[str, Path(pattern=r"^(\+86|0086|86)?1[0-9]{10}$", examples=["13800138000"])]
