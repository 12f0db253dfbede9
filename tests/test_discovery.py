"""Discovery: libraries, selection on known answers, the Discovery result and its exports."""

import json
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp
import torch
from torch import nn

import udesci as ud
from udesci.pipelines.lotka_volterra import BETA, GAMMA, U0, assess, make_data

x, y, alpha, delta = sp.symbols("x y alpha delta")
U, V = sp.symbols("U V", cls=sp.Function)


class Exact(nn.Module):
    """A 'trained network' that is exactly c * x * y (plus an optional bias), to test discovery alone."""

    def __init__(self, c, bias=0.0):
        super().__init__()
        self.c, self.bias = c, bias

    def forward(self, z):
        return (self.c * z[..., 0] * z[..., 1] + self.bias).unsqueeze(-1)


def exact_fit(noise=0.005, seed=0, u_net=None, v_net=None):
    t, clean, noisy = make_data(noise, seed)
    data = ud.Dataset(t, noisy, states=["x", "y"])
    model = ud.HybridModel(
        {x: alpha * x + U(x, y), y: -delta * y + V(x, y)},
        params={alpha: 1.3, delta: 1.8},
        networks={"U": u_net or Exact(-BETA), "V": v_net or Exact(GAMMA)},
    )
    model.module.to(torch.float64)
    return ud.FitResult(model, [], np.array([U0]), data=data), clean


def test_library_terms_in_the_unknowns_own_arguments():
    lib = ud.Library(degree=2)
    assert lib.terms([x, y]) == [1, x, y, x**2, x * y, y**2]
    assert ud.Library(degree=1, constant=False, trig=True).terms([x]) == [x, sp.sin(x), sp.cos(x)]
    extra = ud.Library(degree=0, extra=("x*exp(-y)",)).terms([x, y])
    assert extra == [1, x * sp.exp(-y)]


def test_library_rejects_bad_input():
    with pytest.raises(ud.ConfigError, match="degree"):
        ud.Library(degree=-1)
    with pytest.raises(ud.ConfigError, match="z"):
        ud.Library(extra=(sp.Symbol("z"),)).terms([x, y])
    with pytest.raises(ud.ConfigError, match="__import__"):
        ud.Library(extra=("__import__('os')",)).terms([x, y])


def test_selection_validates():
    with pytest.raises(ud.ConfigError, match="criterion"):
        ud.Selection(criterion="r2")
    with pytest.raises(ud.ConfigError, match="thresholds"):
        ud.Selection(thresholds=1)
    with pytest.raises(ud.ConfigError, match="bootstrap"):
        ud.Selection(bootstrap=-1)
    with pytest.raises(ud.ConfigError, match="rescore"):
        ud.Selection(rescore=0)


def test_discover_rejects_wrong_inputs():
    with pytest.raises(ud.ConfigError, match="FitResult"):
        ud.discover("model")
    t, _, noisy = make_data(0.0, 0)
    plain = ud.HybridModel({x: alpha * x, y: -delta * y}, params={alpha: 1.3, delta: 1.8})
    fr = ud.FitResult(plain, [], np.array([U0]), data=ud.Dataset(t, noisy, states=["x", "y"]))
    with pytest.raises(ud.ConfigError, match="no unknown"):
        ud.discover(fr)
    fitted, _ = exact_fit()
    with pytest.raises(ud.ConfigError, match="W"):
        ud.discover(fitted, library={"W": ud.Library()})


def test_a_model_that_blows_up_on_the_data_span_is_a_training_error():
    # networks with runaway feedback: the solver gives up before t=3; discover says so, naming the argument
    fitted, _ = exact_fit(u_net=Exact(50.0), v_net=Exact(50.0))
    with pytest.raises(ud.TrainingError, match="fitted: the trained model cannot be simulated"):
        ud.discover(fitted, seed=0, progress=False)


def test_exact_networks_give_exactly_the_xy_terms():
    # the 'networks' are the truth, so discovery must return exactly x*y in each unknown; after the
    # refit on data with 0.5% noise the coefficients are within 2% (the data's noise limits them)
    fitted, _ = exact_fit()
    found = ud.discover(fitted, seed=0)
    res = assess(found)
    assert res["correct_structure"], found.summary()
    assert res["beta_rel_error"] < 0.02 and res["gamma_rel_error"] < 0.02
    # x*y is selected in (nearly) every bootstrap replicate; the bootstrap intervals cover the truth
    for name, truth in (("U", -BETA), ("V", GAMMA)):
        det = found.details[name]
        assert det.inclusion["x*y"] >= 0.9
        lo, hi = det.intervals["x*y"]
        assert lo < hi and lo - 0.02 < truth < hi + 0.02
    # the closed-form model has no unknowns and simulates close to the clean data
    assert not found.model.unknowns
    t, clean, _ = make_data(0.0, 0)
    sim = ud.simulate(found.model, U0, t)
    assert np.max(np.abs(sim - clean)) < 0.05  # 2% coefficient error over t <= 3 stays below 0.05


def test_spurious_constant_in_the_network_is_not_kept_when_data_contradict_it():
    # V's 'network' carries a bias the data cannot support: the data-scored selection drops it
    fitted, _ = exact_fit(v_net=Exact(GAMMA, bias=0.05))
    found = ud.discover(fitted, seed=0)
    assert assess(found)["correct_structure"], found.summary()
    # AIC's lighter penalty also drops V's constant (it may keep a weak extra term in U)
    found = ud.discover(fitted, seed=0, selection=ud.Selection(criterion="aic"))
    assert assess(found)["V_terms"] == ["x*y"], found.summary()


def test_discovery_exports_round_trip(tmp_path):
    fitted, _ = exact_fit()
    found = ud.discover(fitted, seed=0)
    found.to_json(tmp_path / "eq.json")
    doc = json.loads((tmp_path / "eq.json").read_text())
    assert set(doc["unknowns"]) == {"U", "V"}
    assert "x*y" in doc["unknowns"]["U"]["expression"]
    assert "inclusion" in doc["unknowns"]["U"] and "intervals" in doc["unknowns"]["U"]
    loaded, _ = ud.load_json(tmp_path / "eq.json")
    t = np.linspace(0, 3, 31)
    # same expressions and parameters: identical up to float printing (repr round-trips exactly)
    np.testing.assert_allclose(ud.simulate(loaded, U0, t), ud.simulate(found.model, U0, t), rtol=0, atol=1e-12)
    assert "\\frac{d x}{d t}" in found.to_latex()
    # an unknown is written with its declared arguments even when its expression uses fewer
    found.details["U"].expression = sp.Float(-0.9) * x
    assert "U(x, y) &= - 0.9 x" in found.to_latex()
    found.to_python(tmp_path / "lv_model.py")
    code = (
        "import importlib.util, json, numpy as np\n"
        f"spec = importlib.util.spec_from_file_location('m', {str(tmp_path / 'lv_model.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        f"print(json.dumps(m.simulate({list(U0)!r}, np.linspace(0, 3, 31)).tolist()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    standalone = np.array(json.loads(out.stdout))
    # scipy DOP853 at 1e-10 vs torch dopri5 at 1e-8: both within ~1e-7 of the exact solution
    np.testing.assert_allclose(standalone, ud.simulate(found.model, U0, t), atol=1e-6)
    assert "udesci" not in out.stderr


def test_a_plain_list_of_sympy_terms_is_a_library():
    from udesci.discovery.library import as_library

    terms = [x, y, x * y, x**2 * y]
    assert as_library(terms, [x, y]).terms([x, y]) == terms
    assert as_library([1, "x*y"], [x, y]).terms([x, y]) == [1, x * y]  # numbers are constants, strings parsed
    fitted, _ = exact_fit()
    fast = ud.Selection(shortlist=8, rescore=8, sweeps=1)
    found = ud.discover(fitted, library=terms, selection=fast, progress=False)
    assert found.details["U"].terms == terms and assess(found)["correct_structure"], found.summary()
    # per unknown: a dict of lists (an unknown left out gets the default library)
    found = ud.discover(fitted, library={"U": terms}, selection=fast, progress=False)
    assert found.details["U"].terms == terms and found.details["V"].terms == ud.Library().terms([x, y])
    z = sp.Symbol("z")
    with pytest.raises(ud.ConfigError, match=r"library\['V'\]\[1\]: expected a SymPy expression.*NoneType"):
        ud.discover(fitted, library={"V": [x, None]})
    with pytest.raises(ud.ConfigError, match=r"library\['U'\]: .*x\*z.*uses \['z'\].*\['x', 'y'\]"):
        ud.discover(fitted, library={"U": [x, x * z]})
    with pytest.raises(ud.ConfigError, match="empty list"):
        ud.discover(fitted, library=[])
    with pytest.raises(ud.ConfigError, match="list of SymPy terms"):
        ud.discover(fitted, library="x*y")


def test_discover_on_other_data_with_more_trajectories_than_the_fit():
    """``discover(fitted, data)`` with a Dataset of other trajectories (here the training series cut into
    three overlapping windows, the fit had one) samples and scores from each window's own start (its
    smoothed first values) instead of the fit's one initial state, and still finds exactly x*y."""
    fitted, _ = exact_fit()
    tr = fitted.data.trajectories[0]
    cuts = [(0.0, 1.5), (1.0, 2.5), (1.5, 3.0)]
    ts = [tr.t[(tr.t >= a) & (tr.t <= b)] for a, b in cuts]
    ys = [tr.y[(tr.t >= a) & (tr.t <= b)] for a, b in cuts]
    windows = ud.Dataset(ts, ys, states=["x", "y"])
    found = ud.discover(fitted, windows, seed=0, selection=ud.Selection(bootstrap=0))
    res = assess(found)
    assert res["correct_structure"], found.summary()
    assert res["beta_rel_error"] < 0.03 and res["gamma_rel_error"] < 0.03
    assert found.refit.initial_states.shape == (3, 2)
