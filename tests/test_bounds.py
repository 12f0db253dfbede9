"""Declared state domains: ``HybridModel(bounds=)`` and SymPy sign assumptions, respected by training,
initial-state estimates, discovery's scoring, the exports and the plots (issue 11, point 5)."""

from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pytest
import sympy as sp
import torch
from torch import nn

import udesci as ud
from udesci import plots
from udesci.config import build_model, load_config
from udesci.discovery.discover import DiscoveryState, data_starts, off_sides
from udesci.export import load_json, model_from_dict, model_to_dict, save_json
from udesci.model import Bounds
from udesci.train import PaddedBatch

x, y = sp.symbols("x y")
U = sp.Function("U")
INF = math.inf


# ------------------------------------------------------------------------------------------------
# declaring bounds


@pytest.mark.parametrize(
    ("bounds", "error", "message"),
    [
        ({"z": (0, 1)}, ud.ModelError, r"bounds: str 'z' is not a state of the model; expected one of \['x', 'y'\]"),
        ({x: (1, 0)}, ud.ConfigError, r"bounds\['x'\]: Bounds: expected lower < upper, received lower=1, upper=0"),
        ({x: (1, 1)}, ud.ConfigError, r"bounds\['x'\]: Bounds: expected lower < upper"),
        ({x: (math.nan, 1)}, ud.ConfigError, r"bounds\['x'\]: Bounds lower: expected a real number .*received nan"),
        ({x: ("0", 1)}, ud.ConfigError, r"bounds\['x'\]: expected the lower bound as a real number, None or ±inf"),
        ({x: (True, 1)}, ud.ConfigError, r"bounds\['x'\]: expected the lower bound as a real number"),
        ({x: (INF, None)}, ud.ConfigError, r"bounds\['x'\]: Bounds: expected lower < inf and upper > -inf"),
        ({x: (0, 1, 2)}, ud.ModelError, r"bounds\['x'\]: expected a \(lower, upper\) pair, received 3 values"),
        ({x: 0}, ud.ModelError, r"bounds\['x'\]: expected a \(lower, upper\) pair .*received int 0"),
        ({x: (0, 1), "x": (0, 2)}, ud.ModelError, r"bounds: state 'x' is given twice"),
        ([(x, (0, 1))], ud.ModelError, r"bounds: expected a mapping \{state: \(lower, upper\)\}, received list"),
    ],
)
def test_bad_bounds_are_refused_naming_the_argument(bounds, error, message):
    with pytest.raises(error, match=message):
        ud.HybridModel({x: -x, y: x - y}, bounds=bounds)


def test_bounds_contradicting_an_assumption_are_refused():
    p = sp.Symbol("p", positive=True)
    with pytest.raises(ud.ModelError, match=r"bounds\['p'\]: \[-2, 0\] contradicts the state's SymPy assumption "
                                            r"positive=True \(the domain \(0, inf\)\)"):  # fmt: skip
        ud.HybridModel({p: -p}, bounds={p: (-2, 0)})
    model = ud.HybridModel({p: -p})
    with pytest.raises(ud.ModelError, match="contradicts"):
        model.with_bounds({"p": (None, -1)})
    with pytest.raises(ud.ConfigError, match="Bounds lower_open: expected True or False"):
        Bounds(0, 1, lower_open="yes")


def test_state_bounds_merge_assumptions_and_declared_bounds_the_tighter_side_winning():
    p, q = sp.Symbol("p", positive=True), sp.Symbol("q", nonnegative=True)
    n, m = sp.Symbol("n", negative=True), sp.Symbol("m", nonpositive=True)
    free = sp.Symbol("free")
    model = ud.HybridModel(
        {p: -p, q: -q, n: -n, m: -m, free: -free},
        # keys by name or by a plain symbol of the same name; q's declared lower side is looser than its assumption
        bounds={"p": (None, 5), sp.Symbol("q"): (-1, 2), n: (-3, INF), m: (None, None)},
    )
    b = model.state_bounds
    assert list(b) == ["p", "q", "n", "m", "free"]
    assert b["p"] == Bounds(0.0, 5.0, lower_open=True) and b["p"].interval() == "(0, 5]"
    assert b["q"] == Bounds(0.0, 2.0) and b["q"].interval() == "[0, 2]"
    assert b["n"] == Bounds(-3.0, 0.0, upper_open=True) and b["n"].interval() == "[-3, 0)"
    assert b["m"] == Bounds(-INF, 0.0) and b["m"].interval() == "(-inf, 0]"
    assert b["free"] == Bounds() and not b["free"].declared
    assert model.bounds == {"p": Bounds(-INF, 5.0), "q": Bounds(-1.0, 2.0), "n": Bounds(-3.0, INF)}  # as declared
    # the same bound closed and open: open wins (the tighter)
    assert Bounds(0, 1).intersect(Bounds(0, 2, lower_open=True)) == Bounds(0, 1, lower_open=True)
    assert Bounds(0, 1, upper_open=True).intersect(Bounds(-1, 1)) == Bounds(0, 1, upper_open=True)


def test_bounds_survive_copy_substitute_and_the_json_round_trip(tmp_path):
    p = sp.Symbol("p", positive=True)
    model = ud.HybridModel({p: -p + U(p, y), y: p - y}, bounds={p: (None, 10), y: Bounds(-1, 2, upper_open=True)})
    assert model.copy().state_bounds == model.state_bounds
    assert model.substitute({"U": p * y}).state_bounds == model.state_bounds
    path = save_json(model, tmp_path / "m.json")
    stored = json.loads(path.read_text())["bounds"]
    assert stored == {
        "p": {"lower": 0.0, "upper": 10.0, "lower_open": True, "upper_open": False},
        "y": {"lower": -1.0, "upper": 2.0, "lower_open": False, "upper_open": True},
    }
    loaded, _ = load_json(path)
    assert loaded.state_bounds == model.state_bounds  # p's assumption is kept as a bound: its symbol is plain now
    assert "bounds" in model_to_dict(ud.HybridModel({x: -x})) and model_to_dict(ud.HybridModel({x: -x}))["bounds"] == {}
    bad = model_to_dict(model)
    bad["bounds"]["p"]["lower"] = "0"
    with pytest.raises(ud.ConfigError, match=r"m: key 'bounds'\['p'\]\['lower'\]: expected a number or null"):
        model_from_dict(bad, source="m")
    bad["bounds"] = {"z": {"lower": 0}}
    with pytest.raises(ud.ConfigError, match=r"m: key 'bounds'\['z'\]: not a state"):
        model_from_dict(bad, source="m")
    bad["bounds"] = {"p": {"lower": 3, "upper": 1}}
    with pytest.raises(ud.ConfigError, match=r"m: key 'bounds'\['p'\]: Bounds: expected lower < upper"):
        model_from_dict(bad, source="m")


TOML = """
[data]
file = "d.csv"
time = "t"
states = ["x", "y"]

[model.equations]
x = "-x + U(x, y)"
y = "x - y"

[model.bounds]
{bounds}
"""


def test_toml_declares_bounds(tmp_path):
    def load(bounds: str):
        path = tmp_path / "p.toml"
        path.write_text(textwrap.dedent(TOML.format(bounds=bounds)))
        return build_model(load_config(path))

    model = load("x = [0, inf]\ny = [-1.5, 2]")
    assert model.state_bounds == {"x": Bounds(0.0, INF), "y": Bounds(-1.5, 2.0)}
    with pytest.raises(ud.ConfigError, match=r"p.toml: \[model.bounds\] z: not a state of \[model.equations\]"):
        load("z = [0, 1]")
    with pytest.raises(ud.ConfigError, match=r"\[model.bounds\] x: expected lower < upper .*received \[1, 0\]"):
        load("x = [1, 0]")
    with pytest.raises(ud.ConfigError, match=r"\[model.bounds\] x: expected a \[lower, upper\] pair of numbers"):
        load('x = ["0", 1]')
    with pytest.raises(ud.ConfigError, match=r"\[model.bounds\] x: expected a \[lower, upper\] pair of numbers"):
        load("x = [nan, 1]")


# ------------------------------------------------------------------------------------------------
# training and initial-state estimates


def ramp(first: float):
    """Observations of a straight line 0.3 t + first on [0, 1] (a cubic smoothing spline keeps a line exactly)."""
    t = np.linspace(0, 1, 11)
    return t, ud.Dataset(t, (0.3 * t + first)[:, None], states=["x"])


def test_initial_estimates_start_inside_the_declared_domain():
    _, data = ramp(-0.05)  # smoothed first value -0.05
    cases = [
        (sp.Symbol("x"), None, -0.05),  # undeclared: the data's estimate as it is
        (sp.Symbol("x", nonnegative=True), None, 0.0),  # onto the closed side
        (sp.Symbol("x"), {"x": (0.1, 1.0)}, 0.1),
    ]
    for sym, bounds, start in cases:
        model = ud.HybridModel({sym: -sym}, bounds=bounds)
        batch = PaddedBatch(model, data, torch.float64)
        assert float(batch.initial_guess()[0, 0]) == pytest.approx(start, abs=1e-12)
    # a positive state: 1e-6 of the data's scale inside its open side
    batch = PaddedBatch(ud.HybridModel({sp.Symbol("x", positive=True): 0}), data, torch.float64)
    assert float(batch.initial_guess()[0, 0]) == pytest.approx(1e-6 * float(batch.scale[0]), rel=1e-9)
    # discovery's restart from the data uses the same domains
    state = DiscoveryState.__new__(DiscoveryState)
    state.batch = PaddedBatch(ud.HybridModel({x: -x}, bounds={x: (0.1, 1)}), data, torch.float64)
    state.y0 = torch.tensor([[0.5]], dtype=torch.float64)
    assert data_starts(state).tolist() == [[0.1]]
    # fitted starts on a side of the domain (where training's projection stops them) are refit from the data's
    t, data = ramp(0.2)
    three = ud.Dataset([t] * 3, [data.trajectories[0].y] * 3, states=["x"])
    batch = PaddedBatch(ud.HybridModel({x: -x, y: -y}, bounds={x: (0, None)}), three, torch.float64)
    fitted = torch.tensor([[0.0, 0.0], [1e-9, 0.0], [0.5, 0.0]], dtype=torch.float64)
    assert batch.on_sides(fitted).tolist() == [[True, False], [True, False], [False, False]]  # y: undeclared
    np.testing.assert_allclose(off_sides(batch, fitted).numpy(), [[0.2, 0.0], [0.2, 0.0], [0.5, 0.0]], atol=1e-12)
    # a never-observed state bounded on both sides starts in the middle of its domain
    hidden = ud.HybridModel({x: -x, y: -y}, bounds={y: (2, 4)})
    assert PaddedBatch(hidden, data, torch.float64).initial_guess()[0, 1].item() == 3.0


def test_trained_initial_states_stay_inside_the_declared_domain():
    # x = 0.3 t - 0.05 fits exactly with x(0) = -0.05; declared nonnegative, training keeps x(0) at 0
    c = sp.Symbol("c")
    _, data = ramp(-0.05)
    options = dict(
        warm_start=None, shooting=ud.Shooting(iterations=60, lr=2e-2), full=ud.FullTrajectory(iterations=20, lr=1e-2),
        progress=False,
    )  # fmt: skip
    free = ud.fit(ud.HybridModel({x: c}, {c: ud.Learnable(0.1)}), data, **options)
    bounded = ud.fit(ud.HybridModel({x: c}, {c: ud.Learnable(0.1)}, bounds={x: (0, None)}), data, **options)
    assert free.initial_states[0, 0] < -0.02  # unconstrained, the start goes where the line says
    assert bounded.initial_states[0, 0] == 0.0  # on the boundary, not below it
    with pytest.raises(ud.ConfigError, match=r"initial\['x'\]: expected values in x's declared domain \[0, inf\)"):
        ud.fit(ud.HybridModel({x: c}, {c: ud.Learnable(0.1)}, bounds={x: (0, None)}), data, initial={"x": -1.0})


# ------------------------------------------------------------------------------------------------
# discovery


class Exact(nn.Module):
    """A 'trained network' that is exactly U(x) = -x, to test discovery alone."""

    def forward(self, z):
        return -z


def test_a_candidate_leaving_the_declared_domain_is_not_scored_and_says_why():
    # x(t) = exp(-t) on [0, 4], U(x) = -x; the constant candidate's best line x0 - c t crosses 0 before t = 4
    t = np.linspace(0, 4, 21)
    data = ud.Dataset(t, np.exp(-t)[:, None], states=["x"])
    model = ud.HybridModel({x: U(x)}, networks={"U": Exact()}, bounds={x: (0, None)})
    fitted = ud.FitResult(model, [], np.array([[1.0]]), data=data)
    selection = ud.Selection(bootstrap=0, sweeps=1)
    found = ud.discover(fitted, library=ud.Library(degree=1), selection=selection, progress=False)
    cands = {c.support: c for c in found.details["U"].candidates}
    constant = cands[(0,)]  # library [1, x]
    assert constant.score == math.inf and not math.isfinite(constant.data_sse)
    assert constant.problem.startswith("its whole-trajectory simulation leaves the declared domain of x ([0, inf))")
    assert "not scored: its whole-trajectory simulation leaves the declared domain of x" in found.summary()
    assert cands[(1,)].problem == "" and math.isfinite(cands[(1,)].score)  # -x stays positive
    chosen = sp.expand(found.unknowns["U"])
    assert set(chosen.as_coefficients_dict()) == {x} and abs(float(chosen.coeff(x)) + 1) < 1e-4  # exact data
    assert found.model.state_bounds == model.state_bounds  # the discovered model keeps the declared domain
    # undeclared, the same line is scored (and loses on the criterion)
    free = ud.FitResult(ud.HybridModel({x: U(x)}, networks={"U": Exact()}), [], np.array([[1.0]]), data=data)
    again = ud.discover(free, library=ud.Library(degree=1), selection=selection, progress=False, refit=False)
    line = {c.support: c for c in again.details["U"].candidates}[(0,)]
    assert line.problem == "" and math.isfinite(line.score)


# ------------------------------------------------------------------------------------------------
# plots


def test_plot_axes_keep_to_a_declared_domain_and_say_so():
    t = np.linspace(0, 1, 11)
    frac = 0.5 + 0.45 * np.sin(3 * t)  # in [0.5, 0.95]: 15 % margins would pass 1 above
    level = 2.0 + t  # all >= 0, undeclared: the data-based guess (no effect here, far from 0)
    data = ud.Dataset(t, np.column_stack([frac, level]), states=["x", "y"])
    model = ud.HybridModel({x: 0 * x, y: 0 * y}, bounds={x: (0, 1)})
    fitted = ud.FitResult(model, [], np.array([[0.5, 2.0]]), data=data)
    fig = plots.plot_fit(fitted)
    lo, hi = fig.axes[0].get_ylim()
    span = np.ptp(frac)
    assert hi == 1.0 and lo == pytest.approx(frac.min() - 0.15 * span)  # the declared upper side caps the margin
    note = fig.get_supxlabel().replace("\n", " ")
    assert "x in [0, 1]: declared domain, the axis stays inside it." in note
    assert "y: all observations ≥ 0, so treated as nonnegative" in note  # the guess, for the undeclared state
    # the same without the declaration: the margin passes 1
    fig = plots.plot_fit(ud.FitResult(ud.HybridModel({x: 0 * x, y: 0 * y}), [], np.array([[0.5, 2.0]]), data=data))
    assert (
        fig.axes[0].get_ylim()[1] == pytest.approx(frac.max() + 0.15 * span) and "declared" not in fig.get_supxlabel()
    )
    # a declared lower side replaces the data-based guess; an observation outside is never cut off
    assert plots.data_limits([0.2, 1.0], lower=0.1) == (pytest.approx(0.1), pytest.approx(1.12))
    assert plots.data_limits([-0.1, 1.0], lower=0.0)[0] == pytest.approx(-0.1 - 0.165)
    # the phase portrait: both axes
    phase = plots.plot_phase(fitted)
    assert phase.axes[0].get_xlim()[1] == 1.0
    assert "x in [0, 1]: declared domain" in phase.get_supxlabel().replace("\n", " ")


def test_the_report_caption_names_the_declared_domain_and_the_guess(tmp_path):
    t = np.linspace(0, 1, 11)
    data = ud.Dataset(t, np.column_stack([0.5 + 0.45 * np.sin(3 * t), 2.0 + t]), states=["x", "y"])
    model = ud.HybridModel({x: 0 * x, y: 0 * y}, bounds={x: (0, 1)})
    fitted = ud.FitResult(model, [], np.array([[0.5, 2.0]]), data=data)
    md = ud.report.write_report(tmp_path / "rep", title="Bounded", fitted=fitted).read_text()
    assert "Axes stay inside the declared domains (x [0, 1])." in md
    assert "Axes of y start at 0: all their observations are ≥ 0" in md and "Axes of x, y" not in md
