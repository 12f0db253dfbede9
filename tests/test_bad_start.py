"""A candidate is never lost to a bad start: SIR whose fit puts the initial infected fraction on 0.

Short training on one noisy SIR outbreak (β = 0.5 and the unknown incidence U = β S I; γ = 0.12
learnable) would fit an initial infected fraction below zero (measured before states had declared
domains: -0.021); I is declared nonnegative, so training's projection stops it at 0, a fixed point of
the true model.  From there (or, unconstrained, from below 0, where the true model blows up) the
incidence S*I cannot fit, so without the refit from the data's own (smoothed, nonnegative) initial
states a wrong U was chosen; with it, S*I is chosen.
"""

import numpy as np
import sympy as sp
import torch

import udesci as ud
from udesci.discovery.discover import DiscoveryState, data_starts
from udesci.train import PaddedBatch


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
    assert fitted.initial_states[0, 1] == 0.0  # the bad start this test is about: on I's boundary
    found = ud.discover(fitted, seed=0, progress=False)
    assert set(sp.expand(found.unknowns["U"]).as_coefficients_dict()) == {I * S}
    coef = float(sp.expand(found.unknowns["U"]).coeff(I * S))
    assert abs(coef - 0.5) < 0.02  # 2 % noise on 41 points: measured 0.4998
    assert found.adequacy.adequate


def test_data_starts_are_the_smoothed_first_observations_inside_the_domain():
    a, b, c = sp.symbols("a b c", nonnegative=True)
    t = np.linspace(0, 1, 6)
    data = ud.Dataset(t, np.column_stack([0.5 + 0 * t, t - 0.1, np.nan * t]), states=["a", "b", "c"])
    state = DiscoveryState.__new__(DiscoveryState)
    state.batch = PaddedBatch(ud.HybridModel({a: -a, b: -b, c: -c}), data, torch.float64)
    state.y0 = torch.tensor([[9.0, 9.0, 7.0]], dtype=torch.float64)
    # observed states start at their smoothed value (b, at -0.1, clamped to its domain), the hidden one at the fit's
    np.testing.assert_allclose(data_starts(state).numpy(), [[0.5, 0.0, 7.0]], atol=1e-12)
