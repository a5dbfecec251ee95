"""What each job of the workflow receives: the frame step of a tracking job, the protocols of the evaluation jobs
and what each one gets (:class:`EvaluateJob`), the training section every run gets and each run's variant and seed
(:class:`RunSpec`), and run names. Standard library only."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Literal

from mosic.config.schema import (
    CONTROLS,
    CROSS_VIEW,
    PROTOCOLS,
    ClusteringConfig,
    Config,
    ConfigError,
    CrossViewConfig,
    EvaluateConfig,
    EvaluateShared,
    HummingbirdConfig,
    LinearConfig,
    Protocol,
    TrainConfig,
    Variant,
    VideoSegConfig,
    cross_view_available,
    to_dict,
)

# The settings a protocol runs with: a standard protocol's own section.
ProtocolSettings = LinearConfig | ClusteringConfig | HummingbirdConfig | VideoSegConfig


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


def check_protocol(protocol: str) -> None:
    """Raise a ConfigError naming `protocol` unless it is one of :data:`PROTOCOLS`."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; accepted values: {', '.join(map(repr, PROTOCOLS))}")


@dataclass(frozen=True, kw_only=True)
class EvaluateJob:
    """What one evaluation job receives: the shared evaluate settings and its own protocol's section, nothing of
    the other protocols (so that editing them never reruns it).

    Attributes:
        protocol: one of :data:`PROTOCOLS`.
        shared: the evaluate keys every protocol uses (device, batch size, seed, datasets, ...).
        section: the protocol's own section of ``evaluate:`` (a cross-view protocol's: its ``enabled`` switch).
        reused: a cross-view protocol's standard protocol section (:data:`CROSS_VIEW`), whose settings it runs
            with; None for a standard protocol.
    """

    protocol: Protocol
    shared: EvaluateShared
    section: ProtocolSettings | CrossViewConfig
    reused: HummingbirdConfig | ClusteringConfig | None = None

    def __post_init__(self) -> None:
        check_protocol(self.protocol)
        if (self.reused is None) == (self.protocol in CROSS_VIEW):
            base = CROSS_VIEW.get(self.protocol)
            need = f"the evaluate.{base} section it reuses" if base else "no other section"
            raise ConfigError(f"the {self.protocol} evaluation job takes {need}")

    @property
    def settings(self) -> ProtocolSettings:
        """The settings the protocol runs with: its own section, or a cross-view protocol's reused one."""
        return self.reused if self.reused is not None else self.section  # type: ignore[return-value]

    def as_dict(self) -> dict[str, Any]:
        """The job as plain data, the evaluate rule's `params:` (:func:`mosic.config.evaluate_job_from_dict` reads
        it back): the shared keys, then the protocol's section and the reused one under their ``evaluate:`` keys,
        in config order."""
        own = {self.protocol: self.section, CROSS_VIEW.get(self.protocol): self.reused}
        return to_dict(self.shared) | {k: to_dict(own[k]) for k in PROTOCOLS if own.get(k) is not None}


def evaluate_job(evaluate: EvaluateConfig, protocol: str) -> EvaluateJob:
    """The job of `protocol`: the shared keys of `evaluate` and only its own protocol's settings (a cross-view
    protocol: its own section and that of the standard protocol whose settings it reuses).

    Raises:
        ConfigError: for a protocol not in :data:`PROTOCOLS`.
    """
    check_protocol(protocol)
    shared = EvaluateShared(**{f.name: getattr(evaluate, f.name) for f in dataclasses.fields(EvaluateShared)})
    reused = CROSS_VIEW.get(protocol)
    return EvaluateJob(protocol=protocol, shared=shared, section=getattr(evaluate, protocol),
                       reused=getattr(evaluate, reused) if reused else None)  # fmt: skip


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


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """One training run (rule train's wildcards, from ``runs:``): the tracked run or a control, and its seed.

    Attributes:
        variant: ``mosic`` (the tracker's tracks) or a control (:data:`CONTROLS`): ``shuffled``, ``static`` or
            ``transposed``.
        seed: the run's random seed (each process and loader worker derives its own from it).

    Raises:
        ConfigError: for an unknown variant or a negative seed, naming the value.
    """

    variant: Variant
    seed: int

    def __post_init__(self) -> None:
        if self.variant != "mosic" and self.variant not in CONTROLS:
            accepted = ", ".join(map(repr, ("mosic", *CONTROLS)))
            raise ConfigError(f"unknown training variant {self.variant!r}; accepted values: {accepted}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"training seed is {self.seed!r}; accepted values: an integer >= 0 (runs.seeds)")

    @property
    def track_source(self) -> Literal["cached", "shuffled", "static"]:
        """Where the targets come from: cached (the tracker's tracks); shuffled (random other points: control);
        static (every point stays where it was at frame 0: no-motion control)."""
        return self.variant if self.variant in ("shuffled", "static") else "cached"  # type: ignore[return-value]

    @property
    def transposed_gather(self) -> bool:
        """Read features at (x, y) as (row, col), the original code's indexing bug, all else equal (control)."""
        return self.variant == "transposed"


def run_train_config(cfg: Config, *, pretrain_backbone: str | None = None) -> TrainConfig:
    """The training section every run receives (its variant and seed come beside it, :class:`RunSpec`).

    With ``train.init: pretrain``, `pretrain_backbone` (the pretrain rule's output) becomes the run's init path.
    """
    if cfg.train.init == "pretrain" and pretrain_backbone is not None:
        return dataclasses.replace(cfg.train, init=str(pretrain_backbone))
    return cfg.train


def run_record(train: TrainConfig, run: RunSpec) -> dict[str, Any]:
    """The settings of one run as one flat record: the train keys, and the run's ``seed``, ``track_source`` and
    ``transposed_gather`` (which tell the variant). The checkpoint fingerprint hashes it, and the provenance and
    W&B config record it. It is the record of the time when these three were train keys, so that checkpoints
    written then still resume.
    """
    per_run = {"seed": run.seed, "track_source": run.track_source, "transposed_gather": run.transposed_gather}
    return to_dict(train) | per_run
