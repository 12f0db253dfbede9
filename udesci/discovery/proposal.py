"""Proposing candidates: network samples along the fitted trajectories, library columns,
a threshold sweep of sparse regression, exhaustive small supports."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import sympy as sp
import torch

from ..errors import TrainingError
from ..model import Unknown
from ..networks import TermSum
from ..solve import Solver, integrate
from ..train import FitResult, PaddedBatch, solver_gave_up
from .selection import Selection


@dataclass
class UnknownWork:
    """One unknown's working material during discovery.

    Attributes
    ----------
    spec : Unknown
    terms : list of sympy.Expr
        Its library.
    theta : ndarray of shape (N, p)
        Library columns at the network samples.
    target : ndarray of shape (N,)
        The network's output at the samples.
    swept : dict support -> float
        Supports found by the threshold sweep and the smallest threshold giving each.
    module : TermSum
        The closed form that stands in for the network while the unknown is decided.
    """

    spec: Unknown
    terms: list
    theta: np.ndarray
    target: np.ndarray
    swept: dict
    module: TermSum


def propose(spec: Unknown, terms: list, columns: dict, target: np.ndarray, selection: Selection, dtype) -> UnknownWork:
    """Evaluate the library at the samples and sweep STLSQ thresholds on normalised columns.

    Parameters
    ----------
    spec : Unknown
    terms : list of sympy.Expr
    columns : dict symbol -> torch.Tensor of shape (N,)
        Sample values of the unknown's arguments.
    target : ndarray of shape (N,)
        Network output at the samples.
    selection : Selection
    dtype : torch.dtype

    Returns
    -------
    UnknownWork
    """
    p = len(terms)
    Z = [columns[a].numpy() for a in spec.args]
    fn = sp.lambdify(list(spec.args), terms, modules="numpy")
    theta = np.stack([np.broadcast_to(np.asarray(v, dtype=float), Z[0].shape) for v in fn(*Z)], axis=1)
    norms = np.linalg.norm(theta, axis=0) / math.sqrt(theta.shape[0])
    norms[norms == 0] = 1.0
    tscale = float(np.std(target)) or 1.0
    theta_n, target_n = theta / norms, target / tscale
    full_ls = np.linalg.lstsq(theta_n, target_n, rcond=None)[0]
    top = float(np.max(np.abs(full_ls))) or 1.0
    swept: dict[tuple, float] = {}
    for thr in np.geomspace(top * 1e-3, top, selection.thresholds):
        coef = stlsq(theta_n, target_n, thr, selection.ridge)
        sup = tuple(int(i) for i in np.flatnonzero(coef))
        if sup and sup not in swept:
            swept[sup] = float(thr)
    module = TermSum(terms, spec.args, np.zeros(p), np.zeros(p)).to(dtype)
    return UnknownWork(spec, terms, theta, target, swept, module)


def sample_states(
    fitted: FitResult,
    prep: PaddedBatch,
    *,
    y0: torch.Tensor | None = None,
    density: int = 4,
    jitter: float = 0.05,
    copies: int = 2,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """States visited by the fitted model, plus a Gaussian neighbourhood.

    Parameters
    ----------
    fitted : FitResult
    prep : PaddedBatch
        PaddedBatch training data (for scales and inputs).
    y0 : tensor of shape (K, n), optional
        Initial state of each of ``prep``'s trajectories (default ``fitted.initial_states``, which fit
        only the training data's trajectories).
    density : int
        Samples per observation interval along each simulated trajectory.
    jitter : float
        Neighbourhood width in units of each state's data scale.
    copies : int
        Jittered copies of each trajectory sample.
    seed : int

    Returns
    -------
    t : tensor (N,), y : tensor (N, n_per_states), index : tensor (N,) trajectory of each sample.
    """
    field_ = fitted.model.module
    dtype = field_.dtype
    K = len(prep.lengths)
    dense = []
    for k, m in enumerate(prep.lengths):
        tk = prep.knots[k, :m].numpy()
        fine = np.concatenate(
            [np.linspace(a, b, density, endpoint=False) for a, b in zip(tk[:-1], tk[1:], strict=True)] + [tk[-1:]]
        )
        dense.append(fine)
    L = max(d.size for d in dense)
    knots = torch.stack([torch.as_tensor(np.concatenate([d, np.full(L - d.size, d[-1])]), dtype=dtype) for d in dense])
    try:
        with torch.no_grad():
            sim = integrate(
                field_,
                torch.as_tensor(fitted.initial_states if y0 is None else y0, dtype=dtype),
                knots,
                Solver("dopri5", rtol=1e-7, atol=1e-8),
                inputs=(prep.interp, torch.arange(K)),
            )
    except AssertionError as exc:
        if not solver_gave_up(exc):
            raise
        raise TrainingError(
            f"fitted: the trained model cannot be simulated over the data's time span (the solver gave up: "
            f"{exc}); there is nothing to sample for discovery. Check the fit (status {fitted.status!r}), "
            "train longer or with a smaller learning rate, or use shorter shooting segments."
        ) from None
    ts, ys, idx = [], [], []
    for k, d in enumerate(dense):
        ts.append(knots[k, : d.size])
        ys.append(sim[k, : d.size])
        idx.append(torch.full((d.size,), k))
    t, y, index = torch.cat(ts), torch.cat(ys), torch.cat(idx)
    if copies and jitter > 0:
        gen = torch.Generator().manual_seed(seed)
        noise = [y + jitter * prep.scale * torch.randn(y.shape, generator=gen, dtype=dtype) for _ in range(copies)]
        t, y, index = torch.cat([t] * (copies + 1)), torch.cat([y, *noise]), torch.cat([index] * (copies + 1))
    ok = torch.isfinite(y).all(-1)
    return t[ok], y[ok], index[ok]


def stlsq(theta: np.ndarray, target: np.ndarray, threshold: float, ridge: float, max_iter: int = 30) -> np.ndarray:
    """Sequentially thresholded least squares (SINDy's STLSQ, as PySINDy's ``STLSQ(unbias=True)``).

    Starting from all columns, repeat: ridge regression ``min |target - theta_A c|² + ridge |c|²`` on
    the active columns ``A``, then drop the columns whose coefficient is below ``threshold`` in
    magnitude, until the active set stops changing (at most ``max_iter`` passes).  The surviving
    support is then refit by plain least squares (the "unbiasing" step).  Written in NumPy so that
    discovery does not import PySINDy and scikit-learn (seconds per fresh process);
    ``tests/test_proposal.py`` checks it selects the same supports as PySINDy.

    Parameters
    ----------
    theta : ndarray of shape (N, p)
    target : ndarray of shape (N,)
    threshold : float
    ridge : float
        Ridge penalty (>= 0).
    max_iter : int, default 30

    Returns
    -------
    ndarray of shape (p,)
        Coefficients, zero off the support.
    """
    theta = np.asarray(theta, dtype=float)
    target = np.asarray(target, dtype=float).reshape(-1)
    p = theta.shape[1]
    active = np.ones(p, dtype=bool)
    previous = np.linalg.lstsq(theta, target, rcond=None)[0] != 0
    coef = np.zeros(p)
    for _ in range(max_iter):
        if not active.any():
            coef = np.zeros(p)
            break
        cols = theta[:, active]
        gram = cols.T @ cols + ridge * np.eye(cols.shape[1])
        try:
            sol = np.linalg.solve(gram, cols.T @ target)
        except np.linalg.LinAlgError:
            sol = np.linalg.lstsq(gram, cols.T @ target, rcond=None)[0]
        coef = np.zeros(p)
        coef[active] = sol
        active = np.abs(coef) >= threshold
        coef[~active] = 0.0
        if active.sum() == p or np.array_equal(active, previous):
            break
        previous = coef != 0
    support = np.abs(coef) > 1e-14
    out = np.zeros(p)
    if support.any():
        out[support] = np.linalg.lstsq(theta[:, support], target, rcond=None)[0]
    return out


def lstsq_on(theta, target, support):
    """Least-squares coefficients ``(p,)`` on the columns in ``support`` (zero elsewhere)."""
    coef = np.zeros(theta.shape[1])
    if support:
        sol, *_ = np.linalg.lstsq(theta[:, list(support)], target, rcond=None)
        coef[list(support)] = sol
    return coef


def closed_form(terms, coef) -> sp.Expr:
    """``sum_i coef[i] * terms[i]`` over the non-zero coefficients, built from SymPy objects (never parsed)."""
    expr = sp.Integer(0)
    for term, c in zip(terms, coef, strict=True):
        if c != 0:
            expr += sp.Float(float(c), 15) * term
    return expr


def supports(p: int, exhaustive: int, swept: dict) -> list[tuple]:
    """Candidate supports: the empty one, every support of up to ``exhaustive`` terms (libraries of
    at most 15 terms), then the sweep's."""
    out: list[tuple] = [()]
    if p <= 15:
        for size in range(1, exhaustive + 1):
            out += list(combinations(range(p), size))
    out += [s for s in swept if s not in out]
    return out
