"""A candidate is never lost to a bad start: SIR whose fit puts the initial infected fraction below 0.

Short training on one noisy SIR outbreak (β = 0.5 and the unknown incidence U = β S I; γ = 0.12
learnable) fits an initial infected fraction below zero (measured: -0.021).  From there the true
model blows up (S grows without bound while I turns more negative), so before the retry from the
data's own (smoothed, non-negative) initial states, the incidence S*I was left unscored and a wrong
four-term U was reported as inadequate; with it, S*I is chosen.
"""

import numpy as np
import sympy as sp
import torch

import udesci as ud
from udesci.discovery.discover import DiscoveryState, data_starts


def test_sir_incidence_is_recovered_from_a_negative_fitted_start():
    S, I = sp.symbols("S I", nonnegative=True)  # noqa: E741 (the epidemiologists' names)
    gamma = sp.Symbol("gamma")
    U = sp.Function("U")
    truth = ud.HybridModel({S: -0.5 * S * I, I: 0.5 * S * I - 0.12 * I})
    t = np.linspace(0, 40, 41)
    clean = ud.simulate(truth, (0.99, 0.01), t)
    noisy = clean * (1 + 0.02 * np.random.default_rng(0).standard_normal(clean.shape))
    data = ud.Dataset(t, noisy, states=["S", "I"])
    torch.manual_seed(0)
    model = ud.HybridModel({S: -U(S, I), I: U(S, I) - gamma * I}, params={gamma: ud.Learnable(0.2)})
    fitted = ud.fit(
        model, data, seed=0, progress=False,
        warm_start=ud.WarmStart(iterations=300), shooting=ud.Shooting(iterations=200, lr=1e-2),
    )  # fmt: skip
    assert fitted.initial_states[0, 1] < 0  # the bad start this test is about
    found = ud.discover(fitted, seed=0, progress=False)
    assert set(sp.expand(found.unknowns["U"]).as_coefficients_dict()) == {I * S}
    coef = float(sp.expand(found.unknowns["U"]).coeff(I * S))
    assert abs(coef - 0.5) < 0.02  # 2 % noise on 41 points: measured 0.4998
    assert found.adequacy.adequate


def test_data_starts_are_the_smoothed_first_observations_inside_the_domain():
    class Batch:
        smooth = torch.tensor([[[0.5, -0.1, np.nan]]], dtype=torch.float64)
        scale = torch.ones(3, dtype=torch.float64)

    class Model:
        states = sp.symbols("a b c", nonnegative=True)

    state = DiscoveryState.__new__(DiscoveryState)
    state.batch, state.model = Batch, Model
    state.y0 = torch.tensor([[9.0, 9.0, 7.0]], dtype=torch.float64)
    # observed states start at their smoothed value (b clamped to its domain), the hidden one at the fit's
    assert data_starts(state).tolist() == [[0.5, 0.0, 7.0]]
