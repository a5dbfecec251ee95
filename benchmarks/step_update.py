"""Training-update benchmark: clips/s of one MoSiC update, the previous loop's update against ``train_step``.

- ``previous``: what :func:`mosic.train.loop.train` did per batch before the lean step: :func:`mosic_step`, a host
  read of the loss (its finite check), ``zero_grad``, backward, gradient clipping, a foreach (not fused) AdamW and
  the EMA update with a Python momentum. Every step waits for the device once.
- ``lean``: :func:`mosic.train.step.train_step`: the same maths with a fused AdamW that skips a non-finite step on
  the device (``found_inf``), the EMA decided on the device, and no host read; the host reads the statistics of
  ``--block`` steps at once, as the loop does on a GPU.

Both start from the same seed and weights and run the same batches, interleaved block by block (``--block``
steps of one, then of the other), so load from other work hits both alike; each block is timed from a device
synchronisation to the next. Reported: clips/s per block (median, min, max) and the paired ratio lean/previous.
On the CPU, the loop reads every step back (``--block 1`` by default), so there the comparison shows the fused
optimizer and EMA only.

Batches are made in memory, not read from a store (this measures the update, not the loader): ``--batch`` clips of
T = ``--frames`` random frames at ``--size`` px, N = ``--points`` tracks drawn inside the image with 90 % visible,
normalised like the loader's output, already on the device.

Writes ``benchmarks/results/step_update_<device>[_<tag>].json`` and ``.md``.

Usage: ``python benchmarks/step_update.py [--device cpu|cuda] [--model test_vit] [--size 128] [--batch 8]
[--blocks 7] [--block 1] [--trainable-blocks 0]``; on a GPU e.g. ``--device cuda --model vit_small_patch14_dinov2
--size 224 --batch 64 --block 10 --trainable-blocks 2`` (the published head, 2 trainable blocks).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
import yaml
from machine import machine_info

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mosic.config import RunSpec, TrainConfig, section_from_dict  # noqa: E402
from mosic.model.ema import ema_update_  # noqa: E402
from mosic.train.data import ClipBatch  # noqa: E402
from mosic.train.loop import PRESETS, build_models, build_optimizer, param_groups  # noqa: E402
from mosic.train.step import mosic_step, step_seed, teacher_frame_indices, train_step  # noqa: E402

IMPLS = ("previous", "lean", "lean+compile")
RUN = RunSpec(variant="mosic", seed=0)  # the tracked run, seed 0


def make_batch(cfg: TrainConfig, frames: int, device: torch.device, seed: int) -> ClipBatch:
    """A batch like the loader's: normalised frames, tracks inside the image, 90 % visible (frame 0 all)."""
    g = torch.Generator().manual_seed(seed)
    b, s, n = cfg.batch_size, cfg.input_size, cfg.num_points
    video = torch.randn(b, frames, 3, s, s, generator=g)
    tracks = torch.rand(b, frames, n, 2, generator=g) * (s - 1)
    visibility = torch.rand(b, frames, n, generator=g) < 0.9
    visibility[:, 0] = True
    batch = ClipBatch(video=video, student=video[:, 0].clone(), student_all=None, tracks=tracks,
                      visibility=visibility, clip_ids=torch.arange(seed * b, (seed + 1) * b))  # fmt: skip
    return batch.to(device)


class Runner:
    """One implementation: its own student, teacher and optimizer, from the same seed as the other."""

    def __init__(self, impl: str, cfg: TrainConfig, device: torch.device) -> None:
        self.impl, self.cfg, self.device = impl, cfg, device
        self.preset = PRESETS[cfg.preset]
        self.net, self.teacher = build_models(cfg, RUN, self.preset, device)
        if impl == "lean+compile":  # what train.compile does
            self.net.compile()
            self.teacher.compile()
        if impl.startswith("lean"):
            self.optimizer = build_optimizer(self.net, cfg)
        else:
            self.optimizer = torch.optim.AdamW(param_groups(self.net, cfg), betas=(0.9, 0.999), eps=1e-8)
        self.steps = 0
        self.block_s: list[float] = []
        self.losses: list[float] = []

    def step(self, batch: ClipBatch) -> None:
        seed = step_seed(RUN.seed, self.steps)
        # The teacher's frames (the loop makes the views of these only; the batch here holds every frame).
        batch = batch.select_frames(teacher_frame_indices(batch.video.shape[1], self.cfg.teacher_frames, seed))
        if self.impl.startswith("lean"):
            self.last = train_step(self.net, self.teacher, self.optimizer, batch, self.cfg, self.preset, seed)
        else:
            amp = torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else None
            with amp or torch.autocast("cpu", enabled=False):
                out = mosic_step(self.net, self.teacher, batch, self.cfg, self.preset, seed)
            loss = out["loss"]
            if not np.isfinite(loss.item()):  # the previous loop's per-step finite check: waits for the device
                raise RuntimeError(f"non-finite loss at step {self.steps}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf"))
            self.optimizer.step()
            ema_update_(self.teacher, self.net, self.cfg.ema_momentum)
            self.last = loss.detach().view(1)
        self.steps += 1

    def block(self, batches: list[ClipBatch], steps: int, timed: bool) -> None:
        sync(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            self.step(batches[self.steps % len(batches)])
        loss = float(self.last[0])  # one read per block (the lean loop's flush)
        sync(self.device)
        if timed:
            self.block_s.append((time.perf_counter() - start) / steps)
            self.losses.append(loss)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    raw = yaml.safe_load((REPO / "config.yaml").read_text())["train"]
    cfg = section_from_dict(
        TrainConfig,
        {**raw, "init": "random",
         "model": args.model, "input_size": args.size,
         "batch_size": args.batch, "num_points": args.points, "teacher_frames": args.teacher_frames,
         "trainable_blocks": args.trainable_blocks},
        "train",
    )  # fmt: skip
    if args.published_head:
        cfg = replace(cfg, head_hidden=1024, head_bottleneck=1024, proj_dim=256, num_prototypes=100)
    batches = [make_batch(cfg, args.frames, device, seed) for seed in range(args.batches)]
    impls = IMPLS if args.compile else IMPLS[:2]
    runners = {impl: Runner(impl, cfg, device) for impl in impls}
    started = time.perf_counter()
    for _ in range(args.warmup):
        for r in runners.values():
            r.block(batches, args.block, timed=False)
    for _ in range(args.blocks):
        for r in runners.values():
            r.block(batches, args.block, timed=True)
    rows = []
    for impl, r in runners.items():
        rate = [cfg.batch_size / s for s in r.block_s]
        rows.append({
            "impl": impl,
            "ms_per_step_median": round(1000 * statistics.median(r.block_s), 2),
            "clips_per_s_median": round(statistics.median(rate), 1),
            "clips_per_s_min": round(min(rate), 1),
            "clips_per_s_max": round(max(rate), 1),
            "last_loss": round(r.losses[-1], 4),
        })  # fmt: skip
    prev = runners["previous"].block_s
    ratios = {
        f"speedup_{impl}_over_previous_paired_median": round(
            statistics.median(p / q for p, q in zip(prev, r.block_s, strict=True)), 3
        )
        for impl, r in runners.items()
        if impl != "previous"
    }
    trainable = sum(p.numel() for p in runners["lean"].net.parameters() if p.requires_grad)
    return {
        "benchmark": "step_update",
        "settings": {
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "model": cfg.model,
            "input_size": cfg.input_size,
            "batch_size": cfg.batch_size,
            "frames": args.frames,
            "teacher_frames": cfg.teacher_frames,
            "num_points": cfg.num_points,
            "num_prototypes": cfg.num_prototypes,
            "head": [cfg.head_hidden, cfg.head_bottleneck, cfg.proj_dim],
            "trainable_blocks": cfg.trainable_blocks,
            "trainable_parameters": trainable,
            "block_steps": args.block,
            "blocks": args.blocks,
            "warmup_blocks": args.warmup,
            "torch_threads": torch.get_num_threads(),
            "autocast": "bf16" if device.type == "cuda" else "none",
        },
        "rows": rows,
        **ratios,
        "wall_s": round(time.perf_counter() - started, 1),
        "load_average_1min_end": round(os.getloadavg()[0], 2),
        "machine": machine_info(torch=torch.__version__, timm=timm.__version__),
    }


def markdown(res: dict[str, Any]) -> str:
    s, m = res["settings"], res["machine"]
    lines = [
        f"# Training-update benchmark on {s['device_name']} (`benchmarks/step_update.py`)",
        "",
        f"`{s['model']}` (random weights, {s['trainable_parameters']:,} trainable parameters, trainable_blocks = "
        f"{s['trainable_blocks']}), {s['input_size']} px, batch {s['batch_size']} clips of {s['frames']} frames, "
        f"teacher on {s['teacher_frames']} frames, N = {s['num_points']}, K = {s['num_prototypes']}, head "
        f"{s['head']}, autocast {s['autocast']}. {s['blocks']} timed blocks of {s['block_steps']} steps per "
        f"implementation after {s['warmup_blocks']} warm-up blocks, interleaved; {s['torch_threads']} torch "
        "threads.",
        "",
        "| update | ms/step (median) | clips/s median | min–max |",
        "|---|---:|---:|---:|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['impl']} | {r['ms_per_step_median']:.1f} | {r['clips_per_s_median']:.0f} | "
            f"{r['clips_per_s_min']:.0f}–{r['clips_per_s_max']:.0f} |"
        )
    lines += [
        "",
        "Speed-up over previous (paired median over blocks): "
        + ", ".join(
            f"{k.removeprefix('speedup_').removesuffix('_over_previous_paired_median')} **{v:.2f}x**"
            for k, v in res.items()
            if k.startswith("speedup_")
        )
        + ". The first compiled block (compilation) is a warm-up block, not timed.",
        "",
        f"Machine: {m['cpu_count']} CPUs ({m['cpu_model']}); {m['platform']}; torch {m['torch']}, timm {m['timm']};"
        f" load average at the end {res['load_average_1min_end']}; {res['wall_s']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--model", default="test_vit", help="timm model name (random weights)")
    parser.add_argument("--size", type=int, default=128, help="input size in pixels")
    parser.add_argument("--batch", type=int, default=8, help="clips per step")
    parser.add_argument("--frames", type=int, default=12, help="T, frames per clip")
    parser.add_argument("--teacher-frames", type=int, default=4, help="frames the teacher encodes (0 = all)")
    parser.add_argument("--points", type=int, default=256, help="N, tracks per clip")
    parser.add_argument("--trainable-blocks", type=int, default=0, help="0 = every parameter")
    parser.add_argument("--published-head", action="store_true", help="head 1024/1024/256, K = 100 (the paper's)")
    parser.add_argument("--batches", type=int, default=4, help="distinct batches cycled through")
    parser.add_argument("--block", type=int, default=1, help="steps per timed block (one host read per block)")
    parser.add_argument("--blocks", type=int, default=7, help="timed blocks per implementation")
    parser.add_argument("--warmup", type=int, default=2, help="untimed blocks first")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (CPU)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="output folder")
    parser.add_argument("--compile", action="store_true", help="also time lean+compile (train.compile: true)")
    parser.add_argument("--tag", default="", help="suffix of the result files (step_update_<device>[_<tag>])")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available")
    torch.set_num_threads(args.threads)
    res = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"step_update_{args.device}" + (f"_{args.tag}" if args.tag else "")
    (args.out / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
