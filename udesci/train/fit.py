"""``fit``: train a hybrid model on observed trajectories, and its result ``FitResult``."""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data import Dataset
from ..errors import ConfigError, describe
from ..evaluate import Predictable, torch_threads
from ..model import HybridModel
from .batch import PaddedBatch, set_network_scaling
from .loop import TrainingLoop
from .stages import FullTrajectory, Shooting, TrainingContext, WarmStart, check_int


@dataclass
class FitResult(Predictable):
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
    config : dict
        The options of the run (stages as dicts, seed, dtype, the given initial values per state).
    data : Dataset or None
        The training data.
    batch : PaddedBatch or None
        The training data as padded tensors with their smoothed values and derivatives,
        reused by :func:`~udesci.discover` when it scores on the same data.
    """

    model: HybridModel
    history: list
    initial_states: np.ndarray
    status: str = "ok"
    message: str = ""
    seconds: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    data: Dataset | None = None
    batch: PaddedBatch | None = field(default=None, repr=False)

    def loss(self, stage: str | None = None) -> np.ndarray:
        """Loss history of one stage, or of all stages in order.

        Parameters
        ----------
        stage : str, optional
            ``"warm_start"``, ``"shooting"`` or ``"full"``; default all.

        Returns
        -------
        ndarray of shape (iterations,)
        """
        return np.array([h["loss"] for h in self.history if stage is None or h["stage"] == stage])

    def plot(self, **options):
        """Data against the fitted model, one axis per state, every trajectory (:func:`udesci.plots.plot_fit`).

        Parameters
        ----------
        **options
            Passed on: ``data``, ``truth``, ``trajectories``, ``found``, ``held_out``, ``names``, ...

        Returns
        -------
        matplotlib.figure.Figure

        Raises
        ------
        ConfigError
            Without data (a result built by hand may hold none), or for invalid options.
        """
        from ..plots import plot_fit

        return plot_fit(self, **options)

    def __repr__(self) -> str:
        final = self.history[-1]["loss"] if self.history else float("nan")
        return (
            f"FitResult(status={self.status!r}, {len(self.history)} iterations, final loss {final:.4g}, "
            f"stages={list(self.seconds)}, model={len(self.model.states)} states/{len(self.model.unknowns)} unknowns)"
        )

    def _repr_html_(self) -> str:
        from ..display import fit_html

        return fit_html(self)


def check_checkpoint_matches(state: dict, model: HybridModel, extras: dict, path: str) -> None:
    """Refuse a checkpoint written for another model or other data (before anything is restored).

    Raises
    ------
    ConfigError
        If the stored weights, learnable parameters or trainable extras (initial states, segment
        starts) do not have the names and shapes this model and these data give them.
    """
    try:
        stored, extra_stored = state["module"], state["extras"]
        state["history"], state["done"], state["stage"]  # noqa: B018 (the keys a resume reads)
    except (KeyError, TypeError):
        raise ConfigError(f"resume: {path!r} is not a complete udesci checkpoint.") from None
    mine = model.module.state_dict()
    if set(stored) != set(mine):
        extra, missing = sorted(set(stored) - set(mine)), sorted(set(mine) - set(stored))
        raise ConfigError(
            f"resume: {path!r} was written for another model (tensors {extra[:4]} are not in this model, "
            f"{missing[:4]} are missing); resume with the model that wrote it."
        )
    _check_shapes(stored, mine, f"resume: {path!r} was written for another model", "")
    if set(extra_stored) != set(extras):
        raise ConfigError(
            f"resume: {path!r} was written with other training stages (it holds {sorted(extra_stored)}, this run "
            f"trains {sorted(extras)}); resume with the same options."
        )
    _check_shapes(
        extra_stored,
        extras,
        f"resume: {path!r} was written for other data",
        " (trajectories, segments or states differ)",
    )


def _check_shapes(stored: dict, mine: dict, head: str, tail: str) -> None:
    """Raise ``head: <name> has shape A there and B here<tail>.`` for the first tensor whose shape differs."""
    for name, value in mine.items():
        if tuple(stored[name].shape) != tuple(value.shape):
            raise ConfigError(
                f"{head}: {name} has shape {tuple(stored[name].shape)} there and {tuple(value.shape)} here{tail}."
            )


def fit(
    model: HybridModel,
    data: Dataset,
    *,
    warm_start: WarmStart | None = WarmStart(),  # noqa: B008 (frozen dataclass: immutable)
    shooting: Shooting | None = Shooting(),  # noqa: B008 (frozen dataclass: immutable)
    full: FullTrajectory | None = None,
    seed: int | None = 0,
    dtype: torch.dtype = torch.float64,
    threads: int | None = None,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    resume: str | os.PathLike | None = None,
    init: str = "seed",
    initial: dict | None = None,
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
        Seeds torch's generator at the start and (with ``init="seed"``) draws the
        default networks' initial weights from it, so the same data, model
        specification and seed give bit-identical results in any process, however
        the model was built.  ``None`` leaves the generator and weights alone.
    init : {"seed", "keep"}, default "seed"
        ``"seed"``: re-initialise every default MLP from ``seed`` (user-supplied
        networks are kept as given).  ``"keep"``: train from the model's current
        weights (e.g. to continue training a fitted model).
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
    initial : dict state -> float or sequence of float, optional
        Starting values of the trained initial states, by state (name or SymPy symbol): one
        number for every trajectory, or one per trajectory.  Most useful for a state the data
        never observe (a hidden state): without a value it starts in every trajectory at 1 if
        its SymPy symbol is ``nonnegative``/``positive``, -1 if ``nonpositive``/``negative``, else 0
        (:func:`~udesci.train.batch.domain_start`; the middle of a domain ``bounds=`` closes on both
        sides), and ``result.message`` says so.  Where
        a known conservation law or the experiment fixes a hidden state's start (an epidemic's
        susceptible fraction near 1), give it here.  The values are trained from there.
        Each value must lie in its state's declared domain (:attr:`HybridModel.state_bounds`).

    Returns
    -------
    FitResult

    Raises
    ------
    DataError
        If the data do not match the model (state names, inputs).
    ConfigError
        For invalid options (``initial`` naming no state, or with non-finite values, values
        outside the state's declared domain or the wrong number of values), all stages switched off,
        a checkpoint path in a missing
        folder, or an unreadable checkpoint or one written for another model, other
        data or other stages.

    Notes
    -----
    The stages are :class:`~udesci.train.stages.Stage` objects run in order on one
    :class:`~udesci.train.stages.TrainingContext`.

    States with a declared domain (SymPy ``positive``/``nonnegative``/... symbols, or the model's
    ``bounds=``) keep their initial states inside it: the starting values taken from the data
    are moved inside (:meth:`~udesci.train.PaddedBatch.inside`), and the trained initial states and
    segment starts are projected back inside before every evaluation of the shooting and
    full-trajectory objectives and after each stage (projected gradient descent), so
    ``result.initial_states`` lies in the domain.
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
    check_int(checkpoint_every, "checkpoint_every", 1)
    if init not in ("seed", "keep"):
        raise ConfigError(f"init: expected 'seed' or 'keep', received {describe(init)}.")
    if seed is not None:
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= int(seed) < 2**63:
            raise ConfigError(f"seed: expected an int in [0, 2**63) or None, received {describe(seed)}.")
        seed = int(seed)
    if threads is not None:
        check_int(threads, "threads", 1)
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
    if checkpoint is not None:
        folder = Path(os.fspath(checkpoint)).parent
        if not folder.is_dir():
            raise ConfigError(
                f"checkpoint: folder {os.fspath(folder)!r} does not exist; create it or choose another path "
                f"(received {os.fspath(checkpoint)!r})."
            )
        if Path(os.fspath(checkpoint)).is_dir():
            raise ConfigError(f"checkpoint: {os.fspath(checkpoint)!r} is a folder; expected a file path.")

    with torch_threads(threads, len(model.states)):
        if seed is not None:
            torch.manual_seed(seed)
        model = model.copy()
        if seed is not None and init == "seed":
            model.module.initialize_networks()
            torch.manual_seed(seed)  # training draws from the same stream whether or not weights were drawn
        model.module.to(dtype)
        batch = PaddedBatch(model, data, dtype, warm_start.smoothing if warm_start else None)
        set_network_scaling(model, batch)
        stages = [s for s in (warm_start, shooting, full) if s is not None]
        given = initial_values(initial, model, len(batch.lengths), dtype)
        y0 = torch.nn.Parameter(batch.initial_guess(given).clone())
        ctx = TrainingContext(model, batch, y0, {"y0": y0})
        ctx.notes += hidden_start_notes(model, batch, given)
        for stage in stages:
            stage.setup(ctx)
        if resume_state is not None:
            check_checkpoint_matches(resume_state, model, ctx.extras, os.fspath(resume))
        ctx.loop = TrainingLoop(model, ctx.extras, progress, checkpoint, checkpoint_every, resume_state)
        for stage in stages:
            stage.run(ctx)
        loop = ctx.loop
        message = loop.message or "training finished"
        if ctx.notes:
            message += "; " + "; ".join(ctx.notes)
        config = {
            "warm_start": asdict(warm_start) if warm_start else None,
            "shooting": asdict(shooting) if shooting else None,
            "full": asdict(full) if full else None,
            "seed": seed,
            "init": init,
            "dtype": str(dtype),
            "initial": None
            if given is None
            else {
                name: given[:, i].tolist()
                for i, name in enumerate(model.state_names)
                if bool(given[:, i].isfinite().any())
            },
        }
        return FitResult(
            model, loop.history, y0.detach().numpy().copy(), loop.status, message, loop.seconds, config, data, batch
        )


def initial_values(initial, model: HybridModel, n_trajectories: int, dtype: torch.dtype) -> torch.Tensor | None:
    """``fit``'s ``initial`` as a ``(K, n)`` tensor, NaN where no value was given (None without any).

    Raises
    ------
    ConfigError
        If ``initial`` is not a dict, names something that is not a state, or holds values that
        are not finite numbers (one, or one per trajectory) or lie outside the state's declared
        domain (:attr:`HybridModel.state_bounds`).
    """
    if initial is None:
        return None
    if not isinstance(initial, dict):
        raise ConfigError(f"initial: expected a dict state -> value(s), received {describe(initial)}.")
    names = model.state_names
    out = torch.full((n_trajectories, len(names)), math.nan, dtype=dtype)
    for key, value in initial.items():
        name = str(key)
        if name not in names:
            raise ConfigError(f"initial: {name!r} is not a state of the model (states {names}).")
        try:
            arr = np.asarray(value, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise ConfigError(f"initial[{name!r}]: expected a number or a sequence of numbers, received "
                              f"{describe(value)}.") from None  # fmt: skip
        if arr.size not in (1, n_trajectories) or not np.isfinite(arr).all():
            raise ConfigError(
                f"initial[{name!r}]: expected one finite number or {n_trajectories} (one per trajectory), "
                f"received {value!r}."
            )
        domain = model.state_bounds[name]
        if not bool(domain.contains(torch.as_tensor(arr)).all()):
            raise ConfigError(
                f"initial[{name!r}]: expected values in {name}'s declared domain {domain.interval()}, "
                f"received {value!r}."
            )
        out[:, names.index(name)] = torch.as_tensor(np.broadcast_to(arr, (n_trajectories,)).copy(), dtype=dtype)
    return out


def hidden_start_notes(model: HybridModel, batch: PaddedBatch, given: torch.Tensor | None) -> list[str]:
    """A note per state no trajectory observes: where its trained initial state started."""
    notes = []
    for i in batch.never_observed:
        name = model.state_names[i]
        if given is not None and bool(torch.isfinite(given[:, i]).all()):
            notes.append(f"{name} is never observed: its initial state starts at the given initial values")
        else:
            notes.append(
                f"{name} is never observed: its initial state starts at {float(batch.unobserved_start[i]):g} in "
                f"every trajectory (pass initial={{{name!r}: value}} to fit for a better start) and is trained"
            )
    return notes
