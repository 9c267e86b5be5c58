"""create_app's lifespan: long-lived startup objects are kept out of full collections."""

from __future__ import annotations

import gc
import threading

import pytest

from service.api import app
from service.config import Settings
from service.rating.scalar import Rater
from tests.conftest_db import running_api


def test_startup_objects_are_frozen_while_the_app_runs(settings: Settings, rater: Rater) -> None:
    with running_api(settings, rater) as api:
        assert gc.get_freeze_count() > 0
        assert api.get("/healthz").status_code == 200
    assert gc.get_freeze_count() == 0


def test_what_warming_the_kernels_made_is_frozen_too_but_never_after_the_app_stopped(
    settings: Settings, rater: Rater, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    made: list[object] = []

    def slow_warm_up(_rater: Rater) -> None:
        release.wait(timeout=30)
        made.append(object.__new__(type("Kernel", (), {})))  # tracked by the collector

    monkeypatch.setattr(app, "warm_batch_kernels", slow_warm_up)
    with running_api(settings, rater, warm=False) as api:
        release.set()
        assert api.app.state.kernels.done.wait(timeout=30)
        assert not any(thing is made[0] for thing in gc.get_objects())  # frozen
    release.clear()
    made.clear()
    with running_api(settings, rater, warm=False) as api:
        warm = api.app.state.kernels.done
    release.set()  # the warm-up ends after the app stopped
    assert warm.wait(timeout=30)
    assert gc.get_freeze_count() == 0
    assert any(thing is made[0] for thing in gc.get_objects())
