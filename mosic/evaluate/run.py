"""Run one evaluation protocol for one model, and gather every result into a table with deltas and a plot.

Each protocol writes ``<out_dir>/eval/<model>/<protocol>/<dataset>.json`` (dataset = the configured kind)
holding the metrics, the model it scored, the protocol settings and the provenance record (config, mosic
version, git sha). :func:`aggregate` reads all of them into ``table.csv`` / ``table.parquet`` (one row per
model, protocol, dataset and metric, the starting backbone and each checkpoint side by side, with the delta
against the starting backbone), ``deltas.png`` (a bar chart of the deltas) and ``examples.png`` (image, ground
truth and each model's Hummingbird prediction for a few validation images).

The cross-view protocols (``hummingbird_xview``, ``clustering_xview``; :data:`mosic.config.CROSS_VIEW`) read
the per-face splits ``train_face<f>`` / ``val_face<f>`` of the synthetic image set, for every face f the set
has (:func:`mosic.evaluate.datasets.synthetic_faces`), with the settings of the standard protocol they extend;
their rows sit in the same tables.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from mosic.config import CROSS_VIEW, PROTOCOLS, EvaluateJob, split_run_name, to_dict
from mosic.evaluate.datasets import image_dataset, synthetic_faces, video_dataset
from mosic.evaluate.features import FeatureExtractor, load_model
from mosic.fsutil import write_text_atomic

logger = logging.getLogger(__name__)

__all__ = ["PROTOCOLS", "run_protocol", "aggregate", "plot_deltas"]

EXAMPLES = 4  # val images whose Hummingbird predictions are kept for the examples figure

# Hummingbird's reference code normalises with std 0.255 (a typo for 0.225); parity mode reproduces it.
_HB_PARITY_STD = (0.229, 0.224, 0.255)


def _device(device: Literal["auto", "cpu", "cuda"]) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def run_protocol(
    job: EvaluateJob,
    *,
    model: str,
    model_name: str,
    image_root: str,
    video_root: str,
    out_path: str | Path,
    provenance: dict[str, Any],
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Score one model with one protocol and write the JSON result atomically.

    Args:
        job: the protocol (``linear``, ``clustering``, ``hummingbird``, ``videoseg``, ``hummingbird_xview`` or
            ``clustering_xview``; the last two: synthetic image set with faces > 1 only), the shared evaluation
            settings and the protocol's own (:func:`mosic.config.evaluate_job`).
        model: an exported backbone (``.safetensors``) or a timm model name.
        model_name: the label of the model in the results (``start``, ``main``, ...).
        image_root: root of the image segmentation set (the synthetic ``voc/`` folder for the demo).
        video_root: root of the video segmentation set.
        out_path: the result file.
        provenance: the record stored with the result.
        cache_dir: where features are cached per (model, dataset, resolution).
    """
    # A cross-view protocol runs with the settings of the standard protocol it extends (job.settings).
    protocol, cfg, settings = job.protocol, job.shared, job.settings
    device = _device(cfg.device)
    base = CROSS_VIEW.get(protocol, protocol)
    size = settings.input_size if base in ("hummingbird", "videoseg") else cfg.input_size
    backbone = load_model(model, input_size=size)
    std = _HB_PARITY_STD if base == "hummingbird" and cfg.parity else (0.229, 0.224, 0.225)
    extractor = FeatureExtractor(backbone, input_size=size, std=std, device=device, batch_size=cfg.batch_size)
    cache = Path(cache_dir) / model_name if cache_dir is not None else None
    ds_cfg = cfg.image_dataset
    if protocol == "linear":
        from mosic.evaluate.linear import linear_probe

        train = image_dataset(ds_cfg.kind, image_root, ds_cfg.train_split)
        val = image_dataset(ds_cfg.kind, image_root, ds_cfg.val_split)
        metrics = linear_probe(train, val, extractor, settings, seed=cfg.seed, cache_dir=cache, parity=cfg.parity)
        dataset = val.name
    elif protocol == "clustering":
        from mosic.evaluate.clustering import overcluster

        val = image_dataset(ds_cfg.kind, image_root, ds_cfg.val_split)
        metrics = overcluster(val, extractor, settings, cache_dir=cache, parity=cfg.parity)
        dataset = val.name
    elif protocol == "hummingbird":
        from mosic.evaluate.hummingbird import hummingbird

        train = image_dataset(ds_cfg.kind, image_root, ds_cfg.train_split)
        val = image_dataset(ds_cfg.kind, image_root, ds_cfg.val_split)
        metrics = hummingbird(train, val, extractor, settings, seed=cfg.seed, parity=cfg.parity, examples=EXAMPLES)
        dataset = val.name
    elif protocol == "videoseg":
        from mosic.evaluate.videoseg import video_segmentation

        v_cfg = cfg.video_dataset
        videos = video_dataset(v_cfg.kind, video_root, v_cfg.split)
        metrics = video_segmentation(videos, extractor, settings, seed=cfg.seed)
        dataset = videos.name
    elif protocol in CROSS_VIEW:
        faces = synthetic_faces(image_root) if ds_cfg.kind == "synthetic" else 1
        if faces < 2:
            raise ValueError(
                f"{protocol} needs the synthetic image set with faces > 1; {image_root} is {ds_cfg.kind!r} with "
                f"{faces} face(s)"
            )
        val = [image_dataset(ds_cfg.kind, image_root, f"val_face{f}") for f in range(faces)]
        if protocol == "hummingbird_xview":
            from mosic.evaluate.hummingbird import hummingbird_xview

            train = [image_dataset(ds_cfg.kind, image_root, f"train_face{f}") for f in range(faces)]
            metrics = hummingbird_xview(train, val, extractor, settings, seed=cfg.seed, parity=cfg.parity)
        else:
            from mosic.evaluate.clustering import cluster_xview

            metrics = cluster_xview(val, extractor, settings, cache_dir=cache, parity=cfg.parity)
            settings = dataclasses.replace(settings, ks=[0])
        dataset = f"{ds_cfg.kind}/" + "+".join(f"val_face{f}" for f in range(faces))
    else:
        raise ValueError(f"unknown protocol {protocol!r}; accepted: {', '.join(PROTOCOLS)}")
    result = {
        "model": model_name,
        "model_source": str(model),
        "protocol": protocol,
        "dataset": dataset,
        "input_size": size,
        "parity": cfg.parity,
        "settings": to_dict(settings),
        "metrics": _jsonable(metrics),
        "provenance": provenance,
    }
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    examples = result["metrics"].pop("examples", None)
    if examples:  # predictions of a few images, for the figure aggregate() draws
        arrays = {f"{k}_{e['index']}": np.asarray(e[k]) for e in examples for k in ("image", "gt", "pred")}
        np.savez_compressed(out_path.with_suffix(".examples.npz"), **arrays)
    write_text_atomic(out_path, json.dumps(result, indent=2))
    logger.info("%s on %s (%s): %s", protocol, dataset, model_name, _headline(protocol, result["metrics"]))
    return result


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray | torch.Tensor):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _headline(protocol: str, metrics: dict[str, Any]) -> dict[str, float]:
    """The protocol's summary numbers: mIoU, one per K for clustering, one per direction for cross-view
    Hummingbird."""
    if protocol in ("clustering", "clustering_xview"):
        return {f"miou_k{k}": float(v["miou"]) for k, v in metrics["k"].items()}
    if protocol == "hummingbird_xview":  # the mean over directions, then each (miou_face<a>_to_face<b>)
        return {k: float(v) for k, v in metrics.items() if k == "miou" or k.startswith("miou_face")}
    return {"miou": float(metrics["miou"])}


def aggregate(result_paths: list[str | Path], out_dir: str | Path, *, baseline: str = "start") -> pd.DataFrame:
    """Gather result JSONs into tables with deltas against the starting backbone of the same seed; plot them.

    Models are named ``<variant>_s<seed>`` (``start_s0``, ``mosic_s0``, ``shuffled_s1``, ...) or carry no seed.
    Writes ``table.csv`` / ``table.parquet`` (one row per model and metric), ``summary.csv`` (per variant: mean
    and standard deviation over seeds of the value and of the delta), ``deltas.png`` and ``examples.png``.

    Returns:
        The long table: ``protocol, dataset, metric, model, variant, seed, value, delta``, where delta = value −
        the value of ``<baseline>_s<seed>`` (or of ``baseline`` for models without a seed).
    """
    rows = []
    for path in result_paths:
        r = json.loads(Path(path).read_text())
        variant, seed = split_run_name(r["model"])
        for metric, value in _headline(r["protocol"], r["metrics"]).items():
            rows.append({"protocol": r["protocol"], "dataset": r["dataset"], "metric": metric, "model": r["model"],
                         "variant": variant, "seed": seed, "value": value})  # fmt: skip
    columns = ["protocol", "dataset", "metric", "model", "variant", "seed", "value"]
    table = pd.DataFrame(rows, columns=columns).astype({"seed": "Int64"})
    keys = ["protocol", "dataset", "metric"]
    # Each row's baseline: the same metric of the start of the same seed (missing seeds match each other).
    base = table.loc[table["variant"] == baseline, [*keys, "seed", "value"]].rename(columns={"value": "base"})
    table = table.merge(base, on=[*keys, "seed"], how="left")
    table["delta"] = table["value"] - table.pop("base")
    table = table.sort_values([*keys, "variant", "seed"]).reset_index(drop=True)
    summary = (
        table.groupby([*keys, "variant"], sort=True)
        .agg(
            seeds=("value", "size"),
            mean=("value", "mean"),
            std=("value", "std"),
            delta_mean=("delta", "mean"),
            delta_std=("delta", "std"),
        )
        .reset_index()
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "table.csv", index=False)
    table.to_parquet(out_dir / "table.parquet", index=False)
    summary.to_csv(out_dir / "summary.csv", index=False)
    plot_deltas(table, out_dir / "deltas.png", baseline=baseline)
    examples = {}  # model -> its Hummingbird predictions of a few images (the lowest seed's models)
    first_seed = table["seed"].min() if table["seed"].notna().any() else None
    for p in map(Path, result_paths):
        if p.with_suffix(".examples.npz").exists():
            model = json.loads(p.read_text())["model"]
            variant, seed = split_run_name(model)
            if seed is None or seed == first_seed:
                examples[variant] = p.with_suffix(".examples.npz")
    if examples:
        plot_examples(examples, out_dir / "examples.png", baseline=baseline)
    return table


def plot_deltas(table: pd.DataFrame, path: str | Path, *, baseline: str = "start") -> None:
    """Each variant's mIoU change against its starting backbone per protocol and metric: the mean over seeds
    as a bar, each seed as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    others = table[table["variant"] != baseline]
    labels = sorted({f"{p}\n{m}" for p, m in zip(others["protocol"], others["metric"], strict=True)})
    # the tracked run first, then its controls; the labelled reference (a calibration, not a run) last and hatched
    variants = sorted(others["variant"].unique(), key=lambda v: (v == "labelled", v != "mosic", v))
    fig, ax = plt.subplots(figsize=(max(4, 1.4 * len(labels) + 1), 3.4))
    width = 0.8 / max(len(variants), 1)
    for j, variant in enumerate(variants):
        sub = others[others["variant"] == variant]
        x = np.arange(len(labels)) + j * width
        per_label = [
            100 * sub.loc[(sub["protocol"] + "\n" + sub["metric"]) == lab, "delta"].to_numpy() for lab in labels
        ]
        means = [d.mean() if len(d) else np.nan for d in per_label]
        style = {"color": "0.75", "hatch": "//", "edgecolor": "0.4"} if variant == "labelled" else {}
        ax.bar(x, means, width, label=f"{variant} (reference)" if style else variant, **style)
        for xi, d in zip(x, per_label, strict=True):
            ax.plot([xi] * len(d), d, "o", color="black", markersize=2.5, zorder=3)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(labels)) + width * (len(variants) - 1) / 2, labels, fontsize=8)
    ax.set_ylabel(f"mIoU change vs {baseline} (points)")
    ax.set_title("bars: mean over seeds; dots: each seed", fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_examples(npz_by_model: dict[str, Path], path: str | Path, *, baseline: str = "start") -> None:
    """A few validation images: image, ground truth, and each model's Hummingbird prediction, one row each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted(npz_by_model, key=lambda m: (m != baseline, m))
    data = {m: np.load(npz_by_model[m]) for m in models}
    first = data[models[0]]
    indices = sorted(int(k.split("_", 1)[1]) for k in first.files if k.startswith("image_"))
    cols = 2 + len(models)
    fig, axes = plt.subplots(len(indices), cols, figsize=(2 * cols, 2 * len(indices)), squeeze=False)
    cmap = plt.get_cmap("tab20")

    def labels(a: np.ndarray) -> np.ndarray:
        return np.where(a == 255, 0.0, (a % 20 + 0.5) / 20)  # ignore pixels drawn as class 0's colour

    for r, i in enumerate(indices):
        panels = [("image", first[f"image_{i}"]), ("ground truth", first[f"gt_{i}"])]
        panels += [(m, data[m][f"pred_{i}"]) for m in models]
        for c, (title, arr) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(arr if arr.ndim == 3 else cmap(labels(arr)), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title if c < 2 else f"Hummingbird: {title}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
