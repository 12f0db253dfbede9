"""Discovery: trained networks -> sparse closed-form expressions -> closed-form model.

For each unknown function the trained network is sampled on the states the
fitted model visits (and their neighbourhood); a library of candidate SymPy
terms in *that unknown's* arguments is evaluated there; a threshold sweep of
PySINDy's sequentially thresholded least squares (on normalised columns)
proposes candidate supports; each candidate is scored on the *data* by
simulating the model with the candidate in place of the network (an
information criterion over the observations, so noise in the data, not the
network's approximation error, sets the bar for an extra term).  The chosen
expressions are built from coefficients and terms directly (never by parsing
strings), substituted into the equations, and their coefficients refit
against the trajectories with the ODE solver.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations, combinations_with_replacement

import numpy as np
import sympy as sp
import torch

from .batch_refit import Layout, point_blocks, refit_candidates, whole_trajectories
from .data import Dataset
from .errors import ConfigError, TrainingError, describe
from .evaluate import torch_threads
from .model import HybridModel
from .networks import TermSum
from .solve import Solver, integrate
from .train import (
    FitResult,
    FullTrajectory,
    PaddedBatch,
    Shooting,
    TrainingWarning,
    collocation_loss,
    fit,
    make_segments,
    segment_starts,
    solver_gave_up,
)

CRITERIA = ("bic", "aic")

# Discovery's trajectory solves: classic RK4 with four steps per observation interval.  Fixed steps keep
# the misfit a smooth function of the coefficients (finite-difference intervals need that; adaptive step
# selection adds noise), cost the same for every candidate, and need no special care at the kinks of
# linearly interpolated inputs, where an adaptive solver crawls.
FINE = Solver("rk4", substeps=4)


@dataclass(frozen=True)
class Library:
    """Candidate terms for an unknown function, built in its own arguments.

    Parameters
    ----------
    degree : int, default 2
        Polynomial terms up to this total degree.
    constant : bool, default True
        Include the constant term.
    trig : bool, default False
        Include ``sin(a)`` and ``cos(a)`` for every argument ``a``.
    extra : sequence of sympy.Expr or str, default ()
        Further terms, in the unknown's argument symbols (strings are matched
        to argument names and parsed safely).

    Raises
    ------
    ConfigError
        For a negative degree or an extra term using symbols that are not
        arguments of the unknown.
    """

    degree: int = 2
    constant: bool = True
    trig: bool = False
    extra: tuple = ()

    def __post_init__(self):
        if not isinstance(self.degree, int) or self.degree < 0:
            raise ConfigError(f"Library degree: expected an int >= 0, received {self.degree!r}.")
        object.__setattr__(self, "extra", tuple(self.extra))

    def terms(self, args: Sequence[sp.Symbol]) -> list[sp.Expr]:
        """Library terms in ``args`` (no duplicates, deterministic order)."""
        out: list[sp.Expr] = [sp.Integer(1)] if self.constant else []
        for d in range(1, self.degree + 1):
            for combo in combinations_with_replacement(args, d):
                out.append(sp.Mul(*combo))
        if self.trig:
            for a in args:
                out += [sp.sin(a), sp.cos(a)]
        names = {str(a): a for a in args}
        for term in self.extra:
            if isinstance(term, str):
                from .export import parse_expression

                term = parse_expression(term, names, where="Library extra")
            term = sp.sympify(term)
            stray = {str(s) for s in term.free_symbols} - set(names)
            if stray:
                raise ConfigError(
                    f"Library extra term {term}: uses {sorted(stray)}, expected only the unknown's arguments "
                    f"{sorted(names)}."
                )
            out.append(term)
        seen, unique = set(), []
        for t in out:
            if t not in seen:
                seen.add(t)
                unique.append(t)
        return unique


@dataclass(frozen=True)
class Selection:
    """How discovery chooses among candidate expressions.

    Parameters
    ----------
    criterion : {"bic", "aic"}, default "bic"
        Information criterion computed from the data misfit of the model with
        the candidate substituted.
    thresholds : int, default 20
        Points in the geometric threshold sweep.
    ridge : float, default 1e-6
        Ridge penalty of each least-squares fit (on normalised columns).
    exhaustive : int, default 2
        Also score every support of up to this many terms (libraries of at
        most 15 terms).
    shortlist : int, default 32
        Candidates (best by derivative matching) refit on trajectory segments
        and scored on the data (all in one batched solve).
    refine_iterations : int, default 15
        Levenberg–Marquardt iterations of the shortlisted candidates' segment
        refit (all candidates refit together in one batched solve).
    sweeps : int, default 2
        Passes over the unknowns; from the second on, each unknown is decided
        with all others in their chosen closed form (backfitting).
    parsimony : float, default 6.0
        Choose the sparsest candidate whose criterion is within this margin
        of the best (6 = Kass & Raftery's threshold of strong evidence: with
        twenty-odd candidate terms, 2 let noise-fitting terms through in 2 of
        10 seeds of the recovery study at every noise level).
    rescore : int, default 32
        The best candidates by the segment score that are then refit and scored
        on whole trajectories (single shooting, initial states refit); the
        final choice is made among these.  The default covers the whole
        shortlist: segments restart from the smoothed data, so at high noise
        their score can rank the true form low (recovery study, noise 5%,
        seed 15: outside the best 6, best on whole trajectories).  The
        segment refit then only supplies the starting coefficients.
    joint : int, default 3
        With several unknowns, every combination of each one's best ``joint``
        candidates is refit together on whole trajectories and the combination
        is chosen by the criterion (1 switches this off).
    bootstrap : int, default 100
        Bootstrap replicates over trajectory segments (resampled with
        replacement).  Inclusion probabilities are the share of replicates
        whose selection (same criterion and parsimony rule, on the resampled
        segments' misfits) contains each term; coefficient intervals are
        percentile intervals of the chosen terms' coefficients refit on each
        replicate.  0 switches the ensemble off (inclusion from criterion
        weights, no intervals).

    Raises
    ------
    ConfigError
        For an unknown criterion or non-positive counts.
    """

    criterion: str = "bic"
    thresholds: int = 20
    ridge: float = 1e-6
    exhaustive: int = 2
    shortlist: int = 32
    refine_iterations: int = 15
    sweeps: int = 2
    parsimony: float = 6.0
    bootstrap: int = 100
    rescore: int = 32
    joint: int = 3

    def __post_init__(self):
        if self.criterion not in CRITERIA:
            raise ConfigError(f"Selection criterion: expected one of {CRITERIA}, received {self.criterion!r}.")
        if not isinstance(self.thresholds, int) or self.thresholds < 2:
            raise ConfigError(f"Selection thresholds: expected an int >= 2, received {self.thresholds!r}.")
        for name in ("shortlist", "refine_iterations", "sweeps", "rescore", "joint"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"Selection {name}: expected an int >= 1, received {getattr(self, name)!r}.")
        if not isinstance(self.parsimony, (int, float)) or self.parsimony < 0:
            raise ConfigError(f"Selection parsimony: expected a number >= 0, received {self.parsimony!r}.")
        if not isinstance(self.exhaustive, int) or self.exhaustive < 0:
            raise ConfigError(f"Selection exhaustive: expected an int >= 0, received {self.exhaustive!r}.")
        if not isinstance(self.bootstrap, int) or self.bootstrap < 0:
            raise ConfigError(f"Selection bootstrap: expected an int >= 0, received {self.bootstrap!r}.")


@dataclass
class Candidate:
    """One candidate expression for an unknown.

    Attributes
    ----------
    support : tuple of int
        Indices of the library terms used.
    coefficients : ndarray of shape (n_terms,)
        Least-squares coefficients on the network samples (0 off-support).
    expression : sympy.Expr
    threshold : float
        Smallest sweep threshold (normalised units) that produced this support.
    network_rmse : float
        RMS difference to the network on the samples.
    data_sse : float
        Scaled squared misfit to the data with this candidate substituted.
    score : float
        Information criterion (lower is better).
    """

    support: tuple
    coefficients: np.ndarray
    expression: sp.Expr
    threshold: float
    network_rmse: float
    data_sse: float = math.inf
    score: float = math.inf
    state: list = field(default_factory=list, repr=False)
    segment_sse: np.ndarray | None = field(default=None, repr=False)
    theta: torch.Tensor | None = field(default=None, repr=False)


@dataclass
class UnknownDiscovery:
    """Everything discovery learned about one unknown function.

    Attributes
    ----------
    name : str
    args : tuple of Symbol
    terms : list of sympy.Expr
        The library.
    candidates : list of Candidate
        Unique supports from the sweep, best score first.
    expression : sympy.Expr
        The chosen expression (after refit, if any).
    inclusion : dict str -> float
        Per-term inclusion probability over the bootstrap ensemble.
    intervals : dict str -> (float, float)
        95% bootstrap interval of each selected term's coefficient.
    """

    name: str
    args: tuple
    terms: list
    candidates: list
    expression: sp.Expr
    inclusion: dict = field(default_factory=dict)
    intervals: dict = field(default_factory=dict)

    @property
    def chosen(self) -> Candidate:
        """The selected candidate."""
        return self.candidates[0]

    def support_terms(self) -> list[sp.Expr]:
        """Library terms in the chosen expression."""
        return [self.terms[i] for i in self.chosen.support]


@dataclass
class Discovery:
    """Result of :func:`discover`.

    Attributes
    ----------
    unknowns : dict name -> sympy.Expr
        Discovered closed form of each unknown, e.g. ``{"U": -0.9*x*y}``.
    equations : dict state -> sympy.Expr
        Right-hand sides with the unknowns substituted (known parameters kept
        as symbols; their values are in ``model.params``).
    model : HybridModel
        The closed-form model (refit if ``refit=True``), ready for
        :func:`~udesci.simulate` and export.
    details : dict name -> UnknownDiscovery
        Candidates, scores, inclusion probabilities and intervals.
    selection : Selection
    library : Library
    refit : FitResult or None
        The coefficient refit, if run.
    metrics : dict
        ``data_rmse`` of the closed-form model on the training data, and more.
    notes : list of str
        What discovery had to work around (e.g. a refit whose solver failed, rerun without it).
    """

    unknowns: dict
    equations: dict
    model: HybridModel
    details: dict
    selection: Selection
    library: Library
    refit: FitResult | None = None
    metrics: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def summary(self) -> str:
        """Readable account: equations, candidates and uncertainty."""
        lines = ["Discovered equations:"]
        t = self.model.time
        for s, rhs in self.equations.items():
            lines.append(f"  d{s}/d{t} = {_short(rhs)}")
        for name, det in self.details.items():
            lines.append(f"{name}({', '.join(map(str, det.args))}) = {_short(det.expression)}")
            if det.inclusion:
                inc = ", ".join(f"{k}: {v:.2f}" for k, v in sorted(det.inclusion.items(), key=lambda kv: -kv[1]) if v)
                lines.append(f"  inclusion probability: {inc}")
            for term, (lo, hi) in det.intervals.items():
                lines.append(f"  coefficient of {term}: 95% interval [{lo:.4g}, {hi:.4g}]")
            scored = [c for c in det.candidates if math.isfinite(c.score)][:4]
            for c in scored:
                lines.append(f"    candidate {_short(c.expression)}  {self.selection.criterion}={c.score:.1f}")
        for k, v in self.metrics.items():
            lines.append(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
        return "\n".join(lines)

    __str__ = summary

    def export_unknowns(self) -> dict:
        """JSON-ready description of each unknown (expression, inclusion, intervals)."""
        out = {}
        for name, det in self.details.items():
            out[name] = {
                "expression": det.expression,
                "library": [str(t) for t in det.terms],
                "inclusion": {k: float(v) for k, v in det.inclusion.items()},
                "intervals": {k: [float(a), float(b)] for k, (a, b) in det.intervals.items()},
                "candidates": [
                    {
                        "expression": str(c.expression),
                        "score": _finite(c.score),
                        "data_sse": _finite(c.data_sse),
                        "network_rmse": _finite(c.network_rmse),
                        "threshold": _finite(c.threshold),
                    }
                    for c in det.candidates
                ],
            }
        return out

    def to_json(self, path) -> None:
        """Write the closed-form model, unknowns and uncertainty as JSON (see :func:`udesci.export.save_json`)."""
        from .export import save_json

        extra = {
            "selection": {
                "criterion": self.selection.criterion,
                "thresholds": self.selection.thresholds,
                "exhaustive": self.selection.exhaustive,
            },
            "metrics": {k: _finite(v) if isinstance(v, float) else v for k, v in self.metrics.items()},
        }
        save_json(self.model, path, unknowns=self.export_unknowns(), extra=extra)

    def to_latex(self) -> str:
        """LaTeX ``align*`` block of the equations and discovered unknowns."""
        from .export import to_latex

        return to_latex(self.model, unknowns=self._declared())

    def to_python(self, path) -> None:
        """Write a standalone numpy/scipy module simulating the closed-form model."""
        from .export import to_python

        to_python(self.model, path, unknowns=self._declared())

    def _declared(self) -> dict:
        # the closed-form model has no unknowns left: pass each one's declared arguments, so that
        # U(x, y) = c*x is written with both arguments, not just those its expression uses
        return {n: {"expression": d.expression, "args": [str(a) for a in d.args]} for n, d in self.details.items()}


def _finite(v):
    return float(v) if v is not None and math.isfinite(v) else None


def _short(expr: sp.Expr, digits: int = 5) -> str:
    return str(expr.xreplace({n: sp.Float(n, digits) for n in expr.atoms(sp.Float)}))


# --------------------------------------------------------------------------------------------------


def sample_states(
    fitted: FitResult, prep: PaddedBatch, *, density: int = 4, jitter: float = 0.05, copies: int = 2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """States visited by the fitted model, plus a Gaussian neighbourhood.

    Parameters
    ----------
    fitted : FitResult
    prep : PaddedBatch
        PaddedBatch training data (for scales and inputs).
    density : int
        Samples per observation interval along each simulated trajectory.
    jitter : float
        Neighbourhood width in units of each state's data scale.
    copies : int
        Jittered copies of each trajectory sample.
    seed : int

    Returns
    -------
    t : tensor (N,), y : tensor (N, n_states), index : tensor (N,) trajectory of each sample.
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
                torch.as_tensor(fitted.initial_states, dtype=dtype),
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


def _stlsq(theta, target, threshold, ridge):
    import pysindy as ps

    opt = ps.STLSQ(threshold=threshold, alpha=ridge, max_iter=30, unbias=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt.fit(theta, target.reshape(-1, 1))
    return np.asarray(opt.coef_).reshape(-1)


def _lstsq_on(theta, target, support):
    coef = np.zeros(theta.shape[1])
    if support:
        sol, *_ = np.linalg.lstsq(theta[:, list(support)], target, rcond=None)
        coef[list(support)] = sol
    return coef


def _expression(terms, coef, digits: int | None = None) -> sp.Expr:
    expr = sp.Integer(0)
    for term, c in zip(terms, coef, strict=True):
        if c != 0:
            expr += sp.Float(float(c), 15) * term
    return expr


def _data_misfit(field_, y0: torch.Tensor, prep: PaddedBatch) -> float:
    """Scaled squared misfit to the data of ``field_`` simulated from ``y0`` (K, n)."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = integrate(field_, y0, prep.knots, FINE, inputs=(prep.interp, torch.arange(len(prep.lengths))))
    except (AssertionError, RuntimeError):  # torchdiffeq step-size underflow on an exploding candidate
        return math.inf
    r = ((pred - prep.y) / prep.scale).pow(2) * prep.mask
    sse = float(r.sum())
    return sse if math.isfinite(sse) else math.inf


def _refit_coefficients(module: TermSum, loss_fn, iterations: int = 20) -> None:
    """L-BFGS on the active coefficients of ``module`` only (the derivative-matching loss)."""
    _lbfgs([module.coef], loss_fn, iterations)


def _lbfgs(params, loss_fn, iterations: int) -> None:
    for prm in params:
        prm.requires_grad_(True)
    opt = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=iterations,
        history_size=10,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
    )

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        return loss

    opt.step(closure)


def _supports(p: int, exhaustive: int, swept: dict) -> list[tuple]:
    out: list[tuple] = [()]
    if p <= 15:
        for size in range(1, exhaustive + 1):
            out += list(combinations(range(p), size))
    out += [s for s in swept if s not in out]
    return out


def _bootstrap_inclusion(cands, seg_sse, seg_n, counts, p, criterion, parsimony) -> tuple[np.ndarray, np.ndarray]:
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


def _joint_choice(field_, prep, whole, solver, y0, details, infos, selection, n_state, blocks, n_blocks, counts):
    """Re-decide all unknowns together: every combination of each unknown's best ``selection.joint``
    candidates, refit on whole trajectories in one batched solve, scored by the criterion.

    Coordinate-wise sweeps decide one unknown with the others fixed; two wrong forms can
    compensate each other there.  The chosen combination is written into the field's
    TermSums and each unknown's candidate list (chosen first); the inclusion probabilities
    become those of the joint bootstrap selection.
    """
    from itertools import product

    names = list(details)
    tops = []
    for name in names:
        ranked = [c for c in details[name].candidates if math.isfinite(c.score) and c.state]
        tops.append(ranked[: selection.joint])
    if any(not t for t in tops):
        return
    combos = list(product(*tops))[:64]
    layout = Layout.of(field_)
    slices = dict(layout.nets)
    if any(name not in slices for name in names):
        return
    current = layout.vector(field_)
    thetas, actives, joint_cands = [], [], []
    offsets = np.cumsum([0] + [len(details[n].terms) for n in names])
    for combo in combos:
        v = current.clone()
        act = [at for _, at in layout.params]
        for name, cand in zip(names, combo, strict=True):
            sl = slices[name]
            v[sl] = torch.as_tensor(cand.coefficients, dtype=v.dtype)
            act += [sl.start + i for i in cand.support]
        thetas.append(torch.cat([v, y0.reshape(-1)]))
        actives.append(act)
        flat = tuple(int(offsets[u] + i) for u, cand in enumerate(combo) for i in cand.support)
        joint_cands.append(Candidate(flat, np.zeros(int(offsets[-1])), sp.Integer(0), math.nan, math.nan))
    theta, _, sse = refit_candidates(
        field_,
        prep,
        whole,
        y0,
        0.0,
        solver,
        layout,
        torch.stack(thetas),
        actives,
        selection.refine_iterations,
        free_starts=True,
    )
    per_block = _per_block(sse, blocks, n_blocks)
    for jc, s_, pb in zip(joint_cands, sse, per_block, strict=True):
        jc.data_sse = float(s_.sum())
        jc.score = float(information_criterion(pb.sum(0), n_state, len(jc.support), selection.criterion))
        jc.segment_sse = pb
    order = sorted(range(len(combos)), key=lambda i: (joint_cands[i].score, len(joint_cands[i].support)))
    if not math.isfinite(joint_cands[order[0]].score):
        return
    best = parsimonious([joint_cands[i] for i in order], selection.parsimony)
    k = joint_cands.index(best)
    th = theta[k]
    with torch.no_grad():
        for name, cand in zip(names, combos[k], strict=True):
            module = infos[name][5]
            sl = slices[name]
            module.coef.copy_(th[sl])
            module.mask.zero_()
            module.mask[list(cand.support)] = 1.0
            det = details[name]
            cand.coefficients = th[sl].numpy().copy()
            cand.expression = _expression(det.terms, cand.coefficients)
            det.candidates = [cand] + [c for c in det.candidates if c is not cand]
            det.expression = cand.expression
        for name, at in layout.params:
            field_.learnable[name].copy_(th[at].reshape(field_.learnable[name].shape))
    if selection.bootstrap:
        ok = [jc for jc in joint_cands if math.isfinite(jc.score)]
        inc, _ = _bootstrap_inclusion(
            ok,
            np.stack([jc.segment_sse for jc in ok]),
            _block_counts(prep, blocks, n_blocks),
            counts,
            int(offsets[-1]),
            selection.criterion,
            selection.parsimony,
        )
        for u, name in enumerate(names):
            det = details[name]
            det.inclusion = {str(term): float(inc[offsets[u] + i]) for i, term in enumerate(det.terms)}


def _refit_whole(field_, model, data, prep, whole, y0, iterations) -> FitResult | None:
    """Levenberg–Marquardt refit of all active coefficients, learnable parameters and initial
    states on whole trajectories (``FINE`` solver); the field is updated in place.

    Returns a :class:`FitResult` for the closed-form ``model``, or None if the solve blew up.
    """
    import time

    start = time.perf_counter()
    layout = Layout.of(field_)
    th0 = torch.cat([layout.vector(field_), y0.reshape(-1)])
    theta, loss, _ = refit_candidates(
        field_, prep, whole, y0, 0.0, FINE, layout, th0[None], [layout.active(field_)], iterations, free_starts=True
    )
    if not bool(torch.isfinite(loss[0])):
        return None
    th = theta[0]
    with torch.no_grad():
        for name, sl in layout.nets:
            field_.nets[name].coef.copy_(th[sl])
        for name, at in layout.params:
            field_.learnable[name].copy_(th[at].reshape(field_.learnable[name].shape))
    y0_new = th[layout.size :].reshape(y0.shape).numpy().copy()
    return FitResult(
        model,
        [{"stage": "refit", "iteration": 0, "loss": float(loss[0])}],
        y0_new,
        message="coefficients, learnable parameters and initial states refit on whole trajectories "
        "(Levenberg–Marquardt)",
        seconds={"refit": time.perf_counter() - start},
        data=data,
    )


def _block_counts(prep, blocks, n_blocks) -> np.ndarray:
    """Observations per block and state (S, n)."""
    return _per_block(prep.mask.unsqueeze(0), blocks, n_blocks)[0]


def _per_block(values, blocks, n_blocks) -> np.ndarray:
    """Sum ``values`` (C, K, T, n) over the points of each block: (C, S, n)."""
    C, n = values.shape[0], values.shape[-1]
    idx = blocks.reshape(-1).numpy()
    flat = values.reshape(C, -1, n).numpy()
    out = np.zeros((C, n_blocks, n))
    for c in range(C):
        for i in range(n):
            out[c, :, i] = np.bincount(idx, weights=flat[c, :, i], minlength=n_blocks)
    return out


def _bootstrap_intervals(field_, prep, seg, starts, counts, iterations: int) -> dict:
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


def information_criterion(sse, n, k, criterion: str = "bic"):
    """BIC or AIC of a Gaussian misfit with its own unknown noise variance per state.

    ``sum_i n_i log(SSE_i / n_i) + penalty * k`` over the observed states ``i``, with
    ``penalty = log(sum_i n_i)`` (BIC) or 2 (AIC).  Lower is better.

    Parameters
    ----------
    sse : float or array ending in the state axis
        Sum of squared (scaled) residuals, per state.  A scalar is one pooled state.
    n : float or array broadcastable to ``sse``
        Observations behind each entry of ``sse``.
    k : int or array matching the leading axes of ``sse``
        Free parameters.
    criterion : {"bic", "aic"}, default "bic"

    Returns
    -------
    float for scalar ``sse``, else ndarray of the leading shape of ``sse``
        ``inf`` where a misfit is not finite.

    Raises
    ------
    ConfigError
        For an unknown criterion.
    """
    if criterion not in CRITERIA:
        raise ConfigError(f"criterion: expected one of {CRITERIA}, received {criterion!r}.")
    if np.ndim(sse) == 0 and np.ndim(n) == 0 and np.ndim(k) == 0:
        sse, n = float(sse), float(n)
        if not math.isfinite(sse):
            return math.inf
        return n * math.log(max(sse, 1e-300) / n) + (math.log(n) if criterion == "bic" else 2.0) * k
    sse, n = np.asarray(sse, dtype=float), np.broadcast_to(np.asarray(n, dtype=float), np.shape(sse))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(n > 0, n * np.log(np.maximum(sse, 1e-300) / np.maximum(n, 1.0)), 0.0)
        total = n.sum(-1)
        penalty = np.log(np.maximum(total, 1.0)) if criterion == "bic" else 2.0
        score = terms.sum(-1) + penalty * k
    return np.where(np.isfinite(sse).all(-1), score, np.inf)


def parsimonious(ranked: list, margin: float):
    """The sparsest candidate whose score is within ``margin`` of the best.

    Parameters
    ----------
    ranked : list of objects with ``score`` (float) and ``support`` (sized)
        Sorted best score first.
    margin : float
        Criterion units (6 = Kass & Raftery's "strong evidence").

    Returns
    -------
    The chosen element (ties in size: the lower score); the first one if no score is finite.
    """
    best = ranked[0]
    if not math.isfinite(best.score):
        return best
    close = [c for c in ranked if c.score <= best.score + margin]
    return min(close, key=lambda c: (len(c.support), c.score))


def discover(
    fitted: FitResult,
    data: Dataset | None = None,
    *,
    library: Library | dict | None = None,
    selection: Selection | None = None,
    refit: bool = True,
    refit_iterations: int = 40,
    samples: dict | None = None,
    seed: int = 0,
    progress: bool = False,
    threads: int | None = None,
) -> Discovery:
    """Regress each trained network into a sparse closed-form expression.

    Candidate supports for each unknown come from a threshold sweep of
    PySINDy's STLSQ on the network samples (normalised library columns) plus
    every support of up to ``selection.exhaustive`` terms.  Each candidate's
    coefficients are refit by derivative matching on the smoothed data (no ODE
    solve), then it is scored by the information criterion of the data misfit
    of the model simulated with the candidate in place of the network.
    Unknowns are decided one after another, each with the earlier ones already
    in closed form.  Inclusion probabilities are the criterion's model weights
    ``exp(-delta/2)`` summed over candidates containing a term; coefficient
    intervals are Gauss-Newton 95% intervals at the final refit.

    Parameters
    ----------
    fitted : FitResult
        Output of :func:`~udesci.fit`.
    data : Dataset, optional
        Data for scoring and refitting (default: the data ``fitted`` was trained on).
    library : Library or dict name -> Library, optional
        Candidate terms (one library for all unknowns, or one per unknown name).
    selection : Selection, optional
    refit : bool, default True
        Refit all discovered coefficients (and learnable parameters) against
        the trajectories with the ODE solver (L-BFGS on full trajectories).
    refit_iterations : int, default 40
        L-BFGS iterations of the refit.
    samples : dict, optional
        Options of :func:`sample_states` (``density``, ``jitter``, ``copies``).
    seed : int, default 0
    progress : bool, default False
    threads : int, optional
        torch threads (default 1 for models with fewer than 256 states).

    Returns
    -------
    Discovery

    Raises
    ------
    ConfigError
        If ``fitted`` is not a FitResult, the model has no unknowns, or a
        library is given for a name that is not an unknown.
    TrainingError
        If the trained model cannot be simulated over the data's span (the
        solver gives up), so there are no network samples to regress.

    Notes
    -----
    If the final refit's solver fails, discovery is rerun without the refit and
    ``Discovery.notes`` says so.
    """
    if not isinstance(fitted, FitResult):
        raise ConfigError(f"fitted: expected the FitResult returned by udesci.fit, received {describe(fitted)}.")
    if not fitted.model.unknowns:
        raise ConfigError("fitted: the model has no unknown functions; nothing to discover.")
    data = data if data is not None else fitted.data
    selection = selection or Selection()
    if isinstance(selection, dict):
        selection = Selection(**selection)
    if not isinstance(selection, Selection):
        raise ConfigError(f"selection: expected a udesci.Selection, received {describe(selection)}.")
    libraries = _libraries(library, fitted.model)
    with torch_threads(threads, len(fitted.model.states)):
        try:
            return _discover(
                fitted,
                data,
                fitted.model.copy(),
                libraries,
                selection,
                refit,
                refit_iterations,
                samples,
                seed,
                progress,
            )
        except TrainingError:
            raise
        except (AssertionError, RuntimeError) as exc:
            # the refit's solve can step into coefficients for which the ODE blows up (torchdiffeq then
            # raises "underflow in dt"): the selection stands, so rerun it without the refit and say so
            if not refit:
                raise
            found = _discover(
                fitted,
                data,
                fitted.model.copy(),
                libraries,
                selection,
                False,
                refit_iterations,
                samples,
                seed,
                progress,
            )
            found.notes.append(
                f"discover's refit failed ({type(exc).__name__}: {exc}); reran discover with refit=False"
            )
            return found


def _discover(fitted, data, model, libraries, selection, refit, refit_iterations, samples, seed, progress):
    field_ = model.module
    dtype = field_.dtype
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        prep = PaddedBatch(model, data, dtype)
        t, y, index = sample_states(fitted, prep, seed=seed, **{"copies": 0, **(samples or {})})
    with torch.no_grad(), field_.bound_inputs(prep.interp, index):
        cols = field_.columns(t, y)
        net_out = dict(zip(model.unknowns, field_.unknown_values(cols), strict=True))
    for p in field_.parameters():
        p.requires_grad_(False)
    n_obs = float(prep.mask.sum())
    n_state = prep.mask.sum(dim=(0, 1)).numpy()  # observations per state
    y0 = torch.as_tensor(fitted.initial_states, dtype=dtype)
    colloc = collocation_loss(model, prep)
    n_colloc = float(sum(m - 2 for m in prep.lengths) * len(prep.observed))
    seg = make_segments(prep, 5)
    seg_solver = Solver("rk4", substeps=1)
    # segment starts stay at the smoothed data: the same for every candidate, and few free parameters
    # let L-BFGS converge in a few iterations
    starts0 = segment_starts(field_, prep, seg, y0)
    whole = whole_trajectories(prep)
    traj_solver = Solver("rk4", substeps=1)
    blocks, n_blocks = point_blocks(prep, 5)
    block_n = _block_counts(prep, blocks, n_blocks)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_blocks, np.full(n_blocks, 1.0 / n_blocks), size=selection.bootstrap)

    details: dict[str, UnknownDiscovery] = {}
    infos: dict[str, tuple] = {}
    for name, spec in model.unknowns.items():  # library, network samples and threshold sweep
        terms = libraries[name].terms(spec.args)
        p = len(terms)
        Z = [cols[a].numpy() for a in spec.args]
        fn = sp.lambdify(list(spec.args), terms, modules="numpy")
        theta = np.stack([np.broadcast_to(np.asarray(v, dtype=float), Z[0].shape) for v in fn(*Z)], axis=1)
        target = net_out[name].numpy().astype(float)
        norms = np.linalg.norm(theta, axis=0) / math.sqrt(theta.shape[0])
        norms[norms == 0] = 1.0
        tscale = float(np.std(target)) or 1.0
        theta_n, target_n = theta / norms, target / tscale
        full_ls = np.linalg.lstsq(theta_n, target_n, rcond=None)[0]
        top = float(np.max(np.abs(full_ls))) or 1.0
        swept: dict[tuple, float] = {}
        for thr in np.geomspace(top * 1e-3, top, selection.thresholds):
            coef = _stlsq(theta_n, target_n, thr, selection.ridge)
            sup = tuple(int(i) for i in np.flatnonzero(coef))
            if sup and sup not in swept:
                swept[sup] = float(thr)
        module = TermSum(terms, spec.args, np.zeros(p), np.zeros(p)).to(dtype)
        infos[name] = (spec, terms, theta, target, swept, module)

    # unknowns are decided one after another; later sweeps re-decide each with the others in closed form
    for _sweep in range(selection.sweeps):
        for name, (spec, terms, theta, target, swept, module) in infos.items():
            p = len(terms)
            field_.nets[name] = module
            cands = []
            for sup in _supports(p, selection.exhaustive, swept):  # stage 1: derivative matching (cheap)
                coef = _lstsq_on(theta, target, sup)
                mask = np.zeros(p)
                mask[list(sup)] = 1.0
                with torch.no_grad():
                    module.coef.copy_(torch.as_tensor(coef, dtype=dtype))
                    module.mask.copy_(torch.as_tensor(mask, dtype=dtype))
                if sup:
                    _refit_coefficients(module, colloc)
                coef = (module.coef.detach() * module.mask).numpy().copy()
                rmse = float(np.sqrt(np.mean((theta @ coef - target) ** 2)))
                cand = Candidate(sup, coef, _expression(terms, coef), swept.get(sup, math.nan), rmse)
                with torch.no_grad():
                    cand.score = information_criterion(
                        float(colloc()) * n_colloc, n_colloc, len(sup), selection.criterion
                    )
                cands.append(cand)
            cands.sort(key=lambda c: (c.score, len(c.support)))
            # stage 2: the most promising candidates refit on short trajectory segments, scored on the data
            shortlist = cands[: selection.shortlist]
            # all of them in one batched Levenberg–Marquardt refit (each with the other unknowns'
            # closed-form coefficients and the learnable parameters free as well)
            joint = [m.coef for m in field_.nets.values() if isinstance(m, TermSum)]
            joint += list(field_.learnable.values())
            with torch.no_grad():
                module.mask.zero_()
            layout = Layout.of(field_)
            cur = dict(layout.nets)[name]
            base_vec, others = layout.vector(field_), layout.active(field_)
            thetas, actives = [], []
            for cand in shortlist:
                v = base_vec.clone()
                v[cur] = torch.as_tensor(cand.coefficients, dtype=dtype)
                thetas.append(v)
                actives.append([cur.start + i for i in cand.support] + others)
            theta, _, sse = refit_candidates(
                field_,
                prep,
                seg,
                starts0,
                10.0,
                seg_solver,
                layout,
                torch.stack(thetas),
                actives,
                selection.refine_iterations,
            )
            for cand, th, s_ in zip(shortlist, theta, sse, strict=True):
                cand.coefficients = th[cur].numpy().copy()
                cand.expression = _expression(terms, cand.coefficients)
                cand.state = layout.state(field_, th)
                cand.theta = th
                cand.data_sse = float(s_.sum())
                cand.score = float(
                    information_criterion(s_.sum(dim=(0, 1)).numpy(), n_state, len(cand.support), selection.criterion)
                )
            # stage 3: the best few by the segment score simulated over whole trajectories, coefficients
            # and initial states refit (single shooting): a wrong form can match short segments that
            # restart from the data, but not the whole span
            ranked = sorted(
                (i for i, c in enumerate(shortlist) if math.isfinite(c.score)), key=lambda i: shortlist[i].score
            )[: selection.rescore]
            for cand in shortlist:
                cand.score = math.inf
            if ranked:
                theta_t, _, sse_t = refit_candidates(
                    field_,
                    prep,
                    whole,
                    y0,
                    0.0,
                    traj_solver,
                    layout,
                    torch.stack([torch.cat([shortlist[i].theta, y0.reshape(-1)]) for i in ranked]),
                    [actives[i] for i in ranked],
                    selection.refine_iterations,
                    free_starts=True,
                )
                per_block = _per_block(sse_t, blocks, n_blocks)
                for i, th, s_, pb in zip(ranked, theta_t, sse_t, per_block, strict=True):
                    cand = shortlist[i]
                    cand.coefficients = th[cur].numpy().copy()
                    cand.expression = _expression(terms, cand.coefficients)
                    cand.state = layout.state(field_, th[: layout.size])
                    cand.segment_sse = pb
                    cand.data_sse = float(s_.sum())
                    cand.score = float(
                        information_criterion(pb.sum(0), n_state, len(cand.support), selection.criterion)
                    )
            for cand in cands[selection.shortlist :]:
                cand.score = math.inf  # ranked out by derivative matching; stage-1 order kept below
            shortlist.sort(key=lambda c: (c.score, len(c.support)))
            best = parsimonious(shortlist, selection.parsimony)
            cands = [best] + [c for c in shortlist if c is not best] + cands[selection.shortlist :]
            with torch.no_grad():
                for prm, v in zip(joint, best.state, strict=True):
                    prm.copy_(v)
                module.mask.zero_()
                module.mask[list(best.support)] = 1.0
            scored = [c for c in shortlist if c.segment_sse is not None and math.isfinite(c.score)]
            if selection.bootstrap and scored:
                inc, _ = _bootstrap_inclusion(
                    scored,
                    np.stack([c.segment_sse for c in scored]),
                    block_n,
                    counts,
                    p,
                    selection.criterion,
                    selection.parsimony,
                )
                inclusion = {str(term): float(inc[i]) for i, term in enumerate(terms)}
            else:  # criterion weights (Akaike/Schwarz weights) over the scored candidates
                finite = [c for c in cands if math.isfinite(c.score)]
                weights = np.array([math.exp(-(c.score - best.score) / 2) for c in finite])
                weights /= max(weights.sum(), 1e-300)
                inclusion = {
                    str(term): float(sum(w for w, c in zip(weights, finite, strict=True) if i in c.support))
                    for i, term in enumerate(terms)
                }
            details[name] = UnknownDiscovery(name, spec.args, terms, cands, best.expression, inclusion, {})

    if len(details) > 1 and selection.joint > 1:
        _joint_choice(
            field_, prep, whole, traj_solver, y0, details, infos, selection, n_state, blocks, n_blocks, counts
        )

    # refit every selected coefficient (and learnable parameter) on the full trajectories
    for prm in field_.parameters():
        prm.requires_grad_(True)
    refit_result = None
    if refit:
        refit_result = _refit_whole(field_, model, data, prep, whole, y0, refit_iterations)
        if refit_result is None:  # single shooting failed: segments first, then a polish on the trajectories
            with warnings.catch_warnings():
                # a solver failure in the line search stops the refit with its best weights: that is fine here
                warnings.simplefilter("ignore", TrainingWarning)
                refit_result = fit(
                    model,
                    data,
                    warm_start=None,
                    shooting=Shooting(iterations=0, lbfgs=refit_iterations, continuity=100.0),
                    full=FullTrajectory(iterations=0, lbfgs=max(refit_iterations // 4, 1), solver=FINE),
                    progress=progress,
                    seed=seed,
                )
            if refit_result.status not in ("ok", "nonfinite"):
                refit_result = None
        if refit_result is not None:
            model = refit_result.model
            y0 = torch.as_tensor(refit_result.initial_states, dtype=dtype)
    final = {}
    for name, det in details.items():
        module = model.module.nets[name]
        coef = (module.coef.detach() * module.mask).numpy()
        det.expression = final[name] = _expression(det.terms, coef)
        det.candidates[0].coefficients = coef
    sse = _data_misfit(model.module, y0, prep)
    if selection.bootstrap:
        intervals = _bootstrap_intervals(model.module, prep, seg, starts0, counts, selection.refine_iterations)
    else:
        intervals = _intervals(model.module, y0, prep, sse, n_obs)
    for name, det in details.items():
        det.intervals = {str(det.terms[i]): intervals[(name, i)] for i in det.chosen.support if (name, i) in intervals}
    values = model.parameter_values()
    result_model = fitted.model.substitute(final)
    result_model = _with_params(result_model, {s: values[s] for s in result_model.params})
    metrics = {
        "data_rmse_scaled": math.sqrt(sse / n_obs) if math.isfinite(sse) else math.inf,
        "samples": int(t.shape[0]),
    }
    return Discovery(
        final,
        dict(result_model.equations),
        result_model,
        details,
        selection,
        libraries[next(iter(libraries))],
        refit_result,
        metrics,
    )


def _libraries(library, model) -> dict:
    if library is None or isinstance(library, Library):
        return {name: library or Library() for name in model.unknowns}
    if isinstance(library, dict):
        bad = [n for n in library if n not in model.unknowns]
        if bad:
            raise ConfigError(f"library: names {bad} are not unknowns of the model ({sorted(model.unknowns)}).")
        for n, lib in library.items():
            if not isinstance(lib, Library):
                raise ConfigError(f"library[{n!r}]: expected a udesci.Library, received {describe(lib)}.")
        return {name: library.get(name, Library()) for name in model.unknowns}
    raise ConfigError(f"library: expected a udesci.Library or dict of them, received {describe(library)}.")


def _intervals(field_, y0, prep, sse, n_obs) -> dict:
    """Gauss-Newton 95% intervals of the active TermSum coefficients (central differences)."""
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
            pred = integrate(field_, y0, knots, FINE, inputs=(prep.interp, index))
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


def _with_params(model: HybridModel, values: dict) -> HybridModel:
    """Copy of a closed-form model with parameter values replaced (learnable flags kept)."""
    from .model import Learnable

    params = {s: (Learnable(values[s]) if s in model.learnable else values[s]) for s in model.params}
    out = HybridModel(model.equations, params, model.inputs, states=model.states, time=model.time)
    out.module.to(model.module.dtype)
    return out
