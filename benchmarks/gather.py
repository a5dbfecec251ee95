"""Track-gather benchmark: our patch-grid gather against the original upsample-to-224²-then-index.

Shapes are the published ViT-S/14 run per GPU (``reference/mosic_spec.md`` §2.4, §9 item 11, §10): M = B·T = 96
frames (8 clips x 12), S = 16, D = 384, N = 256 tracks, input 224. Each method runs forward + backward (an
upstream gradient of ones) on float32 tokens that require grad:

- ``ours nearest``: :func:`mosic.model.gather.gather_tracks` (index the patch grid; bit-identical to the
  original, see ``tests/model/test_gather.py``);
- ``ours bilinear``: the same with ``mode="bilinear"`` (``F.grid_sample``), for reference;
- ``original nearest``: the original code's path — per frame ``F.interpolate(nearest)`` of ``[1, D, S, S]`` to
  ``[1, D, 224, 224]`` in a Python loop, permute, ``torch.stack`` into ``[M, 224, 224, D]``, index at the
  rounded, clamped track positions.

Memory, two ways:

1. analytic: bytes of the largest intermediate tensor each method builds (original: one ``[M, 224, 224, D]``
   float32 map, built twice — the per-frame list and its stacked copy — and once more as its gradient);
2. measured: on CUDA the rise of ``torch.cuda.max_memory_allocated`` over the memory held before the call;
   on CPU the rise of the process's peak resident set size (``VmHWM`` after resetting it through
   ``/proc/self/clear_refs``; ``ru_maxrss`` where that is not allowed) over the resident size before the call,
   each measurement in a fresh subprocess so no allocator cache hides it. Both include the output and the
   tokens' gradient (37.7 MB each at full size), which every method needs; the inputs and the upstream
   gradient exist before the call and are not counted.

The original at M = 96 needs about 15–22 GB, more than this benchmark may take on a shared CPU box, so on CPU it
runs at M = 2, 4 and 8 frames and is extrapolated to 96 (its memory and time are linear in M: memory by a
linear fit, time as the per-frame cost fitted through the origin; the table shows the measured points). With
CUDA and more than 40 GiB of GPU memory it also runs at full size.

Timings: median of ``--runs`` (>= 5) runs after one warm-up round, all methods interleaved round-robin;
threads = the CPUs this process may use. On a CPU shared with other jobs they vary by tens of percent between
runs of the script; the memory figures do not.

The original is timed with contiguous ``[1, D, S, S]`` inputs to ``F.interpolate`` (the cheaper layout), so
its time is if anything underestimated.

Writes ``benchmarks/results/gather.json`` and ``gather.md``. Takes about a minute on 2 cores.

Usage: ``python benchmarks/gather.py [--runs 5] [--device cpu|cuda] [--out benchmarks/results]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from machine import machine_info

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mosic.model.gather import gather_tracks  # noqa: E402

M, S, D, N, SIZE = 96, 16, 384, 256, 224
CPU_ORIGINAL_FRAMES = (2, 4, 8)
F32 = 4


def original_gather(tokens: torch.Tensor, tracks: torch.Tensor) -> torch.Tensor:
    """The original code's gather (spec §2.4): tokens to [M, D, S, S]; per frame, upsample to SIZE² with
    nearest interpolation; stack as [M, SIZE, SIZE, D]; index at the rounded, clamped track position [y, x]."""
    maps = tokens.permute(0, 3, 1, 2).contiguous()  # [M, D, S, S], as the original's reshape of [M, S², D]
    upsampled = [
        F.interpolate(maps[i : i + 1], size=(SIZE, SIZE), mode="nearest")[0].permute(1, 2, 0)
        for i in range(tokens.shape[0])
    ]  # M x [SIZE, SIZE, D] (views of [D, SIZE, SIZE] maps)
    features = torch.stack(upsampled)  # [M, SIZE, SIZE, D]
    xy = tracks.clamp(0, SIZE - 1).round().long()
    return features[torch.arange(tokens.shape[0], device=tokens.device)[:, None], xy[..., 1], xy[..., 0]]


METHODS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "ours nearest": lambda tok, trk: gather_tracks(tok, trk, input_size=SIZE, mode="nearest"),
    "ours bilinear": lambda tok, trk: gather_tracks(tok, trk, input_size=SIZE, mode="bilinear"),
    "original nearest": original_gather,
}


def analytic_bytes(method: str, frames: int) -> dict[str, int]:
    """Largest intermediate tensor, and a lower bound of the extra peak (what must be alive at once)."""
    io = frames * N * D * F32  # the output; the tokens' gradient is the same size here (N = S²)
    if method == "original nearest":
        big = frames * SIZE * SIZE * D * F32
        return {"largest_intermediate": big, "peak_lower_bound": 2 * big + io}  # list + stacked copy + output
    return {"largest_intermediate": io, "peak_lower_bound": 2 * io}  # output + tokens' gradient


def make_inputs(frames: int, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(frames, S, S, D, generator=g).to(device).requires_grad_(True)
    tracks = (torch.rand(frames, N, 2, generator=g) * (SIZE + 20) - 10).to(device)  # some outside the frame
    upstream = torch.ones(frames, N, D, device=device)
    return tokens, tracks, upstream


def step(method: str, tokens: torch.Tensor, tracks: torch.Tensor, upstream: torch.Tensor) -> None:
    tokens.grad = None
    METHODS[method](tokens, tracks).backward(upstream)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_methods(plan: list[tuple[str, int]], device: str, runs: int) -> list[list[float]]:
    """Seconds per forward + backward of each (method, frames), interleaved round-robin after a warm-up round,
    so that load from other jobs on a shared machine spreads over all methods alike."""
    inputs = [make_inputs(frames, device) for _, frames in plan]
    times: list[list[float]] = [[] for _ in plan]
    for r in range(runs + 1):
        for i, (method, _) in enumerate(plan):
            _sync(device)
            t0 = time.perf_counter()
            step(method, *inputs[i])
            _sync(device)
            if r > 0:
                times[i].append(time.perf_counter() - t0)
    return times


def _status_kb(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    assert match is not None, key
    return int(match.group(1))


def measure_memory_here(method: str, frames: int, device: str) -> dict[str, object]:
    """Peak extra memory of one forward + backward (run in a fresh process for CPU)."""
    tokens, tracks, upstream = make_inputs(frames, device)
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step(method, tokens, tracks, upstream)
        torch.cuda.synchronize()
        return {"peak_bytes": torch.cuda.max_memory_allocated() - base, "how": "torch.cuda.max_memory_allocated"}
    base = _status_kb("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM) to the current RSS
        how = "peak RSS (VmHWM after /proc/self/clear_refs reset)"
    except OSError:
        how = "peak RSS (ru_maxrss; an upper bound if imports peaked higher)"
    step(method, tokens, tracks, upstream)
    peak = _status_kb("VmHWM") if how.startswith("peak RSS (VmHWM") else resource.getrusage(resource.RUSAGE_SELF)[2]
    return {"peak_bytes": (peak - base) * 1024, "how": how}


def measure_memory(method: str, frames: int, device: str) -> dict[str, object]:
    if device == "cuda":
        torch.cuda.empty_cache()
        return measure_memory_here(method, frames, device)
    cmd = [sys.executable, __file__, "--_memory", method, str(frames)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope and intercept."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx


def run(device: str, runs: int) -> dict[str, object]:
    rows = []
    plan = [("ours nearest", M), ("ours bilinear", M)]
    if device == "cuda" and torch.cuda.get_device_properties(0).total_memory > 40 * 2**30:
        plan.append(("original nearest", M))
    plan += [("original nearest", f) for f in CPU_ORIGINAL_FRAMES]
    for (method, frames), times in zip(plan, time_methods(plan, device, runs), strict=True):
        mem = measure_memory(method, frames, device)
        rows.append(
            {
                "method": method,
                "frames": frames,
                "extrapolated": False,
                "time_ms_median": 1e3 * statistics.median(times),
                "time_ms_runs": [1e3 * t for t in times],
                "peak_bytes_measured": mem["peak_bytes"],
                "memory_measured_by": mem["how"],
                **{f"{k}_analytic": v for k, v in analytic_bytes(method, frames).items()},
            }
        )
    if not any(r["method"] == "original nearest" and r["frames"] == M for r in rows):
        pts = [r for r in rows if r["method"] == "original nearest"]
        frames = [float(r["frames"]) for r in pts]
        # Time: least squares through the origin (weighted to the largest run; timings on a shared machine
        # are too noisy for an intercept). Memory: ordinary least squares (the points lie on a line).
        t_per_frame = sum(f * r["time_ms_median"] for f, r in zip(frames, pts, strict=True)) / sum(
            f * f for f in frames
        )
        m_slope, m_icpt = linear_fit(frames, [float(r["peak_bytes_measured"]) for r in pts])
        rows.append(
            {
                "method": "original nearest",
                "frames": M,
                "extrapolated": True,
                "extrapolated_from_frames": list(CPU_ORIGINAL_FRAMES),
                "time_ms_median": t_per_frame * M,
                "peak_bytes_measured": m_slope * M + m_icpt,
                "memory_measured_by": "linear fit of the measured points (time: fit through the origin)",
                **{f"{k}_analytic": v for k, v in analytic_bytes("original nearest", M).items()},
            }
        )
    ours = next(r for r in rows if r["method"] == "ours nearest")
    orig = next(r for r in rows if r["method"] == "original nearest" and r["frames"] == M)
    return {
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "runs": runs,
        "rows": rows,
        "summary": {
            "memory_ratio_measured": orig["peak_bytes_measured"] / ours["peak_bytes_measured"],
            "memory_ratio_largest_intermediate": orig["largest_intermediate_analytic"]
            / ours["largest_intermediate_analytic"],
            "speedup": orig["time_ms_median"] / ours["time_ms_median"],
            "original_extrapolated": bool(orig["extrapolated"]),
        },
    }


def _mb(b: float) -> str:
    return f"{b / 1e6:,.1f}"


def render(results: dict[str, object]) -> str:
    lines = [
        "# Track-gather benchmark (`benchmarks/gather.py`)",
        "",
        f"Shapes: M = B·T = {M} frames, S = {S}, D = {D}, N = {N} tracks, input {SIZE} (ViT-S/14, 8 clips x 12 "
        "frames); float32, forward + backward. *Original* = per-frame `F.interpolate(nearest)` to 224², stack, "
        "index (spec §2.4); *ours* = `gather_tracks` on the patch grid (bit-identical for nearest). Peak = extra "
        "memory over what was held before the call (tokens, tracks, upstream gradient), with the output and the "
        "tokens' gradient (37.7 MB each at 96 frames) included. MB = 10⁶ bytes.",
    ]
    for device, res in results["devices"].items():
        lines += [
            "",
            f"## {device} ({res['device_name']}, {res['threads']} threads, median of {res['runs']} runs)",
            "",
            "| method | frames | time ms | peak MB measured | largest intermediate MB (analytic) | "
            "peak lower bound MB (analytic) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in res["rows"]:
            tag = " (extrapolated)" if r["extrapolated"] else ""
            lines.append(
                f"| {r['method']}{tag} | {r['frames']} | {r['time_ms_median']:,.2f} | {_mb(r['peak_bytes_measured'])} "
                f"| {_mb(r['largest_intermediate_analytic'])} | {_mb(r['peak_lower_bound_analytic'])} |"
            )
        s = res["summary"]
        how = {r["memory_measured_by"] for r in res["rows"] if not r["extrapolated"]}
        ext = (
            f" The original at {M} frames is extrapolated from its runs at {list(CPU_ORIGINAL_FRAMES)} frames "
            f"(memory: linear fit; time: per-frame cost x {M}) because at full size it needs ~15-22 GB."
            if s["original_extrapolated"]
            else ""
        )
        lines += [
            "",
            f"At {M} frames, ours nearest vs original: **{s['memory_ratio_measured']:,.0f}x less peak memory** "
            f"(measured), {s['memory_ratio_largest_intermediate']:,.0f}x smaller largest intermediate (analytic), "
            f"**{s['speedup']:,.0f}x faster**.{ext} Memory measured by: {'; '.join(sorted(how))}.",
        ]
    info = results["machine"]
    lines += [
        "",
        f"Machine: {info['cpu_count']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB, {info['platform']}; "
        f"Python {info['python']}, torch {info['torch']}. Total benchmark time {results['total_s']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--_memory", nargs=2, metavar=("METHOD", "FRAMES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._memory:  # child process of measure_memory
        torch.set_num_threads(1)
        print(json.dumps(measure_memory_here(args._memory[0], int(args._memory[1]), "cpu")))
        return
    if args.runs < 5:
        parser.error("--runs must be at least 5")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available")
    torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())

    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "gather.json"
    # Results of the other device (e.g. a CUDA run copied here) are kept; this run replaces its own device's.
    previous = json.loads(json_path.read_text()).get("devices", {}) if json_path.exists() else {}
    res = run(args.device, args.runs)
    results = {
        "devices": {**previous, args.device: res},
        "machine": machine_info(torch=torch.__version__),
        "total_s": time.perf_counter() - t0,
    }
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "gather.md").write_text(render(results))
    print(render(results))


if __name__ == "__main__":
    main()
