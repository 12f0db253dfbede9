"""Uncertainty of a discovery: bootstrap inclusion probabilities and coefficient intervals
(percentiles of refits on resampled point blocks), and Gauss–Newton intervals without a bootstrap."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..networks import TermSum
from ..solve import Solver, integrate
from .batch_lm import Layout, refit_candidates
from .criteria import information_criterion
from .refit import SCORING_SOLVER


def bootstrap_inclusion(cands, seg_sse, seg_n, counts, p, criterion, parsimony) -> tuple[np.ndarray, np.ndarray]:
    """Selection repeated on bootstrap resamples of the segments.

    Parameters
    ----------
    cands : list of C Candidate
    seg_sse : ndarray (C, S, n)
        Each candidate's scaled squared misfit per block and state (refit on all blocks).
    seg_n : ndarray (S, n)
        Observations per block and state.
    counts : ndarray (B, S)
        How often each segment is drawn in each replicate.
    p : int
        Library size.

    Returns
    -------
    inclusion : ndarray (p,)
        Share of replicates whose selected support contains each term.
    chosen : ndarray (B,) of int
        Index into ``cands`` of each replicate's selection.
    """
    sse = np.einsum("bs,csn->bcn", counts, seg_sse)  # (B, C, n)
    n = counts @ seg_n  # (B, n)
    k = np.array([len(c.support) for c in cands], dtype=float)[None, :]
    score = information_criterion(sse, n[:, None, :], k, criterion)
    best = score.min(axis=1, keepdims=True)
    close = score <= best + parsimony
    # sparsest within the margin, ties broken by the lower score
    key = np.where(close, k * 1e6 + (score - best), np.inf)
    chosen = np.argmin(key, axis=1)
    inclusion = np.zeros(p)
    for c, cand in enumerate(cands):
        share = float(np.mean(chosen == c))
        for i in cand.support:
            inclusion[i] += share
    return inclusion, chosen


def block_counts(prep, blocks, n_blocks) -> np.ndarray:
    """Observations per point block and state, shape (S, n)."""
    return per_block(prep.mask.unsqueeze(0), blocks, n_blocks)[0]


def per_block(values, blocks, n_blocks) -> np.ndarray:
    """Sum ``values`` (C, K, T, n) over the points of each block: (C, S, n)."""
    C, n = values.shape[0], values.shape[-1]
    idx = blocks.reshape(-1).numpy()
    flat = values.reshape(C, -1, n).numpy()
    out = np.zeros((C, n_blocks, n))
    for c in range(C):
        for i in range(n):
            out[c, :, i] = np.bincount(idx, weights=flat[c, :, i], minlength=n_blocks)
    return out


def bootstrap_intervals(field_, prep, seg, starts, counts, iterations: int) -> dict:
    """95% intervals of the active TermSum coefficients from refits on bootstrap resamples of the segments.

    Every replicate (and the unresampled fit) is refit in one batched Levenberg–Marquardt
    solve from the current coefficients; the interval is the current value plus the 2.5% and
    97.5% quantiles of the replicates' deviations from the unresampled segment fit.

    Returns
    -------
    dict (name, term index) -> (low, high)
    """
    layout = Layout.of(field_)
    active = layout.active(field_)
    entries = [
        (name, sl.start + int(i), int(i))
        for name, sl in layout.nets
        for i in torch.nonzero(field_.nets[name].mask).flatten()
    ]
    if not entries:
        return {}
    B = counts.shape[0]
    base = layout.vector(field_)
    weights = torch.cat([torch.ones(1, seg.count), torch.as_tensor(counts, dtype=torch.float64)])
    # the segment starts are refit with each replicate too: their noise is part of the coefficients'
    start_vec = torch.cat([base, starts.reshape(-1).to(base.dtype)])
    theta, loss, _ = refit_candidates(
        field_,
        prep,
        seg,
        starts,
        10.0,
        Solver("rk4", substeps=1),
        layout,
        start_vec.unsqueeze(0).repeat(B + 1, 1),
        [active] * (B + 1),
        iterations,
        weights=weights,
        free_starts=True,
    )
    ok = torch.isfinite(loss)
    if not bool(ok[0]) or int(ok[1:].sum()) < max(10, B // 2):
        return {}
    dev = (theta[1:][ok[1:]] - theta[0]).numpy()
    out = {}
    for name, at, i in entries:
        lo, hi = np.quantile(dev[:, at], [0.025, 0.975])
        val = float(base[at])
        out[(name, i)] = (val + float(lo), val + float(hi))
    return out


def gauss_newton_intervals(field_, y0, prep, sse, n_obs) -> dict:
    """Gauss–Newton 95% intervals of the active TermSum coefficients (central differences).

    Returns
    -------
    dict (name, term index) -> (low, high)
    """
    entries = []
    for name, net in field_.nets.items():
        if isinstance(net, TermSum):
            entries += [(name, int(i)) for i in torch.nonzero(net.mask).flatten()]
    if not entries or not math.isfinite(sse):
        return {}
    knots = prep.knots
    index = torch.arange(len(prep.lengths))

    def residuals():
        with torch.no_grad():
            pred = integrate(field_, y0, knots, SCORING_SOLVER, inputs=(prep.interp, index))
        r = ((pred - prep.y) / prep.scale) * prep.mask
        return r[prep.mask > 0].reshape(-1)

    cols = []
    for name, i in entries:
        coef = field_.nets[name].coef
        base = coef[i].item()
        h = 1e-6 * max(abs(base), 1e-3)
        with torch.no_grad():
            coef[i] = base + h
            up = residuals()
            coef[i] = base - h
            down = residuals()
            coef[i] = base
        cols.append((up - down) / (2 * h))
    J = torch.stack(cols, dim=1).numpy()
    dof = max(n_obs - len(entries), 1.0)
    sigma2 = sse / dof
    try:
        cov = sigma2 * np.linalg.inv(J.T @ J)
    except np.linalg.LinAlgError:
        return {}
    out = {}
    for j, (name, i) in enumerate(entries):
        val = field_.nets[name].coef[i].item()
        half = 1.96 * math.sqrt(max(cov[j, j], 0.0))
        out[(name, i)] = (val - half, val + half)
    return out
