"""The NumPy STLSQ of discovery's threshold sweep against PySINDy's and a known sparse answer."""

import warnings

import numpy as np
import pytest

from udesci.discovery.proposal import stlsq


def test_stlsq_recovers_a_sparse_linear_model():
    rng = np.random.default_rng(1)
    theta = rng.standard_normal((200, 8))
    truth = np.array([0.0, 1.5, 0.0, 0.0, -2.0, 0.0, 0.0, 0.0])
    coef = stlsq(theta, theta @ truth + 1e-3 * rng.standard_normal(200), threshold=0.1, ridge=1e-6)
    assert np.array_equal(coef != 0, truth != 0)
    np.testing.assert_allclose(coef, truth, atol=1e-3)


def test_stlsq_threshold_above_every_coefficient_gives_the_empty_support():
    rng = np.random.default_rng(2)
    theta = rng.standard_normal((50, 4))
    assert not stlsq(theta, theta @ np.array([0.1, 0.2, 0.0, 0.0]), threshold=5.0, ridge=0.0).any()


def test_stlsq_matches_pysindy():
    ps = pytest.importorskip("pysindy")
    rng = np.random.default_rng(0)
    for _ in range(60):
        n, p = int(rng.integers(20, 200)), int(rng.integers(2, 20))
        theta = rng.standard_normal((n, p)) * rng.uniform(0.1, 3, p)
        truth = np.where(rng.random(p) < 0.3, 2 * rng.standard_normal(p), 0.0)
        target = theta @ truth + rng.uniform(0, 0.5) * rng.standard_normal(n)
        for threshold in np.geomspace(1e-3, 3, 5):
            opt = ps.STLSQ(threshold=threshold, alpha=1e-6, max_iter=30, unbias=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                opt.fit(theta, target.reshape(-1, 1))
            expected = np.asarray(opt.coef_).reshape(-1)
            got = stlsq(theta, target, threshold, 1e-6)
            assert np.array_equal(got != 0, expected != 0)
            np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10)


def test_a_large_library_is_also_swept_on_its_lower_degree_parts():
    import sympy as sp

    from udesci.discovery import Library
    from udesci.discovery.proposal import EXHAUSTIVE_LIMIT, nested_columns

    x, y, z = sp.symbols("x y z")
    small = Library(degree=2).terms([x, y, z])  # 10 terms: its small supports are enumerated instead
    assert nested_columns(small, [x, y, z]) == [list(range(10))]
    terms = Library(degree=4).terms([x, y, z])  # 35 terms
    assert len(terms) > EXHAUSTIVE_LIMIT
    sets = nested_columns(terms, [x, y, z])
    degree = [sum(sp.Poly(t, x, y, z).monoms()[0]) for t in terms]
    assert sets[0] == list(range(35)) and [len(c) for c in sets[1:]] == [1, 4, 10, 20]
    for cols, d in zip(sets[1:], (0, 1, 2, 3), strict=True):
        assert cols == [j for j, g in enumerate(degree) if g <= d]
    # a non-monomial term stays in the whole library's sweep only
    trig = [*terms, sp.sin(x)]
    assert all(len(trig) - 1 not in c for c in nested_columns(trig, [x, y, z])[1:])


def test_lorenz_with_a_degree_4_library_recovers_the_single_product():
    # 35 collinear columns on two time units: the whole library's sweep gave no support below 17 terms and a
    # 17-term answer that fits the data within the noise; the degree-3 part's sweep holds {x y}
    import sympy as sp
    import torch
    from torch import nn

    import udesci as ud

    class Product(nn.Module):
        def forward(self, v):
            return (v[..., 0] * v[..., 1]).unsqueeze(-1)

    x, y, z = sp.symbols("x y z")
    U = sp.Function("U")
    truth = ud.HybridModel({x: 10 * (y - x), y: x * (28 - z) - y, z: x * y - 8 / 3 * z})
    t = np.linspace(0, 2, 201)
    clean = ud.simulate(truth, [-8.0, 7.0, 27.0], t)
    noisy = clean + 0.01 * np.abs(clean).mean(0) * np.random.default_rng(0).standard_normal(clean.shape)
    model = ud.HybridModel({x: 10 * (y - x), y: x * (28 - z) - y, z: U(x, y, z) - 8 / 3 * z}, networks={"U": Product()})
    model.module.to(torch.float64)
    fitted = ud.FitResult(model, [], np.array([[-8.0, 7.0, 27.0]]), data=ud.Dataset(t, noisy, states=["x", "y", "z"]))
    selection = ud.Selection(shortlist=6, rescore=6, sweeps=1, bootstrap=0)
    found = ud.discover(fitted, library=ud.Library(degree=4), selection=selection, refit=False, progress=False)
    coef = sp.expand(found.unknowns["U"]).as_coefficients_dict()
    assert set(coef) == {x * y} and abs(float(coef[x * y]) - 1) < 0.01
    assert found.adequacy.adequate
