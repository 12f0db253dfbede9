"""Duffing, logistic and forced-oscillator systems: data, models, and recovery of each unknown."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp

import udesci as ud
import udesci.cli
from udesci.pipelines import systems
from udesci.pipelines.systems import SYSTEMS, assess, build_model, dataset, make_data, run

# fast configuration, noise 1% of each state's standard deviation; the stated tolerance on every
# true coefficient of U (relative error)
TOLERANCE = {"duffing": 0.05, "logistic": 0.05, "forced": 0.05}


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_data_and_model_fit_together(name):
    data = make_data(name, 0.01, seed=3)
    spec = SYSTEMS[name]
    assert len(data["t"]) == len(data["noisy"]) >= 2
    for t, clean, noisy in zip(data["t"], data["clean"], data["noisy"], strict=True):
        assert clean.shape == noisy.shape == (t.size, len(spec.states))
        assert np.all(np.isfinite(noisy)) and not np.allclose(clean, noisy)
    again = make_data(name, 0.01, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(data["noisy"], again["noisy"], strict=True))
    model = build_model(name)
    assert list(model.unknowns) == ["U"]
    assert [str(s) for s in model.states] == list(spec.states)
    ds = dataset(name, data)
    assert ds.n_trajectories == len(data["t"])
    # the hybrid model with the true U in place of the network reproduces the clean data
    truth = model.substitute({"U": _true_u(name)})
    k = 0
    kwargs = {}
    if name == "forced":
        kwargs = {"inputs": data["inputs"][k], "input_times": data["input_times"][k], "interpolation": "cubic"}
    sim = ud.simulate(truth, data["y0"][k], data["t"][k], **kwargs)
    np.testing.assert_allclose(sim, data["clean"][k], atol=1e-5)


def _true_u(name):
    args = {"duffing": sp.Symbol("x"), "logistic": sp.Symbol("x"), "forced": sp.Symbol("F")}[name]
    return sum(c * sp.sympify(term, locals={str(args): args}) for term, c in SYSTEMS[name].truth.items())


def test_assess_and_errors():
    x = sp.Symbol("x")
    good = assess("duffing", -1.02 * x - 0.5 * x**3)
    assert good["correct_structure"] and good["max_rel_error"] == pytest.approx(0.02)
    bad = assess("duffing", -1.0 * x)
    assert not bad["correct_structure"] and bad["rel_errors"]["x**3"] == 1.0
    assert assess("logistic", 1.0 - 0.5 * x)["correct_structure"]
    with pytest.raises(ud.ConfigError, match="system"):
        make_data("pendulum")
    with pytest.raises(ud.ConfigError, match="noise"):
        make_data("duffing", -0.1)


def _check(res, name):
    assert res["correct_structure"], (name, res["expression"])
    assert res["max_rel_error"] < TOLERANCE[name], (name, res["rel_errors"], res["expression"])


def test_duffing_recovers_the_restoring_force():
    res = systems.duffing.run(noise=0.01, seed=0, fast=True)
    _check(res, "duffing")
    assert res["terms"] == ["x", "x**3"]


def test_logistic_recovers_the_factor():
    res = systems.logistic.run(noise=0.01, seed=0, fast=True)
    _check(res, "logistic")
    assert res["terms"] == ["1", "x"]


def test_forced_oscillator_recovers_the_input_response():
    res = systems.forced.run(noise=0.01, seed=0, fast=True)
    _check(res, "forced")
    assert res["terms"] == ["F"]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SYSTEMS))
def test_full_configuration_at_higher_noise(name):
    """5% noise, full training: the right terms, every coefficient within 15%."""
    res = run(name, noise=0.05, seed=1, fast=False)
    assert res["correct_structure"], (name, res["expression"])
    assert res["max_rel_error"] < 0.15, (name, res["rel_errors"])


@pytest.mark.slow
def test_cli_example(capsys):
    assert udesci.cli.main(["example", "logistic", "--fast", "--json", "--expect"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["system"] == "logistic" and doc["correct_structure"]
