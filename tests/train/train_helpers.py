"""Shared by the training tests: a tiny real track cache, a tiny training config and run, the logged losses."""

import csv
from pathlib import Path

import yaml

from mosic.config import (
    ClipsConfig,
    CoTrackerConfig,
    DatasetConfig,
    IndexConfig,
    LKConfig,
    RunSpec,
    SyntheticConfig,
    TrackConfig,
    TrainConfig,
    section_from_dict,
)
from mosic.data.index import run_index
from mosic.data.synthetic import generate_synthetic
from mosic.tracking.shard import track_shard

REPO = Path(__file__).resolve().parents[2]
PROV = {"mosic_version": "0.1.0", "git_sha": "test", "config": {}, "config_hash": "x"}
RUN = RunSpec(variant="mosic", seed=0)  # the tracked run, seed 0


def make_shards(d: Path) -> list[Path]:
    """Two shards of 12 cached clips (4 frames, 48x48 frames, 8x8 LK grid) of the synthetic dataset, under `d`."""
    syn = SyntheticConfig(seed=1, num_videos=6, num_frames=8, height=48, width=48, num_classes=6, min_objects=2,
                          max_objects=3, max_speed=1.0, camera_speed=0.5, scale_change=1.3, appearance_drift=0.3,
                          faces=1, turn_frames=1, turn_travel=0.0, texture_seed=0, noise=1.0, track_grid=4,
                          write_mp4=False, images_train=1, images_val=1)  # fmt: skip
    generate_synthetic(syn, d / "data")
    clips = ClipsConfig(mode="regular", num_frames=4, step=1, clips_per_video=2, short_videos="pad", seed=0,
                        num_shards=2)  # fmt: skip
    run_index(
        root=d / "data" / "ytvos",
        dataset=DatasetConfig(name="t", kind="ytvos", root=str(d), split="", on_error="skip"),
        index=IndexConfig(verify_frames=True, threads=1),
        clips=clips,
        index_path=d / "index.parquet",
        clips_path=d / "clips.parquet",
        provenance=PROV,
        shard_paths=[d / f"clips_{s:05d}.parquet" for s in range(2)],
    )
    track = TrackConfig(tracker="lk", height=48, width=48, grid=8, on_bad_clip="skip", threads=1,
                        lk=LKConfig(win_size=15, levels=2, fb_threshold=2.0, max_iter=30, eps=0.01),
                        cotracker=CoTrackerConfig(checkpoint="", visibility_threshold=0.9, autocast=False))  # fmt: skip
    paths = []
    for s in range(2):
        out = d / f"shard_{s:05d}.zarr"
        track_shard(shard=s, clips_path=d / f"clips_{s:05d}.parquet", num_frames=4,
                    track=track, out_path=out, provenance=PROV)  # fmt: skip
        paths.append(out)
    return paths


def tiny_cfg(**overrides) -> TrainConfig:
    base = yaml.safe_load((REPO / "config.yaml").read_text())["train"]
    base.update(
        model="test_vit", input_size=32, num_points=16, batch_size=4, epochs=2, head_hidden=32, head_bottleneck=32,
        proj_dim=16, num_prototypes=8, teacher_frames=0, checkpoint_every=2, warmup_steps=2, workers=0,
        wandb={"mode": "disabled", "project": "t", "entity": ""}, init="random",
    )  # fmt: skip
    base.update(overrides)
    return section_from_dict(TrainConfig, base, "train")


def losses(run_dir: Path) -> list[float]:
    with open(run_dir / "metrics.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]
