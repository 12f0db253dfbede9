"""Rational terms with fitted constants: ``Library(rational=...)`` on the Holling type-II predator–prey model.

The model: prey ``x' = x (1 - x/κ) - U(x, y)``, predator ``y' = e U(x, y) - d y`` with the known physics
(κ = 3, e = 0.8, d = 0.3) and the predation ``U = a x y / (K + x)`` unknown (a = 1, K = 1.5).  The
library offers ``x/(K + x)``-type families without being told K; discovery has to find the structure
and fit K.
"""

import json

import numpy as np
import pytest
import sympy as sp
import torch
from torch import nn

import udesci as ud
from udesci.discovery.batch_lm import whole_trajectories
from udesci.discovery.library import Library, RationalTerms, SaturatingTerm, saturating
from udesci.discovery.proposal import best_constant, supports, unknown_library
from udesci.discovery.refit import refit_constants
from udesci.networks import TermSum
from udesci.train import PaddedBatch

x, y = sp.symbols("x y", nonnegative=True)
kappa, e, d = sp.symbols("kappa e d")
U = sp.Function("U")
A, K_TRUE, Y0 = 1.0, 1.5, (2.0, 1.0)


def holling_data(noise=0.01, seed=0):
    truth = ud.HybridModel({x: x * (1 - x / 3) - A * x * y / (K_TRUE + x), y: 0.8 * A * x * y / (K_TRUE + x) - 0.3 * y})
    t = np.linspace(0, 30, 61)
    clean = ud.simulate(truth, Y0, t)
    noisy = clean * (1 + noise * np.random.default_rng(seed).standard_normal(clean.shape))
    return ud.Dataset(t, noisy, states=["x", "y"])


def holling_model(**options):
    return ud.HybridModel(
        {x: x * (1 - x / kappa) - U(x, y), y: e * U(x, y) - d * y}, params={kappa: 3.0, e: 0.8, d: 0.3}, **options
    )


class Predation(nn.Module):
    """A 'trained network' that is exactly the Holling type-II predation a x y / (K + x)."""

    def forward(self, z):
        return (A * z[..., 0] * z[..., 1] / (K_TRUE + z[..., 0])).unsqueeze(-1)


def u_parts(expr):
    """(coefficient, K) of an expression c*x*y/(x + K), or None for anything else."""
    num, den = sp.fraction(sp.together(expr))
    c = sp.expand(num).coeff(x * y)
    if sp.expand(num - c * x * y) != 0 or sp.Poly(den, x, y).degree(x) != 1 or den.free_symbols != {x}:
        return None
    lead = sp.Poly(den, x).coeffs()
    return float(c / lead[0]), float(lead[1] / lead[0])


# ---------------------------------------------------------------------------- the terms


def test_rational_terms_are_each_family_at_the_median_magnitude_of_its_argument():
    samples = {x: np.array([1.0, 2.0, 4.0]), y: np.array([-1.0, 0.5, 3.0])}
    lib = Library(degree=0, constant=False, rational=RationalTerms(powers=(1, 2), times=1))
    terms = lib.terms([x, y], samples)
    # K = median |a| (x: 2, y: 1); y takes negative values, so it has no odd-power family (pole at y = -K)
    fx, fy = sp.Float(2.0, 15), sp.Float(1.0, 15)
    expected = [m * x / (fx + x) for m in (1, x, y)] + [m * x**2 / (fx**2 + x**2) for m in (1, x, y)]
    expected += [m * y**2 / (fy**2 + y**2) for m in (1, x, y)]
    assert terms == expected
    records = lib.saturating_terms([x, y], samples)
    assert [(r.argument, r.power, r.K) for r in records[::3]] == [(x, 1, 2.0), (x, 2, 2.0), (y, 2, 1.0)]
    # off by default; True and a dict are the defaults and options; without samples K = 1
    assert Library().rational is None and Library().terms([x, y]) == [1, x, y, x**2, x * y, y**2]
    assert Library(rational=True).rational == RationalTerms()
    assert Library(rational={"powers": (2,), "times": 0}).terms([x]) == [1, x, x**2, x**2 / (sp.Float(1.0, 15) + x**2)]
    # the companion d term / dK: -x/(K + x)**2 at K = 2
    term = SaturatingTerm(saturating(1, x, 1, 2.0), sp.Integer(1), x, 1, 2.0)
    assert sp.simplify(term.slope() + x / (2 + x) ** 2) == 0


@pytest.mark.parametrize(
    "value, match",
    [
        ("yes", r"Library rational: expected True, False, a dict .* received str 'yes'"),
        ({"power": (1,)}, r"Library rational: unknown options \['power'\]"),
        ({"powers": (0,)}, r"Library rational powers: expected a non-empty tuple of ints from 1 to 8, received \(0,\)"),
        ({"powers": ()}, r"Library rational powers"),
        ({"multiples": (1.0, -2.0)}, r"Library rational multiples: expected .*positive finite.*received \(1.0, -2.0\)"),
        ({"multiples": (float("inf"),)}, r"Library rational multiples"),
        ({"times": 5}, r"Library rational times: expected an int from 0 to 3, received 5"),
    ],
)
def test_bad_rational_options_are_config_errors_naming_the_option(value, match):
    with pytest.raises(ud.ConfigError, match=match):
        Library(rational=value)


def test_a_support_holding_a_rational_term_holds_its_companion():
    # terms 0, 1 plain; 2 rational with its companion 3
    sups = supports(4, 2, {(3,): 0.1, (0, 2, 3): 0.2}, companions={2: 3})
    assert sups == [(), (0,), (1,), (2, 3), (0, 1), (0, 2, 3), (1, 2, 3)]
    assert not any(s == (3,) for s in sups)  # a companion never stands alone (a swept (3,) means its term)


def test_the_best_constant_of_a_family_is_found_from_the_samples():
    z = np.linspace(0.1, 5.0, 200)
    target = 2.0 * z / (1.7 + z) - 0.3 * z  # with a plain term alongside
    family = SaturatingTerm(saturating(1, x, 1, 1.0), sp.Integer(1), x, 1, 1.0)
    K = best_constant(family, [0.25, 1.0, 4.0], [x], {x: z}, z[:, None], target)
    assert K == pytest.approx(1.7, rel=1e-3)
    # unknown_library: the families at their best K, then one companion each
    torch_z = torch.as_tensor(z)
    terms, sat, comp = unknown_library(
        ud.HybridModel({x: -U(x)}).unknowns["U"], Library(degree=1, rational={"powers": (1,), "times": 0}),
        {x: torch_z}, target,
    )  # fmt: skip
    assert sat[2].K == pytest.approx(1.7, rel=2e-3) and comp == {2: 3}
    assert terms[:2] == [1, x] and sp.simplify(terms[3] - sat[2].slope()) == 0


# ---------------------------------------------------------------------------- K refit


def test_the_refit_recovers_K_from_a_grid_start():
    """Exact data of K = 1.5; the closed form starts at K = 1.0 and coefficient 0.8: LM finds both."""
    data = holling_data(noise=0.0)
    start = SaturatingTerm(saturating(y, x, 1, 1.0), y, x, 1, 1.0)
    terms = [x, y, start.expression]
    net = TermSum(terms, [x, y], [0.0, 0.0, 0.8], [0.0, 0.0, 1.0])
    model = holling_model(networks={"U": net})
    model.module.to(torch.float64)
    prep = PaddedBatch(model, data, torch.float64)
    y0 = torch.tensor([Y0], dtype=torch.float64)
    found = refit_constants(model, {"U": (terms, {2: start}, {})}, data, prep, whole_trajectories(prep), y0, 60)
    assert found is not None
    assert found.constants["U"][2] == pytest.approx(K_TRUE, rel=1e-4)  # exact data: measured 1.5 to 1e-6
    assert found.coefficients["U"][2] == pytest.approx(A, rel=1e-4)
    assert sp.simplify(found.terms["U"][2] - x * y / (x + found.constants["U"][2])) == 0


# ---------------------------------------------------------------------------- end to end


def check_recovered(found, tol):
    parts = u_parts(found.unknowns["U"])
    assert parts is not None, found.summary()
    coef, K = parts
    assert abs(K - K_TRUE) < tol * K_TRUE and abs(coef - A) < tol * A, found.summary()
    assert found.adequacy.adequate
    (K_reported,) = found.details["U"].constants.values()
    assert K_reported == pytest.approx(K)


def test_holling_predation_and_K_are_recovered_from_an_exact_network(tmp_path):
    data = holling_data()
    model = holling_model(networks={"U": Predation()})
    model.module.to(torch.float64)
    fitted = ud.FitResult(model, [], np.array([Y0]), data=data)
    found = ud.discover(
        fitted, library=Library(degree=1, rational=True), selection=ud.Selection(bootstrap=0), progress=False
    )
    check_recovered(found, 0.01)  # 1 % noise, 61 points: measured K 1.503, a 1.000
    assert "half-saturation constant K" in found.summary()
    # the fitted K is in the closed form: JSON (round trip), LaTeX
    found.to_json(tmp_path / "eq.json")
    doc = json.loads((tmp_path / "eq.json").read_text())
    assert list(doc["unknowns"]["U"]["constants"].values()) == [pytest.approx(u_parts(found.unknowns["U"])[1])]
    loaded, _ = ud.load_json(tmp_path / "eq.json")
    t = np.linspace(0, 30, 61)
    np.testing.assert_allclose(ud.simulate(loaded, Y0, t), ud.simulate(found.model, Y0, t), rtol=0, atol=1e-12)
    assert f"x + {u_parts(found.unknowns['U'])[1]:.4g}" in found.to_latex()


def test_holling_predation_and_K_are_recovered_after_short_training():
    data = holling_data()
    fitted = ud.fit(
        holling_model(), data, seed=0, progress=False,
        warm_start=ud.WarmStart(iterations=300), shooting=ud.Shooting(iterations=200, lr=1e-2),
    )  # fmt: skip
    fast = ud.Selection(bootstrap=20)
    found = ud.discover(fitted, library=Library(degree=1, rational=True), selection=fast, seed=0, progress=False)
    check_recovered(found, 0.1)  # measured K 1.503, a 1.000 (the network alone suggests K 1.21)


class Truth(nn.Module):
    """A 'trained network' that is exactly a SymPy expression of its arguments."""

    def __init__(self, args, expr):
        super().__init__()
        self.fn = sp.lambdify(args, expr, modules="torch")

    def forward(self, z):
        return torch.as_tensor(self.fn(*z.unbind(-1)), dtype=z.dtype).expand(z.shape[:-1]).unsqueeze(-1)


def test_odebench_autocatalytic_switch_hill_constant_is_fitted():
    """ODEBench system 20, x' = x²/(x² + 1) - 0.55 x + 0.1 (known: the linear part), on its own training
    trajectory (x from 0.002 to 0.32, below the half-saturation point): given the Hill family and x², the
    Hill term alone is chosen and K fitted.  With ``Library(degree=2, rational=True)`` the data do not tell
    it from polynomials on this range (measured: 1.96 x²/(x + 1.84), data ratio 0.99, adequate)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import bench_odebench as ob

    system = ob.load_systems()[20]
    equations, truths = ob.model_parts(system, "ude")
    (x0,) = system.states
    t = np.linspace(0, ob.T_END, ob.N_POINTS)
    clean = ud.simulate(ud.HybridModel(dict(zip(system.states, system.rhs, strict=True))), system.inits[0], t)
    noisy = clean * (1 + 0.01 * np.random.default_rng(0).standard_normal(clean.shape))
    model = ud.HybridModel(equations, networks={"U_0": Truth([x0], truths["U_0"])})
    model.module.to(torch.float64)
    fitted = ud.FitResult(model, [], system.inits[:1], data=ud.Dataset(t, noisy, states=["x_0"]))
    lib = Library(degree=0, constant=False, extra=[x0**2], rational={"powers": (2,), "times": 0})
    found = ud.discover(fitted, library=lib, progress=False)
    (K,) = found.details["U_0"].constants.values()
    num, den = sp.fraction(sp.together(found.unknowns["U_0"]))
    c = float(sp.expand(num).coeff(x0**2))
    assert sp.expand(num - c * x0**2) == 0 and sp.expand(den - den.coeff(x0**2) * (x0**2 + K**2)) == 0
    assert abs(K - 1.0) < 0.1 and abs(c / float(den.coeff(x0**2)) - 1.0) < 0.1  # measured K 0.969, 0.943
