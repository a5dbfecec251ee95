"""Typed, validated configuration for every stage of the pipeline.

`config.yaml` is parsed once, when the Snakefile loads, into the frozen dataclasses below, so a bad
configuration fails `snakemake -n` before any job starts. Each field carries its documentation and
its accepted values in `metadata`; :func:`parse_config` checks, for every key, that it is known, present,
of the right type and in range, and names the full key (``clips.step``) and what is accepted when not.

This module imports only the standard library: the Snakefile imports it at parse time, and importing
torch there would add seconds to every `snakemake` call.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ConfigError",
    "DatasetConfig",
    "SyntheticConfig",
    "ClipsConfig",
    "IndexConfig",
    "LKConfig",
    "CoTrackerConfig",
    "TrackConfig",
    "WandbConfig",
    "TrainConfig",
    "RunsConfig",
    "CONTROLS",
    "run_train_config",
    "run_name",
    "split_run_name",
    "evaluate_job_section",
    "evaluate_gpus",
    "PROTOCOLS",
    "CROSS_VIEW",
    "cross_view_available",
    "protocols_on",
    "INITS",
    "PretrainConfig",
    "ImageDatasetConfig",
    "VideoDatasetConfig",
    "LinearConfig",
    "ClusteringConfig",
    "HummingbirdConfig",
    "VideoSegConfig",
    "CrossViewConfig",
    "EvaluateConfig",
    "Config",
    "parse_config",
    "track_substep",
    "model_patch_size",
    "config_hash",
    "to_dict",
]


class ConfigError(ValueError):
    """A configuration value is unknown, missing, of the wrong type or out of range."""


def _field(
    doc: str,
    *,
    ge: float | None = None,
    le: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
    allow_empty: bool = False,
    job_optional: bool = False,
    default: Any = dataclasses.MISSING,
) -> Any:
    """A required dataclass field with its documentation and numeric bounds (inclusive ge/le, exclusive gt/lt).

    `job_optional`: required in config.yaml, but the section a job receives may leave it out (it is then None):
    an evaluation job gets only its own protocol's settings, so editing another protocol never reruns it.
    `default`: the value when Python code builds the dataclass without it (a key added later, so that existing
    callers keep working); config.yaml must still set the key.
    """
    return field(
        default=default,
        metadata={"doc": doc, "ge": ge, "le": le, "gt": gt, "lt": lt, "allow_empty": allow_empty,
                  "job_optional": job_optional},
    )  # fmt: skip


def _per_run(doc: str, default: Any) -> Any:
    """A field the workflow sets for each training run (from the `runs` section), never in config.yaml.

    The parsed pipeline config holds `default` there; the section a training job receives holds the run's value.
    """
    return field(default=default, metadata={"doc": doc, "per_run": True})


@dataclass(frozen=True, kw_only=True)
class DatasetConfig:
    """Which video corpus the pipeline reads."""

    name: str = _field("Name of the dataset; outputs go to <out_dir>/<name>/.")
    kind: Literal["synthetic", "ytvos", "videos", "davis"] = _field(
        "synthetic: generate the embedded demo; ytvos: YouTube-VOS JPEG folders; videos: a folder of video files; "
        "davis: DAVIS-2017 layout."
    )
    root: str = _field("Dataset root directory (ignored for kind=synthetic, which is generated under out_dir).")
    split: str = _field(
        "Optional list of video ids to use: a split name (davis: ImageSets/2017/<split>.txt; ytvos: <split>/ "
        "subfolder) or '' for every video under root."
    )
    on_error: Literal["skip", "fail"] = _field(
        "What a video that cannot be read does: skip = record it as skipped with the reason and go on; "
        "fail = stop with an error naming the file."
    )


@dataclass(frozen=True, kw_only=True)
class SyntheticConfig:
    """The procedural video dataset used by the embedded demo and the tests."""

    seed: int = _field("Random seed; the same seed gives byte-identical data.", ge=0)
    num_videos: int = _field("Number of videos to render.", ge=1, le=100_000)
    num_frames: int = _field("Frames per video.", ge=2, le=10_000)
    height: int = _field("Frame height in pixels.", ge=16, le=4096)
    width: int = _field("Frame width in pixels.", ge=16, le=4096)
    num_classes: int = _field(
        "Object classes; 5 or 6 (faces = 1: each a hand-made texture + shape; faces > 1: each a set of faces).",
        ge=5,
        le=6,
    )
    faces: int = _field(
        "Unrelated appearances (texture families) per class; 1 = one hand-made texture per class, no turns; 2-4 = "
        "every object turns once from one face of its class to another while it moves, and shapes are random.",
        ge=1,
        le=4,
    )
    turn_frames: int = _field("Frames a turn takes (faces > 1); less than num_frames.", ge=1, le=10_000)
    turn_travel: float = _field(
        "Least distance in pixels a turning object moves during its turn (its speed is at least "
        "turn_travel / turn_frames, at most max_speed), so that a point that stays still leaves the object.",
        ge=0.0,
        le=4096.0,
    )
    texture_seed: int = _field(
        "Seed of the texture families of the classes (faces > 1); another seed gives unseen textures.", ge=0
    )
    min_objects: int = _field("Fewest objects per video.", ge=1, le=64)
    max_objects: int = _field("Most objects per video (>= min_objects).", ge=1, le=64)
    max_speed: float = _field("Largest object speed in pixels per frame.", ge=0.0, le=64.0)
    camera_speed: float = _field("Largest camera pan speed in pixels per frame.", ge=0.0, le=64.0)
    scale_change: float = _field(
        "Largest scale factor an object reaches over a video (1 = none, 2 = doubles or halves).", ge=1.0, le=4.0
    )
    appearance_drift: float = _field(
        "Strength of per-object hue and lighting drift along the video (0 = none, 1 = strong).", ge=0.0, le=1.0
    )
    noise: float = _field("Std of additive pixel noise, in 0-255 units.", ge=0.0, le=64.0)
    track_grid: int = _field("Side of the ground-truth query grid on frame 0 (G x G points).", ge=1, le=256)
    write_mp4: bool = _field("Also write each video as an mp4 file (H.264) under videos/.")
    images_train: int = _field("Images in the VOC-layout segmentation train split.", ge=1, le=1_000_000)
    images_val: int = _field("Images in the VOC-layout segmentation val split.", ge=1, le=1_000_000)


@dataclass(frozen=True, kw_only=True)
class ClipsConfig:
    """How clips are sampled from each video (reference: original MoSiC `generate_indices`)."""

    mode: Literal["regular", "uniform", "dense", "full"] = _field(
        "regular: every <step>-th frame from a random start; uniform: sorted random frames; dense: consecutive "
        "frames; full: every frame of the video."
    )
    num_frames: int = _field(
        "Frames per clip (T); at least 2, since the loss matches frame 0 with the frames the points move to.",
        ge=2,
        le=1024,
    )
    step: int = _field("Frame step in regular mode (original run: 6).", ge=1, le=1000)
    clips_per_video: int = _field("Clips sampled per video.", ge=1, le=10_000)
    short_videos: Literal["pad", "skip"] = _field(
        "Videos shorter than one clip: pad = shrink the step and repeat the last frame (original behaviour); "
        "skip = leave them out, with the reason in the index."
    )
    seed: int = _field("Seed of clip sampling; each video draws from its own stream (stable per video).", ge=0)
    num_shards: int = _field("Number of tracking shards; a video's shard is a hash of its id.", ge=1, le=100_000)


@dataclass(frozen=True, kw_only=True)
class IndexConfig:
    """How the index rule probes videos."""

    verify_frames: bool = _field(
        "Open every frame header of JPEG folders (and decode the last frame of video files) to catch corrupt "
        "files at index time rather than during tracking."
    )
    threads: int = _field("Threads used to probe videos in parallel.", ge=1, le=256)


@dataclass(frozen=True, kw_only=True)
class LKConfig:
    """OpenCV pyramidal Lucas–Kanade settings (tracker = lk)."""

    win_size: int = _field("Side of the LK window in pixels (odd).", ge=3, le=101)
    levels: int = _field("Pyramid levels above full resolution; each doubles the largest trackable motion.", ge=0, le=8)
    fb_threshold: float = _field(
        "Largest forward-backward error in pixels for a point to stay visible.", gt=0.0, le=100
    )
    max_iter: int = _field("Most iterations per pyramid level.", ge=1, le=1000)
    eps: float = _field("Stop iterating when the update is below this many pixels.", gt=0.0, le=10.0)


@dataclass(frozen=True, kw_only=True)
class CoTrackerConfig:
    """CoTracker3 settings (tracker = cotracker3; needs the `cotracker` package)."""

    checkpoint: str = _field("Path to a CoTracker3 offline checkpoint (scaled_offline.pth); '' = torch.hub download.")
    visibility_threshold: float = _field("Visibility probability above which a point counts as visible.", ge=0, le=1)
    autocast: bool = _field("bf16 autocast on CUDA.")
    batch_size: int = _field(
        "Clips of one shape tracked in one forward pass (GPU memory grows with it); 1 = one clip at a time.",
        ge=1,
        le=256,
        default=1,
    )


@dataclass(frozen=True, kw_only=True)
class TrackConfig:
    """Stage 1: point tracking into the Zarr cache."""

    tracker: Literal["lk", "cotracker3", "ground_truth"] = _field(
        "lk: CPU, no weights; cotracker3: GPU, needs the cotracker package; ground_truth: the exact tracks of the "
        "synthetic dataset (from its scene descriptions)."
    )
    height: int = _field("Cache resolution: frames are resized to height x width, tracked and stored.", ge=16, le=4096)
    width: int = _field("Cache width in pixels.", ge=16, le=4096)
    grid: int = _field("Query grid side G: G x G points on the first frame of each clip.", ge=1, le=256)
    on_bad_clip: Literal["skip", "fail"] = _field(
        "A clip that cannot be decoded, has constant frames or frames of different sizes: skip = log and leave it "
        "out; fail = stop the job."
    )
    threads: int = _field("CPU threads of a tracking job.", ge=1, le=256)
    substep: Literal["auto", "direct"] | int = _field(
        "Track through the source frames between a clip's sampled frames, every <substep>-th one, and keep the "
        "sampled frames (clips.mode regular): auto = 1 for lk, direct for cotracker3; direct = track the sampled "
        "frames only; an integer that divides clips.step (= clips.step: same as direct). Ignored by ground_truth "
        "and in the other clip modes (track_substep).",
        ge=1,
        le=1000,
        default="auto",
    )
    lk: LKConfig = _field("Lucas-Kanade settings.")
    cotracker: CoTrackerConfig = _field("CoTracker3 settings.")


@dataclass(frozen=True, kw_only=True)
class WandbConfig:
    """Weights & Biases logging (metrics.csv is always written as well)."""

    mode: Literal["online", "offline", "disabled"] = _field(
        "online: stream to the W&B server (needs WANDB_API_KEY); offline: write a run folder to sync later; "
        "disabled: no W&B at all."
    )
    project: str = _field("W&B project name.")
    entity: str = _field("W&B entity (team or user); '' = your default.")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Stage 2: MoSiC fine-tuning of a timm ViT on the track cache."""

    preset: Literal["default", "faithful"] = _field(
        "default: correct (x, y) gather, horizontal flip, ImageNet std, loss over visible entries, last n blocks "
        "by index; faithful: the original code's behaviour (transposed gather, no flip, std 0.228, loss averaged "
        "over all entries, blocks selected by name)."
    )
    model: str = _field("timm model name, e.g. vit_small_patch14_dinov2.lvd142m (original run: dinov2-s).")
    init: str = _field(
        "Starting weights of the backbone: random (timm's initialisation); timm (timm's pretrained weights through "
        "the hub: needs network or a filled cache); pretrain (the workflow's own image-pretrained start, rule "
        "pretrain, on the synthetic image set: the demo); or the path of a .safetensors file (a backbone exported "
        "by mosic, or a timm state dict), e.g. on a cluster without hub access."
    )
    input_size: int = _field("Square input size in pixels (original: 224); a multiple of the patch size.", ge=16)
    trainable_blocks: int = _field("Train the last n transformer blocks (original: 2); 0 = all blocks.", ge=0)
    head_hidden: int = _field("Width of the projection head's two hidden layers (original: 1024).", ge=1)
    head_bottleneck: int = _field("Width of the head's third layer (original: 512).", ge=1)
    proj_dim: int = _field("Dimension of projected features and prototypes (original: 256).", ge=1)
    num_prototypes: int = _field("K, number of prototypes (original: 100).", ge=2)
    ema_momentum: float = _field("EMA teacher momentum (original: 0.99).", ge=0.0, le=1.0)
    sinkhorn_epsilon: float = _field("Sinkhorn entropic regularisation (original effective value: 0.05).", gt=0.0)
    sinkhorn_iters: int = _field("Sinkhorn iterations (original effective value: 10).", ge=1, le=1000)
    sinkhorn_log_domain: bool = _field("Run Sinkhorn in the log domain (stable for small epsilon).")
    temperature: float = _field("Softmax temperature of student scores (original: 0.1).", gt=0.0)
    assignment: Literal["hard", "soft"] = _field("hard: argmax teacher targets (original); soft: Sinkhorn Q.")
    symmetric: bool = _field("Add the symmetric term (every student frame predicts the frame-0 target).")
    gather: Literal["nearest", "bilinear"] = _field(
        "How features are read at track positions: nearest = the patch the point falls in (original); bilinear."
    )
    mask_ratio: float = _field("Fraction of student patches dropped (original run: 0).", ge=0.0, lt=1.0)
    num_points: int = _field("N, points sampled per clip among those inside the crop (original: 256).", ge=1)
    crop_scale: float = _field("Smallest area fraction of the random resized crop (original: 0.4).", gt=0.0, le=1.0)
    photometric_aug: bool = _field("Colour jitter, grayscale and blur on the student's view (not in the original).")
    teacher_frames: int = _field("Frames the teacher encodes per clip, frame 0 included; 0 = all T.", ge=0)
    batch_size: int = _field("Clips per optimizer step over all processes (original: 64 = 8 GPUs x 8).", ge=1)
    epochs: int = _field("Passes over the cached clips (original: 8).", ge=1)
    lr_backbone: float = _field("Peak learning rate of the backbone (original: 1e-5).", ge=0.0)
    lr_head: float = _field("Peak learning rate of head and prototypes (original: 1e-4).", ge=0.0)
    weight_decay: float = _field("AdamW weight decay; none on biases and norms (original: 0.01).", ge=0.0)
    warmup_steps: int = _field("Linear warm-up steps before the cosine decay (original: 0).", ge=0)
    grad_clip: float = _field("Clip the gradient norm to this value; 0 = off (original: off).", ge=0.0)
    nan_limit: int = _field("Steps with a non-finite loss that are skipped before training stops.", ge=0)
    checkpoint_every: int = _field("Save a checkpoint every this many steps (and at the end).", ge=1)
    workers: int = _field("DataLoader worker processes per training process.", ge=0, le=64)
    compile: bool = _field(
        "torch.compile the student and the teacher (faster steps on a GPU after about a minute of compiling; "
        "off on CPU, where it rarely pays)."
    )
    gpus: int = _field("GPUs the training rule asks for (resources: gpu); 0 = train on CPU.", ge=0, le=1024)
    cpu_processes: int = _field("Processes (gloo ranks) when training on CPU.", ge=1, le=64)
    wandb: WandbConfig = _field("Weights & Biases logging.")
    seed: int = _per_run("Random seed of this run (each process and loader worker derives its own).", 0)
    track_source: Literal["cached", "shuffled", "static"] = _per_run(
        "cached: the tracker's tracks; shuffled: targets from random other points (control); static: every "
        "point stays where it was at frame 0 (no-motion control).",
        "cached",
    )
    transposed_gather: bool = _per_run(
        "Read features at (x, y) as (row, col), the original code's indexing bug, all else equal (control).", False
    )


Control = Literal["shuffled", "static", "transposed"]
INITS = ("random", "timm", "pretrain")
CONTROLS: tuple[str, ...] = typing.get_args(Control)


@dataclass(frozen=True, kw_only=True)
class PretrainConfig:
    """The demo's image-pretrained start (train.init: pretrain): supervised patch classification of the backbone
    on the synthetic image set showing one face of every class, a stand-in for image pretraining."""

    face: int = _field("The face every labelled image shows (the objects' common view); 0 to synthetic.faces - 1.",
                       ge=0)  # fmt: skip
    steps: int = _field("Optimizer steps.", ge=1, le=1_000_000)
    batch_size: int = _field("Images per step.", ge=1, le=4096)
    lr: float = _field("AdamW learning rate of backbone and linear head.", gt=0.0, le=1.0)
    seed: int = _field("Seed of the initialisation, the linear head and the image order.", ge=0)


@dataclass(frozen=True, kw_only=True)
class RunsConfig:
    """The training runs compared in the evaluation: the tracked run and its controls, once per seed."""

    seeds: list[int] = _field("Seeds; every variant is trained once per seed (train.seed of the run).", ge=0)
    controls: list[Control] = _field(
        "Controls trained beside the tracked run with the same settings: shuffled (targets from random other "
        "points), static (points stay where they were at frame 0), transposed (features read at (x, y) as "
        "(row, col), the original code's bug). [] = none.",
        allow_empty=True,
    )


@dataclass(frozen=True, kw_only=True)
class ImageDatasetConfig:
    """The image segmentation set of the linear probe, clustering and Hummingbird."""

    kind: Literal["synthetic", "voc", "ade20k", "coco_stuff", "coco_things"] = _field(
        "synthetic: the demo's VOC-layout set; voc: Pascal VOC 2012 (+ trainaug); ade20k; coco_stuff (15 "
        "classes) / coco_things (12 classes)."
    )
    root: str = _field("Dataset root ('' for synthetic, which lives under out_dir).")
    train_split: str = _field("Training split (voc: train, trainaug, or a fraction file such as trainaug_1_8).")
    val_split: str = _field("Validation split (voc: val).")


@dataclass(frozen=True, kw_only=True)
class VideoDatasetConfig:
    """The video set of unsupervised video segmentation."""

    kind: Literal["synthetic", "davis", "ytvos"] = _field(
        "synthetic: the demo videos; davis: DAVIS-2017 (instance labels); ytvos: YouTube-VOS (category labels)."
    )
    root: str = _field("Dataset root ('' for synthetic).")
    split: str = _field("davis: val; ytvos: a list file of video ids (val1.txt of the Timetuning split).")


@dataclass(frozen=True, kw_only=True)
class LinearConfig:
    """Linear segmentation probe (NeCo recipe)."""

    enabled: bool = _field("Run the linear probe.")
    epochs: int = _field("Training epochs (NeCo: 25).", ge=1)
    lr: float = _field("SGD learning rate (NeCo: 0.01).", gt=0.0)
    momentum: float = _field("SGD momentum (NeCo: 0.9).", ge=0.0, lt=1.0)
    weight_decay: float = _field("SGD weight decay (NeCo: 1e-4).", ge=0.0)
    drop_at: int = _field("Epoch at which the learning rate drops x0.1 (NeCo: 20).", ge=1)
    batch_size: int = _field("Images per SGD step (NeCo: 128).", ge=1)
    mask_size: int = _field("Side of the label grid logits and masks are compared at (NeCo: 100).", ge=1)


@dataclass(frozen=True, kw_only=True)
class ClusteringConfig:
    """K-means (over)clustering of validation features (NeCo recipe)."""

    enabled: bool = _field("Run the clustering protocol.")
    ks: list[int] = _field("Numbers of clusters; 0 = the number of classes (Hungarian), others many-to-one.", ge=0)
    pca_dim: int = _field("PCA dimension after standardisation (NeCo: 50).", ge=1)
    iters: int = _field("K-means iterations (NeCo: 100).", ge=1)
    restarts: int = _field("K-means restarts, the best objective kept (NeCo: 5).", ge=1)
    seeds: int = _field("Seeds 0..n-1 averaged (NeCo: 5).", ge=1)
    mask_size: int = _field("Side of the label grid (NeCo: 100).", ge=1)


@dataclass(frozen=True, kw_only=True)
class HummingbirdConfig:
    """Hummingbird in-context retrieval (dense nearest neighbours over a memory of patch features)."""

    enabled: bool = _field("Run Hummingbird.")
    input_size: int = _field("Input size (MoSiC run: 518).", ge=16)
    memory_size: int = _field("Patches in the memory (MoSiC run: 10,240,000).", ge=1)
    augment_passes: int = _field("Augmented passes over the training images (MoSiC run: 2).", ge=1)
    train_fraction: float = _field("Fraction of training images used for the memory.", gt=0.0, le=1.0)
    k: int = _field("Nearest neighbours (MoSiC run: 30).", ge=1)
    temperature: float = _field("Softmax temperature of cosine similarities (MoSiC run: 0.02).", gt=0.0)


@dataclass(frozen=True, kw_only=True)
class VideoSegConfig:
    """Unsupervised video segmentation (Timetuning protocol)."""

    enabled: bool = _field("Run video segmentation.")
    input_size: int = _field("Input size (Timetuning: 224).", ge=16)
    frames: int = _field("Random frames per video (Timetuning: 4).", ge=1)
    k: int = _field("Clusters per frame or clip (must be pinned; Timetuning's CLI default: 10).", ge=2)
    mode: Literal["frame", "clip"] = _field("frame: cluster each frame; clip: cluster the frames of a video jointly.")
    iters: int = _field("K-means iterations (Timetuning: 50).", ge=1)
    restarts: int = _field("K-means restarts (Timetuning: 5).", ge=1)


@dataclass(frozen=True, kw_only=True)
class CrossViewConfig:
    """A cross-view protocol on the faces of the synthetic image set (memory or clusters must link the faces of a
    class); it reuses the settings of the standard protocol it extends (:data:`CROSS_VIEW`)."""

    enabled: Literal["auto", True, False] = _field(
        "auto: run when evaluate.image_dataset.kind is synthetic and synthetic.faces > 1, else skip; true: run, "
        "and refuse a configuration where it cannot; false: never."
    )


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    """Dense-feature evaluation of the starting backbone and every trained checkpoint."""

    input_size: int = _field("Input size of the linear probe and clustering (NeCo: 448).", ge=16)
    batch_size: int = _field("Images per feature-extraction batch.", ge=1)
    device: Literal["auto", "cpu", "cuda"] = _field(
        "Where features are computed; auto = cuda when available. Each evaluation job asks Snakemake for one GPU "
        "with cuda, none with cpu, and with auto one when train.gpus > 0 (see evaluate_gpus)."
    )
    parity: bool = _field(
        "Reproduce the reference implementations' quirks (ADE20K averaged over 151 classes incl. 0; Hummingbird "
        "scored with Hungarian matching, its masks resized with torch's floor 'nearest'; Hummingbird std 0.255)."
    )
    seed: int = _field("Seed of every random draw in evaluation.", ge=0)
    image_dataset: ImageDatasetConfig = _field("Image segmentation set.")
    video_dataset: VideoDatasetConfig = _field("Video segmentation set.")
    linear: LinearConfig = _field("Linear probe.", job_optional=True)
    clustering: ClusteringConfig = _field("Clustering.", job_optional=True)
    hummingbird: HummingbirdConfig = _field("Hummingbird retrieval.", job_optional=True)
    videoseg: VideoSegConfig = _field("Video segmentation.", job_optional=True)
    hummingbird_xview: CrossViewConfig = _field(
        "Cross-view Hummingbird: memory of one face, queries of another (hummingbird settings).", job_optional=True
    )
    clustering_xview: CrossViewConfig = _field(
        "Cross-view clustering: K = classes over every face of each val image (clustering settings).",
        job_optional=True,
    )


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole pipeline configuration (one section per stage)."""

    out_dir: str = _field("Directory every output goes to (relative to the working directory).")
    dataset: DatasetConfig = _field("Input corpus.")
    synthetic: SyntheticConfig = _field("Synthetic dataset generator.")
    clips: ClipsConfig = _field("Clip sampling and sharding.")
    index: IndexConfig = _field("Video probing.")
    track: TrackConfig = _field("Point tracking into the cache.")
    train: TrainConfig = _field("MoSiC training.")
    pretrain: PretrainConfig = _field("The image-pretrained start of train.init: pretrain.")
    runs: RunsConfig = _field("Training runs: seeds and controls.")
    evaluate: EvaluateConfig = _field("Evaluation protocols.")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _plural_type_name(tp: Any) -> str:
    """What a list of `tp` holds, in the plural: ``integers``, ``values among 'a', 'b'``."""
    if typing.get_origin(tp) is Literal:
        return "values among " + ", ".join(repr(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "mappings"
    return {bool: "true or false values", int: "integers", float: "numbers", str: "strings"}.get(tp, str(tp))


def _check_value(key: str, value: Any, tp: Any, meta: dict[str, Any], run: bool = False) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping of its own keys, got {value!r}")
        return _parse_dataclass(tp, value, prefix=key + ".", run=run)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"config key '{key}' is {value!r}; accepted values: {', '.join(map(repr, allowed))}")
        return value
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list) or (not value and not meta.get("allow_empty")):
            kind = "a list" if meta.get("allow_empty") else "a non-empty list"
            raise ConfigError(f"config key '{key}' must be {kind} of {_plural_type_name(inner)}, got {value!r}")
        if len(set(map(repr, value))) < len(value):
            raise ConfigError(f"config key '{key}' lists a value twice: {value!r}")
        return [_check_value(f"{key}[{i}]", v, inner, meta) for i, v in enumerate(value)]
    if origin in (types.UnionType, typing.Union):  # e.g. Literal["auto", "direct"] | int: the first that accepts it
        alternatives = typing.get_args(tp)
        if any(typing.get_origin(a) is not Literal and a not in (bool, int, float, str) for a in alternatives):
            raise TypeError(f"unsupported annotation for {key}: {tp}")
        for alternative in alternatives:
            try:
                return _check_value(key, value, alternative, meta, run)
            except ConfigError:
                continue
        # YAML 1.1 reads unquoted off / no / on / yes as booleans, so `substep: off` arrives as False.
        note = " (YAML reads unquoted off, no, on, yes as false or true)" if isinstance(value, bool) else ""
        raise ConfigError(
            f"config key '{key}' is {value!r}; accepted values: {_type_name(tp)}{_range_text(meta)}{note}"
        )
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok:
        raise ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {type(value).__name__} {value!r}")
    if tp is float:
        value = float(value)
    ge, le, gt, lt = meta.get("ge"), meta.get("le"), meta.get("gt"), meta.get("lt")
    if (
        (ge is not None and value < ge)
        or (le is not None and value > le)
        or (gt is not None and value <= gt)
        or (lt is not None and value >= lt)
    ):
        raise ConfigError(f"config key '{key}' is {value!r}; accepted values: {_type_name(tp)}{_range_text(meta)}")
    return value


def _range_text(meta: dict[str, Any]) -> str:
    """The numeric bounds of a field as text, with a leading space (``" >= 1 and <= 1000"``), or ``""``."""
    ge, le, gt, lt = meta.get("ge"), meta.get("le"), meta.get("gt"), meta.get("lt")
    lo = f"> {gt}" if gt is not None else (f">= {ge}" if ge is not None else "")
    hi = f"< {lt}" if lt is not None else (f"<= {le}" if le is not None else "")
    rng = " and ".join(p for p in (lo, hi) if p)
    return f" {rng}" if rng else ""


def _parse_dataclass(cls: type, data: dict[str, Any], prefix: str = "", run: bool = False) -> Any:
    """Check and build `cls` from `data`; `run`: a training run's section, which holds the per-run fields."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    per_run = {name for name, f in fields.items() if f.metadata.get("per_run")}
    if not run:
        given = sorted(per_run & set(data))
        if given:
            raise ConfigError(
                f"config key '{prefix}{given[0]}' is set for each training run by the workflow (from runs.seeds and "
                "runs.controls); remove it"
            )
        fields = {name: f for name, f in fields.items() if name not in per_run}
    if cls is TrainConfig and "pretrained" in data:
        raise ConfigError(
            f"config key '{prefix}pretrained' was replaced by '{prefix}init': use init: timm for pretrained: true, "
            "init: random for pretrained: false"
        )
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown config key '{prefix}{unknown[0]}'; known keys here: {', '.join(prefix + k for k in fields)}"
        )
    missing = [k for k, f in fields.items() if k not in data and not (run and f.metadata.get("job_optional"))]
    if missing:
        f = fields[missing[0]]
        raise ConfigError(
            f"missing config key '{prefix}{missing[0]}' ({f.metadata['doc']} Accepted values: "
            f"{_type_name(hints[missing[0]])})"
        )
    values = {
        name: _check_value(prefix + name, data[name], hints[name], dict(f.metadata), run) if name in data else None
        for name, f in fields.items()
    }
    return cls(**values)


# Patch sizes of timm models whose names have no ``patchN`` part, for the parse-time input-size check.
_NAMED_PATCH_SIZES = {"test_vit": 16, "test_vit2": 16, "test_vit3": 16, "test_vit4": 16, "test_vit_relpos": 16}


def model_patch_size(name: str) -> int | None:
    """The patch size of timm model `name` read from the name alone (no torch, no timm), or None if unknown.

    timm's grammar puts it in the architecture, ``arch_size_patchN[_more][.tag]``
    (``vit_small_patch14_dinov2.lvd142m`` -> 14); every timm model whose architecture name has a ``patchN``
    part has patch size N. The tiny ``test_vit`` family (patch 16) has none and is listed here. For other
    names this returns None: the check waits for :func:`mosic.model.backbone.build_backbone`, which reads the
    built model's patch size.
    """
    arch = name.split(".", 1)[0]
    found = re.search(r"(?:^|_)patch(\d+)(?=_|$)", arch)
    if found:
        return int(found.group(1))
    return _NAMED_PATCH_SIZES.get(arch)


def _cross_checks(cfg: Config) -> None:
    s = cfg.synthetic
    if s.min_objects > s.max_objects:
        raise ConfigError(
            f"config key 'synthetic.max_objects' is {s.max_objects}; accepted values: an integer >= "
            f"synthetic.min_objects ({s.min_objects})"
        )
    if s.faces > 1 and s.turn_frames >= s.num_frames:
        raise ConfigError(
            f"config key 'synthetic.turn_frames' is {s.turn_frames}; accepted values: 1 to synthetic.num_frames - 1 "
            f"({s.num_frames - 1}), so that a turn fits in a video"
        )
    if s.faces > 1 and s.turn_travel > s.max_speed * s.turn_frames:
        raise ConfigError(
            f"config key 'synthetic.turn_travel' is {s.turn_travel}; accepted values: 0 to synthetic.max_speed x "
            f"synthetic.turn_frames ({s.max_speed * s.turn_frames:g} px), the farthest an object moves during a turn"
        )
    substep, step = cfg.track.substep, cfg.clips.step
    if isinstance(substep, int) and cfg.clips.mode == "regular" and step % substep:
        divisors = ", ".join(str(k) for k in range(1, step + 1) if step % k == 0)
        raise ConfigError(
            f"config key 'track.substep' is {substep}; accepted values: 'auto', 'direct' or an integer that divides "
            f"clips.step ({step}): {divisors}"
        )
    if cfg.track.tracker == "ground_truth" and cfg.dataset.kind not in ("synthetic", "ytvos"):
        raise ConfigError(
            f"config key 'track.tracker' is 'ground_truth' with dataset.kind {cfg.dataset.kind!r}; the ground-truth "
            "tracker reads the scene descriptions (Scenes/<video>.json) of the synthetic dataset: accepted with "
            "dataset.kind 'synthetic' (or 'ytvos' on a generated dataset's ytvos/ folder)"
        )
    t = cfg.train
    patch = model_patch_size(t.model)
    if patch is not None and t.input_size % patch:
        lower, upper = max(patch, t.input_size // patch * patch), (t.input_size // patch + 1) * patch
        raise ConfigError(
            f"config key 'train.input_size' is {t.input_size}; accepted values: a multiple of the patch size {patch} "
            f"of train.model {t.model!r}, e.g. {lower} or {upper}"
        )
    if t.teacher_frames > cfg.clips.num_frames:
        raise ConfigError(
            f"config key 'train.teacher_frames' is {t.teacher_frames}; accepted values: 0 (all) to clips.num_frames "
            f"({cfg.clips.num_frames})"
        )
    if t.num_points > cfg.track.grid**2:
        raise ConfigError(
            f"config key 'train.num_points' is {t.num_points}; accepted values: 1 to track.grid^2 "
            f"({cfg.track.grid**2}), the points cached per clip"
        )
    if t.gpus > 0 and t.batch_size % t.gpus:
        raise ConfigError(
            f"config key 'train.batch_size' is {t.batch_size}; accepted values: a multiple of train.gpus ({t.gpus})"
        )
    if t.gpus == 0 and t.batch_size % t.cpu_processes:
        raise ConfigError(
            f"config key 'train.batch_size' is {t.batch_size}; accepted values: a multiple of train.cpu_processes "
            f"({t.cpu_processes})"
        )
    if cfg.clips.mode == "full":
        raise ConfigError(
            "config key 'clips.mode' is 'full'; accepted values: 'regular', 'uniform', 'dense' (the track cache "
            "stores clips of a fixed length, and 'full' gives one clip of every length)"
        )
    for protocol in CROSS_VIEW:
        if getattr(cfg.evaluate, protocol).enabled is True and not cross_view_available(cfg):
            raise ConfigError(
                f"config key 'evaluate.{protocol}.enabled' is true with evaluate.image_dataset.kind "
                f"{cfg.evaluate.image_dataset.kind!r} and synthetic.faces {s.faces}; the cross-view protocols compare "
                "the faces of the synthetic image set: accepted with image_dataset.kind 'synthetic' and "
                "synthetic.faces > 1; else auto (skipped where it does not apply) or false"
            )
    if cfg.dataset.kind != "synthetic" and not cfg.dataset.root:
        raise ConfigError(
            f"config key 'dataset.root' is empty; accepted values: a directory for kind={cfg.dataset.kind}"
        )
    if not cfg.dataset.name or "/" in cfg.dataset.name:
        raise ConfigError(
            f"config key 'dataset.name' is {cfg.dataset.name!r}; accepted values: a non-empty name without '/'"
        )
    if t.init not in INITS and not t.init.endswith(".safetensors"):
        raise ConfigError(
            f"config key 'train.init' is {t.init!r}; accepted values: {', '.join(map(repr, INITS))} or the path of a "
            ".safetensors file"
        )
    if t.init == "pretrain" and (cfg.dataset.kind != "synthetic" or cfg.pretrain.face >= s.faces):
        raise ConfigError(
            f"config key 'train.init' is 'pretrain' with dataset.kind {cfg.dataset.kind!r} and pretrain.face "
            f"{cfg.pretrain.face} (synthetic.faces {s.faces}); the pretrain rule trains on the synthetic image set: "
            "accepted with dataset.kind 'synthetic' and pretrain.face < synthetic.faces; else use random, timm or a "
            ".safetensors path"
        )


def parse_config(data: dict[str, Any]) -> Config:
    """Validate a raw configuration mapping (as loaded from YAML) and build the typed :class:`Config`.

    Args:
        data: the mapping Snakemake loaded from `config.yaml` and any `--configfile` / `--config` overrides.

    Returns:
        The frozen configuration.

    Raises:
        ConfigError: naming the first offending key and the values it accepts.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"the configuration must be a mapping, got {type(data).__name__}")
    cfg = _parse_dataclass(Config, data)
    _cross_checks(cfg)
    return cfg


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


def to_dict(obj: Any) -> Any:
    """Plain, JSON-serialisable data of a config dataclass, or of a dict of them (for provenance and params)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def config_hash(obj: Any) -> str:
    """Stable short hash of a config section (sorted-key JSON, sha256, 16 hex digits)."""
    blob = json.dumps(to_dict(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def section_from_dict(cls: type, data: dict[str, Any], name: str = "") -> Any:
    """Rebuild one config section from the dict a rule received in `params:` (validated again, cheaply).

    A training section (from :func:`run_train_config`) carries the run's own seed and track source.
    """
    return _parse_dataclass(cls, dict(data), prefix=f"{name}." if name else "", run=True)


PROTOCOLS = ("linear", "clustering", "hummingbird", "videoseg", "hummingbird_xview", "clustering_xview")
# Cross-view protocols and the standard protocol whose settings (config section) each one reuses.
CROSS_VIEW = {"hummingbird_xview": "hummingbird", "clustering_xview": "clustering"}


def cross_view_available(cfg: Config) -> bool:
    """Whether the image set has faces to compare: the synthetic set generated with ``synthetic.faces > 1``."""
    return cfg.evaluate.image_dataset.kind == "synthetic" and cfg.synthetic.faces > 1


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
