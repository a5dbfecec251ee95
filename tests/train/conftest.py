"""Fixtures of the training tests."""

from pathlib import Path

import pytest
from train_helpers import make_shards


@pytest.fixture(scope="session")
def shards(tmp_path_factory) -> list[Path]:
    """Two shards of 12 cached clips of the synthetic dataset (see :func:`train_helpers.make_shards`)."""
    return make_shards(tmp_path_factory.mktemp("cache"))
