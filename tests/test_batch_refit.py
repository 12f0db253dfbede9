"""Batched Levenberg–Marquardt candidate refits and the bootstrap selection behind discovery."""

import math

import numpy as np
import pytest
import sympy as sp
import torch

import udesci as ud
from udesci.discovery import Candidate, Layout, point_blocks, refit_candidates, whole_trajectories
from udesci.discovery.uncertainty import bootstrap_inclusion
from udesci.networks import TermSum
from udesci.pipelines.lotka_volterra import BETA, GAMMA, U0, make_data
from udesci.solve import Solver
from udesci.train import PaddedBatch, make_segments

x, y, alpha, delta = sp.symbols("x y alpha delta")
U, V = sp.symbols("U V", cls=sp.Function)
TERMS = [sp.Integer(1), x, y, x * y]


def _closed_form_field(learn_alpha=False):
    """LV with U, V as TermSums over TERMS (x*y active), exact clean data; returns field, prep."""
    t, clean, _ = make_data(0.0, 0)
    data = ud.Dataset(t, clean, states=["x", "y"])
    nets = {n: TermSum(TERMS, [x, y], [0, 0, 0, c], [0, 0, 0, 1]) for n, c in (("U", -BETA), ("V", GAMMA))}
    params = {alpha: ud.Learnable(1.3) if learn_alpha else 1.3, delta: 1.8}
    model = ud.HybridModel({x: alpha * x + U(x, y), y: -delta * y + V(x, y)}, params=params, networks=nets)
    model.module.to(torch.float64)
    return model.module, PaddedBatch(model, data, torch.float64)


def test_lm_recovers_coefficients_and_batching_does_not_couple_candidates():
    field_, prep = _closed_form_field(learn_alpha=True)
    seg = make_segments(prep, 5)
    starts = prep.y[seg.trajectory, seg.first]  # the exact states at the segment starts (clean data)
    layout = Layout.of(field_)
    assert layout.size == 9 and [n for n, _ in layout.nets] == ["U", "V"]
    truth = layout.vector(field_)
    active = layout.active(field_)  # U's x*y, V's x*y, alpha
    assert active == [3, 7, 8]
    # three starting points, one batch: 20% off, 40% off, and one with a spurious term free at zero
    far = [
        truth * torch.tensor([1, 1, 1, 1.2, 1, 1, 1, 0.8, 1.1]),
        truth * torch.tensor([1, 1, 1, 0.6, 1, 1, 1, 1.4, 0.9]),
    ]
    spurious = truth.clone()
    solver = Solver("rk4", substeps=4)
    z = torch.tensor([[0.3, 1.2], [2.0, 0.5]], dtype=torch.float64)
    before = field_(torch.zeros(2, dtype=torch.float64), z)
    theta, loss, sse = refit_candidates(
        field_,
        prep,
        seg,
        starts,
        10.0,
        solver,
        layout,
        torch.stack(far + [spurious]),
        [active, active, active + [2]],
        iterations=30,
    )
    # exact data (RK4 with 4 substeps against dopri5 truth): back to the truth to 1e-5
    np.testing.assert_allclose(theta[:, active].numpy(), truth[active].expand(3, 3).numpy(), rtol=1e-5)
    assert abs(float(theta[2, 2])) < 1e-5  # the spurious y term stays at zero
    assert sse.shape == (3, seg.count, seg.knots.shape[1], 2) and float(loss.max()) < 1e-10
    # refit alone = refit in the batch (each candidate has its own damping and acceptance)
    alone, _, _ = refit_candidates(field_, prep, seg, starts, 10.0, solver, layout, torch.stack(far[1:2]), [active], 30)
    np.testing.assert_allclose(alone[0].numpy(), theta[1].numpy(), rtol=0, atol=1e-12)
    # the field's own modules and parameters are restored
    assert isinstance(field_.nets["U"], TermSum)
    torch.testing.assert_close(field_(torch.zeros(2, dtype=torch.float64), z), before, rtol=0, atol=0)
    np.testing.assert_allclose(layout.vector(field_).numpy(), truth.numpy())


def test_single_shooting_refits_initial_state_and_marks_blow_ups():
    field_, prep = _closed_form_field()
    whole = whole_trajectories(prep)
    layout = Layout.of(field_)
    truth = layout.vector(field_)
    y0 = torch.as_tensor([U0], dtype=torch.float64)
    start = torch.cat([truth * torch.tensor([1, 1, 1, 1.1, 1, 1, 1, 0.9]), y0.reshape(-1) * 1.05])
    exploding = torch.cat([truth + torch.tensor([0, 0, 0, 0, 0, 0, 50.0, 0]), y0.reshape(-1)])
    act = layout.active(field_)
    theta, loss, _ = refit_candidates(
        field_,
        prep,
        whole,
        y0,
        0.0,
        Solver("rk4", substeps=4),
        layout,
        torch.stack([start, exploding]),
        [act, act + [6]],
        iterations=40,
        free_starts=True,
    )
    np.testing.assert_allclose(theta[0, act].numpy(), truth[act].numpy(), rtol=1e-5)
    np.testing.assert_allclose(theta[0, 8:].numpy(), np.asarray(U0), rtol=1e-5)
    # y*50 in V blows up over the span: no finite loss, parameters left where they were
    assert not math.isfinite(float(loss[1])) or float(loss[1]) > 1.0


def test_refit_candidates_rejects_misshapen_input():
    field_, prep = _closed_form_field()
    seg = make_segments(prep, 5)
    layout = Layout.of(field_)
    theta = layout.vector(field_).unsqueeze(0)
    with pytest.raises(ud.ConfigError, match="theta"):
        refit_candidates(
            field_, prep, seg, prep.y[seg.trajectory, seg.first], 1.0, Solver("rk4"), layout, theta[:, :3], [[0]]
        )
    with pytest.raises(ud.ConfigError, match="active"):
        refit_candidates(
            field_, prep, seg, prep.y[seg.trajectory, seg.first], 1.0, Solver("rk4"), layout, theta, [[0], [1]]
        )


def test_point_blocks_follow_themake_segments():
    _, prep = _closed_form_field()
    blocks, n = point_blocks(prep, 5)
    assert n == make_segments(prep, 5)[6] == 6
    assert blocks[0, :5].tolist() == [0] * 5 and blocks[0, 25:].tolist() == [5] * 6


def _cand(support, sse_per_block):
    c = Candidate(tuple(support), np.zeros(3), sp.Integer(0), math.nan, 0.0)
    c.segment_sse = np.asarray(sse_per_block, dtype=float)[:, None]  # one state
    return c


def test_bootstrap_inclusion_counts_selections():
    S = 6
    n = np.full((S, 1), 10.0)
    counts = np.random.default_rng(0).multinomial(S, np.full(S, 1 / S), size=200)
    # the one-term model fits every block as well as the two-term one: parsimony picks it always
    one, two = _cand([0], np.full(S, 1.0)), _cand([0, 1], np.full(S, 0.999))
    inc, chosen = bootstrap_inclusion(
        [one, two], np.stack([one.segment_sse, two.segment_sse]), n, counts, 3, "bic", 2.0
    )
    assert inc.tolist() == [1.0, 0.0, 0.0] and (chosen == 0).all()
    # term 2 is needed by one block only: replicates that do not draw it choose the smaller model
    bad = np.full(S, 1.0)
    bad[3] = 50.0
    small, big = _cand([0], bad), _cand([0, 2], np.full(S, 1.0))
    inc, chosen = bootstrap_inclusion(
        [small, big], np.stack([small.segment_sse, big.segment_sse]), n, counts, 3, "bic", 2.0
    )
    drew = counts[:, 3] > 0
    assert inc[0] == 1.0 and math.isclose(inc[2], drew.mean())
    assert (chosen[drew] == 1).all() and (chosen[~drew] == 0).all()


def test_state_criterion_is_the_gaussian_bic_with_a_variance_per_state():
    from udesci.discovery import information_criterion

    # one state: the usual n log(SSE/n) + k log n
    assert math.isclose(
        float(information_criterion([2.0], [40.0], 3, "bic")), information_criterion(2.0, 40.0, 3, "bic")
    )
    # two states: each its own variance; the penalty uses all observations
    got = float(information_criterion([2.0, 0.5], [40.0, 20.0], 2, "bic"))
    assert math.isclose(got, 40 * math.log(2.0 / 40) + 20 * math.log(0.5 / 20) + 2 * math.log(60.0))
    assert math.isclose(float(information_criterion([2.0, 0.5], [40.0, 20.0], 2, "aic")), got - 2 * math.log(60.0) + 4)
    # an unobserved state adds nothing; a non-finite misfit scores inf
    assert math.isclose(
        float(information_criterion([2.0, 0.0], [40.0, 0.0], 3, "bic")), information_criterion(2.0, 40.0, 3, "bic")
    )
    assert float(information_criterion([math.inf, 1.0], [10.0, 10.0], 1, "bic")) == math.inf


def test_termsum_features_match_the_lambdified_terms_values_and_gradients():
    # monomials go through the power table, sines and cosines of the arguments through one sin and
    # one cos, the rest through the lambdified function; the columns come back in the terms' order
    from udesci.lambdify import broadcast_outputs, torch_function
    from udesci.networks import TermSum, monomial_exponents

    x, y, w = sp.symbols("x y w")
    args = [x, y, w]
    terms = [sp.Integer(1), x, sp.sin(y), x**2 * y * w, x / (2 + x), y**3, w**4 * x, 2 * x]
    assert [monomial_exponents(t, args) for t in terms] == [
        (0, 0, 0),
        (1, 0, 0),
        None,
        (2, 1, 1),
        None,
        (0, 3, 0),
        (1, 0, 4),
        None,
    ]
    weights = torch.arange(1.0, 21.0, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    trig_and_rest = [sp.cos(w), x / (2 + x), sp.sin(x), sp.sin(2 * y)]  # sin(2 y): not a trig term of an argument
    mono = [t for t in terms if monomial_exponents(t, args) is not None]
    for chosen in (terms, mono, [sp.sin(y), sp.cos(x)], trig_and_rest, mono + trig_and_rest):
        module = TermSum(chosen, args, np.ones(len(chosen)), np.ones(len(chosen)))
        z = torch.randn(4, 3, 3, dtype=torch.float64, generator=gen)
        z[0, 0] = 0.0  # zero arguments: the power table's gradient must stay finite and right
        z.requires_grad_(True)
        got = module.features(z)
        want = broadcast_outputs(torch_function(chosen, args)(*z.unbind(-1)), z[..., 0])
        assert got.shape == (4, 3, len(chosen))
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        (g_got,) = torch.autograd.grad((got * weights[: len(chosen)]).sum(), z)
        (g_want,) = torch.autograd.grad((want * weights[: len(chosen)]).sum(), z)
        torch.testing.assert_close(g_got, g_want, rtol=1e-12, atol=1e-12)
    # the derived tables are not state: a checkpoint holds only the coefficients and the mask
    module = TermSum(terms, args, np.ones(len(terms)), np.ones(len(terms)))
    assert set(module.state_dict()) == {"coef", "mask"}
    single = module.to(torch.float32).features(torch.ones(5, 3))
    assert single.dtype == torch.float32 and single.shape == (5, len(terms))


def _rows(fn):
    """A residual function of :func:`levenberg_marquardt`'s contract from ``fn(theta (M, p)) -> (M, R)``."""
    from udesci.discovery.batch_lm import ResidualRows

    def residuals(theta, owner):
        r = fn(theta)
        bad = ~torch.isfinite(r).all(dim=1)
        r = torch.where(bad.unsqueeze(-1), torch.zeros_like(r), r)
        return ResidualRows(r, torch.where(bad, math.inf, r.pow(2).sum(1)), bad)

    return residuals


def test_affine_least_squares_is_each_supports_exact_least_squares():
    from udesci.discovery.batch_lm import affine_least_squares

    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 5)) * np.array([1.0, 1e3, 1e-3, 1.0, 10.0])  # columns of very different sizes
    b = rng.standard_normal(40)
    At, bt = torch.as_tensor(A), torch.as_tensor(b)
    sups = [(), (0,), (1, 3), (0, 2, 4), (0, 1, 2, 3, 4), (4, 2)]
    done = affine_least_squares(_rows(lambda th: th @ At.T - bt), torch.zeros(len(sups), 5, dtype=torch.float64), sups)
    assert done is not None
    for c, sup in enumerate(sups):
        want = np.zeros(5)
        if sup:
            want[list(sup)] = np.linalg.lstsq(A[:, list(sup)], b, rcond=None)[0]
        np.testing.assert_allclose(done.theta[c].numpy(), want, rtol=1e-9, atol=1e-12)
        assert float(done.loss[c]) == pytest.approx(float(np.sum((A @ want - b) ** 2)), rel=1e-10)


def test_affine_least_squares_declines_curved_residuals_and_marks_unusable_columns():
    from udesci.discovery.batch_lm import affine_least_squares

    rng = np.random.default_rng(1)
    At, bt = torch.as_tensor(rng.standard_normal((30, 3))), torch.as_tensor(rng.standard_normal(30))
    start = torch.zeros(2, 3, dtype=torch.float64)
    # residuals curved in the coefficients: not solved here (the caller falls back to Levenberg–Marquardt)
    assert affine_least_squares(_rows(lambda th: torch.exp(0.1 * th @ At.T) - bt), start, [(0,), (1, 2)]) is None

    # a column that cannot be evaluated (NaN wherever its coefficient is non-zero): only its candidates lose
    def holed(th):
        return th @ At.T - bt + torch.where(th[:, 2:3] != 0, math.nan, 0.0)

    done = affine_least_squares(_rows(holed), start, [(0, 1), (1, 2)])
    assert done is not None and math.isinf(float(done.loss[1])) and math.isfinite(float(done.loss[0]))
    want = np.linalg.lstsq(At[:, :2].numpy(), bt.numpy(), rcond=None)[0]
    np.testing.assert_allclose(done.theta[0, :2].numpy(), want, rtol=1e-9)


def test_derivative_refit_takes_the_affine_path_and_agrees_with_levenberg_marquardt(monkeypatch):
    from udesci.discovery import batch_lm

    field_, prep = _closed_form_field()
    sups = [(3,), (1, 3), (0, 2), (0, 1, 2, 3)]
    start = torch.zeros(len(sups), 4, dtype=torch.float64)
    fast = batch_lm.refit_on_derivatives(field_, prep, "U", start, sups)
    monkeypatch.setattr(batch_lm, "affine_least_squares", lambda *a: None)
    slow = batch_lm.refit_on_derivatives(field_, prep, "U", start, sups, iterations=30)
    # LM's forward-difference Jacobian leaves it within 1e-4 of the exact minimiser, never below it
    np.testing.assert_allclose(fast.theta.numpy(), slow.theta.numpy(), rtol=1e-3, atol=1e-6)
    assert bool((fast.loss <= slow.loss * (1 + 1e-12)).all())
    np.testing.assert_allclose(fast.loss.numpy(), slow.loss.numpy(), rtol=1e-6)
    assert float(fast.theta[0, 3]) == pytest.approx(-BETA, rel=2e-2)  # x*y alone: the truth within the smoothing bias


def test_levenberg_marquardt_stops_simulating_candidates_that_have_stopped():
    """A linear least-squares candidate converges in a few iterations, Rosenbrock's needs many:
    once the first has stopped its rows are no longer evaluated, and both reach their known
    minimisers (the linear one NumPy's least squares to 1e-9, Rosenbrock's (1, 1) to 1e-6)."""
    from udesci.discovery.batch_lm import ResidualRows, levenberg_marquardt

    gen = np.random.default_rng(3)
    A, b = gen.normal(size=(6, 2)), gen.normal(size=6)
    At, bt = torch.as_tensor(A), torch.as_tensor(b)
    owners_seen = []

    def residuals(theta, owner):
        owners_seen.append(sorted(set(owner.tolist())))
        linear = theta @ At.T - bt
        rosen = torch.stack([10 * (theta[:, 1] - theta[:, 0] ** 2), 1 - theta[:, 0]], dim=1)
        rosen = torch.cat([rosen, torch.zeros(len(theta), 4, dtype=theta.dtype)], dim=1)
        r = torch.where((owner == 0).unsqueeze(-1), linear, rosen)
        return ResidualRows(r, r.pow(2).sum(1), torch.zeros(len(theta), dtype=torch.bool))

    start = torch.tensor([[0.0, 0.0], [-1.2, 1.0]], dtype=torch.float64)
    out = levenberg_marquardt(residuals, start, [[0, 1], [0, 1]], iterations=200, tol=1e-14)
    np.testing.assert_allclose(out.theta[0].numpy(), np.linalg.lstsq(A, b, rcond=None)[0], atol=1e-9)
    np.testing.assert_allclose(out.theta[1].numpy(), [1.0, 1.0], atol=1e-6)
    assert owners_seen[0] == [0, 1]
    assert owners_seen[-1] == [1]  # the linear candidate had stopped long before Rosenbrock's
    assert sum(s == [1] for s in owners_seen) > 5
