"""Sinkhorn–Knopp invariants (as POT's test_bregman does): marginals, equivariances, stability, masks, POT agreement."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mosic.losses.sinkhorn import sinkhorn_knopp

DOMAINS = pytest.mark.parametrize("log_domain", [False, True], ids=["plain", "log"])


def cosine_scores(m: int, k: int, seed: int = 0, dim: int = 16) -> torch.Tensor:
    """[m, k] cosine similarities of random unit features against random unit prototypes, like the teacher's."""
    g = torch.Generator().manual_seed(seed)
    feats = F.normalize(torch.randn(m, dim, generator=g), dim=1)
    protos = F.normalize(torch.randn(k, dim, generator=g), dim=1)
    return feats @ protos.T


def prototype_deviation(q: torch.Tensor) -> float:
    """Largest relative deviation of the prototype marginal from uniform (M/K points each)."""
    m, k = q.shape
    return (q.sum(0) / (m / k) - 1).abs().max().item()


def original_sinkhorn(scores: torch.Tensor, epsilon: float, iters: int) -> torch.Tensor:
    """A literal transcription of the original (spec §4.2) for one process: no max shift, no mask."""
    q = torch.exp(scores.float() / epsilon).t()
    q /= q.sum()
    k, b = q.shape
    r = torch.ones(k) / k
    c = torch.ones(b) / b
    curr_sum = q.sum(dim=1)
    for _ in range(iters):
        u = curr_sum
        q *= (r / u).unsqueeze(1)
        q *= (c / q.sum(dim=0)).unsqueeze(0)
        curr_sum = q.sum(dim=1)
    return (q / q.sum(dim=0, keepdim=True)).t().float()


@DOMAINS
def test_rows_are_distributions_and_output_is_float32(log_domain):
    s = cosine_scores(96, 10)
    q = sinkhorn_knopp(s, log_domain=log_domain)
    assert q.shape == (96, 10) and q.dtype == torch.float32
    assert torch.isfinite(q).all() and (q >= 0).all()
    torch.testing.assert_close(q.sum(1), torch.ones(96), atol=1e-5, rtol=0)


def test_matches_the_original_order_of_operations():
    s = cosine_scores(96, 10, seed=1)
    for iters in (1, 3, 10):
        torch.testing.assert_close(sinkhorn_knopp(s, iters=iters), original_sinkhorn(s, 0.05, iters), atol=1e-6, rtol=0)


@DOMAINS
def test_prototype_marginal_approaches_uniform_with_more_iterations(log_domain):
    s = cosine_scores(128, 8, seed=2)
    devs = [prototype_deviation(sinkhorn_knopp(s, iters=n, log_domain=log_domain)) for n in (1, 3, 10, 100)]
    assert all(a > b for a, b in zip(devs[:-1], devs[1:], strict=True)), devs
    assert devs[0] > 0.1 and devs[-1] < 1e-4, devs


def test_zero_iterations_is_a_softmax_over_prototypes():
    s = cosine_scores(32, 6, seed=3)
    torch.testing.assert_close(sinkhorn_knopp(s, iters=0), torch.softmax(s / 0.05, dim=1), atol=1e-6, rtol=0)


@DOMAINS
def test_permuting_rows_permutes_the_assignment(log_domain):
    s = cosine_scores(80, 7, seed=4)
    perm = torch.randperm(80, generator=torch.Generator().manual_seed(0))
    q = sinkhorn_knopp(s, log_domain=log_domain)
    torch.testing.assert_close(sinkhorn_knopp(s[perm], log_domain=log_domain), q[perm], atol=1e-6, rtol=1e-5)


@DOMAINS
def test_invariant_to_constant_shifts_of_the_scores(log_domain):
    s = cosine_scores(64, 9, seed=5)
    g = torch.Generator().manual_seed(1)
    # A global or per-prototype constant is absorbed exactly by the first normalisation / row scaling.
    q = sinkhorn_knopp(s, log_domain=log_domain)
    for name, s2 in {"global": s + 3.0, "per prototype": s + 0.2 * torch.randn(1, 9, generator=g)}.items():
        torch.testing.assert_close(
            sinkhorn_knopp(s2, log_domain=log_domain), q, atol=2e-5, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}"
        )
    # A per-sample constant changes the iterates (rows are scaled first) but not the converged plan.
    q100 = sinkhorn_knopp(s, iters=100, log_domain=log_domain)
    s2 = s + 0.1 * torch.randn(64, 1, generator=g)
    torch.testing.assert_close(sinkhorn_knopp(s2, iters=100, log_domain=log_domain), q100, atol=1e-5, rtol=0)


@pytest.mark.parametrize("iters", [3, 10, 100])
def test_plain_and_log_domain_agree(iters):
    s = cosine_scores(96, 12, seed=6)
    torch.testing.assert_close(
        sinkhorn_knopp(s, epsilon=0.05, iters=iters, log_domain=True),
        sinkhorn_knopp(s, epsilon=0.05, iters=iters),
        atol=1e-5,
        rtol=0,
    )


def test_log_domain_is_stable_at_tiny_epsilon_where_the_plain_path_fails():
    s = cosine_scores(64, 8, seed=7)
    eps = 0.001
    assert not torch.isfinite(torch.exp(s / eps)).all()  # a naive exp overflows (e^1000) ...
    assert (torch.exp(-(s.max() - s) / eps) == 0).any()  # ... and a max-shifted one underflows
    with pytest.raises(FloatingPointError, match="log_domain=True"):
        sinkhorn_knopp(s, epsilon=eps)
    q = sinkhorn_knopp(s, epsilon=eps, iters=1000, log_domain=True)  # small ε converges slowly
    assert torch.isfinite(q).all() and (q >= 0).all()
    torch.testing.assert_close(q.sum(1), torch.ones(64), atol=1e-5, rtol=0)
    assert prototype_deviation(q) < 0.05
    assert (q.max(1).values > 0.5).float().mean() > 0.9  # small ε: nearly hard assignments


@DOMAINS
def test_valid_mask_equals_running_on_the_valid_rows(log_domain):
    s = cosine_scores(100, 10, seed=8)
    valid = torch.rand(100, generator=torch.Generator().manual_seed(2)) > 0.35
    s_garbage = s.clone()
    s_garbage[~valid] = torch.where(torch.arange(10) % 2 == 0, torch.nan, 1e4)  # must not leak into the result
    q = sinkhorn_knopp(s_garbage, valid=valid, log_domain=log_domain)
    assert (q[~valid] == 0).all()
    torch.testing.assert_close(q[valid], sinkhorn_knopp(s[valid], log_domain=log_domain), atol=1e-6, rtol=1e-5)
    # Marginals over the valid rows only: each prototype gets ≈ n_valid / K, not 100 / K.
    q100 = sinkhorn_knopp(s, valid=valid, log_domain=log_domain, iters=100)
    torch.testing.assert_close(q100.sum(0), torch.full((10,), valid.sum().item() / 10), atol=1e-3, rtol=0)


@DOMAINS
def test_no_valid_row_gives_zeros(log_domain):
    q = sinkhorn_knopp(cosine_scores(5, 3), valid=torch.zeros(5, dtype=torch.bool), log_domain=log_domain)
    assert q.shape == (5, 3) and (q == 0).all()
    assert sinkhorn_knopp(torch.zeros(0, 3), log_domain=log_domain).shape == (0, 3)


@pytest.mark.parametrize(
    ("log_domain", "epsilon", "iters"), [(False, 0.05, 1000), (True, 0.05, 1000), (True, 0.01, 2000)]
)
def test_agrees_with_pot(log_domain, epsilon, iters):
    ot = pytest.importorskip("ot")
    s = cosine_scores(64, 8, seed=9)
    m, k = s.shape
    # POT solves min <P, C> − reg·H(P) with marginals a, b: the same problem with C = −S, reg = ε.
    plan = ot.sinkhorn(
        np.full(m, 1 / m),
        np.full(k, 1 / k),
        -s.double().numpy(),
        reg=epsilon,
        method="sinkhorn_log" if log_domain else "sinkhorn",
        numItermax=20_000,
        stopThr=1e-12,
    )
    plan = plan * m
    plan /= plan.sum(1, keepdims=True)
    q = sinkhorn_knopp(s, epsilon=epsilon, iters=iters, log_domain=log_domain)
    np.testing.assert_allclose(q.numpy(), plan, atol=1e-3, rtol=0)
    assert (q.argmax(1).numpy() == plan.argmax(1)).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@DOMAINS
def test_half_precision_input_computes_in_float32(dtype, log_domain):
    s = cosine_scores(48, 6, seed=10).to(dtype)
    q = sinkhorn_knopp(s, log_domain=log_domain)
    assert q.dtype == torch.float32
    # e^(1/0.05) = 4.9e8 overflows float16 (max 65504); the float32 computation does not.
    torch.testing.assert_close(q, sinkhorn_knopp(s.float(), log_domain=log_domain), atol=0, rtol=0)


def test_no_gradient_and_input_untouched():
    s = cosine_scores(16, 4).requires_grad_(True)
    before = s.detach().clone()
    q = sinkhorn_knopp(s)
    assert not q.requires_grad
    assert torch.equal(s.detach(), before)


def test_non_finite_scores_raise_a_clear_error():
    s = cosine_scores(16, 4)
    s[3, 1] = torch.nan
    for log_domain in (False, True):
        with pytest.raises(FloatingPointError, match="NaN"):
            sinkhorn_knopp(s, log_domain=log_domain)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scores": torch.zeros(4)}, r"\[M, K\]"),
        ({"scores": torch.zeros(4, 3, dtype=torch.long)}, "floating point"),
        ({"scores": torch.zeros(4, 3), "epsilon": 0.0}, "epsilon"),
        ({"scores": torch.zeros(4, 3), "iters": -1}, "iters"),
        ({"scores": torch.zeros(4, 3), "valid": torch.ones(4)}, "bool"),
        ({"scores": torch.zeros(4, 3), "valid": torch.ones(5, dtype=torch.bool)}, r"\[4\]"),
    ],
)
def test_bad_arguments(kwargs, match):
    scores = kwargs.pop("scores")
    with pytest.raises(ValueError, match=match):
        sinkhorn_knopp(scores, **kwargs)
