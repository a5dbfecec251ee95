"""The tiny pipeline submitted through a real SLURM cluster with profiles/slurm (+ profiles/ci-slurm).

Needs a SLURM controller that answers and a node with GPUs in its gres (``.ci/slurm-cluster start`` makes a
one-node cluster with 2 fake GPUs; ``.ci/run`` does that when it runs as root). Without one the test skips
at once, saying why. Every job of the DAG but the target rule must go through sbatch, and SLURM must record
each as COMPLETED; the tracking jobs ask for a GPU, which must reach sbatch as ``--gpus=1``.

The tiny configuration runs with one training run and two of the four evaluation protocols (SMALLER): on the
2-core CI node every SLURM job costs ~5 s of job-step start-up plus the plugin's polling back-off, and the full
tiny DAG (24 jobs) took 4.5 minutes there; this one has every kind of rule in under 3.
"""

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "workflow" / "config.yaml"
PROFILES = ("--profile", str(REPO / "profiles" / "slurm"), "--profile", str(REPO / "profiles" / "ci-slurm"))
# The GPU request exercises the fake gres; train keeps a memory request that fits the CI node.
SET_RESOURCES = ("--set-resources", "track_shard:gpu=1", "train:mem_mb=2000", "train:runtime=10")
# Merged over the tiny config: no control run, no labelled reference, one image and one video protocol, no
# cross-view protocol (every other rule still runs).
SMALLER = (
    "runs: {controls: [], labelled_steps: 0}\nevaluate: {clustering: {enabled: false}, hummingbird: {enabled: false},"
    " hummingbird_xview: {enabled: false}, clustering_xview: {enabled: false}}\n"
)
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)")
SECRET = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)


def _run(cmd, timeout):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as err:
        return subprocess.CompletedProcess(cmd, 255, "", str(err))


def slurm_unavailable() -> str | None:
    """Why the SLURM test cannot run here, or None when a controller answers and a node has GPUs (quick)."""
    if shutil.which("sinfo") is None or shutil.which("scontrol") is None:
        return "no SLURM client (sinfo/scontrol not installed); start one with `.ci/slurm-cluster start` as root"
    ping = _run(["scontrol", "ping"], timeout=5)
    if ping.returncode != 0 or "UP" not in ping.stdout:
        return f"no SLURM controller answers `scontrol ping`: {(ping.stdout + ping.stderr).strip()[:200]}"
    nodes = _run(["sinfo", "-h", "-N", "-o", "%N %t %G"], timeout=5)
    usable = [line for line in nodes.stdout.splitlines() if "gpu" in line and re.search(r" (idle|mix|alloc)", line)]
    if nodes.returncode != 0 or not usable:
        return f"no usable SLURM node with GPUs in its gres (sinfo: {nodes.stdout.strip()[:200]!r})"
    return None


def snakemake(workdir: Path, *args: str, timeout: int):
    """snakemake on the workflow in `workdir`, with this interpreter's bin dir first on PATH (job steps run
    `python -m snakemake` from PATH) and no secrets in the environment (--verbose logs it)."""
    env = {k: v for k, v in os.environ.items() if not SECRET.search(k)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=workdir)


def job_stats(output: str) -> Counter:
    """The "Job stats" table of a snakemake run or dry run: rule -> job count."""
    counts, table = Counter(), output.split("Job stats:", 1)[1].splitlines()
    for line in table[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def scontrol_job(job_id: str) -> dict[str, str]:
    out = _run(["scontrol", "show", "job", "--oneliner", job_id], timeout=10).stdout
    return dict(field.split("=", 1) for field in out.split() if "=" in field)


@pytest.mark.slurm
@pytest.mark.slow
def test_tiny_pipeline_through_slurm(tmp_path, capsys):
    reason = slurm_unavailable()
    if reason:
        pytest.skip(reason)

    smaller = tmp_path / "smaller.yaml"
    smaller.write_text(SMALLER)
    config = ("--configfile", str(TINY), str(smaller))
    dry = snakemake(tmp_path, "-n", *config, *PROFILES, *SET_RESOURCES, timeout=120)
    assert dry.returncode == 0, dry.stderr[-3000:]
    planned = job_stats(dry.stdout + dry.stderr)
    # The target rule has no action, so Snakemake finishes it itself; everything else goes to sbatch.
    expected = Counter({rule: n for rule, n in planned.items() if rule != "all"})
    assert expected["track_shard"] == 2 and expected["train"] == 1 and expected["evaluate"] == 4

    res = snakemake(tmp_path, "--verbose", *config, *PROFILES, *SET_RESOURCES, timeout=480)
    out = res.stdout + res.stderr
    (tmp_path / "snakemake-slurm.log").write_text(out)
    assert res.returncode == 0, out[-5000:]
    assert "Error in rule" not in out and "(100%) done" in out

    submitted = dict(SUBMITTED.findall(out))  # snakemake job id -> SLURM job id
    assert len(submitted) == sum(expected.values()), f"{len(submitted)} sbatch submissions for {expected}"
    assert len(set(submitted.values())) == len(submitted)
    sbatch_calls = [line for line in out.splitlines() if line.lstrip().startswith("sbatch call:")]
    assert len(sbatch_calls) == len(submitted)
    gpu_calls = [c for c in sbatch_calls if "--gpus=" in c]
    assert len(gpu_calls) == expected["track_shard"] and all("--gpus=1" in c for c in gpu_calls)
    assert all("rule_track_shard" in c for c in gpu_calls)

    # SLURM's own records (kept for MinJobAge): every job completed, the tracking jobs held one GPU each.
    records = {sid: scontrol_job(sid) for sid in sorted(submitted.values(), key=int)}
    ran = Counter(re.sub(r"^rule_|_wildcards_.*$", "", r.get("Comment", "?")) for r in records.values())
    assert ran == expected, records
    for sid, rec in records.items():
        assert rec.get("JobState") == "COMPLETED" and rec.get("ExitCode") == "0:0", (sid, rec)
        if rec.get("Comment", "").startswith("rule_track_shard"):
            assert "gpu:1" in rec.get("TresPerJob", "") + rec.get("TRES", ""), rec

    # Outputs of the whole DAG exist, and Snakemake agrees that nothing is left to do.
    ds = tmp_path / "results" / "synthetic"
    assert len(list((ds / "tracks").glob("shard_*.zarr"))) == 2
    assert list((ds / "train").glob("*/backbone.safetensors"))
    assert (tmp_path / "results" / "eval" / "table.csv").stat().st_size > 0
    again = snakemake(tmp_path, "-n", *config, *PROFILES, *SET_RESOURCES, timeout=120)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    ids = ",".join(records)
    squeue = _run(["squeue", "--states=all", "-j", ids, "-o", "%.8i %.24k %.10T %.8M %.5D %b %R"], timeout=10).stdout
    with capsys.disabled():  # shown even when pytest captures output, so CI logs list the jobs
        print(f"\n--- {len(submitted)} SLURM jobs of the tiny pipeline (squeue --states=all):")
        print(squeue.rstrip())
        for rec in records.values():
            keys = ("JobId", "JobState", "ExitCode", "RunTime", "NumCPUs", "TresPerJob", "Comment")
            print("scontrol:", " ".join(f"{k}={rec[k]}" for k in keys if k in rec))
