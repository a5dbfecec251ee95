"""Workflow timings: the demo end to end, a no-op rerun, and the DAG build of a large configuration.

    python benchmarks/workflow.py                 # all three -> benchmarks/results/workflow.{json,md}
    python benchmarks/workflow.py --skip-demo     # only the no-op-free parts (DAG build of the large config)

1. Demo: `snakemake --cores all` on the shipped config.yaml in an empty directory (synthetic data, index, LK
   tracking, every training run, every evaluation, table, report figures). Wall time and job count.
2. No-op rerun: `snakemake --cores all` again in that directory (nothing to do), median of several runs; also
   the dry run (`-n`).
   The demo's summary.csv is copied to benchmarks/results/workflow_demo_summary.csv.
3. DAG build of a large corpus: a YouTube-VOS-layout folder of 3,500 videos (one tiny JPEG each) cut into
   64 shards, `snakemake -n` from scratch (every job pending), median of several runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from machine import machine_info
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def snakemake(workdir: Path, *args: str) -> tuple[float, str]:
    """Run snakemake in `workdir`; returns (wall seconds, combined output). Fails loudly on a non-zero exit."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    start = time.perf_counter()
    res = subprocess.run([*cmd, *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed in {workdir}:\n{(res.stdout + res.stderr)[-3000:]}")
    return elapsed, res.stdout + res.stderr


def job_count(output: str) -> int:
    """The `total` row of Snakemake's job statistics."""
    m = re.search(r"^total\s+(\d+)", output, flags=re.M)
    return int(m.group(1)) if m else 0


def fake_ytvos(root: Path, videos: int) -> None:
    """A YouTube-VOS-layout corpus of `videos` folders with one 8x8 JPEG each (enough for the DAG build)."""
    frame = Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8))
    for i in range(videos):
        folder = root / "JPEGImages" / f"video_{i:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        frame.save(folder / "00000.jpg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per timing of the quick commands")
    parser.add_argument("--videos", type=int, default=3500)
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--skip-demo", action="store_true", help="only the large-config DAG build")
    args = parser.parse_args()
    results: dict[str, object] = {"machine": machine_info(), "repeats": args.repeats}

    with tempfile.TemporaryDirectory(prefix="mosic-wf-bench-") as tmp:
        tmp = Path(tmp)
        if not args.skip_demo:
            demo = tmp / "demo"
            demo.mkdir()
            print("demo: snakemake --cores all ...", flush=True)
            wall, out = snakemake(demo, "--cores", "all")
            results["demo"] = {"wall_s": round(wall, 1), "jobs": job_count(out), "cores": os.cpu_count()}
            # The demo's evaluation summary (mean and spread over seeds of each run's delta against its start).
            RESULTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(demo / "results" / "eval" / "summary.csv", RESULTS / "workflow_demo_summary.csv")
            print(f"demo: {wall:.1f} s, {job_count(out)} jobs", flush=True)
            noop = [snakemake(demo, "--cores", "all")[0] for _ in range(args.repeats)]
            dry = [snakemake(demo, "-n", "--cores", "all")[0] for _ in range(args.repeats)]
            _, out = snakemake(demo, "-n", "--cores", "all")
            assert "Nothing to be done" in out, "the rerun after the demo is not a no-op"
            results["noop_rerun"] = {
                "median_s": round(statistics.median(noop), 2),
                "runs_s": [round(x, 2) for x in noop],
            }
            results["noop_dry_run"] = {
                "median_s": round(statistics.median(dry), 2),
                "runs_s": [round(x, 2) for x in dry],
            }
            print(f"no-op rerun: median {statistics.median(noop):.2f} s", flush=True)

        corpus = tmp / "corpus"
        fake_ytvos(corpus, args.videos)
        big = tmp / "big"
        big.mkdir()
        cfg = {
            "dataset": {"kind": "ytvos", "name": "large", "root": str(corpus), "split": ""},
            "clips": {"num_shards": args.shards},
            "train": {"init": "random"},  # the demo's pretrained start (rule pretrain) needs the synthetic set
        }
        (big / "large.yaml").write_text(yaml.safe_dump(cfg))
        dag = []
        for _ in range(args.repeats):
            wall, out = snakemake(big, "-n", "--cores", "all", "--configfile", str(big / "large.yaml"))
            dag.append(wall)
        results["dag_build_large"] = {
            "videos": args.videos,
            "shards": args.shards,
            "jobs": job_count(out),
            "median_s": round(statistics.median(dag), 2),
            "runs_s": [round(x, 2) for x in dag],
        }
        print(
            f"DAG build, {args.videos} videos / {args.shards} shards: median {statistics.median(dag):.2f} s", flush=True
        )

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "workflow.json").write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    lines = [
        "# Workflow timings",
        "",
        f"Machine: {m['cpu_count']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB.",
        "Command: `python benchmarks/workflow.py`.",
        "",
        "| what | figure | goal |",
        "|---|---|---|",
    ]
    if "demo" in results:
        d = results["demo"]
        lines.append(f"| demo end to end (`snakemake --cores all`, {d['jobs']} jobs) | {d['wall_s']} s | ≤ 900 s |")
        lines.append(f"| no-op rerun (median of {args.repeats}) | {results['noop_rerun']['median_s']} s | ≤ 5 s |")
        lines.append(f"| no-op dry run `-n` (median of {args.repeats}) | {results['noop_dry_run']['median_s']} s | |")
    g = results["dag_build_large"]
    lines.append(
        f"| DAG build, {g['videos']} videos in {g['shards']} shards, `-n` from scratch ({g['jobs']} jobs, median of "
        f"{args.repeats}) | {g['median_s']} s | ≤ 10 s |"
    )
    if "demo" in results:
        lines += ["", "The demo's evaluation summary is in `workflow_demo_summary.csv`."]
    (RESULTS / "workflow.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
