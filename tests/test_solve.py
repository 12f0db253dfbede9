"""Solving hybrid models: udesci.simulate and the batched udesci.integrate (fused fixed-step loop,
torchdiffeq, adjoint), checked against closed forms and against per-row solves.  Everything in float64;
each tolerance is justified where it is used.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import sympy as sp
import torch

import udesci as ud
from udesci.budget import SolverGaveUp
from udesci.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("one_thread")

t_, x, y, v = sp.symbols("t x y v")
k, alpha, beta, gamma, delta = sp.symbols("k alpha beta gamma delta")
S = sp.Symbol("S")
U, V = sp.Function("U"), sp.Function("V")
F64 = torch.float64


def _f64(model):
    model.module.to(F64)
    return model


def _decay(rate=1.3):
    return _f64(ud.HybridModel({x: -k * x}, {k: rate}))


def _oscillator(omega=2.0):
    return _f64(ud.HybridModel({x: v, v: -(omega**2) * x}))


def _hybrid_lv(seed=0):
    torch.manual_seed(seed)
    model = ud.HybridModel(
        {x: alpha * x - beta * x * y + U(x, y), y: -delta * y + gamma * x * y + V(x, y)},
        {alpha: ud.Learnable(1.3), beta: 0.9, gamma: 0.8, delta: 1.8},
        width=8,
    )
    _f64(model)
    # O(1) network inputs for the O(1) states, and outputs ~0.1..0.5 so the networks matter
    for net in model.networks().values():
        net.set_scaling([1.0, 1.0], [0.5, 0.5], 3.0)
    return model


# ------------------------------------------------------------------------------------------------
# simulate against closed forms


def test_exponential_decay_matches_exp():
    model = _decay()
    t = np.linspace(0.0, 5.0, 51)
    sol = ud.simulate(model, [2.0], t)
    assert sol.shape == (51, 1) and sol.dtype == np.float64
    # simulate's default is dopri5 at rtol = atol = 1e-9 (documented); the bound is derived for 1e-8, so it
    # also covers an explicit Solver("dopri5", rtol=1e-8, atol=1e-8): each step's local error is held below
    # ~1e-8 and a decaying solution damps earlier errors, so the global error stays ~1e-8 (measured 5e-9 at
    # 1e-8); 1e-7 is the bound.  A float32 solve (~1e-7 relative per step, accumulating) or a wrong rate
    # is off by more.
    np.testing.assert_allclose(sol[:, 0], 2.0 * np.exp(-1.3 * t), rtol=0, atol=1e-7)
    sol8 = ud.simulate(model, [2.0], t, solver=ud.Solver("dopri5", rtol=1e-8, atol=1e-8))
    np.testing.assert_allclose(sol8[:, 0], 2.0 * np.exp(-1.3 * t), rtol=0, atol=1e-7)


def test_harmonic_oscillator_matches_cos_sin():
    w, x0, v0 = 2.0, 1.0, 0.5
    t = np.linspace(0.0, 10.0, 101)  # a bit more than three periods
    sol = ud.simulate(_oscillator(w), [x0, v0], t)
    xe = x0 * np.cos(w * t) + v0 / w * np.sin(w * t)
    ve = -x0 * w * np.sin(w * t) + v0 * np.cos(w * t)
    # default tolerances (<= 1e-8 per step); an oscillator does not damp errors, the phase error grows
    # ~linearly over the ~100 steps taken, so <= ~1e-6 (measured 2e-7 at 1e-8); 2e-6 is the bound
    np.testing.assert_allclose(sol[:, 0], xe, rtol=0, atol=2e-6)
    np.testing.assert_allclose(sol[:, 1], ve, rtol=0, atol=2e-6)


def test_batched_initial_states():
    w = 2.0
    y0 = np.array([[1.0, 0.0], [0.0, 1.0], [-0.5, 2.0]])
    t = np.linspace(0.0, 3.0, 31)
    sol = ud.simulate(_oscillator(w), y0, t)
    assert sol.shape == (3, 31, 2)
    for b, (x0, v0) in enumerate(y0):
        # same bound as the single oscillator (shorter horizon, so looser than needed)
        np.testing.assert_allclose(sol[b, :, 0], x0 * np.cos(w * t) + v0 / w * np.sin(w * t), rtol=0, atol=2e-6)
    # a one-row batch keeps its batch axis, a 1-D y0 does not
    assert ud.simulate(_oscillator(w), y0[:1], t).shape == (1, 31, 2)
    assert ud.simulate(_oscillator(w), y0[0], t).shape == (31, 2)


@pytest.mark.parametrize("interpolation", ["linear", "cubic"])
def test_input_ramp_matches_analytic(interpolation):
    """dx/dt = -x + S(t) with S(t) = a + b t:  x(t) = a - b + b t + (x0 - a + b) exp(-t)."""
    model = _f64(ud.HybridModel({x: -x + S}, inputs=[S]))
    a, b, x0 = 0.5, 2.0, 1.0
    t = np.linspace(0.0, 4.0, 41)
    exact = a - b + b * t + (x0 - a + b) * np.exp(-t)
    ut = np.linspace(-1.0, 5.0, 7)  # inputs on their own, coarser grid
    # linear and natural-cubic interpolation of a ramp are the ramp itself (to rounding), so the only
    # error is dopri5's at the default tolerances (<= 1e-8): per step <= 1e-8 (1 + |x|), and the last point
    # (x ~ 6.5) comes from dopri5's 4th-order dense output inside the final, overshooting step, a few times
    # the step error (measured at 1e-8: 2.9e-7 = 4.4e-8 relative there, < 1e-8 elsewhere); bound 1e-7 (1 + |x|)
    sol = ud.simulate(model, [x0], t, inputs={"S": a + b * ut}, input_times=ut, interpolation=interpolation)
    np.testing.assert_allclose(sol[:, 0], exact, rtol=1e-7, atol=1e-7)
    sol = ud.simulate(model, [x0], t, inputs=(a + b * t)[:, None], interpolation=interpolation)
    np.testing.assert_allclose(sol[:, 0], exact, rtol=1e-7, atol=1e-7)
    with pytest.raises(ud.ModelError, match="no input series"):  # the input binding is not left behind
        model.module(torch.tensor(0.0, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64))


# ------------------------------------------------------------------------------------------------
# integrate: rows on different irregular grids


def _ragged_rows():
    """Three rows with their own start, span and number of irregular knots, padded to one width."""
    rng = np.random.default_rng(7)
    grids = [
        np.sort(np.concatenate([[0.0, 2.0], rng.uniform(0.0, 2.0, 3)])),  # 5 knots on [0, 2]
        np.sort(np.concatenate([[0.5, 3.0], rng.uniform(0.5, 3.0, 6)])),  # 8 knots on [0.5, 3]
        np.sort(np.concatenate([[-1.0, 0.2], rng.uniform(-1.0, 0.2, 4)])),  # 6 knots on [-1, 0.2]
    ]
    width = max(g.size for g in grids)
    knots = np.stack([np.concatenate([g, np.full(width - g.size, g[-1])]) for g in grids])
    y0 = torch.tensor([[1.0, 0.8], [0.6, 1.4], [1.5, 0.5]], dtype=F64)
    return grids, torch.tensor(knots), y0


def _solve_rows_alone(field, grids, y0, solver):
    return [ud.integrate(field, y0[b : b + 1], torch.tensor(g)[None], solver)[0] for b, g in enumerate(grids)]


def test_fused_rk4_rows_equal_rows_solved_alone():
    model = _hybrid_lv()
    grids, knots, y0 = _ragged_rows()
    solver = ud.Solver("rk4", substeps=4)
    with torch.no_grad():
        out = ud.integrate(model.module, y0, knots, solver)
        alone = _solve_rows_alone(model.module, grids, y0, solver)
    assert out.shape == (3, knots.shape[1], 2)
    for b, g in enumerate(grids):
        # the fused loop steps every row on its own grid with the same operations as a one-row solve;
        # only the networks' matrix products may group their sums differently for another batch size
        # (~1e-16), so 1e-12 is pure round-off margin
        torch.testing.assert_close(out[b, : g.size], alone[b], rtol=1e-12, atol=1e-12)
        # padding (zero-length intervals) leaves the state exactly unchanged
        assert torch.equal(out[b, g.size :], out[b, g.size - 1].expand(knots.shape[1] - g.size, 2))
    assert torch.equal(out[:, 0], y0)


@pytest.mark.parametrize("adjoint", [False, True], ids=["odeint", "adjoint"])
def test_dopri5_rows_equal_rows_solved_alone(adjoint):
    model = _hybrid_lv()
    grids, knots, y0 = _ragged_rows()
    solver = ud.Solver("dopri5", rtol=1e-10, atol=1e-10, adjoint=adjoint)
    with torch.no_grad():
        out = ud.integrate(model.module, y0, knots, solver)
        alone = _solve_rows_alone(model.module, grids, y0, ud.Solver("dopri5", rtol=1e-10, atol=1e-10))
    for b, g in enumerate(grids):
        # the batch shares one step-size control (error norm over all rows), so its steps differ from a
        # one-row solve; both are within ~1e-9 of the exact flow (tolerance 1e-10 per step, O(1) states,
        # spans <= 2.5), hence agree to 1e-8 (measured 6e-10)
        torch.testing.assert_close(out[b, : g.size], alone[b], rtol=0, atol=1e-8)
        # padded knots map onto the row's last point: the very same output
        assert torch.equal(out[b, g.size :], out[b, g.size - 1].expand(knots.shape[1] - g.size, 2))
    if adjoint:
        # the adjoint method's forward pass is the ordinary solve with the same steps; the two may evaluate
        # the networks through different (fused or per-module) code, i.e. differ by rounding (measured 9e-15)
        with torch.no_grad():
            direct = ud.integrate(model.module, y0, knots, ud.Solver("dopri5", rtol=1e-10, atol=1e-10))
        torch.testing.assert_close(out, direct, rtol=0, atol=1e-12)


def test_fixed_step_adjoint_rows_are_accurate():
    """rk4 through torchdiffeq (adjoint path) on irregular rows: knots fall between its uniform steps and
    must be interpolated to rk4 accuracy (linear interpolation there was off by 5e-4)."""
    model = _decay()
    grids, knots, y0 = _ragged_rows()
    y0 = y0[:, :1]
    out = ud.integrate(model.module, y0, knots, ud.Solver("rk4", substeps=4, adjoint=True))
    exact = y0 * torch.exp(-1.3 * (knots - knots[:, :1]))
    # steps of <= 2.5 / 28 ~ 0.09 time units, k h <= 0.12: rk4's global error ~ (k h)^4 / 120 * |y| ~ 2e-6,
    # cubic Hermite interpolation between steps is of the same order; 2e-5 is the bound
    torch.testing.assert_close(out[..., 0], exact, rtol=0, atol=2e-5)


def test_adaptive_row_with_zero_span_is_rejected():
    model = _decay()
    knots = torch.tensor([[0.0, 1.0], [2.0, 2.0]], dtype=F64)
    with pytest.raises(ConfigError, match="every row of knots must span a positive time interval"):
        ud.integrate(model.module, torch.ones(2, 1, dtype=F64), knots, ud.Solver("dopri5"))


# ------------------------------------------------------------------------------------------------
# adjoint gradients


def _gradient(field, y0, knots, target, solver):
    for p in field.parameters():
        p.grad = None
    pred = ud.integrate(field, y0, knots, solver)
    (pred - target).pow(2).mean().backward()
    return torch.cat([p.grad.reshape(-1) for p in field.parameters()])


def test_adjoint_gradient_equals_direct_gradient():
    model = _hybrid_lv()
    grids, knots, y0 = _ragged_rows()
    truth = _f64(ud.HybridModel({x: 1.3 * x - 0.9 * x * y, y: -1.8 * y + 0.8 * x * y}))
    with torch.no_grad():
        target = ud.integrate(truth.module, y0, knots, ud.Solver("dopri5", rtol=1e-10, atol=1e-10))
    n_params = sum(p.numel() for p in model.module.parameters())
    assert n_params == 2 * ((2 * 8 + 8) + (8 * 8 + 8) + (8 + 1)) + 1  # both networks (2-8-8-1) and alpha
    g_adj = _gradient(model.module, y0, knots, target, ud.Solver("dopri5", rtol=1e-10, atol=1e-10, adjoint=True))
    g_dir = _gradient(model.module, y0, knots, target, ud.Solver("dopri5", rtol=1e-10, atol=1e-10, adjoint=False))
    assert g_adj.shape == (n_params,) and torch.isfinite(g_adj).all()
    assert g_dir.norm() > 1e-3  # a real gradient, not a vanishing one
    # Both gradients approximate the exact one: backprop differentiates the dopri5 solution (within ~1e-10
    # of the exact flow), the adjoint solves the continuous adjoint system backward under the same 1e-10
    # error control.  Over spans <= 2.5 the LV sensitivities grow by at most ~10x, so each is within
    # ~1e-9 relative of the exact gradient; 1e-6 relative leaves three orders of margin, and float64
    # round-off (~1e-13) is negligible.
    rel = float((g_adj - g_dir).norm() / g_dir.norm())
    assert rel < 1e-6, rel
    # the fixed-step adjoint (rk4 through torchdiffeq, cubic interpolation at the knots) converges to the
    # same gradient at 4th order: measured 1.5e-4 relative with 2 substeps, 9e-6 with 4 (16x, as h^4
    # predicts); 1e-4 bounds the 4-substep error and fails for a 2nd-order (e.g. linearly interpolated) one
    g_rk4 = _gradient(model.module, y0, knots, target, ud.Solver("rk4", substeps=4, adjoint=True))
    rel = float((g_rk4 - g_dir).norm() / g_dir.norm())
    assert rel < 1e-4, rel


# ------------------------------------------------------------------------------------------------
# errors


def test_bad_initial_state_shape():
    with pytest.raises(DataError, match=r"y0: expected shape \(2,\) or \(B, 2\), received \(3,\)"):
        ud.simulate(_oscillator(), [1.0, 0.0, 0.0], np.linspace(0, 1, 5))
    with pytest.raises(DataError, match=r"received \(2, 2, 2\)"):
        ud.simulate(_oscillator(), np.zeros((2, 2, 2)), np.linspace(0, 1, 5))


def test_missing_or_unexpected_inputs():
    model = _f64(ud.HybridModel({x: -x + S}, inputs=[S]))
    t = np.linspace(0, 1, 5)
    with pytest.raises(DataError, match=r"this model needs input series \['S'\]; pass inputs="):
        ud.simulate(model, [1.0], t)
    with pytest.raises(DataError, match=r"inputs: missing series \['S'\]; expected keys \['S'\]"):
        ud.simulate(model, [1.0], t, inputs={"R": np.zeros(5)})
    with pytest.raises(DataError, match=r"inputs\['S'\]: expected 5 samples \(one per time\), received 4"):
        ud.simulate(model, [1.0], t, inputs={"S": np.zeros(4)})
    with pytest.raises(DataError, match=r"inputs: expected shape \(5, 1\), received \(5, 2\)"):
        ud.simulate(model, [1.0], t, inputs=np.zeros((5, 2)))
    with pytest.raises(DataError, match="input series must be finite"):
        ud.simulate(model, [1.0], t, inputs={"S": [0.0, np.nan, 0.0, 0.0, 0.0]})
    with pytest.raises(DataError, match="this model has no inputs, received an input series"):
        ud.simulate(_decay(), [1.0], t, inputs={"S": np.zeros(5)})


def test_bad_time_grid_and_model():
    with pytest.raises(DataError, match="t: times must be strictly increasing"):
        ud.simulate(_decay(), [1.0], [0.0, 2.0, 1.0])
    with pytest.raises(DataError, match="model: expected a HybridModel, received str"):
        ud.simulate("model", [1.0], [0.0, 1.0])


def test_solver_options_are_validated():
    with pytest.raises(ConfigError, match=r"Solver method: expected one of .*'dopri5'.*received 'nope'"):
        ud.Solver("nope")
    with pytest.raises(ConfigError, match="Solver rtol: expected a positive number, received 0"):
        ud.Solver(rtol=0)
    with pytest.raises(ConfigError, match="Solver substeps: expected a positive int, received 0"):
        ud.Solver("rk4", substeps=0)
    assert ud.Solver("rk4").fixed and not ud.Solver("dopri5").fixed


def test_adaptive_step_budget_covers_the_whole_solve():
    # torchdiffeq counts max_num_steps per output interval; udesci caps the whole solve (no adjoint),
    # so a fast oscillator over many outputs gives up instead of running for minutes
    a, b = sp.symbols("a b")
    fast = ud.HybridModel({a: 200 * b, b: -200 * a})
    t = np.linspace(0.0, 30.0, 601)  # about 1,000 periods: far more than 12 x 50 evaluations
    with pytest.raises(AssertionError, match="max_num_steps"):
        ud.simulate(fast, [1.0, 0.0], t, solver=ud.Solver("dopri5", rtol=1e-9, atol=1e-9, max_steps=50))
    # within budget it is unchanged: exact solution cos/sin at a modest horizon
    short = np.linspace(0.0, 0.05, 11)
    sim = ud.simulate(fast, [1.0, 0.0], short, solver=ud.Solver("dopri5", rtol=1e-10, atol=1e-10))
    np.testing.assert_allclose(sim[:, 0], np.cos(200 * short), atol=1e-7)


def test_simulate_accepts_read_only_arrays_without_warnings():
    # pandas and memory-mapped data hand out read-only arrays: simulate copies, so torch never warns
    import warnings

    xs, s = sp.symbols("x S")
    model = ud.HybridModel({xs: -xs + s}, inputs=[s])
    t = np.linspace(0.0, 1.0, 11)
    u = np.ones(11)
    y0 = np.array([0.0])
    for arr in (t, u, y0):
        arr.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sim = ud.simulate(model, y0, t, inputs={"S": u})
    np.testing.assert_allclose(sim[:, 0], 1.0 - np.exp(-t), atol=1e-8)  # x' = 1 - x, x(0) = 0


def test_wall_clock_budget_is_validated_and_gives_up_with_guidance():
    for bad in (0, -1.0, float("inf"), True, "10"):
        with pytest.raises(ConfigError, match="Solver max_seconds: expected None or a positive finite number"):
            ud.Solver(max_seconds=bad)
    assert ud.Solver(max_seconds=30).max_seconds == 30 and ud.Solver().max_seconds is None
    # the whole-solve step budget gives up with a SolverGaveUp (an AssertionError, as before) that says
    # what to try: the same fast oscillator as above
    a, b = sp.symbols("a b")
    fast = ud.HybridModel({a: 200 * b, b: -200 * a})
    t = np.linspace(0.0, 30.0, 601)
    with pytest.raises(SolverGaveUp, match=r"max_num_steps exceeded.*stiff.*Solver\('rodas4'"):
        ud.simulate(fast, [1.0, 0.0], t, solver=ud.Solver("dopri5", rtol=1e-9, atol=1e-9, max_steps=50))
    # with the adjoint, the backward solve counts towards the same wall-clock limit
    model = _f64(ud.HybridModel({x: -k * x}, params={k: ud.Learnable(1.0)}))
    knots = torch.linspace(0.0, 1.0, 5, dtype=F64).expand(1, -1)
    y0 = torch.ones(1, 1, dtype=F64)
    out = ud.integrate(model.module, y0, knots, ud.Solver("dopri5", adjoint=True, max_seconds=1.0))
    time.sleep(1.1)
    with pytest.raises(SolverGaveUp, match="max_seconds exceeded"):
        out.sum().backward()
