"""Running the weather pipeline: every model per case and training window, forecast, compare, report."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...errors import ConfigError
from ...evaluate import write_text_atomic
from .data import observed_at
from .forecast import HORIZON, METHODS, baselines, forecast, forecast_starts
from .models import CASES, Case, build_models, case_frame, discovery_options, fit_options

WINDOWS = (1, 3, 7)
FAST_WINDOWS = (1,)


@dataclass(frozen=True)
class WindowModels:
    """The models trained on one window of a case.

    Attributes
    ----------
    window : int
        Days of training data.
    t_end : float
        End of the training window (hours).
    train : pandas.DataFrame
        The training rows.
    data : Dataset
        The training window as a Dataset (with the inputs).
    fits : dict
        ``"physics"``, ``"UDE"``, ``"neural ODE"`` -> FitResult.
    found : Discovery
        The UDE's unknown in closed form.
    """

    window: int
    t_end: float
    train: pd.DataFrame
    data: object
    fits: dict
    found: object


@dataclass(frozen=True)
class CaseRun:
    """Result of :func:`run_case`.

    Attributes
    ----------
    summary : dict
        JSON-ready: ``title``, ``time``, ``rolling``, ``next24``, ``windows``, ``test``.
    frame : pandas.DataFrame
        The whole series.
    full : Dataset
        The whole series as a Dataset (inputs for forecasts anywhere in it).
    rolling_starts : ndarray of shape (B,)
        Start times of the rolling test forecasts.
    last : WindowModels
        The models of the last (longest) training window.
    """

    summary: dict
    frame: pd.DataFrame
    full: object
    rolling_starts: np.ndarray
    last: WindowModels


def run_case(
    case: Case,
    *,
    windows=WINDOWS,
    seed: int = 0,
    fast: bool = False,
    quiet: bool = False,
    frame: pd.DataFrame | None = None,
) -> CaseRun:
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
    CaseRun
        ``summary``: ``title``, ``time``, the ``rolling`` and ``next24`` RMSE
        tables ``{method: {"1 d": rmse, ...}}``, ``windows`` (per-window details:
        fitted parameters, discovered ``U``, fit seconds) and ``test``
        (description of the test set); beside it the data and the models of the
        last window (for reports).

    Raises
    ------
    ConfigError
        For an empty or non-positive window, or one leaving no test data.
    """
    from ... import Dataset, discover, fit
    from ...evaluate import rmse

    frame = case_frame(case) if frame is None else frame
    windows = tuple(int(w) for w in windows)
    if not windows or min(windows) < 1:
        raise ConfigError(f"windows: expected positive whole days, received {windows!r}.")
    first = float(frame["t"].min())
    test_first = first + 24.0 * max(windows)
    rolling_starts = forecast_starts(frame, test_first)
    if rolling_starts.size == 0:
        raise ConfigError(f"windows: a {max(windows)}-day training window leaves no full test day in the data.")
    columns = [c for c in ("S", "C", "hs", "hc") if c in frame.columns]
    full = Dataset.from_frame(frame, time="t", states=["T"], inputs=columns, interpolation=case.interpolation)
    obs_roll = observed_at(frame, rolling_starts[:, None] + np.arange(HORIZON + 1)[None, :])
    rolling = {m: {} for m in METHODS}
    next24 = {m: {} for m in METHODS}
    details = {}
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
            obs = obs_roll if label == "rolling" else observed_at(frame, t_end + np.arange(HORIZON + 1))[None, :]
            if not np.isfinite(obs).all():
                for m in METHODS:
                    table[m][col] = math.nan
                continue
            preds = baselines(frame, train, starts)
            y0 = obs[:, :1]
            for name, model in closed.items():
                preds[name] = forecast(model, full, starts, y0)[..., 0]
            for m in METHODS:
                table[m][col] = rmse(preds[m][:, 1:], obs[:, 1:])  # inf if a forecast diverged
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
        last = WindowModels(window=w, t_end=t_end, train=train, data=data, fits=fits, found=found)
    summary = {
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
    }
    return CaseRun(summary=summary, frame=frame, full=full, rolling_starts=rolling_starts, last=last)


def format_table(table: dict, title: str) -> str:
    """Plain-text table ``method × window`` of RMSE values.

    Parameters
    ----------
    table : dict method -> {window label -> RMSE}
    title : str
        First line.

    Returns
    -------
    str
        ``diverged`` where an RMSE is not finite.
    """
    cols = list(next(iter(table.values())).keys())
    lines = [title, f"{'method':<14}" + "".join(f"{c:>10}" for c in cols)]
    for m, row in table.items():
        cells = "".join(f"{row[c]:>10.3f}" if math.isfinite(row[c]) else f"{'diverged':>10}" for c in cols)
        lines.append(f"{m:<14}{cells}")
    return "\n".join(lines)


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

    Runs with one torch thread (one state: more threads only add synchronisation) and
    gives the caller its own thread setting back.

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
        ``cases`` (per case: ``title``, ``time``, ``rolling`` and ``next24`` RMSE
        tables, ``windows`` details, ``test``), ``seconds``, ``seed``, ``fast``,
        ``windows_days``, ``horizon_h``, ``check``.

    Raises
    ------
    ConfigError
        For an unknown case or invalid windows.
    """
    from ...evaluate import jsonable, torch_threads

    started = time.perf_counter()
    bad = [c for c in cases if c not in CASES]
    if bad or not cases:
        raise ConfigError(f"cases: expected some of {sorted(CASES)}, received {list(cases)!r}.")
    with torch_threads(1, 1):
        results = {key: run_case(CASES[key], windows=windows, seed=seed, fast=fast, quiet=quiet) for key in cases}
        summary = {
            "seed": seed,
            "fast": fast,
            "windows_days": list(windows),
            "horizon_h": HORIZON,
            "cases": {k: run.summary for k, run in results.items()},
        }
        longest = f"{max(windows)} d"
        first = results[cases[0]].summary["rolling"]
        summary["check"] = {
            "what": f"{cases[0]}: UDE beats persistence on rolling 24-h forecasts ({longest} window)",
            "passed": bool(first["UDE"][longest] < first["persistence"][longest]),
        }
        text = []
        for key, run in results.items():
            res = run.summary
            text.append(
                format_table(
                    res["rolling"],
                    f"{key}: rolling 24-h forecast RMSE (°C), {res['test']['n_forecasts']} forecasts, "
                    "by training window",
                )
            )
            text.append(format_table(res["next24"], f"{key}: RMSE (°C) of the 24 h right after the training window"))
        if out is not None:
            from .. import write_discovery
            from .reporting import case_report, write_weather_report

            outp = Path(out)
            outp.mkdir(parents=True, exist_ok=True)
            reports = []
            for key, run in results.items():
                write_discovery(run.last.found, outp, prefix=f"{key}_", python=False)
                if plots:
                    reports.append(case_report(outp, CASES[key], run))
            summary["seconds"] = time.perf_counter() - started
            write_text_atomic(outp / "summary.json", json.dumps(jsonable(summary), indent=2) + "\n")
            if plots:
                cmd = f"udesci example weather --seed {seed}" + (" --fast" if fast else "") + f" --out {out}"
                write_weather_report(
                    outp, results, reports, cases=cases, windows=windows, fast=fast, seed=seed, command=cmd
                )
        summary["seconds"] = time.perf_counter() - started
        if not quiet:
            print("\n\n".join(text))
            print(
                f"check: {summary['check']['what']}: {'passed' if summary['check']['passed'] else 'FAILED'}; "
                f"{summary['seconds']:.1f} s"
            )
    return summary
