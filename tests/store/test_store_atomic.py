"""Atomic shard writes: failures and kills never leave a half shard under the final name."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from store_helpers import PROVENANCE, H, N, T, W, make_clip, write_shard

from mosic.store import ShardReader, ShardWriter, StoreError, verify_shard

REPO = Path(__file__).resolve().parents[2]


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_exception_leaves_nothing(tmp_path, clips):
    final = tmp_path / "shard.zarr"
    with pytest.raises(RuntimeError, match="tracker crashed"):
        with ShardWriter(final, num_frames=T, height=H, width=W, num_points=N, attrs=PROVENANCE, chunk_clips=2) as w:
            for clip in clips:
                w.add(clip)
            raise RuntimeError("tracker crashed")
    assert _siblings(final) == []


def test_existing_shard_survives_failed_rewrite(tmp_path, rng, clips):
    final = write_shard(tmp_path / "shard.zarr", clips)
    with pytest.raises(KeyboardInterrupt):
        with ShardWriter(final, num_frames=T, height=H, width=W, num_points=N, attrs=PROVENANCE, chunk_clips=1) as w:
            w.add(make_clip(rng, 500))
            raise KeyboardInterrupt
    assert _siblings(final) == ["shard.zarr"] and verify_shard(final) == []
    assert ShardReader(final)[0].clip_id == clips[0].clip_id


def test_complete_rewrite_replaces_shard(tmp_path, rng, clips):
    final = write_shard(tmp_path / "shard.zarr", clips)
    write_shard(final, [make_clip(rng, 500)])
    assert _siblings(final) == ["shard.zarr"] and verify_shard(final) == []
    assert ShardReader(final).clip_ids.tolist() == [500]


def test_reader_never_sees_half_a_shard(tmp_path, rng, clips):
    final = write_shard(tmp_path / "shard.zarr", clips[:1])
    with ShardWriter(final, num_frames=T, height=H, width=W, num_points=N, attrs=PROVENANCE, chunk_clips=1) as w:
        for clip in clips:
            w.add(clip)  # whole chunks reach the temporary store as we go
        (tmp,) = [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
        assert any((tmp / "tracks" / "c").iterdir())
        assert len(ShardReader(final)) == 1  # the old shard, still whole
        with pytest.raises(StoreError, match="temporary"):
            ShardReader(tmp)
        assert "incomplete" in verify_shard(tmp)[0]
    assert len(ShardReader(final)) == len(clips) and _siblings(final) == ["shard.zarr"]


SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    sys.path[:0] = [{repo!r}, {here!r}]
    from store_helpers import H, N, PROVENANCE, T, W, make_clip
    from mosic.store import ShardWriter

    path, delay, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(0)
    with ShardWriter(path, num_frames=T, height=H, width=W, num_points=N, attrs=PROVENANCE,
                     chunk_clips=2, frames_shard_clips=2) as writer:
        for i in range(count):
            writer.add(make_clip(rng, i))
            time.sleep(delay)
    """
)


def test_sigkill_mid_write_then_rerun(tmp_path):
    script = tmp_path / "slow_writer.py"
    script.write_text(SLOW_WRITER.format(repo=str(REPO), here=str(Path(__file__).parent)))
    final = tmp_path / "out" / "shard.zarr"
    proc = subprocess.Popen([sys.executable, str(script), str(final), "0.2", "100"])
    try:
        deadline = time.monotonic() + 30
        while not list(final.parent.glob(".shard.zarr.tmp-*/tracks/c/*")):
            assert proc.poll() is None and time.monotonic() < deadline, "writer never wrote its first chunk"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not final.exists()
    assert [p.name for p in final.parent.iterdir()] == [f".shard.zarr.tmp-{proc.pid}"]
    assert "incomplete" in verify_shard(final.parent / f".shard.zarr.tmp-{proc.pid}")[0]

    rerun = subprocess.run([sys.executable, str(script), str(final), "0", "5"], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert verify_shard(final) == []
    assert len(ShardReader(final)) == 5
    assert [p.name for p in final.parent.iterdir()] == ["shard.zarr"]  # the dead writer's leftovers are gone
    np.testing.assert_array_equal(ShardReader(final).clip_ids, np.arange(5))
