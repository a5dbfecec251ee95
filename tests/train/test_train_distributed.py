"""Training with several gloo processes: every rank holds the same student and teacher and logs the same values,
whichever rank built the model; N processes train as one process does; an interrupted run resumes exactly.

Each run is a real ``torchrun`` of 2 CPU processes on the tiny track cache. The rank script below watches the loop
from inside (it wraps module functions of :mod:`mosic.train.loop`) and writes what its rank holds, so the tests
compare every rank, not only rank 0.
"""

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import PROV, REPO, RUN, losses, tiny_cfg

from mosic.config import to_dict
from mosic.train import loop

pytestmark = pytest.mark.distributed

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE")

# argv: train config JSON, run JSON (variant, seed), shards (comma-separated), run dir, max steps (0 = all), mode
# ("plain" or "skew").
RANK_SCRIPT = textwrap.dedent(
    """
    import json
    import sys
    from pathlib import Path

    import torch
    from safetensors.torch import save_file

    from mosic import distributed
    from mosic.config import RunSpec, TrainConfig, section_from_dict
    from mosic.train import loop, metrics
    from mosic.train import step as step_module

    cfg = section_from_dict(TrainConfig, json.loads(sys.argv[1]), "train")
    run = RunSpec(**json.loads(sys.argv[2]))
    shards, out = sys.argv[3].split(","), Path(sys.argv[4])
    max_steps, mode = int(sys.argv[5]) or None, sys.argv[6]
    distributed.init_from_env()
    r = distributed.rank()
    held, rows = {}, []

    def state(prefix, module):
        return {f"{prefix}.{k}": v.detach().clone().contiguous() for k, v in module.state_dict().items()}

    if mode == "skew":  # rank 1's own initialisation differs: the run must not depend on which rank built it
        real_build = loop.build_net

        def build_net(*args, **kwargs):
            if r == 1:
                torch.manual_seed(987654)
            return real_build(*args, **kwargs)

        loop.build_net = build_net

    real_teacher = loop.make_teacher

    def make_teacher(net):
        teacher = real_teacher(net)
        held["student"], held["teacher"] = net, teacher
        return teacher

    loop.make_teacher = make_teacher

    real_step = step_module.mosic_step

    def mosic_step(*args, **kwargs):
        if "setup" not in held:  # after set-up (and the DDP wrap), before the first update
            held["setup"] = {**state("student", held["student"]), **state("teacher", held["teacher"])}
        return real_step(*args, **kwargs)

    step_module.mosic_step = mosic_step

    real_close = metrics.StepLog.close

    def close(self):  # every rank keeps the rows it would log
        real_close(self)
        rows[:] = [{k: v for k, v in row.items() if k != "step_time_s"} for row in self.rows]

    metrics.StepLog.close = close

    loop.train(cfg, run, shards, out, provenance={"git_sha": "test"}, max_steps=max_steps)
    if "setup" in held:
        save_file(held["setup"], str(out / f"setup.rank{r}.safetensors"))
    end = {**state("student", held["student"]), **state("teacher", held["teacher"])}
    save_file(end, str(out / f"end.rank{r}.safetensors"))
    (out / f"rows.rank{r}.json").write_text(json.dumps(rows))
    distributed.destroy()
    """
)


def cfg(**overrides):
    """Randomness in every place a rank could differ: photometric views, masks, a teacher-frame subset."""
    return tiny_cfg(photometric_aug=True, mask_ratio=0.25, teacher_frames=3, **overrides)


def torchrun(tmp_path: Path, shards, run_dir: Path, *, max_steps: int = 0, mode: str = "plain", **overrides):
    script = tmp_path / "rank_train.py"
    script.write_text(RANK_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    env.update(OMP_NUM_THREADS="1", WANDB_MODE="disabled")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc-per-node=2"]
    args = [json.dumps(to_dict(cfg(**overrides))), json.dumps(to_dict(RUN)), ",".join(map(str, shards)), str(run_dir),
            str(max_steps), mode]  # fmt: skip
    res = subprocess.run([*cmd, str(script), *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-4000:]


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k != "step_time_s"} for r in csv.DictReader(f)]


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory, shards) -> Path:
    """A complete 2-process run (6 steps of 2 + 2 clips)."""
    tmp = tmp_path_factory.mktemp("ddp")
    torchrun(tmp, shards, tmp / "run")
    return tmp / "run"


def test_every_rank_holds_the_same_student_and_teacher(two_rank_run):
    for when in ("setup", "end"):
        r0, r1 = (load_file(two_rank_run / f"{when}.rank{r}.safetensors") for r in range(2))
        assert_same_tensors(r0, r1)
    setup = load_file(two_rank_run / "setup.rank0.safetensors")
    # The teacher starts as the student, and training moved both.
    assert_same_tensors(
        {k.removeprefix("student."): v for k, v in setup.items() if k.startswith("student.")},
        {k.removeprefix("teacher."): v for k, v in setup.items() if k.startswith("teacher.")},
    )
    end = load_file(two_rank_run / "end.rank0.safetensors")
    assert not torch.equal(setup["teacher.prototypes.weight"], end["teacher.prototypes.weight"])


def test_every_rank_logs_the_global_batch_values(two_rank_run):
    r0, r1 = (json.loads((two_rank_run / f"rows.rank{r}.json").read_text()) for r in range(2))
    assert len(r0) == 6 and r0 == r1
    assert [int(r["step"]) for r in rows(two_rank_run)] == list(range(1, 7))


def test_the_run_does_not_depend_on_which_rank_built_the_model(tmp_path, shards, two_rank_run):
    torchrun(tmp_path, shards, tmp_path / "skew", mode="skew")
    assert rows(tmp_path / "skew") == rows(two_rank_run)
    assert_same_tensors(load_file(tmp_path / "skew" / "end.rank1.safetensors"),
                        load_file(two_rank_run / "end.rank1.safetensors"))  # fmt: skip


def test_two_processes_train_as_one(tmp_path, shards, two_rank_run):
    """Same global batch, same randomness per clip, global normalisation: the same losses up to float rounding."""
    loop.train(cfg(), RUN, shards, tmp_path / "one", provenance=PROV)
    one, two = losses(tmp_path / "one"), losses(two_rank_run)
    assert len(one) == len(two) == 6
    torch.testing.assert_close(torch.tensor(two), torch.tensor(one), rtol=1e-4, atol=1e-5)


def test_interrupted_two_process_run_resumes_exactly(tmp_path, shards, two_rank_run):
    split = tmp_path / "split"
    torchrun(tmp_path, shards, split, max_steps=3)  # checkpoint at step 2, stopped after step 3
    assert len(rows(split)) == 3
    (split / "metrics.csv").unlink()  # what Snakemake does to a failed job's declared outputs before a rerun
    torchrun(tmp_path, shards, split)  # resumes at step 2, mid-epoch
    assert rows(split) == rows(two_rank_run)  # every logged value, one row per step from step 1
    for r in range(2):
        assert_same_tensors(load_file(split / f"end.rank{r}.safetensors"),
                            load_file(two_rank_run / f"end.rank{r}.safetensors"))  # fmt: skip
