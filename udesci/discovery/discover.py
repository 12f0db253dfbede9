"""``discover``: trained networks -> sparse closed forms -> a refit closed-form model.

The entry point runs a sequence of stage functions on one :class:`DiscoveryState`:

1. :func:`prepare` — sample the trained networks along the fitted trajectories and set up the
   scoring data (segments, whole trajectories, point blocks, bootstrap resamples);
2. :func:`propose_all` — each unknown's library columns and threshold sweep;
3. :func:`decide` (per unknown, ``selection.sweeps`` passes) — rank candidate supports by
   derivative matching, refit the shortlist on segments, rescore it on whole trajectories,
   choose by the criterion and the parsimony rule, inclusion probabilities;
4. :func:`choose_jointly` — with several unknowns, every combination of their best candidates;
5. :func:`refit_final` — all coefficients, learnable parameters and initial states;
6. :func:`assemble` — intervals, the closed-form model, metrics: the :class:`Discovery`.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..data import Dataset
from ..errors import ConfigError, TrainingError, describe
from ..evaluate import torch_threads
from ..model import HybridModel
from ..networks import TermSum
from ..solve import Solver, integrate
from ..train import (
    FitResult,
    FullTrajectory,
    PaddedBatch,
    Segments,
    Shooting,
    TrainingWarning,
    fit,
    make_segments,
    segment_starts,
)
from .batch_lm import (
    MAX_FREE_STARTS,
    Layout,
    point_blocks,
    refit_candidates,
    refit_on_derivatives,
    whole_trajectories,
)
from .criteria import information_criterion, parsimonious
from .escalation import escalate
from .identifiability import check_identifiability, estimate_hidden
from .joint import joint_choice
from .library import Library, as_library
from .proposal import (
    SAMPLE_RANGE,
    UnknownWork,
    closed_form,
    library_columns,
    lstsq_on,
    pooled_samples,
    propose,
    sample_states,
    supports,
    unknown_library,
    usable_samples,
)
from .refit import SCORING_SOLVER, data_misfit, data_misfits, refit_constants, refit_whole, with_params
from .results import NOISE_FLOOR, SPREAD_DRAWS, Adequacy, Candidate, Discovery, UnknownDiscovery
from .selection import Selection
from .uncertainty import (
    GAUSS_NEWTON_BASIS,
    WEIGHT_BASIS,
    block_counts,
    bootstrap_basis,
    bootstrap_ensemble,
    bootstrap_inclusion,
    gauss_newton_intervals,
    per_block,
)

# segment and trajectory scoring solves: one classic RK4 step per observation interval
SEGMENT_SOLVER = Solver("rk4", substeps=1)
SEGMENT_LENGTH = 5  # observation intervals per scoring segment and per bootstrap block
SEGMENT_CONTINUITY = 10.0
# a candidate whose refit loss is this many times the best one's after a few iterations stops refitting:
# with n observations its criterion is at least n·log(100) ≈ 4.6 n worse
GIVE_UP = 100.0


@dataclass
class DiscoveryState:
    """What the stages of one :func:`discover` call share.

    Attributes
    ----------
    fitted : FitResult
    data : Dataset
    model : HybridModel
        The working copy (its unknowns are replaced by closed forms as they are decided).
    batch : PaddedBatch
        The scoring data (``fitted.batch`` when the data are the training data).
    selection : Selection
    libraries : dict name -> Library
    seed : int
    arguments : dict name -> dict symbol -> torch.Tensor of shape (M,)
        Each unknown's formal arguments (:attr:`~udesci.Unknown.args`) at its network samples: the
        sampled states at its one application, or pooled over its applications
        (:func:`pooled_samples`).
    network_outputs : dict name -> torch.Tensor of shape (M,)
        The network's output at those arguments.
    n_samples : int
        Sampled states along the trained model's trajectories.
    n_observations : float
    n_per_state : ndarray of shape (n,)
        Observations of each state.
    y0 : torch.Tensor of shape (K, n)
        Initial states of the trajectories (from the fit, those on a side of a declared domain
        replaced by the data's: :func:`off_sides`; later from the refit).
    n_collocation : float
        Points behind the derivative-matching loss (interior points times observed states).
    segments : Segments
    segment_starts : torch.Tensor of shape (S, n)
        Fixed starts of the scoring segments (the smoothed data).
    whole : Segments
        The whole trajectories as segments.
    blocks : torch.Tensor of shape (K, T)
        Point block of every observation (bootstrap units).
    n_blocks : int
    block_counts : ndarray of shape (S, n)
        Observations per block and state.
    resamples : ndarray of shape (B, S)
        How often each block is drawn in each bootstrap replicate.
    segment_solver : Solver
        The fixed-step solver candidates are compared with (:func:`comparison_solver`).
    work : dict name -> UnknownWork
    details : dict name -> UnknownDiscovery
    refit : FitResult or None
    seconds : dict stage -> float
        Wall-clock seconds spent in each stage so far (see :meth:`timed`).
    dropped_samples : int
        Network samples left out of the regression (:func:`usable_samples`); ``n_samples`` counts the rest.
    """

    fitted: FitResult
    data: Dataset
    model: HybridModel
    batch: PaddedBatch
    selection: Selection
    libraries: dict
    seed: int
    arguments: dict
    network_outputs: dict
    n_samples: int
    n_observations: float
    n_per_state: np.ndarray
    y0: torch.Tensor
    n_collocation: float
    segments: Segments
    segment_starts: torch.Tensor
    whole: Segments
    blocks: torch.Tensor
    n_blocks: int
    block_counts: np.ndarray
    resamples: np.ndarray
    segment_solver: Solver = field(default_factory=lambda: SEGMENT_SOLVER)
    work: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    refit: FitResult | None = None
    seconds: dict = field(default_factory=dict)
    dropped_samples: int = 0

    @contextmanager
    def timed(self, stage: str):
        """Add the wall-clock seconds of the block to ``seconds[stage]``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


def scoring_batch(fitted: FitResult, data: Dataset, model: HybridModel) -> PaddedBatch:
    """The padded batch to score on: ``fitted.batch`` when ``data`` is the training data (same
    dtype, smoothing chosen by cross-validation), else a new one."""
    batch = fitted.batch
    dtype = model.module.dtype
    if batch is not None and data is fitted.data and batch.smoothing is None and batch.y.dtype == dtype:
        return batch
    return PaddedBatch(model, data, dtype)


def ude_starts(fitted: FitResult, data: Dataset, prep: PaddedBatch) -> torch.Tensor:
    """The trained UDE's initial states for the scoring data: the fitted ones when ``data`` is the
    training data, else each trajectory's smoothed first values (``prep.initial_guess()``), since a
    Dataset given to :func:`discover` may hold other trajectories than the fit's.

    Returns
    -------
    torch.Tensor of shape (K, n)
        ``K`` trajectories of ``data``.
    """
    if data is fitted.data:
        return torch.as_tensor(fitted.initial_states, dtype=prep.knots.dtype)
    return prep.initial_guess()


def off_sides(prep: PaddedBatch, y0: torch.Tensor) -> torch.Tensor:
    """The initial states candidates are refit from: the fitted ones, except where a fitted start sits on
    a side of its state's declared domain (where training's projection stopped it; often a fixed point,
    such as no infected, from which the true model cannot fit), which starts at the data's smoothed
    first value instead (inside the domain; the fitted start where the state is not observed).

    With more than ``MAX_FREE_STARTS`` (64) entries, which the refits do not give Jacobian columns
    (:func:`~udesci.discovery.batch_lm.refit_candidates`), every start is the data's smoothed first
    value: the trained UDE's starts absorb its network's errors.  Measured on a 100-cell
    reaction–diffusion UDE (41 points, 1 % noise): the true model simulated from the UDE's starts misses
    the data by 1.30 noise levels RMS, from the raw first observations by 1.02, from the true starts by
    1.00; held at the UDE's starts, a wrong three-term reaction beat the true two-term one.

    Parameters
    ----------
    prep : PaddedBatch
    y0 : torch.Tensor of shape (K, n)
        The fitted initial states.

    Returns
    -------
    torch.Tensor of shape (K, n)
    """
    if y0.numel() > MAX_FREE_STARTS:
        return prep.data_starts(y0)
    on = prep.on_sides(y0)
    if not bool(on.any()):
        return y0
    return torch.where(on, prep.data_starts(y0), y0)


def prepare(fitted, data, model, libraries, selection, samples, seed) -> DiscoveryState:
    """Sample the trained networks and set up the scoring data (stage 1)."""
    field_ = model.module
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        prep = scoring_batch(fitted, data, model)
        y0 = ude_starts(fitted, data, prep)
        # a never-observed state: derivative matching reads the trained model's estimate of its trajectory
        prep = estimate_hidden(fitted, prep, y0)
        t, y, index = sample_states(fitted, prep, y0=y0, seed=seed, **{"copies": 0, **(samples or {})})
    with torch.no_grad(), field_.bound_inputs(prep.interp, index):
        cols = field_.columns(t, y)
        net_out = field_.unknown_outputs(cols)
        keep = usable_samples(prep, y, net_out)
        arguments, targets = pooled_samples(field_, {k: v[keep] for k, v in cols.items()}, keep, net_out, seed)
    for p in field_.parameters():
        p.requires_grad_(False)
    seg = make_segments(prep, SEGMENT_LENGTH)
    blocks, n_blocks = point_blocks(prep, SEGMENT_LENGTH)
    rng = np.random.default_rng(seed)
    return DiscoveryState(
        fitted=fitted,
        data=data,
        model=model,
        batch=prep,
        selection=selection,
        libraries=libraries,
        seed=seed,
        arguments=arguments,
        network_outputs=targets,
        n_samples=int(keep.sum()),
        n_observations=float(prep.mask.sum()),
        n_per_state=prep.mask.sum(dim=(0, 1)).numpy(),
        y0=off_sides(prep, y0),
        n_collocation=float(sum(m - 2 for m in prep.lengths) * len(prep.observed)),
        segments=seg,
        # segment starts stay at the smoothed data: the same for every candidate, and few free parameters
        segment_starts=segment_starts(field_, prep, seg, y0),
        whole=whole_trajectories(prep),
        blocks=blocks,
        n_blocks=n_blocks,
        block_counts=block_counts(prep, blocks, n_blocks),
        resamples=rng.multinomial(n_blocks, np.full(n_blocks, 1.0 / n_blocks), size=selection.bootstrap),
        segment_solver=comparison_solver(field_, prep, y0),
        dropped_samples=int((~keep).sum()),
    )


# the most RK4 substeps per observation interval comparison_solver chooses, and the share of the trained
# model's data RMSE its RMS discretisation error may reach
MAX_SUBSTEPS = 16
ERROR_SHARE = 0.3


def comparison_solver(field_, prep: PaddedBatch, y0: torch.Tensor) -> Solver:
    """The classic RK4 solver, with as few substeps per observation interval as keep its error on the
    trained model's trajectories well below that model's own misfit to the data.

    Candidates are refit and compared with a fixed-step solver (smooth in the coefficients, the same
    cost for every candidate).  Where the dynamics are fast for the sampling interval (a steep decay,
    a sharp spike) one step per interval is inaccurate, and candidates earn extra terms by
    compensating the solver's error instead of the data.  Here the scaled RMS error of 1, 2, 4, ...
    substeps against an adaptive reference solve (dopri5, rtol 1e-8) of the trained UDE is compared
    with its scaled data RMSE, and the first count within ``ERROR_SHARE`` (0.3) of it — but no tighter
    than 1e-4 — is used (at most ``MAX_SUBSTEPS``).  Measured (truth models, 150 points on [0, 10],
    RMS error over 1 % noise): ODEBench's critical slowing down (system 11) 1.5 with one substep and
    0.026 with two, simple Lotka–Volterra (27) 3.0 and 0.12; the Lotka–Volterra pipeline (31 points
    on [0, 3], trained UDE) keeps one substep at noise 0.005 and 0.05.

    Parameters
    ----------
    field_ : VectorField
        The trained model's field.
    prep : PaddedBatch
    y0 : torch.Tensor of shape (K, n)
        Its fitted initial states.

    Returns
    -------
    Solver
        ``Solver("rk4", substeps=s)``; ``SEGMENT_SOLVER`` (one substep) if the reference solve fails.
    """
    index = torch.arange(len(prep.lengths))
    mask = prep.mask > 0

    def solve(solver):
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return integrate(field_, y0, prep.knots, solver, inputs=(prep.interp, index))

    try:
        ref = solve(Solver("dopri5", rtol=1e-8, atol=1e-10))
    except (AssertionError, RuntimeError):
        return SEGMENT_SOLVER
    if not bool(torch.isfinite(ref[mask.any(-1)]).all()):
        return SEGMENT_SOLVER
    misfit = (((ref - prep.y) / prep.scale)[mask]).pow(2).mean().sqrt()
    tol = max(ERROR_SHARE * float(misfit), 1e-4)
    substeps = 1
    while substeps < MAX_SUBSTEPS:
        try:
            err = ((solve(Solver("rk4", substeps=substeps)) - ref) / prep.scale)[mask].pow(2).mean().sqrt()
        except (AssertionError, RuntimeError):
            err = torch.tensor(math.inf)
        if bool(err <= tol):
            break
        substeps *= 2
    return SEGMENT_SOLVER if substeps == 1 else Solver("rk4", substeps=substeps)


def propose_all(state: DiscoveryState) -> None:
    """Each unknown's library at the samples and its threshold sweep (stage 2)."""
    dtype = state.model.module.dtype
    for name, spec in state.model.unknowns.items():
        target = state.network_outputs[name].numpy().astype(float)
        columns = state.arguments[name]
        terms, saturating, companions = unknown_library(spec, state.libraries[name], columns, target)
        work = propose(spec, terms, columns, target, state.selection, dtype)
        work.saturating, work.companions = saturating, companions
        state.work[name] = work


def rank_by_derivatives(state: DiscoveryState, work: UnknownWork) -> list[Candidate]:
    """Every candidate support, coefficients refit by derivative matching (all candidates in one
    batched Levenberg–Marquardt refit from their least-squares fit to the network samples), ranked
    by its criterion."""
    dtype = state.model.module.dtype
    terms, theta, target, selection = work.terms, work.theta, work.target, state.selection
    sups = supports(len(terms), selection.exhaustive, work.swept, work.companions)
    start = torch.as_tensor(np.stack([lstsq_on(theta, target, sup) for sup in sups]), dtype=dtype)
    with torch.no_grad():
        work.module.mask.fill_(1.0)  # row coefficients are zero off each support
    refit = refit_on_derivatives(state.model.module, state.batch, work.spec.name, start, sups)
    cands = []
    for sup, coef, loss in zip(sups, refit.theta.numpy(), refit.loss.tolist(), strict=True):
        coef = coef.copy()
        rmse = float(np.sqrt(np.mean((theta @ coef - target) ** 2)))
        cand = Candidate(sup, coef, work.expression(coef), work.swept.get(sup, math.nan), rmse)
        n_col = state.n_collocation
        cand.score = information_criterion(loss * n_col, n_col, len(sup), selection.criterion)
        cands.append(cand)
    cands.sort(key=lambda c: (c.score, len(c.support)))
    return cands


def score_on_segments(state: DiscoveryState, name: str, shortlist: list[Candidate]) -> list[list[int]]:
    """Refit the shortlist on short segments (one batched LM solve, each candidate with the other
    unknowns' coefficients and the learnable parameters free) and score each on the data.

    Returns each candidate's free positions in the :class:`Layout` vector.
    """
    field_ = state.model.module
    work = state.work[name]
    with torch.no_grad():
        work.module.mask.zero_()
    layout = Layout.of(field_)
    cur = dict(layout.nets)[name]
    base_vec, others = layout.vector(field_), layout.active(field_)
    thetas, actives = [], []
    for cand in shortlist:
        v = base_vec.clone()
        v[cur] = torch.as_tensor(cand.coefficients, dtype=field_.dtype)
        thetas.append(v)
        actives.append([cur.start + i for i in cand.support] + others)
    theta, _, sse = refit_candidates(
        field_,
        state.batch,
        state.segments,
        state.segment_starts,
        SEGMENT_CONTINUITY,
        state.segment_solver,
        layout,
        torch.stack(thetas),
        actives,
        state.selection.refine_iterations,
        give_up=GIVE_UP,
    )
    for cand, th, s_ in zip(shortlist, theta, sse, strict=True):
        cand.coefficients = th[cur].numpy().copy()
        cand.expression = work.expression(cand.coefficients)
        cand.values = layout.split(field_, th)
        cand.theta = th
        cand.data_sse = float(s_.sum())
        cand.score = float(
            information_criterion(
                s_.sum(dim=(0, 1)).numpy(), state.n_per_state, len(cand.support), state.selection.criterion
            )
        )
    return actives


def rescore_on_trajectories(state: DiscoveryState, name: str, shortlist: list, actives: list) -> None:
    """The best candidates by the segment score refit and scored on whole trajectories with their
    initial states free (single shooting): a wrong form can match short segments that restart from
    the data, but not the whole span.  Candidates not rescored score ``inf``."""
    field_ = state.model.module
    work = state.work[name]
    layout = Layout.of(field_)
    cur = dict(layout.nets)[name]
    ranked = sorted((i for i, c in enumerate(shortlist) if math.isfinite(c.score)), key=lambda i: shortlist[i].score)[
        : state.selection.rescore
    ]
    for cand in shortlist:
        cand.score = math.inf
    if not ranked:
        return

    def refit_from(y0: torch.Tensor, which: list):
        return refit_candidates(
            field_,
            state.batch,
            state.whole,
            y0,
            0.0,
            state.segment_solver,
            layout,
            torch.stack([torch.cat([shortlist[i].theta, y0.reshape(-1)]) for i in which]),
            [actives[i] for i in which],
            state.selection.refine_iterations,
            free_starts=True,
            give_up=GIVE_UP,
        )

    theta_t, _, sse_t = refit_from(state.y0, ranked)
    # a candidate whose simulation blew up (or left a state's declared domain) from the fitted initial
    # states gets a second chance from the data's own (smoothed, inside the declared domains): a wrong
    # start must not lose it
    exits = domain_exits(state, layout, theta_t)
    failed = [j for j, s_ in enumerate(sse_t) if not bool(torch.isfinite(s_.sum())) or exits[j]]
    if failed:
        again = refit_from(data_starts(state), [ranked[j] for j in failed])
        exits_again = domain_exits(state, layout, again.theta)
        for j, th, s_, out in zip(failed, again.theta, again.extra, exits_again, strict=True):
            if bool(torch.isfinite(s_.sum())) and not out:
                theta_t[j], sse_t[j], exits[j] = th, s_, []
            elif exits[j] or out:
                exits[j] = exits[j] or out
                sse_t[j] = torch.full_like(sse_t[j], math.inf)
    blocks = per_block(sse_t, state.blocks, state.n_blocks)
    for i, th, s_, pb, out in zip(ranked, theta_t, sse_t, blocks, exits, strict=True):
        cand = shortlist[i]
        cand.coefficients = th[cur].numpy().copy()
        cand.expression = work.expression(cand.coefficients)
        cand.values = layout.split(field_, th[: layout.size])
        cand.segment_sse = pb
        cand.data_sse = float(s_.sum())
        cand.score = float(
            information_criterion(pb.sum(0), state.n_per_state, len(cand.support), state.selection.criterion)
        )
        if out and not math.isfinite(cand.data_sse):
            domains = state.model.state_bounds
            where = ", ".join(f"{name} ({domains[name].interval()})" for name in out)
            cand.problem = (
                f"its whole-trajectory simulation leaves the declared domain of {where} from the fitted "
                "initial states and from the data's"
            )
        elif not math.isfinite(cand.data_sse):
            cand.problem = (
                "its model cannot be simulated over the data's span (it blows up) from the fitted initial "
                "states nor from the data's"
            )


def data_starts(state: DiscoveryState) -> torch.Tensor:
    """Initial states from the data: the smoothed first observation of each observed state (the
    fitted start for states never observed), moved inside each state's declared domain
    (:attr:`HybridModel.state_bounds`, through :meth:`PaddedBatch.inside`). Shape ``(K, n)``."""
    return state.batch.data_starts(state.y0)


def domain_exits(state: DiscoveryState, layout: Layout, theta: torch.Tensor) -> list[list[str]]:
    """For each refit row, the states whose whole-trajectory simulation leaves their declared domain.

    Parameters
    ----------
    state : DiscoveryState
    layout : Layout
        The layout of ``state.model.module``.
    theta : torch.Tensor of shape (C, D + K·n)
        Parameter vectors and initial states of a whole-trajectory refit (``free_starts``).

    Returns
    -------
    list of C lists of str
        The names of the states that lie beyond a declared side (by more than round-off,
        :meth:`~udesci.model.Bounds.outside`) at some observation time, from the refit's initial
        states with the scoring solver; empty for a row inside (or one that could not be simulated,
        whose misfit is already infinite).
    """
    batch = state.batch
    declared = [j for j, b in enumerate(batch.bounds) if b.declared]
    C = theta.shape[0]
    if not declared or C == 0:
        return [[] for _ in range(C)]
    field_, whole = state.model.module, state.whole
    K, n, D = whole.count, batch.n, layout.size
    coefficients = {name: theta[:, sl].repeat_interleave(K, dim=0) for name, sl in layout.nets}
    params = {name: theta[:, at].repeat_interleave(K) for name, at in layout.params}
    try:
        with torch.no_grad(), warnings.catch_warnings(), field_.row_values(coefficients, params):
            warnings.simplefilter("ignore")
            pred = integrate(
                field_,
                theta[:, D:].reshape(C * K, n),
                whole.knots.repeat(C, 1),
                state.segment_solver,
                inputs=(batch.interp, whole.trajectory.repeat(C)),
            )
    except (AssertionError, RuntimeError):
        return [[] for _ in range(C)]
    pred = pred.reshape(C, K, -1, n)
    names = state.model.state_names
    leaves = {j: (batch.bounds[j].outside(pred[..., j], batch.scale[j]) & batch.valid).flatten(1).any(1)
              for j in declared}  # fmt: skip
    return [[names[j] for j in declared if bool(leaves[j][c])] for c in range(C)]


def inclusion_probabilities(state: DiscoveryState, work: UnknownWork, shortlist: list, cands: list, best):
    """Per-term inclusion probability and each bootstrap replicate's selected support.

    With a bootstrap: the share of replicates (resampled point blocks) whose selection among the
    scored shortlist (same criterion and parsimony rule on the resampled blocks' misfits) contains
    the term, and those selections (``assemble`` recomputes both with each replicate's coefficients);
    with ``bootstrap=0``: the criterion weights ``exp(-delta/2)`` of the candidates containing it, and
    no replicates.

    Returns
    -------
    inclusion : dict str -> float
    replicate_supports : list of tuple of int
        One support per replicate (empty without a bootstrap).
    """
    selection, terms = state.selection, work.terms
    scored = [c for c in shortlist if c.segment_sse is not None and math.isfinite(c.score)]
    if selection.bootstrap and scored:
        inc, chosen = bootstrap_inclusion(
            scored,
            np.stack([c.segment_sse for c in scored]),
            state.block_counts,
            state.resamples,
            len(terms),
            selection.criterion,
            selection.parsimony,
        )
        return {str(term): float(inc[i]) for i, term in enumerate(terms)}, [scored[c].support for c in chosen]
    finite = [c for c in cands if math.isfinite(c.score)]
    weights = np.array([math.exp(-(c.score - best.score) / 2) for c in finite])
    weights /= max(weights.sum(), 1e-300)
    inclusion = {
        str(term): float(sum(w for w, c in zip(weights, finite, strict=True) if i in c.support))
        for i, term in enumerate(terms)
    }
    return inclusion, []


def decide(state: DiscoveryState, name: str) -> None:
    """Decide one unknown with the others as they currently stand (stage 3)."""
    field_ = state.model.module
    work = state.work[name]
    selection = state.selection
    field_.set_network(name, work.module)
    with state.timed("rank by derivatives"):
        cands = rank_by_derivatives(state, work)
    shortlist = cands[: selection.shortlist]
    # the field's closed-form coefficients and learnable parameters, in Layout order: the chosen
    # candidate's refit values are written back into them
    values = [m.coef for m in field_.nets.values() if isinstance(m, TermSum)] + list(field_.learnable.values())
    with state.timed("score on segments"):
        actives = score_on_segments(state, name, shortlist)
    with state.timed("rescore on trajectories"):
        rescore_on_trajectories(state, name, shortlist, actives)
    for cand in cands[selection.shortlist :]:
        cand.score = math.inf  # ranked out by derivative matching; stage-1 order kept below
    shortlist.sort(key=lambda c: (c.score, len(c.support)))
    best = parsimonious(shortlist, selection.parsimony)
    cands = [best] + [c for c in shortlist if c is not best] + cands[selection.shortlist :]
    with torch.no_grad():
        for prm, v in zip(values, best.values, strict=True):
            prm.copy_(v)
        work.module.mask.zero_()
        work.module.mask[list(best.support)] = 1.0
    with state.timed("inclusion"):
        inclusion, replicates = inclusion_probabilities(state, work, shortlist, cands, best)
    state.details[name] = UnknownDiscovery(
        name, work.spec.args, work.terms, cands, best.expression, inclusion, {}, replicate_supports=replicates
    )


def choose_jointly(state: DiscoveryState) -> None:
    """With several unknowns, refit every combination of their best candidates together (stage 4)."""
    if len(state.details) > 1 and state.selection.joint > 1:
        joint_choice(
            state.model.module,
            state.batch,
            state.whole,
            state.segment_solver,
            state.y0,
            state.details,
            state.work,
            state.selection,
            state.n_per_state,
            state.blocks,
            state.n_blocks,
            state.resamples,
        )


def refit_final(state: DiscoveryState, refit_iterations: int, progress: bool) -> None:
    """Refit every selected coefficient, learnable parameter and initial state on whole trajectories
    (Levenberg–Marquardt; if that blows up, segments then a polish with L-BFGS) (stage 5); with the
    half-saturation constants of chosen rational terms free where there are any (:func:`free_constants`)."""
    if free_constants(state, refit_iterations):
        return
    field_, model, data = state.model.module, state.model, state.data
    result = refit_whole(field_, model, data, state.batch, state.whole, state.y0, refit_iterations)
    if result is None:  # as in the rescoring: a wrong fitted start must not lose the refit, retry from the data's
        result = refit_whole(field_, model, data, state.batch, state.whole, data_starts(state), refit_iterations)
    if result is None:  # single shooting failed: segments first, then a polish on the trajectories
        with warnings.catch_warnings():
            # a solver failure in the line search stops the refit with its best weights: that is fine here
            warnings.simplefilter("ignore", TrainingWarning)
            result = fit(
                model,
                data,
                warm_start=None,
                shooting=Shooting(iterations=0, lbfgs=refit_iterations, continuity=100.0),
                full=FullTrajectory(iterations=0, lbfgs=max(refit_iterations // 4, 1), solver=SCORING_SOLVER),
                progress=progress,
                seed=state.seed,
            )
        if result.status not in ("ok", "nonfinite"):
            result = None
    if result is not None:
        state.model = result.model
        state.y0 = torch.as_tensor(result.initial_states, dtype=field_.dtype)
    state.refit = result


def free_constants(state: DiscoveryState, refit_iterations: int) -> bool:
    """Where chosen supports hold rational terms: refit their half-saturation constants ``K`` with
    everything else (:func:`~udesci.discovery.refit.refit_constants`); the unknowns' libraries then
    hold those terms at their fitted ``K`` (stage 5 with rational terms).  Returns whether it did."""
    libraries = {name: (w.terms, w.saturating, w.companions) for name, w in state.work.items() if w.saturating}
    if not libraries:
        return False
    found = refit_constants(state.model, libraries, state.data, state.batch, state.whole, state.y0, refit_iterations)
    if found is None:
        return False
    field_ = state.model.module
    found.write(field_)
    for name, terms in found.terms.items():
        work, det = state.work[name], state.details[name]
        renamed = {str(old): str(new) for old, new in zip(work.terms, terms, strict=True)}
        work.terms, work.module = terms, field_.nets[name]
        work.theta = library_columns(work.spec.args, terms, state.arguments[name])
        for i, k in found.constants[name].items():
            work.saturating[i] = replace(work.saturating[i], expression=terms[i], K=k)
        det.chosen.support = found.supports[name]
        det.terms = terms
        det.constants = {str(terms[i]): k for i, k in found.constants[name].items()}
        det.inclusion = {renamed.get(k, k): v for k, v in det.inclusion.items()}
        det.chosen.expression = closed_form(terms, found.coefficients[name])
    state.y0 = torch.as_tensor(found.fit.initial_states, dtype=field_.dtype)
    state.refit = FitResult(
        state.model,
        found.fit.history,
        found.fit.initial_states,
        message=f"{found.fit.message}, with the half-saturation constants K of the rational terms free",
        seconds=found.fit.seconds,
        data=state.data,
    )
    return True


def assemble(state: DiscoveryState) -> Discovery:
    """Final expressions, intervals, the closed-form model and metrics (stage 6)."""
    model, selection = state.model, state.selection
    final = {}
    for name, det in state.details.items():
        module = model.module.nets[name]
        coef = (module.coef.detach() * module.mask).numpy()
        det.expression = final[name] = closed_form(det.terms, coef)
        det.candidates[0].coefficients = coef
    # the misfit from the closed form's own starts, from the starts the data support and from starts within the
    # noise of its own, in one solve
    noise = max(state.batch.noise_rms(), NOISE_FLOOR) if state.n_observations else math.nan
    nearby = noise_starts(state, noise) if math.isfinite(noise) else []
    sse, sse_seen, sse_first, *sse_near = data_misfits(
        model.module, [state.y0, *supported_starts(state), *nearby], state.batch
    )
    notes = uncertainty(state)
    if state.dropped_samples:
        total = state.dropped_samples + state.n_samples
        notes.append(
            f"{state.dropped_samples} of {total} samples of the trained model were left out of the regression: "
            f"a non-finite state or network output, or a state more than {SAMPLE_RANGE:g} data spreads outside "
            "the data's range (the trained UDE's trajectory ran away)"
        )
    values = model.parameter_values()
    result_model = state.fitted.model.substitute(final)
    result_model = with_params(result_model, {s: values[s] for s in result_model.params})
    metrics = {
        "data_rmse_scaled": math.sqrt(sse / state.n_observations) if math.isfinite(sse) else math.inf,
        # the network samples the closed forms were regressed on (an unknown applied in several places
        # pools its applications': more than the sampled states)
        "samples": max((int(v.shape[0]) for v in state.network_outputs.values()), default=state.n_samples),
    }
    adequacy = assess(state, sse, min(sse_seen, sse_first), noise, sse_near)
    metrics["adequacy"] = adequacy.as_dict()
    # unknowns of never-observed states: do the data identify them? (None when every argument is observed)
    samples = {name: work.theta for name, work in state.work.items()}
    identifiability = check_identifiability(model, state.y0, state.batch, state.details, samples, state.n_observations)
    return Discovery(
        final,
        dict(result_model.equations),
        result_model,
        state.details,
        selection,
        state.libraries[next(iter(state.libraries))],
        state.refit,
        metrics,
        initial_states=state.y0.numpy().copy(),
        data=state.data,
        adequacy=adequacy,
        notes=notes,
        identifiability=identifiability,
    )


def uncertainty(state: DiscoveryState) -> list[str]:
    """Each unknown's inclusion probabilities and 95 % intervals, both from the same bootstrap replicates.

    Replicate ``b`` chooses among combinations of the final supports and those the per-unknown
    replicate selections of ``decide`` chose, by its own linearised refit (:func:`bootstrap_ensemble`),
    and keeps that refit's coefficients; a term's inclusion is
    the share of replicates selecting it and its interval the 2.5 %–97.5 % percentiles of its
    coefficient over the replicates (0 where not selected), for every term some replicate selects and
    every term of the final support.  Without a bootstrap (or if the ensemble cannot be computed,
    noted) inclusion stays the criterion weights and the intervals are Gauss–Newton intervals.

    Returns the notes for ``Discovery.notes``.
    """
    model, selection = state.model, state.selection
    ensemble, notes = None, []
    if selection.bootstrap:
        # candidate supports: the final one, then those the per-unknown replicate selections chose
        candidates = {}
        for name, det in state.details.items():
            tally = Counter(det.replicate_supports)
            final = tuple(det.chosen.support)
            candidates[name] = [final] + [sup for sup, _ in tally.most_common() if sup != final]
        ensemble = bootstrap_ensemble(
            model.module,
            state.batch,
            state.y0,
            state.blocks,
            state.n_blocks,
            state.resamples,
            state.block_counts,
            candidates,
            selection.criterion,
            selection.parsimony,
        )
        if ensemble is None:
            notes.append("the bootstrap coefficients could not be computed; intervals are Gauss–Newton intervals")
    if ensemble is None:
        intervals = gauss_newton_intervals(model.module, state.y0, state.batch)
        for name, det in state.details.items():
            det.intervals = {
                str(det.terms[i]): intervals[(name, i)] for i in det.chosen.support if (name, i) in intervals
            }
            det.replicates, det.interval_basis = 0, GAUSS_NEWTON_BASIS
            det.inclusion_basis = (
                bootstrap_basis(len(det.replicate_supports), SEGMENT_LENGTH)[0]
                if det.replicate_supports
                else WEIGHT_BASIS
            )
        return notes
    for name, det in state.details.items():
        inc = ensemble.inclusion(name)
        det.inclusion = {str(term): float(inc[i]) for i, term in enumerate(det.terms)}
        shown = [i for i in range(len(det.terms)) if inc[i] > 0 or i in det.chosen.support]
        det.intervals = {str(det.terms[i]): ensemble.interval(name, i) for i in shown}
        det.replicates, det.replicate_supports = ensemble.replicates, ensemble.supports[name]
        det.inclusion_basis, det.interval_basis = bootstrap_basis(ensemble.replicates, SEGMENT_LENGTH)
        weak = [str(det.terms[i]) for i in det.chosen.support if inc[i] < 0.5]
        if weak:
            notes.append(
                f"{name}: the chosen expression keeps {', '.join(weak)}, which fewer than half of the "
                f"{ensemble.replicates} bootstrap replicates select"
            )
    return notes


def supported_starts(state: DiscoveryState) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial states the data support, for the adequacy's start check: the trained UDE's
    (:func:`ude_starts`) and the data's (:func:`data_starts`; for where the UDE's start is itself off, e.g.
    on a fixed point of the closed form: SIR with a fitted I(0) = 0), each shape ``(K, n)``.  A never-observed
    state keeps the closed form's own start in both: the data do not support the UDE's, and may not
    tell them apart (a hidden susceptible shifted along the SIR symmetry)."""
    hidden = state.batch.never_observed
    y0_seen = ude_starts(state.fitted, state.data, state.batch).clone()
    y0_seen[:, hidden] = state.y0[:, hidden].to(y0_seen.dtype)
    return y0_seen, data_starts(state)


def noise_starts(state: DiscoveryState, noise: float) -> list[torch.Tensor]:
    """``SPREAD_DRAWS`` sets of initial states within the data's noise level of the closed form's own
    (``state.y0``): each observed state moved by Gaussian noise of ``noise`` (scaled units, as
    :meth:`~udesci.train.PaddedBatch.noise_rms`) times its scale, a never-observed state left alone,
    then moved inside the declared domains; drawn from ``state.seed``.  Each has shape ``(K, n)``."""
    gen = torch.Generator().manual_seed(state.seed)
    scale = (noise * state.batch.scale).to(state.y0.dtype)
    scale[state.batch.never_observed] = 0.0
    out = []
    for _ in range(SPREAD_DRAWS):
        step = torch.randn(state.y0.shape, generator=gen, dtype=state.y0.dtype) * scale
        out.append(state.batch.inside(state.y0 + step))
    return out


def assess(state: DiscoveryState, sse: float, sse_start: float, noise: float, sse_near: list | None = None) -> Adequacy:
    """How well the closed form reproduces the trained networks and the data, relative to the UDE.

    ``sse`` is the closed-form model's scaled squared data misfit from its own initial states and
    ``sse_start`` the smaller one from the starts of :func:`supported_starts` (as :func:`data_misfits`
    gives them).  ``network_r2[name]``: 1 − SSE/SST of the final closed form against the network's output on the
    samples discovery regressed.  ``data_ratio``: the closed-form model's scaled data RMSE divided by
    the trained UDE's (both simulated from their own fitted initial states with the scoring solver);
    ``start_ratio``: the same from ``sse_start`` (the UDE's or the data's starts, whichever fits better),
    over the UDE's misfit or the noise level's, whichever is smaller;
    ``noise_ratio`` and ``ude_noise_ratio``: the closed form's and the UDE's scaled data RMSE over the
    data's noise level ``noise`` (:meth:`~udesci.train.PaddedBatch.noise_rms`, at least ``NOISE_FLOOR``;
    ``nan`` without observations);
    ``spread_ratio``: the median of the same for the closed form from the starts of :func:`noise_starts`,
    whose misfits are ``sse_near`` (``nan`` without them).
    """
    r2 = {}
    for name, det in state.details.items():
        work = state.work[name]
        pred = work.theta @ np.asarray(det.candidates[0].coefficients, dtype=float)
        sst = float(np.sum((work.target - work.target.mean()) ** 2))
        ssr = float(np.sum((pred - work.target) ** 2))
        r2[name] = 1.0 - ssr / sst if sst > 0 else (1.0 if ssr == 0 else -math.inf)
    fitted = state.fitted
    sse_ude = data_misfit(fitted.model.module, ude_starts(fitted, state.data, state.batch), state.batch)
    sse_noise = noise**2 * state.n_observations
    # the start check's reference: the UDE's misfit, or the noise level where the UDE did not fit (chaotic
    # systems: a UDE whose own trajectory decorrelates from the data must not excuse the closed form's)
    return Adequacy(
        r2,
        misfit_ratio(sse, sse_ude),
        misfit_ratio(sse_start, min(sse_ude, sse_noise) if math.isfinite(sse_noise) else sse_ude),
        misfit_ratio(sse, sse_noise),
        misfit_ratio(sse_ude, sse_noise),
        float(np.median([misfit_ratio(v, sse_noise) for v in sse_near])) if sse_near else math.nan,
    )


def misfit_ratio(sse: float, sse_ude: float) -> float:
    """``sqrt(sse / sse_ude)``: a closed form's scaled data RMSE over the UDE's (1 when both are 0,
    ``inf`` when either is not finite or only the UDE's is 0)."""
    if math.isfinite(sse) and math.isfinite(sse_ude) and sse_ude > 0:
        return math.sqrt(sse / sse_ude)
    return 1.0 if sse == sse_ude == 0 else math.inf


def context_of(field_, name: str) -> tuple:
    """What deciding unknown ``name`` depends on besides its own work: the other unknowns (network,
    or closed form with its coefficients) and the learnable parameters' values, as a comparable tuple."""
    out = []
    for other, net in field_.nets.items():
        if other == name:
            continue
        if isinstance(net, TermSum):
            out.append((other, (net.coef.detach() * net.mask).numpy().tobytes()))
        else:
            out.append((other, id(net)))
    out += [(k, v.detach().numpy().tobytes()) for k, v in field_.learnable.items()]
    return tuple(out)


def stage_progress(enabled: bool | None, total: int):
    """A labelled tqdm bar over discovery's stages on stderr (``None``: on in a terminal or notebook)."""
    import sys

    from tqdm.auto import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty() or "ipykernel" in sys.modules
    return tqdm(total=total, desc="discover", unit="stage", disable=not enabled, leave=True, file=sys.stderr)


def run_stages(fitted, data, libraries, selection, refit, refit_iterations, samples, seed, progress) -> Discovery:
    """All stages on a fresh copy of the fitted model, with a labelled progress bar."""
    n_unknowns = len(fitted.model.unknowns)
    total = 3 + selection.sweeps * n_unknowns + (1 if refit else 0)
    with stage_progress(progress, total) as bar:

        def step(label: str) -> None:
            bar.set_postfix_str(label, refresh=False)
            bar.update(1)

        start = time.perf_counter()
        state = prepare(fitted, data, fitted.model.copy(), libraries, selection, samples, seed)
        state.seconds["prepare"] = time.perf_counter() - start
        step("networks sampled")
        with state.timed("propose"):
            propose_all(state)
        step("candidates proposed")
        # unknowns are decided one after another; later sweeps re-decide each with the others in closed form
        decided_in: dict = {}
        for sweep in range(selection.sweeps):
            for name in state.work:
                # deciding again in the same surroundings gives the same answer: skip it
                surroundings = context_of(state.model.module, name)
                if decided_in.get(name) != surroundings:
                    decide(state, name)
                    decided_in[name] = surroundings
                step(f"{name} decided (sweep {sweep + 1}/{selection.sweeps})")
        with state.timed("joint choice"):
            choose_jointly(state)
        for prm in state.model.module.parameters():
            prm.requires_grad_(True)
        if refit:
            # the refit's own fallback training runs silently: its bars would look like training restarting
            with state.timed("final refit"):
                refit_final(state, refit_iterations, False)
            step("refit")
        with state.timed("assemble"):
            found = assemble(state)
        step("uncertainty")
        found.seconds = dict(state.seconds)
        return found


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
    progress: bool | None = None,
    threads: int | None = None,
) -> Discovery:
    """Regress each trained network into a sparse closed-form expression.

    Candidate supports for each unknown come from a threshold sweep of
    SINDy's STLSQ (:func:`~udesci.discovery.proposal.stlsq`, PySINDy's supports)
    on the network samples (normalised library columns) plus every support of
    up to ``selection.exhaustive`` terms.  Each candidate's coefficients are
    refit by derivative matching on the smoothed data (no ODE solve); the best
    ``selection.shortlist`` are refit on short trajectory segments and the best
    ``selection.rescore`` of those on whole trajectories (initial states free;
    refit again from the data's initial states if that blows up), all in
    batched Levenberg–Marquardt solves with RK4 substeps enough for the
    dynamics (:func:`comparison_solver`), and
    scored by the information criterion of their data misfit (a Gaussian
    likelihood with its own variance per state).  The sparsest candidate
    within ``selection.parsimony`` of the best wins.  Unknowns are decided one
    after another (``selection.sweeps`` passes), then jointly.  With
    ``selection.bootstrap > 0`` (``B`` replicates of resampled point blocks),
    each replicate chooses its supports and refits their coefficients on its
    own resample (a linearised whole-trajectory refit at the final fit); the
    inclusion probability of a term is the share of the replicates selecting
    it and its 95% interval the 2.5–97.5 percentiles of its coefficient over
    the same replicates (0 where not selected), so an interval excludes 0
    only if more than 97.5% of them select the term with one sign.  With
    ``bootstrap=0`` inclusion comes from criterion weights ``exp(-delta/2)``
    and intervals are Gauss–Newton intervals at the final fit.  What each
    number is stands in ``UnknownDiscovery.inclusion_basis``/``interval_basis``.

    Parameters
    ----------
    fitted : FitResult
        Output of :func:`~udesci.fit`.
    data : Dataset, optional
        Data for scoring and refitting (default: the data ``fitted`` was trained on).
    library : Library, list of sympy.Expr, or dict name -> either, optional
        Candidate terms: one library for all unknowns, or one per unknown name.  A plain list such
        as ``[x, y, x*y, x**2*y]`` is exactly those terms (:func:`~udesci.discovery.library.as_library`).
        A library given is used as it is (its result is still checked and labelled).  ``None``
        (default) is the automatic library: polynomials up to degree 2, and while the result is
        labelled inadequate, the unknowns at fault are rediscovered with degree 3, then degree 3
        with sin/cos of each argument, then degree 2 with saturating rational terms
        (:func:`~udesci.discovery.escalation.escalate`; the tries are in ``Discovery.escalation``).
        ``Library(rational=True)`` offers ``a/(K + a)`` and ``a**2/(K**2 + a**2)`` families (times the
        monomials of the arguments up to degree 1) with ``K`` fitted by the final refit
        (:class:`~udesci.discovery.library.RationalTerms`).
    selection : Selection, optional
    refit : bool, default True
        Refit all discovered coefficients, learnable parameters and initial
        states on whole trajectories (Levenberg–Marquardt; L-BFGS on segments
        then trajectories if that blows up).
    refit_iterations : int, default 40
        Iterations of the refit.
    samples : dict, optional
        Options of :func:`sample_states` (``density``, ``jitter``, ``copies``).
    seed : int, default 0
    progress : bool or None, default None
        A labelled progress bar over the stages on stderr; ``None`` shows it in a
        terminal or a notebook and hides it otherwise (logs, tests).
    threads : int, optional
        torch threads (default 1 for models with fewer than 256 states).

    Returns
    -------
    Discovery

    Raises
    ------
    ConfigError
        If ``fitted`` is not a FitResult, the model has no unknowns, a
        library is given for a name that is not an unknown, a list of terms holds
        something that is not a SymPy term, or a term uses symbols that are not
        the unknown's arguments.
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
    libraries = resolve_libraries(library, fitted.model)

    def attempt(libs: dict) -> Discovery:
        try:
            return run_stages(fitted, data, libs, selection, refit, refit_iterations, samples, seed, progress)
        except TrainingError:
            raise
        except (AssertionError, RuntimeError) as exc:
            # the refit's solve can step into coefficients for which the ODE blows up (torchdiffeq then
            # raises "underflow in dt"): the selection stands, so rerun it without the refit and say so
            if not refit:
                raise
            found = run_stages(fitted, data, libs, selection, False, refit_iterations, samples, seed, progress)
            found.notes.append(
                f"discover's refit failed ({type(exc).__name__}: {exc}); reran discover with refit=False"
            )
            return found

    with torch_threads(threads, len(fitted.model.states)):
        found = attempt(libraries)
        if library is None:
            found = escalate(found, libraries, fitted.model, attempt)
        return found


def resolve_libraries(library, model) -> dict:
    """One :class:`Library` per unknown from ``library`` (see :func:`~udesci.discovery.library.as_library`):
    None, a Library or a list of terms for every unknown, or a dict by name of those.

    Raises
    ------
    ConfigError
        For names that are not unknowns, entries that are neither Libraries nor lists of SymPy terms,
        or terms in symbols that are not the unknown's arguments.
    """
    if isinstance(library, dict):
        bad = [n for n in library if n not in model.unknowns]
        if bad:
            raise ConfigError(f"library: names {bad} are not unknowns of the model ({sorted(model.unknowns)}).")
        return {
            name: as_library(library.get(name), spec.args, f"library[{name!r}]")
            for name, spec in model.unknowns.items()
        }
    return {name: as_library(library, spec.args) for name, spec in model.unknowns.items()}
