"""CoTracker3 clips/s at batch 1 against larger batches (:meth:`CoTracker3Tracker.track_batch`, random weights).

The same ``--clips`` clips (T = ``--frames`` random uint8 frames at ``--size``², a ``--grid`` x ``--grid`` query
grid, the adapter's hidden 6x6 support grid on top) are tracked at every ``--batch-sizes`` value: one untimed
warm-up batch each, then ``--runs`` timed passes over all clips, interleaved (one pass of each batch size per
round) so that load from other work hits all alike. A pass ends with the tracks on the host, so it includes the
upload of the uint8 clips, the resize to the model canvas and the download. Reported per batch size: clips/s and
ms per clip (median over passes, with min and max), the peak CUDA memory, and how far its tracks are from batch
1's (max |difference| in pixels; share of equal visibility flags). Random weights do not change the cost: the
model always runs the same operations (``shared/reference/cotracker.md`` section 2).

Needs the ``cotracker`` package (not on PyPI; see the README). Without it the script writes a result that says
so and exits 0, so ``benchmarks/gpu.sh`` skips it cleanly.

Writes ``benchmarks/results/cotracker_batch_<device>[_<tag>].json`` and ``.md``.

Usage: ``python benchmarks/cotracker_batch.py --device cuda [--batch-sizes 1 8 16 32] [--clips 64]`` (the
measured baseline: 144 ms per clip on an H200 at batch 1, 12 x 224², 1,024 points, fp32); a small CPU check:
``--device cpu --batch-sizes 1 4 --clips 4 --model-resolution 96 128 --grid 16``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine import machine_info

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from mosic.geometry import grid_queries  # noqa: E402
from mosic.tracking.cotracker import CoTracker3Tracker  # noqa: E402

TARGET_CLIPS_PER_S = 40.0  # on an H200, 12 x 224², 1,024 points


def build_tracker(args: argparse.Namespace, folder: Path) -> CoTracker3Tracker:
    """The adapter on upstream's offline model with random weights (saved to `folder` and loaded back)."""
    from cotracker.predictor import CoTrackerPredictor

    with torch.random.fork_rng():
        model = CoTrackerPredictor(checkpoint=None, offline=True, v2=False, window_len=60).model
    path = folder / "random_offline.pth"
    torch.save(model.state_dict(), path)
    return CoTracker3Tracker(
        checkpoint=path,
        device=args.device,
        autocast=args.autocast,
        model_resolution=args.model_resolution,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    setup = {
        "device": args.device,
        "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
        "clips": args.clips,
        "frames": args.frames,
        "size": args.size,
        "points": args.grid**2,
        "model_resolution": args.model_resolution or [384, 512],
        "autocast_bf16": args.autocast,
        "runs": args.runs,
        "threads": torch.get_num_threads(),
    }
    versions = {"torch": torch.__version__}
    if importlib.util.find_spec("cotracker") is None:
        return {
            "installed": False,
            "note": "the cotracker package is not installed",
            "setup": setup,
            "machine": machine_info(**versions),
        }
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 256, (args.frames, args.size, args.size, 3), dtype=np.uint8) for _ in range(args.clips)]
    queries = grid_queries(args.size, args.size, args.grid)
    with tempfile.TemporaryDirectory(prefix="mosic-cotracker-batch-") as folder:
        tracker = build_tracker(args, Path(folder))

    def one_pass(batch_size: int, count: int | None = None) -> tuple[float, list]:
        tracker.batch_size = batch_size
        start = time.perf_counter()
        results = tracker.track_batch(clips[:count], queries)  # ends with the tracks on the host
        return time.perf_counter() - start, results

    times: dict[int, list[float]] = {b: [] for b in args.batch_sizes}
    peak: dict[int, float | None] = {}
    results: dict[int, list] = {}
    for b in args.batch_sizes:  # warm-up (kernels, allocator) and peak memory of one batch
        if args.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        one_pass(b, count=b)
        peak[b] = round(torch.cuda.max_memory_allocated() / 2**30, 2) if args.device == "cuda" else None
    for _ in range(args.runs):
        for b in args.batch_sizes:
            seconds, results[b] = one_pass(b)
            times[b].append(seconds)
    reference = results[args.batch_sizes[0]]
    rows = []
    for b in args.batch_sizes:
        per_clip = [t / args.clips for t in times[b]]
        rows.append(
            {
                "batch_size": b,
                "clips_per_s": round(args.clips / statistics.median(times[b]), 2),
                "ms_per_clip_median": round(1000 * statistics.median(per_clip), 1),
                "ms_per_clip_min": round(1000 * min(per_clip), 1),
                "ms_per_clip_max": round(1000 * max(per_clip), 1),
                "peak_cuda_gib": peak[b],
                "max_track_diff_px": float(
                    max(np.abs(r.tracks - q.tracks).max() for r, q in zip(results[b], reference, strict=True))
                ),
                "visibility_agreement": float(
                    np.mean([(r.visibility == q.visibility).mean() for r, q in zip(results[b], reference, strict=True)])
                ),
            }
        )
    base = rows[0]["clips_per_s"]
    for row in rows:
        row["speedup_vs_first"] = round(row["clips_per_s"] / base, 2)
    return {"installed": True, "setup": setup, "rows": rows, "machine": machine_info(**versions)}


def markdown(res: dict[str, Any]) -> str:
    s = res["setup"]
    lines = [f"# CoTracker3 batched tracking (`benchmarks/cotracker_batch.py`, {s['device']})", ""]
    if not res["installed"]:
        return "\n".join(lines + [f"Not measured: {res['note']}.", ""])
    canvas = "x".join(map(str, s["model_resolution"]))
    lines += [
        f"{s['clips']} clips of {s['frames']} x {s['size']}², {s['points']} points (+ 36 support points), model "
        f"canvas {canvas}, random weights, {'bf16 autocast' if s['autocast_bf16'] else 'fp32'}; "
        f"{s['gpu'] or 'CPU, ' + str(s['threads']) + ' threads'}; median of {s['runs']} passes.",
        "",
        "| batch size | clips/s | ms per clip (min-max) | speed-up | peak CUDA GiB | max track diff vs first (px) "
        "| visibility agreement |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        peak = "-" if r["peak_cuda_gib"] is None else f"{r['peak_cuda_gib']:.2f}"
        lines.append(
            f"| {r['batch_size']} | {r['clips_per_s']:.2f} | {r['ms_per_clip_median']:.1f} "
            f"({r['ms_per_clip_min']:.1f}-{r['ms_per_clip_max']:.1f}) | {r['speedup_vs_first']:.2f}x | {peak} "
            f"| {r['max_track_diff_px']:.2e} | {r['visibility_agreement']:.4f} |"
        )
    if s["device"] == "cuda":
        best = max(res["rows"], key=lambda r: r["clips_per_s"])
        met = "met" if best["clips_per_s"] >= TARGET_CLIPS_PER_S else "not met"
        lines += ["", f"Target {TARGET_CLIPS_PER_S:.0f} clips/s (H200, 12 x 224², 1,024 points): {met} "
                      f"({best['clips_per_s']:.1f} clips/s at batch {best['batch_size']})."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16], help="first = the reference")
    parser.add_argument("--clips", type=int, default=32, help="clips tracked per timed pass")
    parser.add_argument("--frames", type=int, default=12, help="T, frames per clip")
    parser.add_argument("--size", type=int, default=224, help="clip height and width in pixels")
    parser.add_argument("--grid", type=int, default=32, help="G: G x G query points")
    parser.add_argument("--model-resolution", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="model canvas (multiples of 4); default: the trained 384 512")  # fmt: skip
    parser.add_argument("--autocast", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--runs", type=int, default=3, help="timed passes per batch size")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (CPU)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="output folder")
    parser.add_argument("--tag", default="", help="suffix of the result files (cotracker_batch_<device>[_<tag>])")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available")
    if min(args.batch_sizes) < 1 or args.clips < 1 or args.runs < 1:
        parser.error("--batch-sizes, --clips and --runs must be >= 1")
    torch.set_num_threads(args.threads)
    res = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"cotracker_batch_{args.device}" + (f"_{args.tag}" if args.tag else "")
    (args.out / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
