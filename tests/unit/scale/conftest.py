"""One local[2] SparkSession for the whole test session (small shuffle, no UI)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    from chatpersona.scale.spark import get_spark, stop_spark

    session = get_spark("local[2]", shuffle_partitions=2)
    yield session
    stop_spark()
