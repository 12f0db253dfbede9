"""Multiple shooting trains with the adjoint as well as with direct backprop, to the same answer."""

import numpy as np
import sympy as sp

import udesci as ud

x, k = sp.symbols("x k")


def _fit_rate(adjoint):
    t = np.linspace(0.0, 2.0, 21)
    data = ud.Dataset(t, 2.0 * np.exp(-1.3 * t), states=["x"])
    model = ud.HybridModel({x: -k * x}, {k: ud.Learnable(0.5)})
    solver = ud.Solver("dopri5", rtol=1e-9, atol=1e-9, adjoint=adjoint)
    result = ud.fit(model, data, warm_start=None, progress=False,
                    shooting=ud.Shooting(segment_length=4, iterations=0, lbfgs=30, solver=solver))  # fmt: skip
    assert result.status == "ok"
    return result.model.parameter_values()[k]


def test_shooting_recovers_a_rate_with_and_without_adjoint():
    direct, adjoint = _fit_rate(False), _fit_rate(True)
    # exact data: the optimum is k = 1.3; L-BFGS stops when it stalls (measured 2.5e-5 away): bound 1e-4
    assert abs(direct - 1.3) < 1e-4
    # the same optimisation path with gradients from the two methods: they agree to solver tolerance
    # (measured 6e-12); 1e-7 leaves room for a different number of accepted steps in the backward solve
    assert abs(direct - adjoint) < 1e-7
