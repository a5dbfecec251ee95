"""Fixtures for the track-store tests; the clip and shard builders live in store_helpers.py."""

from pathlib import Path

import numpy as np
import pytest
from store_helpers import make_clip, write_shard

from mosic.store import ClipRecord


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def clips(rng) -> list[ClipRecord]:
    """Five clips from three videos."""
    return [make_clip(rng, 10 + i, video_id=f"vid_{i // 2}") for i in range(5)]


@pytest.fixture
def shard(tmp_path, clips) -> Path:
    """A complete shard holding `clips`, with one skipped clip."""
    return write_shard(tmp_path / "shard_0000.zarr", clips, skipped=[("vid_x", 99, "cannot decode frame 3")])
