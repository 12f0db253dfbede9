"""The padded batch: observed trajectories as padded tensors, their smoothed values and derivatives."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from sympy.core.function import AppliedUndef

from ..data import Dataset, InputInterpolator
from ..errors import DataError, describe
from ..model import Bounds, HybridModel
from ..networks import MLP


def smooth_series(t: np.ndarray, y: np.ndarray, lam: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Smooth one noisy series and estimate its derivative.

    Uses a cubic smoothing spline (penalty ``lam``, or generalised
    cross-validation when ``None``) on the non-NaN samples.  With fewer than
    five samples it falls back to linear interpolation and finite differences.

    Parameters
    ----------
    t : ndarray of shape (T,)
    y : ndarray of shape (T,), NaN where missing

    Returns
    -------
    values, derivatives : ndarray of shape (T,) each (NaN if fewer than two samples)
    """
    from scipy.interpolate import make_smoothing_spline

    ok = ~np.isnan(y)
    if ok.sum() < 2:
        return np.full_like(t, np.nan), np.full_like(t, np.nan)
    if ok.sum() < 5:
        vals = np.interp(t, t[ok], y[ok])
        return vals, np.gradient(vals, t)
    spline = make_smoothing_spline(t[ok], y[ok], lam=lam)
    return spline(t), spline.derivative()(t)


def domain_start(bounds: Bounds) -> float:
    """Starting value of a state no data observe: a unit step into its declared domain.

    Parameters
    ----------
    bounds : Bounds
        The state's domain (:attr:`HybridModel.state_bounds`: its SymPy assumptions and ``bounds=``).

    Returns
    -------
    float
        The middle of a domain bounded on both sides; one unit inside a domain bounded on one side
        (1 for a ``nonnegative=True`` or ``positive=True`` state, -1 for a ``nonpositive=True`` or
        ``negative=True`` one); 0 for an unbounded state.  Not the bound itself: a sign-constrained
        state's 0 is its domain's boundary and often a fixed point (an epidemic's susceptibles, a
        population), where an unknown that multiplies the state has no gradient to learn from.
        1 is a unit guess: the data cannot give the scale of a state they never see.
    """
    lower, upper = bounds.lower, bounds.upper
    if math.isfinite(lower) and math.isfinite(upper):
        return 0.5 * (lower + upper)
    if math.isfinite(lower):
        return lower + 1.0
    if math.isfinite(upper):
        return upper - 1.0
    return 0.0


class PaddedBatch:
    """Observed trajectories laid out as padded tensors for batched training and scoring.

    Built once by :func:`~udesci.fit` (kept as ``FitResult.batch``) and reused by
    :func:`~udesci.discover`.

    Attributes (K trajectories, T = longest trajectory, n = model states):
    ``knots`` (K, T), ``y`` (K, T, n), ``mask`` (K, T, n) float, ``valid``
    (K, T) bool, ``smooth``/``dsmooth`` (K, T, n) (NaN for unobserved states),
    ``scale`` (n,), ``interp`` (input interpolator or None), ``lengths`` (K,),
    ``observed`` (indices of observed states), ``smoothing`` (the spline penalty, None = GCV),
    ``unobserved_start`` (n,) (where a trajectory lacks a state, its start: see :meth:`initial_guess`),
    ``bounds`` (the model's :attr:`~udesci.HybridModel.state_bounds`, one :class:`~udesci.model.Bounds`
    per state: see :meth:`inside`).
    """

    def __init__(self, model: HybridModel, data: Dataset, dtype: torch.dtype, lam: float | None = None):
        if not isinstance(data, Dataset):
            raise DataError(f"data: expected a udesci.Dataset, received {describe(data)}.")
        names = data.state_names or model.state_names
        if data.state_names is None and len(names) != data.trajectories[0].y.shape[1]:
            raise DataError(
                f"data: has {data.trajectories[0].y.shape[1]} columns but no state names, and the model has "
                f"{len(names)} states {names}; pass states=[...] to Dataset."
            )
        position = {s: i for i, s in enumerate(model.state_names)}
        unknown = [s for s in names if s not in position]
        if unknown:
            raise DataError(f"data states: {unknown} are not states of the model {model.state_names}.")
        missing_inputs = [u for u in model.input_names if u not in data.input_names]
        if missing_inputs:
            raise DataError(
                f"data inputs: the model needs inputs {model.input_names}, the dataset lacks {missing_inputs} "
                f"(it has {data.input_names}); pass inputs=[...] to Dataset.from_frame."
            )
        n = len(model.states)
        obs_idx = [position[s] for s in names]
        self.observed = sorted(set(obs_idx))
        K = data.n_trajectories
        T = max(tr.t.size for tr in data.trajectories)
        knots = np.zeros((K, T))
        y = np.zeros((K, T, n))
        mask = np.zeros((K, T, n))
        valid = np.zeros((K, T), dtype=bool)
        smooth = np.full((K, T, n), np.nan)
        dsmooth = np.full((K, T, n), np.nan)
        for k, tr in enumerate(data.trajectories):
            m = tr.t.size
            knots[k, :m], knots[k, m:] = tr.t, tr.t[-1]
            valid[k, :m] = True
            for col, i in enumerate(obs_idx):
                yk = tr.y[:, col]
                ok = ~np.isnan(yk)
                y[k, :m, i] = np.where(ok, yk, 0.0)
                mask[k, :m, i] = ok
                smooth[k, :m, i], dsmooth[k, :m, i] = smooth_series(tr.t, yk, lam)
                smooth[k, m:, i], dsmooth[k, m:, i] = smooth[k, m - 1, i], dsmooth[k, m - 1, i]
        scale = np.ones(n)
        for i in self.observed:
            vals = y[..., i][mask[..., i] > 0]
            s = float(np.std(vals)) if vals.size > 1 else 0.0
            scale[i] = s if s > 1e-12 else max(float(np.mean(np.abs(vals))) if vals.size else 1.0, 1e-12)
        as_t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
        self.knots, self.y, self.mask = as_t(knots), as_t(y), as_t(mask)
        self.valid = torch.as_tensor(valid)
        self.smooth, self.dsmooth, self.scale = as_t(smooth), as_t(dsmooth), as_t(scale)
        self.lengths = [tr.t.size for tr in data.trajectories]
        self.smoothing = lam
        self.n = n
        self.interp = None
        if model.inputs:
            cols = [data.input_names.index(u) for u in model.input_names]
            self.interp = InputInterpolator(
                [tr.u_t for tr in data.trajectories],
                [tr.u[:, cols] for tr in data.trajectories],
                data.interpolation,
                dtype,
            )
        self.data = data
        # where a trajectory lacks a state: the mean smoothed first value of the trajectories that have it,
        # and for a state no trajectory observes, a unit step into its declared domain: see initial_guess
        self.bounds = list(model.state_bounds.values())
        first = smooth[:, 0, :]
        seen = np.isfinite(first)
        self.unobserved_start = as_t(
            [float(first[seen[:, i], i].mean()) if seen[:, i].any() else domain_start(self.bounds[i]) for i in range(n)]
        )

    def noise_rms(self) -> float:
        """The data's noise level estimated from the observations alone, in scaled units: the pooled RMS of
        each observation's departure from the straight line through its two observed neighbours (in
        time, per trajectory and state), divided by that departure's noise factor ``sqrt(1 + w² + (1 - w)²)``
        (``w`` the interpolation weight; ``sqrt(1.5)`` on an even grid).

        The estimate is unbiased for independent noise on a trajectory whose curvature is small over
        two sampling intervals, and larger than the noise where it is not (sharp or coarsely sampled
        dynamics, kinks of the inputs): a check against it errs towards passing.

        Returns
        -------
        float
            ``sqrt(Σ e²/f² / N)`` over every state's interior observations; NaN with none (fewer than
            three observations per trajectory and state).
        """
        total, count = 0.0, 0
        t_all, y_all, m_all = self.knots.numpy(), self.y.numpy(), self.mask.numpy() > 0
        scale = self.scale.numpy()
        for k, m in enumerate(self.lengths):
            for i in self.observed:
                ok = m_all[k, :m, i]
                t, y = t_all[k, :m][ok], y_all[k, :m, i][ok] / scale[i]
                if t.size < 3:
                    continue
                w = (t[2:] - t[1:-1]) / np.maximum(t[2:] - t[:-2], 1e-300)
                e = y[1:-1] - (w * y[:-2] + (1 - w) * y[2:])
                total += float(np.sum(e**2 / (1 + w**2 + (1 - w) ** 2)))
                count += e.size
        return math.sqrt(total / count) if count else math.nan

    @property
    def bounded(self) -> bool:
        """True if some state has a declared domain (SymPy assumptions or ``bounds=``)."""
        return any(b.declared for b in self.bounds)

    def inside(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` moved inside each state's declared domain (:meth:`~udesci.model.Bounds.clip`).

        Parameters
        ----------
        values : torch.Tensor of shape (..., n)
            States in the last dimension.

        Returns
        -------
        torch.Tensor of shape (..., n)
            Values inside their domain unchanged; others moved onto a closed side, or
            ``OPEN_MARGIN`` (1e-6) × the state's scale inside an open one (``positive=True``).
        """
        if not self.bounded:
            return values
        columns = [b.clip(values[..., j], float(self.scale[j])) for j, b in enumerate(self.bounds)]
        return torch.stack(columns, dim=-1)

    @property
    def fully_observed(self) -> bool:
        """True if every state has at least two observations in every trajectory."""
        return bool(torch.isfinite(self.smooth[:, 0, :]).all())

    @property
    def never_observed(self) -> list[int]:
        """Indices of the states with no observation in any trajectory (hidden states)."""
        return [i for i in range(self.n) if not bool(self.mask[..., i].any())]

    def with_estimates(self, values: torch.Tensor, derivatives: torch.Tensor) -> PaddedBatch:
        """A copy whose never-observed states have ``values`` and ``derivatives`` as their smoothed series.

        Derivative matching then compares a candidate with the trained model's estimate of a hidden
        state's trajectory (its values, and the trained field's derivative there) instead of skipping
        every point.  Observations, masks and scales are those of this batch: data misfits are unchanged.

        Parameters
        ----------
        values, derivatives : torch.Tensor of shape (K, T, n)
            The estimate on this batch's knots (only the never-observed states' columns are used).

        Returns
        -------
        PaddedBatch
        """
        hidden = self.never_observed
        out = copy.copy(self)
        out.smooth, out.dsmooth = self.smooth.clone(), self.dsmooth.clone()
        out.smooth[..., hidden] = values[..., hidden].to(self.smooth.dtype)
        out.dsmooth[..., hidden] = derivatives[..., hidden].to(self.smooth.dtype)
        return out

    def on_sides(self, values: torch.Tensor) -> torch.Tensor:
        """Which entries of ``values`` (shape ``(..., n)``) sit on a side of their state's declared domain
        (:meth:`~udesci.model.Bounds.at_side`): where :meth:`inside` puts a value from outside, and
        often a fixed point (no infected, no prey).  Boolean, shaped like ``values``."""
        out = torch.zeros(values.shape, dtype=torch.bool)
        for j, b in enumerate(self.bounds):
            if b.declared:
                out[..., j] = b.at_side(values[..., j], float(self.scale[j]))
        return out

    def data_starts(self, fallback: torch.Tensor) -> torch.Tensor:
        """Initial states from the data: each trajectory's smoothed first value of each state, ``fallback``
        where a trajectory has too few observations of it, moved inside the declared domains (:meth:`inside`).

        Parameters
        ----------
        fallback : torch.Tensor of shape (K, n)
            E.g. the fitted initial states.

        Returns
        -------
        torch.Tensor of shape (K, n)
        """
        first = self.smooth[:, 0]
        return self.inside(torch.where(torch.isfinite(first), first, fallback))

    def initial_guess(self, given: torch.Tensor | None = None) -> torch.Tensor:
        """Starting values of the trained initial states.

        Parameters
        ----------
        given : torch.Tensor of shape (K, n), optional
            The user's starting values, NaN where none was given (:func:`~udesci.fit`'s ``initial``).

        Returns
        -------
        torch.Tensor of shape (K, n)
            ``given`` where it is finite; else the smoothed first observation; where a trajectory
            has fewer than two observations of a state, the mean smoothed first value of the
            trajectories that have them; for a state no trajectory observes, :func:`domain_start`
            (1 for a SymPy ``nonnegative``/``positive`` state, -1 for a ``nonpositive``/``negative``
            one, the middle of a domain bounded on both sides, else 0).  The hidden state's level is
            trained from there.  Estimates from the data are moved inside each state's declared
            domain (:meth:`inside`): a smoothed first value of -0.02 of a nonnegative state starts at 0.
        """
        first = self.smooth[:, 0, :]
        out = self.inside(torch.where(torch.isfinite(first), first, self.unobserved_start.expand_as(first)))
        if given is not None:
            out = torch.where(torch.isfinite(given), given.to(out.dtype), out)
        return out


def set_network_scaling(model: HybridModel, prep: PaddedBatch) -> None:
    """Set each default MLP's input normalisation and output scale from the data."""
    field_ = model.module
    valid = prep.valid
    for spec in field_.unknown_specs:
        net = field_.nets[spec.name]
        if not isinstance(net, MLP):
            continue
        locs, scales = [], []
        for j in range(len(spec.args)):
            values = []  # the j-th argument of every application
            for a in {call[j]: None for call in spec.calls}:
                if a in field_.state_index:
                    v = prep.smooth[..., field_.state_index[a]][valid]
                    values.append(v[torch.isfinite(v)])
                elif a in field_.input_index:
                    values.append(prep.interp.coef[..., 3, field_.input_index[a]].reshape(-1))
                else:
                    values.append(prep.knots[valid])
            v = torch.cat(values)
            locs.append(float(v.mean()) if v.numel() else 0.0)
            scales.append(float(v.std()) if v.numel() > 1 else 1.0)
        outs = []
        for s, rhs in model.equations.items():
            if any(type(app).__name__ == spec.name for app in rhs.atoms(AppliedUndef)):
                d = prep.dsmooth[..., field_.state_index[s]][valid]
                d = d[torch.isfinite(d)]
                if d.numel() > 1:
                    outs.append(float(d.std()))
        net.set_scaling(locs, scales, max(outs) if outs else 1.0)
