"""The stiff-capable solver ``Solver("rodas4")`` (udesci.stiff) and bounded solves with guidance (udesci.budget).

Accuracy is checked against closed forms (matrix exponential, a non-autonomous Riccati equation) and
against scipy's Radau at rtol = 1e-10 (Robertson's reactions, Van der Pol at mu = 1000); gradients
against central finite differences; fitting with ``ud.fit``; and an explicit method on a stiff model
must stop within its wall-clock budget with a message that names stiffness and rodas4.  Everything in
float64; each tolerance says where it comes from.  Wall times are printed (``pytest -s``) and bounded
generously: the test machine is two shared cores.
"""

from __future__ import annotations

import functools
import math
import time

import numpy as np
import pytest
import sympy as sp
import torch
from scipy.integrate import solve_ivp
from scipy.linalg import expm

import udesci as ud
from udesci.budget import SolverGaveUp, advice
from udesci.errors import ConfigError
from udesci.solve import integrate
from udesci.train import TrainingLoop, TrainingWarning, solver_gave_up

pytestmark = pytest.mark.usefixtures("one_thread")

t_, a, b, x, v, u = sp.symbols("t a b x v u")
y1, y2, y3, k1, mu, k = sp.symbols("y1 y2 y3 k1 mu k")
F64 = torch.float64
QUIET = {"progress": False, "threads": 1}

# Robertson's reactions: k1 = 0.04, k2 = 3e7, k3 = 1e4, y0 = (1, 0, 0)
K1, K2, K3 = 0.04, 3e7, 1e4


def _robertson(rate=K1):
    eq = {y1: -k1 * y1 + K3 * y2 * y3, y2: k1 * y1 - K3 * y2 * y3 - K2 * y2**2, y3: K2 * y2**2}
    return ud.HybridModel(eq, params={k1: rate})


def _robertson_rhs(_t, y):
    return [-K1 * y[0] + K3 * y[1] * y[2], K1 * y[0] - K3 * y[1] * y[2] - K2 * y[1] ** 2, K2 * y[1] ** 2]


def _van_der_pol(m=1000.0):
    return ud.HybridModel({x: v, v: mu * (1 - x**2) * v - x}, params={mu: m})


def _radau(rhs, y0, t, atol):
    sol = solve_ivp(rhs, (t[0], t[-1]), y0, method="Radau", rtol=1e-10, atol=atol, t_eval=t)
    assert sol.success
    return sol.y.T


@functools.lru_cache
def _vdp_reference(t_end: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Van der Pol at mu = 1000 from (2, 0) on ``linspace(0, t_end, n)``: times and Radau states."""
    t = np.linspace(0.0, t_end, n)
    return t, _radau(lambda _t, y: [y[1], 1000.0 * (1 - y[0] ** 2) * y[1] - y[0]], [2.0, 0.0], t, 1e-10)


# --------------------------------------------------------------------------------------------------
# accuracy
# --------------------------------------------------------------------------------------------------
def test_linear_stiff_system_matches_the_matrix_exponential_at_several_tolerances():
    # y' = M y with eigenvalues -1 and -1e4 in a non-normal basis: exact solution expm(M t) y0
    V = np.array([[1.0, 1.0], [1.0, -0.5]])
    M = V @ np.diag([-1.0, -1e4]) @ np.linalg.inv(V)
    model = ud.HybridModel({a: M[0, 0] * a + M[0, 1] * b, b: M[1, 0] * a + M[1, 1] * b})
    t = np.linspace(0.0, 3.0, 13)
    y0 = np.array([1.0, 0.5])
    exact = np.stack([expm(M * ti) @ y0 for ti in t])
    errors = []
    for tol in (1e-4, 1e-6, 1e-8):
        sim = ud.simulate(model, y0, t, solver=ud.Solver("rodas4", rtol=tol, atol=tol))
        errors.append(np.abs(sim - exact).max())
        # local error control at tol, global error over a decaying (contractive) solution: within 10 tol
        assert errors[-1] < 10 * tol, (tol, errors[-1])
    assert errors[0] > errors[1] > errors[2]


def test_rodas4_is_fourth_order_on_a_nonautonomous_equation():
    # y' = -2 t y^2, y(0) = 1: y = 1 / (1 + t^2).  Huge tolerances make every step land on the next
    # output time, so the steps are the output spacing h; the error at t = 1 must fall like h^4
    # (ratios near 16 per halving; > 12, i.e. observed order > 3.5, allows for the pre-asymptotic regime).
    # The field depends on t, so this also checks the h df/dt terms of the method.
    model = ud.HybridModel({a: -2 * t_ * a**2})
    loose = ud.Solver("rodas4", rtol=1e3, atol=1e3)
    errors = []
    for n in (16, 32, 64):
        t = np.linspace(0.0, 1.0, n + 1)
        sim = ud.simulate(model, [1.0], t, solver=loose)
        errors.append(abs(sim[-1, 0] - 0.5))
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert min(ratios) > 12, (errors, ratios)


def test_rodas4_is_l_stable():
    # y' = -1e8 y with steps forced to 0.1 (h lambda = -1e7): an L-stable method damps the mode to
    # |R(h lambda)| ~ 1/|h lambda| per step; an A-stable-only one (trapezoid: R -> -1) would not damp it
    model = ud.HybridModel({a: -1e8 * a})
    t = np.linspace(0.0, 1.0, 11)
    sim = ud.simulate(model, [1.0], t, solver=ud.Solver("rodas4", rtol=1e3, atol=1e3))
    assert np.all(np.abs(sim[1:, 0]) < 1e-6)


def test_robertson_to_1e5_matches_radau_in_bounded_time():
    t = np.concatenate([[0.0], np.logspace(-5, 5, 31)])
    ref = _radau(_robertson_rhs, [1.0, 0.0, 0.0], t, 1e-14)
    start = time.perf_counter()
    sim = ud.simulate(_robertson(), [1.0, 0.0, 0.0], t, solver=ud.Solver("rodas4", rtol=1e-7, atol=1e-12))
    wall = time.perf_counter() - start
    print(f"Robertson to t = 1e5 with rodas4 (rtol 1e-7): {wall:.2f} s")
    assert wall < 60  # about 1 s on an idle core
    # rtol 1e-7 local control, some accumulation over 10 decades of time: relative 1e-5 of each state
    # (y2 peaks at 3.6e-5; its absolute floor 1e-12 is atol), absolute 1e-11 for the tiny early values
    np.testing.assert_allclose(sim, ref, rtol=1e-5, atol=1e-11)
    # Rosenbrock methods conserve linear invariants up to rounding: y1 + y2 + y3 = 1
    np.testing.assert_allclose(sim.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_van_der_pol_mu_1000_over_one_period_matches_radau():
    # one relaxation period is (3 - 2 ln 2) mu ~ 1614 time units; the outputs avoid no point on purpose
    t, ref = _vdp_reference(1700.0, 35)
    start = time.perf_counter()
    sim = ud.simulate(_van_der_pol(), [2.0, 0.0], t, solver=ud.Solver("rodas4", rtol=1e-6, atol=1e-6))
    wall = time.perf_counter() - start
    print(f"Van der Pol mu = 1000 over t in [0, 1700] with rodas4 (rtol 1e-6): {wall:.2f} s")
    assert wall < 60  # about 2 s on an idle core
    # the jumps make the phase error visible: at rtol 1e-6 x matches to 1e-4, v (~1e-3 on the slow
    # branches) to 1e-5 (measured 1.3e-5 and 6e-7)
    np.testing.assert_allclose(sim[:, 0], ref[:, 0], rtol=0, atol=1e-4)
    np.testing.assert_allclose(sim[:, 1], ref[:, 1], rtol=0, atol=1e-5)


def test_batched_rows_on_their_own_grids_match_single_row_solves():
    # rows with different spans, start times and padding (repeated last time) are independent problems:
    # each must equal its own single-row solve exactly (each row steps on its own, and rows do not interact)
    model = _van_der_pol(5.0)
    field = model.module
    knots = torch.tensor([[0.0, 0.5, 1.0, 2.0, 3.0], [1.0, 1.1, 1.3, 1.3, 1.3], [0.0, 1.5, 3.0, 4.5, 6.0]], dtype=F64)
    y0 = torch.tensor([[2.0, 0.0], [1.0, 1.0], [-1.0, 0.5]], dtype=F64)
    solver = ud.Solver("rodas4", rtol=1e-7, atol=1e-7)
    with torch.no_grad():
        both = integrate(field, y0, knots, solver)
        for r in range(3):
            alone = integrate(field, y0[r : r + 1], knots[r : r + 1], solver)
            torch.testing.assert_close(both[r], alone[0], rtol=0, atol=0)
    # zero-length intervals leave the state unchanged
    torch.testing.assert_close(both[1, 2], both[1, 4], rtol=0, atol=0)
    # and the result is right: dopri5 at 1e-9 on the same batch; rtol 1e-7 local control allows 1e-5
    ref = integrate(field, y0, knots, ud.Solver("dopri5", rtol=1e-9, atol=1e-9))
    torch.testing.assert_close(both, ref, rtol=0, atol=1e-5)


def test_measured_inputs_are_bound_per_evaluation():
    # x' = -k x + u(t) with u piecewise linear: rodas4 steps onto the input's kinks and matches dopri5
    # (which steps onto them too) at 1e-10 to 1e-6 (rodas4 at rtol 1e-8 on a contractive solution)
    model = ud.HybridModel({x: -k * x + u}, params={k: 50.0}, inputs=[u])
    t = np.linspace(0.0, 2.0, 21)
    series = np.sin(3 * t) + (t > 1.0)
    kw = {"inputs": {"u": series}}
    ref = ud.simulate(model, [1.0], t, **kw, solver=ud.Solver("dopri5", rtol=1e-10, atol=1e-10))
    sim = ud.simulate(model, [1.0], t, **kw, solver=ud.Solver("rodas4", rtol=1e-8, atol=1e-8))
    np.testing.assert_allclose(sim, ref, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------------------------------
def _central(loss, param, step):
    with torch.no_grad():
        param += step
        up = float(loss())
        param -= 2 * step
        down = float(loss())
        param += step
    return (up - down) / (2 * step)


def test_gradient_through_rodas4_matches_central_differences():
    # the solve is differentiated by backpropagation through its steps (exact Jacobians, kept
    # differentiable): the gradient of the discrete solution.  Central differences with a relative step
    # of 1e-6 have truncation error ~1e-12 and rounding error ~1e-10 relative; the step sizes the
    # controller picks depend on the parameter too (an effect of order rtol = 1e-8 that backpropagation
    # leaves out).  Agreement to 1e-5 relative covers all three with a wide margin (measured ~1e-7).
    model = _robertson(ud.Learnable(0.05))
    field = model.module
    t = np.concatenate([[0.0], np.logspace(-4, 1, 11)])
    knots = torch.tensor(t, dtype=F64).expand(1, -1)
    y0 = torch.tensor([[1.0, 0.0, 0.0]], dtype=F64, requires_grad=True)
    weights = torch.tensor([1.0, 1e4, 1.0], dtype=F64)
    solver = ud.Solver("rodas4", rtol=1e-8, atol=1e-12)

    def loss():
        return (integrate(field, y0, knots, solver) * weights).pow(2).sum()

    value = loss()
    value.backward()
    rate = field.learnable["k1"]
    fd = _central(loss, rate, 0.05e-6)
    assert math.isclose(rate.grad.item(), fd, rel_tol=1e-5), (rate.grad.item(), fd)
    # the initial state: its gradient flows through every step's Jacobian (reattached to the state)
    y0_grad = y0.grad.clone()
    with torch.no_grad():
        entry = y0[0, 0:1]
    fd = _central(loss, entry, 1e-6)
    assert math.isclose(y0_grad[0, 0].item(), fd, rel_tol=1e-5), (y0_grad[0, 0].item(), fd)


def test_gradient_of_a_network_weight_matches_central_differences():
    # an unknown backed by the default MLP: backpropagation needs second derivatives of the network
    # (the Jacobian is differentiated).  The gradient is ~1e-4 on a loss ~1: a difference step of 1e-4
    # keeps rounding (eps loss / step ~ 2e-12) and truncation (~step^2) near 1e-8 relative; the step-size
    # selection effect is of order rtol = 1e-8.  Agreement to 1e-5 relative (measured ~1e-7 over seeds).
    torch.manual_seed(0)
    U = sp.Function("U")
    model = ud.HybridModel({a: -20 * a + U(b), b: -b + a})
    model.module.to(F64)
    field = model.module
    knots = torch.linspace(0.0, 2.0, 9, dtype=F64).expand(2, -1)
    y0 = torch.tensor([[1.0, 0.0], [0.5, -1.0]], dtype=F64)
    solver = ud.Solver("rodas4", rtol=1e-8, atol=1e-8)

    def loss():
        return integrate(field, y0, knots, solver).pow(2).sum()

    weight = next(p for p in field.parameters() if p.ndim == 2)
    loss().backward()
    fd = _central(loss, weight[0, 0:1], 1e-4)
    assert math.isclose(weight.grad[0, 0].item(), fd, rel_tol=1e-5), (weight.grad[0, 0].item(), fd)


# --------------------------------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------------------------------
def _fit(model, t, truth, states, solver, iterations, lr):
    data = ud.Dataset(t, truth, states=states)
    # the full-trajectory stage starts from the smoothed data at t0; an almost interpolating spline
    # (no warm-start iterations) keeps that start at the data, which matters for Robertson's y2 ~ 1e-5
    return ud.fit(
        model,
        data,
        warm_start=ud.WarmStart(iterations=0, smoothing=1e-12),
        shooting=None,
        full=ud.FullTrajectory(iterations=iterations, lr=lr, learn_initial=False, solver=solver),
        **QUIET,
    )


def test_fit_recovers_a_robertson_rate_with_rodas4():
    t = np.concatenate([[0.0], np.logspace(-3, 2, 16)])
    truth = _radau(_robertson_rhs, [1.0, 0.0, 0.0], t, 1e-14)
    start = time.perf_counter()
    fitted = _fit(
        _robertson(ud.Learnable(0.06)),  # 50 % off
        t,
        truth,
        ["y1", "y2", "y3"],
        ud.Solver("rodas4", rtol=1e-4, atol=1e-8),
        iterations=14,
        lr=2e-3,
    )
    wall = time.perf_counter() - start
    print(f"fit of Robertson's k1 (14 Adam iterations, rodas4): {wall:.2f} s")
    assert fitted.status == "ok"
    assert wall < 60  # about 5 s on an idle core
    # Adam moves k1 by about lr = 2e-3 per iteration and the best iterate is kept: it lies within half a
    # step of the optimum; the data are exact and solver error at rtol 1e-4 is far smaller (measured 0.0397)
    assert abs(fitted.model.parameter_values()[k1] - K1) < 1e-3


@pytest.mark.slow  # about 4 s alone, but the default suite's share of this file is kept near 30 s
def test_fit_recovers_van_der_pol_mu_1000_with_rodas4():
    # the slow branch up to t = 700 (the first jump is near t = 807): stiff throughout (dopri5 would need
    # ~1e6 steps), and mu enters smoothly.  Windows that include a jump make the misfit a staircase in
    # mu (samples switch branch one by one), where gradient descent from 10 % off walks the wrong way.
    t, truth = _vdp_reference(700.0, 36)
    start = time.perf_counter()
    fitted = _fit(
        _van_der_pol(ud.Learnable(1200.0)),  # 20 % off
        t,
        truth,
        ["x", "v"],
        ud.Solver("rodas4", rtol=1e-6, atol=1e-6),
        iterations=14,
        lr=20.0,
    )
    wall = time.perf_counter() - start
    print(f"fit of Van der Pol's mu (14 Adam iterations, rodas4): {wall:.2f} s")
    assert fitted.status == "ok"
    # Adam steps of about lr = 20: the best iterate lies within about half a step of mu = 1000
    assert abs(fitted.model.parameter_values()[mu] - 1000.0) < 15.0


# --------------------------------------------------------------------------------------------------
# bounded time, with guidance
# --------------------------------------------------------------------------------------------------
def test_explicit_solver_on_stiff_van_der_pol_stops_within_its_budget_with_guidance():
    # dopri5 on Van der Pol at mu = 1000 needs millions of steps per period; with a wall-clock budget
    # the default full-trajectory stage (dopri5, adjoint) stops at once, keeps the start weights and
    # says what to try
    data = ud.Dataset(*_vdp_reference(1700.0, 35), states=["x", "v"])
    solver = ud.Solver("dopri5", rtol=1e-6, atol=1e-6, adjoint=True, max_seconds=2.0)
    start = time.perf_counter()
    with pytest.warns(TrainingWarning, match="stiff"):
        fitted = ud.fit(
            _van_der_pol(ud.Learnable(1100.0)),
            data,
            warm_start=None,
            shooting=None,
            full=ud.FullTrajectory(iterations=5, solver=solver),
            **QUIET,
        )
    wall = time.perf_counter() - start
    print(f"dopri5 on stiff Van der Pol, budget 2 s: stopped after {wall:.2f} s")
    assert wall < 30  # the 2 s budget plus setup; without it two iterations took over two minutes
    assert fitted.status == "nonfinite"
    assert "max_seconds exceeded" in fitted.message and "Solver('rodas4'" in fitted.message
    assert fitted.model.parameter_values()[mu] == 1100.0


def test_simulate_with_an_explicit_method_gives_up_with_guidance():
    t = np.linspace(0.0, 1700.0, 5)
    start = time.perf_counter()
    with pytest.raises(SolverGaveUp, match=r"max_seconds exceeded.*stiff.*Solver\('rodas4'") as info:
        ud.simulate(_van_der_pol(), [2.0, 0.0], t, solver=ud.Solver("dopri5", max_seconds=0.5))
    assert time.perf_counter() - start < 20
    assert isinstance(info.value, AssertionError) and solver_gave_up(info.value)
    # torchdiffeq's own give-ups (here a finite-time blow-up: step-size underflow) carry the same guidance
    blow_up = ud.HybridModel({a: a**2})
    with pytest.raises(SolverGaveUp, match=r"underflow in dt.*Solver\('rodas4'"):
        ud.simulate(blow_up, [1.0], [0.0, 2.0])


def test_rodas4_honours_its_step_budget_and_reports_blow_up():
    with pytest.raises(SolverGaveUp, match=r"max_num_steps exceeded: more than 20 steps"):
        ud.simulate(_van_der_pol(), [2.0, 0.0], [0.0, 1700.0], solver=ud.Solver("rodas4", max_steps=20))
    # a finite-time blow-up: steps shrink until they no longer move time; the advice fits rodas4
    with pytest.raises(SolverGaveUp, match="underflow in dt") as info:
        ud.simulate(ud.HybridModel({a: a**2}), [1.0], [0.0, 2.0], solver=ud.Solver("rodas4"))
    assert "blows up" in str(info.value) and advice("rodas4") in str(info.value)


def test_rodas4_options_are_validated():
    with pytest.raises(ConfigError, match="Solver adjoint: 'rodas4' backpropagates through its steps"):
        ud.Solver("rodas4", adjoint=True)
    assert ud.Solver("rodas4").stiff and not ud.Solver("rodas4").fixed and not ud.Solver().stiff


def test_training_loop_message_carries_the_solvers_guidance():
    # a give-up raised from the backward pass (an adjoint's backward solve) stops training too
    model = ud.HybridModel({x: -k * x}, params={k: ud.Learnable(1.0)})
    param = model.module.learnable["k"]

    class GiveUpInBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, value):
            return value.clone()

        @staticmethod
        def backward(ctx, grad):
            raise AssertionError("underflow in dt 1e-20")

    loop = TrainingLoop(model, {}, False, None, 10, None)
    with pytest.warns(TrainingWarning, match=r"solver gave up \(underflow in dt 1e-20\).*Solver\('rodas4'"):
        loop.run("full", [param], lambda: GiveUpInBackward.apply((param - 2.0) ** 2), iterations=3, lr=0.1)
    assert loop.status == "nonfinite" and param.item() == 1.0
