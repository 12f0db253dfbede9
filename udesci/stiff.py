"""A stiff-capable solver: RODAS4, an adaptive L-stable Rosenbrock method, batched over rows in torch.

RODAS4 (Hairer & Wanner, *Solving Ordinary Differential Equations II*, 2nd ed., Springer 1996,
section IV.7, table 7.2 / the coefficient set of their code RODAS) has six stages, order 4 with
an embedded order-3 solution for error control, and is stiffly accurate and L-stable, so steps are
limited by accuracy rather than by the fastest decaying mode.  Each step linearises the field once
and solves six linear systems with the same iteration matrix, in the transformed formulation of
Hairer & Wanner (7.25)::

    (I / (h gamma) - J) u_i = f(s + alpha_i h, y + sum_j a_ij u_j) + sum_j (c_ij / h) u_j + d_i h df/ds
    y_new = y + sum_i m_i u_i,      error estimate = u_6

Design, in the batched setting of :func:`~udesci.integrate` (every row already mapped onto
``s in [0, 1]``):

* every row has its own step size and steps exactly onto its own output times (and kink times),
  so there is neither a union grid across rows nor interpolation; all rows are evaluated in every
  step (finished rows take a throw-away step and keep their state), which keeps the batch layout
  that bound inputs and per-row parameter values rely on;
* the Jacobian ``df/dy`` (and ``df/ds`` for the non-autonomous term) is exact, by reverse-mode
  autograd: ``n`` vector-Jacobian products of the stage-1 evaluation (rows are independent, so the
  gradient of a column summed over rows is every row's Jacobian row at once).  Finite differences
  would lose half the digits (and most of them in float32), which costs Rosenbrock methods their
  order.  While gradients are on, the Jacobian is built with ``create_graph`` at a detached copy of
  the state and reattached to it (:func:`linearise`), so backpropagation through the steps
  differentiates the discrete solution exactly and each step costs the same however long the solve;
* the iteration matrix ``I / (h gamma) - J`` is inverted once per step (batched ``inv_ex``) and the
  six stages are matrix-vector products: for the small systems of hybrid models this is several times
  cheaper than LU solves, forward and above all in backpropagation, and as accurate at the
  conditioning stiff problems give it (a singular matrix counts as a failed step);
* step-size control uses detached quantities (steps are not differentiated), the RMS norm of
  ``u_6 / (atol + rtol max(|y|, |y_new|))`` per row, and ``h_new = h min(6, max(0.2, 0.9 err^(-1/4)))``
  (no growth right after a rejection);
* a step that produces a non-finite value (or a singular iteration matrix) in any row is discarded
  for all rows and retried with a ten times smaller step in the offending rows, so a blown-up trial
  never enters the autograd graph (where ``0 * inf`` would poison the gradients of every row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from .budget import STIFF_METHOD, SolverGaveUp


@dataclass(frozen=True)
class RosenbrockTableau:
    """Coefficients of a Rosenbrock method in Hairer & Wanner's transformed formulation.

    Attributes
    ----------
    gamma : float
        Diagonal coefficient (the iteration matrix is ``I / (h gamma) - J``).
    a, c : tuple of tuples
        Strictly lower-triangular ``a_ij`` (stage arguments) and ``c_ij`` (stage couplings), row ``i``
        holding ``j < i``.
    alpha, d : tuple of float
        Stage times ``s + alpha_i h`` and the coefficients of the ``h df/ds`` term.
    m, e : tuple of float
        Weights of the solution and of the error estimate.
    order : int
        Order of the embedded (lower-order) solution plus one: the exponent of step control.
    """

    gamma: float
    a: tuple
    c: tuple
    alpha: tuple
    d: tuple
    m: tuple
    e: tuple
    order: int


_A5 = (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950)

RODAS4 = RosenbrockTableau(
    gamma=0.25,
    a=(
        (),
        (1.544,),
        (0.9466785280815826, 0.2557011698983284),
        (3.314825187068521, 2.896124015972201, 0.9986419139977817),
        _A5,
        (*_A5, 1.0),
    ),
    c=(
        (),
        (-5.6688,),
        (-2.430093356833875, -0.2063599157091915),
        (-0.1073529058151375, -9.594562251023355, -20.47028614809616),
        (7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160),
        (8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136, -6.058818238834054),
    ),
    alpha=(0.0, 0.386, 0.21, 0.63, 1.0, 1.0),
    d=(0.25, -0.1043, 0.1035, -0.0362, 0.0, 0.0),
    m=(*_A5, 1.0, 1.0),
    e=(0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
    order=4,
)

SAFETY, SHRINK, GROW, RETRY = 0.9, 0.2, 6.0, 0.1


class _Reattach(torch.autograd.Function):
    """Identity on ``(f, jac, dfds)`` computed from a detached copy of ``y``, whose backward also
    passes the gradient on to ``y`` (by a vector-Jacobian product through their local graph)."""

    @staticmethod
    def forward(ctx, y, y_local, f, jac, dfds):
        ctx.local = (y_local, f, jac, dfds)
        return f.clone(), jac.clone(), dfds.clone()

    @staticmethod
    def backward(ctx, g_f, g_jac, g_dfds):
        y_local, *outs = ctx.local
        pairs = [(o, g) for o, g in zip(outs, (g_f, g_jac, g_dfds), strict=True) if g is not None and o.requires_grad]
        g_y = None
        if pairs:
            (g_y,) = torch.autograd.grad(
                [o for o, _ in pairs], (y_local,), [g for _, g in pairs], retain_graph=True, allow_unused=True
            )
        return g_y, None, g_f, g_jac, g_dfds


def linearise(func, s: torch.Tensor, y: torch.Tensor, create_graph: bool):
    """``func(s, y)`` with its exact Jacobians per row, by reverse-mode autograd.

    The Jacobians are taken at a detached copy of ``y``, so each vector-Jacobian product walks
    only this evaluation's graph (not the whole solve's history, which would make a solve with
    gradients quadratic in its number of steps); with ``create_graph`` the results are then
    reattached to ``y`` so that backpropagation still differentiates them exactly (second
    derivatives of the field included).

    Parameters
    ----------
    func : callable
        ``func(s, y)`` with ``s`` of shape (B,) and ``y`` of shape (B, n), rows independent.
    s : torch.Tensor of shape (B,)
    y : torch.Tensor of shape (B, n)
    create_graph : bool
        Keep the results differentiable (for backpropagation through the solver).

    Returns
    -------
    f : torch.Tensor of shape (B, n)
    jac : torch.Tensor of shape (B, n, n)
        ``jac[b, i, k] = d f_i / d y_k`` at row ``b``.
    dfds : torch.Tensor of shape (B, n)
        ``d f_i / d s`` at row ``b``.
    """
    n = y.shape[-1]
    with torch.enable_grad():
        s_in = s.detach().requires_grad_()
        y_in = y.detach().requires_grad_()
        f = func(s_in, y_in)
        jac_rows, ds_rows = [], []
        for i in range(n):
            if f.requires_grad:
                gy, gs = torch.autograd.grad(
                    f[:, i].sum(), (y_in, s_in), retain_graph=True, create_graph=create_graph, allow_unused=True
                )
            else:  # the field depends on neither y nor s (nor anything trainable)
                gy = gs = None
            jac_rows.append(torch.zeros_like(y_in) if gy is None else gy)
            ds_rows.append(torch.zeros_like(s_in) if gs is None else gs)
        jac, dfds = torch.stack(jac_rows, dim=1), torch.stack(ds_rows, dim=1)
    if not create_graph:
        return f.detach(), jac.detach(), dfds.detach()
    if y.requires_grad:
        return _Reattach.apply(y, y_in, f, jac, dfds)
    return f, jac, dfds


def _stops(s_knots: torch.Tensor, s_jumps: torch.Tensor | None):
    """Per-row stopping points (sorted, duplicates kept) and, per knot, the first stop equal to it."""
    stops = s_knots if s_jumps is None else torch.cat([s_knots, s_jumps], dim=1)
    stops = torch.sort(stops, dim=1).values.contiguous()
    first = torch.searchsorted(stops, s_knots.contiguous(), right=False)
    return stops, first


def _error_norm(err: torch.Tensor, y: torch.Tensor, y_new: torch.Tensor, rtol: float, atol: float) -> torch.Tensor:
    scale = atol + rtol * torch.maximum(y.abs(), y_new.abs())
    return (err / scale).pow(2).mean(-1).sqrt()


def _initial_step(f0: torch.Tensor, y0: torch.Tensor, rtol: float, atol: float) -> torch.Tensor:
    """First trial step per row (s-units): 1% of the state over its rate, Hairer & Wanner's first guess."""
    scale = atol + rtol * y0.abs()
    d0 = (y0 / scale).pow(2).mean(-1).sqrt()
    d1 = (f0 / scale).pow(2).mean(-1).sqrt()
    h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1)
    return torch.nan_to_num(h0, nan=1e-6).clamp(min=1e-12, max=0.1)


def rosenbrock(
    func,
    y0: torch.Tensor,
    s_knots: torch.Tensor,
    rtol: float,
    atol: float,
    max_steps: int,
    s_jumps: torch.Tensor | None = None,
    tableau: RosenbrockTableau = RODAS4,
) -> torch.Tensor:
    """Solve ``dy/ds = func(s, y)`` for every row from ``s = 0`` to ``s = 1`` with an adaptive Rosenbrock method.

    Parameters
    ----------
    func : callable
        ``func(s, y)`` with ``s`` of shape (B,) and ``y`` of shape (B, n); rows must be independent
        (row ``b`` of the result depends on row ``b`` of ``y`` only).
    y0 : torch.Tensor of shape (B, n)
        States at ``s = 0``.
    s_knots : torch.Tensor of shape (B, J + 1)
        Non-decreasing output points per row, from exactly 0 to exactly 1.
    rtol, atol : float
        Tolerances of the local error estimate.
    max_steps : int
        Give up after this many steps (accepted or rejected) in the whole solve.
    s_jumps : torch.Tensor of shape (B, M), optional
        Points per row where the field has kinks; steps end exactly there (values outside (0, 1) are ignored).
    tableau : RosenbrockTableau, default RODAS4

    Returns
    -------
    torch.Tensor of shape (B, J + 1, n)
        States at the knots (``[:, 0]`` is ``y0``), differentiable by backpropagation when
        gradients are enabled.

    Raises
    ------
    SolverGaveUp
        After ``max_steps`` steps, or when a row's step size underflows.
    """
    B, n = y0.shape
    dtype = y0.dtype
    tiny = torch.finfo(dtype).eps
    create_graph = torch.is_grad_enabled()
    s_knots = s_knots.detach()
    if s_jumps is not None:
        s_jumps = torch.where((s_jumps > 0) & (s_jumps < 1), s_jumps.detach(), torch.ones_like(s_jumps))
    stops, first = _stops(s_knots, s_jumps)
    L = stops.shape[1]
    rows = torch.arange(B)
    s = torch.zeros(B, dtype=dtype)
    y = y0
    # stops at s = 0 (the first knot and any zero-length intervals after it) hold y0
    ptr = torch.searchsorted(stops, s.unsqueeze(-1), right=True).squeeze(-1)
    done = ptr >= L
    rec_rows, rec_stops, rec_values = [rows], [torch.zeros(B, dtype=torch.long)], [y0]
    with torch.no_grad():
        h = _initial_step(func(s, y0.detach()), y0.detach(), rtol, atol)
    rejected = torch.zeros(B, dtype=torch.bool)
    coefficients = _Coefficients.of(tableau, dtype)
    steps = 0
    while not bool(done.all()):
        steps += 1
        if steps > max_steps:
            raise SolverGaveUp(
                f"max_num_steps exceeded: more than {max_steps} steps in one solve "
                f"({int((~done).sum())} of {B} rows unfinished, the slowest at s = {float(s[~done].min()):.3g} of 1)",
                STIFF_METHOD,
            )
        active = ~done
        target = stops[rows, ptr.clamp(max=L - 1)]
        room = target - s
        land = active & (h >= room)
        # finished rows take a short throw-away step (kept finite, so it cannot poison the gradients)
        hs = torch.where(done, h * RETRY**3, torch.where(land, room, h))
        f1, jac, dfds = linearise(func, s, y, create_graph)
        y_new, err_vec, singular = _step(func, coefficients, s, y, hs, f1, jac, dfds)
        with torch.no_grad():
            err = _error_norm(err_vec, y, y_new, rtol, atol)
            finite = torch.isfinite(err) & ~singular & torch.isfinite(y_new).all(-1)
            bad = active & ~finite
            if bool(bad.any()):
                # discard the whole trial (its graph holds non-finite values); retry the bad rows smaller
                h = torch.where(bad, hs * RETRY, h)
                _check_underflow(h, s, bad, tiny, B)
                continue
            accept = active & (err <= 1.0)
            factor = (SAFETY * err.clamp(min=1e-10) ** (-1.0 / tableau.order)).clamp(SHRINK, GROW)
            factor = torch.where(rejected, factor.clamp(max=1.0), factor)
            landed = accept & land
            # a step cut short to land on a stop says little about the step size: keep the proposal
            h_next = torch.where(landed, torch.maximum(hs * factor, h), hs * factor)
            h = torch.where(active, h_next, h)
            rejected = torch.where(active, ~accept, rejected)
            s = torch.where(accept, torch.where(land, target, s + hs), s)
            # accepted steps shrink too as a solution blows up in finite time
            _check_underflow(h, s, active & ~landed, tiny, B)
        keep = accept.unsqueeze(-1)
        y = torch.where(keep, y_new, y)
        if bool(landed.any()):
            idx = landed.nonzero().squeeze(-1)
            rec_rows.append(idx)
            rec_stops.append(ptr[idx])
            rec_values.append(y_new[idx])
            nxt = torch.searchsorted(stops, s.unsqueeze(-1), right=True).squeeze(-1)
            ptr = torch.where(landed, nxt, ptr)
            done = ptr >= L
    values = torch.cat(rec_values)
    at_stops = values.new_zeros(B, L, n).index_put((torch.cat(rec_rows), torch.cat(rec_stops)), values)
    return at_stops[rows.unsqueeze(-1), first]


class _Coefficients(NamedTuple):
    """A tableau as tensors: per stage ``i`` the (i, 2) matrix of ``[a_ij, c_ij]`` columns; ``[m, e]`` as (S, 2)."""

    gamma: float
    coupling: list
    alpha: tuple
    d: tuple
    weights: torch.Tensor

    @classmethod
    def of(cls, tableau: RosenbrockTableau, dtype: torch.dtype) -> _Coefficients:
        coupling = [
            torch.tensor(list(zip(a, c, strict=True)), dtype=dtype) for a, c in zip(tableau.a, tableau.c, strict=True)
        ]
        weights = torch.tensor(list(zip(tableau.m, tableau.e, strict=True)), dtype=dtype)
        return cls(tableau.gamma, coupling, tableau.alpha, tableau.d, weights)


def _step(func, k: _Coefficients, s, y, hs, f1, jac, dfds):
    """One Rosenbrock step of size ``hs`` (B,) from ``(s, y)``; returns ``y_new``, the error estimate and
    which rows had a singular iteration matrix."""
    n = y.shape[-1]
    eye = torch.eye(n, dtype=y.dtype)
    inverse, info = torch.linalg.inv_ex(eye / (hs * k.gamma)[:, None, None] - jac)
    u = [(inverse @ (f1 + (k.d[0] * hs)[:, None] * dfds).unsqueeze(-1)).squeeze(-1)]
    for i in range(1, len(k.coupling)):
        both = torch.stack(u, dim=-1) @ k.coupling[i]  # (B, n, 2): sum_j a_ij u_j and sum_j c_ij u_j
        rhs = func(s + k.alpha[i] * hs, y + both[..., 0]) + both[..., 1] / hs[:, None]
        if k.d[i]:
            rhs = rhs + (k.d[i] * hs)[:, None] * dfds
        u.append((inverse @ rhs.unsqueeze(-1)).squeeze(-1))
    combined = torch.stack(u, dim=-1) @ k.weights  # (B, n, 2): sum_i m_i u_i and sum_i e_i u_i
    return y + combined[..., 0], combined[..., 1].detach(), info != 0


def _check_underflow(h: torch.Tensor, s: torch.Tensor, rows: torch.Tensor, tiny: float, B: int) -> None:
    """Raise SolverGaveUp if a step of one of ``rows`` no longer moves ``s``."""
    under = rows & (h <= 4 * tiny * s.abs().clamp(min=1e-6))
    if bool(under.any()):
        b = int(under.nonzero()[0])
        raise SolverGaveUp(
            f"underflow in dt {float(h[b]):.3g} (step size in s-units, row {b} of {B} at s = {float(s[b]):.6g}): "
            f"the {STIFF_METHOD} steps shrink to nothing (the solution probably blows up in finite time)",
            STIFF_METHOD,
        )
