"""One unknown applied in several places (a reaction term U(u_i) in every cell), and the sparse
polynomial evaluation of large right-hand sides."""

import importlib.util

import numpy as np
import pytest
import sympy as sp
import torch

import udesci as ud
import udesci.field as field_module
from udesci.discovery import batch_lm
from udesci.discovery.batch_lm import Layout, refit_candidates, whole_trajectories
from udesci.errors import ModelError
from udesci.export import load_json, save_json, to_python
from udesci.networks import TermSum
from udesci.sparse_field import SparsePolynomial, polynomial_terms
from udesci.train import PaddedBatch

x, y, z, k = sp.symbols("x y z k")
U = sp.Function("U")


def import_file(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_unknown_applied_in_several_places_has_one_network_behind_all():
    affine = torch.nn.Linear(1, 1).double()
    with torch.no_grad():
        affine.weight.fill_(2.0)
        affine.bias.fill_(0.5)
    model = ud.HybridModel({x: -U(x), y: U(y) - y}, networks={"U": affine})
    spec = model.unknowns["U"]
    assert spec.args == (x,) and spec.calls == ((x,), (y,))
    assert spec.applications == (U(x), U(y))
    assert list(model.networks()) == ["U"] and "U(x) in 2 places" in repr(model)
    states = torch.tensor([[0.3, -1.2], [2.0, 0.5]], dtype=torch.float64)
    with torch.no_grad():
        out = model.module(torch.tensor(0.0), states)
    # the one network (2 z + 0.5) at each application's own argument: x' = -(2x + 0.5), y' = (2y + 0.5) - y
    expected = torch.stack([-(2 * states[:, 0] + 0.5), (2 * states[:, 1] + 0.5) - states[:, 1]], dim=-1)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-14)


def test_a_closed_form_replaces_every_application_at_its_own_arguments():
    spec = ud.Unknown("U", (x, y), ((x, y), (y, x)))
    assert spec.applied(x**2 + 3 * y) == {U(x, y): x**2 + 3 * y, U(y, x): y**2 + 3 * x}
    model = ud.HybridModel({x: U(x, y), y: U(y, x) - y})
    assert model.unknowns["U"] == spec
    closed = model.substitute({"U": x**2 + 3 * y})
    assert closed.equations == {x: x**2 + 3 * y, y: y**2 + 3 * x - y}


def test_an_unknown_must_take_one_number_of_arguments():
    with pytest.raises(ModelError, match=r"applied as U\(x\) and as U\(x, y\).*same number of arguments"):
        ud.Unknown("U", (x,), ((x,), (x, y)))
    with pytest.raises(ModelError, match=r"calls must start with its arguments \(x,\), received \(y,\)"):
        ud.Unknown("U", (x,), ((y,), (x,)))


def test_polynomial_terms_reads_coefficients_and_powers():
    position = {x: 0, y: 1, k: 2}
    assert sorted(polynomial_terms(3 * x**2 * y - 2 + x, position)) == [(-2.0, ()), (1.0, (0,)), (3.0, (0, 0, 1))]
    assert polynomial_terms(k * (x + y), position) == [(1.0, (0, 2)), (1.0, (1, 2))]
    assert polynomial_terms(sp.Integer(0), position) == []
    for not_polynomial in (sp.sin(x), 1 / x, sp.sqrt(y), x * z):  # z: not a column
        assert polynomial_terms(not_polynomial, position) is None


def ring_model(n, learnable=False, inputs=False):
    """A ring of n states with polynomial couplings, one non-polynomial equation, the time, a
    constant, an optional learnable rate and measured input, and one unknown in every equation."""
    s = sp.symbols(f"s_0:{n}")
    forcing = sp.Symbol("F")
    rate = k if learnable else sp.Float(0.7)
    eqs = {s[i]: (s[(i + 1) % n] - s[i - 2]) * s[i - 1] - rate * s[i] + U(s[i]) for i in range(n)}
    eqs[s[0]] = eqs[s[0]] + sp.sin(s[1]) * sp.Symbol("t") + 8
    if inputs:
        eqs[s[2]] = eqs[s[2]] + forcing * s[3]
    params = {k: ud.Learnable(0.7)} if learnable else {}
    return ud.HybridModel(eqs, params, inputs=[forcing] if inputs else ()), s


@pytest.mark.parametrize("learnable", [False, True])
def test_the_sparse_field_matches_the_lambdified_one_in_values_and_gradients(monkeypatch, learnable):
    torch.manual_seed(0)
    sparse, _ = ring_model(12, learnable=learnable)
    assert sparse.module.sparse is not None and sparse.module.sparse.n_polynomial == 11
    monkeypatch.setattr(field_module, "SPARSE_MIN_STATES", 10**9)
    plain = sparse.copy()
    plain.module.__init__(plain, plain.module.nets)  # the same weights, the lambdified evaluation
    assert plain.module.sparse is None
    states = torch.randn(5, 12, dtype=torch.float64, requires_grad=True)
    t = torch.linspace(0.0, 1.0, 5, dtype=torch.float64)
    a = sparse.module(t, states)
    b = plain.module(t, states)
    torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)
    weights = torch.randn_like(a)
    ga = torch.autograd.grad((a * weights).sum(), [states, *sparse.module.parameters()])
    gb = torch.autograd.grad((b * weights).sum(), [states, *plain.module.parameters()])
    for u, v in zip(ga, gb, strict=True):
        torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-12)


def test_the_sparse_field_reads_measured_inputs_and_moves_with_the_dtype():
    torch.manual_seed(0)
    model, _ = ring_model(9, inputs=True)
    t = np.linspace(0.0, 2.0, 5)
    series = ud.InputInterpolator([t], [np.stack([np.cos(t)], axis=1)])
    states = torch.rand(1, 9, dtype=torch.float64)
    field_ = model.module
    with torch.no_grad(), field_.bound_inputs(series, torch.zeros(1, dtype=torch.long)):
        out = field_(torch.tensor(0.5, dtype=torch.float64), states)
        cols = field_.columns(torch.tensor(0.5, dtype=torch.float64), states)
        unknown = field_.unknown_outputs(cols)["U"]
    expected = (states[0, 3] - states[0, 0]) * states[0, 1] - 0.7 * states[0, 2] + unknown[0, 2]
    forcing = series(torch.tensor([0.5], dtype=torch.float64), torch.zeros(1, dtype=torch.long))[0, 0]
    expected = expected + float(forcing) * states[0, 3]
    torch.testing.assert_close(out[0, 2], expected, rtol=1e-13, atol=1e-13)
    field_.float()
    series = ud.InputInterpolator([t], [np.stack([np.cos(t)], axis=1)], dtype=torch.float32)
    with torch.no_grad(), field_.bound_inputs(series, torch.zeros(1, dtype=torch.long)):
        assert field_(torch.tensor(0.5), states.float()).dtype == torch.float32


def test_sparse_polynomial_survives_a_copy_and_a_pickle():
    import pickle

    poly = SparsePolynomial([x * y + 2, sp.exp(x) - y], [x, y])
    v = torch.tensor([[0.5, -2.0]], dtype=torch.float64)
    expected = torch.tensor([[1.0, np.exp(0.5) + 2.0]], dtype=torch.float64)
    for copy in (poly, pickle.loads(pickle.dumps(poly))):
        torch.testing.assert_close(copy(v), expected, rtol=1e-15, atol=1e-15)


def test_per_row_coefficients_reach_every_application():
    model = ud.HybridModel({x: -U(x), y: U(y) - y})
    model.module.set_network("U", TermSum([sp.Integer(1), x, x**2], (x,), np.zeros(3), np.ones(3)))
    coef = torch.tensor([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]], dtype=torch.float64)
    states = torch.tensor([[0.5, 2.0], [-1.0, 0.25]], dtype=torch.float64)
    with torch.no_grad(), model.module.row_values({"U": coef}, {}):
        out = model.module(torch.tensor(0.0), states)

    def closed(c, v):
        return c[0] + c[1] * v + c[2] * v**2

    for b in range(2):
        torch.testing.assert_close(out[b, 0], -closed(coef[b], states[b, 0]), rtol=0, atol=1e-15)
        torch.testing.assert_close(out[b, 1], closed(coef[b], states[b, 1]) - states[b, 1], rtol=0, atol=1e-15)


def fisher_kpp(n, t, seed=0, noise=0.01):
    """A ring of n cells, u_i' = (u_{i+1} - 2 u_i + u_{i-1}) + u_i - u_i**2, observed with noise."""
    u = sp.symbols(f"u_0:{n}")
    rng = np.random.default_rng(seed)
    cells = np.arange(n)
    u0 = 0.5 + 0.35 * np.sin(6 * np.pi * cells / n) * np.cos(4 * np.pi * cells / n)
    u0 = np.clip(u0 + 0.05 * rng.standard_normal(n), 0.05, 0.95)
    truth = ud.HybridModel({u[i]: (u[(i + 1) % n] - 2 * u[i] + u[i - 1]) + u[i] - u[i] ** 2 for i in range(n)})
    clean = ud.simulate(truth, u0, t)
    noisy = clean + noise * np.mean(np.abs(clean)) * rng.standard_normal(clean.shape)
    model = ud.HybridModel({u[i]: (u[(i + 1) % n] - 2 * u[i] + u[i - 1]) + U(u[i]) for i in range(n)})
    return model, ud.Dataset(t, noisy, states=[str(s) for s in u]), u


def test_many_starts_refit_by_lbfgs_reach_the_levenberg_marquardt_optimum(monkeypatch):
    # the 16-cell ring with a closed form behind its shared reaction term: coefficients and the 16 starts
    # refit by Levenberg–Marquardt with the starts in its Jacobian, then (forced) by LM on the coefficients
    # alternating with L-BFGS on the starts, from the same point
    t = np.linspace(0.0, 6.0, 41)
    model, data, u = fisher_kpp(16, t)
    model.module.set_network("U", TermSum([u[0], u[0] ** 2], (u[0],), np.array([0.8, -0.7]), np.ones(2)))
    for p in model.module.parameters():
        p.requires_grad_(False)
    prep = PaddedBatch(model, data, torch.float64)
    whole = whole_trajectories(prep)
    y0 = torch.as_tensor(data.trajectories[0].y[:1], dtype=torch.float64) + 0.02
    layout = Layout.of(model.module)
    theta = torch.cat([layout.vector(model.module), y0.reshape(-1)])[None]
    solver = ud.Solver("rk4", substeps=2)

    def run():
        return refit_candidates(
            model.module, prep, whole, y0, 0.0, solver, layout, theta, [[0, 1]], 15, free_starts=True, tol=1e-10
        )

    joint = run()
    monkeypatch.setattr(batch_lm, "MAX_FREE_STARTS", 0)
    alternating = run()
    start = refit_candidates(model.module, prep, whole, y0, 0.0, solver, layout, theta[:, :2], [[]], 1)
    assert float(joint.loss[0]) < 0.05 * float(start.loss[0])
    # the same optimum: losses within 1 %, coefficients within 2e-3 of each other and 2 % of the truth (1, -1)
    assert abs(float(alternating.loss[0]) / float(joint.loss[0]) - 1) < 0.01
    torch.testing.assert_close(alternating.theta[0, :2], joint.theta[0, :2], rtol=0, atol=2e-3)
    torch.testing.assert_close(joint.theta[0, :2], torch.tensor([1.0, -1.0], dtype=torch.float64), rtol=0, atol=0.02)
    # the starts moved from the shifted ones towards the data's
    assert float((alternating.theta[0, 2:] - theta[0, 2:]).abs().max()) > 0.01


def test_a_reaction_term_shared_by_every_cell_is_discovered(tmp_path):
    torch.manual_seed(0)
    t = np.linspace(0.0, 6.0, 41)
    model, data, u = fisher_kpp(16, t)
    fitted = ud.fit(model, data, progress=False)
    found = ud.discover(fitted)
    # truth u - u**2 (in the formal argument u_0), 1 % noise: coefficients within 3 %
    expr = sp.expand(found.unknowns["U"])
    assert expr.free_symbols == {u[0]}
    poly = sp.Poly(expr, u[0])
    assert poly.monoms() == [(2,), (1,)]
    np.testing.assert_allclose([float(c) for c in poly.coeffs()], [-1.0, 1.0], rtol=0.03)
    assert found.adequacy.adequate
    # the plots' samples hold every cell's application: 16 cells at each sample time
    samples = ud.plots.unknown_samples(found, fitted)["U"]
    per_cell = samples.t.size // 16
    assert samples.arguments.shape == (16 * per_cell, 1) and per_cell > 100
    residual = np.sum((samples.closed_form - samples.network) ** 2)
    assert 1 - residual / np.sum((samples.network - samples.network.mean()) ** 2) > 0.98  # R² of the closed form
    # every cell carries it, at its own state
    gap = sp.expand(found.model.equations[u[5]] - (u[6] - 2 * u[5] + u[4]) - expr.xreplace({u[0]: u[5]}))
    assert all(abs(float(c)) < 1e-12 for c in gap.as_coefficients_dict().values())  # equal up to rounding
    # the exported module and the JSON round trip give the same right-hand side as the discovered model
    states = np.random.default_rng(2).uniform(0.1, 0.9, size=(3, 16))
    with torch.no_grad():
        expected = found.model.module(torch.tensor(0.0), torch.as_tensor(states)).numpy()
    module = import_file(to_python(found.model, tmp_path / "kpp.py"))
    np.testing.assert_allclose(module.rhs(0.0, states.T).T, expected, rtol=1e-12, atol=1e-12)
    loaded, _ = load_json(save_json(fitted.model, tmp_path / "kpp.json"))
    assert loaded.unknowns["U"].calls == fitted.model.unknowns["U"].calls
    hybrid = import_file(to_python(fitted.model, tmp_path / "kpp_hybrid.py"))
    with torch.no_grad():
        network_rhs = fitted.model.module(torch.tensor(0.0), torch.as_tensor(states)).numpy()
        loaded_rhs = loaded.module(torch.tensor(0.0), torch.as_tensor(states)).numpy()
    np.testing.assert_allclose(hybrid.rhs(0.0, states.T).T, network_rhs, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(loaded_rhs, network_rhs, rtol=1e-10, atol=1e-10)


def test_a_coupling_of_three_neighbours_shared_by_every_site_is_discovered():
    # Lorenz-96 on 10 sites, x_i' = U(x_{i-2}, x_{i-1}, x_{i+1}) - x_i + 8 with the coupling unknown and
    # shared: the truth (x_{i+1} - x_{i-2}) x_{i-1}, written in the first application's arguments
    n = 10
    s = sp.symbols(f"x_0:{n}")
    truth = ud.HybridModel({s[i]: (s[(i + 1) % n] - s[i - 2]) * s[i - 1] - s[i] + 8 for i in range(n)})
    rng = np.random.default_rng(0)
    start = ud.simulate(truth, 8 + 0.5 * rng.standard_normal(n), np.linspace(0.0, 5.0, 51))[-1]
    t = np.linspace(0.0, 3.0, 151)
    clean = ud.simulate(truth, start, t)
    noisy = clean + 0.01 * np.mean(np.abs(clean)) * rng.standard_normal(clean.shape)
    torch.manual_seed(0)
    model = ud.HybridModel({s[i]: U(s[i - 2], s[i - 1], s[(i + 1) % n]) - s[i] + 8 for i in range(n)})
    assert model.unknowns["U"].args == (s[8], s[9], s[1]) and len(model.unknowns["U"].calls) == n
    found = ud.discover(ud.fit(model, ud.Dataset(t, noisy, states=[str(v) for v in s]), seed=0, progress=False))
    expr = sp.expand(found.unknowns["U"])
    coefficients = expr.as_coefficients_dict()
    assert set(coefficients) == {s[1] * s[9], s[8] * s[9]}  # (x_{i+1} - x_{i-2}) x_{i-1} at i = 0
    np.testing.assert_allclose([float(coefficients[s[1] * s[9]]), float(coefficients[s[8] * s[9]])], [1, -1], atol=0.01)
    assert found.adequacy.adequate
    # at site 5 the closed form reads (x_6 - x_3) x_4
    assert sp.expand(found.model.equations[s[5]] - expr.xreplace({s[8]: s[3], s[9]: s[4], s[1]: s[6]})) == -s[5] + 8
