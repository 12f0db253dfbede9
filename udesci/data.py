"""Observed trajectories: times, states (with missing values) and measured inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .errors import DataError, describe

INTERPOLATIONS = ("linear", "cubic")


TIME_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def as_real_array(values, where: str) -> np.ndarray:
    """``values`` as a float array, refusing anything that would change silently.

    Parameters
    ----------
    values : array-like
    where : str
        What the values are (a column or argument name), for messages.

    Returns
    -------
    ndarray of float

    Raises
    ------
    DataError
        For complex values (their imaginary part would be dropped), datetimes or time
        deltas (they would become nanoseconds), booleans, or entries that are not numbers
        (the message shows the first one).
    """
    arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object if _ragged(values) else None)
    if np.iscomplexobj(arr):
        raise DataError(f"{where}: complex values are not supported (the imaginary part would be lost); pass reals.")
    if arr.dtype.kind in "mM":
        raise DataError(
            f"{where}: received datetimes/time deltas; convert them to numbers first (Dataset.from_frame does "
            "it for the time column with time_unit='h', 's', 'min' or 'd')."
        )
    if arr.dtype.kind == "b":
        raise DataError(f"{where}: received booleans; expected numbers (convert with .astype(float) if meant).")
    if arr.dtype.kind in "iuf":
        return arr.astype(float)
    flat = arr.reshape(-1)
    out = np.empty(flat.shape, dtype=float)
    for i, v in enumerate(flat):
        if v is None:
            out[i] = np.nan
            continue
        if isinstance(v, (bool, np.bool_, complex, np.complexfloating, bytes)):
            raise DataError(f"{where}: expected numbers, received {v!r} at position {i}.")
        try:
            out[i] = np.nan if isinstance(v, str) and not v.strip() else float(v)
        except (TypeError, ValueError, OverflowError):
            raise DataError(f"{where}: expected numbers, received {v!r} at position {i}.") from None
    return out.reshape(arr.shape)


def _ragged(values) -> bool:
    try:
        np.asarray(values)
    except ValueError:
        return True
    return False


def check_time(t, where: str) -> np.ndarray:
    """``t`` as a 1-D float array of at least two finite, strictly increasing times.

    Raises
    ------
    DataError
        Naming ``where``, for anything else (also complex values, datetimes, booleans).
    """
    try:
        arr = as_real_array(t, where)
    except DataError:
        raise
    except (TypeError, ValueError):
        raise DataError(f"{where}: expected a 1-D array of times, received {describe(t)}.") from None
    if arr.ndim != 1:
        raise DataError(f"{where}: expected a 1-D array of times, received shape {arr.shape}.")
    if arr.size < 2:
        raise DataError(f"{where}: expected at least two time points, received {arr.size}.")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise DataError(f"{where}: times must be finite, received {arr[bad]} at position {bad}; drop or fill that row.")
    steps = np.diff(arr)
    if np.any(steps <= 0):
        bad = int(np.flatnonzero(steps <= 0)[0])
        raise DataError(
            f"{where}: times must be strictly increasing, received {arr[bad]} then {arr[bad + 1]} "
            f"at positions {bad}, {bad + 1}; sort the rows and remove duplicate times."
        )
    return arr


@dataclass(frozen=True)
class Trajectory:
    """One observed trajectory.

    Attributes
    ----------
    t : ndarray of shape (T,)
        Strictly increasing observation times.
    y : ndarray of shape (T, n_observed)
        Observations; NaN marks a missing value.
    u : ndarray of shape (T_u, n_inputs)
        Measured inputs, sampled at ``u_t``.
    u_t : ndarray of shape (T_u,)
        Times of the input samples (``t`` unless given separately).
    """

    t: np.ndarray
    y: np.ndarray
    u: np.ndarray
    u_t: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """Boolean array of shape (T, n_observed), True where observed."""
        return ~np.isnan(self.y)


class Dataset:
    """Observed trajectories of some (or all) of a model's states.

    Parameters
    ----------
    t : array of shape (T,) or list of such arrays
        Observation times of one trajectory, or one array per trajectory
        (each trajectory may have its own irregular grid).
    y : array of shape (T, n) or (T,), or list of such arrays
        Observations, NaN where missing.  Columns are the states named in
        ``states``.
    states : sequence of str, optional
        Names of the observed states, one per column (default: the model's
        states in order, resolved at fit time).
    inputs : array of shape (T_u, m) or list of such arrays, optional
        Measured inputs for each trajectory.
    input_names : sequence of str, optional
        Names of the input columns (required with ``inputs``).
    input_times : array of shape (T_u,) or list, optional
        Times of the input samples (default: ``t``).
    interpolation : {"linear", "cubic"}, default "linear"
        How inputs are interpolated between samples.

    Raises
    ------
    DataError
        For times that are not 1-D, finite and strictly increasing, fewer than
        two time points, mismatched shapes, non-finite inputs, or names that do
        not match the columns.
    """

    def __init__(
        self,
        t,
        y,
        *,
        states: Sequence[str] | None = None,
        inputs=None,
        input_names: Sequence[str] | None = None,
        input_times=None,
        interpolation: str = "linear",
    ):
        # a list of arrays is one array per trajectory; a plain list of numbers is one trajectory's times
        try:
            several = isinstance(t, (list, tuple)) and len(t) > 0 and all(np.ndim(tk) >= 1 for tk in t)
        except ValueError:  # numpy refuses ragged nested lists
            raise DataError(
                f"t: expected an array of times or a list of such arrays, received {describe(t)}."
            ) from None
        ts = list(t) if several else [t]
        ys = list(y) if several and isinstance(y, (list, tuple)) else [y]
        if len(ts) != len(ys):
            raise DataError(f"t and y: expected one y array per time array, received {len(ts)} and {len(ys)}.")
        if interpolation not in INTERPOLATIONS:
            raise DataError(f"interpolation: expected one of {INTERPOLATIONS}, received {interpolation!r}.")
        self.interpolation = interpolation
        us = None
        if inputs is not None:
            us = list(inputs) if several and isinstance(inputs, (list, tuple)) else [inputs]
            if len(us) != len(ts):
                raise DataError(f"inputs: expected one array per trajectory ({len(ts)}), received {len(us)}.")
            if input_names is None:
                raise DataError("input_names: expected the names of the input columns when inputs= is given.")
        uts = None
        if input_times is not None:
            uts = list(input_times) if several and isinstance(input_times, (list, tuple)) else [input_times]
            if len(uts) != len(ts):
                raise DataError(f"input_times: expected one array per trajectory ({len(ts)}), received {len(uts)}.")
        self.trajectories: list[Trajectory] = []
        n_obs = None
        for k, (tk, yk) in enumerate(zip(ts, ys, strict=True)):
            where = f"trajectory {k}" if len(ts) > 1 else "t"
            tk = check_time(tk, where if len(ts) > 1 else "t")
            try:
                yk = as_real_array(yk, f"y ({where})")
            except (TypeError, ValueError) as exc:
                if isinstance(exc, DataError):
                    raise
                raise DataError(f"y ({where}): expected a numeric array, received {describe(yk)}.") from None
            if yk.ndim == 1:
                yk = yk[:, None]
            if yk.ndim != 2 or yk.shape[0] != tk.size:
                raise DataError(
                    f"y ({where}): expected shape ({tk.size}, n_states) to match {tk.size} time points, "
                    f"received {yk.shape}."
                )
            if np.isinf(yk).any():
                raise DataError(f"y ({where}): observations must be finite or NaN (missing), received inf.")
            if n_obs is None:
                n_obs = yk.shape[1]
            elif yk.shape[1] != n_obs:
                raise DataError(f"y ({where}): expected {n_obs} columns like trajectory 0, received {yk.shape[1]}.")
            if us is not None:
                uk = as_real_array(us[k], f"inputs ({where})")
                if uk.ndim == 1:
                    uk = uk[:, None]
                utk = check_time(uts[k], f"input_times ({where})") if uts is not None else tk
                if uk.ndim != 2 or uk.shape[0] != utk.size or uk.shape[1] != len(input_names):
                    raise DataError(
                        f"inputs ({where}): expected shape ({utk.size}, {len(input_names)}), received {uk.shape}."
                    )
                if not np.all(np.isfinite(uk)):
                    raise DataError(f"inputs ({where}): inputs must be finite; fill or drop the missing samples.")
            else:
                uk, utk = np.zeros((tk.size, 0)), tk
            self.trajectories.append(Trajectory(tk, yk, uk, utk))
        if states is not None:
            states = [str(s) for s in states]
            if len(states) != n_obs:
                raise DataError(
                    f"states: expected {n_obs} names (one per column of y), received {len(states)}: {states}."
                )
            if len(set(states)) != len(states):
                raise DataError(f"states: names must be unique, received {states}.")
        self.state_names: list[str] | None = states
        self.time_unit: str | None = None  # set by from_frame for a converted datetime column
        self.time_origin: str | None = None
        self.input_names: list[str] = [str(s) for s in (input_names or [])]
        if all(np.isnan(tr.y).all() for tr in self.trajectories):
            raise DataError("y: every observation is NaN; nothing to fit.")

    @classmethod
    def from_frame(
        cls,
        df,
        time: str,
        states: Sequence[str],
        *,
        trajectory: str | None = None,
        inputs: Sequence[str] = (),
        interpolation: str = "linear",
        time_unit: str | None = None,
    ) -> Dataset:
        """Build a dataset from a long-format pandas DataFrame.

        Parameters
        ----------
        df : pandas.DataFrame
            One row per observation time (per trajectory).
        time : str
            Time column.
        states : sequence of str
            Observed state columns (NaN = missing).
        trajectory : str, optional
            Column identifying trajectories; rows are grouped by it in order of
            first appearance.
        inputs : sequence of str
            Measured input columns.
        interpolation : {"linear", "cubic"}
            Input interpolation.
        time_unit : {"s", "min", "h", "d"}, optional
            For a datetime time column: times become the elapsed time since the
            first timestamp in this unit (kept as ``dataset.time_unit`` and
            ``dataset.time_origin``).  Without it a datetime column is rejected.

        Returns
        -------
        Dataset

        Raises
        ------
        DataError
            If a column is missing; the time column is not strictly increasing
            within a trajectory, contains NaN, or holds datetimes without
            ``time_unit``; a state or input column holds text, booleans or
            complex numbers; or a trajectory id is missing (NaN) — nothing is
            dropped or converted silently.
        """
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise DataError(f"df: expected a pandas DataFrame, received {describe(df)}.")
        for name, value in (("time", time), ("trajectory", trajectory), ("time_unit", time_unit)):
            if value is not None and not isinstance(value, str):
                raise DataError(f"{name}: expected a column name (str), received {describe(value)}.")
        for name, value in (("states", states), ("inputs", inputs)):
            if not isinstance(value, str) and (
                not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value)
            ):
                raise DataError(f"{name}: expected a column name or a list of them, received {describe(value)}.")
        states = [states] if isinstance(states, str) else list(states)
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        if not states:
            raise DataError("states: expected at least one state column, received none.")
        duplicated = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
        if duplicated:
            raise DataError(f"df: column names must be unique, received duplicates {duplicated}; rename or drop them.")
        cols = [time, *states, *inputs] + ([trajectory] if trajectory else [])
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise DataError(f"from_frame: unknown column(s) {missing}; the frame has columns {list(df.columns)}.")
        if time_unit is not None and time_unit not in TIME_UNITS:
            raise DataError(f"time_unit: expected one of {sorted(TIME_UNITS)}, received {time_unit!r}.")
        if trajectory is not None:
            try:
                pd.unique(df[trajectory])
            except TypeError:
                raise DataError(
                    f"column {trajectory!r} (trajectory): ids must be hashable values (numbers or strings), received "
                    f"{describe(df[trajectory].iloc[0])}."
                ) from None
        if trajectory is not None and df[trajectory].isna().any():
            rows = [int(i) for i in np.flatnonzero(df[trajectory].isna().to_numpy())[:5]]
            raise DataError(
                f"column {trajectory!r} (trajectory): {int(df[trajectory].isna().sum())} rows have no trajectory id "
                f"(rows {rows}...); fill or drop them — they would otherwise be dropped silently."
            )
        times = df[time]
        origin = None
        if pd.api.types.is_datetime64_any_dtype(times.dtype):
            if time_unit is None:
                raise DataError(
                    f"column {time!r}: holds datetimes; pass time_unit='h' (or 's', 'min', 'd') to measure time as "
                    "the elapsed time since the first timestamp in that unit."
                )
            origin = times.min()
            times = (times - origin).dt.total_seconds() / TIME_UNITS[time_unit]
        df = df.assign(**{time: times}) if origin is not None else df
        groups = [df] if trajectory is None else [g for _, g in df.groupby(trajectory, sort=False)]
        ts, ys, us = [], [], []
        for g in groups:
            label = f"column {time!r}" + (f" (trajectory {g[trajectory].iloc[0]!r})" if trajectory else "")
            ts.append(check_time(g[time].to_numpy(), label))
            ys.append(np.stack([as_real_array(g[c].to_numpy(), f"column {c!r}") for c in states], axis=1))
            us.append(
                np.stack([as_real_array(g[c].to_numpy(), f"column {c!r}") for c in inputs], axis=1)
                if inputs
                else np.zeros((len(g), 0))
            )
        out = cls(
            ts,
            ys,
            states=states,
            inputs=us if inputs else None,
            input_names=inputs or None,
            interpolation=interpolation,
        )
        out.time_unit = time_unit if origin is not None else None
        out.time_origin = None if origin is None else str(origin)
        return out

    @property
    def n_trajectories(self) -> int:
        """Number of trajectories."""
        return len(self.trajectories)

    def __len__(self) -> int:
        return len(self.trajectories)

    def __repr__(self) -> str:
        from .display import data_repr

        return data_repr(self)

    def _repr_html_(self) -> str:
        from .display import data_html

        return data_html(self)

    def window(self, t_start: float = -np.inf, t_end: float = np.inf) -> Dataset:
        """The observations with ``t_start <= t <= t_end`` (inputs kept whole).

        Parameters
        ----------
        t_start, t_end : float, default -inf, inf
            The window, inclusive at both ends.

        Returns
        -------
        Dataset
            Same states, inputs and interpolation; each trajectory cut to the window.

        Raises
        ------
        DataError
            If a trajectory keeps fewer than two points.
        """
        ts, ys, us, uts = [], [], [], []
        for tr in self.trajectories:
            keep = (tr.t >= t_start) & (tr.t <= t_end)
            ts.append(tr.t[keep])
            ys.append(tr.y[keep])
            us.append(tr.u)
            uts.append(tr.u_t)
        return Dataset(
            ts,
            ys,
            states=self.state_names,
            inputs=us if self.input_names else None,
            input_names=self.input_names or None,
            input_times=uts if self.input_names else None,
            interpolation=self.interpolation,
        )


class InputInterpolator:
    """Batched interpolation of measured inputs, one series per trajectory.

    Parameters
    ----------
    times : list of ndarray, each (T_k,)
    values : list of ndarray, each (T_k, m)
    kind : {"linear", "cubic"}
    dtype : torch.dtype

    Call ``interp(t, index)`` with ``t`` of shape ``(B,)`` (or ``()``) and
    ``index`` of shape ``(B,)`` (trajectory of each batch element) to get
    inputs of shape ``(B, m)``.  Outside a series' range the end values are held.
    """

    def __init__(
        self,
        times: list[np.ndarray],
        values: list[np.ndarray],
        kind: str = "linear",
        dtype: torch.dtype = torch.float64,
    ):
        from scipy.interpolate import CubicSpline

        if kind not in INTERPOLATIONS:
            raise DataError(f"interpolation: expected one of {INTERPOLATIONS}, received {kind!r}.")
        self.kind = kind
        n_max = max(t.size for t in times)
        m = values[0].shape[1]
        knots = np.empty((len(times), n_max))
        coef = np.zeros((len(times), n_max - 1, 4, m))
        self.last = np.array([t.size - 2 for t in times])
        for k, (t, v) in enumerate(zip(times, values, strict=True)):
            knots[k, : t.size] = t
            knots[k, t.size :] = t[-1] + np.arange(1, n_max - t.size + 1)
            if kind == "cubic" and t.size >= 3:
                c = CubicSpline(t, v, bc_type="natural", axis=0).c  # (4, T-1, m), highest power first
                coef[k, : t.size - 1] = np.moveaxis(c, 0, 1)
            else:
                slope = np.diff(v, axis=0) / np.diff(t)[:, None]
                coef[k, : t.size - 1, 2] = slope
                coef[k, : t.size - 1, 3] = v[:-1]
            coef[k, t.size - 1 :, 3] = v[-1]
        self.knots = torch.as_tensor(knots, dtype=dtype)
        self.coef = torch.as_tensor(coef, dtype=dtype)
        self.t_lo = torch.as_tensor([t[0] for t in times], dtype=dtype)
        self.t_hi = torch.as_tensor([t[-1] for t in times], dtype=dtype)
        self.last_t = torch.as_tensor(self.last)

    def __call__(self, t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=self.knots.dtype).expand(index.shape)
        t = torch.minimum(torch.maximum(t, self.t_lo[index]), self.t_hi[index])
        kn = self.knots[index]
        i = torch.searchsorted(kn, t.unsqueeze(-1).contiguous(), right=True).squeeze(-1) - 1
        i = torch.minimum(i.clamp(min=0), self.last_t[index])
        dt = (t - kn.gather(-1, i.unsqueeze(-1)).squeeze(-1)).unsqueeze(-1)
        c = self.coef[index, i]  # (B, 4, m)
        return ((c[:, 0] * dt + c[:, 1]) * dt + c[:, 2]) * dt + c[:, 3]
