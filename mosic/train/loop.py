"""The MoSiC training loop: one function that reads top to bottom (dinov2 ``do_train``, nanoGPT ``train.py``).

:func:`train` runs the steps of :mod:`mosic.train.step`: AdamW (fused) with separate learning rates for the
backbone and for head + prototypes (no weight decay on biases and norms), warm-up + cosine schedules precomputed
per step, bf16 autocast on CUDA, optional gradient clipping, the EMA update after every step, a guard that skips
non-finite steps and stops after ``train.nan_limit`` of them, logging (:mod:`mosic.train.metrics`), checkpoints
every N steps that resume exactly (:func:`mosic.train.checkpoint.resume_or_start`), and the export of the
trained backbone.

Any number of processes (``torchrun``) trains as one process does on the same global batch: every rank starts
from rank 0's student and teacher (:func:`build_models`), draws its clips' randomness from their ids, normalises
the loss over the global batch and logs the global batch's values.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mosic import distributed
from mosic.config import RunSpec, TrainConfig, config_hash, run_record, to_dict
from mosic.model.backbone import set_trainable_blocks
from mosic.model.ema import make_teacher
from mosic.model.export import export_backbone
from mosic.model.net import MoSiCNet
from mosic.store import TrackStore
from mosic.train.checkpoint import resume_or_start, rng_state, save_checkpoint
from mosic.train.data import TrainClips, make_loader
from mosic.train.metrics import StepLog, init_wandb, rows_from_tensor, rows_to_tensor
from mosic.train.presets import PRESETS, Preset
from mosic.train.schedules import cosine_schedule
from mosic.train.step import mosic_step, step_seed, teacher_frame_indices, train_step

logger = logging.getLogger(__name__)

__all__ = [
    "build_dataset",
    "build_models",
    "build_net",
    "build_optimizer",
    "mosic_step",
    "param_groups",
    "train",
    "TrainingDiverged",
]

FLUSH_EVERY_CUDA = 10  # steps whose statistics a GPU run reads back at once (one wait for the device)


class TrainingDiverged(RuntimeError):
    """More steps had a non-finite loss than ``train.nan_limit`` allows."""


def build_net(cfg: TrainConfig, run: RunSpec, preset: Preset) -> MoSiCNet:
    """The student network with the configured trainable blocks (the teacher is an EMA copy of it); the
    ``transposed`` control reads features at (x, y) as (row, col)."""
    net = MoSiCNet(
        model=cfg.model,
        init=cfg.init,
        input_size=cfg.input_size,
        head_hidden=cfg.head_hidden,
        head_bottleneck=cfg.head_bottleneck,
        proj_dim=cfg.proj_dim,
        num_prototypes=cfg.num_prototypes,
        gather=cfg.gather,
        order="transposed" if run.transposed_gather else preset.order,
    )
    set_trainable_blocks(net.backbone, cfg.trainable_blocks, select=preset.block_select)
    return net


def build_dataset(
    store: TrackStore, cfg: TrainConfig, run: RunSpec, preset: Preset, *, student_all_frames: bool | None = None
) -> TrainClips:
    """The training clips of `store` with the configured crop, points and augmentation, the run's track source
    (the ``static`` and ``shuffled`` controls) and seed.

    `student_all_frames` defaults to ``cfg.symmetric`` (the student's view of every frame is only needed then).
    """
    return TrainClips(
        store,
        input_size=cfg.input_size,
        num_points=cfg.num_points,
        crop_scale=cfg.crop_scale,
        flip=preset.flip,
        mean=preset.mean,
        std=preset.std,
        track_source=run.track_source,
        points=cfg.points,
        moving_threshold=cfg.moving_threshold,
        teacher_frames=cfg.teacher_frames,
        photometric=cfg.photometric_aug,
        student_all_frames=cfg.symmetric if student_all_frames is None else student_all_frames,
        seed=run.seed,
    )


def param_groups(net: MoSiCNet, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: backbone and head + prototypes at their own learning rates; no decay on 1-D parameters."""
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        part = "backbone" if name.startswith("backbone.") else "head"
        decay = p.ndim >= 2 and not name.endswith(".bias")
        groups.setdefault((part, decay), []).append(p)
    lr = {"backbone": cfg.lr_backbone, "head": cfg.lr_head}
    return [
        {
            "params": ps,
            "name": f"{part}{'' if decay else '_no_decay'}",
            "part": part,
            "base_lr": lr[part],
            "lr": lr[part],
            "weight_decay": cfg.weight_decay if decay else 0.0,
        }  # fmt: skip
        for (part, decay), ps in sorted(groups.items())
    ]


def build_optimizer(net: MoSiCNet, cfg: TrainConfig) -> torch.optim.AdamW:
    """Fused AdamW over :func:`param_groups` (fused kernels on CPU and GPU; they also skip a step on the device)."""
    return torch.optim.AdamW(param_groups(net, cfg), betas=(0.9, 0.999), eps=1e-8, fused=True)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds libraries that draw from numpy's global stream
    torch.manual_seed(seed)


def build_models(cfg: TrainConfig, run: RunSpec, preset: Preset, device: torch.device) -> tuple[MoSiCNet, MoSiCNet]:
    """The student and its EMA teacher on `device`, identical on every rank.

    Every rank builds from the run's seed, then takes rank 0's weights (a broadcast), and only then copies the
    student into the teacher: DDP would make the students equal by itself, but not the teachers, whose targets
    Sinkhorn balances over every rank.
    """
    torch.manual_seed(run.seed)
    net = build_net(cfg, run, preset).to(device)
    with torch.no_grad():
        distributed.broadcast_tensors_([*(p.data for p in net.parameters()), *net.buffers()])
    return net, make_teacher(net).to(device)


def _check_batch(cfg: TrainConfig, world: int, clips: int, steps_per_epoch: int | None = None) -> None:
    if cfg.batch_size % world:
        raise ValueError(
            f"train.batch_size ({cfg.batch_size}) is not a multiple of the {world} training processes (with "
            "--resources gpu=N Snakemake lowers the train rule's GPUs to N): choose a batch size or a GPU count "
            "that divides it"
        )
    if steps_per_epoch == 0:
        raise ValueError(
            f"{clips} cached clips give no full batch of {cfg.batch_size} clips over {world} processes; "
            "cache more clips or lower train.batch_size"
        )


def _loader(cfg: TrainConfig, run: RunSpec, store: TrackStore, preset: Preset, rank: int, world: int):
    """This rank's dataset, loader and sampler, after checking that the batch splits over the processes."""
    dataset = build_dataset(store, cfg, run, preset)
    _check_batch(cfg, world, len(store))
    loader, sampler = make_loader(dataset, batch_size_per_rank=cfg.batch_size // world, workers=cfg.workers,
                                  seed=run.seed, rank=rank, world_size=world)  # fmt: skip
    _check_batch(cfg, world, len(store), len(loader))
    return dataset, loader, sampler


def _save(
    ckpt_dir: Path,
    *,
    step: int,
    epoch: int,
    modules: dict[str, nn.Module],
    optimizer: torch.optim.Optimizer,
    log: StepLog,
    meta: dict[str, Any],
) -> Path | None:
    """A checkpoint (every rank calls it): every rank's random states and the metrics so far go with the weights;
    rank 0 writes it and gets its path, the other ranks None."""
    log.flush()
    rng = distributed.gather_object(rng_state())
    if not distributed.is_main_process():
        return None
    return save_checkpoint(ckpt_dir, step=step, epoch=epoch, modules=modules, optimizer=optimizer,
                           meta={**meta, "nan_skipped": log.nan_skipped},
                           extra_tensors={"metrics": rows_to_tensor(log.rows)}, rng_states=rng)  # fmt: skip


def _export(out_dir: Path, cfg: TrainConfig, modules: dict[str, MoSiCNet], initial: Path, meta: dict) -> None:
    """The trained student's and teacher's backbones (load into plain timm) and the starting one, beside them."""
    for name, module in modules.items():
        target = out_dir / ("backbone.safetensors" if name == "student" else f"{name}_backbone.safetensors")
        export_backbone(module.backbone, target, model_name=cfg.model, input_size=cfg.input_size, meta=meta)
    for suffix in ("", ".json"):
        shutil.copyfile(f"{initial}{suffix}", out_dir / f"initial_backbone.safetensors{suffix}")


def train(
    cfg: TrainConfig,
    run: RunSpec,
    shard_paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    provenance: dict[str, Any],
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Train MoSiC on the track cache; resumes from the latest checkpoint in ``out_dir/checkpoints``.

    Args:
        cfg: training settings (the train section).
        run: the run's variant (the tracked run or a control) and seed.
        shard_paths: the track-store shards.
        out_dir: run directory: ``checkpoints/``, ``final.safetensors`` (+ .json), ``backbone.safetensors``
            (+ .json, loads into plain timm), ``metrics.csv``, ``wandb/``.
        provenance: the record stored with every checkpoint and export (config, version, git sha); the run's
            variant and seed (``run``) and fingerprint are added.
        max_steps: stop after this many steps in total (tests use it to interrupt a run); None = all epochs.

    Returns:
        ``{"steps": steps done, "final": path of the final checkpoint or None if stopped early, ...}``.

    Raises:
        TrainingDiverged: when more than ``cfg.nan_limit`` steps had a non-finite loss.
    """
    # --- setup -------------------------------------------------------------------------------------------
    distributed.init_from_env()
    device, rank, world = distributed.device(), distributed.rank(), distributed.world_size()
    main = distributed.is_main_process()
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    if main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    distributed.barrier()
    preset = PRESETS[cfg.preset]
    store = TrackStore(list(shard_paths))
    dataset, loader, sampler = _loader(cfg, run, store, preset, rank, world)
    steps_per_epoch, per_rank = len(loader), cfg.batch_size // world
    total_steps = cfg.epochs * steps_per_epoch
    last_step = total_steps if max_steps is None else min(total_steps, max_steps)
    net, teacher = build_models(cfg, run, preset, device)
    _seed_everything(run.seed + rank)  # per-rank global streams (the step itself draws from seeded streams only)
    optimizer = build_optimizer(net, cfg)
    schedules = {
        part: cosine_schedule(1.0, total_steps, warmup_steps=cfg.warmup_steps) for part in ("backbone", "head")
    }
    checksums = [store.shard(k).attrs.get("checksums") for k in range(len(store.lengths))]
    fingerprint = config_hash({"train": run_record(cfg, run), "shards": checksums})  # another seed/variant: afresh
    provenance = {**provenance, "run": to_dict(run), "run_fingerprint": fingerprint}
    meta = {**provenance, "total_steps": total_steps}
    modules = {"student": net, "teacher": teacher}
    resumed = resume_or_start(ckpt_dir, fingerprint=fingerprint, modules=modules, optimizer=optimizer)
    initial = ckpt_dir / "initial_backbone.safetensors"
    if resumed is None and main:
        # The starting backbone, exactly as training begins: what every evaluation compares the trained one
        # against. Kept with the checkpoints so a resumed run has it.
        export_backbone(net.backbone, initial, model_name=cfg.model, input_size=cfg.input_size,
                        meta={**provenance, "steps": 0})  # fmt: skip
    step = int(resumed["step"]) if resumed else 0
    history = rows_from_tensor(resumed["extra_tensors"]["metrics"]) if resumed else []
    if cfg.compile:  # Module.compile keeps the modules and their parameter names (EMA, checkpoints)
        net.compile()
        teacher.compile()
    student: nn.Module = net
    if distributed.is_enabled():
        student = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    logger.info("training %s (%s preset): %d clips, %d steps/epoch x %d epochs, %d clips/step over %d process(es) "
                "on %s", cfg.model, cfg.preset, len(store), steps_per_epoch, cfg.epochs, cfg.batch_size, world,
                device)  # fmt: skip
    log = StepLog(out_dir / "metrics.csv", [r for r in history if r["step"] <= step],
                  nan_skipped=int(resumed["meta"]["nan_skipped"]) if resumed else 0, total_steps=total_steps,
                  symmetric=cfg.symmetric, write=main, wandb_run=init_wandb(cfg, run, out_dir, provenance))  # fmt: skip
    flush_every = FLUSH_EVERY_CUDA if device.type == "cuda" else 1

    # --- loop ----------------------------------------------------------------------------------------------
    try:
        while step < last_step:
            epoch = step // steps_per_epoch
            sampler.set_epoch(epoch, start=(step - epoch * steps_per_epoch) * per_rank)  # resuming mid-epoch
            dataset.set_epoch(epoch)
            for batch in loader:
                if step >= last_step:
                    break
                # schedules
                for g in optimizer.param_groups:
                    g["lr"] = g["base_lr"] * schedules[g["part"]][step]
                # views of the teacher's frames on the device; forward, backward, AdamW, EMA: no wait for the device
                seed = step_seed(run.seed, step)
                frames = teacher_frame_indices(dataset.num_frames, cfg.teacher_frames, seed)
                views = dataset.transform(batch.to(device, non_blocking=True), frames)
                stats = train_step(student, teacher, optimizer, views, cfg, preset, seed)
                step += 1
                # log (read back every flush_every steps)
                lrs = {g["part"]: g["lr"] for g in optimizer.param_groups}
                log.add(step, epoch, stats, lrs.get("backbone", 0.0), lrs.get("head", 0.0))
                if step % flush_every == 0 or step == last_step:
                    log.flush()
                    if log.nan_skipped > cfg.nan_limit:
                        raise TrainingDiverged(
                            f"{log.nan_skipped} steps had a non-finite loss (train.nan_limit = {cfg.nan_limit}); "
                            "lower the learning rate or check the cache with `python -m mosic.store.verify`"
                        )
                # checkpoint
                if step % cfg.checkpoint_every == 0 and step < total_steps:
                    _save(ckpt_dir, step=step, epoch=epoch, modules=modules, optimizer=optimizer, log=log, meta=meta)
    finally:
        log.close()

    result: dict[str, Any] = {"steps": step, "total_steps": total_steps, "nan_skipped": log.nan_skipped, "final": None}
    if step >= total_steps:
        final = _save(ckpt_dir, step=step, epoch=cfg.epochs - 1, modules=modules, optimizer=optimizer, log=log,
                      meta=meta)  # fmt: skip
        if main:
            _export(out_dir, cfg, modules, initial, {**provenance, "steps": step, "checkpoint": final.name})
            result["final"] = str(final)
            (out_dir / "final.json").write_text(json.dumps({**result, "checkpoint": str(final)}, indent=2))
    distributed.barrier()
    return result
