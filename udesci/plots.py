"""Plots of data, fits, discovered unknowns and studies, returned as matplotlib Figures.

Every plot function returns a :class:`matplotlib.figure.Figure` built directly (no pyplot), so
it changes no global backend state: a notebook shows the returned Figure with whatever backend
it uses, scripts and reports write it with :func:`save` (PNG file) or :func:`png_bytes`.

* :func:`plot_fit` — data against the fitted (and discovered, and true) model, one axis per state,
  every trajectory (or a stated selection); also ``FitResult.plot()``.
* :func:`plot_history` — the training loss by stage.
* :func:`plot_phase` — a phase portrait of two states.
* :func:`plot_unknowns` — each unknown's network against its closed form, along the trajectories
  and against its arguments; also ``Discovery.plot()``.
* :func:`plot_forecast`, :func:`plot_metric_lines`, :func:`plot_recovery` — array-level plots of
  the pipelines and studies.

Conventions shared by the fit and phase plots: axis limits span the observations (and the truth)
with a margin, so a diverging model curve cannot squash the data; a state's declared domain
(:attr:`~udesci.HybridModel.state_bounds`: SymPy ``positive``/``nonnegative`` symbols or
``bounds=``) keeps its axis inside, and an undeclared lower side of a state whose observations are
all nonnegative is taken as 0 (each figure says which in its footnote, see :func:`state_axes`); the
truth is drawn dashed in black on top of the model curves.  Artists carry a ``gid``
``"<kind>:<trajectory>"`` (kind ``data``, ``held-out``, ``fitted``, ``discovered``, ``truth``) so
that tests and callers can find them.

The older call form with a file path first (``plot_fit(path, t_data, y_data, ...)``,
``plot_loss(path, history)``, ``plot_phase(path, y_data, curves, names)``, ``plot_forecast(path, ...)``,
...) still writes that PNG and returns the path.
"""

from __future__ import annotations

import functools
import io
import math
import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import sympy as sp
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .data import Dataset, InputInterpolator
from .errors import ConfigError, DataError, describe
from .evaluate import simulate_or_nan
from .lambdify import as_expression

MAX_TRAJECTORIES = 6
"""Trajectories drawn by default; more are reduced to a stated selection."""
MARGIN = 0.15
"""Axis margin beyond the data, as a fraction of their span."""
DPI = 110
TRUTH_STYLE = {"color": "k", "ls": (0, (5, 3)), "lw": 1.5, "zorder": 5}
"""The truth: black, dashed, above every model curve."""
_PATH_TYPES = (str, os.PathLike)


# ----------------------------------------------------------------------------------------------
# writing figures
# ----------------------------------------------------------------------------------------------
def save(fig: Figure, path) -> str:
    """Write ``fig`` as a PNG at 110 dpi and release it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or PathLike

    Returns
    -------
    str
        The path written.

    Raises
    ------
    ConfigError
        If ``fig`` is not a Figure.
    """
    if not isinstance(fig, Figure):
        raise ConfigError(f"fig: expected a matplotlib Figure, received {describe(fig)}.")
    fig.savefig(path, dpi=DPI)
    _release(fig)
    return os.fspath(path)


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as PNG bytes at 110 dpi (e.g. to embed in HTML); the figure is released.

    Returns
    -------
    bytes

    Raises
    ------
    ConfigError
        If ``fig`` is not a Figure.
    """
    if not isinstance(fig, Figure):
        raise ConfigError(f"fig: expected a matplotlib Figure, received {describe(fig)}.")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    _release(fig)
    return buffer.getvalue()


def _release(fig: Figure) -> None:
    # a Figure made here is not registered with pyplot; one made by pyplot is closed there
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)


def _path_form(build=None):
    """Let a Figure-returning plot function also be called as ``f(path, ...)``: build, write, return the path.

    ``build`` is the Figure builder of the path form's arguments (default: the function itself).
    """

    def decorate(func):
        builder = build or func

        @functools.wraps(func)
        def dispatch(first=None, *args, **kwargs):
            if isinstance(first, _PATH_TYPES):
                return save(builder(*args, **kwargs), first)
            return func(first, *args, **kwargs)

        return dispatch

    return decorate


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _footnote(fig: Figure, notes: Sequence[str]) -> None:
    text = " ".join(n for n in notes if n)
    if text:
        wrapped = textwrap.fill(text, int(fig.get_figwidth() * 16))
        fig.supxlabel(wrapped, fontsize=7, color="0.3", x=0.01, ha="left", multialignment="left")


# ----------------------------------------------------------------------------------------------
# shared pieces: which trajectories, which bounds, which labels
# ----------------------------------------------------------------------------------------------
class TrajectorySelection(NamedTuple):
    """The trajectories a plot draws.

    Attributes
    ----------
    indices : tuple of int
    total : int
        Trajectories in the data.
    note : str
        ``""`` when all are drawn, else e.g. ``"Trajectories 0–5 of 12 shown."``.
    """

    indices: tuple
    total: int
    note: str


def select_trajectories(total: int, trajectories=None, limit: int = MAX_TRAJECTORIES) -> TrajectorySelection:
    """Every trajectory, the first ``limit`` of them, or the ones asked for.

    Parameters
    ----------
    total : int
        Trajectories in the data.
    trajectories : int or sequence of int, optional
        Indices to draw (default: all if at most ``limit``, else the first ``limit``).
    limit : int, default 6

    Returns
    -------
    TrajectorySelection

    Raises
    ------
    ConfigError
        For an index outside ``[0, total)``, a repeated index or an empty selection.
    """
    if trajectories is None:
        indices = tuple(range(min(total, limit)))
    else:
        items = [trajectories] if isinstance(trajectories, (int, np.integer)) else list(trajectories)
        bad = [k for k in items if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 0 <= k < total]
        if bad or not items or len(set(items)) != len(items):
            raise ConfigError(
                f"trajectories: expected distinct indices in [0, {total}), received {describe(trajectories)}."
            )
        indices = tuple(int(k) for k in items)
    if len(indices) == total:
        return TrajectorySelection(indices, total, "")
    if indices == tuple(range(indices[0], indices[0] + len(indices))) and len(indices) > 2:
        shown = f"Trajectories {indices[0]}–{indices[-1]}"
    else:
        shown = ("Trajectory " if len(indices) == 1 else "Trajectories ") + ", ".join(map(str, indices))
    return TrajectorySelection(indices, total, f"{shown} of {total} shown.")


def observed_columns(model, data: Dataset) -> list[int]:
    """Model state index of each data column (the data's state names, else the model's order).

    Raises
    ------
    DataError
        If a data column names no state of the model.
    """
    position = {s: i for i, s in enumerate(model.state_names)}
    names = data.state_names or model.state_names[: data.trajectories[0].y.shape[1]]
    missing = [s for s in names if s not in position]
    if missing:
        raise DataError(f"data: states {missing} are not states of the model {model.state_names}.")
    return [position[s] for s in names]


def held_out_by_trajectory(held_out, n_columns: int) -> dict:
    """Held-out observations as ``{trajectory: (t (T,), y (T, n_columns))}``.

    Parameters
    ----------
    held_out : (t, y) or mapping int -> (t, y), optional
        A single pair belongs to trajectory 0.
    n_columns : int
        Observed columns.

    Returns
    -------
    dict

    Raises
    ------
    ConfigError
        If a pair's arrays do not have matching lengths and ``n_columns`` columns.
    """
    if held_out is None:
        return {}
    pairs = held_out if isinstance(held_out, Mapping) else {0: held_out}
    out = {}
    for k, pair in pairs.items():
        try:
            t, y = pair
            t = np.asarray(t, dtype=float).reshape(-1)
            y = np.asarray(y, dtype=float).reshape(t.size, n_columns)
        except (TypeError, ValueError):
            raise ConfigError(
                f"held_out: expected (t (T,), y (T, {n_columns})) per trajectory, received {describe(pair)} "
                f"for trajectory {k}."
            ) from None
        if t.size:
            out[int(k)] = (t, y)
    return out


def nonnegative_states(data: Dataset, names: Sequence[str], held_out: Mapping | None = None) -> list[str]:
    """The data columns whose observations (training and held-out) are all ``>= 0``.

    Where a state's model declares no lower bound, such a state is treated as nonnegative and its
    axes start at 0 (see :func:`state_axes`).

    Parameters
    ----------
    data : Dataset
    names : sequence of str
        Name of each data column.
    held_out : mapping int -> (t, y), optional
        As returned by :func:`held_out_by_trajectory`.

    Returns
    -------
    list of str
    """
    out = []
    for j, name in enumerate(names):
        values = [tr.y[:, j] for tr in data.trajectories] + [y[:, j] for _, y in (held_out or {}).values()]
        v = np.concatenate(values)
        v = v[np.isfinite(v)]
        if v.size and np.all(v >= 0):
            out.append(name)
    return out


def data_limits(
    values, margin: float = MARGIN, *, nonnegative: bool = False, lower: float = -math.inf, upper: float = math.inf
) -> tuple[float, float]:
    """Axis limits around the finite ``values``, widened by ``margin`` × their span on each side.

    Parameters
    ----------
    values : array-like
    margin : float, default 0.15
    nonnegative : bool
        Start at 0 rather than below it (``lower=0``).
    lower, upper : float, default -inf, inf
        Sides the limits do not go beyond (a declared domain), unless a value does: an
        observation outside is never cut off.

    Returns
    -------
    (float, float)
        ``(-1, 1)`` when no value is finite (``(0, 1)`` with ``nonnegative``), moved inside the sides.
    """
    if nonnegative:
        lower = max(lower, 0.0)
    v = np.asarray(values, dtype=float).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        lo, hi = (0.0, 1.0) if nonnegative else (-1.0, 1.0)
        if math.isfinite(lower) and math.isfinite(upper):
            return lower, upper
        if math.isfinite(lower):
            return lower, lower + (hi - lo)
        return (upper - (hi - lo), upper) if math.isfinite(upper) else (lo, hi)
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    low, high = lo - margin * span, hi + margin * span
    return (max(low, lower) if lo >= lower else low), (min(high, upper) if hi <= upper else high)


class StateAxis(NamedTuple):
    """The sides one state's axes keep to (see :func:`state_axes`).

    Attributes
    ----------
    lower, upper : float
        The axis does not extend beyond these (``-inf``/``inf``: free).
    declared : str
        The model's declared domain of the state, e.g. ``"[0, 1]"`` (empty when it declares none).
    guessed : bool
        The lower side is 0 because every observation is ``>= 0`` and the model declares no lower bound.
    """

    lower: float
    upper: float
    declared: str
    guessed: bool


def state_axes(model, data: Dataset, observed: Sequence[int], held_out: Mapping | None = None) -> list[StateAxis]:
    """The sides each state's axes keep to: its declared domain first, then the data's sign.

    A side of the model's :attr:`~udesci.HybridModel.state_bounds` (SymPy ``positive``/``nonnegative``
    symbols, ``bounds=``) is used as declared; a state whose lower side is not declared and whose
    observations are all ``>= 0`` (:func:`nonnegative_states`) is treated as nonnegative.

    Parameters
    ----------
    model : HybridModel
    data : Dataset
    observed : sequence of int
        The model state of each data column (:func:`observed_columns`).
    held_out : mapping int -> (t, y), optional
        As returned by :func:`held_out_by_trajectory`.

    Returns
    -------
    list of StateAxis
        One per model state, in state order.
    """
    nonneg = set(nonnegative_states(data, [model.state_names[i] for i in observed], held_out))
    out = []
    for name, domain in model.state_bounds.items():
        guessed = not math.isfinite(domain.lower) and name in nonneg
        declared = domain.interval() if domain.declared else ""
        out.append(StateAxis(0.0 if guessed else domain.lower, domain.upper, declared, guessed))
    return out


def time_label(model, data: Dataset | None = None) -> str:
    """The time axis label: the model's time symbol, with the data's time unit when known."""
    unit = getattr(data, "time_unit", None)
    return f"{model.time} ({unit})" if unit else str(model.time)


def _state_labels(model, names) -> list[str]:
    if names is None:
        return model.state_names
    names = [str(n) for n in names]
    if len(names) != len(model.states):
        raise ConfigError(f"names: expected {len(model.states)} labels (one per state), received {len(names)}.")
    return names


def _data_of(result, data, where: str) -> Dataset:
    data = data if data is not None else getattr(result, "data", None)
    if not isinstance(data, Dataset):
        raise ConfigError(
            f"{where}: data: expected a udesci.Dataset (the result holds none), received {describe(data)}."
        )
    return data


def _initial_states(result, where: str) -> np.ndarray:
    y0 = getattr(result, "initial_states", None)
    if y0 is None:
        raise ConfigError(
            f"{where}: expected a FitResult or Discovery with initial states, received {describe(result)}."
        )
    return np.asarray(y0, dtype=float)


class _Setup(NamedTuple):
    """What the fit and phase plots start from."""

    data: Dataset
    model: object
    labels: list
    observed: list
    held: dict
    selection: TrajectorySelection
    axes: list


def _setup(result, data, names, held_out, trajectories, limit, where: str) -> _Setup:
    data = _data_of(result, data, where)
    model = result.model
    obs = observed_columns(model, data)
    held = held_out_by_trajectory(held_out, len(obs))
    return _Setup(
        data,
        model,
        _state_labels(model, names),
        obs,
        held,
        select_trajectories(data.n_trajectories, trajectories, limit),
        state_axes(model, data, obs, held),
    )


class Curve(NamedTuple):
    """A simulated trajectory: ``t`` (M,), ``y`` (M, n_states)."""

    t: np.ndarray
    y: np.ndarray


def _grid(t_obs: np.ndarray, t_end: float, points: int) -> np.ndarray:
    return np.union1d(np.linspace(t_obs[0], t_end, points), t_obs[t_obs <= t_end])


def _truth_curve(truth, truth_initial_states, k: int, grid: np.ndarray, data: Dataset, n_states: int):
    """Trajectory ``k``'s truth: a model simulated on ``grid`` or the ``k``-th given (t, y) pair."""
    if truth is None:
        return None
    from .model import HybridModel

    if isinstance(truth, HybridModel):
        y0 = np.asarray(truth_initial_states, dtype=float)[k]
        return Curve(grid, simulate_or_nan(truth, y0, grid, data=data, trajectory=k))
    try:
        t, y = truth[k]
        t = np.asarray(t, dtype=float).reshape(-1)
        return Curve(t, np.asarray(y, dtype=float).reshape(t.size, n_states))
    except (TypeError, ValueError, IndexError, KeyError):
        raise ConfigError(
            "truth: expected a HybridModel or one (t (M,), y (M, n_states)) pair per trajectory, "
            f"received {describe(truth)}."
        ) from None


class _Drawn(NamedTuple):
    """The curves of one trajectory in a fit or phase plot (None where not drawn)."""

    fitted: Curve
    discovered: Curve | None
    truth: Curve | None


def _simulated(result, found, truth, truth_y0, data, k, t_end, points) -> _Drawn:
    grid = _grid(data.trajectories[k].t, t_end, points)
    model = result.model
    fitted = Curve(grid, simulate_or_nan(model, _initial_states(result, "result")[k], grid, data=data, trajectory=k))
    discovered = None
    if found is not None:
        y0 = found.initial_states if found.initial_states is not None else _initial_states(result, "result")
        discovered = Curve(grid, simulate_or_nan(found.model, np.asarray(y0)[k], grid, data=data, trajectory=k))
    return _Drawn(fitted, discovered, _truth_curve(truth, truth_y0, k, grid, data, len(model.states)))


def _each_trajectory(result, found, truth, truth_y0, data, held, selection, points):
    """Per selected trajectory: its index, observations, simulated curves (over any held-out span too), colours."""
    for j, k in enumerate(selection.indices):
        tr = data.trajectories[k]
        t_end = max(tr.t[-1], held[k][0][-1]) if k in held else tr.t[-1]
        drawn = _simulated(result, found, truth, truth_y0, data, k, t_end, points)
        yield k, tr, drawn, _palette(len(selection.indices), j)


def _palette(n_shown: int, j: int) -> dict:
    """Colours of one trajectory's data, fitted and discovered curves (one colour per source when alone)."""
    if n_shown == 1:
        return {"data": "0.25", "fitted": "C0", "discovered": "C1"}
    c = f"C{j % 10}"
    return {"data": c, "fitted": c, "discovered": c}


def _legend(fig: Figure, selection: TrajectorySelection, *, held: bool, found: bool, truth: bool, fitted_label: str):
    n = len(selection.indices)
    grey = "0.25" if n > 1 else None
    handles = [
        Line2D([], [], ls="none", marker="o", ms=4, color=grey or "0.25", label="observed"),
    ]
    if held:
        handles.append(Line2D([], [], ls="none", marker="o", ms=4, mfc="none", color=grey or "0.25", label="held out"))
    handles.append(Line2D([], [], color=grey or "C0", lw=1.6, label=fitted_label))
    if found:
        handles.append(Line2D([], [], color=grey or "C1", lw=1.6, ls="-.", label="discovered model"))
    if truth:
        handles.append(Line2D([], [], label="truth", **{k: v for k, v in TRUTH_STYLE.items() if k != "zorder"}))
    if n > 1:
        handles += [
            Line2D([], [], color=f"C{j % 10}", lw=4, label=f"trajectory {k}") for j, k in enumerate(selection.indices)
        ]
    fig.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 5), fontsize=7, frameon=False)


# ----------------------------------------------------------------------------------------------
# fits
# ----------------------------------------------------------------------------------------------
def _fit_from_arrays(t_data, y_data, t_model, curves: dict, names, t_train_end=None, title=""):
    """The older ``plot_fit(path, t_data, y_data, t_model, curves, names, ...)`` form: see :func:`plot_forecast`."""
    t_model = np.asarray(t_model, dtype=float)
    return plot_forecast(
        t_data,
        y_data,
        np.zeros(0),
        np.zeros((0, len(names))),
        {label: (t_model, c) for label, c in curves.items()},
        names,
        t_split=t_train_end,
        title=title,
        margin=0.25,
    )


@_path_form(_fit_from_arrays)
def plot_fit(
    fitted,
    data: Dataset | None = None,
    truth=None,
    trajectories=None,
    *,
    found=None,
    held_out=None,
    truth_initial_states=None,
    names: Sequence[str] | None = None,
    time_name: str | None = None,
    title: str | None = None,
    limit: int = MAX_TRAJECTORIES,
    points: int = 300,
) -> Figure:
    """Observations (markers) against the fitted model (lines), one axis per state, every trajectory.

    Parameters
    ----------
    fitted : FitResult or Discovery
        Its model is simulated from its initial state of each trajectory.
    data : Dataset, optional
        Default ``fitted.data``; supplies the observations and measured inputs.
    truth : HybridModel or sequence of (t (M,), y (M, n_states)), optional
        The true system (simulated from ``truth_initial_states``), or its trajectories, one
        pair per trajectory of ``data``; drawn dashed in black above the model curves.
    trajectories : int or sequence of int, optional
        Which trajectories (default: all, or the first ``limit`` with a note saying so).
    found : Discovery, optional
        Also draws the discovered closed-form model (dash-dot).
    held_out : (t, y) or mapping int -> (t, y), optional
        Held-out observations (open markers; a pair belongs to trajectory 0), ``y`` of shape
        (T, n_observed); the model curves extend over them.
    truth_initial_states : array of shape (K, n_states), optional
        Default: ``fitted``'s initial states.
    names : sequence of str, optional
        Axis labels of the model's states (default: their names).
    time_name : str, optional
        x-axis label (default: the model's time symbol and the data's time unit).
    title : str, optional
    limit : int, default 6
    points : int, default 300
        Simulation points per trajectory (the observation times are added).

    Returns
    -------
    matplotlib.figure.Figure
        One axis per model state; y-limits span the observations (and truth) with a 15% margin,
        kept inside each state's declared domain, an undeclared lower side at 0 for a state whose
        observations are all ≥ 0; the footnote states the selection and the bounds.

    Raises
    ------
    ConfigError
        Without data, for bad ``trajectories``, ``names``, ``held_out`` or ``truth``.
    """
    data, model, labels, obs, held, selection, sides = _setup(
        fitted, data, names, held_out, trajectories, limit, "plot_fit"
    )
    truth_y0 = _initial_states(fitted, "fitted") if truth_initial_states is None else truth_initial_states
    n = len(model.states)
    fig = _figure(7.5, 1.0 + 2.2 * n)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    limits = [[] for _ in range(n)]
    fallback = [[] for _ in range(n)]
    t_lo, t_hi = math.inf, -math.inf
    for k, tr, drawn, colors in _each_trajectory(fitted, found, truth, truth_y0, data, held, selection, points):
        t_lo, t_hi = min(t_lo, tr.t[0]), max(t_hi, drawn.fitted.t[-1])
        for i, ax in enumerate(axes):
            ax.plot(*_column(drawn.fitted, i), color=colors["fitted"], lw=1.6, zorder=2, gid=f"fitted:{k}")
            fallback[i].append(drawn.fitted.y[:, i])
            if drawn.discovered is not None:
                ax.plot(
                    *_column(drawn.discovered, i),
                    color=colors["discovered"],
                    lw=1.6,
                    ls="-.",
                    zorder=2.5,
                    gid=f"discovered:{k}",
                )
            if drawn.truth is not None:
                ax.plot(*_column(drawn.truth, i), gid=f"truth:{k}", **TRUTH_STYLE)
                limits[i].append(drawn.truth.y[:, i])
        for c, i in enumerate(obs):
            ax = axes[i]
            ax.plot(tr.t, tr.y[:, c], "o", ms=3.2, color=colors["data"], zorder=3, gid=f"data:{k}")
            limits[i].append(tr.y[:, c])
            if k in held:
                ax.plot(
                    held[k][0],
                    held[k][1][:, c],
                    "o",
                    ms=3.6,
                    mfc="none",
                    color=colors["data"],
                    zorder=3,
                    gid=f"held-out:{k}",
                )
                ax.axvline(tr.t[-1], color="0.5", ls=":", lw=1)
                limits[i].append(held[k][1][:, c])
    for i, ax in enumerate(axes):
        values = np.concatenate(limits[i] or fallback[i])
        ax.set_ylim(*data_limits(values, lower=sides[i].lower, upper=sides[i].upper))
        ax.set_ylabel(labels[i] + ("" if i in obs else " (not observed)"), fontsize=9)
        ax.grid(alpha=0.25)
    axes[-1].set_xlim(t_lo, t_hi)
    axes[-1].set_xlabel(time_name or time_label(model, data))
    fitted_label = "fitted model (networks)" if model.unknowns else "fitted model"
    _legend(
        fig, selection, held=bool(held), found=found is not None, truth=truth is not None, fitted_label=fitted_label
    )
    if title:
        axes[0].set_title(title, fontsize=10)
    _footnote(fig, [selection.note, _sides_note(labels, sides, range(n), truth is not None)])
    return fig


def _column(curve: Curve, i: int):
    return curve.t, curve.y[:, i]


def _bounds_note(
    nonneg: Sequence[str], margin: float = MARGIN, truth: bool = False, declared: Sequence[str] = ()
) -> str:
    spans = "the observations and the truth" if truth else "the observations"
    note = f"Axes span {spans} with a {margin:.0%} margin; curves leaving them are cut."
    if declared:
        note += f" {', '.join(declared)}: declared domain, the axis stays inside it."
    if nonneg:
        note += f" {', '.join(nonneg)}: all observations ≥ 0, so treated as nonnegative (axis starts at 0)."
    return note


def _sides_note(labels: Sequence[str], sides: Sequence[StateAxis], shown: Sequence[int], truth: bool) -> str:
    """The bounds footnote of the states ``shown``: declared domains, then the data-based guesses."""
    declared = [f"{labels[i]} in {sides[i].declared}" for i in shown if sides[i].declared]
    return _bounds_note([labels[i] for i in shown if sides[i].guessed], truth=truth, declared=declared)


@_path_form()
def plot_forecast(
    t_train,
    y_train,
    t_test,
    y_test,
    curves: dict,
    names,
    *,
    t_split=None,
    title: str = "",
    xlabel: str = "t",
    margin: float = 0.5,
) -> Figure:
    """Training data, held-out data and precomputed model curves, one axis per state.

    Parameters
    ----------
    t_train : ndarray of shape (T1,)
    y_train : ndarray of shape (T1, n)
        Data the model was trained on (filled markers).
    t_test : ndarray of shape (T2,)
    y_test : ndarray of shape (T2, n)
        Held-out data (open red markers); ``T2`` may be 0.
    curves : dict label -> (t, y)
        Model curves; ``t`` of shape (M,) and ``y`` of shape (M, n).  A list of such pairs draws
        several pieces with one legend entry.  A curve labelled ``"truth"`` is drawn dashed in
        black above the others and bounds the axes like the data.
    names : list of str, length n
        State labels.
    t_split : float, optional
        Draws a vertical line where training ends.
    title, xlabel : str
    margin : float, default 0.5
        Axes extend ``margin`` × the data's span beyond them.

    Returns
    -------
    matplotlib.figure.Figure
        Nonnegative data start their axis at 0 (said in the footnote).
    """
    n = len(names)
    fig = _figure(8, 0.9 + 2.4 * n)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    y_train = np.asarray(y_train, dtype=float).reshape(len(t_train), n)
    y_test = np.asarray(y_test, dtype=float).reshape(len(t_test), n)
    nonneg = []
    for i, ax in enumerate(axes):
        ax.plot(t_train, y_train[:, i], "o", ms=3, color="k", label="training data", zorder=3, gid="data:0")
        if len(t_test):
            ax.plot(
                t_test,
                y_test[:, i],
                "o",
                ms=3.5,
                mfc="none",
                color="tab:red",
                label="held-out data",
                zorder=3,
                gid="held-out:0",
            )
        bounds = [y_train[:, i], y_test[:, i]]
        color = 0
        for label, piece in curves.items():
            pieces = piece if isinstance(piece, list) else [piece]
            style = dict(TRUTH_STYLE) if label == "truth" else {"color": f"C{color}", "lw": 1.3, "zorder": 2}
            color += label != "truth"
            for m, (tc, yc) in enumerate(pieces):
                yc = np.asarray(yc, dtype=float).reshape(len(tc), -1)
                ax.plot(tc, yc[:, i], label=label if m == 0 else None, gid=f"{label}:0", **style)
                if label == "truth":
                    bounds.append(yc[:, i])
        if t_split is not None:
            ax.axvline(t_split, color="grey", ls=":", lw=1)
        observed = np.concatenate(bounds[:2])
        positive = bool(np.isfinite(observed).any() and np.all(observed[np.isfinite(observed)] >= 0))
        if positive:
            nonneg.append(names[i])
        ax.set_ylabel(names[i], fontsize=9)
        ax.set_ylim(*data_limits(np.concatenate(bounds), margin, nonnegative=positive))
        ax.grid(alpha=0.25)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncols=4, fontsize=7, frameon=False)
    axes[-1].set_xlabel(xlabel)
    if title:
        axes[0].set_title(title, fontsize=10)
    _footnote(fig, [_bounds_note(nonneg, margin, truth="truth" in curves)])
    return fig


# ----------------------------------------------------------------------------------------------
# training history
# ----------------------------------------------------------------------------------------------
def _history_of(fitted) -> list:
    history = fitted if isinstance(fitted, list) else getattr(fitted, "history", None)
    if not isinstance(history, list):
        raise ConfigError(f"fitted: expected a FitResult or its history list, received {describe(fitted)}.")
    return history


@_path_form()
def plot_history(fitted) -> Figure:
    """The training loss by stage, each stage divided by its first loss, on a log scale.

    Stages minimise different objectives (derivative matching, multiple shooting, whole
    trajectories), so their absolute losses are not comparable: each stage is drawn relative to
    its own first value, starting at 1, on its own segment of the iteration axis, with the
    boundaries marked and the stages named.  The legend gives each stage's absolute first and
    best loss.

    Parameters
    ----------
    fitted : FitResult or list of dict
        A result or its ``history`` (entries ``{"stage", "iteration", "loss"}``).

    Returns
    -------
    matplotlib.figure.Figure
        One axis; one line per stage (``gid`` ``"stage:<name>"``); a note when the history is empty
        or has non-finite or non-positive losses (not drawn).

    Raises
    ------
    ConfigError
        If ``fitted`` is neither.
    """
    history = _history_of(fitted)
    stages: dict = {}
    for h in history:
        stages.setdefault(h["stage"], []).append(float(h["loss"]))
    fig = _figure(7, 3.6)
    ax = fig.subplots()
    offset, skipped = 0, 0
    for j, (stage, losses) in enumerate(stages.items()):
        v = np.asarray(losses)
        ok = np.isfinite(v) & (v > 0)
        skipped += int((~ok).sum())
        x = np.arange(offset, offset + v.size)
        if ok.any():
            first = v[ok][0]
            label = f"{stage}: {v[ok][0]:.3g} → best {v[ok].min():.3g}"
            ax.plot(x[ok], v[ok] / first, color=f"C{j}", lw=1.4, label=label, gid=f"stage:{stage}")
        if offset:
            ax.axvline(offset - 0.5, color="0.4", ls="--", lw=1)
        ax.text(
            offset + 0.01 * max(len(history), 1),
            1.0,
            stage,
            transform=ax.get_xaxis_transform(),
            fontsize=8,
            va="top",
            ha="left",
            color=f"C{j}",
        )
        offset += v.size
    if not stages:
        ax.text(0.5, 0.5, "no training iterations recorded", transform=ax.transAxes, ha="center", va="center")
    else:
        ax.set_yscale("log")
        ax.legend(fontsize=7, loc="best", title="stage: first loss → best", title_fontsize=7)
    ax.set_xlabel("iteration (stages in order; dashed lines: stage boundaries)")
    ax.set_ylabel("loss ÷ the stage's first loss")
    ax.grid(alpha=0.25, which="both")
    _footnote(
        fig,
        [
            "Each stage minimises its own objective; compare within a stage, not across a boundary.",
            f"{skipped} non-finite or non-positive losses not drawn." if skipped else "",
        ],
    )
    return fig


plot_loss = plot_history
"""The older name of :func:`plot_history` (``plot_loss(path, history)`` writes the PNG)."""


# ----------------------------------------------------------------------------------------------
# phase portraits
# ----------------------------------------------------------------------------------------------
def _phase_axes(ax, names, points: list, curves: list, sides: Sequence, bounds: list, margin: float) -> None:
    """Draw observed points and model curves of two states; the points (and ``bounds``, the truth) set the limits.

    ``points`` and ``curves`` are ``(x, y, style)`` triples, ``bounds`` ``(x, y)`` pairs, ``sides`` one
    :class:`StateAxis` per axis; without any finite point or bound on an axis, the curves set its limits.
    """
    for xs, ys, style in points + curves:
        ax.plot(xs, ys, **style)
    for axis, setter in ((0, ax.set_xlim), (1, ax.set_ylim)):
        chosen = [p[axis] for p in points] + [b[axis] for b in bounds]
        if not any(np.isfinite(c).any() for c in chosen):
            chosen = [c[axis] for c in curves]
        values = np.concatenate(chosen) if chosen else []
        setter(*data_limits(values, margin, lower=sides[axis].lower, upper=sides[axis].upper))
    ax.set_xlabel(names[0], fontsize=9)
    ax.set_ylabel(names[1], fontsize=9)
    ax.grid(alpha=0.25)


def _phase_from_arrays(y_data, curves: dict, names, margin: float | None = None) -> Figure:
    """The older ``plot_phase(path, y_data, curves, names)`` form: data points and precomputed (M, 2) curves.

    The axes span the data (and a ``"truth"`` curve) with ``margin`` (default 15%) beyond them."""
    margin = MARGIN if margin is None else margin
    y_data = np.asarray(y_data, dtype=float)
    nonneg = [bool(np.all(y_data[np.isfinite(y_data[:, a]), a] >= 0)) for a in (0, 1)]
    sides = [StateAxis(0.0 if p else -math.inf, math.inf, "", p) for p in nonneg]
    fig = _figure(5, 5)
    ax = fig.subplots()
    pts = [
        (
            y_data[:, 0],
            y_data[:, 1],
            {"ls": "none", "marker": "o", "ms": 3, "color": "0.25", "label": "data", "zorder": 3},
        )
    ]
    lines, bounds = [], []
    for j, (label, c) in enumerate(curves.items()):
        c = np.asarray(c, dtype=float)
        style = dict(TRUTH_STYLE) if label == "truth" else {"color": f"C{j}", "lw": 1.3}
        lines.append((c[:, 0], c[:, 1], {**style, "label": label}))
        if label == "truth":
            bounds.append((c[:, 0], c[:, 1]))
    _phase_axes(ax, names, pts, lines, sides, bounds, margin)
    ax.legend(fontsize=7)
    _footnote(fig, [_bounds_note([n for n, p in zip(names, nonneg, strict=True) if p], margin, "truth" in curves)])
    return fig


@_path_form(_phase_from_arrays)
def plot_phase(
    result,
    data: Dataset | None = None,
    *,
    states: Sequence | None = None,
    found=None,
    truth=None,
    truth_initial_states=None,
    trajectories=None,
    held_out=None,
    names: Sequence[str] | None = None,
    title: str | None = None,
    limit: int = MAX_TRAJECTORIES,
    points: int = 300,
) -> Figure:
    """Phase portrait of two states: observations and model trajectories of every trajectory.

    Parameters
    ----------
    result : FitResult or Discovery
        Its model is simulated from its initial state of each trajectory.
    data : Dataset, optional
        Default ``result.data``.
    states : pair of str or int, optional
        The two states (names or model indices; default the first two).
    found : Discovery, optional
        Also draws the discovered model (dash-dot).
    truth : HybridModel or sequence of (t, y), optional
        As in :func:`plot_fit`; dashed black, on top.
    truth_initial_states : array of shape (K, n_states), optional
    trajectories : int or sequence of int, optional
    held_out : (t, y) or mapping int -> (t, y), optional
        Held-out observations (open markers); the curves extend over them.
    names : sequence of str, optional
        Labels of the model's states.
    title : str, optional
    limit : int, default 6
    points : int, default 300

    Returns
    -------
    matplotlib.figure.Figure
        One axis; limits span the observations (and truth) with a margin, inside the states' declared
        domains (an undeclared lower side at 0 for a state whose observations are all ≥ 0).

    Raises
    ------
    ConfigError
        For a model with fewer than two states, unknown ``states``, or bad selections.
    """
    data, model, labels, obs, held, selection, sides = _setup(
        result, data, names, held_out, trajectories, limit, "plot_phase"
    )
    if len(model.states) < 2:
        raise ConfigError(f"plot_phase: needs a model with two states or more, received {len(model.states)}.")
    pair = _state_pair(model, states)
    truth_y0 = _initial_states(result, "result") if truth_initial_states is None else truth_initial_states
    column = {i: c for c, i in enumerate(obs)}
    pts, lines, bounds = [], [], []
    for k, tr, drawn, colors in _each_trajectory(result, found, truth, truth_y0, data, held, selection, points):
        if all(i in column for i in pair):
            a, b = (column[i] for i in pair)
            pts.append(
                (
                    tr.y[:, a],
                    tr.y[:, b],
                    {"ls": "none", "marker": "o", "ms": 3.2, "color": colors["data"], "zorder": 3, "gid": f"data:{k}"},
                )
            )
            if k in held:
                yh = held[k][1]
                pts.append(
                    (
                        yh[:, a],
                        yh[:, b],
                        {
                            "ls": "none",
                            "marker": "o",
                            "ms": 3.6,
                            "mfc": "none",
                            "color": colors["data"],
                            "zorder": 3,
                            "gid": f"held-out:{k}",
                        },
                    )
                )
        p, q = pair
        lines.append(
            (
                drawn.fitted.y[:, p],
                drawn.fitted.y[:, q],
                {"color": colors["fitted"], "lw": 1.5, "zorder": 2, "gid": f"fitted:{k}"},
            )
        )
        if drawn.discovered is not None:
            lines.append(
                (
                    drawn.discovered.y[:, p],
                    drawn.discovered.y[:, q],
                    {"color": colors["discovered"], "lw": 1.5, "ls": "-.", "zorder": 2.5, "gid": f"discovered:{k}"},
                )
            )
        if drawn.truth is not None:
            lines.append((drawn.truth.y[:, p], drawn.truth.y[:, q], {**TRUTH_STYLE, "gid": f"truth:{k}"}))
            bounds.append((drawn.truth.y[:, p], drawn.truth.y[:, q]))
    fig = _figure(6, 6.2)
    ax = fig.subplots()
    _phase_axes(ax, [labels[i] for i in pair], pts, lines, [sides[i] for i in pair], bounds, MARGIN)
    _legend(
        fig,
        selection,
        held=bool(held),
        found=found is not None,
        truth=truth is not None,
        fitted_label="fitted model (networks)" if model.unknowns else "fitted model",
    )
    if title:
        ax.set_title(title, fontsize=10)
    _footnote(fig, [selection.note, _sides_note(labels, sides, pair, truth is not None)])
    return fig


def _state_pair(model, states) -> tuple[int, int]:
    if states is None:
        return (0, 1)
    try:
        first, second = states
    except (TypeError, ValueError):
        raise ConfigError(f"states: expected two state names or indices, received {describe(states)}.") from None
    out = []
    for s in (first, second):
        if isinstance(s, str) and s in model.state_names:
            out.append(model.state_names.index(s))
        elif isinstance(s, (int, np.integer)) and not isinstance(s, bool) and 0 <= s < len(model.states):
            out.append(int(s))
        else:
            raise ConfigError(f"states: {s!r} is not a state of the model {model.state_names} (or an index of one).")
    if out[0] == out[1]:
        raise ConfigError(f"states: expected two different states, received {describe(states)}.")
    return out[0], out[1]


# ----------------------------------------------------------------------------------------------
# unknown functions: network against closed form
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnknownSamples:
    """One unknown's network output and closed form along simulated trajectories.

    Attributes
    ----------
    name : str
    args : tuple of str
        Its declared arguments.
    t : ndarray of shape (N,)
        Sample times (all trajectories, one after the other; an unknown applied in several places
        has the samples of each application, one after the other, within each trajectory).
    trajectory : ndarray of int, shape (N,)
        Trajectory of each sample.
    arguments : ndarray of shape (N, n_args)
        The arguments' values at the samples.
    network : ndarray of shape (N,) or None
        The trained network's output (None without a fitted model).
    closed_form : ndarray of shape (N,)
        The discovered expression.
    adjusted : ndarray of shape (N,) or None
        The expression plus the change in the known part of its equation, when discovery's refit
        moved the known parameters: the like-for-like comparison with the network.
    expression : sympy.Expr
        The closed form.
    symbols : tuple of sympy.Symbol
        The arguments as symbols (for :meth:`closed_form_at`).
    """

    name: str
    args: tuple
    t: np.ndarray
    trajectory: np.ndarray
    arguments: np.ndarray
    network: np.ndarray | None
    closed_form: np.ndarray
    adjusted: np.ndarray | None
    expression: sp.Expr
    symbols: tuple

    def closed_form_at(self, values: np.ndarray) -> np.ndarray:
        """The closed form at argument values of shape (N, n_args); shape (N,)."""
        return _evaluate(self.expression, self.symbols, np.asarray(values, dtype=float), f"closed form of {self.name}")

    @property
    def reference(self) -> np.ndarray:
        """What the network is compared with: ``adjusted`` when present, else ``closed_form``."""
        return self.adjusted if self.adjusted is not None else self.closed_form

    @property
    def label(self) -> str:
        """``"U(x, y)"``."""
        return f"{self.name}({', '.join(self.args)})"

    def rms_difference(self) -> float:
        """RMS of network − reference (NaN without a network or samples)."""
        if self.network is None or not self.t.size:
            return math.nan
        return float(np.sqrt(np.mean((self.network - self.reference) ** 2)))


def _columns_along(model, y0, tr, data: Dataset, k: int, t: np.ndarray):
    """Columns (states, time, inputs) of ``model`` simulated along trajectory ``k`` at ``t``; and the finite rows."""
    y = simulate_or_nan(model, y0, t, data=data, trajectory=k)
    cols = {str(s): y[:, i] for i, s in enumerate(model.states)}
    cols[str(model.time)] = t
    if model.inputs:
        idx = [data.input_names.index(u) for u in model.input_names]
        interp = InputInterpolator([tr.u_t], [tr.u[:, idx]], data.interpolation, torch.float64)
        u = interp(torch.as_tensor(t), torch.zeros(t.size, dtype=torch.long)).numpy()
        cols.update({name: u[:, j] for j, name in enumerate(model.input_names)})
    return cols, np.all(np.isfinite(y), axis=1)


def _evaluate(expr, args, values: np.ndarray, where: str) -> np.ndarray:
    fn = sp.lambdify(list(args), as_expression(expr, where), modules="numpy")
    return np.broadcast_to(np.asarray(fn(*values.T), dtype=float), (values.shape[0],)).copy()


def _known_part_change(model, found, name: str):
    """The change the refit made to the known part of ``name``'s equation (an expression), or None."""
    if len(model.unknowns[name].calls) > 1:
        return None  # applied in several places: no one known part to adjust
    call = model.unknowns[name].call
    homes = [st for st, rhs in model.equations.items() if rhs.has(call)]
    if len(homes) != 1 or sp.diff(model.equations[homes[0]], call) != 1:
        return None
    known = model.equations[homes[0]].xreplace({call: sp.Integer(0)})
    delta = sp.expand(known.subs(found.model.parameter_values()) - known.subs(model.parameter_values()))
    return None if delta == 0 else delta


def unknown_samples(
    found,
    fitted=None,
    data: Dataset | None = None,
    *,
    trajectories=None,
    density: int = 4,
    limit: int = MAX_TRAJECTORIES,
) -> dict:
    """Each unknown's network output and closed form along the simulated trajectories.

    Parameters
    ----------
    found : Discovery
    fitted : FitResult, optional
        The network model: it is simulated, and its networks are evaluated, along each
        trajectory.  Without it the discovered model is simulated and only the closed form is
        evaluated (``network`` is None).
    data : Dataset, optional
        Default ``fitted.data``, else ``found.data``.
    trajectories : int or sequence of int, optional
        Default: all (at most ``limit``).
    density : int, default 4
        Samples per observation interval.
    limit : int, default 6

    Returns
    -------
    dict name -> UnknownSamples

    Raises
    ------
    ConfigError
        Without data or initial states, or if ``found`` has an unknown that the fitted model lacks.
    """
    source = fitted if fitted is not None else found
    data = _data_of(
        source,
        data if data is not None else getattr(found, "data", None) if fitted is None else data,
        "unknown_samples",
    )
    model = source.model
    y0s = _initial_states(source, "fitted" if fitted is not None else "found")
    selection = select_trajectories(data.n_trajectories, trajectories, limit)
    if fitted is not None:
        for name in found.unknowns:
            if name not in model.unknowns:
                raise ConfigError(
                    f"found: unknown {name!r} is not an unknown of the fitted model {sorted(model.unknowns)}."
                )
    parts = {name: [] for name in found.unknowns}
    nets = model.networks() if fitted is not None else {}
    for k in selection.indices:
        tr = data.trajectories[k]
        t = np.concatenate(
            [np.linspace(a, b, density, endpoint=False) for a, b in zip(tr.t[:-1], tr.t[1:], strict=True)]
        )
        t = np.append(t, tr.t[-1])
        cols, ok = _columns_along(model, y0s[k], tr, data, k, t)
        for name, expr in found.unknowns.items():
            args = found.details[name].args if name in found.details else model.unknowns[name].args
            spec = model.unknowns.get(name)
            # an unknown applied in several places: the samples of all its applications
            calls = spec.calls if spec is not None and tuple(args) == spec.args else (tuple(args),)
            z = np.concatenate([np.stack([cols[str(a)] for a in call], axis=1)[ok] for call in calls])
            closed = _evaluate(expr, args, z, f"found.unknowns[{name!r}]")
            network = adjusted = None
            if fitted is not None:
                net = nets[name]
                dtype = next(iter(net.parameters()), torch.zeros((), dtype=torch.float64)).dtype
                with torch.no_grad():
                    network = net(torch.as_tensor(z, dtype=dtype)).reshape(-1).double().numpy()
                delta = _known_part_change(model, found, name)
                if delta is not None and {str(v) for v in delta.free_symbols} <= set(cols):
                    syms = sorted(delta.free_symbols, key=str)
                    values = np.stack([cols[str(v)][ok] for v in syms], axis=1)
                    adjusted = closed + _evaluate(delta, syms, values, f"change in the known part of {name}")
            times = np.tile(t[ok], len(calls))
            parts[name].append((times, np.full(times.size, k), z, network, closed, adjusted))
    out = {}
    for name, pieces in parts.items():
        args = found.details[name].args if name in found.details else model.unknowns[name].args

        def joined(i, pieces=pieces):
            return None if pieces[0][i] is None else np.concatenate([p[i] for p in pieces])

        out[name] = UnknownSamples(
            name,
            tuple(str(a) for a in args),
            *(joined(i) for i in range(6)),
            expression=found.unknowns[name],
            symbols=tuple(args),
        )
    return out


def plot_unknowns(
    found,
    fitted=None,
    *,
    data: Dataset | None = None,
    unknowns: Sequence[str] | None = None,
    trajectories=None,
    time_name: str | None = None,
    limit: int = MAX_TRAJECTORIES,
    samples: Mapping | None = None,
) -> Figure:
    """Each unknown's trained network against its discovered closed form.

    Per unknown, two axes: along the trajectories over time (network: thick translucent line;
    closed form: dashed black; the closed form plus the refit's change in the known part, when
    there is one: dotted), and against its arguments — for one argument a scatter of the network
    with the closed form as a curve, for two a filled contour map of the closed form with the
    network's values as coloured points on the same colour scale (agreement: points vanish into
    the background), for more a network-vs-closed-form scatter around the diagonal.

    Parameters
    ----------
    found : Discovery
    fitted : FitResult, optional
        The network model.  Without it only the closed form is drawn, along the discovered
        model's own trajectories.
    data : Dataset, optional
        Default ``fitted.data`` (``found.data`` without ``fitted``).
    unknowns : sequence of str, optional
        Which unknowns (default all).
    trajectories : int or sequence of int, optional
    time_name : str, optional
        x-axis label of the time axes.
    limit : int, default 6
    samples : mapping name -> UnknownSamples, optional
        Precomputed :func:`unknown_samples` (to avoid simulating twice).

    Returns
    -------
    matplotlib.figure.Figure
        ``2 × len(unknowns)`` axes (plus a colour bar per two-argument unknown).

    Raises
    ------
    ConfigError
        For an unknown ``found`` does not have, or as :func:`unknown_samples`.
    """
    names = list(found.unknowns) if unknowns is None else [str(u) for u in unknowns]
    missing = [u for u in names if u not in found.unknowns]
    if missing or not names:
        raise ConfigError(f"unknowns: expected names among {sorted(found.unknowns)}, received {describe(unknowns)}.")
    if samples is None:
        samples = unknown_samples(found, fitted, data, trajectories=trajectories, limit=limit)
    model = (fitted or found).model
    used = data if data is not None else (fitted.data if fitted is not None else found.data)
    xlabel = time_name or time_label(model, used)
    fig = _figure(11, 0.6 + 3.3 * len(names))
    grid = fig.subplots(len(names), 2, squeeze=False)
    shown = sorted({int(k) for s in samples.values() for k in np.unique(s.trajectory)})
    for row, name in enumerate(names):
        s = samples[name]
        _unknown_over_time(grid[row, 0], s, shown, xlabel)
        _unknown_against_arguments(fig, grid[row, 1], s, shown)
    notes = (
        []
        if fitted is not None
        else ["No fitted model given: the closed form along the discovered model's trajectories."]
    )
    total = used.n_trajectories if used is not None else len(shown)
    if len(shown) < total:
        notes.append(select_trajectories(total, shown, limit=total).note)
    _footnote(fig, notes)
    return fig


def _split(s: UnknownSamples, k: int, values):
    keep = s.trajectory == k
    return s.t[keep], values[keep]


def _unknown_over_time(ax, s: UnknownSamples, shown: list, xlabel: str) -> None:
    many = len(shown) > 1
    for j, k in enumerate(shown):
        c = f"C{j % 10}" if many else "C0"
        if s.network is not None:
            ax.plot(
                *_split(s, k, s.network),
                color=c,
                lw=3,
                alpha=0.45,
                zorder=2,
                gid=f"network:{k}",
                label=("network" if j == 0 else None),
            )
        ax.plot(
            *_split(s, k, s.closed_form),
            color="k" if not many else c,
            ls="--",
            lw=1.2,
            zorder=3,
            gid=f"closed form:{k}",
            label=("closed form" if j == 0 else None),
        )
        if s.adjusted is not None:
            ax.plot(
                *_split(s, k, s.adjusted),
                color="C3",
                ls=":",
                lw=1.4,
                zorder=3,
                gid=f"adjusted:{k}",
                label=("closed form + change in known part" if j == 0 else None),
            )
    rms = s.rms_difference()
    ax.set_title(
        f"{s.label} along the trajectories" + (f" (RMS difference {rms:.3g})" if math.isfinite(rms) else ""), fontsize=9
    )
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(s.label, fontsize=9)
    ax.grid(alpha=0.25)
    ax.legend(fontsize=7, loc="best")


def _unknown_against_arguments(fig: Figure, ax, s: UnknownSamples, shown: list) -> None:
    n_args = s.arguments.shape[1] if s.arguments.ndim == 2 else 0
    values = s.network if s.network is not None else s.closed_form
    what = "network" if s.network is not None else "closed form"
    if n_args == 1:
        z = s.arguments[:, 0]
        for j, k in enumerate(shown):
            keep = s.trajectory == k
            ax.plot(
                z[keep],
                values[keep],
                "o",
                ms=2.5,
                alpha=0.6,
                color=f"C{j % 10}",
                gid=f"{what}:{k}",
                label=(what if j == 0 else None),
            )
        if z.size:
            line = np.linspace(np.nanmin(z), np.nanmax(z), 200)
            curve = s.closed_form_at(line[:, None])
            ax.plot(line, curve, color="k", lw=1.2, ls="--", zorder=3, label="closed form")
        if s.adjusted is not None:
            ax.plot(z, s.adjusted, "x", ms=3, color="C3", label="closed form + change in known part")
        ax.set_xlabel(s.args[0], fontsize=9)
        ax.set_ylabel(s.label, fontsize=9)
        ax.legend(fontsize=7, loc="best")
        ax.set_title(f"{s.label} against {s.args[0]}", fontsize=9)
    elif n_args == 2 and s.t.size:
        a, b = s.arguments[:, 0], s.arguments[:, 1]
        ga, gb = np.meshgrid(np.linspace(a.min(), a.max(), 80), np.linspace(b.min(), b.max(), 80))
        surface = s.closed_form_at(np.stack([ga.ravel(), gb.ravel()], axis=1)).reshape(ga.shape)
        lo = np.nanmin([np.nanmin(surface), np.nanmin(values)])
        hi = np.nanmax([np.nanmax(surface), np.nanmax(values)])
        levels = np.linspace(lo, hi if hi > lo else lo + 1.0, 15)
        filled = ax.contourf(ga, gb, surface, levels=levels, cmap="viridis", extend="both")
        every = max(1, a.size // 150)  # a few points per trajectory stretch keep the map readable
        if s.network is not None:
            ax.scatter(
                a[::every],
                b[::every],
                c=values[::every],
                cmap="viridis",
                vmin=levels[0],
                vmax=levels[-1],
                s=16,
                edgecolors="k",
                linewidths=0.4,
                zorder=3,
                gid="network points",
            )
        else:
            ax.plot(a[::every], b[::every], "k.", ms=2, zorder=3, gid="sample points")
        fig.colorbar(filled, ax=ax, label=s.label)
        ax.set_xlabel(s.args[0], fontsize=9)
        ax.set_ylabel(s.args[1], fontsize=9)
        ax.set_title(
            f"closed form {s.label} (map) and network (points, same colours)"
            if s.network is not None
            else f"closed form {s.label} (map) and where the trajectories run (dots)",
            fontsize=9,
        )
    else:
        ref = s.reference
        ax.plot(ref, values, "o", ms=2.5, alpha=0.6, gid=f"{what} points")
        finite = np.concatenate([ref[np.isfinite(ref)], values[np.isfinite(values)]])
        if finite.size:
            ax.plot([finite.min(), finite.max()], [finite.min(), finite.max()], "k--", lw=1, label="equal")
        ax.set_xlabel(f"closed form {s.label}", fontsize=9)
        ax.set_ylabel(f"{what} {s.label}", fontsize=9)
        ax.set_title(f"{what} against closed form", fontsize=9)
    ax.grid(alpha=0.25)


# ----------------------------------------------------------------------------------------------
# studies
# ----------------------------------------------------------------------------------------------
@_path_form()
def plot_metric_lines(x, series: dict, *, xlabel: str, ylabel: str, title: str = "", logy: bool = False) -> Figure:
    """One line per method of a metric against a setting (e.g. RMSE against training days).

    Parameters
    ----------
    x : sequence of float, length k
    series : dict label -> sequence of float, length k (non-finite values are skipped)
    xlabel, ylabel, title : str
    logy : bool
        Logarithmic y axis.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = _figure(6, 3.6)
    ax = fig.subplots()
    x = np.asarray(x, dtype=float)
    for label, values in series.items():
        v = np.asarray(values, dtype=float)
        ok = np.isfinite(v)
        ax.plot(x[ok], v[ok], "o-", label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


@_path_form()
def plot_recovery(rows: list) -> Figure:
    """Recovery study: structure rate and coefficient error against noise, udesci against SINDy alone.

    Parameters
    ----------
    rows : list of dict
        One per noise level, as returned by :func:`udesci.study.summarize`
        (``noise``, ``structure_rate``, ``beta_error``, ``gamma_error`` and the
        ``sindy_`` / ``sindy_bic_`` counterparts).

    Returns
    -------
    matplotlib.figure.Figure
    """
    noise = np.array([r["noise"] for r in rows], dtype=float)

    def col(key):
        return np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)

    fig = _figure(10, 3.8)
    a1, a2 = fig.subplots(1, 2)
    methods = (
        ("", "udesci", "C0"),
        ("sindy_", "SINDy alone (threshold 0.1)", "C3"),
        ("sindy_bic_", "SINDy alone (threshold by BIC)", "C1"),
    )
    for prefix, label, color in methods:
        v = col(f"{prefix}structure_rate")
        ok = np.isfinite(v)
        a1.plot(noise[ok], 100 * v[ok], "o-", color=color, label=label)
    a1.set_ylim(-5, 105)
    a1.set_ylabel("correct structure (% of runs)")
    a1.set_title("structure recovered", fontsize=10)
    for prefix, label, color in methods[:2]:
        for key, style in (("beta_error", "o-"), ("gamma_error", "s--")):
            v = col(f"{prefix}{key}")
            ok = np.isfinite(v) & (v > 0)
            name = "β" if key.startswith("beta") else "γ"
            a2.plot(noise[ok], 100 * v[ok], style, color=color, label=f"{label}: {name}")
    a2.set_yscale("log")
    a2.set_ylabel("median relative error (%)")
    a2.set_title("interaction coefficients β, γ", fontsize=10)
    for ax in (a1, a2):
        ax.set_xscale("log" if np.all(noise > 0) and noise.size > 1 else "linear")
        ax.set_xlabel("noise (fraction of each state's mean)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return fig
