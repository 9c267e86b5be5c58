"""One Spark `local[2]` session per test module that asks for the `spark` fixture."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession  # the spark extra (CI installs it)

from service.jobs import spark_engine


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    """A local[2] session, stopped after the module (the command line reuses it meanwhile)."""
    before = os.environ.get("PYSPARK_PYTHON")
    with spark_engine.spark_session("local[2]") as session:
        yield session
    if before is None:
        os.environ.pop("PYSPARK_PYTHON", None)
