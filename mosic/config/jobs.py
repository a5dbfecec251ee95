"""What each job of the workflow receives: the frame step of a tracking job, the protocols and the evaluate
section of an evaluation job, the training section of each run, and run names. Standard library only."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from mosic.config.schema import (
    CONTROLS,
    CROSS_VIEW,
    PROTOCOLS,
    Config,
    ConfigError,
    TrainConfig,
    cross_view_available,
    to_dict,
)


def track_substep(cfg: Config) -> int | None:
    """The frame step the tracker works at inside a clip (``track.substep`` resolved), or None to track the clip's
    sampled frames directly.

    Only ``clips.mode: regular`` has a step to fill; ``uniform`` clips have gaps of any length (tracking through
    them could mean decoding most of a video) and ``dense`` clips have none, so they are tracked directly, as are
    the ``ground_truth`` tracker's (exact at any step). ``auto`` gives 1 (every source frame) to ``lk``, which
    follows small motions far better than large ones, and None to ``cotracker3``, which follows large motions
    itself and whose GPU time grows with the frames it is given; an integer ``k`` gives ``k``, None when it equals
    ``clips.step`` (nothing to insert). :func:`mosic.tracking.substep.substep_frames` applies it to each clip.
    """
    substep, clips = cfg.track.substep, cfg.clips
    if substep == "direct" or clips.mode != "regular" or cfg.track.tracker == "ground_truth":
        return None
    if substep == "auto":
        substep = 1 if cfg.track.tracker == "lk" else clips.step
    return None if substep >= clips.step else substep


def protocols_on(cfg: Config) -> list[str]:
    """The protocols the workflow runs, in :data:`PROTOCOLS` order: each one enabled, a cross-view one with
    ``enabled: auto`` only where :func:`cross_view_available` (``enabled: true`` elsewhere fails parsing)."""
    on = []
    for protocol in PROTOCOLS:
        enabled = getattr(cfg.evaluate, protocol).enabled
        if enabled is True or (enabled == "auto" and cross_view_available(cfg)):
            on.append(protocol)
    return on


def evaluate_job_section(cfg: Config, protocol: str) -> dict[str, Any]:
    """The evaluate section an evaluation job receives: the shared keys and only its own protocol's settings (a
    cross-view protocol: its own section and that of the standard protocol whose settings it reuses)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; accepted values: {', '.join(map(repr, PROTOCOLS))}")
    own = {protocol, CROSS_VIEW.get(protocol, protocol)}
    return {k: v for k, v in to_dict(cfg.evaluate).items() if k in own or k not in PROTOCOLS}


def evaluate_gpus(cfg: Config) -> int:
    """GPUs an evaluation job asks Snakemake for (its ``resources: gpu``), following ``evaluate.device``.

    ``cuda``: 1; ``cpu``: 0; ``auto``: 1 when the run trains on GPUs (``train.gpus > 0``), else 0 (a job that
    finds a GPU anyway still uses it, without reserving it).
    """
    device = cfg.evaluate.device
    if device == "auto":
        return 1 if cfg.train.gpus > 0 else 0
    return 1 if device == "cuda" else 0


def run_name(variant: str, seed: int) -> str:
    """The name of a training run and of its evaluated model: ``mosic_s0``, ``static_s1``, ``start_s0``."""
    return f"{variant}_s{seed}"


def split_run_name(name: str) -> tuple[str, int | None]:
    """Inverse of :func:`run_name`: ``mosic_s1`` -> (``mosic``, 1); a name without a seed -> (name, None)."""
    m = re.fullmatch(r"(.+)_s(\d+)", name)
    return (m.group(1), int(m.group(2))) if m else (name, None)


def run_train_config(cfg: Config, variant: str, seed: int, *, pretrain_backbone: str | None = None) -> TrainConfig:
    """The training section of one run: ``variant`` is ``mosic`` (cached tracks) or a control name.

    With ``train.init: pretrain``, `pretrain_backbone` (the pretrain rule's output) becomes the run's init path.
    """
    if variant != "mosic" and variant not in CONTROLS:
        raise ConfigError(f"unknown training variant {variant!r}; accepted values: 'mosic', {', '.join(CONTROLS)}")
    source = variant if variant in ("shuffled", "static") else "cached"
    run = dataclasses.replace(cfg.train, seed=seed, track_source=source, transposed_gather=variant == "transposed")
    if run.init == "pretrain" and pretrain_backbone is not None:
        run = dataclasses.replace(run, init=str(pretrain_backbone))
    return run
