"""Uncertainty of a discovery: inclusion probabilities and 95 % intervals from one bootstrap ensemble.

The bootstrap resamples point blocks (consecutive runs of observation intervals, the units of
``discover.prepare``) with replacement.  Each replicate chooses its supports and refits their
coefficients on its own resample (:func:`bootstrap_ensemble`, a linearised whole-trajectory refit),
so a term's inclusion probability (the share of replicates selecting it) and its interval (the
percentiles of its coefficient over the same replicates, 0 where not selected) are two views of one
computation: an interval excludes 0 only if more than 97.5 % of the replicates select the term with
one sign.  :func:`bootstrap_inclusion` (the per-unknown selections of ``decide``, which propose the
supports) and :func:`gauss_newton_intervals` (without a bootstrap) complete it."""

from __future__ import annotations

import math
from itertools import product
from typing import NamedTuple

import numpy as np
import torch
from scipy import sparse

from ..solve import integrate
from .batch_lm import MAX_FREE_STARTS, Layout
from .criteria import information_criterion
from .refit import SCORING_SOLVER

# the bootstrap ensemble keeps (blocks + replicates) Gram matrices of all P coefficients, learnable parameters and
# initial states: beyond this many numbers (240 MB) it is not computed (Gauss–Newton intervals instead, noted)
MAX_ENSEMBLE_ENTRIES = 30_000_000

# what each uncertainty number is, in words: shown next to the numbers in summaries, JSON and reports
WEIGHT_BASIS = "criterion weight exp(-Δ/2) of the scored candidates containing the term (no bootstrap)"
GAUSS_NEWTON_BASIS = (
    "Gauss–Newton interval: the estimate ± 1.96 standard errors from the whole-trajectory misfit's Jacobian"
)


def bootstrap_basis(replicates: int, block_length: int) -> tuple[str, str]:
    """The words for bootstrap inclusion probabilities and intervals.

    Parameters
    ----------
    replicates : int
        Replicates behind the numbers.
    block_length : int
        Observation intervals per resampled point block.

    Returns
    -------
    inclusion_basis, interval_basis : str
    """
    units = (
        f"{replicates} bootstrap replicates (blocks of {block_length} observation intervals resampled with replacement)"
    )
    return (
        f"share of {units} whose selection contains the term",
        f"2.5–97.5 percentiles of the term's coefficient over the same {replicates} replicates "
        "(0 where a replicate did not select it)",
    )


def bootstrap_inclusion(cands, seg_sse, seg_n, counts, p, criterion, parsimony) -> tuple[np.ndarray, np.ndarray]:
    """Selection repeated on bootstrap resamples of the point blocks, each candidate at its full-data refit.

    The candidates' misfits are not refit per replicate (their per-block misfits are reweighted), so
    this is the cheap proposal of each replicate's support; the final inclusion probabilities and
    intervals come from :func:`bootstrap_ensemble`, which refits every replicate.

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
    chosen = choose_per_replicate(score, k[0], parsimony)
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


class Ensemble(NamedTuple):
    """The bootstrap ensemble of a discovery: per replicate, the selected supports and their coefficients.

    Attributes
    ----------
    coefficients : dict name -> ndarray of shape (B, p)
        Each valid replicate's coefficient of every library term of the unknown (0 where the
        replicate did not select the term).
    supports : dict name -> list of B tuples of int
        Each valid replicate's selected support.
    replicates : int
        ``B``: the replicates behind the numbers (those whose refit came out finite).
    """

    coefficients: dict
    supports: dict
    replicates: int

    def inclusion(self, name: str) -> np.ndarray:
        """Share of the replicates that select each term of ``name``, shape (p,)."""
        p = self.coefficients[name].shape[1]
        return np.array([np.mean([i in sup for sup in self.supports[name]]) for i in range(p)])

    def interval(self, name: str, i: int, level: float = 0.95) -> tuple[float, float]:
        """Equal-tailed percentile interval of term ``i``'s coefficient over the replicates (0 where
        a replicate did not select it): the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles."""
        lo, hi = np.quantile(self.coefficients[name][:, i], [(1 - level) / 2, (1 + level) / 2])
        return float(lo), float(hi)


def choose_per_replicate(score: np.ndarray, k: np.ndarray, parsimony: float) -> np.ndarray:
    """Each replicate's choice by the parsimony rule: the sparsest candidate whose score is within
    ``parsimony`` of the replicate's best, ties broken by the lower score.

    Parameters
    ----------
    score : ndarray of shape (B, C)
        Criterion of each candidate in each replicate (``inf``: not usable).
    k : ndarray of shape (C,)
        Terms of each candidate.
    parsimony : float

    Returns
    -------
    ndarray of shape (B,) of int
        Index of each replicate's candidate.
    """
    best = score.min(axis=1, keepdims=True)
    close = score <= best + parsimony
    key = np.where(close, np.asarray(k, dtype=float)[None, :] * 1e6 + (score - best), np.inf)
    return np.argmin(key, axis=1)


def bootstrap_ensemble(
    field_, prep, y0, blocks, n_blocks, counts, block_n, candidates, criterion, parsimony
) -> Ensemble | None:
    """Every bootstrap replicate's selection and coefficients, both from the replicate's own refit.

    The replicates are those of the selection (``counts``: how often each point block is drawn).
    Each replicate refits every candidate combination of supports (one support per unknown, from
    ``candidates``; at most 64 combinations) to its block-weighted data misfit, linearised at the
    final fit (coefficients, learnable parameters and initial states simulated on whole trajectories
    with ``SCORING_SOLVER``): one Gauss–Newton step with the combination's terms, every learnable
    parameter and every initial state free, terms of the final supports that the combination drops
    set to 0, new ones starting from 0.  It then chooses among the combinations by the criterion of
    its per-state misfits and the parsimony rule of discovery, and keeps the chosen combination's
    coefficients.  Selection and coefficients are thus one computation on the same resample: in the
    linearised model, dropping a term raises the misfit by its squared coefficient over its
    variance, so a term the replicates keep (at BIC, ``z² > log n + parsimony``, e.g. ``|z| > 3.6``
    with 200 observations) has a coefficient of one sign in those replicates.  For the final support
    this is the usual linearised (one-step) bootstrap, exact for models linear in their coefficients.

    A combination far from the final fit is poorly linearised, so each combination's replicate misfits
    are shifted, per state, by the gap between its actual misfit (one simulation at its full-data
    step) and the linearised one, in proportion to the replicate's observations of the state.

    Cost: one batched forward-difference solve for the Jacobian (a row per coefficient, learnable
    parameter and initial state; the initial states are held when there are more than
    ``MAX_FREE_STARTS``, see :func:`trajectory_jacobian`), one batched simulation of the
    combinations, then small linear solves (replicates × combinations).

    Parameters
    ----------
    field_ : VectorField
        The closed-form field at its final values (every unknown a TermSum).
    prep : PaddedBatch
        ``K`` trajectories of ``T`` points and ``n`` states.
    y0 : torch.Tensor of shape (K, n)
        Final initial states.
    blocks : torch.Tensor of shape (K, T)
        Point block of every observation (:func:`~udesci.discovery.batch_lm.point_blocks`).
    n_blocks : int
        ``S``.
    counts : ndarray of shape (B, S)
        Draws of each block in each replicate.
    block_n : ndarray of shape (S, n)
        Observations per block and state (:func:`block_counts`).
    candidates : dict name -> list of tuple of int
        Candidate supports of each unknown (indices into its library), most plausible first.
    criterion : {"bic", "aic"}
    parsimony : float

    Returns
    -------
    Ensemble or None
        None when fewer than ``max(10, B // 2)`` replicates give a finite refit (the simulation
        blew up, or no replicates), or when ``(S + B + 1) P²`` exceeds ``MAX_ENSEMBLE_ENTRIES``
        (``P`` coefficients, learnable parameters and initial states).
    """
    layout = Layout.of(field_)
    B = counts.shape[0]
    names = [name for name, _ in layout.nets]
    if B == 0 or not names or any(not candidates.get(name) for name in names):
        return None
    K, n = y0.shape
    base = torch.cat([layout.vector(field_), y0.reshape(-1).to(field_.dtype)])
    r0, J = trajectory_jacobian(field_, prep, layout, base)
    if not (np.isfinite(r0).all() and np.isfinite(J).all()):
        return None
    P = J.shape[-1]
    if (n_blocks + B + 1) * P * P > MAX_ENSEMBLE_ENTRIES:
        return None
    # per block: Gram matrix and gradient of the linearised residuals, pooled over the states
    Jp, rp = J.reshape(-1, n, P), r0.reshape(-1, n)  # (points, n, P), (points, n)
    idx = blocks.reshape(-1).numpy()
    order = np.argsort(idx, kind="stable")
    bounds = np.searchsorted(idx[order], np.arange(n_blocks + 1))
    G, g = np.zeros((n_blocks, P, P)), np.zeros((n_blocks, P))
    for s in range(n_blocks):
        pts = order[bounds[s] : bounds[s + 1]]
        Js = Jp[pts].reshape(-1, P)
        G[s], g[s] = Js.T @ Js, Js.T @ rp[pts].reshape(-1)
    # the replicates, then the full data as one more row (every block once)
    weights = np.concatenate([counts, np.ones((1, n_blocks))])
    H_all = (weights @ G.reshape(n_blocks, -1)).reshape(B + 1, P, P)
    g_all = weights @ g
    member = sparse.csr_matrix((np.ones(idx.size), (idx, np.arange(idx.size))), shape=(n_blocks, idx.size))
    nb = counts @ block_n  # (B, n) observations per replicate and state
    full = G.sum(0).diagonal()
    ridge = 1e-10 * full + 1e-14 * max(float(full.max()), 1e-300)
    theta = base.numpy()
    slices = dict(layout.nets)
    others = [at for _, at in layout.params] + list(range(layout.size, P))
    coef_at = [at for _, sl in layout.nets for at in range(sl.start, sl.stop)]
    combos = list(product(*(candidates[name] for name in names)))
    combos = sorted(combos, key=lambda c: sum(candidates[nm].index(sup) for nm, sup in zip(names, c, strict=True)))[:64]
    scores = np.full((B, len(combos)), np.inf)
    steps = np.zeros((B + 1, len(combos), theta.size))  # held initial states (beyond P) do not move
    lin = np.full((B + 1, len(combos), n), np.inf)  # linearised misfit per replicate (and the full data), state
    for c, combo in enumerate(combos):
        free = [slices[nm].start + i for nm, sup in zip(names, combo, strict=True) for i in sup] + others
        fixed = [at for at in coef_at if at not in free and theta[at] != 0]
        d = np.zeros((B + 1, P))
        d[:, fixed] = -theta[fixed]
        A = H_all[:, free][:, :, free] + np.diag(ridge[free])
        rhs = g_all[:, free] + np.einsum("bij,bj->bi", H_all[:, free][:, :, fixed], d[:, fixed])
        try:
            d[:, free] = -np.linalg.solve(A, rhs[..., None])[..., 0]
        except np.linalg.LinAlgError:
            continue
        steps[:, c, :P] = d
        # each row's residuals r + J d at every point and state, summed per block, weighted by the row's draws
        sq = (rp[:, :, None] + np.einsum("xip,bp->xib", Jp, d)) ** 2
        per_block = (member @ sq.reshape(idx.size, -1)).reshape(n_blocks, n, B + 1)
        lin[:, c] = np.einsum("bs,sib->bi", weights, per_block)
    # a combination far from the final fit is poorly linearised: shift its replicate misfits, per state,
    # by the gap between its actual misfit (simulated at its full-data step) and the linearised one
    actual = scaled_residuals(field_, prep, layout, torch.as_tensor(theta + steps[B], dtype=base.dtype))
    actual = actual.pow(2).sum(dim=(1, 2)).numpy()  # (C, n)
    gap = np.where(np.isfinite(actual), actual - lin[B], np.inf)
    share = nb / np.maximum(block_n.sum(0), 1.0)  # (B, n)
    for c, combo in enumerate(combos):
        sse = lin[:B, c] + share * gap[c]
        k = sum(len(sup) for sup in combo)
        with np.errstate(invalid="ignore"):
            scores[:, c] = information_criterion(np.maximum(sse, 1e-300), nb, k, criterion)
    sizes = np.array([sum(len(sup) for sup in combo) for combo in combos])
    ok = np.isfinite(scores).any(1)
    if int(ok.sum()) < max(10, B // 2):
        return None
    chosen = choose_per_replicate(scores[ok], sizes, parsimony)
    new = theta[None, :] + steps[:B][ok][np.arange(len(chosen)), chosen]
    return Ensemble(
        {name: new[:, slices[name]] for name in names},
        {name: [combos[c][u] for c in chosen] for u, name in enumerate(names)},
        int(ok.sum()),
    )


def trajectory_jacobian(field_, prep, layout, theta) -> tuple[np.ndarray, np.ndarray]:
    """Scaled residuals of whole trajectories and their forward-difference Jacobian (one batched solve).

    With more than ``MAX_FREE_STARTS`` (64) initial-state entries (a method-of-lines model), the
    Jacobian has columns for the coefficients and learnable parameters only: the initial states are
    held where they are (one more solve row per entry would be needed; their uncertainty is then
    left out of the intervals built on it, which are conditional on the starts).

    Parameters
    ----------
    field_ : VectorField
    prep : PaddedBatch
    layout : Layout
        The layout of ``field_``.
    theta : torch.Tensor of shape (D + K·n,)
        Every TermSum coefficient (inactive ones included: a row's coefficients are used unmasked)
        and learnable parameter in Layout order, then the initial states (row-major ``(K, n)``).

    Returns
    -------
    residuals : ndarray of shape (K, T, n)
        ``(simulated - observed) / scale`` at the observations (0 where not observed).
    jacobian : ndarray of shape (K, T, n, P)
        Their derivatives with respect to the first ``P`` entries of ``theta``: all ``D + K·n`` of
        them, or ``D`` with more than ``MAX_FREE_STARTS`` initial-state entries.
    """
    P = theta.shape[0] if theta.shape[0] - layout.size <= MAX_FREE_STARTS else layout.size
    h = math.sqrt(torch.finfo(theta.dtype).eps) * theta[:P].abs().clamp(min=1e-3)
    rows = theta.unsqueeze(0).repeat(P + 1, 1)
    rows[1:, :P] += torch.diag(h)
    r = scaled_residuals(field_, prep, layout, rows)
    J = (r[1:] - r[0]) / h.reshape(-1, 1, 1, 1)
    return r[0].numpy(), J.permute(1, 2, 3, 0).numpy()


def scaled_residuals(field_, prep, layout, rows: torch.Tensor) -> torch.Tensor:
    """``(simulated - observed) / scale`` of whole trajectories for ``M`` parameter vectors at once.

    Parameters
    ----------
    field_ : VectorField
    prep : PaddedBatch
    layout : Layout
    rows : torch.Tensor of shape (M, D + K·n)
        Coefficients (used unmasked) and learnable parameters in Layout order, then initial states.

    Returns
    -------
    torch.Tensor of shape (M, K, T, n)
        0 where not observed; non-finite where a row's simulation blew up.
    """
    K, n = len(prep.lengths), prep.y.shape[-1]
    M, D = rows.shape[0], layout.size
    coefficients = {name: rows[:, sl].repeat_interleave(K, dim=0) for name, sl in layout.nets}
    params = {name: rows[:, at].repeat_interleave(K) for name, at in layout.params}
    with torch.no_grad(), field_.row_values(coefficients, params):
        pred = integrate(
            field_,
            rows[:, D:].reshape(M * K, n),
            prep.knots.repeat(M, 1),
            SCORING_SOLVER,
            inputs=(prep.interp, torch.arange(K).repeat(M)),
        )
    return ((pred.reshape(M, *prep.y.shape) - prep.y) / prep.scale) * prep.mask


def gauss_newton_intervals(field_, y0, prep, level: float = 0.95) -> dict:
    """Gauss–Newton (Wald) intervals of the active TermSum coefficients, without a bootstrap.

    The covariance is ``s² (JᵀJ)⁻¹`` of the whole-trajectory misfit at the final fit, ``J`` the
    Jacobian of the scaled residuals with respect to the active coefficients, learnable parameters
    and initial states (:func:`trajectory_jacobian`; held, so not in ``J``, beyond
    ``MAX_FREE_STARTS``), ``s²`` the residual variance (SSE over the
    observations minus the free parameters); the interval is the estimate ± ``z`` standard errors.

    Parameters
    ----------
    field_ : VectorField
    y0 : torch.Tensor of shape (K, n)
    prep : PaddedBatch
    level : float, default 0.95

    Returns
    -------
    dict (name, term index) -> (low, high)
        Empty when the simulation is not finite or the information matrix is singular.
    """
    from statistics import NormalDist

    layout = Layout.of(field_)
    base = torch.cat([layout.vector(field_), y0.reshape(-1).to(field_.dtype)])
    entries = [
        (name, sl.start + int(i), int(i))
        for name, sl in layout.nets
        for i in torch.nonzero(field_.nets[name].mask).flatten()
    ]
    if not entries:
        return {}
    r, J = trajectory_jacobian(field_, prep, layout, base)
    free = [at for _, at, _ in entries] + [at for _, at in layout.params] + list(range(layout.size, J.shape[-1]))
    Jf = J.reshape(-1, J.shape[-1])[:, free]
    if not (np.isfinite(r).all() and np.isfinite(Jf).all()):
        return {}
    n_obs = float(prep.mask.sum())
    sigma2 = float(np.sum(r**2)) / max(n_obs - len(free), 1.0)
    try:
        cov = sigma2 * np.linalg.inv(Jf.T @ Jf)
    except np.linalg.LinAlgError:
        return {}
    z = NormalDist().inv_cdf((1 + level) / 2)
    theta = base.numpy()
    out = {}
    for j, (name, at, i) in enumerate(entries):
        half = z * math.sqrt(max(cov[j, j], 0.0))
        out[(name, i)] = (float(theta[at] - half), float(theta[at] + half))
    return out
