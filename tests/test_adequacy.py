"""A closed form that cannot reproduce its network is labelled inadequate, loudly: in the summary, the JSON,
the report's opening banner and the exit code of ``udesci run``."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pandas as pd
import pytest
import sympy as sp
import torch
from torch import nn

import udesci as ud
from udesci import cli
from udesci.cli_common import EXIT_CHECK
from udesci.discovery.results import (
    MAX_DATA_RATIO,
    MAX_NOISE_RATIO,
    MAX_SPREAD_RATIO,
    MAX_START_RATIO,
    MAX_UNBACKED_NOISE_RATIO,
    Adequacy,
)

x, y = sp.symbols("x y")
U = sp.Function("U")
FAST = ud.Selection(shortlist=6, rescore=6, sweeps=1, bootstrap=30)


class VanDerPolNet(nn.Module):
    """A 'trained network' that is exactly Van der Pol's nonlinearity (1 - x²) y (mu = 1)."""

    def forward(self, z):
        return ((1 - z[..., 0] ** 2) * z[..., 1]).unsqueeze(-1)


@pytest.fixture(scope="module")
def van_der_pol():
    """x' = y, y' = U(x, y) - x with U the exact nonlinearity, on one limit-cycle trajectory with 1 % noise."""
    truth = ud.HybridModel({x: y, y: (1 - x**2) * y - x})
    t = np.linspace(0, 6, 31)
    clean = ud.simulate(truth, [2.0, 0.0], t)
    noisy = clean + 0.01 * np.random.default_rng(0).standard_normal(clean.shape)
    model = ud.HybridModel({x: y, y: U(x, y) - x}, networks={"U": VanDerPolNet()})
    model.module.to(torch.float64)
    fitted = ud.FitResult(model, [], np.array([[2.0, 0.0]]), data=ud.Dataset(t, noisy, states=["x", "y"]))
    linear = ud.discover(fitted, library=ud.Library(degree=1), selection=FAST, refit=False, progress=False)
    right = ud.discover(fitted, library=[y, x**2 * y], selection=FAST, refit=False, progress=False)
    return linear, right


def test_a_library_without_the_cubic_term_is_labelled_inadequate(van_der_pol):
    linear, right = van_der_pol
    # degree 1 (1, x, y) cannot express (1 - x²) y: the closed form misses most of the network and the data
    assert not linear.adequacy.adequate
    assert linear.adequacy.data_ratio > 10 * MAX_DATA_RATIO and linear.adequacy.network_r2["U"] < 0.1
    assert linear.adequacy.inadequate_unknowns() == ["U"]
    # with x²y in the library the same data give the right form, as good as the 'network'
    assert right.adequacy.adequate and right.adequacy.network_r2["U"] > 0.999
    assert abs(right.adequacy.data_ratio - 1) < 0.05
    coef = sp.expand(right.unknowns["U"]).as_coefficients_dict()
    assert abs(float(coef[x**2 * y]) + 1) < 0.01 and abs(float(coef[y]) - 1) < 0.01


def test_the_label_and_its_numbers_are_in_every_view(van_der_pol, tmp_path):
    linear, right = van_der_pol
    text = str(linear)
    assert text.startswith("WARNING: the closed form of U is INADEQUATE")
    assert f"{linear.adequacy.data_ratio:.3g}× as much as the trained UDE" in text
    assert "INADEQUATE" in linear.summary() and "INADEQUATE" in repr(linear) and 'role="alert"' in linear._repr_html_()
    assert "INADEQUATE" not in str(right) and "INADEQUATE" not in repr(right)
    linear.to_json(tmp_path / "eq.json")
    doc = json.loads((tmp_path / "eq.json").read_text())
    assert doc["extra"]["adequacy"]["adequate"] is False and doc["extra"]["adequacy"]["inadequate_unknowns"] == ["U"]
    assert doc["extra"]["adequacy"]["data_ratio"] == pytest.approx(linear.adequacy.data_ratio)
    assert doc["unknowns"]["U"]["network_r2"] == pytest.approx(linear.adequacy.network_r2["U"])


def test_the_report_opens_with_a_banner_naming_the_unknown_and_the_numbers(van_der_pol, tmp_path):
    linear, right = van_der_pol
    md = ud.report.write_report(tmp_path / "bad", title="VdP", found=linear, figures=False, intro="Intro.")
    lines = md.read_text().splitlines()
    # right under the title, before the introduction
    assert lines[0] == "# VdP" and lines[2].startswith("> **⚠ INADEQUATE closed form for U")
    banner = "\n".join(lines[2:8])
    assert f"{linear.adequacy.data_ratio:.3g}×" in banner and "R²: U 0.0" in banner
    page = md.with_suffix(".html").read_text()
    at = page.index('<div class="alert" role="alert">')
    assert page.index("<h1>") < at < page.index("<nav>") and "INADEQUATE closed form for U" in page[at : at + 200]
    good = ud.report.write_report(tmp_path / "good", title="VdP", found=right, figures=False)
    assert "⚠" not in good.read_text() and 'role="alert"' not in good.with_suffix(".html").read_text()
    assert "Adequacy: adequate" in good.read_text()


def test_adequacy_rule_is_the_data_ratio_and_the_network_r2_is_reported():
    # the network R² of a correct form falls below 0.9 at 5 % noise (Lotka–Volterra, V: 0.80): reported, no label
    noisy = Adequacy({"U": 0.90, "V": 0.80}, 1.37)
    assert noisy.adequate and noisy.problems() == [] and noisy.departing() == ["V"]
    assert "V departs from its network" in noisy.summary()
    bad = Adequacy({"U": 0.99, "V": 0.95}, 2.5)
    assert not bad.adequate and bad.inadequate_unknowns() == ["U", "V"]  # the ratio judges them together
    assert Adequacy({"U": 0.99, "V": 0.3}, 2.5).inadequate_unknowns() == ["V"]
    assert not Adequacy({"U": 1.0}, float("inf")).adequate  # cannot be simulated
    assert Adequacy({"U": 1.0}, float("inf")).as_dict()["data_ratio"] is None


def test_a_closed_form_that_fits_only_from_its_own_refit_start_is_inadequate():
    # ODEBench 8's degree-2 answer: data ratio 1.71 from a start refit onto its unstable equilibrium
    moved = Adequacy({"U": 0.98}, 1.71, 2.4e3)
    assert not moved.adequate and moved.ratio == 2.4e3 * MAX_DATA_RATIO / MAX_START_RATIO
    assert moved.inadequate_unknowns() == ["U"]
    problems = moved.problems()
    assert (
        len(problems) == 2
        and "2.4e+03× as much as the UDE (its own refit starts give 1.71×; inadequate above 10" in problems[0]
    )
    assert moved.as_dict()["start_ratio"] == 2.4e3 and "from the UDE's" in moved.as_dict()["rule"]
    assert "2.4e+03× from the UDE's or the data's starts" in moved.summary()
    # a right closed form on a sensitive system can need its own start (the Allee cubic: 2.13): adequate
    steady = Adequacy({"U": 1.0}, 1.0, 2.13)
    assert steady.adequate and steady.ratio == 1.0 and steady.problems() == []
    assert not Adequacy({"U": 1.0}, 1.0, MAX_START_RATIO * 1.01).adequate
    # not measured: the data ratio alone decides
    assert Adequacy({"U": 0.98}, 1.3).adequate and Adequacy({"U": 0.98}, 1.3).as_dict()["start_ratio"] is None
    both = Adequacy({"U": 0.98}, 2.5, 30.0).problems()
    assert len(both) == 3 and "2.5× as much as the trained UDE" in both[0]


CUBIC = """
title = "cubic decay with a linear library"
seed = 0

[data]
file = "cubic.csv"
time = "t"
states = ["x"]

[model.equations]
x = "U(x)"

[model]
width = 16

[training.warm_start]
iterations = 300

[training.shooting]
iterations = 100

[discovery]
degree = 1
shortlist = 4
rescore = 4
sweeps = 1
bootstrap = 20
refit = false

[output]
export = ["json"]
plots = false
"""


def test_udesci_run_exits_1_when_the_library_is_inadequate(tmp_path, capsys):
    # x' = -x³ from x = 2: fast at first, slow later; a line a + b x cannot follow it
    t = np.linspace(0.0, 4.0, 41)
    x_t = 2.0 / np.sqrt(1.0 + 8.0 * t)
    pd.DataFrame({"t": t, "x": x_t}).to_csv(tmp_path / "cubic.csv", index=False)
    path = tmp_path / "pipeline.toml"
    path.write_text(textwrap.dedent(CUBIC))
    code = cli.main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    assert code == EXIT_CHECK
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["adequacy"]["adequate"] is False and summary["check"]["passed"] is False
    assert summary["check"]["failures"][0].startswith("adequacy: the closed form of U is inadequate")
    report = (tmp_path / "out" / "report.md").read_text()
    assert report.splitlines()[2].startswith("> **⚠ INADEQUATE closed form for U")


def test_the_automatic_library_escalates_until_the_closed_form_is_adequate(van_der_pol):
    """Van der Pol's (1 - x²) y is cubic: the default degree-2 library is inadequate, degree 3 holds it."""
    linear, _ = van_der_pol
    truth_net = ud.HybridModel({x: y, y: U(x, y) - x}, networks={"U": VanDerPolNet()})
    truth_net.module.to(torch.float64)
    fitted = ud.FitResult(truth_net, [], np.array([[2.0, 0.0]]), data=linear.data)
    found = ud.discover(fitted, selection=FAST, refit=False, progress=False)  # library=None: automatic
    assert [t.library for t in found.escalation] == [
        "polynomials up to degree 2",
        "polynomials up to degree 3",
    ]
    assert not found.escalation[0].adequate and found.escalation[1].adequate
    assert found.adequacy.adequate
    coef = sp.expand(found.unknowns["U"]).as_coefficients_dict()
    assert set(coef) == {y, x**2 * y}
    assert abs(float(coef[x**2 * y]) + 1) < 0.01 and abs(float(coef[y]) - 1) < 0.01
    assert any("automatic library escalated" in n for n in found.notes)
    # a library the user gives is respected: checked and labelled, never replaced
    given = ud.discover(fitted, library=ud.Library(degree=2), selection=FAST, refit=False, progress=False)
    assert given.escalation == [] and not given.adequacy.adequate


class AlleeNet(nn.Module):
    """An exact 'trained network' for logistic growth with an Allee effect: x' = -0.14 x + U(x),
    U = 0.14 x² (1/130 + 1/4.4) - 0.14 x³ / (130 · 4.4) (ODEBench system 8)."""

    def forward(self, z):
        v = z[..., 0]
        return (0.14 * v * v * (1 / 130 + 1 / 4.4 - v / (130 * 4.4))).unsqueeze(-1)


def test_the_right_closed_form_of_a_start_sensitive_system_stays_adequate():
    # start 6.12 near the unstable equilibrium 4.4: the right cubic's refit trades a start within the noise
    # against coefficients within 0.1 %; from the UDE's start it lags the data (start ratio 2.13) but stays
    truth = ud.HybridModel({x: 0.14 * x * (1 - x / 130) * (x / 4.4 - 1)})
    t = np.linspace(0, 10, 150)
    clean = ud.simulate(truth, [6.123], t)
    noisy = clean + 0.01 * np.abs(clean).mean() * np.random.default_rng(0).standard_normal(clean.shape)
    model = ud.HybridModel({x: -0.14 * x + U(x)}, networks={"U": AlleeNet()})
    model.module.to(torch.float64)
    fitted = ud.FitResult(model, [], np.array([[6.123]]), data=ud.Dataset(t, noisy, states=["x"]))
    found = ud.discover(fitted, library=ud.Library(degree=3), selection=FAST, progress=False)
    coef = sp.expand(found.unknowns["U"]).as_coefficients_dict()
    assert set(coef) == {x**2, x**3}
    assert abs(float(coef[x**3]) / (-0.14 / 572) - 1) < 0.01 and abs(float(coef[x**2]) / 0.0328951 - 1) < 0.01
    assert found.adequacy.adequate and abs(found.adequacy.data_ratio - 1) < 0.05
    assert 1.5 < found.adequacy.start_ratio < MAX_START_RATIO
    assert found.adequacy.spread_ratio < MAX_SPREAD_RATIO  # small changes of its start stay small


def test_a_closed_form_far_from_the_data_is_inadequate_however_poorly_the_ude_fits():
    # ODEBench 38's degree-2 answer: better than a UDE that did not fit (data ratio 0.17), 22× the noise
    poor_ude = Adequacy({"U": 0.9}, 0.17, 0.2, 22.0, 132.0)
    assert not poor_ude.adequate and poor_ude.ratio == 22.0 * MAX_DATA_RATIO / MAX_NOISE_RATIO
    text = " ".join(poor_ude.problems())
    assert "22× their noise level" in text and "the trained UDE misfits them 132× too" in text
    assert poor_ude.as_dict()["noise_ratio"] == 22.0 and "0.17× the UDE's" in poor_ude.summary()
    assert Adequacy({"U": 0.9}, 1.0, 1.0, 0.82, 1.0).adequate


def test_a_closed_form_that_contradicts_its_network_must_fit_within_the_noise():
    # ODEBench 59's answer (chaotic Rössler, R² 0.53 against the truth): network R² −0.75, 2.44× the noise
    unbacked = Adequacy({"U_2": -0.75}, 0.67, 2.9, 2.44, 3.65, 2.8)
    assert unbacked.noise_bound == MAX_UNBACKED_NOISE_RATIO and not unbacked.adequate
    assert unbacked.ratio == 2.44 * MAX_DATA_RATIO / MAX_UNBACKED_NOISE_RATIO
    text = " ".join(unbacked.problems())
    assert "2.44× their noise level" in text and "contradicts its network" in text
    assert unbacked.inadequate_unknowns() == ["U_2"]
    # the same misfit backed by the network stays under the loose bound
    backed = Adequacy({"U_2": 0.95}, 0.67, 2.9, 2.44, 3.65, 2.8)
    assert backed.noise_bound == MAX_NOISE_RATIO and backed.adequate
    # ODEBench 57 (its trajectory settles on a fixed point): network R² −2.8 but within the noise, adequate
    assert Adequacy({"U_2": -2.8}, 0.016, 2.7, 0.047, 3.05, 0.26).adequate


def test_the_noise_level_is_estimated_from_the_observations_alone():
    # irregular times, 10 % NaNs, two trajectories: the three-point estimate recovers the noise SD
    rng = np.random.default_rng(0)
    trajectories = []
    for phase in (0.0, 1.0):
        t = np.sort(rng.uniform(0, 10, 300))
        values = np.stack([np.sin(t + phase), np.cos(t)], 1) + 0.05 * rng.standard_normal((300, 2))
        values[rng.random(values.shape) < 0.1] = np.nan
        trajectories.append((t, values))
    data = ud.Dataset([t for t, _ in trajectories], [v for _, v in trajectories], states=["x", "y"])
    model = ud.HybridModel({x: y, y: -x})
    from udesci.train import PaddedBatch

    batch = PaddedBatch(model, data, torch.float64)
    scale = float(batch.scale.mean())
    assert abs(batch.noise_rms() * scale / 0.05 - 1) < 0.08  # 540 interior points per state: SE about 4 %


def test_a_closed_form_that_blows_up_from_starts_within_the_noise_is_inadequate():
    # ODEBench 55's degree-2 answer: noise ratio 1.9 and start ratio 2.0 from starts tuned to the data, and it
    # blows up from most starts within the noise of its own (spread ratio inf)
    blows_up = Adequacy({"U": 1.0}, 1.0, 2.0, 1.9, 1e9, float("inf"))
    assert not blows_up.adequate and blows_up.ratio == float("inf")
    problems = blows_up.problems()
    assert len(problems) == 2 and "inf× that noise level (median of 8 starts; inadequate above 1000)" in problems[0]
    assert "blows up or leaves the data's range" in problems[0]
    assert "inf× from starts within it" in blows_up.summary() and blows_up.as_dict()["spread_ratio"] is None
    # finite and large: the Allee growth's exact cubic, sensitive to its start near an unstable equilibrium (53)
    sensitive = Adequacy({"U": 1.0}, 1.0, 1.01, 1.0, 1.0, 53.0)
    assert sensitive.adequate and sensitive.ratio == 1.0 and "53× from starts within it" in sensitive.summary()
    assert not Adequacy({"U": 1.0}, 1.0, 1.0, 1.0, 1.0, MAX_SPREAD_RATIO * 1.01).adequate
    assert Adequacy({"U": 1.0}, 1.0).as_dict()["spread_ratio"] is None  # not measured: no label from it


def test_samples_of_a_runaway_ude_are_left_out_of_the_regression():
    # ODEBench 55's trained UDE ran away (states of 1e100 and beyond): its samples overflowed the cubic
    # library's columns and the least squares failed; now they are left out, and all-bad samples are an error
    from udesci.discovery.proposal import SAMPLE_RANGE, usable_samples
    from udesci.train import PaddedBatch

    t = np.linspace(0, 1, 11)
    data = ud.Dataset(t, np.stack([t, 2 - t], 1), states=["x", "y"])
    batch = PaddedBatch(ud.HybridModel({x: y, y: -x}), data, torch.float64)
    reach = SAMPLE_RANGE * float(batch.scale[0])
    y_s = torch.tensor(
        [[0.5, 1.5], [1.0 + 0.5 * reach, 1.0], [1.0 + 2 * reach, 1.0], [float("inf"), 1.0], [0.2, 1.2], [0.3, 1.3]],
        dtype=torch.float64,
    )
    out = {"U": torch.tensor([1.0, 1.0, 1.0, 1.0, float("nan"), 1.0], dtype=torch.float64)}
    keep = usable_samples(batch, y_s, out)
    assert keep.tolist() == [True, True, False, False, False, True]
    with pytest.raises(ud.TrainingError, match="none of the 2 samples of the trained model is usable"):
        usable_samples(batch, y_s[2:4], {"U": out["U"][2:4]})
