"""Evaluating results: simulate-or-NaN, RMSE, strict-JSON copies and the thread rule.

These are the small services every stage after training shares (the runner, the
reports, the pipelines, the studies); each exists here once.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError, DataError, describe

# the exceptions a diverging or stiff model raises from a solve (torchdiffeq's step-size underflow and
# step budget are AssertionErrors; overflow in a closed form can surface as OverflowError)
SOLVE_FAILURES = (AssertionError, RuntimeError, OverflowError)


# ----------------------------------------------------------------------------------------------
# threads
# ----------------------------------------------------------------------------------------------
@contextmanager
def torch_threads(threads: int | None, n_states: int):
    """Set torch's intra-op thread count for a run and restore it on exit.

    Parameters
    ----------
    threads : int or None
        ``None`` means 1 for models with fewer than 256 states (their per-step work is too
        small to share: extra threads only add synchronisation, and on a busy machine they
        can be many times slower) and torch's current setting otherwise.
    n_states : int
        States of the model the run trains or simulates.
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


def keep_threads(func):
    """Decorator: restore torch's intra-op thread count after ``func`` returns or raises.

    Pipelines that pick a thread count for their whole run (with :func:`torch_threads`
    inside, or by design) give the caller its own setting back.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        try:
            return func(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper


# ----------------------------------------------------------------------------------------------
# simulation that reports failure as NaN
# ----------------------------------------------------------------------------------------------
def simulate_or_nan(model, y0, t, *, data=None, trajectory: int = 0, solver=None, finite_only: bool = True):
    """Simulate ``model`` (with one trajectory's measured inputs); NaN where it cannot be simulated.

    A wrong closed form can blow up or stiffen; evaluation then reports NaN (and an RMSE of
    ``inf``) instead of stopping the run.

    Parameters
    ----------
    model : HybridModel
    y0 : array of shape (n_states,)
    t : array of shape (T,)
        Strictly increasing output times.
    data : Dataset, optional
        Supplies the input series of ``trajectory`` (all of it, also outside the
        observation window); required when the model has inputs.
    trajectory : int, default 0
    solver : Solver, optional
        Default ``Solver("dopri5", rtol=1e-6, atol=1e-6)`` (plots and RMSEs need no more).
    finite_only : bool, default True
        Replace non-finite entries of a finished solve by NaN as well.

    Returns
    -------
    ndarray of shape (T, n_states)
        NaN everywhere if the solver fails.

    Raises
    ------
    DataError
        If the model has inputs and ``data`` is missing or lacks one of them.
    """
    from .solve import Solver, simulate

    kwargs = {"solver": solver if solver is not None else Solver("dopri5", rtol=1e-6, atol=1e-6)}
    if model.inputs:
        if data is None:
            raise DataError(f"data: the model needs input series {model.input_names}; pass the Dataset with them.")
        missing = [u for u in model.input_names if u not in data.input_names]
        if missing:
            raise DataError(f"inputs: the data lack {missing} (they have {data.input_names}).")
        tr = data.trajectories[trajectory]
        cols = [data.input_names.index(u) for u in model.input_names]
        kwargs.update(inputs=tr.u[:, cols], input_times=tr.u_t, interpolation=data.interpolation)
    try:
        out = simulate(model, np.array(y0, dtype=float), np.array(t, dtype=float), **kwargs)
    except SOLVE_FAILURES:
        return np.full((len(t), len(model.states)), np.nan)
    return np.where(np.isfinite(out), out, np.nan) if finite_only else out


def predict(
    model,
    t=None,
    *,
    y0=None,
    inputs=None,
    input_times=None,
    data=None,
    initial_states=None,
    trajectory: int = 0,
    solver=None,
) -> np.ndarray:
    """Simulate a fitted or discovered model on any time grid, from its fitted or a new initial state.

    Parameters
    ----------
    model : HybridModel
    t : array of shape (T,), optional
        Increasing output times.  Default: the observation times of ``trajectory``.
    y0 : array of shape (n_states,), optional
        A new initial state at ``t[0]``.  Default: the fitted initial state of
        ``trajectory`` at that trajectory's first observation time; ``t`` may then start
        later (the model is simulated from the first observation and read at ``t``) but
        not earlier.
    inputs : dict name -> array or array of shape (T_u, n_inputs), optional
        Input series for a model with inputs (sampled at ``input_times``, default ``t``).
        Default: the measured inputs of ``trajectory`` in ``data``.
    input_times : array of shape (T_u,), optional
    data : Dataset, optional
        The training data (for the default times, initial state and inputs).
    initial_states : ndarray of shape (K, n_states), optional
        Fitted initial state of each trajectory of ``data``.
    trajectory : int, default 0
    solver : Solver, optional
        Default ``Solver("dopri5", rtol=1e-9, atol=1e-9)``.

    Returns
    -------
    ndarray of shape (T, n_states)

    Raises
    ------
    DataError
        If ``t`` starts before the trajectory's first time without ``y0``, is not
        increasing, ``trajectory`` does not exist, or inputs are missing.
    """
    from .data import check_time
    from .solve import simulate

    tr = None
    if data is not None:
        if not isinstance(trajectory, int) or not 0 <= trajectory < data.n_trajectories:
            raise DataError(f"trajectory: expected an int in [0, {data.n_trajectories}), received {trajectory!r}.")
        tr = data.trajectories[trajectory]
    if t is None:
        if tr is None:
            raise DataError("t: expected output times (there are no training data to take them from).")
        t = tr.t
    t = np.atleast_1d(np.asarray(as_real(t, "t"), dtype=float))
    if t.ndim != 1 or t.size == 0 or np.any(np.diff(t) <= 0) or not np.all(np.isfinite(t)):
        raise DataError(f"t: expected a 1-D array of finite, strictly increasing times, received {describe(t)}.")
    kwargs = {"solver": solver}
    if model.inputs:
        if inputs is None:
            if tr is None:
                raise DataError(f"inputs: the model needs input series {model.input_names}; pass inputs=.")
            cols = [data.input_names.index(u) for u in model.input_names]
            kwargs.update(inputs=tr.u[:, cols], input_times=tr.u_t, interpolation=data.interpolation)
        else:
            kwargs.update(inputs=inputs, input_times=input_times if input_times is not None else t)
    elif inputs is not None:
        raise DataError("inputs: this model has no inputs, received an input series.")
    if y0 is not None:
        start, grid = np.asarray(y0, dtype=float), t
    else:
        if tr is None or initial_states is None:
            raise DataError("y0: expected an initial state (there is no fitted initial state to start from).")
        t0 = float(tr.t[0])
        if t[0] < t0:
            raise DataError(
                f"t: starts at {t[0]:g}, before trajectory {trajectory}'s first time {t0:g} where its fitted initial "
                "state lives; pass y0= to start elsewhere."
            )
        start, grid = np.asarray(initial_states[trajectory], dtype=float), np.union1d([t0], t)
    if grid.size == 1:  # a single output time at the start: the initial state itself
        return np.asarray(start, dtype=float).reshape(1, -1)
    check_time(grid, "t")
    out = simulate(model, start, grid, **{k: v for k, v in kwargs.items() if v is not None})
    return out[np.isin(grid, t)]


class Predictable:
    """Mixin for results that hold ``model``, ``data`` and ``initial_states``: ``predict`` on any grid."""

    def predict(self, t=None, y0=None, inputs=None, *, trajectory: int = 0, input_times=None) -> np.ndarray:
        """Simulate the result's model on any time grid (see :func:`udesci.evaluate.predict`).

        Parameters
        ----------
        t : array of shape (T,), optional
            Increasing output times (default: the trajectory's observation times).
            Without ``y0`` they may start at or after the trajectory's first time, never
            before: the model runs from its fitted initial state there.
        y0 : array of shape (n_states,), optional
            A new initial state at ``t[0]``.
        inputs : dict or array, optional
            Input series (default: the trajectory's measured inputs).
        trajectory : int, default 0
        input_times : array, optional
            Times of ``inputs`` (default ``t``).

        Returns
        -------
        ndarray of shape (T, n_states)

        Raises
        ------
        DataError
            For a grid starting before the trajectory without ``y0``, or bad inputs.
        """
        return predict(
            self.model,
            t,
            y0=y0,
            inputs=inputs,
            input_times=input_times,
            data=self.data,
            initial_states=self.initial_states,
            trajectory=trajectory,
        )


def as_real(values, where: str):
    """``values`` as floats (see :func:`udesci.data.as_real_array`)."""
    from .data import as_real_array

    return as_real_array(values, where)


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------
def rmse(pred, obs, *, axis: int | None = None):
    """Root-mean-square error over the observed entries.

    Parameters
    ----------
    pred, obs : array-like of the same shape
        Prediction and observation; NaN in ``obs`` marks a missing value (ignored).
    axis : int, optional
        Reduce over this axis only (e.g. ``0`` for one RMSE per state of a ``(T, n)``
        array); default all entries.

    Returns
    -------
    float, or ndarray for ``axis``
        ``inf`` where a prediction at an observed entry is not finite, NaN where nothing
        is observed.

    Raises
    ------
    DataError
        If the shapes differ.
    """
    pred, obs = np.asarray(pred, dtype=float), np.asarray(obs, dtype=float)
    if pred.shape != obs.shape:
        raise DataError(f"pred: expected the shape of obs {obs.shape}, received {pred.shape}.")
    if axis is not None:
        p, o = np.moveaxis(pred, axis, 0), np.moveaxis(obs, axis, 0)
        lead = p.shape[1:]
        p, o = p.reshape(p.shape[0], -1), o.reshape(o.shape[0], -1)
        return np.array([_rmse_flat(p[:, j], o[:, j]) for j in range(p.shape[1])]).reshape(lead)
    return _rmse_flat(pred.reshape(-1), obs.reshape(-1))


def _rmse_flat(pred: np.ndarray, obs: np.ndarray) -> float:
    seen = np.isfinite(obs)
    if not seen.any():
        return math.nan
    if not np.all(np.isfinite(pred[seen])):
        return math.inf
    return float(np.sqrt(np.mean((pred[seen] - obs[seen]) ** 2)))


def rmse_by_state(pred: np.ndarray, obs: np.ndarray, names) -> dict:
    """RMSE per column of ``(T, n)`` arrays, keyed by ``names`` (see :func:`rmse`)."""
    values = rmse(pred, obs, axis=0)
    return {n: float(v) for n, v in zip(names, np.atleast_1d(values), strict=True)}


# ----------------------------------------------------------------------------------------------
# JSON
# ----------------------------------------------------------------------------------------------
def jsonable(value, *, strict: str | None = None):
    """A copy of ``value`` that :func:`json.dumps` writes as strict JSON.

    Numpy scalars and arrays and torch tensors become Python numbers and lists, SymPy
    numbers become numbers and other SymPy objects their exact :func:`udesci.expr.sstr`
    text, paths become strings, dict keys become strings.

    Parameters
    ----------
    value : object
    strict : str, optional
        Where ``value`` comes from (e.g. ``"extra"``).  Without it, non-finite floats
        become ``None`` and any other object its ``str``; with it, both raise.

    Returns
    -------
    object

    Raises
    ------
    ConfigError
        Only with ``strict``: for a non-finite number, a key that is not a string or
        number, or a value that has no JSON form; the message names the place.
    """
    import sympy as sp

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isfinite(v):
            return v
        if strict is not None:
            raise ConfigError(
                f"{strict}: expected a finite number (JSON has no NaN/inf), received {value!r}; "
                "replace it (e.g. by None) before exporting."
            )
        return None
    if isinstance(value, torch.Tensor):
        return jsonable(value.detach().cpu().numpy(), strict=strict)
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), strict=strict)
    if isinstance(value, sp.Basic):
        from .expr import sstr

        if isinstance(value, sp.Integer):
            return int(value)
        if isinstance(value, sp.Number) and value.is_real:
            return jsonable(float(value), strict=strict)
        return sstr(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if isinstance(k, sp.Basic):
                from .expr import sstr

                k = sstr(k)
            if strict is not None and (not isinstance(k, (str, int, float)) or isinstance(k, bool)):
                raise ConfigError(f"{strict}: expected str keys, received key {describe(k)}.")
            out[str(k)] = jsonable(v, strict=None if strict is None else f"{strict}[{str(k)!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [jsonable(v, strict=None if strict is None else f"{strict}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if strict is not None:
        raise ConfigError(
            f"{strict}: expected a JSON-serialisable value (dict, list, str, number, bool, None, "
            f"numpy array), received {describe(value)}."
        )
    return str(value)


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary file in the same folder, fsync, rename).

    A reader never sees a half-written file, and a crash leaves the old file intact.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    OSError
        If the folder does not exist or is not writable.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


__all__ = [
    "SOLVE_FAILURES", "Predictable", "as_real", "jsonable", "keep_threads", "predict", "rmse", "rmse_by_state",
    "simulate_or_nan", "torch_threads", "write_text_atomic",
]  # fmt: skip
