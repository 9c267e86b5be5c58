"""Stored API keys: a key made while the server runs works at once; unknown keys are 401
and not looked up again for a while."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.clock import utcnow
from service.config import Settings
from service.db import repository
from service.rating.scalar import Rater
from service.security import UNKNOWN_KEY_TTL_S, Actor, KeyRing, create_key, hash_key
from tests.conftest_db import Api, running_api


@pytest.fixture
def stored_keys_api(settings: Settings, rater: Rater) -> Iterator[Api]:
    """The app with keys stored in the database (no CALLRATE_API_KEYS)."""
    with running_api(settings.model_copy(update={"api_keys": ""}), rater) as api:
        yield api


def test_a_key_created_while_serving_works_without_a_restart(stored_keys_api: Api) -> None:
    api = stored_keys_api
    with api.app.state.sessions.begin() as session:
        key, _ = create_key(session, role="agent", now=utcnow())
    headers = {"Authorization": f"Bearer {key}"}
    assert api.get("/v1/tariffs", headers=headers).status_code == 200
    assert api.get("/v1/audit", headers=headers).status_code == 403  # its role still counts
    assert api.get("/v1/tariffs", headers={"Authorization": "Bearer cr_nope"}).status_code == 401


def test_unknown_keys_are_looked_up_once_per_interval(
    stored_keys_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    real = repository.api_key_by_hash

    def counting(session: object, *, key_hash: str) -> object:
        lookups.append(key_hash)
        return real(session, key_hash=key_hash)  # type: ignore[arg-type]

    monkeypatch.setattr(repository, "api_key_by_hash", counting)
    for _ in range(3):
        response = stored_keys_api.get("/v1/tariffs", headers={"Authorization": "Bearer cr_wrong"})
        assert response.status_code == 401
    assert lookups == [hash_key("cr_wrong")]


def test_keyring_forgets_a_miss_after_the_interval() -> None:
    now = [0.0]
    found: dict[str, Actor] = {}
    ring = KeyRing({}, stored=found.get, clock=lambda: now[0])
    assert ring.authenticate_stored("k") is None
    found[hash_key("k")] = Actor(key_id="abc", role="ops")
    assert ring.authenticate_stored("k") is None  # the miss is still remembered
    now[0] += UNKNOWN_KEY_TTL_S
    assert ring.authenticate_stored("k") == Actor(key_id="abc", role="ops")
    assert ring.authenticate("k") == Actor(key_id="abc", role="ops")  # now held in memory


def test_configured_keys_never_look_up_stored_ones() -> None:
    ring = KeyRing.from_pairs([("agent", "secret")])
    assert not ring.looks_up_stored
    assert ring.authenticate_stored("other") is None
