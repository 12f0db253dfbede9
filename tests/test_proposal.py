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


def test_supports_enumerate_every_pair_while_within_the_cap():
    import math

    from udesci.discovery.proposal import MAX_EXHAUSTIVE_SUPPORTS, supports

    swept = {(0, 5, 9): 0.1, (3,): 0.5}
    got = supports(35, 2, swept)
    assert len(got) == 1 + 35 + math.comb(35, 2) + 1  # empty, singles, pairs, and the one new swept support
    assert (3, 17) in got and (0, 5, 9) in got and len(set(got)) == len(got)
    # 120 terms: 7,260 singles and pairs exceed the cap, so the pairs are left to the sweep
    big = supports(120, 2, {})
    assert 1 + 120 + math.comb(120, 2) > MAX_EXHAUSTIVE_SUPPORTS and len(big) == 121
