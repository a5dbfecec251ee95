"""Training-step benchmark: ms per MoSiC step on CPU with cached tracks vs a tracker run inside the step.

One step is what :func:`mosic.train.loop.train` does per batch: the views (:class:`mosic.train.data.DeviceTransform`
on the loader's uint8 batch: crop, resize, flip, normalisation, photometric augmentation; on the CPU here),
:func:`mosic.train.step.train_step` (teacher forward + Sinkhorn, student forward, loss, backward, gradient
clipping (``train.grad_clip``), fused AdamW and the EMA update) and reading its statistics back (what the loop
does every step on the CPU).
The learning-rate schedule, logging and checkpoints are left out.

Model and settings: ``config.yaml``'s ``train:`` section (the demo: timm ``test_vit`` with random weights, every
parameter trained, K = 32 prototypes, N = 256 points, teacher_frames = 4, photometric augmentation on) with
batch_size = 8 and input_size = 128 (and 224); T = 12 frames per clip.

Data (a temporary directory, removed at the end): 33 clips of 12 frames cut from the first 11 videos of the
``synthetic:`` section (128 x 128), tracked with :class:`mosic.tracking.lk.LKTracker` (``track.lk`` settings) on
a 32 x 32 grid and written with :class:`mosic.store.ShardWriter`; :class:`mosic.train.data.TrainClips` +
:func:`mosic.train.data.collate` turn the first 32 into 4 loader batches of 8 (read before timing; step i uses
batch i mod 4, so every variant sees the same batches; each variant makes the views its loss needs).

Variants (each its own network from the same seed and its own AdamW):

- ``cached``: the demo configuration; the batch's tracks come from the cache (our design). The baseline.
- ``cached, teacher 12``: ``teacher_frames = 0`` (the teacher encodes all 12 frames instead of 4).
- ``cached, teacher 4 + student 4``: ``symmetric = True`` with teacher_frames = 4 (the student encodes the
  teacher's 4 frames).
- ``cached, teacher 12 + student 12``: ``symmetric = True``, ``teacher_frames = 0`` (the student encodes all 12
  frames, as in the original code).
- ``LK in step``: as ``cached``, but first LKTracker tracks a 16 x 16 grid (the original's ``grid_size``) on
  every clip of the batch at the input resolution, and the step uses those tracks (the original's design, which
  runs CoTracker3 online every step, with our CPU tracker in its place). The uint8 clips the tracker reads are
  made from the batch before timing; the timed part is tracking + building the track tensors + the step.
  LK runs with 2 OpenCV threads (the step has the whole machine, like torch's 2 threads).
- ``LK in step, teacher 12 + student 12``: the original's whole design (online tracker, both networks on every
  frame), with LK in place of CoTracker3.

CoTracker3 (:class:`mosic.tracking.cotracker.CoTracker3Tracker`, random weights) is timed on ``--cotracker-clips``
clips when the ``cotracker`` package is importable; otherwise the results say it is not installed and quote the
reference figure of ``shared/reference/cotracker.md`` (about 17 s per clip on this CPU), not measured here.

Method: ``torch.set_num_threads(2)``; ``--warmup`` warm-up steps then ``--runs`` timed steps per variant,
interleaved round-robin over all variants and input sizes (one step each per round), so load from other work on
the shared machine hits every variant alike. Reported: median, min and max ms per step; ratios are the median
over rounds of the two variants' times in the same round (paired).

Writes ``benchmarks/results/train_step.json`` and ``train_step.md``. Takes about 1.5 minutes on 2 idle cores
(5-8 minutes when other work loads them).

``--views`` times instead where the views are made of: the step with views of all T = 12 frames, then the
teacher's 4 cut out of them (*old*: what the loop did before), against views of the teacher's frames only (*new*:
:func:`mosic.train.step.teacher_frame_indices` passed to the transform, what the loop does), at the demo's
settings (128 px, 16 clips per step, photometric augmentation on; student on frame 0, and on the teacher's frames
with the symmetric term) and at 224 px with 8 clips; both paths of every row interleaved round-robin, each with its
own network from the same seed, which must end bit for bit equal. Writes ``train_step_views.json`` and ``.md``.

Usage: ``python benchmarks/train_step.py [--runs 9] [--warmup 2] [--sizes 128 224] [--out benchmarks/results]
[--views]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import timm
import torch
import yaml
from machine import machine_info

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mosic.config import LKConfig, RunSpec, SyntheticConfig, TrainConfig, section_from_dict  # noqa: E402
from mosic.data.synthetic import render_video  # noqa: E402
from mosic.geometry import grid_queries  # noqa: E402
from mosic.model.ema import make_teacher  # noqa: E402
from mosic.store import ClipRecord, ShardWriter, TrackStore  # noqa: E402
from mosic.tracking.lk import LKTracker  # noqa: E402
from mosic.train.data import DeviceTransform, RawBatch, collate  # noqa: E402
from mosic.train.loop import PRESETS, build_dataset, build_net, build_optimizer  # noqa: E402
from mosic.train.presets import Preset  # noqa: E402
from mosic.train.step import step_seed, teacher_frame_indices, train_step  # noqa: E402

T, BATCH, NUM_BATCHES = 12, 8, 4
CACHE_GRID, STEP_GRID = 32, 16  # the cache's query grid; the original's online grid_size
COTRACKER_REFERENCE_S = 17.0  # s per 12-frame clip on this CPU, shared/reference/cotracker.md (not measured here)
RUN = RunSpec(variant="mosic", seed=0)  # the tracked run, seed 0
BASELINE = "cached"
PROVENANCE = {
    "mosic_version": "bench",
    "git_sha": "0" * 40,
    "config": {"grid": CACHE_GRID},
    "config_hash": "bench",
}


@dataclass(frozen=True)
class Variant:
    """One timed configuration."""

    name: str
    teacher_frames: int
    symmetric: bool
    tracker: bool


VARIANTS = (
    Variant("cached", 4, False, False),
    Variant("cached, teacher 12", 0, False, False),
    Variant("cached, teacher 4 + student 4", 4, True, False),
    Variant("cached, teacher 12 + student 12", 0, True, False),
    Variant("LK in step", 4, False, True),
    Variant("LK in step, teacher 12 + student 12", 0, True, True),
)
# (what is compared, numerator variant, denominator variant), per input size.
COMPARISONS = (
    ("(2) tracker inside the step / cached tracks", "LK in step", "cached"),
    (
        "(3) student on all 12 frames / on frame 0 (teacher on 12 in both)",
        "cached, teacher 12 + student 12",
        "cached, teacher 12",
    ),
    ("(4) teacher on all 12 frames / on 4 frames (student on frame 0)", "cached, teacher 12", "cached"),
    (
        "original's design (LK online, 12 + 12 frames) / ours (cached, 4 + 1)",
        "LK in step, teacher 12 + student 12",
        "cached",
    ),
)


@dataclass
class Runner:
    """A variant at one input size: its network, teacher, optimizer, batches and timings."""

    variant: Variant
    size: int
    cfg: TrainConfig
    preset: Preset
    net: torch.nn.Module
    teacher: torch.nn.Module
    optimizer: torch.optim.Optimizer
    batches: list[RawBatch]
    transform: DeviceTransform
    clips_uint8: list[np.ndarray]  # per batch: uint8 [B, T, S, S, 3], what the in-step tracker reads
    tracker: LKTracker | None
    all_views: bool = False  # views of all T frames, then the teacher's cut out (what the loop did before)
    steps: int = 0
    times: list[float] = field(default_factory=list)
    views_times: list[float] = field(default_factory=list)
    tracker_times: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    def step(self, timed: bool) -> float:
        """One training step; returns (and, when timed, records) its seconds."""
        raw = self.batches[self.steps % len(self.batches)]
        seed = step_seed(RUN.seed, self.steps)
        start = time.perf_counter()
        frames = teacher_frame_indices(raw.frames.shape[1], self.cfg.teacher_frames, seed)
        batch = self.transform(raw).select_frames(frames) if self.all_views else self.transform(raw, frames)
        viewed = time.perf_counter()
        if self.tracker is not None:  # the tracker follows the whole clip; the step takes the teacher's frames
            clips = self.clips_uint8[self.steps % len(self.batches)]
            queries = grid_queries(self.size, self.size, STEP_GRID)
            results = [self.tracker.track(clip, queries) for clip in clips]
            batch = replace(
                batch,
                tracks=torch.from_numpy(np.stack([r.tracks for r in results]))[:, frames],
                visibility=torch.from_numpy(np.stack([r.visibility for r in results]))[:, frames],
            )
        tracked = time.perf_counter()
        stats = train_step(self.net, self.teacher, self.optimizer, batch, self.cfg, self.preset, seed)
        loss = float(stats[0])  # the loop reads every step's statistics back on the CPU
        if not stats[-1] > 0:
            raise RuntimeError(f"{self.variant.name} at {self.size} px: non-finite loss at step {self.steps}")
        seconds = time.perf_counter() - start
        self.steps += 1
        if timed:
            self.times.append(seconds)
            self.views_times.append(viewed - start)
            self.tracker_times.append(tracked - viewed)
            self.losses.append(loss)
        return seconds


def make_lk(lk: LKConfig, threads: int = 1) -> LKTracker:
    """LKTracker with ``config.yaml``'s ``track.lk`` settings."""
    return LKTracker(
        win_size=lk.win_size,
        levels=lk.levels,
        fb_threshold=lk.fb_threshold,
        max_iter=lk.max_iter,
        eps=lk.eps,
        threads=threads,
    )


def write_store(path: Path, synthetic: SyntheticConfig, lk: LKConfig, clips: int) -> TrackStore:
    """At least `clips` synthetic clips tracked with LK on the cache grid, in one shard (module docstring)."""
    tracker = make_lk(lk)
    per_video = synthetic.num_frames // T
    videos = -(-clips // per_video)
    queries = grid_queries(synthetic.height, synthetic.width, CACHE_GRID)
    attrs = {**PROVENANCE, "tracker": {"name": tracker.name, "settings": tracker.settings}}
    with ShardWriter(
        path, num_frames=T, height=synthetic.height, width=synthetic.width, num_points=len(queries), attrs=attrs
    ) as writer:
        for v in range(videos):
            video = render_video(synthetic, v)
            for c in range(per_video):
                frames = np.ascontiguousarray(video.frames[c * T : (c + 1) * T])
                result = tracker.track(frames, queries)
                writer.add(
                    ClipRecord(
                        video_id=video.video_id,
                        clip_id=v * per_video + c,
                        frame_indices=np.arange(c * T, (c + 1) * T, dtype=np.int32),
                        frames=frames,
                        tracks=result.tracks,
                        visibility=result.visibility,
                    )
                )
    return TrackStore([path])


def make_batches(store: TrackStore, cfg: TrainConfig, preset: Preset) -> tuple[list[RawBatch], list[np.ndarray]]:
    """NUM_BATCHES loader batches of ``cfg.batch_size`` clips and their teacher views as uint8 clips."""
    dataset = build_dataset(store, cfg, RUN, preset)
    mean = torch.tensor(preset.mean).view(3, 1, 1)
    std = torch.tensor(preset.std).view(3, 1, 1)
    batches, clips = [], []
    size = cfg.batch_size
    for b in range(NUM_BATCHES):
        batch = collate([dataset[(0, b * size + i)] for i in range(size)])
        video = dataset.transform(batch).video
        pixels = ((video * std + mean) * 255.0).round_().clamp_(0, 255).to(torch.uint8)
        batches.append(batch)
        clips.append(pixels.permute(0, 1, 3, 4, 2).contiguous().numpy())  # [B, T, S, S, 3]
    return batches, clips


def time_cotracker(clips: list[np.ndarray], size: int, count: int) -> dict[str, Any]:
    """CoTracker3 (random weights) on `count` clips after one warm-up clip, or why it was not timed."""
    if importlib.util.find_spec("cotracker") is None:
        return {
            "installed": False,
            "note": "the cotracker package is not installed; not measured here",
            "reference_s_per_clip": COTRACKER_REFERENCE_S,
            "reference": "shared/reference/cotracker.md: 2 shared cores, random weights, 12 frames, 256 points",
        }
    from cotracker.predictor import CoTrackerPredictor

    from mosic.tracking.cotracker import CoTracker3Tracker

    tmp = Path(tempfile.mkdtemp(prefix="mosic-cotracker-bench-"))
    try:
        rng = torch.get_rng_state()
        state_path = tmp / "random_offline.pth"
        model = CoTrackerPredictor(checkpoint=None, offline=True, v2=False, window_len=60).model
        torch.save(model.state_dict(), state_path)
        torch.set_rng_state(rng)
        tracker = CoTracker3Tracker(checkpoint=state_path, device="cpu")
        queries = grid_queries(size, size, STEP_GRID)
        tracker.track(clips[0], queries)  # warm-up
        times = []
        for i in range(count):
            start = time.perf_counter()
            tracker.track(clips[(i + 1) % len(clips)], queries)
            times.append(time.perf_counter() - start)
    except Exception as err:  # an optional, unpinned package: report what went wrong rather than lose the run
        return {"installed": True, "error": f"{type(err).__name__}: {err}"}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "installed": True,
        "input": size,
        "clips_timed": count,
        "s_per_clip": [round(t, 2) for t in times],
        "s_per_clip_median": round(statistics.median(times), 2),
        "weights": "random",
    }


def base_config(raw: dict[str, Any], size: int, batch: int, **overrides: Any) -> TrainConfig:
    """``config.yaml``'s train section at `size` px with `batch` clips per step and random weights."""
    # config.yaml says init: pretrain, a start the workflow makes
    values = {**raw["train"], "batch_size": batch, "input_size": size, "init": "random", **overrides}
    return section_from_dict(TrainConfig, values, "train")


def make_runner(variant: Variant, size: int, cfg: TrainConfig, store: TrackStore, batches: list[RawBatch],
                clips: list[np.ndarray], tracker: LKTracker | None, all_views: bool = False) -> Runner:  # fmt: skip
    """A variant's own network (from the run's seed), teacher, AdamW and the transform making the views it needs."""
    preset = PRESETS[cfg.preset]
    torch.manual_seed(RUN.seed)
    net = build_net(cfg, RUN, preset)
    transform = build_dataset(store, cfg, RUN, preset).transform  # the student's views the variant needs
    return Runner(variant, size, cfg, preset, net, make_teacher(net), build_optimizer(net, cfg), batches, transform,
                  clips, tracker, all_views=all_views)  # fmt: skip


def time_round_robin(runners: list[Runner], warmup: int, runs: int) -> None:
    """`warmup` untimed then `runs` timed steps of every runner, one step each per round."""
    for timed, rounds in ((False, warmup), (True, runs)):
        for _ in range(rounds):
            for r in runners:
                r.step(timed=timed)


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    started = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    synthetic = section_from_dict(SyntheticConfig, raw["synthetic"], "synthetic")
    lk = section_from_dict(LKConfig, raw["track"]["lk"], "track.lk")
    store = write_store(tmp / "cache.zarr", synthetic, lk, NUM_BATCHES * BATCH)
    setup_store_s = time.perf_counter() - started

    runners: list[Runner] = []
    for size in args.sizes:
        base = base_config(raw, size, BATCH)
        batches, clips = make_batches(store, base, PRESETS[base.preset])
        for variant in VARIANTS:
            cfg = replace(base, teacher_frames=variant.teacher_frames, symmetric=variant.symmetric)
            tracker = make_lk(lk, args.lk_threads) if variant.tracker else None
            runners.append(make_runner(variant, size, cfg, store, batches, clips, tracker))
    setup_s = time.perf_counter() - started
    time_round_robin(runners, args.warmup, args.runs)

    by_key = {(r.size, r.variant.name): r for r in runners}
    rows = []
    for r in runners:
        base = by_key[(r.size, BASELINE)]
        ms = [1000 * t for t in r.times]
        row: dict[str, Any] = {
            "input": r.size,
            "variant": r.variant.name,
            "teacher_frames": r.variant.teacher_frames or T,
            "student_frames": (r.variant.teacher_frames or T) if r.variant.symmetric else 1,
            "tracker_in_step": "lk" if r.variant.tracker else None,
            "ms_median": round(statistics.median(ms), 1),
            "ms_min": round(min(ms), 1),
            "ms_max": round(max(ms), 1),
            "ratio_vs_cached": round(statistics.median(a / b for a, b in zip(r.times, base.times, strict=True)), 2),
            "runs_ms": [round(x, 1) for x in ms],
            "views_ms_median": round(statistics.median(1000 * t for t in r.views_times), 1),
            "train_step_ms_median": round(
                statistics.median(1000 * (a - b) for a, b in zip(r.times, r.views_times, strict=True)), 1
            ),
            "final_loss": round(r.losses[-1], 4),
        }
        if r.variant.tracker:
            track_ms = [1000 * t for t in r.tracker_times]
            row["tracker_ms_median"] = round(statistics.median(track_ms), 1)
            row["tracker_ms_per_clip_median"] = round(statistics.median(track_ms) / BATCH, 1)
            row["step_only_ms_median"] = round(statistics.median(a - b for a, b in zip(ms, track_ms, strict=True)), 1)
        rows.append(row)

    comparisons = []
    for size in args.sizes:
        for what, num, den in COMPARISONS:
            a, b = by_key[(size, num)], by_key[(size, den)]
            comparisons.append(
                {
                    "input": size,
                    "comparison": what,
                    "numerator": num,
                    "denominator": den,
                    "ratio_paired_median": round(
                        statistics.median(x / y for x, y in zip(a.times, b.times, strict=True)), 2
                    ),
                    "ratio_of_medians": round(statistics.median(a.times) / statistics.median(b.times), 2),
                }
            )

    cotracker = time_cotracker(runners[0].clips_uint8[0], args.sizes[0], args.cotracker_clips)
    if not cotracker["installed"]:
        # Context only: what the reference figure implies for one step of a batch of 8, next to our cached step.
        for size in args.sizes:
            cached = statistics.median(by_key[(size, BASELINE)].times)
            cotracker.setdefault("implied_per_step", []).append(
                {
                    "input": size,
                    "s_per_step_estimate": round(BATCH * COTRACKER_REFERENCE_S + cached, 1),
                    "ratio_vs_cached_estimate": round((BATCH * COTRACKER_REFERENCE_S + cached) / cached),
                }
            )
    elif "s_per_clip_median" in cotracker:
        cached = statistics.median(by_key[(cotracker["input"], BASELINE)].times)
        per_step = BATCH * cotracker["s_per_clip_median"] + cached
        cotracker["s_per_step_extrapolated"] = round(per_step, 1)
        cotracker["ratio_vs_cached_extrapolated"] = round(per_step / cached)

    cfg0 = runners[0].cfg
    lk_settings = make_lk(lk).settings
    return {
        "benchmark": "train_step",
        "settings": {
            "model": cfg0.model,
            "init": cfg0.init,
            "trainable_blocks": cfg0.trainable_blocks,
            "trainable_parameters": sum(p.numel() for p in runners[0].net.parameters() if p.requires_grad),
            "batch_size": BATCH,
            "T": T,
            "num_points": cfg0.num_points,
            "num_prototypes": cfg0.num_prototypes,
            "proj_dim": cfg0.proj_dim,
            "head_hidden": cfg0.head_hidden,
            "photometric_aug": cfg0.photometric_aug,
            "grad_clip": cfg0.grad_clip,
            "sizes": list(args.sizes),
            "cache": {"size": [synthetic.height, synthetic.width], "grid": CACHE_GRID, "clips": len(store)},
            "in_step_tracker": {
                "name": "lk",
                "grid": STEP_GRID,
                "settings": lk_settings,
                "opencv_threads": args.lk_threads,
            },
            "batches": NUM_BATCHES,
            "warmup": args.warmup,
            "runs": args.runs,
            "torch_threads": torch.get_num_threads(),
        },
        "rows": rows,
        "comparisons": comparisons,
        "cotracker3": cotracker,
        "load_average_1_5_15min": {"start": load_before, "end": [round(x, 2) for x in os.getloadavg()]},
        "setup_store_s": round(setup_store_s, 1),
        "setup_s": round(setup_s, 1),
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": machine_info(
            torch=torch.__version__, timm=timm.__version__, numpy=np.__version__, opencv=cv2.__version__
        ),
    }


# --views: (input px, clips per step, student on every teacher frame); the demo's settings, then a larger input.
VIEW_SETTINGS = ((128, 16, False), (128, 16, True), (224, 8, False))
VIEW_PATHS = ("all views, then selected", "selected views only")  # old, new


def run_views(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """``--views``: the step with views of all T frames cut to the teacher's (old) against views of the teacher's
    frames only (new), at each of VIEW_SETTINGS, every runner interleaved round-robin."""
    started = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    synthetic = section_from_dict(SyntheticConfig, raw["synthetic"], "synthetic")
    lk = section_from_dict(LKConfig, raw["track"]["lk"], "track.lk")
    store = write_store(tmp / "cache.zarr", synthetic, lk, NUM_BATCHES * max(b for _, b, _ in VIEW_SETTINGS))
    pairs = []
    for size, batch, symmetric in VIEW_SETTINGS:
        cfg = base_config(raw, size, batch, teacher_frames=4, symmetric=symmetric, photometric_aug=True)
        batches, _ = make_batches(store, cfg, PRESETS[cfg.preset])
        variant = Variant(f"teacher 4 + student {4 if symmetric else 1}", 4, symmetric, False)
        pairs.append([make_runner(variant, size, cfg, store, batches, [], None, all_views=path == VIEW_PATHS[0])
                      for path in VIEW_PATHS])  # fmt: skip
    setup_s = time.perf_counter() - started
    time_round_robin([r for pair in pairs for r in pair], args.warmup, args.runs)

    def median_ms(values: list[float]) -> float:
        return round(1000 * statistics.median(values), 1)

    def paired(new: list[float], old: list[float]) -> float:
        return round(statistics.median(a / b for a, b in zip(new, old, strict=True)), 3)

    rows = []
    for old, new in pairs:
        same = all(torch.equal(a, b) for a, b in zip(old.net.state_dict().values(), new.net.state_dict().values(),
                                                      strict=True))  # fmt: skip
        rows.append({
            "input": old.size, "batch_size": old.cfg.batch_size, "variant": old.variant.name,
            "teacher_frames": old.cfg.teacher_frames, "symmetric": old.cfg.symmetric,
            "old_ms_median": median_ms(old.times), "new_ms_median": median_ms(new.times),
            "old_ms_min": round(1000 * min(old.times), 1), "new_ms_min": round(1000 * min(new.times), 1),
            "ratio_new_old_paired_median": paired(new.times, old.times),
            "ratio_new_old_of_medians": round(statistics.median(new.times) / statistics.median(old.times), 3),
            "old_views_ms_median": median_ms(old.views_times), "new_views_ms_median": median_ms(new.views_times),
            "views_ratio_new_old_paired_median": paired(new.views_times, old.views_times),
            "old_runs_ms": [round(1000 * t, 1) for t in old.times],
            "new_runs_ms": [round(1000 * t, 1) for t in new.times],
            "same_losses": old.losses == new.losses, "same_weights": same,
        })  # fmt: skip
    return {
        "benchmark": "train_step --views",
        "settings": {
            "model": pairs[0][0].cfg.model,
            "T": T,
            "num_points": pairs[0][0].cfg.num_points,
            "num_prototypes": pairs[0][0].cfg.num_prototypes,
            "photometric_aug": True,
            "mask_ratio": pairs[0][0].cfg.mask_ratio,
            "batches": NUM_BATCHES,
            "warmup": args.warmup,
            "runs": args.runs,
            "torch_threads": torch.get_num_threads(),
            "cache": {"size": [synthetic.height, synthetic.width], "clips": len(store)},
        },
        "paths": {"old": VIEW_PATHS[0], "new": VIEW_PATHS[1]},
        "rows": rows,
        "load_average_1_5_15min": {"start": load_before, "end": [round(x, 2) for x in os.getloadavg()]},
        "setup_s": round(setup_s, 1),
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": machine_info(torch=torch.__version__, timm=timm.__version__, numpy=np.__version__),
    }


def markdown_views(res: dict[str, Any]) -> str:
    s, m, load = res["settings"], res["machine"], res["load_average_1_5_15min"]
    height, width = s["cache"]["size"]
    rows = res["rows"]
    lines = [
        "# Views of the step's frames only (`benchmarks/train_step.py --views`)",
        "",
        f"One training step on CPU ({s['torch_threads']} torch threads) as the loop runs it: the views "
        "(DeviceTransform: crop, resize, flip, normalisation, photometric augmentation of the student's view) "
        "then `train_step`, with the statistics read back. *old*: views of all "
        f"T = {s['T']} frames, then the teacher's {res['rows'][0]['teacher_frames']} frames cut out of them (what "
        "the loop did before); *new*: views of the teacher's frames only (`DeviceTransform(raw, "
        f"teacher_frame_indices(...))`). Model `{s['model']}` (random weights), N = {s['num_points']} points, "
        f"K = {s['num_prototypes']}, mask ratio {s['mask_ratio']}; other settings from `config.yaml`'s `train:` "
        f"section. Data: {s['batches']} loader batches per row from {s['cache']['clips']} synthetic clips at "
        f"{height}x{width} (LK-tracked), read before timing. Median of {s['runs']} steps per path after "
        f"{s['warmup']} warm-up steps, every row and path interleaved round-robin in one process; new / old is the "
        "median of per-round (paired) ratios.",
        "",
        "| input px | clips | teacher + student frames | old ms/step | new ms/step | new / old (paired) "
        "| ratio of medians | old views ms | new views ms | views new / old | same weights and losses |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in res["rows"]:
        same = "yes" if r["same_weights"] and r["same_losses"] else "NO"
        lines.append(
            f"| {r['input']} | {r['batch_size']} | {r['variant']} | {r['old_ms_median']:.0f} | "
            f"{r['new_ms_median']:.0f} | {r['ratio_new_old_paired_median']:.2f} | {r['ratio_new_old_of_medians']:.2f} "
            f"| {r['old_views_ms_median']:.0f} | {r['new_views_ms_median']:.0f} | "
            f"{r['views_ratio_new_old_paired_median']:.2f} | {same} |"
        )
    lines += [
        "",
        "Same weights and losses: after the timed steps the two paths' students are equal bit for bit and every "
        "timed step's loss is the same (the views of the selected frames are those of all frames cut to them). "
        f"Setup {res['setup_s']:.0f} s; whole run {res['wall_s']:.0f} s. Load average (1, 5, 15 min) at start "
        f"{load['start']}, at end {load['end']} ({m['cpu_count']} CPUs, shared with other work). Minima, old / new "
        "ms/step: "
        + ", ".join(f"{r['input']} px {r['variant']} {r['old_ms_min']:.0f} / {r['new_ms_min']:.0f}" for r in rows)
        + (
            "; some medians are more than 1.5x their minimum: other work took cores during the timed steps, so the "
            "absolute times are inflated and the paired ratios are the figures to read."
            if any(r["old_ms_median"] > 1.5 * r["old_ms_min"] for r in rows)
            else "."
        ),
        "",
        f"Machine: {m['cpu_count']} CPUs ({m['cpu_model']}); {m['platform']}; Python {m['python']}, torch "
        f"{m['torch']}, timm {m['timm']}, numpy {m['numpy']}.",
        "",
    ]
    return "\n".join(lines)


def markdown(res: dict[str, Any]) -> str:
    s, m, ct = res["settings"], res["machine"], res["cotracker3"]
    load = res["load_average_1_5_15min"]
    spread = [r for r in res["rows"] if r["ms_median"] > 1.5 * r["ms_min"]]
    lines = [
        "# Training-step benchmark (`benchmarks/train_step.py`)",
        "",
        f"One training step on CPU ({s['torch_threads']} torch threads): `mosic_step` + backward + gradient "
        f"clipping ({s['grad_clip']}) + AdamW + EMA update. Model `{s['model']}` (random weights, "
        f"{s['trainable_parameters']:,} trainable parameters, trainable_blocks = {s['trainable_blocks']} = all), "
        f"batch {s['batch_size']} clips, T = {s['T']}, N = {s['num_points']} points, K = {s['num_prototypes']}; "
        f"other settings from `config.yaml`'s `train:` section. Data: {s['cache']['clips']} synthetic clips at "
        f"{s['cache']['size'][0]}x{s['cache']['size'][1]}, LK-tracked on a {s['cache']['grid']}x{s['cache']['grid']}"
        f" grid into a track store, {s['batches']} loader batches (TrainClips + collate: uint8 frames and the "
        "draws) read before timing; each step makes its views (DeviceTransform) on the CPU, then trains. "
        f"Median of {s['runs']} steps per row after {s['warmup']} warm-up steps, all rows interleaved "
        "round-robin; ratios are medians of per-round (paired) ratios.",
        "",
        "| input px | variant | teacher frames | student frames | ms/step median | min–max | × cached "
        "| of which views ms | before ms/step | after / before |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        before = f"{r['before_ms_median']:.0f} | {r['x_before']:.2f}" if "before_ms_median" in r else "– | –"
        lines.append(
            f"| {r['input']} | {r['variant']} | {r['teacher_frames']} | {r['student_frames']} | "
            f"{r['ms_median']:.0f} | {r['ms_min']:.0f}–{r['ms_max']:.0f} | {r['ratio_vs_cached']:.2f} | "
            f"{r['views_ms_median']:.0f} | {before} |"
        )
    if "before" in res:
        before_load, what = res["before"]["load_average_1_5_15min"], res["before"].get("what", "")
        lines += [
            "",
            f"*before*: the earlier run given with --before (1-minute load average {before_load['start'][0]} at its "
            f"start, {before_load['end'][0]} at its end; this run {load['start'][0]} and {load['end'][0]})"
            + (f": {what}" if what else "")
            + ". After / before is the ratio of the medians; each run's rows are interleaved, the two runs are not, "
            "so a difference in load between them moves the ratio too.",
        ]
    lines += ["", "Of which the views (crop, resize, flip, normalisation, photometric; 8 clips, DeviceTransform):", ""]
    for size in s["sizes"]:
        lines.append(
            f"- {size} px: "
            + ", ".join(f"{r['variant']} {r['views_ms_median']:.0f} ms" for r in res["rows"] if r["input"] == size)
            + "."
        )
    lines += ["", "Of which the in-step LK tracker (8 clips, 16x16 grid, at the input resolution):", ""]
    for r in res["rows"]:
        if r["tracker_in_step"]:
            lines.append(
                f"- {r['input']} px, {r['variant']}: tracking {r['tracker_ms_median']:.0f} ms per batch "
                f"({r['tracker_ms_per_clip_median']:.1f} ms per clip), views + step {r['step_only_ms_median']:.0f} ms."
            )
    lines += ["", "| input px | comparison | ratio (paired median) | ratio of medians |", "|---:|---|---:|---:|"]
    for c in res["comparisons"]:
        lines.append(
            f"| {c['input']} | {c['comparison']} | {c['ratio_paired_median']:.2f} | {c['ratio_of_medians']:.2f} |"
        )
    lines += ["", "**CoTracker3** (what the original runs inside every step):", ""]
    if not ct["installed"]:
        lines.append(
            f"- Not measured here: the `cotracker` package is not installed. Reference figure, **not measured by "
            f"this benchmark**: about {ct['reference_s_per_clip']:.0f} s per 12-frame clip on this CPU "
            f"({ct['reference']}). For a batch of {s['batch_size']} clips that would be an estimated "
            + "; ".join(
                f"{e['s_per_step_estimate']:.0f} s per step at {e['input']} px (~{e['ratio_vs_cached_estimate']}x "
                "the cached step)"
                for e in ct["implied_per_step"]
            )
            + " (CoTracker resizes every clip to 384x512, so its cost does not depend on the input size)."
        )
    elif "error" in ct:
        lines.append(f"- Installed, but timing failed: {ct['error']}")
    else:
        lines.append(
            f"- Measured with random weights at {ct['input']} px: {ct['s_per_clip_median']:.1f} s per clip (median of "
            f"{ct['clips_timed']}); extrapolated to a batch of {s['batch_size']}: {ct['s_per_step_extrapolated']:.0f} s"
            f" per step, ~{ct['ratio_vs_cached_extrapolated']}x the cached step."
        )
    lines += [
        "",
        "Notes: LK is hundreds of times cheaper per clip than CoTracker3 on this CPU, so `LK in step` understates "
        "what the original's online tracker costs; their time includes tracking and stacking the tracks, not "
        "making the uint8 clips (done before timing). At 224 px the 128 px cache is upsampled (LK then tracks "
        "upsampled frames). The student on all frames needs the teacher on the same frames (the symmetric term "
        "uses the teacher's frame selection), so comparison (3) holds the teacher at 12 frames. The test ViT is "
        "tiny (6 blocks, width 64); with a real ViT-S the step grows several-fold and a fixed tracker cost "
        "weighs less. The min–max spread comes mostly from other work on the shared machine. "
        f"Setup (rendering, tracking and writing the store, making batches, building networks): "
        f"{res['setup_s']:.0f} s; whole run {res['wall_s']:.0f} s.",
        "",
        f"Load average (1, 5, 15 min) at start {load['start']}, at end {load['end']} ({m['cpu_count']} CPUs)."
        + (
            f" **Contended run**: in {len(spread)} of {len(res['rows'])} rows the median is more than 1.5x the "
            "minimum, a sign that other work took cores during the timed steps, which inflates 2-thread steps "
            "(OpenMP threads wait on each other); the minima are then closer to the uncontended cost and the "
            "ratios less reliable."
            if spread
            else " Every row's median is within 1.5x of its minimum."
        ),
        "",
        f"Machine: {m['cpu_count']} CPUs ({m['cpu_model']}), shared with other work; {m['platform']}; Python "
        f"{m['python']}, torch {m['torch']}, timm {m['timm']}, numpy {m['numpy']}, OpenCV {m['opencv']}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark (or, with ``--markdown-only``, rewrite train_step.md from train_step.json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="timed steps per variant (median reported; >= 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224], help="input sizes in pixels")
    parser.add_argument("--lk-threads", type=int, default=2, help="OpenCV threads of the in-step LK tracker")
    parser.add_argument("--cotracker-clips", type=int, default=1, help="clips CoTracker3 is timed on, if installed")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="output folder")
    parser.add_argument("--before", type=Path, help="an earlier run's train_step.json to compare with")
    parser.add_argument("--before-what", default="", help="what the --before run was (written beside its figures)")
    parser.add_argument("--markdown-only", action="store_true", help="only rewrite train_step.md from train_step.json")
    parser.add_argument("--views", action="store_true",
                        help="only time views of all frames then selected against views of the selected frames "
                        "(train_step_views.json and .md)")  # fmt: skip
    args = parser.parse_args()
    name, render = ("train_step_views", markdown_views) if args.views else ("train_step", markdown)
    if args.markdown_only:
        (args.out / f"{name}.md").write_text(render(json.loads((args.out / f"{name}.json").read_text())))
        return
    if args.runs < 1 or args.warmup < 0:
        parser.error("need --runs >= 1 and --warmup >= 0")
    torch.set_num_threads(2)
    tmp = Path(tempfile.mkdtemp(prefix="mosic-train-step-bench-"))
    try:
        res = (run_views if args.views else run)(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.views:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")
        (args.out / f"{name}.md").write_text(render(res))
        print(render(res))
        return
    if args.before is not None:
        before = json.loads(args.before.read_text())
        old = {(r["input"], r["variant"]): r for r in before["rows"]}
        for row in res["rows"]:
            if (row["input"], row["variant"]) in old:
                row["before_ms_median"] = old[(row["input"], row["variant"])]["ms_median"]
                row["x_before"] = round(row["ms_median"] / row["before_ms_median"], 2)
        res["before"] = {"load_average_1_5_15min": before["load_average_1_5_15min"], "machine": before["machine"],
                         "what": args.before_what}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_step.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / "train_step.md").write_text(markdown(res))
    print((args.out / "train_step.md").read_text())


if __name__ == "__main__":
    main()
