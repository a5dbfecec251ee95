"""mosic.launch: the torchrun command for one machine, for a multi-node SLURM step, and the srun wrap."""

import os
import re
import subprocess
import sys

import pytest

from mosic.launch import DEFAULT_PORT, LaunchError, build_command, expand_nodelist, main

PY = "/venv/bin/python"
SCRIPT = ["scripts/train.py", "--train-config", "{}", "--out", "out"]
TORCHRUN = [PY, "-m", "torch.distributed.run"]


def multi_node_step(**extra):
    """Environment of one task of `srun --nodes=2 --ntasks=2 --ntasks-per-node=1` on node gpu[07-08]."""
    env = {
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "gpu[07-08]",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_NNODES": "2",
        "SLURM_STEP_ID": "0",
        "SLURM_STEP_NUM_NODES": "2",
        "SLURM_STEP_NUM_TASKS": "2",
        "SLURM_NTASKS": "2",
        "SLURM_NODEID": "1",
    }
    env.update(extra)
    return env


@pytest.mark.parametrize(
    ("nodelist", "hosts"),
    [
        ("node[01-03],gpu7", ["node01", "node02", "node03", "gpu7"]),
        ("vm", ["vm"]),
        ("a[1,3-4]", ["a1", "a3", "a4"]),
        ("n[8-10]", ["n8", "n9", "n10"]),
        ("r[1-2]n[1,3]", ["r1n1", "r1n3", "r2n1", "r2n3"]),
        ("x-1,y[001-002].ib", ["x-1", "y001.ib", "y002.ib"]),
    ],
)
def test_expand_nodelist(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


def test_expand_nodelist_rejects_garbage():
    with pytest.raises(ValueError):
        expand_nodelist("node[01-03")


def test_standalone_without_slurm():
    cmd = build_command({}, SCRIPT, nproc=2, python=PY)
    assert cmd == [*TORCHRUN, "--standalone", "--nnodes=1", "--nproc-per-node=2", *SCRIPT]


def test_one_node_slurm_step_is_standalone():
    """A one-node job: Snakemake's job step runs the rule under `srun -n1`, so one node, standalone."""
    env = {"SLURM_JOB_ID": "7", "SLURM_STEP_ID": "0", "SLURM_NNODES": "1", "SLURM_JOB_NODELIST": "vm"}
    cmd = build_command(env, SCRIPT, nproc=8, nodes=1, python=PY)
    assert cmd == [*TORCHRUN, "--standalone", "--nnodes=1", "--nproc-per-node=8", *SCRIPT]


def test_multi_node_step_uses_c10d_rendezvous_on_first_host():
    cmd = build_command(multi_node_step(), SCRIPT, nproc=16, python=PY)
    assert cmd == [
        *TORCHRUN,
        "--nnodes=2",
        "--nproc-per-node=8",
        "--node-rank=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=gpu07:{DEFAULT_PORT}",
        "--rdzv-id=4242",
        *SCRIPT,
    ]


def test_multi_node_step_port_and_resolver_and_nnodes_fallback():
    env = multi_node_step(MOSIC_RDZV_PORT="31000", SLURM_NODEID="0")
    del env["SLURM_STEP_NUM_NODES"], env["SLURM_NNODES"]  # only the job's node count left
    cmd = build_command(env, SCRIPT, nproc=4, python=PY, resolve=lambda nl: ["head.example", "other"])
    assert "--rdzv-endpoint=head.example:31000" in cmd and "--nnodes=2" in cmd and "--nproc-per-node=2" in cmd
    assert "--node-rank=0" in cmd
    assert "--rdzv-endpoint=head.example:29500" in build_command(
        env, SCRIPT, nproc=4, port=29500, python=PY, resolve=lambda nl: ["head.example"]
    )


def test_multi_node_step_explicit_per_node_count():
    cmd = build_command(multi_node_step(), SCRIPT, nproc=1, nproc_per_node=4, python=PY)
    assert "--nproc-per-node=4" in cmd


@pytest.mark.parametrize(
    ("env", "kwargs", "message"),
    [
        (multi_node_step(), {"nproc": 3}, "do not divide evenly over 2 nodes"),
        (multi_node_step(SLURM_STEP_NUM_TASKS="16", SLURM_NTASKS="16"), {"nproc": 16}, "one task per node"),
        (multi_node_step(), {"nproc": 16, "nodes": 3}, "--nodes 3 but the SLURM step spans 2 nodes"),
        ({"SLURM_JOB_ID": "1", "SLURM_STEP_ID": "0", "SLURM_NNODES": "1"}, {"nproc": 2, "nodes": 2}, "mpi='srun'"),
        ({}, {"nproc": 2, "nodes": 2}, "needs a SLURM allocation"),
        ({}, {"nproc": 0}, "at least one process"),
    ],
)
def test_impossible_layouts_say_why(env, kwargs, message):
    with pytest.raises(LaunchError, match=re.escape(message)):
        build_command(env, SCRIPT, python=PY, **kwargs)


def test_batch_step_with_several_nodes_wraps_itself_in_srun():
    """Snakemake's job step leaves only SLURM_JOB_ID in the rule's shell: srun one launcher per node."""
    cmd = build_command({"SLURM_JOB_ID": "99"}, SCRIPT, nproc=16, nodes=2, cpus_per_task=32, python=PY)
    assert cmd == [
        "srun",
        "--nodes=2",
        "--ntasks=2",
        "--ntasks-per-node=1",
        "--kill-on-bad-exit=1",
        "--cpus-per-task=32",
        PY,
        "-m",
        "mosic.launch",
        "--nproc=16",
        "--nodes=2",
        f"--port={DEFAULT_PORT}",
        "--",
        *SCRIPT,
    ]
    # The wrapped launcher, run inside that step, then builds the rendezvous command.
    inner = cmd[cmd.index("mosic.launch") + 1 :]
    assert inner[: inner.index("--")] == ["--nproc=16", "--nodes=2", f"--port={DEFAULT_PORT}"]


def test_main_dry_run_prints_the_command(capsys, monkeypatch):
    for name in [n for n in os.environ if n.startswith("SLURM_")]:
        monkeypatch.delenv(name)
    assert main(["--nproc", "2", "--dry-run", "--", *SCRIPT]) == 0
    out = capsys.readouterr().out
    assert "torch.distributed.run --standalone --nnodes=1 --nproc-per-node=2 scripts/train.py" in out


def test_cli_reports_errors_plainly():
    env = {"PATH": "/usr/bin:/bin"}
    res = subprocess.run(
        [sys.executable, "-m", "mosic.launch", "--nodes", "2", "--dry-run", "--", "x.py"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert res.returncode == 2
    assert "mosic.launch: error: --nodes 2 needs a SLURM allocation" in res.stderr
