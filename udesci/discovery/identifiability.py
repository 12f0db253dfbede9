"""Do the data identify an unknown that depends on a state no trajectory observes?

When a state is never observed (an epidemic's susceptibles, where only infections are counted), its
trajectory is estimated only through the model: through the known physics it enters, and through the
unknown.  The data may then fix it (a hidden trajectory pinned by the known physics), or leave a
direction free: the hidden state's level can move while the unknown's coefficients compensate, or the
unknown can vanish altogether, and the observed states come out the same.  A closed form found in such
a case is one of several accounts of the data, and :func:`check_identifiability` says so.

:func:`estimate_hidden` gives derivative matching the trained model's estimate of a hidden state's
trajectory (the data hold none).  :func:`check_identifiability` compares the discovered model with
materially different rivals, each refit on the whole trajectories (Levenberg–Marquardt,
:data:`~udesci.discovery.refit.SCORING_SOLVER`), by their increase of the scaled squared data misfit
in units of the noise variance ``σ²`` (the discovered model's misfit over its residual degrees of
freedom): a rival whose increase stays below the 95 % chi-square quantile is not ruled out by the
data (a likelihood-ratio test).
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
import torch
from scipy.stats import chi2

from ..model import HybridModel
from ..solve import integrate
from ..train import PaddedBatch, Segments
from .batch_lm import Layout, refit_candidates, whole_trajectories
from .proposal import closed_form
from .refit import SCORING_SOLVER
from .results import IDENTIFIABILITY_LEVEL, Identifiability, Rival

# the hidden state's initial values are moved by these factors and by ± this share of its RMS along the
# fitted trajectories (a change no one would call immaterial)
SCALES = (2.0, 0.5)
SHIFT = 0.5
# an alternative candidate differs materially when its closed form departs from the discovered one by more
# than this share of the discovered one's RMS on the network samples
MATERIAL = 0.1
# the alternatives compared (the best-fitting ones)
MAX_ALTERNATIVES = 3
# the least noise variance (scaled units: an RMS of 1e-5 of a state's spread) the rivals are measured against
MIN_VARIANCE = 1e-10
# Levenberg–Marquardt iterations of each rival's refit
ITERATIONS = 20


def estimate_hidden(fitted, prep: PaddedBatch, y0: torch.Tensor | None = None) -> PaddedBatch:
    """``prep`` with its never-observed states' smoothed series replaced by the trained model's estimate.

    The trained model is simulated from its fitted initial states on ``prep``'s knots; the derivative is
    the trained field at the simulated states.  Used for derivative matching, which otherwise has no
    value of a hidden state to evaluate a candidate at.

    Parameters
    ----------
    fitted : FitResult
    prep : PaddedBatch
    y0 : torch.Tensor of shape (K, n), optional
        The trained model's initial state of each of ``prep``'s trajectories (default
        ``fitted.initial_states``, which fit only the training data's trajectories).

    Returns
    -------
    PaddedBatch
        ``prep`` itself when every state is observed somewhere or the simulation fails.
    """
    if not prep.never_observed:
        return prep
    field_ = fitted.model.module
    K, T = prep.knots.shape
    index = torch.arange(K)
    y0 = torch.as_tensor(fitted.initial_states if y0 is None else y0, dtype=field_.dtype)
    try:
        with torch.no_grad():
            path = integrate(field_, y0, prep.knots, SCORING_SOLVER, inputs=(prep.interp, index))
            with field_.bound_inputs(prep.interp, index.repeat_interleave(T)):
                slope = field_(prep.knots.reshape(-1), path.reshape(K * T, -1)).reshape(path.shape)
    except (AssertionError, RuntimeError):
        return prep
    if not (bool(torch.isfinite(path).all()) and bool(torch.isfinite(slope).all())):
        return prep
    return prep.with_estimates(path, slope)


def check_identifiability(
    model: HybridModel,
    y0: torch.Tensor,
    batch: PaddedBatch,
    details: dict,
    samples: dict,
    n_observations: float,
) -> Identifiability | None:
    """Compare the discovered closed-form model with rivals that differ materially in what the data do not see.

    Parameters
    ----------
    model : HybridModel
        The discovered closed-form model during discovery (its unknowns backed by
        :class:`~udesci.networks.TermSum` modules with the final coefficients).
    y0 : torch.Tensor of shape (K, n)
        Its initial states.
    batch : PaddedBatch
        The scoring data.
    details : dict name -> UnknownDiscovery
        The discovered unknowns (library terms, chosen candidate, scored candidates).
    samples : dict name -> ndarray of shape (N, p)
        Each unknown's library columns at the network samples (where closed forms are compared).
    n_observations : float
        Observed values in ``batch``.

    Returns
    -------
    Identifiability or None
        None when no unknown takes a never-observed state as an argument (nothing to check).

    Notes
    -----
    Rivals, for the unknowns that take a hidden state:

    * each hidden state's initial values (all trajectories together) × 2, × ½, and ± half its RMS
      along the fitted trajectories, with every coefficient and learnable parameter refit (the other
      initial states held): one degree of freedom;
    * the unknown set to 0, everything else refit (initial states included): as many degrees of
      freedom as the terms removed;
    * up to ``MAX_ALTERNATIVES`` other scored candidates with no more terms than the chosen one whose
      closed form differs by more than ``MATERIAL`` (10 %) RMS on the network samples, compared by the
      data misfit of their own whole-trajectory refits during discovery: one degree of freedom.
    """
    field_ = model.module
    hidden = batch.never_observed
    names = model.state_names
    concerned = [
        name
        for name, spec in model.unknowns.items()
        if name in details
        and any(names.index(str(a)) in hidden for call in spec.calls for a in call if str(a) in names)
    ]
    if not concerned:
        return None
    layout = Layout.of(field_)
    slices = dict(layout.nets)
    active = layout.active(field_)
    whole = whole_trajectories(batch)
    K, n = y0.shape

    def refit(starts: torch.Tensor, theta: torch.Tensor, free: list, free_starts: bool):
        if free_starts:
            theta = torch.cat([theta, starts.reshape(-1)])
        out = refit_candidates(
            field_, batch, whole, starts, 0.0, SCORING_SOLVER, layout, theta[None], [free], ITERATIONS,
            free_starts=free_starts,
        )  # fmt: skip
        sse = float(out.extra[0].sum())
        return (sse if math.isfinite(sse) else math.inf), out.theta[0, : layout.size]

    def refit_from(starts: list) -> list:
        """Refit of the coefficients and learnable parameters from each of ``C`` fixed start sets (K, n), in
        one batched solve: every row is simulated on all ``C`` copies of the trajectories, and weighs only its own."""
        C = len(starts)
        copies = Segments(
            knots=whole.knots.repeat(C, 1),
            y=whole.y.repeat(C, 1, 1),
            mask=whole.mask.repeat(C, 1, 1),
            trajectory=whole.trajectory.repeat(C),
            first=whole.first.repeat(C),
            links=whole.links,
            count=C * K,
        )
        own = torch.arange(C).repeat_interleave(K)
        weights = (own[None, :] == torch.arange(C)[:, None]).to(y0.dtype)
        out = refit_candidates(
            field_, batch, copies, torch.cat(starts), 0.0, SCORING_SOLVER, layout, theta0.expand(C, -1).clone(),
            [active] * C, ITERATIONS, weights=weights,
        )  # fmt: skip
        sse = (out.extra.sum(dim=(2, 3)) * weights).sum(1)
        return [(float(v) if math.isfinite(float(v)) else math.inf, th) for v, th in zip(sse, out.theta, strict=True)]

    def forms(theta: torch.Tensor) -> dict:
        return {
            name: short(closed_form(details[name].terms, theta[slices[name]].numpy().astype(float)))
            for name in concerned
        }

    theta0 = layout.vector(field_)
    with torch.no_grad():
        path = integrate(field_, y0, batch.knots, SCORING_SOLVER, inputs=(batch.interp, torch.arange(K)))
    moves = []  # (state, change, starts)
    for j in hidden:
        values = path[..., j][batch.valid]
        rms = float(values.pow(2).mean().sqrt()) if values.numel() else 0.0
        step = SHIFT * (rms if math.isfinite(rms) and rms > 1e-12 else 1.0)
        changes = [(f"{names[j]}(0) × {f:g} in every trajectory", y0[:, j] * f) for f in SCALES]
        changes += [(f"{names[j]}(0) {sign} {step:.3g} in every trajectory", y0[:, j] + s * step)
                    for sign, s in (("+", 1.0), ("−", -1.0))]  # fmt: skip
        for change, column in changes:
            starts = y0.clone()
            starts[:, j] = column
            moves.append((names[j], change, starts))
    # the first row refits from the discovered starts themselves: the reference of the others
    results = refit_from([y0] + [m[2] for m in moves])
    base = results[0][0]
    p = len(active) + K * n
    hidden_names = tuple(names[j] for j in hidden)
    if not math.isfinite(base):
        return Identifiability(
            hidden_names, tuple(concerned), math.nan,
            unassessed="the discovered model cannot be simulated from its initial states, so no rival can be compared",
        )  # fmt: skip
    # noise-free data: the misfit is the solver's error, and a ratio of two such numbers says nothing
    sigma2 = max(base / max(n_observations - p, 1.0), MIN_VARIANCE)

    def delta(sse: float, reference: float) -> float:
        if not math.isfinite(sse):
            return math.inf
        return (sse - reference) / sigma2

    one = float(chi2.ppf(IDENTIFIABILITY_LEVEL, 1))
    rivals = [
        Rival("hidden start", state, change, delta(sse, base), one, forms(theta))
        for (state, change, _), (sse, theta) in zip(moves, results[1:], strict=True)
    ]
    zero = []
    for name in concerned:
        det = details[name]
        sl = slices[name]
        support = [i for i in active if sl.start <= i < sl.stop]
        if not support or not bool(theta0[sl].abs().max() > 0):
            zero.append(name)
            continue
        theta = theta0.clone()
        theta[sl] = 0.0
        sse, theta = refit(y0, theta, [i for i in active if i not in support], True)
        rivals.append(
            Rival("zero", name, f"{name} = 0", delta(sse, base), float(chi2.ppf(IDENTIFIABILITY_LEVEL, len(support))),
                  forms(theta))
        )  # fmt: skip
        rivals += alternatives(name, det, samples.get(name), one, sigma2)
    return Identifiability(hidden_names, tuple(concerned), sigma2, tuple(rivals), tuple(zero))


def alternatives(name: str, det, theta: np.ndarray | None, threshold: float, sigma2: float) -> list[Rival]:
    """The best-fitting scored candidates of ``det`` with no more terms than the chosen one whose closed
    form differs materially from it on the network samples ``theta`` (N, p), as rivals."""
    chosen = det.chosen
    if theta is None or not math.isfinite(chosen.data_sse):
        return []
    mine = theta @ np.asarray(chosen.coefficients, dtype=float)
    size = float(np.sqrt(np.mean(mine**2)))
    out = []
    for cand in det.candidates[1:]:
        if len(cand.support) > len(chosen.support) or not math.isfinite(cand.data_sse) or cand.expression == 0:
            continue  # (the unknown at 0 is a rival of its own)
        gap = float(np.sqrt(np.mean((theta @ np.asarray(cand.coefficients, dtype=float) - mine) ** 2)))
        if gap <= MATERIAL * size:
            continue
        d = (cand.data_sse - chosen.data_sse) / sigma2
        out.append(Rival("alternative", name, f"{name} = {short(cand.expression)}", d, threshold, {}))
    return sorted(out, key=lambda r: r.delta)[:MAX_ALTERNATIVES]


def short(expr: sp.Expr) -> str:
    """``expr`` with its numbers at 4 significant digits, as text."""
    return str(expr.xreplace({a: sp.Float(float(a), 4) for a in expr.atoms(sp.Float)}))
