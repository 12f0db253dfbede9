"""Hourly air temperature with a universal differential equation and measured forcing.

Two real data sets (copied into the project's ``data/`` folder, see ``data/README.md``):

* **Greensboro, NC, July 1981** (NREL TMY3, station 723170): hourly dry-bulb
  temperature ``T`` (°C), global horizontal irradiance (``S`` = GHI / 1000, in
  kW/m²) and total cloud cover (``C`` = tenths / 10, in [0, 1]).  Time ``t`` is
  in hours since 1981-07-01 00:00 local standard time (TMY3 stamps are
  hour-ending, so the first sample is ``t = 1``).

  * known physics (energy balance): ``dT/dt = -k (T - T_ref) + a S`` with
    learnable ``k`` (1/h), ``T_ref`` (°C) and ``a`` (°C/h per kW/m²);
  * UDE: ``dT/dt = -k (T - T_ref) + a S + U(T, C)``, the unknown ``U`` (°C/h)
    capturing what the relaxation and solar heating miss (night-time radiative
    cooling under clear skies, advection, ...);
  * pure neural ODE: ``dT/dt = N(T, S, C)``.

* **Würzburg, July 2021** (DWD station 5705, about 120 km from Heidelberg):
  hourly 2 m temperature only.  Time in hours since 2021-07-01 00:00 UTC;
  inputs are the hour of day as ``hs = sin(2π h/24)``, ``hc = cos(2π h/24)``.
  Known relaxation ``dT/dt = -k (T - T_ref)``, UDE ``... + U(T, hs, hc)``, neural
  ODE ``dT/dt = N(T, hs, hc)``.

For each training window (the first 1, 3 or 7 days) every model is trained on
that window only and then evaluated by **24-hour forecasts** started from the
observed temperature, simulated with the measured inputs:

* ``next 24 h``: one forecast from the end of the training window;
* ``rolling``: a forecast from every day boundary of the common test period
  (everything after the longest training window), pooled RMSE over all
  forecast hours — the same test set for every window.

Baselines: persistence (the last observed value), yesterday (the same hour one
day earlier), diurnal climatology (mean by hour of day over the training
window), the physics-only model with fitted coefficients, and the neural ODE.
The UDE's unknown is then discovered (:func:`udesci.discover`, polynomial
library of degree 2 in the unknown's arguments) and the closed-form model is
evaluated the same way.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sympy as sp
import torch

from ..errors import ConfigError, DataError
from ..report import keep_threads

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
GREENSBORO_FILE = "tmy3_greensboro_july1981_hourly.csv"
DWD_FILE = "dwd_wuerzburg_kitzingen_T2m_hourly_2021-07.csv"
WUERZBURG = 5705
WINDOWS = (1, 3, 7)
FAST_WINDOWS = (1,)
PREPARED_FILE = "greensboro_july1981_hourly_prepared.csv"
HORIZON = 24
METHODS = ("persistence", "yesterday", "climatology", "physics", "neural ODE", "UDE", "discovered")


def _data_path(name: str, path) -> Path:
    p = Path(path) if path is not None else DATA_DIR / name
    if not p.is_file():
        raise DataError(
            f"weather data file {os.fspath(p)!r} not found; expected the real data copied into the project's "
            f"data/ folder (see data/README.md), or pass its path."
        )
    return p


def _hour_columns(df: pd.DataFrame) -> pd.DataFrame:
    df["hs"] = np.sin(2 * np.pi * df["hour"] / 24.0)
    df["hc"] = np.cos(2 * np.pi * df["hour"] / 24.0)
    return df


def greensboro_frame(path=None) -> pd.DataFrame:
    """The Greensboro July 1981 hourly data, in model units.

    Parameters
    ----------
    path : path, optional
        The CSV (default ``data/tmy3_greensboro_july1981_hourly.csv``).

    Returns
    -------
    pandas.DataFrame with 744 rows and columns
        ``t`` (hours since 1981-07-01 00:00 LST, hour-ending stamps 1..744),
        ``hour`` (hour of day, 0..23), ``T`` (°C), ``S`` (GHI in kW/m²),
        ``C`` (total cloud cover, fraction), ``RH`` (fraction), ``wind`` (m/s),
        ``hs``, ``hc`` (sin/cos of 2π hour / 24).

    Raises
    ------
    DataError
        If the file is missing, lacks a column or holds non-finite values.
    """
    raw = pd.read_csv(_data_path(GREENSBORO_FILE, path))
    need = ["date", "time_lst", "ghi_Wm2", "total_cloud_tenths", "temp_C", "rh_pct", "wind_speed_ms"]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise DataError(f"{GREENSBORO_FILE}: missing column(s) {missing}; it has {list(raw.columns)}.")
    day = pd.to_datetime(raw["date"], format="%m/%d/%Y")
    hour_ending = raw["time_lst"].str.slice(0, 2).astype(int)  # 1..24
    t = (day - day.iloc[0]).dt.days.to_numpy() * 24.0 + hour_ending.to_numpy()
    df = pd.DataFrame(
        {
            "t": t,
            "hour": np.mod(t, 24.0),
            "T": raw["temp_C"].astype(float),
            "S": raw["ghi_Wm2"].astype(float) / 1000.0,
            "C": raw["total_cloud_tenths"].astype(float) / 10.0,
            "RH": raw["rh_pct"].astype(float) / 100.0,
            "wind": raw["wind_speed_ms"].astype(float),
        }
    )
    df = _hour_columns(df)
    if not np.isfinite(df.to_numpy()).all():
        raise DataError(f"{GREENSBORO_FILE}: non-finite values after conversion.")
    return df


def write_prepared_csv(path=None, source=None) -> Path:
    """Write the Greensboro series with a numeric time column (used by ``examples/weather.toml``).

    The TMY3 file stamps rows with a date and an hour-ending ``HH:MM`` string;
    a TOML pipeline needs a numeric time column, so this derivation adds
    ``t_h`` (hours since 1981-07-01 00:00 LST) and ``hour`` (hour of day) and
    keeps the measured columns in their original units.

    Parameters
    ----------
    path : path, optional
        Output CSV (default ``data/greensboro_july1981_hourly_prepared.csv``).
    source : path, optional
        The TMY3 July CSV (default ``data/tmy3_greensboro_july1981_hourly.csv``).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    DataError
        If the source file is missing or malformed.
    """
    raw = pd.read_csv(_data_path(GREENSBORO_FILE, source))
    df = greensboro_frame(source)
    keep = ["ghi_Wm2", "total_cloud_tenths", "temp_C", "rh_pct", "wind_speed_ms"]
    out = pd.DataFrame({"t_h": df["t"].astype(int), "hour": df["hour"].astype(int)})
    for c in keep:
        out[c] = raw[c]
    p = Path(path) if path is not None else DATA_DIR / PREPARED_FILE
    header = (
        "# Derived from tmy3_greensboro_july1981_hourly.csv by udesci.pipelines.weather.write_prepared_csv:\n"
        "# t_h = hours since 1981-07-01 00:00 local standard time (hour-ending stamps), hour = t_h mod 24;\n"
        "# other columns copied unchanged (NREL NSRDB TMY3, station 723170; see data/README.md).\n"
    )
    p.write_text(header + out.to_csv(index=False))
    return p


def dwd_frame(path=None, station: int = WUERZBURG) -> pd.DataFrame:
    """Hourly 2 m temperature of one DWD station, July 2021.

    Parameters
    ----------
    path : path, optional
        The DWD CDC export (default ``data/dwd_wuerzburg_kitzingen_T2m_hourly_2021-07.csv``).
    station : int, default 5705 (Würzburg; 2600 is Kitzingen, which has gaps)

    Returns
    -------
    pandas.DataFrame
        ``t`` (hours since 2021-07-01 00:00 UTC), ``hour`` (UTC hour, 0..23),
        ``T`` (°C), ``hs``, ``hc``.

    Raises
    ------
    DataError
        If the file is missing or holds no rows for ``station``.
    """
    raw = pd.read_csv(_data_path(DWD_FILE, path))
    rows = raw[raw["SDO_ID"] == station]
    if rows.empty:
        raise DataError(
            f"{DWD_FILE}: no rows for station {station}; stations present: {sorted(raw['SDO_ID'].unique())}."
        )
    stamp = pd.to_datetime(rows["Zeitstempel"])
    t = ((stamp - pd.Timestamp("2021-07-01T00:00:00")).dt.total_seconds() / 3600.0).to_numpy()
    df = pd.DataFrame({"t": t, "hour": np.mod(t, 24.0), "T": rows["Wert"].astype(float).to_numpy()})
    return _hour_columns(df).sort_values("t").reset_index(drop=True)


@dataclass(frozen=True)
class Case:
    """One weather data set and its models."""

    key: str
    title: str
    inputs: tuple  # inputs of the physics + UDE models
    physics_inputs: tuple
    unknown_args: tuple
    node_args: tuple
    solar: bool
    interpolation: str
    time_note: str


CASES = {
    "greensboro": Case(
        "greensboro",
        "Greensboro, NC — TMY3 July 1981 (temperature, shortwave radiation, cloud cover)",
        ("S", "C"),
        ("S",),
        ("T", "C"),
        ("T", "S", "C"),
        True,
        "cubic",
        "hours since 1981-07-01 00:00 local standard time",
    ),
    "dwd": Case(
        "dwd",
        "Würzburg (DWD 5705) — July 2021 (temperature only, hour of day as input)",
        ("hs", "hc"),
        (),
        ("T", "hs", "hc"),
        ("T", "hs", "hc"),
        False,
        "cubic",
        "hours since 2021-07-01 00:00 UTC",
    ),
}


def case_frame(case: Case) -> pd.DataFrame:
    """The data frame of a case (see :func:`greensboro_frame`, :func:`dwd_frame`)."""
    return greensboro_frame() if case.key == "greensboro" else dwd_frame()


def build_models(case: Case, t_ref: float, params: dict | None = None) -> dict:
    """The physics-only, UDE and neural-ODE models of a case.

    Parameters
    ----------
    case : Case
    t_ref : float
        Initial value of ``T_ref`` (e.g. the mean temperature of the training window).
    params : dict name -> float, optional
        Starting values for ``k``, ``T_ref``, ``a`` (e.g. the fitted physics-only
        values, so the UDE's network starts on the physics residual).

    Returns
    -------
    dict with keys ``"physics"``, ``"UDE"``, ``"neural ODE"`` -> HybridModel
    """
    from .. import HybridModel, Learnable

    T = sp.Symbol("T")
    k, T_ref, a = sp.symbols("k T_ref a")
    start = {"k": 0.2, "T_ref": t_ref, "a": 2.0, **(params or {})}
    relax = -k * (T - T_ref)
    physics = relax + (a * sp.Symbol("S") if case.solar else 0)
    pvals = {k: Learnable(start["k"]), T_ref: Learnable(start["T_ref"])}
    if case.solar:
        pvals[a] = Learnable(start["a"])
    U = sp.Function("U")(*sp.symbols(case.unknown_args))
    N = sp.Function("N")(*sp.symbols(case.node_args))
    sym = lambda names: [sp.Symbol(n) for n in names]  # noqa: E731
    return {
        "physics": HybridModel({T: physics}, pvals, sym(case.physics_inputs)),
        "UDE": HybridModel({T: physics + U}, pvals, sym(case.inputs)),
        "neural ODE": HybridModel({T: N}, {}, sym([a for a in case.node_args if a != "T"])),
    }


def fit_options(fast: bool = False) -> dict:
    """Training options (``fast``: a smoke run for tests)."""
    from .. import Shooting, Solver, WarmStart

    solver = Solver("rk4", substeps=2)
    if fast:
        return {
            "warm_start": WarmStart(iterations=100, lr=2e-2),
            "shooting": Shooting(segment_length=6, iterations=30, lr=1e-2, solver=solver),
        }
    return {
        "warm_start": WarmStart(iterations=500, lr=1e-2),
        "shooting": Shooting(segment_length=6, iterations=400, lr=5e-3, solver=solver),
    }


def discovery_options(fast: bool = False) -> dict:
    """Options of :func:`udesci.discover` for the single unknown ``U``."""
    from .. import Library, Selection

    if fast:
        sel = Selection(sweeps=1, shortlist=2, refine_iterations=3, exhaustive=1, thresholds=10)
    else:
        sel = Selection(sweeps=1, shortlist=4, refine_iterations=10, exhaustive=2)
    # refit=False: discover's refit integrates with dopri5 at rtol 1e-7, which crawls through the kinks of
    # linearly interpolated hourly inputs (hundreds of steps per solve); the shortlist refit on segments
    # already tunes coefficients and parameters against the data.
    return {"library": Library(degree=2), "selection": sel, "refit": False}


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
    from .. import InputInterpolator, Solver, integrate

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
    except (AssertionError, RuntimeError, OverflowError):
        out = np.full((len(starts), horizon + 1, len(model.states)), np.nan)
    return np.where(np.isfinite(out) & (np.abs(out) < 1e3), out, np.nan)


def _rmse(pred: np.ndarray, obs: np.ndarray) -> float:
    if pred.shape != obs.shape or not np.all(np.isfinite(pred)):
        return math.inf
    return float(np.sqrt(np.mean((pred - obs) ** 2)))


def _lookup(frame: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """Observed T at ``times`` (NaN where there is no sample)."""
    s = pd.Series(frame["T"].to_numpy(), index=np.round(frame["t"].to_numpy(), 6))
    return s.reindex(np.round(np.asarray(times, dtype=float).ravel(), 6)).to_numpy().reshape(np.shape(times))


def baselines(frame: pd.DataFrame, train: pd.DataFrame, starts: np.ndarray, horizon: int = HORIZON) -> dict:
    """Persistence, yesterday and diurnal-climatology forecasts.

    Parameters
    ----------
    frame : DataFrame
        Whole series (``t``, ``hour``, ``T``).
    train : DataFrame
        Training window (for the climatology).
    starts : array of shape (B,)
    horizon : int

    Returns
    -------
    dict name -> ndarray of shape (B, horizon + 1)
    """
    grid = starts[:, None] + np.arange(horizon + 1)[None, :]
    t0 = _lookup(frame, starts)
    clim = train.groupby(np.round(train["hour"]).astype(int) % 24)["T"].mean()
    clim = clim.reindex(range(24)).interpolate(limit_direction="both").to_numpy()
    hours = np.round(np.mod(grid, 24)).astype(int) % 24
    return {
        "persistence": np.repeat(t0[:, None], horizon + 1, axis=1),
        "yesterday": _lookup(frame, grid - 24.0),
        "climatology": clim[hours],
    }


def _starts(frame: pd.DataFrame, first: float, horizon: int = HORIZON) -> np.ndarray:
    """Day boundaries from ``first`` on whose whole forecast horizon is observed."""
    t_last = float(frame["t"].max())
    starts = np.arange(first, t_last - horizon + 1e-9, 24.0)
    ok = [np.isfinite(_lookup(frame, s + np.arange(horizon + 1))).all() for s in starts]
    return starts[np.array(ok, dtype=bool)] if len(starts) else starts


def run_case(
    case: Case,
    *,
    windows=WINDOWS,
    seed: int = 0,
    fast: bool = False,
    quiet: bool = False,
    frame: pd.DataFrame | None = None,
) -> dict:
    """Train and evaluate all models of one case for each training window.

    Parameters
    ----------
    case : Case
    windows : sequence of int
        Training window lengths in days (from the first sample).
    seed : int
    fast : bool
    quiet : bool
    frame : DataFrame, optional
        The data (default: :func:`case_frame`).

    Returns
    -------
    dict
        ``rolling`` and ``next24`` RMSE tables ``{method: {"1 d": rmse, ...}}``,
        ``windows`` (per-window details: fitted parameters, discovered ``U``,
        fit seconds), ``test`` (description of the test set) and, under
        ``"_objects"``, the fitted objects of the longest window (for reports).

    Raises
    ------
    ConfigError
        For an empty or non-positive window, or one leaving no test data.
    """
    from .. import Dataset, discover, fit

    frame = case_frame(case) if frame is None else frame
    windows = tuple(int(w) for w in windows)
    if not windows or min(windows) < 1:
        raise ConfigError(f"windows: expected positive whole days, received {windows!r}.")
    first = float(frame["t"].min())
    test_first = first + 24.0 * max(windows)
    rolling_starts = _starts(frame, test_first)
    if rolling_starts.size == 0:
        raise ConfigError(f"windows: a {max(windows)}-day training window leaves no full test day in the data.")
    columns = [c for c in ("S", "C", "hs", "hc") if c in frame.columns]
    full = Dataset.from_frame(frame, time="t", states=["T"], inputs=columns, interpolation=case.interpolation)
    obs_roll = _lookup(frame, rolling_starts[:, None] + np.arange(HORIZON + 1)[None, :])
    rolling = {m: {} for m in METHODS}
    next24 = {m: {} for m in METHODS}
    details = {}
    objects = {}
    opts = fit_options(fast)
    dopts = discovery_options(fast)
    for w in windows:
        t_end = first + 24.0 * w
        train = frame[(frame["t"] >= first) & (frame["t"] <= t_end)]
        data = full.window(first, t_end)
        col = f"{w} d"
        started = time.perf_counter()
        torch.manual_seed(seed)
        models = build_models(case, float(train["T"].mean()))
        fits = {}
        fits["physics"] = fit(models["physics"], data, seed=seed, progress=not quiet, threads=1, **opts)
        pvals = {str(s): v for s, v in fits["physics"].model.parameter_values().items()}
        torch.manual_seed(seed)
        models = build_models(case, float(train["T"].mean()), pvals)
        fits["UDE"] = fit(models["UDE"], data, seed=seed, progress=not quiet, threads=1, **opts)
        fits["neural ODE"] = fit(models["neural ODE"], data, seed=seed, progress=not quiet, threads=1, **opts)
        found = discover(fits["UDE"], seed=seed, progress=not quiet, **dopts)
        closed = {**{k: f.model for k, f in fits.items()}, "discovered": found.model}
        seconds = time.perf_counter() - started
        for label, starts in (("rolling", rolling_starts), ("next24", np.array([t_end]))):
            table = rolling if label == "rolling" else next24
            obs = obs_roll if label == "rolling" else _lookup(frame, t_end + np.arange(HORIZON + 1))[None, :]
            if not np.isfinite(obs).all():
                for m in METHODS:
                    table[m][col] = math.nan
                continue
            preds = baselines(frame, train, starts)
            y0 = obs[:, :1]
            for name, model in closed.items():
                preds[name] = forecast(model, full, starts, y0)[..., 0]
            for m in METHODS:
                table[m][col] = _rmse(preds[m][:, 1:], obs[:, 1:])
        details[col] = {
            "train_hours": [first, t_end],
            "physics_params": {k: round(v, 6) for k, v in pvals.items()},
            "ude_params": {str(s): round(v, 6) for s, v in fits["UDE"].model.parameter_values().items()},
            "discovered_U": str(found.unknowns["U"]),
            "discovered_params": {str(s): round(v, 6) for s, v in found.model.parameter_values().items()},
            "inclusion": {k: round(v, 4) for k, v in found.details["U"].inclusion.items() if v > 1e-3},
            "fit_status": {k: f.status for k, f in fits.items()},
            "seconds": round(seconds, 2),
        }
        if not quiet:
            print(f"[{case.key}] {w}-day window: U = {found.unknowns['U']}  ({seconds:.1f} s)", flush=True)
        objects = {"fits": fits, "found": found, "data": data, "train": train, "t_end": t_end, "window": w}
    return {
        "title": case.title,
        "time": case.time_note,
        "rolling": rolling,
        "next24": next24,
        "test": {
            "rolling_starts": [float(s) for s in rolling_starts],
            "n_forecasts": int(rolling_starts.size),
            "horizon_h": HORIZON,
            "test_period_hours": [float(rolling_starts[0]), float(rolling_starts[-1] + HORIZON)],
        },
        "windows": details,
        "_objects": objects,
        "_frame": frame,
        "_full": full,
        "_rolling_starts": rolling_starts,
    }


def format_table(table: dict, title: str) -> str:
    """Plain-text table ``method × window`` of RMSE values."""
    cols = list(next(iter(table.values())).keys())
    lines = [title, f"{'method':<14}" + "".join(f"{c:>10}" for c in cols)]
    for m, row in table.items():
        cells = "".join(f"{row[c]:>10.3f}" if math.isfinite(row[c]) else f"{'diverged':>10}" for c in cols)
        lines.append(f"{m:<14}{cells}")
    return "\n".join(lines)


def _case_plots(out: Path, case: Case, res: dict) -> tuple[dict, str]:
    """Forecast and RMSE-vs-window plots and the model section of a case's report."""
    from ..plots import plot_forecast, plot_metric_lines
    from ..report import model_section

    plots = {}
    windows = [int(c.split()[0]) for c in next(iter(res["rolling"].values()))]
    plots[f"{case.key}: rolling 24-h forecast RMSE against training window"] = plot_metric_lines(
        out / f"{case.key}_rmse_vs_window.png",
        windows,
        {m: [res["rolling"][m][f"{w} d"] for w in windows] for m in METHODS},
        xlabel="training window (days)",
        ylabel="24-h forecast RMSE (°C)",
        title=f"{case.key}: rolling 24-h forecasts over {res['test']['n_forecasts']} test days",
    )
    obj = res["_objects"]
    frame, full = res["_frame"], res["_full"]
    starts = res["_rolling_starts"][:7]
    y0 = _lookup(frame, starts)[:, None]
    grid = starts[:, None] + np.arange(HORIZON + 1)[None, :]
    curves = {}
    for name in ("physics", "neural ODE", "UDE"):
        fc = forecast(obj["fits"][name].model, full, starts, y0)
        curves[name] = [(grid[b], fc[b]) for b in range(len(starts))]
    fc = forecast(obj["found"].model, full, starts, y0)
    curves["discovered"] = [(grid[b], fc[b]) for b in range(len(starts))]
    train = obj["train"]
    test = frame[(frame["t"] > obj["t_end"]) & (frame["t"] <= grid[-1, -1])]
    plots[f"{case.key}: daily 24-h forecasts of the {obj['window']}-day models on the first test week"] = plot_forecast(
        out / f"{case.key}_forecasts.png",
        train["t"].to_numpy(),
        train["T"].to_numpy(),
        test["t"].to_numpy(),
        test["T"].to_numpy(),
        curves,
        ["T (°C)"],
        t_split=obj["t_end"],
        title=f"{case.key}: forecasts restarted daily from the observed temperature",
        xlabel=case.time_note,
    )
    # the report's fit plot: fitted trajectories over the training window, then the next-24-h forecast
    t_next = obj["t_end"] + np.arange(HORIZON + 1)
    held = (t_next[1:], _lookup(frame, t_next[1:])[:, None])
    preds = {}
    for name, model, y_init in (
        ("UDE", obj["fits"]["UDE"].model, obj["fits"]["UDE"].initial_states[0]),
        ("physics", obj["fits"]["physics"].model, obj["fits"]["physics"].initial_states[0]),
        ("discovered", obj["found"].model, obj["fits"]["UDE"].initial_states[0]),
    ):
        from ..report import simulate_on

        t_fit = np.linspace(float(train["t"].iloc[0]), obj["t_end"], 8 * len(train))
        fit_curve = simulate_on(model, obj["data"], y_init, t_fit)
        fc = forecast(model, full, np.array([obj["t_end"]]), _lookup(frame, np.array([obj["t_end"]]))[:, None])[0]
        preds[name] = [(t_fit, fit_curve), (t_next, fc)]
    section = model_section(
        out,
        label=f"{case.title}: models trained on {obj['window']} days",
        fitted=obj["fits"]["UDE"],
        found=obj["found"],
        data=obj["data"],
        held_out=held,
        predictions=preds,
        names=["T (°C)"],
        prefix=f"{case.key}_",
        time_label=case.time_note,
        plot_title=f"{case.key}, {obj['window']}-day models: fit, then 24-h forecast from the observed T",
    )
    return plots, section


@keep_threads
def run_pipeline(
    out: str | os.PathLike | None = None,
    seed: int = 0,
    fast: bool = False,
    quiet: bool = False,
    cases=("greensboro", "dwd"),
    windows=WINDOWS,
    plots: bool = True,
) -> dict:
    """Weather UDE pipeline: fit, forecast, compare with baselines, discover, report.

    Parameters
    ----------
    out : path, optional
        Output folder: ``report.md``, ``summary.json``, PNG plots and the
        discovered models (``<case>_equations.json``/``.tex``) of the longest
        window.
    seed : int
        Seeds network initialisation, training and discovery.
    fast : bool
        Few iterations (smoke runs and tests, well under a minute).
    quiet : bool
        No progress or printed tables.
    cases : sequence of {"greensboro", "dwd"}
    windows : sequence of int
        Training windows in days.
    plots : bool
        Write plots and the report when ``out`` is given.

    Returns
    -------
    dict
        ``cases`` (per case: ``rolling`` and ``next24`` RMSE tables, ``windows``
        details, ``test``), ``seconds``, ``seed``, ``fast``, ``check``.

    Raises
    ------
    ConfigError
        For an unknown case or invalid windows.
    """
    from ..report import discovery_latex, jsonable, write_report

    started = time.perf_counter()
    bad = [c for c in cases if c not in CASES]
    if bad or not cases:
        raise ConfigError(f"cases: expected some of {sorted(CASES)}, received {list(cases)!r}.")
    torch.set_num_threads(1)  # restored by @keep_threads
    results = {key: run_case(CASES[key], windows=windows, seed=seed, fast=fast, quiet=quiet) for key in cases}
    summary = {
        "seed": seed,
        "fast": fast,
        "windows_days": list(windows),
        "horizon_h": HORIZON,
        "cases": {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in results.items()},
    }
    longest = f"{max(windows)} d"
    first = results[cases[0]]["rolling"]
    summary["check"] = {
        "what": f"{cases[0]}: UDE beats persistence on rolling 24-h forecasts ({longest} window)",
        "passed": bool(first["UDE"][longest] < first["persistence"][longest]),
    }
    text = []
    for key, res in results.items():
        text.append(
            format_table(
                res["rolling"],
                f"{key}: rolling 24-h forecast RMSE (°C), {res['test']['n_forecasts']} forecasts, by training window",
            )
        )
        text.append(format_table(res["next24"], f"{key}: RMSE (°C) of the 24 h right after the training window"))
    if out is not None:
        outp = Path(out)
        outp.mkdir(parents=True, exist_ok=True)
        sections, extra = [], {}
        for key, res in results.items():
            found = res["_objects"]["found"]
            found.to_json(outp / f"{key}_equations.json")
            (outp / f"{key}_equations.tex").write_text(discovery_latex(found) + "\n")
            if plots:
                p, sec = _case_plots(outp, CASES[key], res)
                extra.update(p)
                sections.append(sec)
        summary["seconds"] = time.perf_counter() - started
        (outp / "summary.json").write_text(json.dumps(jsonable(summary), indent=2) + "\n")
        if plots:
            tables = {}
            for key, res in results.items():
                tables[
                    f"{key}: rolling 24-h forecast RMSE (°C) over {res['test']['n_forecasts']} test days, "
                    "by training window"
                ] = res["rolling"]
                tables[f"{key}: RMSE (°C) of the 24 h right after the training window"] = res["next24"]
                tables[f"{key}: discovered U and fitted parameters by window"] = {
                    w: {
                        "U": d["discovered_U"],
                        **{f"UDE {p}": v for p, v in d["ude_params"].items()},
                        **{f"physics {p}": v for p, v in d["physics_params"].items()},
                    }
                    for w, d in res["windows"].items()
                }
            intro = (
                "Hourly air temperature forecast with a universal differential equation whose known part is the "
                "energy balance `dT/dt = -k (T - T_ref) + a S` (S = measured shortwave radiation in kW/m², "
                "Greensboro only) and whose unknown part is a network of temperature and measured inputs. "
                f"Each model is trained on the first {', '.join(map(str, windows))} days and evaluated by 24-hour "
                "forecasts started from the observed temperature and driven by the measured inputs.  Baselines: "
                "persistence (last value), yesterday (same hour one day earlier), diurnal climatology (hourly "
                "means of the training window), the physics-only model with fitted coefficients and a pure neural "
                "ODE.  Data: see `data/README.md` (TMY3 NREL NSRDB; Quelle: Deutscher Wetterdienst)."
                + ("\n\n**Fast mode**: very few training iterations; the numbers are a smoke test." if fast else "")
            )
            opts = {k: asdict(v) for k, v in fit_options(fast).items()}
            dopts = discovery_options(fast)
            config = {
                "cases": list(cases),
                "windows_days": list(windows),
                "fit": opts,
                "discovery": {
                    "library": asdict(dopts["library"]),
                    "selection": asdict(dopts["selection"]),
                    "refit": dopts["refit"],
                },
                "forecast": {"horizon_h": HORIZON, "solver": "rk4, 4 substeps per hour"},
            }
            cmd = f"udesci example weather --seed {seed}" + (" --fast" if fast else "") + f" --out {out}"
            write_report(
                outp,
                title="Weather: hybrid temperature models with measured forcing",
                config=config,
                intro=intro,
                tables=tables,
                sections=sections,
                plots=extra,
                seed=seed,
                command=cmd,
            )
    summary["seconds"] = time.perf_counter() - started
    if not quiet:
        print("\n\n".join(text))
        print(
            f"check: {summary['check']['what']}: {'passed' if summary['check']['passed'] else 'FAILED'}; "
            f"{summary['seconds']:.1f} s"
        )
    return summary
