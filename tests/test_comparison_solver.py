"""Discovery compares candidates with RK4 substeps enough for the dynamics: one step per observation
interval where that is accurate, more where fast dynamics would make the solver's error rival the noise."""

import numpy as np
import sympy as sp
import torch

import udesci as ud
from udesci.discovery.discover import MAX_SUBSTEPS, comparison_solver
from udesci.train import PaddedBatch

x = sp.Symbol("x")


def substeps_for(rhs, x0, t, noise=0.01):
    model = ud.HybridModel({x: rhs})
    clean = ud.simulate(model, [x0], t)
    noisy = clean + noise * np.abs(clean).mean() * np.random.default_rng(0).standard_normal(clean.shape)
    model.module.to(torch.float64)
    prep = PaddedBatch(model, ud.Dataset(t, noisy, states=["x"]), torch.float64)
    return comparison_solver(model.module, prep, torch.tensor([[x0]], dtype=torch.float64)).substeps


def test_slow_dynamics_keep_one_substep():
    # logistic growth sampled 15 times per e-folding: RK4's error is far below 1 % noise
    assert substeps_for(x * (1 - x), 0.1, np.linspace(0, 10, 150)) == 1


def test_fast_dynamics_get_more_substeps():
    # x' = -x³ from 5: the rate 3x² = 75 times the interval 0.067 is 5, far outside RK4's accuracy
    got = substeps_for(-(x**3), 5.0, np.linspace(0, 10, 150))
    assert 2 <= got <= MAX_SUBSTEPS
