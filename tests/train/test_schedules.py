"""Warm-up + cosine schedule: endpoints, monotonicity, and equality with torch's CosineAnnealingLR."""

import numpy as np
import pytest
import torch

from mosic.train.schedules import cosine_schedule


def test_matches_torch_cosine_annealing_without_warmup():
    ours = cosine_schedule(0.1, 20)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20, eta_min=0.0)
    theirs = []
    for _ in range(20):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_warmup_then_decay():
    s = cosine_schedule(1.0, 10, warmup_steps=4, final=0.1)
    assert s.shape == (10,)
    np.testing.assert_allclose(s[:4], [0.25, 0.5, 0.75, 1.0])
    assert s[4] == pytest.approx(1.0) and np.all(np.diff(s[4:]) < 0) and s[-1] > 0.1
