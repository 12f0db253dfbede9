"""Proposing candidates: network samples along the fitted trajectories, library columns,
a threshold sweep of sparse regression, exhaustive small supports."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from itertools import combinations

import numpy as np
import sympy as sp
import torch

from ..errors import TrainingError
from ..model import Unknown
from ..networks import TermSum
from ..solve import Solver, integrate
from ..train import FitResult, PaddedBatch, solver_gave_up
from .library import Library, SaturatingTerm, round_constant
from .selection import Selection

# the adapted K of a rational family is searched within this factor beyond the ends of its grid
K_SEARCH_MARGIN = 4.0


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
    saturating : dict int -> SaturatingTerm
        The library's rational terms by position in ``terms`` (their ``K`` is freed by the final refit).
    companions : dict int -> int
        Position of each rational term's companion ``d term/dK`` (:meth:`SaturatingTerm.slope`): a support
        holding the term holds its companion, so that its refits move ``K`` to first order.
    """

    spec: Unknown
    terms: list
    theta: np.ndarray
    target: np.ndarray
    swept: dict
    module: TermSum
    saturating: dict = field(default_factory=dict)
    companions: dict = field(default_factory=dict)

    def expression(self, coef) -> sp.Expr:
        """A candidate's closed form: :func:`closed_form`, with each rational term and its companion
        ``c * f(K) + b * f'(K)`` written as ``c * f(K + b/c)`` (their first-order equal; kept apart
        where ``K + b/c`` is not positive).

        Parameters
        ----------
        coef : array-like of shape (p,)

        Returns
        -------
        sympy.Expr
        """
        coef = np.array(coef, dtype=float)
        folded = sp.Integer(0)
        for i, j in self.companions.items():
            c, b = coef[i], coef[j]
            if c != 0 and b != 0 and self.saturating[i].K + b / c > 0:
                folded += sp.Float(float(c), 15) * self.saturating[i].at(self.saturating[i].K + b / c)
                coef[i] = coef[j] = 0.0
        return folded + closed_form(self.terms, coef)


def library_columns(args, terms: list, columns: dict) -> np.ndarray:
    """The library evaluated at the samples.

    Parameters
    ----------
    args : sequence of sympy.Symbol
        The unknown's arguments.
    terms : list of sympy.Expr
    columns : dict symbol -> torch.Tensor of shape (N,)

    Returns
    -------
    ndarray of shape (N, len(terms))
    """
    Z = [columns[a].numpy() for a in args]
    fn = sp.lambdify(list(args), terms, modules="numpy")
    return np.stack([np.broadcast_to(np.asarray(v, dtype=float), Z[0].shape) for v in fn(*Z)], axis=1)


def unknown_library(spec: Unknown, library: Library, columns: dict, target: np.ndarray) -> tuple[list, dict, dict]:
    """An unknown's terms for discovery: the library's, each rational family at the ``K`` that fits the
    network best, then each rational term's companion ``d term/dK``.

    With ``library.rational``, each family's ``K`` is chosen by the least-squares misfit to the network
    output of the family together with the library's other (non-rational) terms
    (:func:`best_constant`: the best of ``RationalTerms.multiples`` times the argument's median
    magnitude, then a bounded search in ``log K``).  The companion column lets every linear refit of a
    candidate holding the term move ``K`` to first order (``c * f(K) + b * f'(K) ≈ c * f(K + b/c)``;
    it counts as a parameter in the criterion, as ``K`` does), and the final refit frees ``K``
    (:func:`~udesci.discovery.refit.refit_constants`).

    Parameters
    ----------
    spec : Unknown
    library : Library
    columns : dict symbol -> torch.Tensor of shape (N,)
        Sample values of the unknown's arguments.
    target : ndarray of shape (N,)
        Network output at the samples.

    Returns
    -------
    terms : list of sympy.Expr
        The library's terms (rational ones at their chosen ``K``), then the companions.
    saturating : dict int -> SaturatingTerm
        The rational terms by position in ``terms``.
    companions : dict int -> int
        Each rational term's companion, by positions in ``terms``.
    """
    samples = {a: columns[a].numpy() for a in spec.args}
    terms = library.terms(spec.args, samples)
    rational = {t.expression: t for t in library.saturating_terms(spec.args, samples)}
    if not rational:
        return terms, {}, {}
    plain = [t for t in terms if t not in rational]
    base = library_columns(spec.args, plain, columns) if plain else np.zeros((target.shape[0], 0))
    saturating = {}
    for i, term in enumerate(terms):
        if term in rational:
            start = rational[term]
            grid = [start.K * m for m in library.rational.multiples]
            K = round_constant(best_constant(start, grid, spec.args, samples, base, target))
            saturating[i] = replace(start, expression=start.at(K), K=K)
            terms[i] = saturating[i].expression
    companions = {}
    for i, term in saturating.items():
        companions[i] = len(terms)
        terms.append(term.slope())
    return terms, saturating, companions


def best_constant(term: SaturatingTerm, grid: list, args, samples: dict, base: np.ndarray, target: np.ndarray) -> float:
    """The ``K`` of one rational family whose column, with the columns ``base``, fits ``target`` best
    by least squares: the best value of ``grid``, then a bounded search in ``log K`` between its
    neighbours (``K_SEARCH_MARGIN`` beyond the grid's ends).

    Parameters
    ----------
    term : SaturatingTerm
        The family.
    grid : list of float
        Starting values of ``K`` (positive).
    args : sequence of sympy.Symbol
    samples : dict symbol -> ndarray of shape (N,)
    base : ndarray of shape (N, q)
    target : ndarray of shape (N,)

    Returns
    -------
    float
        The best grid value where the search finds nothing better.
    """
    from scipy.optimize import minimize_scalar

    log_k = sp.Dummy("log_k")
    fn = sp.lambdify(list(args) + [log_k], term.at(sp.exp(log_k)), modules="numpy")
    Z = [samples[a] for a in args]

    def misfit(value: float) -> float:
        col = np.broadcast_to(np.asarray(fn(*Z, value), dtype=float), target.shape)
        A = np.column_stack([base, col])
        if not np.all(np.isfinite(A)):
            return math.inf
        res = target - A @ np.linalg.lstsq(A, target, rcond=None)[0]
        return float(res @ res)

    logs = sorted(math.log(K) for K in grid)
    values = [misfit(v) for v in logs]
    at = int(np.argmin(values))
    lo = logs[at - 1] if at > 0 else logs[0] - math.log(K_SEARCH_MARGIN)
    hi = logs[at + 1] if at + 1 < len(logs) else logs[-1] + math.log(K_SEARCH_MARGIN)
    best = minimize_scalar(misfit, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    return math.exp(float(best.x) if best.fun <= values[at] else logs[at])


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
    theta = library_columns(spec.args, terms, columns)
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


# a network sample whose state lies more than this many data spreads (PaddedBatch.scale) outside the observed
# range of that state carries nothing the data can check, and its library columns overflow at high degrees
SAMPLE_RANGE = 1000.0


def usable_samples(prep: PaddedBatch, y: torch.Tensor, outputs: dict) -> torch.Tensor:
    """Which network samples discovery can regress on: finite states and network outputs, and every
    observed state within ``SAMPLE_RANGE`` data spreads of the range the data cover (a trained UDE whose
    trajectory ran away, ODEBench 55, samples states of 1e100 and beyond).

    Parameters
    ----------
    prep : PaddedBatch
    y : torch.Tensor of shape (N, n)
        Sampled states.
    outputs : dict name -> torch.Tensor of shape (N,) or (N, n_calls)
        Network outputs at the samples (at every application of an unknown applied in several places).

    Returns
    -------
    torch.Tensor of shape (N,), bool

    Raises
    ------
    TrainingError
        If none is usable: the trained model cannot be regressed (training did not fit the data).
    """
    keep = torch.isfinite(y).all(dim=1)
    for out in outputs.values():
        keep &= torch.isfinite(out).reshape(out.shape[0], -1).all(dim=1)
    observed = prep.mask > 0
    big = torch.finfo(prep.y.dtype).max
    for i in prep.observed:
        seen = prep.y[..., i][observed[..., i]]
        if not seen.numel():
            continue
        lo, hi = float(seen.min()), float(seen.max())
        reach = SAMPLE_RANGE * float(prep.scale[i])
        keep &= (y[:, i] >= max(lo - reach, -big)) & (y[:, i] <= min(hi + reach, big))
    if not bool(keep.any()):
        raise TrainingError(
            f"discover: none of the {y.shape[0]} samples of the trained model is usable (every one has a "
            f"non-finite state or network output, or a state more than {SAMPLE_RANGE:g} data spreads outside "
            "the data's range): training did not fit the data; fit again (more iterations, another seed) "
            "before discovering."
        )
    return keep


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


# an unknown applied in several places is regressed on at most this many of its applications' samples
MAX_POOLED_SAMPLES = 20_000


def pooled_samples(field_, cols: dict, keep: torch.Tensor, outputs: dict, seed: int) -> tuple[dict, dict]:
    """Each unknown's formal arguments and network output at the usable samples.

    An unknown applied in one place is sampled where the states were; one applied in several places
    (``U(u_0)``, ..., ``U(u_999)``) pools the samples of all its applications, one network standing
    behind each, and keeps a random ``MAX_POOLED_SAMPLES`` (20,000) of them when there are more.

    Parameters
    ----------
    field_ : VectorField
    cols : dict symbol -> torch.Tensor of shape (N,)
        Time, states and inputs at the usable samples.
    keep : torch.Tensor of shape (N0,), bool
        Which of the sampled rows are usable (``outputs`` hold all ``N0``).
    outputs : dict name -> torch.Tensor of shape (N0, n_calls)
        Network output at every application (:meth:`VectorField.unknown_outputs`).
    seed : int
        Seed of the subset.

    Returns
    -------
    arguments : dict name -> dict symbol -> torch.Tensor of shape (M,)
    targets : dict name -> torch.Tensor of shape (M,)
    """
    arguments, targets = {}, {}
    for spec in field_.unknown_specs:
        out = outputs[spec.name][keep]
        if len(spec.calls) == 1:
            arguments[spec.name] = {a: cols[a] for a in spec.args}
            targets[spec.name] = out[:, 0]
            continue
        z = field_.call_arguments(cols, spec).reshape(-1, len(spec.args))
        out = out.reshape(-1)
        if z.shape[0] > MAX_POOLED_SAMPLES:
            gen = torch.Generator().manual_seed(seed)
            pick = torch.randperm(z.shape[0], generator=gen)[:MAX_POOLED_SAMPLES].sort().values
            z, out = z[pick], out[pick]
        arguments[spec.name] = dict(zip(spec.args, z.unbind(-1), strict=True))
        targets[spec.name] = out
    return arguments, targets


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


# the most supports :func:`supports` enumerates exhaustively (every pair of an 84-term library is 3,570)
MAX_EXHAUSTIVE_SUPPORTS = 5000


def supports(p: int, exhaustive: int, swept: dict, companions: dict | None = None) -> list[tuple]:
    """Candidate supports: the empty one, every support of up to ``exhaustive`` terms (each size
    while the enumeration stays within ``MAX_EXHAUSTIVE_SUPPORTS``), then the sweep's.

    The sweep alone can miss a sparse truth: on a large library it thresholds a network that carries
    the data's noise, and its supports then jump from many terms to few wrong ones (Lorenz, ``U(x, y,
    z) = x y`` with a degree-4 library of 35 terms: 17 terms or worse; every pair holds ``x y``).

    Parameters
    ----------
    p : int
        Library size.
    exhaustive : int
    swept : dict support -> float
    companions : dict int -> int, optional
        Terms that come with another (:attr:`UnknownWork.companions`): a support holding the first holds
        the second, which is never in a support alone (a sweep support holding it holds its term instead)
        and does not count towards the ``exhaustive`` terms nor towards ``MAX_EXHAUSTIVE_SUPPORTS``.

    Returns
    -------
    list of tuple of int
    """
    companions = companions or {}
    owner = {j: i for i, j in companions.items()}
    free = [i for i in range(p) if i not in owner]

    def complete(sup) -> tuple:
        return tuple(sorted(set(sup) | {companions[i] for i in sup if i in companions}))

    out: list[tuple] = [()]
    for size in range(1, exhaustive + 1):
        if len(out) - 1 + math.comb(len(free), size) > MAX_EXHAUSTIVE_SUPPORTS:
            break
        out += [complete(c) for c in combinations(free, size)]
    seen = set(out)
    for sup in swept:
        full = complete({owner.get(i, i) for i in sup})
        if full not in seen:
            seen.add(full)
            out.append(full)
    return out
