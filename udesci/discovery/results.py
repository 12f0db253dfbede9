"""What discovery returns: candidates, per-unknown accounts and the :class:`Discovery`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import sympy as sp
import torch

from ..evaluate import Predictable
from ..model import HybridModel
from ..train import FitResult
from .library import Library
from .selection import Selection


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
    values : list of torch.Tensor
        After its refit: every closed-form coefficient vector and learnable parameter of
        the field, in :class:`~udesci.discovery.batch_lm.Layout` order.
    segment_sse : ndarray of shape (S, n) or None
        Scaled squared misfit per point block and state of its whole-trajectory refit.
    theta : torch.Tensor or None
        Its refit parameter vector (Layout order).
    problem : str
        Why it could not be scored (empty when it was), e.g. its model blows up from every start, or its
        whole-trajectory simulation leaves a state's declared domain (``"leaves the declared domain of x ..."``).
    """

    support: tuple
    coefficients: np.ndarray
    expression: sp.Expr
    threshold: float
    network_rmse: float
    data_sse: float = math.inf
    score: float = math.inf
    values: list = field(default_factory=list, repr=False)
    segment_sse: np.ndarray | None = field(default=None, repr=False)
    theta: torch.Tensor | None = field(default=None, repr=False)
    problem: str = ""


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
        Per-term inclusion probability: with a bootstrap, the share of the bootstrap replicates
        whose selection contains the term (see ``inclusion_basis``).
    intervals : dict str -> (float, float)
        95 % interval of a term's coefficient, for the chosen terms and every term some replicate
        selects: with a bootstrap, the 2.5 % and 97.5 % percentiles of the coefficient over the
        *same* replicates as ``inclusion`` (0 in a replicate that did not select the term), so an
        interval excludes 0 only if more than 97.5 % of the replicates select the term with one
        sign (see ``interval_basis``).
    replicates : int
        Bootstrap replicates behind ``inclusion`` and ``intervals`` (0: no bootstrap).
    inclusion_basis, interval_basis : str
        What the numbers are, in words (which resamples, how many, of what).
    replicate_supports : list of tuple of int
        Each bootstrap replicate's selected support (indices into ``terms``).
    constants : dict str -> float
        The fitted half-saturation constant ``K`` of each chosen rational term (``Library(rational=...)``),
        by the term as it stands in ``terms`` (empty when the chosen expression has none or no refit ran).
    """

    name: str
    args: tuple
    terms: list
    candidates: list
    expression: sp.Expr
    inclusion: dict = field(default_factory=dict)
    intervals: dict = field(default_factory=dict)
    replicates: int = 0
    inclusion_basis: str = ""
    interval_basis: str = ""
    replicate_supports: list = field(default_factory=list, repr=False)
    constants: dict = field(default_factory=dict)

    @property
    def chosen(self) -> Candidate:
        """The selected candidate."""
        return self.candidates[0]

    def support_terms(self) -> list[sp.Expr]:
        """Library terms in the chosen expression."""
        return [self.terms[i] for i in self.chosen.support]


# a closed form is labelled inadequate when the closed-form model misfits the data by more than this factor of
# the trained UDE's own scaled RMSE (see Adequacy, Notes, for why this and not the network R²)
MAX_DATA_RATIO = 2.0
# ... and when, started from the trained UDE's initial states, it misfits the data by more than this factor: the
# closed form then fits only from starts of its own (see Adequacy, Notes, for the numbers behind 10)
MAX_START_RATIO = 10.0
# ... and when it misfits the data by more than this factor of the noise level estimated from the data alone
# (PaddedBatch.noise_rms, no lower than NOISE_FLOOR of each state's spread): a closed form that leaves the data
# is inadequate however poorly the UDE itself fits them
MAX_NOISE_RATIO = 3.0
NOISE_FLOOR = 0.01
# ... and, tighter, when some unknown's closed form contradicts its network (network R² below CONTRADICTS_NETWORK:
# further from the network than the network's own mean is), by more than this factor of the noise level: the
# network no longer backs the closed form, and a misfit of 3 times the noise variance is not noise (see Adequacy,
# Notes, for the numbers)
MAX_UNBACKED_NOISE_RATIO = 1.75
CONTRADICTS_NETWORK = 0.0
# ... and when, started within the data's noise level of its own initial states (SPREAD_DRAWS draws), it misfits
# the data by more than this factor of that noise level (median over the draws): from starts the data cannot tell
# from its own it blows up or leaves the data's range (see Adequacy, Notes, for the numbers)
MAX_SPREAD_RATIO = 1000.0
SPREAD_DRAWS = 8
# below this network R², the closed form is reported as departing from its network (not a label by itself)
MIN_NETWORK_R2 = 0.9


@dataclass(frozen=True)
class Adequacy:
    """How well the discovered closed form reproduces the UDE it was regressed from.

    Attributes
    ----------
    network_r2 : dict name -> float
        Per unknown, ``1 - SSE/SST`` of the closed form against the trained network's output
        on the states discovery sampled (1 = the network exactly; ≤ 0 = no better than its mean).
    data_ratio : float
        Scaled data RMSE of the closed-form model divided by that of the trained UDE (each from
        its own fitted initial states): 1 = as good as the UDE, ``inf`` = it cannot be simulated.
    start_ratio : float
        The same ratio with the closed-form model simulated from starts the data support instead
        of its own refit ones: the trained UDE's initial states or the smoothed first observations,
        whichever fits better, over the UDE's own misfit or, where the UDE misfits the data more
        than their noise level (:attr:`ude_noise_ratio` above 1), over the noise's (``nan``: not measured).  It is
        large when the closed form
        reproduces the data only from initial states the data do not support: e.g. a linear
        ``U = 1.08 x - 6.5`` for a logistic growth with an Allee effect, whose refit moved the start
        onto its unstable equilibrium (data ratio 1.7) and which, from the UDE's start or the data's, decays away
        instead of growing (ODEBench system 8): start ratio 2.4e3.
    noise_ratio : float
        The closed-form model's scaled data RMSE (from its own initial states) divided by the data's
        noise level estimated from the observations alone (:meth:`~udesci.train.PaddedBatch.noise_rms`,
        at least ``NOISE_FLOOR`` = 1 % of each state's spread); ``nan``: not measured.
    ude_noise_ratio : float
        The same for the trained UDE: far above 1 when training did not fit the data, which makes the
        two ratios above lenient.  ODEBench 38, a stiff Van der Pol at 1 % noise: the UDE at 132× the
        noise; the degree-2 library's linear answer at about 22× (data ratio 0.17, unlabelled before this
        measure); the escalated degree-3 answer, the exact ``-1.124 x³``, at 0.82×.
    spread_ratio : float
        The closed-form model's scaled data RMSE over the noise level (as ``noise_ratio``) when started
        within that noise level of its own initial states: the median over ``SPREAD_DRAWS`` starts,
        each observed state moved by Gaussian noise of the estimated level (a never-observed state
        keeps its start); ``nan``: not measured, ``inf``: at least half of those starts blow up.
        Near ``noise_ratio`` when the trajectory forgets small changes of its start or carries them
        along; far above it when it depends sensitively on its start.

    Notes
    -----
    ``adequate`` is False when ``data_ratio`` exceeds ``MAX_DATA_RATIO`` (2), ``start_ratio``
    exceeds ``MAX_START_RATIO`` (10), ``noise_ratio`` exceeds ``MAX_NOISE_RATIO`` (3) — or
    ``MAX_UNBACKED_NOISE_RATIO`` (1.75) where some unknown's network R² is below
    ``CONTRADICTS_NETWORK`` (0) — or ``spread_ratio`` exceeds ``MAX_SPREAD_RATIO`` (1000).  A data
    ratio above 2 means the closed-form model leaves more than 4 times the UDE's squared
    misfit to the data.  If the closed form were right, its
    residuals would be the noise, ``SSE ≈ σ²(N - k)`` for ``N`` observations and ``k`` fitted numbers,
    and the UDE's could fall below that only by the noise its networks absorb, ``SSE ≈ σ²(N - p)`` for
    ``p`` effective degrees of freedom: a ratio of 2 would need ``p ≥ 3N/4``, networks fitting three
    quarters of the noise.  Measured on the Lotka–Volterra pipeline (correct x*y forms): ratio 1.17 at
    noise 0.005 (seed 0); 1.37, 1.07, 1.07 at noise 0.05 (seeds 0, 1, 2).  Van der Pol
    (``U = (1 - x²) y``, exact network, 1 % noise): 40 with ``Library(degree=1)``, 0.99 with a library
    holding ``x²y``.

    The start ratio has the looser bound because a right closed form can need its own start too: on
    a sensitive system its refit trades a start within the noise of the first observations against
    coefficients within a fraction of a percent.  Measured on the Allee growth above (exact network,
    1 % noise, start 6.12 near the unstable equilibrium 4.4): the right cubic, coefficients within
    0.1 %, has start ratio 2.13 (data ratio 1.00); the wrong linear form, which from that start
    decays instead of growing, 1.3e4 (data ratio 9.8).  A ratio of 10 is a trajectory that leaves
    the data, not one that lags it.

    The noise ratio judges the closed form against the data themselves: a right closed form misfits
    them by about the noise (ratio near 1; the estimate only grows where the dynamics curve sharply
    between samples, which lowers the ratio), and a ratio of 3 is a misfit of 9 times the noise
    variance.  The floor keeps noise-free data from labelling a right form over its solver error.

    The tighter noise bound applies when the closed form contradicts its network: its R² against the
    network's samples is below 0, so the network, which fits the data, does not back it, and only the
    data do.  A right closed form then still fits the data within their noise.  Measured on the
    ODEBench UDE split at 1 % noise (58 systems, one run): every result with reconstruction R² > 0.99
    has noise ratio at most 1.50, and the one among them with network R² below 0 has 0.047 (57, whose
    trajectory settles on a fixed point, so that the network's samples barely vary); the unlabelled
    failures were a Lorenz system (55, R² −0.06) at 1.88 and a chaotic Rössler system (59, R² 0.53) at
    2.44, both with network R² below 0 (−2.9e24 and −0.75).  The loose bound of 3 stays where the
    network backs the closed form: there a misfit above the noise is more often the noise estimate's
    error than the closed form's.

    The spread ratio labels what no misfit from one start can: a closed form that fits the noisy data
    from a start tuned to them and blows up from starts within their noise.  On ODEBench 55 (a Lorenz
    system, 1 % noise) the degree-2 answer has noise ratio 1.9 and start ratio 2.0, and R² −0.01 from
    the true start; on 58 (a periodic Rössler system) noise ratio 1.8, start ratio 4.1, R² 0.56: both
    blow up from most starts within the noise (spread ratio ``inf``).  Right closed forms measured on
    the same runs: 0.26 to 4.2 (ODEBench 27, 31, 37, 38, 40, 41, 52, 57, 63), 0.89 on a periodic Lorenz
    system (54).  The bound is loose because a right closed form can be sensitive to its start without
    being wrong: the Allee growth's exact cubic (ODEBench 8, start near its unstable equilibrium, whose
    noise-sized changes move the take-off in time) has 53.  A chaotic system's right closed form,
    whose trajectories from nearby starts decorrelate but stay on the attractor, should stay below
    the bound (misfits of the attractor's size, about 1/noise times the noise; not measured here), so
    this measure alone does not label it.

    The network R² is reported but does not label by itself: it measures the closed form against a
    network that carries the data's noise.  On the same Lotka–Volterra runs, the correct form
    reproduces the networks (U / V) with R² 0.994 / 0.921 at noise 0.005 and 0.896 / 0.804,
    0.876 / 0.920, 0.827 / 0.879 at noise 0.05: a fixed bound of 0.9 would call every one of the
    correct results at 5 % noise inadequate.  Below ``MIN_NETWORK_R2`` the summary says the closed form
    departs from its network while the data do not tell them apart (structure of the network the data
    do not support); with a ratio above 2, the unknowns below it are named as the ones at fault.
    """

    network_r2: dict
    data_ratio: float
    start_ratio: float = math.nan
    noise_ratio: float = math.nan
    ude_noise_ratio: float = math.nan
    spread_ratio: float = math.nan

    @property
    def ratio(self) -> float:
        """One number for comparing closed forms, on the data ratio's scale (inadequate above
        ``MAX_DATA_RATIO``): the largest of ``data_ratio``, ``start_ratio × MAX_DATA_RATIO /
        MAX_START_RATIO``, ``noise_ratio × MAX_DATA_RATIO /`` :attr:`noise_bound` and ``spread_ratio ×
        MAX_DATA_RATIO / MAX_SPREAD_RATIO`` (those not measured ignored)."""
        out = self.data_ratio
        bounds = ((self.start_ratio, MAX_START_RATIO), (self.noise_ratio, self.noise_bound))
        for value, bound in (*bounds, (self.spread_ratio, MAX_SPREAD_RATIO)):
            if not math.isnan(value):
                out = max(out, value * MAX_DATA_RATIO / bound)
        return out

    @property
    def noise_bound(self) -> float:
        """The bound on :attr:`noise_ratio`: ``MAX_UNBACKED_NOISE_RATIO`` where some unknown's network R²
        is below ``CONTRADICTS_NETWORK`` (the network does not back the closed form), else ``MAX_NOISE_RATIO``."""
        if any(v < CONTRADICTS_NETWORK for v in self.network_r2.values()):
            return MAX_UNBACKED_NOISE_RATIO
        return MAX_NOISE_RATIO

    @property
    def adequate(self) -> bool:
        """True unless the closed-form model misfits the data by more than ``MAX_DATA_RATIO`` × the UDE's
        from its own initial states, or by more than ``MAX_START_RATIO`` × from the UDE's or the data's, or
        by more than :attr:`noise_bound` × the data's noise level, or by more than ``MAX_SPREAD_RATIO`` ×
        that noise level from starts within it of its own (:attr:`ratio` above ``MAX_DATA_RATIO``)."""
        return bool(self.ratio <= MAX_DATA_RATIO)

    def departing(self) -> list[str]:
        """Unknowns whose closed form reproduces its network with R² below ``MIN_NETWORK_R2``."""
        return [name for name, v in self.network_r2.items() if not v >= MIN_NETWORK_R2]

    def problems(self) -> list[str]:
        """What makes the closed form inadequate, one sentence with its numbers each (empty: adequate)."""
        if self.adequate:
            return []
        r2 = ", ".join(f"{name} {v:.3f}" for name, v in self.network_r2.items())
        out = []
        if not self.data_ratio <= MAX_DATA_RATIO:
            out.append(
                f"the closed-form model misfits the data {self.data_ratio:.3g}× as much as the trained UDE "
                f"(scaled RMSE; inadequate above {MAX_DATA_RATIO})"
            )
        if not self.start_ratio <= MAX_START_RATIO and not math.isnan(self.start_ratio):
            out.append(
                f"started from the trained UDE's initial states or the data's, the closed-form model misfits the data "
                f"{self.start_ratio:.3g}× as much as the UDE (its own refit starts give {self.data_ratio:.3g}×; "
                f"inadequate above {MAX_START_RATIO}): it fits only from starts of its own"
            )
        if not self.noise_ratio <= self.noise_bound and not math.isnan(self.noise_ratio):
            text = (
                f"the closed-form model misfits the data {self.noise_ratio:.3g}× their noise level estimated "
                f"from the observations (inadequate above {self.noise_bound}"
                + (
                    ""
                    if self.noise_bound == MAX_NOISE_RATIO
                    else f", as a closed form contradicts its network: R² below {CONTRADICTS_NETWORK:g}"
                )
                + ")"
            )
            if self.ude_noise_ratio > MAX_NOISE_RATIO:
                text += f"; the trained UDE misfits them {self.ude_noise_ratio:.3g}× too: training did not fit the data"
            out.append(text)
        if self.spread_ratio > MAX_SPREAD_RATIO:
            out.append(
                f"started within the data's noise level of its own initial states, the closed-form model misfits the "
                f"data {self.spread_ratio:.3g}× that noise level (median of {SPREAD_DRAWS} starts; inadequate above "
                f"{MAX_SPREAD_RATIO:.0f}): from starts the data cannot tell from its own it blows up or leaves the "
                "data's range"
            )
        out.append(f"closed form vs trained network R²: {r2}")
        return out

    def inadequate_unknowns(self) -> list[str]:
        """The unknowns at fault when inadequate: those departing from their networks (R² below
        ``MIN_NETWORK_R2``), else all of them (the data ratio judges them together); empty when adequate."""
        if self.adequate:
            return []
        return self.departing() or list(self.network_r2)

    def as_dict(self) -> dict:
        """JSON-ready view (non-finite numbers as None)."""
        return {
            "adequate": self.adequate,
            "network_r2": {k: _finite(v) for k, v in self.network_r2.items()},
            "data_ratio": _finite(self.data_ratio),
            "start_ratio": _finite(self.start_ratio),
            "noise_ratio": _finite(self.noise_ratio),
            "ude_noise_ratio": _finite(self.ude_noise_ratio),
            "spread_ratio": _finite(self.spread_ratio),
            "inadequate_unknowns": self.inadequate_unknowns(),
            "problems": self.problems(),
            "rule": (
                f"inadequate if the data RMSE ratio to the UDE > {MAX_DATA_RATIO} from the closed form's own "
                f"initial states, or > {MAX_START_RATIO} from the UDE's or the data's, or if it misfits the data "
                f"> {MAX_NOISE_RATIO}× their estimated noise level (> {MAX_UNBACKED_NOISE_RATIO}× where a closed "
                f"form's network R² < {CONTRADICTS_NETWORK:g}), or > {MAX_SPREAD_RATIO:.0f}× it from starts within it "
                "of its own (network R² is reported otherwise)"
            ),
        }

    def summary(self) -> str:
        """One line for printing."""
        r2 = ", ".join(f"{k} {v:.3f}" for k, v in self.network_r2.items())
        label = "adequate" if self.adequate else f"INADEQUATE ({', '.join(self.inadequate_unknowns())})"
        text = (
            f"{label}: data RMSE {self.data_ratio:.3g}× the UDE's"
            + ("" if math.isnan(self.start_ratio) else f", {self.start_ratio:.3g}× from the UDE's or the data's starts")
            + f" (inadequate above {MAX_DATA_RATIO}"
            + ("" if math.isnan(self.start_ratio) else f", {MAX_START_RATIO} from theirs")
            + ")"
            + ("" if math.isnan(self.noise_ratio) else f"; {self.noise_ratio:.3g}× the data's noise level")
            + ("" if math.isnan(self.spread_ratio) else f", {self.spread_ratio:.3g}× from starts within it")
            + f"; closed form vs network R² {r2}"
        )
        departing = self.departing()
        if departing and self.adequate:
            text += (
                f"; {', '.join(departing)} departs from its network (R² < {MIN_NETWORK_R2}) but the data do not "
                "tell them apart"
            )
        return text


# a rival fits "as well" when it raises the scaled data SSE by less than this quantile of chi-square times the
# noise variance: the 95 % likelihood-ratio bound (one degree of freedom: 3.84)
IDENTIFIABILITY_LEVEL = 0.95


@dataclass(frozen=True)
class Rival:
    """Something that differs materially from the discovered model and is compared with it on the data.

    Attributes
    ----------
    kind : str
        ``"hidden start"`` (a never-observed state's initial values moved, everything else refit),
        ``"zero"`` (the unknown set to 0, everything else refit) or ``"alternative"`` (another scored
        candidate with no more terms, whose closed form differs materially on the fitted states).
    subject : str
        The hidden state or the unknown it concerns.
    change : str
        What differs, in words (e.g. ``"S(0) × 2 in every trajectory"``).
    delta : float
        Increase of the scaled squared data misfit over the discovered model's, in units of the noise
        variance (``ΔSSE / σ²``); ``inf`` if the rival cannot be simulated.
    threshold : float
        The chi-square quantile (``IDENTIFIABILITY_LEVEL``, degrees of freedom = numbers removed or fixed)
        it must exceed to be ruled out by the data.
    expressions : dict name -> str
        The rival's closed form of each unknown concerned, after its refit.
    """

    kind: str
    subject: str
    change: str
    delta: float
    threshold: float
    expressions: dict = field(default_factory=dict)

    @property
    def fits_as_well(self) -> bool:
        """True when the data do not rule the rival out (``delta`` below ``threshold``)."""
        return bool(self.delta < self.threshold)

    def sentence(self) -> str:
        """One line: the rival, its refit forms and its ΔSSE/σ² against the bound."""
        forms = ", ".join(f"{k} = {v}" for k, v in self.expressions.items())
        verdict = "fits the data as well" if self.fits_as_well else "is ruled out"
        forms = f" ({forms})" if forms else ""
        return f"{self.change}{forms} {verdict}: ΔSSE/σ² = {self.delta:.3g} (bound {self.threshold:.3g})"

    def as_dict(self) -> dict:
        """JSON-ready view."""
        return {
            "kind": self.kind,
            "subject": self.subject,
            "change": self.change,
            "delta_sse_over_noise": _finite(self.delta),
            "threshold": self.threshold,
            "fits_as_well": self.fits_as_well,
            "expressions": dict(self.expressions),
        }


@dataclass(frozen=True)
class Identifiability:
    """Whether the data identify unknowns that depend on states no trajectory observes.

    Built by :func:`~udesci.discovery.identifiability.check_identifiability` only when some unknown
    takes a never-observed (hidden) state as an argument; otherwise ``Discovery.identifiability``
    is None.

    Attributes
    ----------
    hidden : tuple of str
        The states no trajectory observes.
    unknowns : tuple of str
        The unknowns that take one of them as an argument.
    noise_variance : float
        ``σ²``: the discovered model's scaled squared data misfit over (observations − fitted numbers).
    rivals : tuple of Rival
        What the discovered model was compared with.
    zero : tuple of str
        Unknowns concerned whose discovered closed form is 0 (never an identified result: the data
        then show no effect through which the hidden state could be estimated).
    unassessed : str
        Why no rival could be compared (empty when they were); a result that could not be assessed
        is not identified.

    Notes
    -----
    ``identified`` is False when the discovered form of such an unknown is 0, or when a rival fits
    the observed data within the 95 % likelihood-ratio bound (``ΔSSE/σ²`` below the chi-square
    quantile): moving the hidden state's initial values by a factor 2 or ½, or by ± half its RMS
    along the fitted trajectories (the rest refit); setting the unknown to 0; or another scored
    candidate with no more terms whose closed form differs by more than 10 % RMS on the fitted states.
    Each of these is a materially different account of the same observations, so the data do not
    decide between them.
    """

    hidden: tuple
    unknowns: tuple
    noise_variance: float
    rivals: tuple = ()
    zero: tuple = ()
    unassessed: str = ""

    @property
    def identified(self) -> bool:
        """False when a rival fits as well, a concerned unknown came out as 0, or nothing could be compared."""
        return not self.unassessed and not self.zero and not any(r.fits_as_well for r in self.rivals)

    def problems(self) -> list[str]:
        """Why the data do not identify the unknowns, one sentence each (empty when identified)."""
        out = [
            f"{name} = 0: the data show no effect of {name}, so the hidden state{'s' if len(self.hidden) > 1 else ''} "
            f"{', '.join(self.hidden)} it depends on {'are' if len(self.hidden) > 1 else 'is'} not determined by them"
            for name in self.zero
        ]
        out += [r.sentence() for r in self.rivals if r.fits_as_well]
        if self.unassessed:
            out.append(f"not assessed: {self.unassessed}")
        return out

    def summary(self) -> str:
        """One line for printing."""
        hidden = ", ".join(self.hidden)
        if self.identified:
            worst = min((r for r in self.rivals), key=lambda r: r.delta / r.threshold, default=None)
            text = f"identified: {', '.join(self.unknowns)} of never-observed {hidden}; every rival is ruled out"
            if worst is not None:
                text += f" (closest: {worst.change}, ΔSSE/σ² = {worst.delta:.3g} > {worst.threshold:.3g})"
            return text
        return f"NOT IDENTIFIED ({', '.join(self.unknowns)}): {hidden} never observed; " + "; ".join(self.problems())

    def as_dict(self) -> dict:
        """JSON-ready view."""
        return {
            "identified": self.identified,
            "hidden_states": list(self.hidden),
            "unknowns": list(self.unknowns),
            "noise_variance": _finite(self.noise_variance),
            "zero": list(self.zero),
            "unassessed": self.unassessed,
            "rivals": [r.as_dict() for r in self.rivals],
            "problems": self.problems(),
            "rule": (
                f"not identified if an unknown of a never-observed state is 0, or a materially different rival "
                f"fits the observed data within the {IDENTIFIABILITY_LEVEL:.0%} likelihood-ratio bound"
            ),
        }


@dataclass
class Discovery(Predictable):
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
    initial_states : ndarray of shape (K, n_states) or None
        Initial state of each trajectory for the closed-form model (refit, else fitted).
    data : Dataset or None
        The data discovery scored on.
    adequacy : Adequacy or None
        How well the closed form reproduces the networks and the data relative to the UDE; also
        in ``metrics["adequacy"]``, ``print(found)``, the JSON and the reports.
    identifiability : Identifiability or None
        Set when an unknown depends on a state no trajectory observes: whether the data identify it
        (``identified``; a result that is not is labelled so in ``print(found)``, the JSON and the
        reports, and fails ``udesci run``).  None when every argument of every unknown is observed.
    escalation : list of LibraryTry
        With the automatic library (``discover(library=None)``): each library tried, in order,
        with its data ratio and label (one entry when the first was adequate).
    seconds : dict stage -> float
        Wall-clock seconds of each discovery stage (prepare, propose, rank by derivatives, score on
        segments, rescore on trajectories, inclusion, joint choice, final refit, assemble); not
        exported, so that exports of the same run are identical.
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
    initial_states: np.ndarray | None = field(default=None, repr=False)
    data: object = field(default=None, repr=False)
    adequacy: Adequacy | None = field(default=None, repr=False)
    seconds: dict = field(default_factory=dict, repr=False)
    escalation: list = field(default_factory=list, repr=False)
    identifiability: Identifiability | None = field(default=None, repr=False)

    def summary(self, digits: int = 4, substitute: bool = True) -> str:
        """Readable account: equations, candidates and uncertainty.

        Parameters
        ----------
        digits : int, default 4
            Significant digits of the numbers shown.
        substitute : bool, default True
            Show the parameters' fitted values in the equations (else their symbols,
            with the values listed below).
        """
        from ..display import format_number, rounded, substituted_equations

        lines = []
        if self.adequacy is not None and not self.adequacy.adequate:
            lines.append(f"WARNING: the closed form of {', '.join(self.adequacy.inadequate_unknowns())} is INADEQUATE:")
            lines += [f"  {p}" for p in self.adequacy.problems()]
        if self.identifiability is not None and not self.identifiability.identified:
            ident = self.identifiability
            hidden = ", ".join(ident.hidden)
            lines.append(f"WARNING: the data do NOT IDENTIFY {', '.join(ident.unknowns)} (never-observed {hidden}):")
            lines += [f"  {p}" for p in ident.problems()]
        lines.append("Discovered equations:")
        t = self.model.time
        for s, rhs in substituted_equations(self.model, digits, substitute).items():
            lines.append(f"  d{s}/d{t} = {rhs}")
        if not substitute and self.model.params:
            values = ", ".join(f"{k} = {format_number(v, digits)}" for k, v in self.model.parameter_values().items())
            lines.append(f"  with {values}")
        for name, det in self.details.items():
            lines.append(f"{name}({', '.join(map(str, det.args))}) = {rounded(det.expression, digits)}")
            inc = ", ".join(f"{k}: {v:.2f}" for k, v in sorted(det.inclusion.items(), key=lambda kv: -kv[1]) if v)
            if inc:
                lines.append(f"  inclusion probability: {inc}")
                if det.inclusion_basis:
                    lines.append(f"    ({det.inclusion_basis})")
            for term, (lo, hi) in det.intervals.items():
                lines.append(
                    f"  coefficient of {term}: 95% interval [{format_number(lo, digits)}, {format_number(hi, digits)}]"
                )
            if det.intervals and det.interval_basis:
                lines.append(f"    ({det.interval_basis})")
            for term, K in det.constants.items():
                lines.append(f"  half-saturation constant K of {term}: {format_number(K, digits)} (fitted)")
            scored = sorted((c for c in det.candidates if math.isfinite(c.score)), key=lambda c: c.score)[:4]
            for c in scored:
                mark = "→" if c is det.chosen else " "
                lines.append(
                    f"   {mark} candidate {rounded(c.expression, digits)}  {self.selection.criterion}={c.score:.1f}"
                )
            for c in [c for c in det.candidates if c.problem][:3]:
                lines.append(f"   ✗ candidate {rounded(c.expression, digits)}  not scored: {c.problem}")
        if self.adequacy is not None:
            lines.append(f"adequacy: {self.adequacy.summary()}")
        if self.identifiability is not None:
            lines.append(f"identifiability: {self.identifiability.summary()}")
        for k, v in self.metrics.items():
            if k == "adequacy":
                continue
            lines.append(f"{k}: {format_number(v, digits)}" if isinstance(v, float) else f"{k}: {v}")
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)

    __str__ = summary

    def __repr__(self) -> str:
        from ..display import discovery_repr

        return discovery_repr(self)

    def _repr_html_(self) -> str:
        from ..display import discovery_html

        return discovery_html(self)

    def plot(self, fitted: FitResult | None = None, **options):
        """Each unknown's network against its closed form (:func:`udesci.plots.plot_unknowns`).

        Parameters
        ----------
        fitted : FitResult, optional
            The network model discovery started from; without it only the closed form is drawn,
            along the discovered model's trajectories.
        **options
            Passed on: ``data``, ``unknowns``, ``trajectories``, ...

        Returns
        -------
        matplotlib.figure.Figure
            Per unknown: along the trajectories over time, and against its arguments.

        Raises
        ------
        ConfigError
            Without data, or if ``fitted`` lacks one of the unknowns.
        """
        from ..plots import plot_unknowns

        return plot_unknowns(self, fitted, **options)

    def export_unknowns(self) -> dict:
        """JSON-ready description of each unknown: expression, library, the closed form's network R²,
        inclusion probabilities and 95 % intervals with what they are (``inclusion_basis``,
        ``interval_basis``, ``bootstrap_replicates``), candidates."""
        out = {}
        for name, det in self.details.items():
            if self.adequacy is not None and name in self.adequacy.network_r2:
                fit_ = {"network_r2": _finite(self.adequacy.network_r2[name])}
            else:
                fit_ = {}
            out[name] = {
                **fit_,
                "expression": det.expression,
                "library": [str(t) for t in det.terms],
                "inclusion": {k: float(v) for k, v in det.inclusion.items()},
                "inclusion_basis": det.inclusion_basis,
                "intervals": {k: [float(a), float(b)] for k, (a, b) in det.intervals.items()},
                "interval_basis": det.interval_basis,
                "bootstrap_replicates": det.replicates,
                "constants": {k: float(v) for k, v in det.constants.items()},
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
        """Write the closed-form model, unknowns and uncertainty as JSON (see :func:`udesci.export.save_json`).

        Parameters
        ----------
        path : str or path-like
            Destination file (overwritten).

        Raises
        ------
        ConfigError
            As :func:`udesci.export.save_json`.
        """
        from ..export import save_json

        extra = {
            "selection": {
                "criterion": self.selection.criterion,
                "thresholds": self.selection.thresholds,
                "exhaustive": self.selection.exhaustive,
            },
            "metrics": {k: _finite(v) if isinstance(v, float) else v for k, v in self.metrics.items()},
        }
        if self.adequacy is not None:
            extra["adequacy"] = self.adequacy.as_dict()
        if self.identifiability is not None:
            extra["identifiability"] = self.identifiability.as_dict()
        if self.escalation:
            extra["library_escalation"] = [t.as_dict() for t in self.escalation]
        if self.notes:
            extra["notes"] = list(self.notes)
        save_json(self.model, path, unknowns=self.export_unknowns(), extra=extra)

    def to_latex(self, digits: int | None = 4, substitute: bool = True) -> str:
        """LaTeX ``align*`` block of the equations and discovered unknowns (see :func:`udesci.to_latex`)."""
        from ..export import to_latex

        return to_latex(self.model, unknowns=self._declared(), digits=digits, substitute=substitute)

    def to_python(self, path) -> None:
        """Write a standalone numpy/scipy module simulating the closed-form model.

        Parameters
        ----------
        path : str or path-like
            Destination ``.py`` file (overwritten).

        Raises
        ------
        ConfigError
            As :func:`udesci.export.to_python`.
        """
        from ..export import to_python

        to_python(self.model, path, unknowns=self._declared())

    def _declared(self) -> dict:
        # the closed-form model has no unknowns left: pass each one's declared arguments, so that
        # U(x, y) = c*x is written with both arguments, not just those its expression uses
        return {n: {"expression": d.expression, "args": [str(a) for a in d.args]} for n, d in self.details.items()}


def _finite(v):
    """``float(v)`` if finite, else None (JSON has no inf)."""
    return float(v) if v is not None and math.isfinite(v) else None
