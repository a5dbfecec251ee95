"""Parsing and validation: ``config.yaml`` (a plain dict) -> :class:`mosic.config.schema.Config`, every key checked
(known, present, typed, in range) and the sections checked against each other, with errors that name the full key
and what is accepted. Standard library only."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, Literal

from mosic.config.jobs import EvaluateJob, check_protocol
from mosic.config.schema import (
    CROSS_VIEW,
    INITS,
    RUN_KEYS,
    Config,
    ConfigError,
    EvaluateConfig,
    EvaluateShared,
    TrainConfig,
    cross_view_available,
)


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
                return _check_value(key, value, alternative, meta)
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


def _parse_dataclass(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Check and build `cls` from `data`, every key known, present, typed and in range."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if cls is TrainConfig:
        given = [k for k in RUN_KEYS if k in data]
        if given:
            raise ConfigError(
                f"config key '{prefix}{given[0]}' is set for each training run by the workflow (from runs.seeds and "
                "runs.controls); remove it"
            )
        if "pretrained" in data:
            raise ConfigError(
                f"config key '{prefix}pretrained' was replaced by '{prefix}init': use init: timm for pretrained: "
                "true, init: random for pretrained: false"
            )
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
    # Every size the model (its start and its checkpoints) is run at, so that a wrong one fails here, not at the
    # end of training.
    sizes = {
        "train.input_size": t.input_size,
        "evaluate.input_size": cfg.evaluate.input_size,
        "evaluate.hummingbird.input_size": cfg.evaluate.hummingbird.input_size,
        "evaluate.videoseg.input_size": cfg.evaluate.videoseg.input_size,
    }
    for key, size in sizes.items():
        if patch is not None and size % patch:
            lower, upper = max(patch, size // patch * patch), (size // patch + 1) * patch
            raise ConfigError(
                f"config key '{key}' is {size}; accepted values: a multiple of the patch size {patch} of train.model "
                f"{t.model!r}, e.g. {lower} or {upper}"
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


def section_from_dict(cls: type, data: dict[str, Any], name: str = "") -> Any:
    """Rebuild one config section from the dict a rule received in `params:` (validated again, cheaply).

    `name`: the section's key in config.yaml (``train``, ``track.lk``), which error messages name.
    """
    return _parse_dataclass(cls, dict(data), prefix=f"{name}." if name else "")


def evaluate_job_from_dict(protocol: str, data: dict[str, Any]) -> EvaluateJob:
    """Rebuild an evaluation job from its dict (:meth:`EvaluateJob.as_dict`, the evaluate rule's `params:`),
    validated again: the shared evaluate keys, the protocol's own section and, for a cross-view protocol, the
    section of the standard protocol it reuses; any other key is refused.

    Raises:
        ConfigError: naming an unknown protocol, or the first offending ``evaluate.`` key.
    """
    check_protocol(protocol)
    hints = typing.get_type_hints(EvaluateConfig)
    reused = CROSS_VIEW.get(protocol)
    own = [k for k in (protocol, reused) if k]
    for key in own:
        if key not in data:
            raise ConfigError(f"missing config key 'evaluate.{key}': the {protocol} job runs with its settings")
    sections = {k: section_from_dict(hints[k], data[k], f"evaluate.{k}") for k in own}
    shared = section_from_dict(EvaluateShared, {k: v for k, v in data.items() if k not in sections}, "evaluate")
    return EvaluateJob(protocol=protocol, shared=shared, section=sections[protocol], reused=sections.get(reused))
