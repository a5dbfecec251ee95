"""Clustering-protocol benchmark: K-means time per K (faiss vs the torch fallback) and feature-extraction speed.

K-means: N = 200 images x 32 x 32 tokens = 204,800 vectors of 50 dims, the PCA output of the overclustering
protocol at 448 px with a /14 backbone (``reference/eval_spec.md`` §4). The vectors come from a synthetic
mixture of 256 Gaussian components in 384 dims (ViT-S width) passed through
:func:`mosic.evaluate.kmeans.standardize_pca`, whose time is reported too. For each K in (21, 100, 300, 500),
:func:`mosic.evaluate.kmeans.kmeans` runs with ``ITERS`` = 10 iterations and 1 restart per call (faiss trains
on min(N, 256·K) points, then assigns all N), median of 3 calls per backend, backends interleaved. The NeCo
recipe (100 iterations x 5 restarts) is estimated as 50 x the training part plus one assignment pass, the
training part being the call minus a separately timed assignment of all N points
(:func:`mosic.evaluate.kmeans.assign`). Agreement between the backends (same seeded subsample and init):
largest centroid difference after matching, and the fraction of equal labels under that matching.

Feature extraction: :class:`mosic.evaluate.features.FeatureExtractor` images/s on random uint8 images at the
model's input size (no resize), median of 3 passes after a warm-up batch: timm ``test_vit`` at 128 px and
``vit_small_patch14_dinov2`` (random weights) at 224 px.

Timings are on whatever CPU this runs on; on a machine shared with other jobs they vary by tens of percent
(the load average before and after is recorded). Writes ``benchmarks/results/clustering.json`` and
``clustering.md``; takes 1-3 minutes on 2 cores.

Usage: ``python benchmarks/clustering.py [--out benchmarks/results]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from machine import machine_info
from scipy.optimize import linear_sum_assignment

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mosic.evaluate.features import FeatureExtractor, load_model  # noqa: E402
from mosic.evaluate.kmeans import assign, faiss_available, kmeans, standardize_pca  # noqa: E402

IMAGES, GRID, WIDTH, PCA_DIM = 200, 32, 384, 50
KS = (21, 100, 300, 500)
ITERS, RESTARTS, RUNS = 10, 1, 3
RECIPE_ITERS, RECIPE_RESTARTS = 100, 5
EXTRACTION = (("test_vit", 128, 64, 32), ("vit_small_patch14_dinov2", 224, 8, 8))  # model, size, images, batch


def synthetic_features(seed: int = 0) -> np.ndarray:
    """[IMAGES·GRID², WIDTH] float32: a 256-component Gaussian mixture with uneven scales."""
    rng = np.random.default_rng(seed)
    n = IMAGES * GRID * GRID
    centres = rng.standard_normal((256, WIDTH)).astype(np.float32) * rng.uniform(0.5, 3, (256, 1)).astype(np.float32)
    x = centres[rng.integers(0, 256, n)]
    x += rng.standard_normal((n, WIDTH), dtype=np.float32)
    return x


def agreement(cf: np.ndarray, lf: np.ndarray, ct: np.ndarray, lt: np.ndarray) -> tuple[float, float]:
    cost = ((cf[:, None].astype(np.float64) - ct[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    order = np.empty(len(cols), dtype=np.int64)
    order[rows] = cols
    return float(np.abs(cf[rows] - ct[cols]).max()), float((order[lf] == lt).mean())


def bench_kmeans(x: np.ndarray) -> list[dict]:
    backends = [False, True] if faiss_available() else [False]
    rows = []
    for k in KS:
        times: dict[bool, list[float]] = {b: [] for b in backends}
        results = {}
        for _ in range(RUNS):
            for use_faiss in backends:
                t0 = time.perf_counter()
                out = kmeans(x, k, iters=ITERS, restarts=RESTARTS, seed=0, use_faiss=use_faiss)
                times[use_faiss].append(time.perf_counter() - t0)
                results[use_faiss] = out
        t0 = time.perf_counter()
        assign(x, results[False][0])
        t_assign = time.perf_counter() - t0
        row = {"k": k, "train_points": min(len(x), 256 * k), "assign_all_s": t_assign}
        for use_faiss in backends:
            name = "faiss" if use_faiss else "torch"
            med = statistics.median(times[use_faiss])
            train = max(med - t_assign, 0.0)
            scale = (RECIPE_ITERS * RECIPE_RESTARTS) / (ITERS * RESTARTS)
            row[f"{name}_s_median"] = med
            row[f"{name}_s_runs"] = times[use_faiss]
            row[f"{name}_recipe_s_estimate"] = train * scale + t_assign
        if True in backends:
            gap, agree = agreement(*results[True], *results[False])
            row["centroid_gap_max"] = gap
            row["label_agreement"] = agree
        rows.append(row)
        logging.info("K=%d: %s", k, {key: v for key, v in row.items() if not key.endswith("_runs")})
    return rows


def bench_extraction() -> list[dict]:
    rows = []
    for name, size, n, batch in EXTRACTION:
        extractor = FeatureExtractor(load_model(name, input_size=size), input_size=size, batch_size=batch)
        images = np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        extractor(images[:batch])  # warm-up
        times = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            feats = extractor(images)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        rows.append(
            {
                "model": name,
                "input_size": size,
                "grid": extractor.grid,
                "dim": extractor.dim,
                "images": n,
                "batch_size": batch,
                "images_per_s": n / med,
                "s_runs": times,
                "output_shape": list(feats.shape),
            }
        )
        logging.info("%s @ %d: %.1f images/s", name, size, n / med)
    return rows


def write_markdown(res: dict, path: Path) -> None:
    m = res["machine"]
    has_faiss = res["faiss_version"] is not None
    lines = [
        "# Clustering benchmark (`benchmarks/clustering.py`)",
        "",
        f"K-means on N = {res['vectors']:,} vectors x {PCA_DIM} dims ({IMAGES} images x {GRID}x{GRID} tokens, the "
        f"PCA output of a synthetic 384-d mixture; standardise + PCA took {res['pca_s']:.1f} s). Each call: "
        f"{ITERS} iterations, {RESTARTS} restart, seed 0; median of {RUNS} calls, backends interleaved. "
        f"*Recipe est.* = NeCo's {RECIPE_ITERS} iterations x {RECIPE_RESTARTS} restarts, estimated as "
        f"{RECIPE_ITERS * RECIPE_RESTARTS // (ITERS * RESTARTS)} x (call - assignment of all N) + one assignment.",
        "",
    ]
    head = "| K | train points | torch s | "
    sep = "|---:|---:|---:|"
    if has_faiss:
        head += "faiss s | torch / faiss | recipe est. torch s | recipe est. faiss s | centroid gap | labels equal |"
        sep += "---:|---:|---:|---:|---:|---:|"
    else:
        head += "recipe est. torch s |"
        sep += "---:|"
    lines += [head, sep]
    for r in res["kmeans"]:
        row = f"| {r['k']} | {r['train_points']:,} | {r['torch_s_median']:.2f} | "
        if has_faiss:
            row += (
                f"{r['faiss_s_median']:.2f} | {r['torch_s_median'] / r['faiss_s_median']:.2f} | "
                f"{r['torch_recipe_s_estimate']:.0f} | {r['faiss_recipe_s_estimate']:.0f} | "
                f"{r['centroid_gap_max']:.1e} | {100 * r['label_agreement']:.2f}% |"
            )
        else:
            row += f"{r['torch_recipe_s_estimate']:.0f} |"
        lines.append(row)
    lines += [
        "",
        "*Centroid gap* / *labels equal*: faiss vs torch from the same seeded subsample and init, after matching "
        "centroids one-to-one (a nonzero gap comes from float rounding flipping near-equidistant points, after "
        "which the two Lloyd trajectories drift apart).",
        "",
        "## Feature extraction (`FeatureExtractor`, CPU, float32, median of 3 passes)",
        "",
        "| model | input | tokens | D | images | batch | images/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["extraction"]:
        lines.append(
            f"| {r['model']} | {r['input_size']} | {r['grid']}x{r['grid']} | {r['dim']} | {r['images']} | "
            f"{r['batch_size']} | {r['images_per_s']:.1f} |"
        )
    lines += [
        "",
        f"Machine: {m['cpu_count']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, {m['platform']}; Python "
        f"{m['python']}, torch {m['torch']}, faiss {res['faiss_version'] or 'not installed'}; torch threads "
        f"{res['torch_threads']}. Load average before / after: {res['load_before']} / {res['load_after']} "
        f"(a shared machine: timings vary by tens of percent). Total benchmark time {res['total_s']:.0f} s.",
        "",
    ]
    path.write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    t_start = time.perf_counter()
    load_before = [round(v, 2) for v in os.getloadavg()]
    raw = synthetic_features()
    t0 = time.perf_counter()
    x = standardize_pca(raw, PCA_DIM)
    pca_s = time.perf_counter() - t0
    del raw
    rows = bench_kmeans(x)
    extraction = bench_extraction()
    faiss_version = None
    if faiss_available():
        import faiss

        faiss_version = faiss.__version__
    res = {
        "vectors": len(x),
        "pca_dim": PCA_DIM,
        "pca_input_width": WIDTH,
        "pca_s": pca_s,
        "iters": ITERS,
        "restarts": RESTARTS,
        "runs": RUNS,
        "kmeans": rows,
        "extraction": extraction,
        "faiss_version": faiss_version,
        "torch_threads": torch.get_num_threads(),
        "load_before": load_before,
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "machine": machine_info(torch=torch.__version__, numpy=np.__version__, faiss=faiss_version),
    }
    res["total_s"] = time.perf_counter() - t_start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "clustering.json").write_text(json.dumps(res, indent=2) + "\n")
    write_markdown(res, args.out / "clustering.md")
    print((args.out / "clustering.md").read_text())


if __name__ == "__main__":
    main()
