"""GPU slots for parallel local jobs: each job holds file locks on the GPUs it uses and sees only those.

``snakemake --resources gpu=8`` only limits how many GPUs the running jobs ask for in total; Snakemake never
sets ``CUDA_VISIBLE_DEVICES`` (snakemake issue #281), so two one-GPU jobs would both use GPU 0. A job wraps its
work in :func:`gpu_slots` (or its command in ``python -m mosic.gpu_slots N -- command ...``): it takes an
exclusive ``flock`` on N free slot files ``<lock_dir>/gpu<i>.lock`` — waiting while none are free — sets
``CUDA_VISIBLE_DEVICES`` to those GPUs, and releases the locks when it ends, even when killed (the kernel drops
flocks of a dead process). Under SLURM the allocation already isolates GPUs, so nothing is locked there.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["gpu_slots", "visible_gpus", "main"]


def visible_gpus() -> list[str]:
    """The GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else every device torch sees."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() != ""]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return []


def _default_lock_dir() -> Path:
    return Path(os.environ.get("MOSIC_GPU_LOCK_DIR", f"/tmp/mosic-gpu-locks-{os.getuid()}"))


@contextlib.contextmanager
def gpu_slots(
    count: int,
    *,
    gpus: list[str] | None = None,
    lock_dir: str | Path | None = None,
    poll: float = 0.5,
    timeout: float | None = None,
) -> Iterator[list[str]]:
    """Hold `count` GPUs for the duration of the block and set ``CUDA_VISIBLE_DEVICES`` to them.

    Args:
        count: GPUs to hold; 0 holds none and changes nothing.
        gpus: the GPU ids to choose from (default :func:`visible_gpus`).
        lock_dir: where the slot lock files live (shared by every job on this machine; default
            ``$MOSIC_GPU_LOCK_DIR`` or ``/tmp/mosic-gpu-locks-<uid>``).
        poll: seconds between attempts while not enough slots are free.
        timeout: give up after this many seconds (None waits forever).

    Yields:
        The GPU ids held.

    Raises:
        ValueError: more GPUs asked for than exist.
        TimeoutError: `timeout` passed without `count` free slots.
    """
    if count <= 0 or "SLURM_JOB_ID" in os.environ:
        yield []
        return
    gpus = visible_gpus() if gpus is None else list(gpus)
    if count > len(gpus):
        raise ValueError(f"{count} GPUs requested but only {len(gpus)} exist ({','.join(gpus) or 'none'})")
    lock_dir = Path(lock_dir) if lock_dir is not None else _default_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    while True:
        held: list[tuple[str, int]] = []
        for gpu in gpus:
            fd = os.open(lock_dir / f"gpu{gpu}.lock", os.O_CREAT | os.O_RDWR, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            held.append((gpu, fd))
            if len(held) == count:
                break
        if len(held) == count:
            break
        for _, fd in held:  # not enough: release what we took so others can finish, and try again
            os.close(fd)
        if timeout is not None and time.monotonic() - start > timeout:
            raise TimeoutError(f"no {count} free GPU slots among {','.join(gpus)} after {timeout} s ({lock_dir})")
        time.sleep(poll)
    ids = [g for g, _ in held]
    old = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
    logger.info("holding GPU slot(s) %s (%s)", ",".join(ids), lock_dir)
    try:
        yield ids
    finally:
        if old is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = old
        for _, fd in held:
            os.close(fd)


def main(argv: list[str] | None = None) -> int:
    """``python -m mosic.gpu_slots N [--gpus 0,1] [--lock-dir D] -- command ...``: run a command on N GPU slots."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--" not in argv:
        argv.append("--")
    split = argv.index("--")
    command = argv[split + 1 :]
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("count", type=int, help="GPUs to hold (0 = run the command as it is)")
    parser.add_argument("--gpus", default=None, help="comma-separated GPU ids to choose from (default: visible)")
    parser.add_argument("--lock-dir", default=None, help="slot lock directory")
    args = parser.parse_args(argv[:split])
    if not command:
        parser.error("no command given after --")
    gpus = args.gpus.split(",") if args.gpus else None
    with gpu_slots(args.count, gpus=gpus, lock_dir=args.lock_dir):
        return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
