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


def forecast(model, data, starts, y0, horizon: int = HORIZON, step: float = 1.0) -> np.ndarray:
    """Batched forecasts with measured inputs: one row per start time.

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
    from ... import InputInterpolator, Solver, integrate

    field = model.module
    dtype = field.dtype
    starts = np.asarray(starts, dtype=float)
    knots = torch.as_tensor(starts[:, None] + step * np.arange(horizon + 1)[None, :], dtype=dtype)
    interp = None
    if model.inputs:
        tr = data.trajectories[0]
        cols = [data.input_names.index(u) for u in model.input_names]
        interp = InputInterpolator([tr.u_t], [tr.u[:, cols]], data.interpolation, dtype)
    rows = torch.zeros(len(starts), dtype=torch.long)
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
