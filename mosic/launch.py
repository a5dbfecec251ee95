"""Start torchrun for the train rule: standalone on one machine, a c10d rendezvous across SLURM nodes.

``python -m mosic.launch [--nproc N] [--nodes K] [--port P] -- script.py args...`` replaces itself with

- ``torchrun --standalone --nnodes=1 --nproc-per-node=N script.py args...`` on a workstation, in a local
  Snakemake job, and in a one-node SLURM job (the SLURM executor's job step wraps the rule in ``srun -n1``);
- inside an ``srun`` step that spans K > 1 nodes (one task per node), ``torchrun --nnodes=K
  --nproc-per-node=N/K --node-rank=$SLURM_NODEID --rdzv-backend=c10d --rdzv-endpoint=<first host>:P
  --rdzv-id=$SLURM_JOB_ID script.py args...``; the first host of ``SLURM_JOB_NODELIST`` is resolved with
  ``scontrol show hostnames`` (or parsed in Python when scontrol is missing);
- with ``--nodes K`` (K > 1) in the batch step of a SLURM job, ``srun --nodes=K --ntasks=K --ntasks-per-node=1
  --kill-on-bad-exit=1 python -m mosic.launch ...``, so each node starts one torchrun as above. Snakemake's
  job step removes every ``SLURM_*`` variable but ``SLURM_JOB_ID`` from the rule's shell, so the node
  geometry can only be read inside that srun step; this is why the launcher calls itself again there.

``N`` (``--nproc``) is the total number of processes (the world size; one per GPU, or the CPU gloo ranks) and
is split evenly over the nodes; ``--nproc-per-node`` sets the per-node count directly. The rendezvous port is
``--port``, else ``$MOSIC_RDZV_PORT``, else 29400. :func:`build_command` is a pure function from an environment
dict to the argv, unit-tested in ``tests/test_launch.py``; ``--dry-run`` prints the argv instead of running it.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "DEFAULT_PORT",
    "LaunchError",
    "build_command",
    "expand_nodelist",
    "resolve_hostnames",
    "slurm_cpus_per_task",
    "main",
]

DEFAULT_PORT = 29400
TORCHRUN = ("-m", "torch.distributed.run")


class LaunchError(RuntimeError):
    """The requested layout cannot be started in this environment; the message says why and what to do."""


def _split_top(text: str) -> list[str]:
    """Split a SLURM host list at the commas that are not inside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ']' in node list {text!r}")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise ValueError(f"unbalanced '[' in node list {text!r}")
    parts.append(text[start:])
    return [p for p in parts if p]


def _expand_one(name: str) -> list[str]:
    match = re.search(r"\[([^\]]*)\]", name)
    if match is None:
        return [name]
    prefix, suffix = name[: match.start()], name[match.end() :]
    items: list[str] = []
    for rng in match.group(1).split(","):
        lo, sep, hi = rng.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"bad range {rng!r} in node list entry {name!r}")
        if not sep:
            items.append(lo)
            continue
        width = len(lo) if lo.startswith("0") else 0  # node[01-03] keeps the zero padding
        items.extend(f"{i:0{width}d}" for i in range(int(lo), int(hi) + 1))
    return [f"{prefix}{item}{rest}" for item in items for rest in _expand_one(suffix)]


def expand_nodelist(nodelist: str) -> list[str]:
    """Host names of a SLURM node list in pure Python: ``node[01-03],gpu7`` -> node01, node02, node03, gpu7.

    Handles comma-separated entries, bracketed ranges and single values (zero padding kept) and several
    bracket groups per entry (``r[1-2]n[1,3]``); ``scontrol show hostnames`` is the authority when present.
    """
    return [host for entry in _split_top(nodelist.strip()) for host in _expand_one(entry)]


def resolve_hostnames(nodelist: str, timeout: float = 10.0) -> list[str]:
    """Host names of a SLURM node list: ``scontrol show hostnames``, else :func:`expand_nodelist`."""
    try:
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, timeout=timeout, check=True
        ).stdout.split()
        if out:
            return out
    except (OSError, subprocess.SubprocessError):
        pass
    return expand_nodelist(nodelist)


def slurm_cpus_per_task(job_id: str, timeout: float = 10.0) -> int | None:
    """``CPUs/Task`` of a SLURM job from ``scontrol show job``; None when it cannot be read."""
    try:
        out = subprocess.run(
            ["scontrol", "show", "job", "--oneliner", job_id], capture_output=True, text=True, timeout=timeout
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\bCPUs/Task=(\d+)", out)
    return int(match.group(1)) if match else None


def _int_env(env: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            try:
                return int(value)
            except ValueError:
                raise LaunchError(f"${name} is {value!r}, not an integer") from None
    return None


def _in_slurm_step(env: Mapping[str, str]) -> bool:
    """True inside a task started by srun (the batch script of a job has no step id)."""
    return bool(env.get("SLURM_STEP_ID") or env.get("SLURM_STEPID"))


def build_command(
    env: Mapping[str, str],
    script_args: Sequence[str],
    *,
    nproc: int,
    nodes: int | None = None,
    nproc_per_node: int | None = None,
    port: int | None = None,
    python: str = sys.executable,
    resolve: Callable[[str], list[str]] = expand_nodelist,
    cpus_per_task: int | None = None,
    srun: str = "srun",
) -> list[str]:
    """The argv that starts training, from the environment `env` (no side effects).

    Args:
        env: the process environment (``os.environ`` or a test dict).
        script_args: the training script and its arguments.
        nproc: processes in total (world size: one per GPU, or the CPU gloo ranks); split evenly over nodes.
        nodes: nodes the job should span; > 1 outside an srun step wraps the launcher in srun. None or 1 means
            "whatever the SLURM step spans" (one node when not under SLURM).
        nproc_per_node: processes per node, overriding ``nproc / nodes``.
        port: rendezvous port (default ``$MOSIC_RDZV_PORT`` or 29400).
        python: the interpreter that runs torchrun and the launcher.
        resolve: node list -> host names (``resolve_hostnames`` asks scontrol; the default is pure Python).
        cpus_per_task: CPUs of each per-node srun task (srun does not inherit them from the job since Slurm
            22.05, and Snakemake's job step removes ``SRUN_CPUS_PER_TASK``); None leaves srun's default.
        srun: the srun command (a path or name).

    Raises:
        LaunchError: a layout that cannot work here, with the reason (no allocation, several tasks per node,
            processes that do not divide over the nodes, ...).
    """
    script_args = list(script_args)
    if not script_args:
        raise LaunchError("no training script given after --")
    if nproc < 1:
        raise LaunchError(f"--nproc is {nproc}; at least one process is needed")
    if port is None:
        port = _int_env(env, "MOSIC_RDZV_PORT") or DEFAULT_PORT
    torchrun = [python, *TORCHRUN]
    in_step = _in_slurm_step(env)
    step_nodes = _int_env(env, "SLURM_STEP_NUM_NODES", "SLURM_NNODES", "SLURM_JOB_NUM_NODES") if in_step else None
    want = nodes or 1

    if in_step and step_nodes and step_nodes > 1:
        if nodes and nodes > 1 and nodes != step_nodes:
            raise LaunchError(f"--nodes {nodes} but the SLURM step spans {step_nodes} nodes")
        tasks = _int_env(env, "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS")
        if tasks is not None and tasks != step_nodes:
            raise LaunchError(
                f"the SLURM step runs {tasks} tasks on {step_nodes} nodes; start one task per node "
                "(srun --ntasks-per-node=1), each task runs torchrun with one process per GPU"
            )
        per_node = nproc_per_node
        if per_node is None:
            if nproc % step_nodes:
                raise LaunchError(f"--nproc {nproc} processes do not divide evenly over {step_nodes} nodes")
            per_node = nproc // step_nodes
        nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or env.get("SLURM_STEP_NODELIST")
        if not nodelist:
            raise LaunchError("multi-node SLURM step without $SLURM_JOB_NODELIST; cannot find the rendezvous host")
        hosts = resolve(nodelist)
        if not hosts:
            raise LaunchError(f"no host in node list {nodelist!r}")
        job_id = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID") or "mosic"
        node_rank = _int_env(env, "SLURM_NODEID") or 0
        return [
            *torchrun,
            f"--nnodes={step_nodes}",
            f"--nproc-per-node={per_node}",
            f"--node-rank={node_rank}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={hosts[0]}:{port}",
            f"--rdzv-id={job_id}",
            *script_args,
        ]

    if want > 1:
        if in_step:
            raise LaunchError(
                f"--nodes {want} but this SLURM step spans one node: Snakemake's job step wrapped the rule in "
                "`srun -n1`. Multi-node training needs the resources mpi='srun', tasks=<nodes>, tasks_per_gpu=0 "
                "(see profiles/slurm/profile.yaml)"
            )
        if not (env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")):
            raise LaunchError(f"--nodes {want} needs a SLURM allocation (no $SLURM_JOB_ID); run it through sbatch")
        inner = [python, "-m", "mosic.launch", f"--nproc={nproc}", f"--nodes={want}", f"--port={port}"]
        if nproc_per_node is not None:
            inner.append(f"--nproc-per-node={nproc_per_node}")
        wrap = [srun, f"--nodes={want}", f"--ntasks={want}", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
        if cpus_per_task:
            wrap.append(f"--cpus-per-task={cpus_per_task}")
        return [*wrap, *inner, "--", *script_args]

    per_node = nproc if nproc_per_node is None else nproc_per_node
    return [*torchrun, "--standalone", "--nnodes=1", f"--nproc-per-node={per_node}", *script_args]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mosic.launch [--nproc N] [--nodes K] [--port P] [--dry-run] -- script args...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:
        split = argv.index("--")
        own, script_args = argv[:split], argv[split + 1 :]
    else:
        own, script_args = argv, []
    parser = argparse.ArgumentParser(prog="python -m mosic.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--nproc", type=int, default=1, help="processes in total (world size); default 1")
    parser.add_argument("--nodes", type=int, default=None, help="nodes to span (> 1: srun one launcher per node)")
    parser.add_argument("--nproc-per-node", type=int, default=None, help="processes per node (default nproc/nodes)")
    parser.add_argument("--port", type=int, default=None, help="rendezvous port ($MOSIC_RDZV_PORT or 29400)")
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    args = parser.parse_args(own)
    env = dict(os.environ)
    want_srun = (args.nodes or 1) > 1 and not _in_slurm_step(env)
    job_id = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    try:
        cmd = build_command(
            env,
            script_args,
            nproc=args.nproc,
            nodes=args.nodes,
            nproc_per_node=args.nproc_per_node,
            port=args.port,
            resolve=resolve_hostnames,
            cpus_per_task=slurm_cpus_per_task(job_id) if want_srun and job_id else None,
        )
    except LaunchError as err:
        parser.exit(2, f"mosic.launch: error: {err}\n")
    print(f"mosic.launch: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    sys.stdout.flush()
    os.execvp(cmd[0], cmd)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
