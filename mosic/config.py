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
    "Config",
    "parse_config",
    "config_hash",
    "to_dict",
]


class ConfigError(ValueError):
    """A configuration value is unknown, missing, of the wrong type or out of range."""


def _field(doc: str, *, ge: float | None = None, le: float | None = None, gt: float | None = None) -> Any:
    """A required dataclass field with its documentation and numeric bounds (inclusive ge/le, exclusive gt)."""
    return field(metadata={"doc": doc, "ge": ge, "le": le, "gt": gt})


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
    num_classes: int = _field("Object classes (each a texture + shape); 5 or 6.", ge=5, le=6)
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
    num_frames: int = _field("Frames per clip (T).", ge=1, le=1024)
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


@dataclass(frozen=True, kw_only=True)
class TrackConfig:
    """Stage 1: point tracking into the Zarr cache."""

    tracker: Literal["lk", "cotracker3"] = _field("lk: CPU, no weights; cotracker3: GPU, needs the cotracker package.")
    height: int = _field("Cache resolution: frames are resized to height x width, tracked and stored.", ge=16, le=4096)
    width: int = _field("Cache width in pixels.", ge=16, le=4096)
    grid: int = _field("Query grid side G: G x G points on the first frame of each clip.", ge=1, le=256)
    on_bad_clip: Literal["skip", "fail"] = _field(
        "A clip that cannot be decoded, has constant frames or frames of different sizes: skip = log and leave it "
        "out; fail = stop the job."
    )
    threads: int = _field("CPU threads of a tracking job.", ge=1, le=256)
    lk: LKConfig = _field("Lucas-Kanade settings.")
    cotracker: CoTrackerConfig = _field("CoTracker3 settings.")


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole pipeline configuration (one section per stage)."""

    out_dir: str = _field("Directory every output goes to (relative to the working directory).")
    dataset: DatasetConfig = _field("Input corpus.")
    synthetic: SyntheticConfig = _field("Synthetic dataset generator.")
    clips: ClipsConfig = _field("Clip sampling and sharding.")
    index: IndexConfig = _field("Video probing.")
    track: TrackConfig = _field("Point tracking into the cache.")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _check_value(key: str, value: Any, tp: Any, meta: dict[str, Any]) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping of its own keys, got {value!r}")
        return _parse_dataclass(tp, value, prefix=key + ".")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"config key '{key}' is {value!r}; accepted values: {', '.join(map(repr, allowed))}")
        return value
    if origin in (types.UnionType, typing.Union):
        raise TypeError(f"unsupported annotation for {key}: {tp}")
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
    ge, le, gt = meta.get("ge"), meta.get("le"), meta.get("gt")
    if (ge is not None and value < ge) or (le is not None and value > le) or (gt is not None and value <= gt):
        lo = f"> {gt}" if gt is not None else (f">= {ge}" if ge is not None else "")
        hi = f"<= {le}" if le is not None else ""
        rng = " and ".join(p for p in (lo, hi) if p)
        raise ConfigError(f"config key '{key}' is {value!r}; accepted values: {_type_name(tp)} {rng}")
    return value


def _parse_dataclass(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown config key '{prefix}{unknown[0]}'; known keys here: {', '.join(prefix + k for k in fields)}"
        )
    missing = [k for k in fields if k not in data]
    if missing:
        f = fields[missing[0]]
        raise ConfigError(
            f"missing config key '{prefix}{missing[0]}' ({f.metadata['doc']} Accepted values: "
            f"{_type_name(hints[missing[0]])})"
        )
    values = {
        name: _check_value(prefix + name, data[name], hints[name], dict(f.metadata)) for name, f in fields.items()
    }
    return cls(**values)


def _cross_checks(cfg: Config) -> None:
    s = cfg.synthetic
    if s.min_objects > s.max_objects:
        raise ConfigError(
            f"config key 'synthetic.max_objects' is {s.max_objects}; accepted values: an integer >= "
            f"synthetic.min_objects ({s.min_objects})"
        )
    if cfg.clips.mode == "full":
        raise ConfigError(
            "config key 'clips.mode' is 'full'; accepted values: 'regular', 'uniform', 'dense' (the track cache "
            "stores clips of a fixed length, and 'full' gives one clip of every length)"
        )
    if cfg.dataset.kind != "synthetic" and not cfg.dataset.root:
        raise ConfigError(
            f"config key 'dataset.root' is empty; accepted values: a directory for kind={cfg.dataset.kind}"
        )
    if not cfg.dataset.name or "/" in cfg.dataset.name:
        raise ConfigError(
            f"config key 'dataset.name' is {cfg.dataset.name!r}; accepted values: a non-empty name without '/'"
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
    """Rebuild one config section from the dict a rule received in `params:` (validated again, cheaply)."""
    return _parse_dataclass(cls, dict(data), prefix=f"{name}." if name else "")
