"""mosic.distributed: single-process fallbacks, an in-process group of one, and Sinkhorn over 2 gloo ranks."""

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from mosic import distributed
from mosic.losses.sinkhorn import sinkhorn_knopp

REPO = Path(__file__).resolve().parents[1]
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "GROUP_RANK")


@pytest.fixture
def no_torchrun_env(monkeypatch):
    for key in TORCHRUN_ENV:
        monkeypatch.delenv(key, raising=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_single_process_helpers_are_identities(no_torchrun_env):
    distributed.init_from_env()  # no env vars: a no-op
    assert not distributed.is_enabled()
    assert (distributed.rank(), distributed.world_size(), distributed.local_rank()) == (0, 1, 0)
    assert distributed.is_main_process()
    t = torch.tensor([1.0, 2.0])
    for op in ("sum", "avg", "max", "min", "prod"):
        assert distributed.all_reduce_(t, op=op) is t and t.tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="unknown reduction"):
        distributed.all_reduce_(t, op="mean")
    obj = {"a": [1, 2]}
    assert distributed.gather_object(obj) == [obj]
    u = t.clone()
    distributed.broadcast_tensors_([u])
    assert torch.equal(u, t)
    distributed.barrier()
    distributed.destroy()
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert distributed.device() == expected


def test_incomplete_environment_is_an_error(no_torchrun_env, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="MASTER_ADDR, MASTER_PORT missing"):
        distributed.init_from_env()
    assert not distributed.is_enabled()


def test_group_of_one_from_env(no_torchrun_env, monkeypatch):
    env = {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    distributed.init_from_env(backend="gloo")
    try:
        assert distributed.is_enabled()
        distributed.init_from_env(backend="gloo")  # a second call is a no-op
        assert (distributed.rank(), distributed.world_size(), distributed.local_rank()) == (0, 1, 0)
        t = torch.tensor([2.0, 3.0])
        assert distributed.all_reduce_(t, op="avg").tolist() == [2.0, 3.0]
        assert distributed.gather_object({"x": 1}) == [{"x": 1}]
        distributed.barrier()
        s = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(sinkhorn_knopp(s), sinkhorn_knopp(s.clone()), atol=0, rtol=0)
    finally:
        distributed.destroy()
    assert not distributed.is_enabled()


# Run by torchrun on each of 2 ranks: argv = inputs.pt, output prefix.
RANK_SCRIPT = textwrap.dedent(
    """
    import sys

    import torch

    from mosic import distributed
    from mosic.losses.sinkhorn import sinkhorn_knopp

    inputs, out = torch.load(sys.argv[1]), sys.argv[2]
    distributed.init_from_env()
    assert distributed.is_enabled() and distributed.world_size() == 2
    r = distributed.rank()
    scores, valid, sizes = inputs["scores"], inputs["valid"], inputs["unequal_sizes"]
    half = scores.shape[0] // 2
    mine = slice(r * half, (r + 1) * half)

    result = {}
    for log_domain in (False, True):
        for masked in (False, True):
            q = sinkhorn_knopp(scores[mine], valid=valid[mine] if masked else None, log_domain=log_domain)
            parts = distributed.gather_object(q)
            if parts is not None:
                result[(log_domain, masked)] = torch.cat(parts)
    # Unequal row counts: each rank writes its own part.
    start = sum(sizes[:r])
    rows = slice(start, start + sizes[r])
    for log_domain in (False, True):
        q = sinkhorn_knopp(scores[rows], valid=valid[rows], log_domain=log_domain)
        torch.save(q, f"{out}.unequal.{int(log_domain)}.rank{r}")

    t = torch.tensor([float(r + 1)])
    result["sum"] = distributed.all_reduce_(t.clone()).item()
    result["avg"] = distributed.all_reduce_(t.clone(), op="avg").item()
    result["max"] = distributed.all_reduce_(t.clone(), op="max").item()
    result["min"] = distributed.all_reduce_(t.clone(), op="min").item()
    b = torch.tensor([float(r)])
    distributed.broadcast_tensors_([b])
    result["broadcast"] = b.item()
    distributed.barrier()
    if distributed.is_main_process():
        torch.save(result, out)
    distributed.destroy()
    """
)


@pytest.mark.distributed
def test_sinkhorn_over_two_ranks_equals_one_process(tmp_path):
    g = torch.Generator().manual_seed(0)
    m, k = 96, 10
    feats = torch.nn.functional.normalize(torch.randn(m, 16, generator=g), dim=1)
    protos = torch.nn.functional.normalize(torch.randn(k, 16, generator=g), dim=1)
    scores = feats @ protos.T
    valid = torch.ones(m, dtype=torch.bool)
    valid[:48][torch.randperm(48, generator=g)[:8]] = False  # rank 0: 40 valid rows
    valid[48:][torch.randperm(48, generator=g)[:33]] = False  # rank 1: 15 valid rows
    unequal_sizes = [70, 26]
    torch.save({"scores": scores, "valid": valid, "unequal_sizes": unequal_sizes}, tmp_path / "inputs.pt")
    script = tmp_path / "rank_sinkhorn.py"
    script.write_text(RANK_SCRIPT)
    out = tmp_path / "result.pt"

    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc-per-node=2"]
    res = subprocess.run(
        [*cmd, str(script), str(tmp_path / "inputs.pt"), str(out)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-4000:]
    result = torch.load(out)

    assert (result["sum"], result["avg"], result["max"], result["min"]) == (3.0, 1.5, 2.0, 1.0)
    assert result["broadcast"] == 0.0
    for log_domain in (False, True):
        for masked in (False, True):
            v = valid if masked else None
            expected = sinkhorn_knopp(scores, valid=v, log_domain=log_domain)  # one process, the whole batch
            got = result[(log_domain, masked)]
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
            keep = valid if masked else torch.ones(m, dtype=torch.bool)
            assert torch.equal(got[keep].argmax(1), expected[keep].argmax(1))
            assert (got[~keep] == 0).all()
        parts = [torch.load(f"{out}.unequal.{int(log_domain)}.rank{r}") for r in range(2)]
        assert [len(p) for p in parts] == unequal_sizes
        got = torch.cat(parts)
        expected = sinkhorn_knopp(scores, valid=valid, log_domain=log_domain)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
        assert torch.equal(got[valid].argmax(1), expected[valid].argmax(1))
