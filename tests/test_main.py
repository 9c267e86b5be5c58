"""create_app's lifespan: long-lived startup objects are kept out of full collections."""

from __future__ import annotations

import gc

from service.config import Settings
from service.rating.scalar import Rater
from tests.conftest_db import running_api


def test_startup_objects_are_frozen_while_the_app_runs(settings: Settings, rater: Rater) -> None:
    with running_api(settings, rater) as api:
        assert gc.get_freeze_count() > 0
        assert api.get("/healthz").status_code == 200
    assert gc.get_freeze_count() == 0
