"""Report figures: training curves of every run, tracking accuracy, and the evaluation tables as HTML.

Each function reads the pipeline's own files (``metrics.csv`` of each training run, ``tracking_metrics.json``,
``table.csv`` / ``summary.csv``) and writes one file; none needs a display (matplotlib's Agg backend).
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "split_run",
    "read_metrics",
    "plot_training_curves",
    "plot_tracking_metrics",
    "tracking_methods",
    "tables_html",
]

# Line styles by seed rank (seed 0 solid, the next dashed, ...).
_SEED_STYLES = ("-", "--", ":", "-.")
_SMOOTH_ABOVE = 200  # with more steps than this, the raw curve is drawn faint under a rolling mean


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def split_run(name: str) -> tuple[str, int | None]:
    """``mosic_s1`` -> (``mosic``, 1); a run name without a seed suffix -> (name, None)."""
    m = re.fullmatch(r"(.+)_s(\d+)", name)
    return (m.group(1), int(m.group(2))) if m else (name, None)


def read_metrics(paths: Mapping[str, str | Path]) -> pd.DataFrame:
    """Every run's ``metrics.csv`` in one long frame with ``run``, ``variant`` and ``seed`` columns added.

    Args:
        paths: run name (``<variant>_s<seed>``) -> its ``metrics.csv``.
    """
    frames = []
    for run, path in paths.items():
        df = pd.read_csv(path)
        variant, seed = split_run(run)
        frames.append(df.assign(run=run, variant=variant, seed=seed))
    if not frames:
        return pd.DataFrame(columns=["step", "run", "variant", "seed"])
    return pd.concat(frames, ignore_index=True)


def _variant_colours(variants: list[str]) -> dict[str, str]:
    """``mosic`` first in colour C0, then the controls in alphabetical order."""
    order = sorted(set(variants), key=lambda v: (v != "mosic", v))
    return {v: f"C{i % 10}" for i, v in enumerate(order)}


def _seed_styles(seeds: list) -> dict:
    order = sorted({s for s in seeds if s is not None and not pd.isna(s)})
    styles = {s: _SEED_STYLES[i % len(_SEED_STYLES)] for i, s in enumerate(order)}
    styles[None] = "-"
    return styles


def _plot_metric(ax, df: pd.DataFrame, column: str) -> None:
    colours = _variant_colours(list(df["variant"]))
    styles = _seed_styles(list(df["seed"]))
    for run in sorted(df["run"].unique(), key=lambda r: (split_run(r)[0] != "mosic", split_run(r))):
        sub = df[df["run"] == run].sort_values("step")
        variant, seed = split_run(run)
        x = sub["step"].to_numpy()
        y = pd.to_numeric(sub[column], errors="coerce").to_numpy(dtype=float)
        kw = {"color": colours[variant], "linestyle": styles.get(seed, "-")}
        if len(x) > _SMOOTH_ABOVE:
            window = max(2, len(x) // 50)
            ax.plot(x, y, alpha=0.2, linewidth=0.6, **kw)
            smooth = pd.Series(y).rolling(window, min_periods=1, center=True).mean().to_numpy()
            ax.plot(x, smooth, linewidth=1.4, label=run, **kw)
        else:
            ax.plot(x, y, linewidth=1.4, marker="o" if len(x) <= 30 else None, markersize=3, label=run, **kw)


def plot_training_curves(
    paths: Mapping[str, str | Path],
    loss_png: str | Path,
    entropy_png: str | Path,
    *,
    num_prototypes: int | None = None,
) -> pd.DataFrame:
    """Loss vs step and cluster-usage entropy vs step of every run, one PNG each.

    One line per run, coloured by variant (``mosic`` and the controls) with a line style per seed. Long runs
    show the raw values faintly under a centred rolling mean (window = steps / 50).

    Args:
        paths: run name -> its ``metrics.csv`` (columns ``step``, ``loss``, ``cluster_entropy``, ...).
        loss_png, entropy_png: output files.
        num_prototypes: K; when given, the loss plot marks ln K (the loss of a uniform prediction).

    Returns:
        The metrics of every run (:func:`read_metrics`).
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    df = read_metrics(paths)
    for column, path, ylabel, title in (
        ("loss", loss_png, "training loss (cross-entropy)", "MoSiC training loss"),
        (
            "cluster_entropy",
            entropy_png,
            "cluster-usage entropy (0 = one cluster, 1 = uniform)",
            "Prototype usage of the teacher's assignments",
        ),
    ):
        fig, ax = plt.subplots(figsize=(7, 4))
        _plot_metric(ax, df, column)
        if column == "loss" and num_prototypes:
            ax.axhline(math.log(num_prototypes), color="grey", linewidth=0.8, linestyle=(0, (4, 4)))
            ax.annotate(f"ln K = {math.log(num_prototypes):.2f} (uniform prediction)", (0.01, 0.02),
                        xycoords="axes fraction", fontsize=7, color="grey")  # fmt: skip
        if column == "cluster_entropy":
            ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("optimisation step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.set_title(title + ("  (faint: raw; solid: rolling mean)" if len(df) and _long(df) else ""), fontsize=10)
        ax.grid(alpha=0.3)
        if len(df):
            ax.legend(fontsize=8, title="run (colour: variant, style: seed)", title_fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return df


def _long(df: pd.DataFrame) -> bool:
    return bool((df.groupby("run").size() > _SMOOTH_ABOVE).any())


def tracking_methods(metrics: Mapping) -> dict[str, dict[str, float]]:
    """The scored track sets of a ``tracking_metrics.json`` record: name -> its metrics (``delta_avg``, ...)."""
    return {k: v for k, v in metrics.items() if isinstance(v, dict) and "delta_avg" in v}


def plot_tracking_metrics(json_path: str | Path, png: str | Path) -> dict[str, dict[str, float]]:
    """Tracking accuracy against the exact ground truth (TAP-Vid metrics), two panels.

    Left: position accuracy δ (solid) and Jaccard (dashed) at each pixel threshold, one colour per track set
    (the cached tracks, the static baseline, the ground-truth ceiling). Right: the summary numbers δ_avg,
    average Jaccard and occlusion accuracy as grouped bars.

    Returns:
        The plotted metrics per track set.
    """
    plt = _pyplot()
    record = json.loads(Path(json_path).read_text())
    methods = tracking_methods(record)
    if not methods:
        raise ValueError(f"{json_path}: no track set with TAP-Vid metrics (a dict holding 'delta_avg')")
    order = sorted(methods, key=lambda m: ({"cached": 0, "static": 1, "ground_truth": 2}.get(m, 3), m))
    thresholds = sorted({int(k.split("_")[1]) for m in methods.values() for k in m if re.fullmatch(r"delta_\d+", k)})
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [1.2, 1]})
    for i, name in enumerate(order):
        m = methods[name]
        colour = f"C{i}"
        if thresholds:
            ax0.plot(thresholds, [m.get(f"delta_{t}", np.nan) for t in thresholds], "-o", color=colour,
                     markersize=4, label=f"{name}: δ (position)")  # fmt: skip
            ax0.plot(thresholds, [m.get(f"jaccard_{t}", np.nan) for t in thresholds], "--s", color=colour,
                     markersize=3, label=f"{name}: Jaccard")  # fmt: skip
    if thresholds:
        ax0.set_xscale("log", base=2)
        ax0.set_xticks(thresholds, [str(t) for t in thresholds])
    ax0.set_ylim(-0.02, 1.05)
    ax0.set_xlabel("threshold (pixels at 256 × 256)")
    ax0.set_ylabel("fraction")
    ax0.set_title("accuracy at each threshold", fontsize=10)
    ax0.grid(alpha=0.3)
    ax0.legend(fontsize=7)

    summary = [("delta_avg", "δ_avg"), ("average_jaccard", "average Jaccard"), ("occlusion_accuracy", "occlusion acc.")]
    width = 0.8 / len(order)
    x = np.arange(len(summary))
    for i, name in enumerate(order):
        vals = [methods[name].get(k, np.nan) for k, _ in summary]
        bars = ax1.bar(x + i * width, vals, width, color=f"C{i}", label=name)
        ax1.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
    ax1.set_xticks(x + width * (len(order) - 1) / 2, [label for _, label in summary], fontsize=8)
    ax1.set_ylim(0, 1.3)
    ax1.set_yticks(np.linspace(0, 1, 6))
    ax1.set_title("summary (higher is better)", fontsize=10)
    ax1.legend(fontsize=7, loc="upper center", ncol=len(order))
    n_clips, n_frames, n_points = (record.get(k) for k in ("clips", "frames_per_clip", "points_per_clip"))
    tracker = (record.get("tracker") or {}).get("name", "?")
    fig.suptitle(f"tracker {tracker}: {n_clips} clips × {n_frames} frames × {n_points} points", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return {name: methods[name] for name in order}


def tables_html(tables: Mapping[str, str | Path], *, title: str = "Evaluation", float_digits: int = 4) -> str:
    """A standalone HTML page showing CSV tables (e.g. ``summary.csv`` and ``table.csv``), one section each.

    Args:
        tables: section heading -> CSV path.
        title: the page title.
        float_digits: decimals shown for floats.
    """
    style = (
        "body{font-family:sans-serif;font-size:13px;margin:1em}"
        "table{border-collapse:collapse;margin-bottom:2em}"
        "th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        "th{background:#f0f0f0}tr:nth-child(even){background:#fafafa}"
    )
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"]  # fmt: skip
    for heading, path in tables.items():
        df = pd.read_csv(path)
        parts.append(f"<h2>{html.escape(heading)}</h2><p><code>{html.escape(Path(path).name)}</code>: "
                     f"{len(df)} rows</p>")  # fmt: skip
        parts.append(df.to_html(index=False, float_format=lambda v: f"{v:.{float_digits}f}", na_rep="", border=0))
    parts.append("</body></html>")
    return "\n".join(parts)
