"""The configuration schema: one frozen dataclass per section of ``config.yaml``, each field with its documentation and
accepted values in ``metadata`` (read by :mod:`mosic.config.parse`), and the protocol names of ``evaluate:``.
Standard library only."""

from __future__ import annotations

import dataclasses
import hashlib
import json
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
    "INITS",
    "CONTROLS",
    "Variant",
    "RUN_KEYS",
    "PretrainConfig",
    "RunsConfig",
    "ImageDatasetConfig",
    "VideoDatasetConfig",
    "LinearConfig",
    "ClusteringConfig",
    "HummingbirdConfig",
    "VideoSegConfig",
    "CrossViewConfig",
    "EvaluateShared",
    "EvaluateConfig",
    "Config",
    "Protocol",
    "PROTOCOLS",
    "CROSS_VIEW",
    "cross_view_available",
    "labelled_reference_on",
    "to_dict",
    "config_hash",
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
    default: Any = dataclasses.MISSING,
) -> Any:
    """A required dataclass field with its documentation and numeric bounds (inclusive ge/le, exclusive gt/lt).

    `default`: the value when Python code builds the dataclass without it (a key added later, so that existing
    callers keep working); config.yaml must still set the key.
    """
    return field(
        default=default,
        metadata={"doc": doc, "ge": ge, "le": le, "gt": gt, "lt": lt, "allow_empty": allow_empty},
    )


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
    shape: Literal["random", "disk", "square", "triangle", "ellipse", "plus", "star"] = _field(
        "Outline of the turning objects (faces > 1): random = drawn per instance among the six shapes; a shape "
        "name = every object has it, so that no outline tells one instance from another.",
        default="random",
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
    points: Literal["uniform", "moving"] = _field(
        "How the N points are drawn among those inside the crop: uniform (original) or moving (first the points "
        "that move against the clip's median motion by more than moving_threshold)."
    )
    moving_threshold: float = _field(
        "With points: moving, the least distance in input pixels a point moves on its own (about half a patch).",
        ge=0.0,
    )
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


Control = Literal["shuffled", "static", "transposed"]
INITS = ("random", "timm", "pretrain")
CONTROLS: tuple[str, ...] = typing.get_args(Control)
# A training run: the tracked run (`mosic`, the tracker's tracks) or a control; with its seed, what a run adds to the
# train section (mosic.config.jobs.RunSpec), so these keys of a run are never train keys of config.yaml.
Variant = Literal["mosic", "shuffled", "static", "transposed"]
RUN_KEYS = ("seed", "track_source", "transposed_gather")


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

    seeds: list[int] = _field("Seeds; every variant is trained once per seed (the seed of the run).", ge=0)
    controls: list[Control] = _field(
        "Controls trained beside the tracked run with the same settings: shuffled (targets from random other "
        "points), static (points stay where they were at frame 0), transposed (features read at (x, y) as "
        "(row, col), the original code's bug). [] = none.",
        allow_empty=True,
    )
    labelled_steps: int = _field(
        "Steps of the labelled reference evaluated beside the runs (model labelled_s<first seed>): the "
        "image-pretrained start trained further with class labels on images whose objects show every face, a "
        "calibration of how far each protocol can move when labels say outright what motion has to discover. "
        "0 = none; made only where it applies (labelled_reference_on: train.init pretrain, synthetic.faces > 1).",
        ge=0,
        le=1_000_000,
        default=0,
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
class EvaluateShared:
    """The evaluate keys every protocol uses: all of ``evaluate:`` but the protocol sections (what each evaluation
    job receives beside its own protocol's settings, :class:`mosic.config.jobs.EvaluateJob`)."""

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


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig(EvaluateShared):
    """Dense-feature evaluation of the starting backbone and every trained checkpoint: the shared keys, then one
    section per protocol (:data:`PROTOCOLS`)."""

    linear: LinearConfig = _field("Linear probe.")
    clustering: ClusteringConfig = _field("Clustering.")
    hummingbird: HummingbirdConfig = _field("Hummingbird retrieval.")
    videoseg: VideoSegConfig = _field("Video segmentation.")
    hummingbird_xview: CrossViewConfig = _field(
        "Cross-view Hummingbird: memory of one face, queries of another (hummingbird settings)."
    )
    clustering_xview: CrossViewConfig = _field(
        "Cross-view clustering: K = classes over every face of each val image (clustering settings)."
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


Protocol = Literal["linear", "clustering", "hummingbird", "videoseg", "hummingbird_xview", "clustering_xview"]
PROTOCOLS: tuple[str, ...] = typing.get_args(Protocol)
# Cross-view protocols and the standard protocol whose settings (config section) each one reuses.
CROSS_VIEW = {"hummingbird_xview": "hummingbird", "clustering_xview": "clustering"}


def cross_view_available(cfg: Config) -> bool:
    """Whether the image set has faces to compare: the synthetic set generated with ``synthetic.faces > 1``."""
    return cfg.evaluate.image_dataset.kind == "synthetic" and cfg.synthetic.faces > 1


def labelled_reference_on(cfg: Config) -> bool:
    """Whether the workflow makes and evaluates the labelled reference: ``runs.labelled_steps > 0`` and a start
    it can continue on every face (``train.init: pretrain``, so the synthetic set, with ``synthetic.faces > 1``);
    elsewhere the key is ignored, as a cross-view protocol's ``enabled: auto`` is."""
    return cfg.runs.labelled_steps > 0 and cfg.train.init == "pretrain" and cfg.synthetic.faces > 1


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
