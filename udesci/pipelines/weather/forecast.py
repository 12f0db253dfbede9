"""Forecasts: batched 24-hour forecasts of a model with measured inputs, and the simple baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ...evaluate import SOLVE_FAILURES
from .data import observed_at

HORIZON = 24
METHODS = ("persistence", "yesterday", "climatology", "physics", "neural ODE", "UDE", "discovered")
BASELINES = METHODS[:3]
MODELS = METHODS[3:]


# hours of input samples before the issue time that each forecast's input interpolation holds
INPUT_HISTORY = 3


def input_window(u_t: np.ndarray, start: float, horizon: float) -> np.ndarray:
    """Which input samples one issue reads: from ``INPUT_HISTORY`` hours before ``start`` to
    ``start + horizon``.

    Parameters
    ----------
    u_t : array of shape (T_u,)
        Input sample times.
    start, horizon : float

    Returns
    -------
    ndarray of bool, shape (T_u,)
    """
    return (u_t >= start - INPUT_HISTORY - 1e-9) & (u_t <= start + horizon + 1e-9)


def issue_inputs(data, input_names, starts, horizon: float, dtype=torch.float64):
    """Each issue time's own input series: the samples from ``INPUT_HISTORY`` hours before the issue to
    the end of the horizon, so the interpolation between samples reads nothing beyond the horizon.

    A cubic spline through the whole series would let samples after the horizon (for ``Y``: temperatures
    after the issue time) shape the inputs of the last leads; cut per issue, an input defined from the
    past (:func:`~udesci.pipelines.weather.data.with_forecast_inputs`) stays known at the issue time.

    Parameters
    ----------
    data : Dataset
        Supplies the input series (trajectory 0).
    input_names : sequence of str
        The inputs, in the model's order.
    starts : array of shape (B,)
        Issue times.
    horizon : float
        Hours after each issue.
    dtype : torch.dtype, default float64

    Returns
    -------
    InputInterpolator
        With one series per issue (call it with ``index = arange(B)``); ``None`` without inputs.

    Raises
    ------
    DataError
        If an issue has fewer than two input samples in its window.
    """
    from ... import InputInterpolator
    from ...errors import DataError

    if not input_names:
        return None
    tr = data.trajectories[0]
    cols = [data.input_names.index(u) for u in input_names]
    times, values = [], []
    for s in np.asarray(starts, dtype=float):
        keep = input_window(tr.u_t, s, horizon)
        if keep.sum() < 2:
            raise DataError(f"starts: the issue at t = {s:g} has fewer than two input samples in its window.")
        times.append(tr.u_t[keep])
        values.append(tr.u[keep][:, cols])
    return InputInterpolator(times, values, data.interpolation, dtype)


def forecast_windows(data, starts, horizon: float = HORIZON):
    """The training data of the forecast task: one trajectory per issue time, the observations from the
    issue time to the end of its horizon, with that issue's own input window (as :func:`issue_inputs`).

    Parameters
    ----------
    data : Dataset
        One trajectory (the series).
    starts : array of shape (B,)
        Issue times; windows are cut at ``[start, start + horizon]``.
    horizon : float
        Hours per window.

    Returns
    -------
    Dataset
        ``B`` trajectories with ``data``'s states, inputs and interpolation.

    Raises
    ------
    DataError
        If a window holds fewer than two observations or input samples.
    """
    from ... import Dataset
    from ...errors import DataError

    tr = data.trajectories[0]
    ts, ys, us, uts = [], [], [], []
    for s in np.asarray(starts, dtype=float):
        keep = (tr.t >= s - 1e-9) & (tr.t <= s + horizon + 1e-9)
        ukeep = input_window(tr.u_t, s, horizon)
        if keep.sum() < 2 or (data.input_names and ukeep.sum() < 2):
            raise DataError(f"starts: the window from t = {s:g} holds fewer than two samples.")
        ts.append(tr.t[keep])
        ys.append(tr.y[keep])
        us.append(tr.u[ukeep])
        uts.append(tr.u_t[ukeep])
    named = bool(data.input_names)
    return Dataset(
        ts,
        ys,
        states=data.state_names,
        inputs=us if named else None,
        input_names=data.input_names or None,
        input_times=uts if named else None,
        interpolation=data.interpolation,
    )


def forecast(model, data, starts, y0, horizon: int = HORIZON, step: float = 1.0) -> np.ndarray:
    """Batched forecasts with inputs known at each issue time: one row per start time.

    Each row reads its own input series (:func:`issue_inputs`): the samples from a few hours before its
    start to the end of its horizon.

    Parameters
    ----------
    model : HybridModel
    data : Dataset
        Supplies the input series (trajectory 0).
    starts : array of shape (B,)
        Start times.
    y0 : array of shape (B, n_states)
        Observed states at the start times.
    horizon : int
        Forecast steps.
    step : float
        Step between output times.

    Returns
    -------
    ndarray of shape (B, horizon + 1, n_states)
        Row ``b`` at times ``starts[b] + step * arange(horizon + 1)``; NaN where
        the simulation failed or diverged.
    """
    from ... import Solver, integrate

    field = model.module
    dtype = field.dtype
    starts = np.asarray(starts, dtype=float)
    knots = torch.as_tensor(starts[:, None] + step * np.arange(horizon + 1)[None, :], dtype=dtype)
    interp = issue_inputs(data, model.input_names, starts, step * horizon, dtype)
    rows = torch.arange(len(starts))
    try:
        with torch.no_grad():
            y0t = torch.tensor(np.array(y0, dtype=float), dtype=dtype)
            out = integrate(field, y0t, knots, Solver("rk4", substeps=4), inputs=(interp, rows)).numpy()
    except SOLVE_FAILURES:
        out = np.full((len(starts), horizon + 1, len(model.states)), np.nan)
    return np.where(np.isfinite(out) & (np.abs(out) < 1e3), out, np.nan)


def baselines(frame: pd.DataFrame, train: pd.DataFrame, starts: np.ndarray, state: str = "T", horizon: int = HORIZON):
    """Persistence, yesterday and diurnal-climatology forecasts of one state.

    Parameters
    ----------
    frame : DataFrame
        Whole series (``t``, ``hour``, ``state``).
    train : DataFrame
        Training window (for the climatology).
    starts : array of shape (B,)
    state : str, default "T"
        The column forecast.
    horizon : int

    Returns
    -------
    dict name -> ndarray of shape (B, horizon + 1)
        ``persistence`` (the value at the issue time), ``yesterday`` (the value 24 h before each lead)
        and ``climatology`` (the training window's mean at the hour of day).
    """
    grid = starts[:, None] + np.arange(horizon + 1)[None, :]
    t0 = observed_at(frame, starts, column=state)
    clim = train.groupby(np.round(train["hour"]).astype(int) % 24)[state].mean()
    clim = clim.reindex(range(24)).interpolate(limit_direction="both").to_numpy()
    hours = np.round(np.mod(grid, 24)).astype(int) % 24
    return {
        "persistence": np.repeat(t0[:, None], horizon + 1, axis=1),
        "yesterday": observed_at(frame, grid - 24.0, column=state),
        "climatology": clim[hours],
    }


def forecast_starts(frame: pd.DataFrame, first: float, horizon: int = HORIZON) -> np.ndarray:
    """Issue times: the day boundaries (``t`` a multiple of 24) from ``first`` on whose horizon is observed.

    Parameters
    ----------
    frame : DataFrame
        Whole series (``t``, ``T``).
    first : float
        Earliest issue time.
    horizon : int
        Forecast steps (hours) that must all be observed, as must the 24 hours before the issue.

    Returns
    -------
    ndarray of shape (B,)
    """
    t_last = float(frame["t"].max())
    starts = np.arange(24.0 * np.ceil(first / 24.0), t_last - horizon + 1e-9, 24.0)
    ok = [np.isfinite(observed_at(frame, s + np.arange(-24, horizon + 1))).all() for s in starts]
    return starts[np.array(ok, dtype=bool)] if len(starts) else starts
