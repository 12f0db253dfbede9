"""Solving hybrid models: one batched solve for many trajectories or segments.

Every solve in udesci goes through :func:`integrate`: a batch of ``B`` initial
states, each with its own grid of output times (rows of ``knots``).  Rows may
have different lengths (pad by repeating the last time) and different spacings.
Fixed-step methods without adjoint use a fused loop that steps every row on its
own grid; everything else maps each row linearly onto ``s in [0, 1]`` and calls
torchdiffeq's ``odeint`` / ``odeint_adjoint`` once for the whole batch, or, for the stiff-capable
``"rodas4"``, udesci's own Rosenbrock solver (:mod:`udesci.stiff`).  Every solve runs under a
:class:`~udesci.budget.Budget` and gives up with :class:`~udesci.budget.SolverGaveUp`, whose message
says what to try.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torchdiffeq
from torch import nn

from .budget import STIFF_METHOD, Budget, SolverGaveUp, gave_up
from .data import InputInterpolator, check_time
from .errors import ConfigError, DataError, describe
from .stiff import rosenbrock

FIXED_METHODS = ("euler", "midpoint", "rk4")
ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
STIFF_METHODS = (STIFF_METHOD,)
METHODS = FIXED_METHODS + ADAPTIVE_METHODS + STIFF_METHODS


@dataclass(frozen=True)
class Solver:
    """ODE solver and sensitivity options.

    Parameters
    ----------
    method : str, default "dopri5"
        A torchdiffeq method: adaptive ``dopri5``, ``dopri8``, ``bosh3``,
        ``fehlberg2``, ``adaptive_heun`` or fixed-step ``rk4``, ``midpoint``,
        ``euler``; or ``rodas4``, udesci's adaptive L-stable Rosenbrock method
        of order 4 (Hairer & Wanner's RODAS coefficients, see :mod:`udesci.stiff`)
        for stiff models (fast reactions, relaxation oscillations), where explicit
        methods crawl: it uses the exact Jacobian of the field (by autograd) and
        one inverse of the iteration matrix per step, each row with its own step
        size landing exactly on its output times (and on ``jumps``).
    rtol, atol : float, default 1e-6
        Tolerances of adaptive methods.
    adjoint : bool, default False
        Compute gradients with the adjoint method (torchdiffeq
        ``odeint_adjoint``): memory independent of the number of steps, at
        the price of a backward ODE solve.  ``False`` backpropagates through
        the solver's operations (faster for small models and short horizons;
        the only choice for ``rodas4``).
    substeps : int, default 1
        Fixed-step methods: steps per interval between consecutive output times.
        (Without the adjoint, fixed-step methods run udesci's fused loop with
        the classic RK4 tableau; with ``adjoint=True`` they run torchdiffeq's,
        whose ``rk4`` is the 3/8-rule variant: both fourth order, values differ
        at O(h^4).)
    max_steps : int, default 100000
        Adaptive methods: give up (:class:`~udesci.budget.SolverGaveUp`, an
        ``AssertionError``) after this many steps between two output times, and,
        without the adjoint, after about this many steps in total (counted as 12
        field evaluations per step).  ``rodas4``: after this many steps
        (accepted or rejected) in the whole solve.
    max_seconds : float or None, default None
        Give up (:class:`~udesci.budget.SolverGaveUp`) once one solve has run this
        many wall-clock seconds, checked at every field evaluation (with the
        adjoint, its backward pass counts towards the same limit).  ``None``: no
        limit (the step budget still applies).  A stiff model solved by an
        explicit method takes tiny steps for minutes; a limit makes training stop
        with the best weights kept and a message saying what to try.  (Results
        then depend on the machine's speed, which is why there is no default.)
        Fixed-step methods without the adjoint take a known number of steps and
        do not check it.

    Raises
    ------
    ConfigError
        For an unknown method, non-positive tolerances/steps/seconds, or
        ``adjoint=True`` with ``rodas4``.
    """

    method: str = "dopri5"
    rtol: float = 1e-6
    atol: float = 1e-6
    adjoint: bool = False
    substeps: int = 1
    max_steps: int = 100_000
    max_seconds: float | None = None

    def __post_init__(self):
        if self.method not in METHODS:
            raise ConfigError(f"Solver method: expected one of {METHODS}, received {self.method!r}.")
        for name in ("rtol", "atol"):
            if not float(getattr(self, name)) > 0:
                raise ConfigError(f"Solver {name}: expected a positive number, received {getattr(self, name)!r}.")
        for name in ("substeps", "max_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"Solver {name}: expected a positive int, received {v!r}.")
        v = self.max_seconds
        if v is not None and (
            isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or not math.isfinite(v)
        ):
            raise ConfigError(f"Solver max_seconds: expected None or a positive finite number, received {v!r}.")
        if self.stiff and self.adjoint:
            raise ConfigError(
                f"Solver adjoint: {self.method!r} backpropagates through its steps and has no adjoint; "
                "use adjoint=False (or an explicit method with adjoint=True)."
            )

    @property
    def fixed(self) -> bool:
        """True for fixed-step methods."""
        return self.method in FIXED_METHODS

    @property
    def stiff(self) -> bool:
        """True for the stiff-capable (Rosenbrock) method."""
        return self.method in STIFF_METHODS


def rk_step(f, t, y, h, method):
    """One explicit step ``y(t) -> y(t + h)`` of ``method`` ("euler", "midpoint" or "rk4") for ``dy/dt = f(t, y)``."""
    if method == "euler":
        return y + h * f(t, y)
    if method == "midpoint":
        return y + h * f(t + h[:, 0] / 2, y + h / 2 * f(t, y))
    k1 = f(t, y)
    th = t + h[:, 0] / 2
    k2 = f(th, y + h / 2 * k1)
    k3 = f(th, y + h / 2 * k2)
    k4 = f(t + h[:, 0], y + h * k3)
    return y + h / 6 * (k1 + 2 * (k2 + k3) + k4)


class _Rescaled(nn.Module):
    """``dy/ds = (t1 - t0) f(t0 + s (t1 - t0), y)``: each row on its own time span."""

    def __init__(self, field: nn.Module, t0: torch.Tensor, span: torch.Tensor, budget: Budget, inputs=None):
        super().__init__()
        self.field = field
        self.register_buffer("t0", t0)
        self.register_buffer("span", span)
        self.budget = budget
        self.inputs = inputs

    def forward(self, s, y):
        self.budget.spend()
        # the inputs are bound per evaluation: an adjoint's backward solve runs after integrate returns
        with _binding(self.field, self.inputs):
            return self.field(self.t0 + s * self.span, y) * self.span.unsqueeze(-1)


def _fused(field):
    """The field's fused-network context if it has one (VectorField), else a no-op."""
    fused = getattr(field, "fused", None)
    return fused() if fused is not None else nullcontext()


def _binding(field, inputs):
    """``field.bound_inputs(*inputs)``, or a no-op for ``inputs=None``."""
    return nullcontext() if inputs is None else field.bound_inputs(*inputs)


def integrate(
    field: nn.Module,
    y0: torch.Tensor,
    knots: torch.Tensor,
    solver: Solver,
    jumps: torch.Tensor | None = None,
    inputs: tuple | None = None,
) -> torch.Tensor:
    """Solve ``B`` initial value problems at once, each on its own output grid.

    Parameters
    ----------
    field : torch.nn.Module
        Vector field ``field(t, y)`` with ``t`` of shape ``(B,)`` and ``y`` of
        shape ``(B, n)``.
    y0 : torch.Tensor of shape (B, n)
        Initial states at ``knots[:, 0]``.
    knots : torch.Tensor of shape (B, J + 1)
        Non-decreasing output times per row; pad short rows by repeating their
        last time (zero-length intervals leave the state unchanged).
    solver : Solver
    jumps : torch.Tensor of shape (M,), optional
        Times where the field has kinks (e.g. input sample times of linear
        interpolation); adaptive methods step exactly onto them.  Only used when
        all rows share the same time span (``rodas4``: in every row).
    inputs : (InputInterpolator or None, torch.Tensor of shape (B,)), optional
        Measured inputs of the batch: the series and the trajectory of each row,
        bound with ``field.bound_inputs`` for every evaluation of the solve (its
        adjoint backward pass included).  ``None`` leaves the field's binding as it is.

    Returns
    -------
    torch.Tensor of shape (B, J + 1, n)
        States at the knots (``[:, 0]`` is ``y0``).

    Raises
    ------
    ConfigError
        If a row has zero total length with an adaptive method.
    SolverGaveUp
        If the solve exceeds ``solver.max_steps`` or ``solver.max_seconds``, or its
        step size underflows (an ``AssertionError``; with the adjoint, its backward
        pass raises it or torchdiffeq's own ``AssertionError`` from ``backward()``).
    """
    if solver.fixed and not solver.adjoint:
        with _fused(field), _binding(field, inputs):
            dt = torch.diff(knots, dim=1)
            y, out = y0, [y0]
            for j in range(dt.shape[1]):
                h = (dt[:, j] / solver.substeps).unsqueeze(-1)
                t = knots[:, j]
                for _ in range(solver.substeps):
                    y = rk_step(field, t, y, h, solver.method)
                    t = t + h[:, 0]
                out.append(y)
            return torch.stack(out, dim=1)
    t0, span = knots[:, 0], knots[:, -1] - knots[:, 0]
    if torch.any(span <= 0):
        raise ConfigError("integrate: every row of knots must span a positive time interval.")
    s = (knots - t0[:, None]) / span[:, None]
    if solver.stiff:
        rescaled = _Rescaled(field, t0, span, Budget(None, solver.max_seconds, solver.method), inputs)
        s_jumps = None
        if jumps is not None:
            s_jumps = (jumps.to(span.dtype)[None, :] - t0[:, None]) / span[:, None]
        with _fused(field):
            return rosenbrock(rescaled, y0, s, solver.rtol, solver.atol, solver.max_steps, s_jumps)
    grid, inverse = torch.unique(s.detach(), sorted=True, return_inverse=True)
    grid[0], grid[-1] = 0.0, 1.0
    evaluations = None if (solver.fixed or solver.adjoint) else 12 * solver.max_steps
    rescaled = _Rescaled(field, t0, span, Budget(evaluations, solver.max_seconds, solver.method), inputs)
    options: dict = {}
    if solver.fixed:
        options["step_size"] = float(1.0 / (solver.substeps * (knots.shape[1] - 1)))
        # knots of irregular rows fall between steps: torchdiffeq's default linear interpolation there is
        # O(h^2) accurate, which spoils rk4; cubic Hermite interpolation is O(h^4)
        options["interp"] = "cubic"
    else:
        options["max_num_steps"] = solver.max_steps
        if jumps is not None and bool((t0 == t0[0]).all() and (span == span[0]).all()):
            sj = (jumps.to(span.dtype) - t0[0]) / span[0]
            sj = sj[(sj > 0) & (sj < 1)]
            if sj.numel():
                options["jump_t"] = sj
    kwargs = dict(rtol=solver.rtol, atol=solver.atol, method=solver.method, options=options)
    try:
        if solver.adjoint:
            params = tuple(p for p in field.parameters() if p.requires_grad)
            sol = torchdiffeq.odeint_adjoint(rescaled, y0, grid, adjoint_params=params, **kwargs)
        else:
            with _fused(field):
                sol = torchdiffeq.odeint(rescaled, y0, grid, **kwargs)
    except AssertionError as exc:
        if isinstance(exc, SolverGaveUp) or not gave_up(exc):
            raise
        # torchdiffeq's own step-size underflow or per-interval step budget: same text, plus what to try
        raise SolverGaveUp(str(exc), solver.method) from exc
    # sol: (G, B, n); pick, for each row b and knot j, the grid point it maps to
    rows = torch.arange(y0.shape[0]).unsqueeze(-1).expand_as(inverse)
    return sol[inverse, rows]


def _input_series(model, t: np.ndarray, inputs, input_times, interpolation, dtype):
    if not model.inputs:
        if inputs is not None:
            raise DataError("inputs: this model has no inputs, received an input series.")
        return None
    if inputs is None:
        raise DataError(f"inputs: this model needs input series {model.input_names}; pass inputs={{name: array}}.")
    ut = t if input_times is None else check_time(input_times, "input_times")
    if isinstance(inputs, dict):
        missing = [n for n in model.input_names if n not in inputs]
        if missing:
            raise DataError(f"inputs: missing series {missing}; expected keys {model.input_names}.")
        cols = [np.asarray(inputs[n], dtype=float).reshape(-1) for n in model.input_names]
        for n, c in zip(model.input_names, cols, strict=True):
            if c.size != ut.size:
                raise DataError(f"inputs[{n!r}]: expected {ut.size} samples (one per time), received {c.size}.")
        arr = np.stack(cols, axis=1)
    else:
        arr = np.asarray(inputs, dtype=float)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.shape != (ut.size, len(model.inputs)):
            raise DataError(f"inputs: expected shape ({ut.size}, {len(model.inputs)}), received {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise DataError("inputs: input series must be finite.")
    return InputInterpolator([ut], [arr], interpolation, dtype)


def simulate(
    model, y0, t, *, inputs=None, input_times=None, interpolation: str = "linear", solver: Solver | None = None
) -> np.ndarray:
    """Simulate a :class:`~udesci.HybridModel` (with or without unknowns).

    Parameters
    ----------
    model : HybridModel
    y0 : array of shape (n_states,) or (B, n_states)
        Initial state(s) at ``t[0]``.
    t : array of shape (T,)
        Strictly increasing output times.
    inputs : dict name -> array (T_u,), or array (T_u, n_inputs), optional
        Measured inputs sampled at ``input_times`` (default ``t``).
    input_times : array of shape (T_u,), optional
    interpolation : {"linear", "cubic"}, default "linear"
    solver : Solver, optional
        Default ``Solver("dopri5", rtol=1e-9, atol=1e-9)``.

    Returns
    -------
    ndarray of shape (T, n_states), or (B, T, n_states) for batched ``y0``.

    Raises
    ------
    DataError
        For a bad time grid, a ``y0`` of the wrong size, or missing inputs.
    """
    from .model import HybridModel

    if not isinstance(model, HybridModel):
        raise DataError(f"model: expected a HybridModel, received {describe(model)}.")
    solver = solver or Solver("dopri5", rtol=1e-9, atol=1e-9)
    t = check_time(t, "t")
    y0a = np.asarray(y0, dtype=float)
    batched = y0a.ndim == 2
    y0a = np.atleast_2d(y0a)
    if y0a.ndim != 2 or y0a.shape[1] != len(model.states):
        raise DataError(
            f"y0: expected shape ({len(model.states)},) or (B, {len(model.states)}), received {np.shape(y0)}."
        )
    field = model.module
    dtype = field.dtype
    interp = _input_series(model, t, inputs, input_times, interpolation, dtype)
    B = y0a.shape[0]
    knots = torch.tensor(t, dtype=dtype).expand(B, -1)  # a copy: t may be a read-only array
    jumps = None
    if interp is not None and interpolation == "linear":
        jumps = interp.knots[0]
    with torch.no_grad():
        y0t = torch.tensor(y0a, dtype=dtype)
        out = integrate(field, y0t, knots, solver, jumps=jumps, inputs=(interp, torch.zeros(B, dtype=torch.long)))
    res = out.numpy()
    return res if batched else res[0]
