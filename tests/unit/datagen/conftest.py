"""Shared small data sets for the generator tests (module-scoped: generated once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatpersona.datagen import GenerationResult, generate

N_USERS = 3000
SEED = 11


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> GenerationResult:
    """One generated data set of 3,000 users written to disk."""
    out: Path = tmp_path_factory.mktemp("datagen")
    return generate(N_USERS, SEED, out)
