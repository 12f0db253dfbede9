"""Training hybrid models on observed trajectories.

``fit`` runs up to three stages, each optional:

1. :class:`WarmStart` — derivative matching (collocation): smooth each observed
   state with a smoothing spline, estimate its derivative, and fit networks and
   learnable parameters so that the vector field matches it.  No ODE solve.
2. :class:`Shooting` — multiple shooting: every trajectory is cut into short
   segments whose initial states are trainable; all segments of all
   trajectories are solved together in one batched solve, with a continuity
   penalty between consecutive segments.
3. :class:`FullTrajectory` — classic single shooting over whole trajectories
   (batched across trajectories), by default with the adjoint method.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .data import Dataset, InputInterpolator
from .errors import ConfigError, DataError, describe
from .model import HybridModel
from .networks import MLP
from .solve import Solver, integrate


class TrainingWarning(UserWarning):
    """Training stopped early (non-finite loss or interrupt); best weights were kept."""


def _check_int(value, name, minimum=0):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name}: expected an int >= {minimum}, received {value!r}.")


def _check_pos(value, name):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 or not math.isfinite(value):
        raise ConfigError(f"{name}: expected a positive finite number, received {value!r}.")


@dataclass(frozen=True)
class WarmStart:
    """Derivative-matching warm start (no ODE solve).

    Parameters
    ----------
    iterations : int, default 600
        Adam iterations.
    lr : float, default 1e-2
        Adam learning rate.
    smoothing : float or None, default None
        Smoothing-spline penalty; ``None`` chooses it per state by generalised
        cross-validation.
    lbfgs : int, default 0
        L-BFGS iterations after Adam.

    Raises
    ------
    ConfigError
        For non-positive values.
    """

    iterations: int = 600
    lr: float = 1e-2
    smoothing: float | None = None
    lbfgs: int = 0

    def __post_init__(self):
        _check_int(self.iterations, "WarmStart iterations")
        _check_int(self.lbfgs, "WarmStart lbfgs")
        _check_pos(self.lr, "WarmStart lr")
        if self.smoothing is not None:
            _check_pos(self.smoothing, "WarmStart smoothing")


@dataclass(frozen=True)
class Shooting:
    """Multiple shooting with all segments in one batched solve.

    Parameters
    ----------
    segment_length : int, default 5
        Observation intervals per segment.
    continuity : float, default 10.0
        Weight of the squared mismatch between a segment's end and the next
        segment's trainable start (in units of each state's data scale).
    iterations : int, default 800
        Adam iterations.
    lr : float, default 5e-3
        Adam learning rate.
    lbfgs : int, default 0
        L-BFGS iterations after Adam.
    solver : Solver, default ``Solver("rk4", substeps=1)``
        Solver for the segments; set ``adjoint=True`` for adjoint gradients.

    Raises
    ------
    ConfigError
        For invalid values.
    """

    segment_length: int = 5
    continuity: float = 10.0
    iterations: int = 800
    lr: float = 5e-3
    lbfgs: int = 0
    solver: Solver = field(default_factory=lambda: Solver("rk4", substeps=1))

    def __post_init__(self):
        _check_int(self.segment_length, "Shooting segment_length", 1)
        _check_pos(self.continuity, "Shooting continuity")
        _check_int(self.iterations, "Shooting iterations")
        _check_int(self.lbfgs, "Shooting lbfgs")
        _check_pos(self.lr, "Shooting lr")
        if not isinstance(self.solver, Solver):
            raise ConfigError(f"Shooting solver: expected a udesci.Solver, received {describe(self.solver)}.")


@dataclass(frozen=True)
class FullTrajectory:
    """Single shooting over whole trajectories (all trajectories in one solve).

    Parameters
    ----------
    iterations : int, default 200
        Adam iterations.
    lr : float, default 1e-3
        Adam learning rate.
    lbfgs : int, default 0
        L-BFGS iterations after Adam.
    solver : Solver, default ``Solver("dopri5", adjoint=True)``
        The adjoint method by default; ``adjoint=False`` backpropagates
        through the solver instead.
    learn_initial : bool, default True
        Train each trajectory's initial state (else it stays at its start value).

    Raises
    ------
    ConfigError
        For invalid values.
    """

    iterations: int = 200
    lr: float = 1e-3
    lbfgs: int = 0
    solver: Solver = field(default_factory=lambda: Solver("dopri5", rtol=1e-6, atol=1e-6, adjoint=True))
    learn_initial: bool = True

    def __post_init__(self):
        _check_int(self.iterations, "FullTrajectory iterations")
        _check_int(self.lbfgs, "FullTrajectory lbfgs")
        _check_pos(self.lr, "FullTrajectory lr")
        if not isinstance(self.solver, Solver):
            raise ConfigError(f"FullTrajectory solver: expected a udesci.Solver, received {describe(self.solver)}.")


# --------------------------------------------------------------------------------------------------
# data preparation


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


class Prepared:
    """Data laid out as padded tensors for batched training (internal).

    Attributes (K trajectories, T = longest trajectory, n = model states):
    ``knots`` (K, T), ``y`` (K, T, n), ``mask`` (K, T, n) float, ``valid``
    (K, T) bool, ``smooth``/``dsmooth`` (K, T, n) (NaN for unobserved states),
    ``scale`` (n,), ``interp`` (input interpolator or None), ``lengths`` (K,).
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
        unknown = [s for s in names if s not in model.state_names]
        if unknown:
            raise DataError(f"data states: {unknown} are not states of the model {model.state_names}.")
        missing_inputs = [u for u in model.input_names if u not in data.input_names]
        if missing_inputs:
            raise DataError(
                f"data inputs: the model needs inputs {model.input_names}, the dataset lacks {missing_inputs} "
                f"(it has {data.input_names}); pass inputs=[...] to Dataset.from_frame."
            )
        n = len(model.states)
        obs_idx = [model.state_names.index(s) for s in names]
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

    @property
    def fully_observed(self) -> bool:
        """True if every state has at least two observations in every trajectory."""
        return bool(torch.isfinite(self.smooth[:, 0, :]).all())

    def initial_guess(self) -> torch.Tensor:
        """Initial states (K, n) from the smoothed data; 0 for unobserved states."""
        return torch.nan_to_num(self.smooth[:, 0, :], nan=0.0)


def set_network_scaling(model: HybridModel, prep: Prepared) -> None:
    """Set each default MLP's input normalisation and output scale from the data."""
    field_ = model.module
    valid = prep.valid
    for spec in field_.unknown_specs:
        net = field_.nets[spec.name]
        if not isinstance(net, MLP):
            continue
        locs, scales = [], []
        for a in spec.args:
            if a in field_.state_index:
                i = field_.state_index[a]
                v = prep.smooth[..., i][valid]
                v = v[torch.isfinite(v)]
            elif a in field_.input_index:
                v = prep.interp.coef[..., 3, field_.input_index[a]].reshape(-1)
            else:
                v = prep.knots[valid]
            locs.append(float(v.mean()) if v.numel() else 0.0)
            scales.append(float(v.std()) if v.numel() > 1 else 1.0)
        outs = []
        for s, rhs in model.equations.items():
            if any(type(app).__name__ == spec.name for app in rhs.atoms(sp_applied())):
                d = prep.dsmooth[..., field_.state_index[s]][valid]
                d = d[torch.isfinite(d)]
                if d.numel() > 1:
                    outs.append(float(d.std()))
        net.set_scaling(locs, scales, max(outs) if outs else 1.0)


def sp_applied():
    from sympy.core.function import AppliedUndef

    return AppliedUndef


# --------------------------------------------------------------------------------------------------
# results and the optimisation loop


@dataclass
class FitResult:
    """Outcome of :func:`fit`.

    Attributes
    ----------
    model : HybridModel
        Trained copy of the model (the model passed in is left unchanged).
    history : list of dict
        One entry per iteration: ``{"stage", "iteration", "loss"}``.
    initial_states : ndarray of shape (K, n_states)
        Fitted initial state of each trajectory.
    status : str
        ``"ok"``, ``"nonfinite"`` (stopped on a NaN/inf loss) or ``"interrupted"``.
    message : str
        Human-readable account of how training ended.
    seconds : dict
        Wall-clock seconds per stage.
    """

    model: HybridModel
    history: list
    initial_states: np.ndarray
    status: str = "ok"
    message: str = ""
    seconds: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    data: Dataset | None = None

    def loss(self, stage: str | None = None) -> np.ndarray:
        """Loss history (of one stage, or all), shape (iterations,)."""
        return np.array([h["loss"] for h in self.history if stage is None or h["stage"] == stage])

    def predict(self, t=None, trajectory: int = 0) -> np.ndarray:
        """Simulate the fitted model from a trajectory's fitted initial state.

        Parameters
        ----------
        t : array of shape (T,), optional
            Output times starting at the trajectory's first time (default: its
            observation times).
        trajectory : int
            Which training trajectory.

        Returns
        -------
        ndarray of shape (T, n_states)
        """
        from .solve import simulate

        tr = self.data.trajectories[trajectory]
        t = tr.t if t is None else np.asarray(t, dtype=float)
        inputs = None
        if self.model.inputs:
            cols = [self.data.input_names.index(u) for u in self.model.input_names]
            inputs = tr.u[:, cols]
            return simulate(
                self.model,
                self.initial_states[trajectory],
                t,
                inputs=inputs,
                input_times=tr.u_t,
                interpolation=self.data.interpolation,
            )
        return simulate(self.model, self.initial_states[trajectory], t)


@contextmanager
def torch_threads(threads: int | None, n_states: int):
    """Set torch's intra-op thread count for a run and restore it on exit.

    ``threads=None`` means 1 for models with fewer than 256 states (their per-step work is
    too small to share: extra threads only add synchronisation, and on a busy machine they
    can be many times slower) and torch's current setting otherwise.
    """
    old = torch.get_num_threads()
    if threads is None and n_states < 256:
        threads = 1
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def solver_gave_up(exc: BaseException) -> bool:
    """True if ``exc`` is torchdiffeq giving up (step-size underflow or too many steps)."""
    msg = str(exc)
    return isinstance(exc, AssertionError) and ("underflow in dt" in msg or "max_num_steps" in msg)


class Progress:
    """Minimal progress display on stderr (a bar on terminals, periodic lines otherwise)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.last = 0.0

    def update(self, stage: str, it: int, total: int, loss: float, start: float, force: bool = False):
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        frac = it / max(total, 1)
        bar = "#" * int(20 * frac) + "-" * (20 - int(20 * frac))
        line = f"{stage:>15} [{bar}] {it}/{total} loss={loss:.4g} {now - start:.1f}s"
        if self.tty:
            sys.stderr.write("\r" + line + ("\n" if force else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


class _Loop:
    """Runs stages, keeps history and best weights, checkpoints and resumes."""

    def __init__(self, model, extras: dict, progress: bool, checkpoint, every: int, resume_state):
        self.model = model
        self.extras = extras  # name -> tensor (trainable non-module tensors, e.g. segment starts)
        self.history: list = []
        self.progress = Progress(progress)
        self.checkpoint = os.fspath(checkpoint) if checkpoint else None
        self.every = every
        self.resume = resume_state
        self.done: list[str] = []
        self.status, self.message = "ok", ""
        self.seconds: dict = {}
        if resume_state is not None:
            self.history = [dict(h) for h in resume_state["history"]]
            self.done = list(resume_state["done"])
            self.restore({"module": resume_state["module"], "extras": resume_state["extras"]})
            torch.set_rng_state(resume_state["rng"])

    def resuming(self, stage: str) -> bool:
        """True if the checkpoint being resumed stopped inside ``stage``."""
        return self.resume is not None and self.resume["stage"].split(":")[0] == stage

    def state(self, stage, it, opt, best):
        return {
            "format": "udesci-checkpoint-1",
            "stage": stage,
            "iteration": it,
            "module": self.model.module.state_dict(),
            "extras": {k: v.detach().clone() for k, v in self.extras.items()},
            "optimizer": opt.state_dict() if opt is not None else {},
            "rng": torch.get_rng_state(),
            "history": [dict(h) for h in self.history],
            "done": list(self.done),
            "best_loss": best[0],
            "best": best[1],
        }

    def save(self, stage, it, opt, best):
        if not self.checkpoint:
            return
        tmp = self.checkpoint + ".tmp"
        torch.save(self.state(stage, it, opt, best), tmp)
        os.replace(tmp, self.checkpoint)

    def snapshot(self):
        return {
            "module": {k: v.detach().clone() for k, v in self.model.module.state_dict().items()},
            "extras": {k: v.detach().clone() for k, v in self.extras.items()},
        }

    def restore(self, snap):
        self.model.module.load_state_dict(snap["module"])
        with torch.no_grad():
            for k, v in snap["extras"].items():
                self.extras[k].copy_(v)

    def run(
        self, stage: str, params: list, loss_fn: Callable[[], torch.Tensor], iterations: int, lr: float, lbfgs: int = 0
    ) -> bool:
        """Adam for ``iterations`` then L-BFGS for ``lbfgs`` steps on ``loss_fn``; False if skipped."""
        if self.status != "ok" or stage in self.done:
            return False
        params = [p for p in params if p.requires_grad]
        start = time.perf_counter()
        best = (math.inf, self.snapshot())
        phases = [("adam", iterations), ("lbfgs", lbfgs)]
        first_it = 0
        resume_phase = None
        if self.resuming(stage):
            resume_phase = self.resume["stage"].split(":")[1]
            first_it = self.resume["iteration"]
            best = (self.resume["best_loss"], self.resume["best"])
        total = iterations + lbfgs
        it_global = 0
        phase, opt, next_it = None, None, 0
        try:
            for phase, count in phases:
                opt, next_it = None, 0
                if count == 0:
                    continue
                if phase == "adam":
                    opt = torch.optim.Adam(params, lr=lr)
                else:
                    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=1, history_size=20, line_search_fn="strong_wolfe")
                it0 = 0
                if resume_phase is not None:
                    if resume_phase != phase:
                        it_global += count
                        continue
                    opt.load_state_dict(self.resume["optimizer"])
                    it0 = first_it
                    resume_phase = None
                    self.resume = None
                next_it = it0  # first iteration of this phase not completed yet
                last_loss = [math.nan]

                def closure(opt=opt, last_loss=last_loss):
                    opt.zero_grad(set_to_none=True)
                    try:
                        loss = loss_fn()
                    except AssertionError as exc:
                        if not solver_gave_up(exc):
                            raise
                        # the solver gave up at these weights: an infinite loss makes L-BFGS's line
                        # search step back, and stops Adam with the best weights kept
                        loss = torch.tensor(math.inf)
                    if torch.isfinite(loss):
                        loss.backward()
                    last_loss[0] = float(loss.detach())
                    return loss

                for it in range(it0, count):
                    # `value` is the loss of the weights *before* this iteration's update: snapshot those
                    # weights, so the best weights kept are the ones that produced the best loss (not the
                    # ones one update later, which may be the very update that made the loss non-finite)
                    last_loss[0] = math.nan
                    before = None
                    if phase == "adam":
                        closure()
                        value = last_loss[0]
                        if math.isfinite(value):
                            if value < best[0]:
                                before = self.snapshot()
                            opt.step()
                    else:
                        before = self.snapshot()
                        value = float(opt.step(closure).detach())  # L-BFGS returns the loss at its start point
                    self.history.append({"stage": stage, "iteration": it_global + it, "loss": value})
                    next_it = it + 1
                    if not math.isfinite(value):
                        self.restore(best[1])
                        self.status = "nonfinite"
                        self.message = (
                            f"stage {stage!r}: the loss became {value} at iteration {it_global + it}; training "
                            f"stopped and the best weights (loss {best[0]:.4g}) were kept. Try a smaller learning "
                            "rate, a stiffer-capable solver, or shorter shooting segments."
                        )
                        warnings.warn(self.message, TrainingWarning, stacklevel=3)
                        return True
                    converged = phase == "lbfgs" and abs(best[0] - value) <= 1e-10 * abs(value) + 1e-300
                    if value < best[0]:
                        best = (value, before)
                    self.progress.update(stage, it_global + it + 1, total, value, start)
                    if self.checkpoint and (it + 1) % self.every == 0:
                        self.save(f"{stage}:{phase}", it + 1, opt, best)
                    if converged:  # L-BFGS made no progress: further steps would repeat the same point
                        break
                it_global += count
        except KeyboardInterrupt:
            # checkpoint the *current* weights and optimiser state (not the best weights restored below) at
            # the first iteration not completed, so that resuming continues exactly where training stopped
            saved = bool(self.checkpoint) and opt is not None
            if saved:
                self.save(f"{stage}:{phase}", next_it, opt, best)
            self.restore(best[1])
            self.status = "interrupted"
            self.message = f"stage {stage!r} interrupted; the best weights (loss {best[0]:.4g}) were kept."
            if saved:
                self.message += f" Resume with fit(..., resume={self.checkpoint!r})."
            warnings.warn(self.message, TrainingWarning, stacklevel=3)
            return True
        self.restore(best[1])
        self.done.append(stage)
        self.seconds[stage] = time.perf_counter() - start
        self.progress.update(stage, total, total, best[0], start, force=True)
        if self.checkpoint:
            self.save(f"{stage}:done", 0, None, best)
        return True


# --------------------------------------------------------------------------------------------------
# stage losses


def _collocation_loss(model: HybridModel, prep: Prepared) -> Callable[[], torch.Tensor]:
    field_ = model.module
    K, T, n = prep.y.shape
    keep = prep.valid.clone()
    for k, m in enumerate(prep.lengths):  # spline derivatives are least reliable at the ends
        keep[k, 0] = keep[k, m - 1] = False
    t = prep.knots[keep]
    ys = prep.smooth[keep]
    dys = prep.dsmooth[keep]
    index = torch.arange(K).unsqueeze(-1).expand(K, T)[keep]
    w = 1.0 / prep.scale**2

    def loss():
        with field_.bound_inputs(prep.interp, index):
            r = field_(t, ys) - dys
        return (r.pow(2) * w).sum(-1).mean() / n

    return loss


def _segments(prep: Prepared, length: int):
    """Cut trajectories into segments of ``length`` intervals: knots (S, L+1), y, mask,
    trajectory index (S,), first-row index of each segment, and the junction pairs."""
    rows, idx, links = [], [], []
    for k, m in enumerate(prep.lengths):
        starts = list(range(0, m - 1, length))
        for j, s in enumerate(starts):
            cols = [min(s + c, m - 1) for c in range(length + 1)]
            rows.append((k, cols, s + length >= m))
            if j > 0:
                links.append(len(rows) - 2)
            idx.append(k)
    S = len(rows)
    sel_k = torch.tensor([r[0] for r in rows])
    sel_c = torch.tensor([r[1] for r in rows])
    knots = prep.knots[sel_k.unsqueeze(-1), sel_c]
    y = prep.y[sel_k.unsqueeze(-1), sel_c]
    mask = prep.mask[sel_k.unsqueeze(-1), sel_c].clone()
    # padded columns repeat the last point: count it once
    for r, (_, cols, _) in enumerate(rows):
        for c in range(1, len(cols)):
            if cols[c] == cols[c - 1]:
                mask[r, c] = 0.0
    # a point shared by two segments (end of one, start of next) is counted in both; that is
    # intentional: it ties both segments to the data there
    return knots, y, mask, sel_k, sel_c[:, 0], torch.tensor(links, dtype=torch.long), S


def shooting_objective(
    field_, prep: Prepared, seg, starts: torch.Tensor, continuity: float, solver: Solver
) -> Callable[[], torch.Tensor]:
    """Multiple-shooting loss: scaled data misfit of all segments (one batched solve) plus
    ``continuity`` times the mean squared gap between each segment's end and the next start."""
    knots, ys, mask, sel_k, _, links, _ = seg
    scale = prep.scale

    def loss():
        pred = integrate(field_, starts, knots, solver, inputs=(prep.interp, sel_k))
        value = _masked_mse(pred, ys, mask, scale)
        if links.numel():
            gap = (pred[links, -1] - starts[links + 1]) / scale
            value = value + continuity * gap.pow(2).mean()
        return value

    return loss


def segment_starts(field_, prep: Prepared, seg, y0: torch.Tensor | None = None) -> torch.Tensor:
    """Initial guess (S, n) of segment starts: the smoothed data, and for states with no
    observation there, a simulation of the current model from ``y0`` (default: data guess)."""
    _, _, _, sel_k, first, _, _ = seg
    guess = prep.smooth[sel_k, first]
    if not torch.isfinite(guess).all():
        K = len(prep.lengths)
        start = prep.initial_guess() if y0 is None else y0
        with torch.no_grad():
            sim = integrate(field_, start, prep.knots, Solver("rk4", substeps=4), inputs=(prep.interp, torch.arange(K)))
        guess = torch.where(torch.isfinite(guess), guess, sim[sel_k, first])
        guess = torch.nan_to_num(guess, nan=0.0, posinf=0.0, neginf=0.0)
    return guess.detach().clone()


def _masked_mse(pred, y, mask, scale):
    r = (pred - y) / scale
    return (r.pow(2) * mask).sum() / mask.sum().clamp(min=1.0)


# --------------------------------------------------------------------------------------------------


def fit(
    model: HybridModel,
    data: Dataset,
    *,
    warm_start: WarmStart | None = WarmStart(),
    shooting: Shooting | None = Shooting(),
    full: FullTrajectory | None = None,
    seed: int | None = 0,
    dtype: torch.dtype = torch.float64,
    threads: int | None = None,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    resume: str | os.PathLike | None = None,
) -> FitResult:
    """Train a hybrid model's networks and learnable parameters on data.

    The default is the fast path: derivative-matching warm start, then
    multiple shooting with every segment in one batched solve.  Add
    ``full=FullTrajectory()`` for a final full-trajectory stage with the
    adjoint method; pass ``None`` to switch any stage off.

    Parameters
    ----------
    model : HybridModel
        Model to train; it is copied, never modified.
    data : Dataset
        Observed trajectories (irregular grids, NaN for missing values, any
        subset of the model's states, measured inputs).
    warm_start : WarmStart or None
        Skipped automatically (with a note in ``result.message``) if a state is
        never observed in some trajectory.
    shooting : Shooting or None
    full : FullTrajectory or None
    seed : int or None, default 0
        Seeds torch's generator at the start, so equal inputs give equal runs.
    dtype : torch.dtype, default torch.float64
    threads : int, optional
        torch intra-op threads during training (restored afterwards).  Default:
        1 for models with fewer than 256 states (small UDEs are dominated by
        per-operation overhead, and extra threads only add contention),
        torch's own setting otherwise.
    progress : bool, default True
        Show progress on stderr.
    checkpoint : path, optional
        Save the training state atomically every ``checkpoint_every``
        iterations, at the end of each stage and on Ctrl-C.
    checkpoint_every : int, default 100
    resume : path, optional
        Continue from a checkpoint written by an earlier call with the same
        model, data and options; the result equals an uninterrupted run.

    Returns
    -------
    FitResult

    Raises
    ------
    DataError
        If the data do not match the model (state names, inputs).
    ConfigError
        For invalid options, all stages switched off, or an unreadable checkpoint.
    """
    if not isinstance(model, HybridModel):
        raise ConfigError(f"model: expected a udesci.HybridModel, received {describe(model)}.")
    for name, value, cls in (
        ("warm_start", warm_start, WarmStart),
        ("shooting", shooting, Shooting),
        ("full", full, FullTrajectory),
    ):
        if value is not None and not isinstance(value, cls):
            raise ConfigError(f"{name}: expected udesci.{cls.__name__}(...) or None, received {describe(value)}.")
    if warm_start is None and shooting is None and full is None:
        raise ConfigError("fit: every stage is switched off (warm_start, shooting and full are None); enable one.")
    if dtype not in (torch.float32, torch.float64):
        raise ConfigError(f"dtype: expected torch.float32 or torch.float64, received {dtype!r}.")
    _check_int(checkpoint_every, "checkpoint_every", 1)
    if threads is not None:
        _check_int(threads, "threads", 1)
    resume_state = None
    if resume is not None:
        try:
            resume_state = torch.load(os.fspath(resume), weights_only=True)
        except FileNotFoundError:
            raise ConfigError(f"resume: checkpoint file {os.fspath(resume)!r} does not exist.") from None
        except Exception as exc:  # pickle errors are many types
            raise ConfigError(f"resume: {os.fspath(resume)!r} is not a readable udesci checkpoint ({exc}).") from None
        if not isinstance(resume_state, dict) or resume_state.get("format") != "udesci-checkpoint-1":
            raise ConfigError(f"resume: {os.fspath(resume)!r} is not a udesci checkpoint.")

    with torch_threads(threads, len(model.states)):
        if seed is not None:
            torch.manual_seed(seed)
        model = model.copy()
        model.module.to(dtype)
        prep = Prepared(model, data, dtype, warm_start.smoothing if warm_start else None)
        set_network_scaling(model, prep)
        field_ = model.module
        notes = []

        K = len(prep.lengths)
        y0 = torch.nn.Parameter(prep.initial_guess().clone())
        starts = None
        if shooting is not None:
            seg = _segments(prep, shooting.segment_length)
            starts = torch.nn.Parameter(torch.zeros(seg[6], prep.n, dtype=dtype))
        extras = {"y0": y0} if starts is None else {"y0": y0, "starts": starts}
        loop = _Loop(model, extras, progress, checkpoint, checkpoint_every, resume_state)
        trainable = list(field_.parameters())

        if warm_start is not None:
            if prep.fully_observed:
                loop.run(
                    "warm_start",
                    trainable,
                    _collocation_loss(model, prep),
                    warm_start.iterations,
                    warm_start.lr,
                    warm_start.lbfgs,
                )
            else:
                notes.append("warm start skipped: some states are not observed in every trajectory")

        if shooting is not None and loop.status == "ok":
            sel_k = seg[3]
            if "shooting" not in loop.done and not loop.resuming("shooting"):
                with torch.no_grad():
                    starts.copy_(segment_starts(field_, prep, seg))
            shooting_loss = shooting_objective(field_, prep, seg, starts, shooting.continuity, shooting.solver)
            ran = loop.run(
                "shooting", trainable + [starts], shooting_loss, shooting.iterations, shooting.lr, shooting.lbfgs
            )
            # a checkpoint written at the end of shooting holds y0 from before this copy: redo it when
            # resuming from there (but not once the full stage has trained y0)
            from_checkpoint = "shooting" in loop.done and not loop.resuming("full") and "full" not in loop.done
            if (ran or from_checkpoint) and loop.status == "ok":
                with torch.no_grad():
                    firsts = [int((sel_k == k).nonzero()[0]) for k in range(K)]
                    y0.copy_(starts[firsts])

        if full is not None and loop.status == "ok":
            index = torch.arange(K)
            y0.requires_grad_(full.learn_initial)

            def full_loss():
                pred = integrate(field_, y0, prep.knots, full.solver, inputs=(prep.interp, index))
                return _masked_mse(pred, prep.y, prep.mask, prep.scale)

            loop.run("full", trainable + [y0], full_loss, full.iterations, full.lr, full.lbfgs)
        message = loop.message or "training finished"
        if notes:
            message += "; " + "; ".join(notes)
        config = {
            "warm_start": asdict(warm_start) if warm_start else None,
            "shooting": asdict(shooting) if shooting else None,
            "full": asdict(full) if full else None,
            "seed": seed,
            "dtype": str(dtype),
        }
        return FitResult(
            model, loop.history, y0.detach().numpy().copy(), loop.status, message, loop.seconds, config, data
        )
