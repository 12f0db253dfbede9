"""Plots return matplotlib Figures: what they draw, how they are bounded, what they are labelled.

The fixtures are built by hand (no training, no discovery run): a Lotka–Volterra hybrid model whose
"networks" are exact products c·prey·predator, fitted results holding the true initial states, and a
Discovery whose closed forms are those products — so every curve's expected shape is known.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import sympy as sp
import torch
from matplotlib.figure import Figure
from torch import nn

import udesci as ud
from udesci import plots
from udesci.discovery.results import Candidate, Discovery, UnknownDiscovery

prey, predator, alpha, delta, days = sp.symbols("prey predator alpha delta days")
U, V = sp.symbols("U V", cls=sp.Function)
STARTS = [[0.44, 4.6], [2.0, 1.5], [1.0, 1.0]]


class Product(nn.Module):
    """A 'network' that is exactly c * z0 * z1."""

    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, z):
        return (self.c * z[..., 0] * z[..., 1]).unsqueeze(-1)


def true_model():
    return ud.HybridModel(
        {prey: 1.3 * prey - 0.9 * prey * predator, predator: -1.8 * predator + 0.8 * prey * predator}, time=days
    )


def lotka_volterra_fit(n_traj=3, u_coef=-0.9, missing=False):
    t = np.linspace(0.0, 3.0, 16)
    ys = [ud.simulate(true_model(), s, t) for s in STARTS[:n_traj]]
    if missing:
        ys[0][2, 1] = np.nan
    data = ud.Dataset([t] * n_traj, ys, states=["prey", "predator"])
    model = ud.HybridModel(
        {prey: alpha * prey + U(prey, predator), predator: -delta * predator + V(prey, predator)},
        {alpha: 1.3, delta: 1.8},
        time=days,
        networks={"U": Product(u_coef), "V": Product(0.8)},
    )
    model.module.to(torch.float64)
    history = [{"stage": "warm_start", "iteration": i, "loss": 10.0 * 0.97**i} for i in range(40)]
    history += [{"stage": "shooting", "iteration": i, "loss": 500.0 * 0.98**i} for i in range(30)]
    return ud.FitResult(model, history, np.array(STARTS[:n_traj]), data=data)


def exact_discovery(fitted):
    """A Discovery whose closed forms are the exact products (what discover would find here)."""
    args = (prey, predator)
    forms = {"U": sp.Float(-0.9) * prey * predator, "V": sp.Float(0.8) * prey * predator}
    details = {}
    for name, expr in forms.items():
        terms = [prey, predator, prey * predator]
        chosen = Candidate((2,), np.array([0.0, 0.0, float(expr.as_coeff_Mul()[0])]), expr, 0.1, 0.0, 1.0, -100.0)
        other = Candidate((0,), np.array([0.5, 0.0, 0.0]), sp.Float(0.5) * prey, 0.5, 1.0, 9.0, -20.0)
        details[name] = UnknownDiscovery(name, args, terms, [chosen, other], expr)
    closed = fitted.model.substitute(forms)
    return Discovery(
        forms,
        dict(closed.equations),
        closed,
        details,
        ud.Selection(),
        ud.Library(),
        metrics={"data_rmse_scaled": 0.01},
        initial_states=fitted.initial_states,
        data=fitted.data,
    )


def _gids(fig: Figure, kind: str, ax_index: int | None = None) -> list:
    axes = fig.axes if ax_index is None else [fig.axes[ax_index]]
    return [ln.get_gid() for ax in axes for ln in ax.get_lines() if (ln.get_gid() or "").startswith(kind + ":")]


@pytest.fixture(scope="module")
def fitted():
    return lotka_volterra_fit()


@pytest.fixture(scope="module")
def found(fitted):
    return exact_discovery(fitted)


# -- plot_fit -----------------------------------------------------------------------------------


def test_plot_fit_draws_every_trajectory_with_names_from_the_data(fitted):
    fig = fitted.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # one axis per state
    for i in range(2):
        assert sorted(_gids(fig, "data", i)) == ["data:0", "data:1", "data:2"]
        assert sorted(_gids(fig, "fitted", i)) == ["fitted:0", "fitted:1", "fitted:2"]
    assert [ax.get_ylabel() for ax in fig.axes] == ["prey", "predator"]
    assert fig.axes[-1].get_xlabel() == "days"  # the model's time symbol
    # the fitted 'networks' are exact: the model curve passes through the observations
    line = next(ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "fitted:1")
    t, y = line.get_data()
    obs = fitted.data.trajectories[1]
    np.testing.assert_allclose(np.interp(obs.t, t, y), obs.y[:, 0], atol=1e-4)


def test_plot_fit_truth_is_dashed_black_on_top(fitted, found):
    fig = plots.plot_fit(fitted, truth=true_model(), found=found)
    ax = fig.axes[0]
    truth = [ln for ln in ax.get_lines() if ln.get_gid().startswith("truth:")]
    models = [ln for ln in ax.get_lines() if ln.get_gid().split(":")[0] in ("fitted", "discovered")]
    assert len(truth) == 3 and len(models) == 6
    assert min(ln.get_zorder() for ln in truth) > max(ln.get_zorder() for ln in models)
    assert all(ln.get_color() == "k" and ln.get_linestyle() == "--" for ln in truth)
    assert all(ln.get_color() != "k" for ln in models)


def test_plot_fit_states_a_selection_of_many_trajectories(fitted):
    fig = plots.plot_fit(fitted, limit=2)
    assert sorted(_gids(fig, "data", 0)) == ["data:0", "data:1"]
    assert "Trajectories 0, 1 of 3 shown." in fig.get_supxlabel()
    fig = plots.plot_fit(fitted, trajectories=[2])
    assert _gids(fig, "data", 0) == ["data:2"] and "Trajectory 2 of 3 shown." in fig.get_supxlabel()
    with pytest.raises(ud.ConfigError, match=r"trajectories: expected distinct indices in \[0, 3\)"):
        plots.plot_fit(fitted, trajectories=[5])


def test_plot_fit_bounds_a_diverging_model_by_the_data_and_clips_nonnegative_states_at_zero():
    # data decay as 2 exp(-0.7 t); the 'fitted' model grows as exp(1.5 t), to 180 at t = 3
    x, k = sp.symbols("x k")
    t = np.linspace(0.0, 3.0, 16)
    data = ud.Dataset(t, 2 * np.exp(-0.7 * t), states=["x"])
    wrong = ud.FitResult(ud.HybridModel({x: k * x}, {k: 1.5}), [], np.array([[2.0]]), data=data)
    fig = plots.plot_fit(wrong)
    lo, hi = fig.axes[0].get_ylim()
    model_max = np.nanmax(next(ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "fitted:0").get_ydata())
    assert model_max > 50  # it does diverge ...
    assert hi <= 2.0 + 0.2 * np.ptp(data.trajectories[0].y)  # ... but the axis keeps to the data
    assert lo == 0.0  # all observations >= 0: the axis starts at 0, not below
    assert "x: all observations ≥ 0" in fig.get_supxlabel().replace("\n", " ")
    # with a negative observation the state is not treated as nonnegative
    data = ud.Dataset(t, 2 * np.exp(-0.7 * t) - 0.3, states=["x"])
    fig = plots.plot_fit(ud.FitResult(wrong.model, [], np.array([[1.7]]), data=data))
    assert fig.axes[0].get_ylim()[0] < -0.3 and "all observations ≥ 0" not in fig.get_supxlabel()


def test_plot_fit_held_out_points_and_missing_values():
    fitted = lotka_volterra_fit(n_traj=1, missing=True)
    t_test = np.array([3.2, 3.4])
    y_test = ud.simulate(true_model(), STARTS[0], np.array([0.0, 3.2, 3.4]))[1:]
    fig = plots.plot_fit(fitted, held_out=(t_test, y_test))
    assert _gids(fig, "held-out", 0) == ["held-out:0"]
    line = next(ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "fitted:0")
    assert line.get_xdata()[-1] == pytest.approx(3.4)  # the model runs over the held-out window
    with pytest.raises(ud.ConfigError, match="held_out: expected"):
        plots.plot_fit(fitted, held_out=(t_test, np.zeros((3, 5))))


def test_plot_fit_needs_data():
    bare = ud.FitResult(lotka_volterra_fit().model, [], np.array(STARTS))
    with pytest.raises(ud.ConfigError, match="plot_fit: data: expected a udesci.Dataset"):
        bare.plot()


# -- history ------------------------------------------------------------------------------------


def test_plot_history_normalises_each_stage_and_marks_the_boundary(fitted):
    fig = plots.plot_history(fitted)
    (ax,) = fig.axes
    lines = {ln.get_gid(): ln for ln in ax.get_lines() if (ln.get_gid() or "").startswith("stage:")}
    assert set(lines) == {"stage:warm_start", "stage:shooting"}
    for ln in lines.values():  # each stage starts at 1: the jump from 0.5 to 500 is not drawn as divergence
        assert ln.get_ydata()[0] == pytest.approx(1.0) and np.all(np.diff(ln.get_ydata()) < 0)
    assert lines["stage:shooting"].get_xdata()[0] == 40  # on its own segment, after the first stage
    boundaries = [ln for ln in ax.get_lines() if ln.get_gid() is None and ln.get_linestyle() == "--"]
    assert len(boundaries) == 1 and boundaries[0].get_xdata()[0] == pytest.approx(39.5)
    assert ax.get_yscale() == "log" and {t.get_text() for t in ax.texts} >= {"warm_start", "shooting"}
    empty = plots.plot_history([])
    assert "no training iterations recorded" in {t.get_text() for t in empty.axes[0].texts}


# -- phase --------------------------------------------------------------------------------------


def test_plot_phase_all_trajectories_truth_on_top_and_bounds(fitted, found):
    fig = plots.plot_phase(fitted, found=found, truth=true_model())
    (ax,) = fig.axes
    assert sorted(_gids(fig, "data")) == ["data:0", "data:1", "data:2"]
    assert len(_gids(fig, "truth")) == 3 and len(_gids(fig, "discovered")) == 3
    truth_z = min(ln.get_zorder() for ln in ax.get_lines() if ln.get_gid().startswith("truth"))
    assert truth_z > max(ln.get_zorder() for ln in ax.get_lines() if ln.get_gid().startswith("fitted"))
    assert ax.get_xlabel() == "prey" and ax.get_ylabel() == "predator"
    assert ax.get_xlim()[0] == 0.0 and ax.get_ylim()[0] == 0.0  # populations: no negative quadrant
    with pytest.raises(ud.ConfigError, match="states: 'wolf' is not a state"):
        plots.plot_phase(fitted, states=("prey", "wolf"))


# -- unknowns -----------------------------------------------------------------------------------


def test_discovery_plot_network_against_closed_form(fitted, found):
    fig = found.plot(fitted)
    time_axes = [ax for ax in fig.axes if ax.get_xlabel() == "days"]
    assert len(time_axes) == 2  # one per unknown, plus one 2-D view each (and their colour bars)
    for ax in time_axes:
        gids = [ln.get_gid() for ln in ax.get_lines()]
        assert sorted(g for g in gids if g.startswith("network")) == ["network:0", "network:1", "network:2"]
        assert sorted(g for g in gids if g.startswith("closed form")) == [f"closed form:{k}" for k in range(3)]
        net = next(ln for ln in ax.get_lines() if ln.get_gid() == "network:1").get_ydata()
        closed = next(ln for ln in ax.get_lines() if ln.get_gid() == "closed form:1").get_ydata()
        np.testing.assert_allclose(net, closed, atol=1e-9)  # the networks are the closed forms
    views = [ax for ax in fig.axes if ax.get_xlabel() == "prey" and ax.get_ylabel() == "predator"]
    assert len(views) == 2 and all(ax.collections for ax in views)  # contour map and network points
    samples = plots.unknown_samples(found, fitted)
    assert samples["U"].rms_difference() == pytest.approx(0.0, abs=1e-9)
    assert samples["U"].label == "U(prey, predator)" and set(np.unique(samples["U"].trajectory)) == {0, 1, 2}


def test_discovery_plot_without_fitted_draws_the_closed_form_only(found):
    fig = found.plot()
    assert "No fitted model given" in fig.get_supxlabel()
    assert not [ln for ax in fig.axes for ln in ax.get_lines() if (ln.get_gid() or "").startswith("network")]


def test_plot_unknowns_one_argument_is_a_scatter_with_the_closed_form_curve():
    x = sp.Symbol("x")
    W = sp.Function("W")
    t = np.linspace(0, 2, 11)
    data = ud.Dataset(t, 2 * np.exp(-0.5 * t), states=["x"])

    class Linear(nn.Module):
        def forward(self, z):
            return -0.5 * z

    model = ud.HybridModel({x: W(x)}, networks={"W": Linear()})
    model.module.to(torch.float64)
    fitted = ud.FitResult(model, [], np.array([[2.0]]), data=data)
    form = {"W": sp.Float(-0.5) * x}
    closed = model.substitute(form)
    det = UnknownDiscovery("W", (x,), [x], [Candidate((0,), np.array([-0.5]), form["W"], 0.1, 0.0)], form["W"])
    found = Discovery(
        form,
        dict(closed.equations),
        closed,
        {"W": det},
        ud.Selection(),
        ud.Library(),
        data=data,
        initial_states=fitted.initial_states,
    )
    fig = plots.plot_unknowns(found, fitted)
    right = fig.axes[1]
    assert right.get_xlabel() == "x" and _gids(fig, "network", 1) == ["network:0"]
    curve = next(ln for ln in right.get_lines() if ln.get_label() == "closed form")
    np.testing.assert_allclose(curve.get_ydata(), -0.5 * curve.get_xdata())
    with pytest.raises(ud.ConfigError, match="unknowns: expected names among"):
        plots.plot_unknowns(found, fitted, unknowns=["Q"])


# -- writing ------------------------------------------------------------------------------------


def test_save_and_png_bytes_write_png(tmp_path, fitted):
    path = plots.save(plots.plot_history(fitted), tmp_path / "loss.png")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert plots.png_bytes(plots.plot_fit(fitted))[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ud.ConfigError, match="fig: expected a matplotlib Figure"):
        plots.save("not a figure", tmp_path / "x.png")


def test_the_older_path_first_forms_still_write_files(tmp_path):
    t = np.linspace(0, 1, 5)
    y = np.stack([t, 1 - t], axis=1)
    curves = {"truth": y, "model": y + 0.01}
    assert plots.plot_fit(tmp_path / "f.png", t, y, t, curves, ["a", "b"], t_train_end=1.0) == str(tmp_path / "f.png")
    plots.plot_phase(tmp_path / "p.png", y, curves, ["a", "b"])
    plots.plot_loss(tmp_path / "l.png", [{"stage": "s", "iteration": 0, "loss": 1.0}])
    assert all((tmp_path / n).stat().st_size > 1000 for n in ("f.png", "p.png", "l.png"))


def test_plotting_leaves_pyplot_and_the_backend_alone():
    """A notebook's backend must survive: plotting builds Figures without importing pyplot or choosing a backend."""
    code = (
        "import sys, matplotlib, numpy as np\n"
        "backend = matplotlib.rcParams._get_backend_or_none()\n"
        "from udesci import plots\n"
        "fig = plots.plot_history([{'stage': 's', 'iteration': i, 'loss': 1.0 / (i + 1)} for i in range(5)])\n"
        "plots.png_bytes(fig)\n"
        "print('matplotlib.pyplot' in sys.modules, matplotlib.rcParams._get_backend_or_none() == backend)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
