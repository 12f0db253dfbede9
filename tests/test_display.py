"""Notebook displays and prediction on any grid.

Displays: short ``repr`` (≤ 300 characters), HTML with the equations (values substituted, 4
significant digits), parameter and data tables, escaped user text.  Prediction: a grid that
starts later than the trajectory is read off the simulation from the fitted initial state (never
shifted), one that starts earlier is refused, and a new initial state is honoured; reference
values come from the closed-form solution x(t) = x0 exp(-k t) (tolerance 1e-7: dopri5 at 1e-9).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

import udesci as ud

x, y, k, alpha = sp.symbols("x y k alpha")
U = sp.Function("U")


@pytest.fixture(scope="module")
def decay():
    model = ud.HybridModel({x: -k * x}, {k: ud.Learnable(0.7)})
    t = np.linspace(0.0, 2.0, 21)
    data = ud.Dataset(t, (2.0 * np.exp(-0.7 * t))[:, None], states=["x"])
    fitted = ud.fit(model, data, warm_start=None, shooting=ud.Shooting(iterations=0), progress=False)
    return fitted


def test_reprs_are_short_and_say_what_the_object_is(decay):
    model = ud.HybridModel({x: alpha * x + U(x, y), y: -y}, {alpha: 1.3})
    for obj, head in ((model, "HybridModel("), (decay.data, "Dataset("), (decay, "FitResult(")):
        text = repr(obj)
        assert text.startswith(head) and len(text) <= 300, text
    assert "U(x, y)" in repr(model) and "alpha=1.3" in repr(model)
    assert "21 points" in repr(decay.data) and "0 missing" in repr(decay.data)
    long = ud.HybridModel({sp.Symbol(f"s{i}"): -sp.Symbol(f"s{i}") for i in range(200)})
    assert len(repr(long)) <= 300


def test_html_shows_equations_with_values_and_escapes_names(decay):
    page = decay.model._repr_html_()
    assert "$$" in page and "0.7" in page and "learnable" in page
    latex = decay.model._repr_latex_()
    assert latex.startswith("$$") and "0.7 x" in latex
    sneaky = ud.Dataset(np.arange(3.0), np.ones((3, 1)), states=["<b>x</b>"])
    assert "<b>x</b>" not in sneaky._repr_html_() and "&lt;b&gt;" in sneaky._repr_html_()
    assert "<table>" in decay._repr_html_()


def test_predict_reads_later_grids_off_the_fitted_trajectory(decay):
    y0 = decay.initial_states[0, 0]
    later = decay.predict([1.0, 1.5])
    np.testing.assert_allclose(later[:, 0], y0 * np.exp(-0.7 * np.array([1.0, 1.5])), rtol=1e-7)
    with pytest.raises(ud.DataError, match="before trajectory 0's first time"):
        decay.predict([-1.0, 0.5])
    fresh = decay.predict([3.0, 4.0], y0=[1.0])  # a new initial state at t[0]
    np.testing.assert_allclose(fresh[:, 0], np.exp(-0.7 * np.array([0.0, 1.0])), rtol=1e-7)
    single = decay.predict([0.0])
    np.testing.assert_allclose(single[0, 0], y0, rtol=0)


def test_discovery_predicts_and_displays():
    t = np.linspace(0.0, 3.0, 31)
    truth = ud.HybridModel({x: -0.5 * x * x})
    data = ud.Dataset(t, ud.simulate(truth, [1.5], t), states=["x"])
    model = ud.HybridModel({x: U(x)}, width=8)
    fitted = ud.fit(
        model, data, warm_start=ud.WarmStart(iterations=300), shooting=ud.Shooting(iterations=100), progress=False
    )
    found = ud.discover(fitted, selection=ud.Selection(bootstrap=10, sweeps=1))
    text = repr(found)
    assert text.startswith("Discovery(U = ") and len(text) <= 300
    page = found._repr_html_()
    assert "→" in page and "inclusion" in page and "$$" in page
    pred = found.predict(t)
    assert pred.shape == (31, 1) and math.isfinite(float(pred[-1, 0]))


def test_latex_and_printing_show_fitted_values_to_four_digits():
    gamma = sp.Symbol("gamma")
    model = ud.HybridModel({x: -gamma * x + 0.123456789 * x**2}, {gamma: ud.Learnable(0.12093456)})
    tex = ud.to_latex(model)
    assert "0.1209 x" in tex and "0.1235 x^{2}" in tex and r"\gamma" not in tex
    kept = ud.to_latex(model, substitute=False, digits=None)
    assert r"\gamma x" in kept and "0.123456789 x^{2}" in kept
    assert "0.12346 x^{2}" in ud.to_latex(model, digits=5)
    with pytest.raises(ud.ConfigError, match="digits"):
        ud.to_latex(model, digits=0)
    text = str(model)
    assert "dx/dt = 0.1235*x**2 - 0.1209*x" in text and "gamma = 0.1209 (learnable)" in text


def test_adequacy_flags_a_library_that_cannot_express_the_network():
    """Truth U(x) = -0.5 x²: the degree-2 library reproduces the network (R² near 1, data RMSE ratio near 1);
    a constant-only library cannot (R² near 0) and the result is labelled inadequate everywhere it is shown."""
    t = np.linspace(0.0, 3.0, 31)
    truth = ud.HybridModel({x: -0.5 * x * x})
    data = ud.Dataset(t, ud.simulate(truth, [1.5], t), states=["x"])
    model = ud.HybridModel({x: U(x)}, width=8)
    fitted = ud.fit(
        model, data, warm_start=ud.WarmStart(iterations=300), shooting=ud.Shooting(iterations=100), progress=False
    )
    quick = ud.Selection(bootstrap=10, sweeps=1)
    good = ud.discover(fitted, selection=quick)
    assert good.adequacy.adequate and good.adequacy.network_r2["U"] > 0.99 and good.adequacy.data_ratio < 1.5
    poor = ud.discover(fitted, selection=quick, library=ud.Library(degree=0))
    assert not poor.adequacy.adequate and poor.adequacy.network_r2["U"] < 0.5
    assert "INADEQUATE" in str(poor) and "INADEQUATE" in poor._repr_html_()
    assert poor.metrics["adequacy"]["adequate"] is False
