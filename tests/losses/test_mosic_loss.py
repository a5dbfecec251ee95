"""The MoSiC loss on hand-computed cases: frame-0 student vs teacher targets at every frame, visibility weights."""

import math

import pytest
import torch

from mosic.losses.mosic_loss import assignment_ce, mosic_loss


def ce(logits: list[float], target: int) -> float:
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def test_hand_computed_hard_loss_visible_and_all_normalisation():
    # B=1, N=2 points, K=2 prototypes, T=2 frames; temperature 0.5 doubles the scores.
    student0 = torch.tensor([[[0.5, -0.5], [0.0, 0.25]]])  # [1, 2, 2]
    targets = torch.tensor([[[0, 1], [1, 1]]])  # [B, T, N]
    weight = torch.tensor([[[1.0, 1.0], [1.0, 0.0]]])  # point 1 invisible at frame 1
    terms = [ce([1.0, -1.0], 0), ce([0.0, 0.5], 1), ce([1.0, -1.0], 1)]
    out = mosic_loss(student0, targets, weight, temperature=0.5, norm="visible")
    assert out["loss"].item() == pytest.approx(sum(terms) / 3, rel=1e-6)
    out_all = mosic_loss(student0, targets, weight, temperature=0.5, norm="all")
    assert out_all["loss"].item() == pytest.approx(sum(terms) / 4, rel=1e-6)  # divides by B*T*N


def test_soft_one_hot_equals_hard():
    g = torch.Generator().manual_seed(0)
    student0 = torch.randn(2, 5, 7, generator=g)
    hard = torch.randint(0, 7, (2, 3, 5), generator=g)
    soft = torch.nn.functional.one_hot(hard, 7).float()
    weight = (torch.rand(2, 3, 5, generator=g) > 0.3).float()
    a = mosic_loss(student0, hard, weight, temperature=0.1)["loss"]
    b = mosic_loss(student0, soft, weight, temperature=0.1)["loss"]
    assert a.item() == pytest.approx(b.item(), rel=1e-6)


def test_only_frame0_scores_get_gradients_and_symmetric_term_adds():
    g = torch.Generator().manual_seed(1)
    student0 = torch.randn(1, 4, 3, generator=g, requires_grad=True)
    student_all = torch.randn(1, 2, 4, 3, generator=g, requires_grad=True)
    targets = torch.randint(0, 3, (1, 2, 4), generator=g)
    weight = torch.ones(1, 2, 4)
    out = mosic_loss(student0, targets, weight, temperature=0.1, student_all=student_all)
    sym = assignment_ce(student_all / 0.1, targets[:, :1].expand_as(targets)).mean()
    assert out["loss_sym"].item() == pytest.approx(sym.item(), rel=1e-6)
    assert out["loss"].item() == pytest.approx(out["loss_main"].item() + sym.item(), rel=1e-6)
    out["loss_main"].backward()
    assert student0.grad is not None and student_all.grad is None


def test_no_visible_terms_gives_zero_not_nan():
    out = mosic_loss(
        torch.randn(1, 2, 3), torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2), temperature=0.1
    )
    assert out["loss"].item() == 0.0
