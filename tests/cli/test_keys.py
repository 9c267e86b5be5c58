"""`callrate keys revoke`: a revoked stored key stops working without restarting the service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.exc import OperationalError

from service.cli import main
from service.clock import utcnow
from service.config import STORED_KEY_RECHECK_S, Settings, get_settings
from service.db import repository
from service.rating.scalar import Rater
from service.security import Actor, KeyRing, create_key, hash_key
from tests.conftest_db import Api, running_api


@pytest.fixture
def stored_keys_api(
    settings: Settings, rater: Rater, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Api]:
    """The app with stored keys (no CALLRATE_API_KEYS); the CLI sees the same database."""
    monkeypatch.delenv("CALLRATE_API_KEYS", raising=False)
    monkeypatch.setenv("CALLRATE_DATABASE_URL", settings.effective_database_url)
    get_settings.cache_clear()
    with running_api(settings.model_copy(update={"api_keys": ""}), rater) as api:
        yield api
    get_settings.cache_clear()


def test_a_revoked_key_stops_working_without_a_restart(
    stored_keys_api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    api = stored_keys_api
    now = [0.0]
    api.app.state.keys = KeyRing.from_database(api.app.state.sessions, clock=lambda: now[0])
    with api.app.state.sessions.begin() as session:
        revoked, actor = create_key(session, role="agent", now=utcnow())
        kept, _ = create_key(session, role="agent", now=utcnow())
    for key in (revoked, kept):
        assert api.get("/v1/tariffs", headers={"Authorization": f"Bearer {key}"}).status_code == 200

    assert main(["keys", "revoke", actor.key_id]) == 0
    assert f"revoked agent key {actor.key_id}" in capsys.readouterr().out
    now[0] += STORED_KEY_RECHECK_S
    gone = api.get("/v1/tariffs", headers={"Authorization": f"Bearer {revoked}"})
    assert gone.status_code == 401
    assert api.get("/v1/tariffs", headers={"Authorization": f"Bearer {kept}"}).status_code == 200

    audit = api.get("/v1/audit", headers=_admin(api)).json()["items"]
    assert [row["detail"] for row in audit if row["action"] == "key.revoke"] == [actor.key_id]

    assert main(["keys", "revoke", actor.key_id]) == 2  # no longer stored
    # the in-process app's request log lines (service/ops/requestlog.py) come first on stderr
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"callrate keys revoke: no stored key {actor.key_id} (see callrate keys list)"
    )


def _admin(api: Api) -> dict[str, str]:
    with api.app.state.sessions.begin() as session:
        key, _ = create_key(session, role="admin", now=utcnow())
    return {"Authorization": f"Bearer {key}"}


def test_a_key_can_be_revoked_by_the_key_itself(
    stored_keys_api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    with stored_keys_api.app.state.sessions.begin() as session:
        key, actor = create_key(session, role="switch", now=utcnow())
    assert main(["keys", "revoke", key]) == 0
    assert actor.key_id in capsys.readouterr().out
    with stored_keys_api.app.state.sessions() as session:
        assert repository.api_key_by_hash(session, key_hash=hash_key(key)) is None


def test_keyring_rechecks_a_stored_key_after_the_interval() -> None:
    now = [0.0]
    stored = {hash_key("k"): Actor(key_id="abc", role="ops")}
    ring = KeyRing(dict(stored), stored=stored.get, clock=lambda: now[0])
    assert ring.authenticate("k") == Actor(key_id="abc", role="ops")
    now[0] += STORED_KEY_RECHECK_S - 0.5
    assert ring.authenticate("k") is not None  # trusted from memory meanwhile
    now[0] += 0.5
    assert ring.authenticate("k") is None  # due: the stored keys decide
    assert ring.authenticate_stored("k") == Actor(key_id="abc", role="ops")
    assert ring.authenticate("k") is not None
    del stored[hash_key("k")]
    now[0] += STORED_KEY_RECHECK_S
    assert ring.authenticate("k") is None
    assert ring.authenticate_stored("k") is None
    assert len(ring) == 0


def test_a_recheck_the_database_cannot_answer_keeps_the_key() -> None:
    now = [0.0]
    actor = Actor(key_id="abc", role="ops")

    def down(_key_hash: str) -> Actor | None:
        raise OperationalError("SELECT", {}, Exception("database is down"))

    ring = KeyRing({hash_key("k"): actor}, stored=down, clock=lambda: now[0])
    now[0] += STORED_KEY_RECHECK_S
    assert ring.authenticate("k") is None
    assert ring.authenticate_stored("k") == actor
    with pytest.raises(OperationalError):
        ring.authenticate_stored("never-seen")


def test_configured_keys_are_never_rechecked() -> None:
    now = [0.0]
    actor = Actor(key_id="abc", role="agent")
    ring = KeyRing({hash_key("secret"): actor}, clock=lambda: now[0])  # CALLRATE_API_KEYS
    now[0] += 10 * STORED_KEY_RECHECK_S
    assert ring.authenticate("secret") == actor
