"""GPU slots: concurrent jobs get distinct GPUs (fake slots, no GPU needed) and never overlap on one."""

import json
import os
import subprocess
import sys
import time

import pytest

from mosic.gpu_slots import gpu_slots

RECORD = (
    "import json, os, sys, time; t0 = time.time(); time.sleep(0.4); "
    "print(json.dumps([os.environ['CUDA_VISIBLE_DEVICES'], t0, time.time()]))"
)


def test_parallel_jobs_get_distinct_gpus_and_never_overlap(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    cmd = [sys.executable, "-m", "mosic.gpu_slots", "1", "--gpus", "0,1", "--lock-dir", str(tmp_path), "--"]
    procs = [
        subprocess.Popen([*cmd, sys.executable, "-c", RECORD], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(4)
    ]
    runs = [json.loads(p.communicate(timeout=60)[0].strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert {gpu for gpu, _, _ in runs} == {"0", "1"}  # both slots used
    for gpu in ("0", "1"):
        spans = sorted((start, end) for g, start, end in runs if g == gpu)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))


def test_context_sets_and_restores_visible_devices(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    with gpu_slots(2, lock_dir=tmp_path) as held:
        assert held == ["3", "5"] and os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"
        with pytest.raises(TimeoutError, match="no 1 free GPU slots"):
            with gpu_slots(1, gpus=["3", "5"], lock_dir=tmp_path, poll=0.05, timeout=0.2):
                pass
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"
    with gpu_slots(1, gpus=["3", "5"], lock_dir=tmp_path, timeout=1) as held:  # released on exit
        assert held == ["3"]


def test_zero_gpus_and_too_many(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with gpu_slots(0, lock_dir=tmp_path) as held:
        assert held == []
    with pytest.raises(ValueError, match="3 GPUs requested but only 2 exist"):
        with gpu_slots(3, gpus=["0", "1"], lock_dir=tmp_path):
            pass


def test_a_killed_holder_frees_its_slot(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    holder = subprocess.Popen(
        [sys.executable, "-m", "mosic.gpu_slots", "1", "--gpus", "0", "--lock-dir", str(tmp_path), "--",
         "sleep", "30"],
        env=env,
    )  # fmt: skip
    time.sleep(1.0)
    holder.kill()
    holder.wait(timeout=10)
    with gpu_slots(1, gpus=["0"], lock_dir=tmp_path, timeout=5) as held:
        assert held == ["0"]
