"""The track store: stage 1's cache of frames, point tracks and visibility, one Zarr v3 group per shard.

The tracking job writes a shard with :class:`ShardWriter`; training reads shards with :class:`ShardReader` or,
over several shards, :class:`TrackStore`; :func:`verify_shard` (also ``python -m mosic.store.verify PATH...``)
checks one. Layout, encodings and the coordinate convention are in :mod:`mosic.store.schema`.
"""

from typing import TYPE_CHECKING, Any

from mosic.store.reader import CorruptShardError, ShardReader, StoreError, TrackStore
from mosic.store.schema import COORDINATES, SCHEMA_VERSION, ClipRecord
from mosic.store.writer import ShardWriter

if TYPE_CHECKING:
    from mosic.store.verify import verify_shard

__all__ = [
    "SCHEMA_VERSION",
    "COORDINATES",
    "ClipRecord",
    "ShardWriter",
    "ShardReader",
    "TrackStore",
    "StoreError",
    "CorruptShardError",
    "verify_shard",
]


def __getattr__(name: str) -> Any:
    # Imported on first use so that `python -m mosic.store.verify` does not find its module already imported.
    if name == "verify_shard":
        from mosic.store.verify import verify_shard

        return verify_shard
    raise AttributeError(f"module 'mosic.store' has no attribute {name!r}")
