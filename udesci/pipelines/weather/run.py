"""Running the weather pipeline: every model per variant and training window, rolling forecasts, scores."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...errors import ConfigError
from ...evaluate import write_text_atomic
from .data import STATIONS, observed_at, station_frame, with_forecast_inputs
from .forecast import BASELINES, HORIZON, MODELS, baselines, forecast, forecast_starts, forecast_windows
from .models import (
    Variant,
    build_models,
    discovery_options,
    fit_options,
    tuned_equations,
    with_learnable_coefficients,
)
from .scores import bias_by_lead, rmse_by_lead, score_table, skill_by_lead

WINDOWS = (1, 3, 7, 14)
FAST_WINDOWS = (1,)
TARGET_WINDOW = 7
TARGET_SKILL = 0.10
TRAIN_ISSUE_EVERY = 1.0  # hours between the training windows' issue times
# discovery scores its candidates on windows that do not overlap, so the information criterion counts
# each observation once (hourly windows repeat every hour 24 times)
DISCOVERY_ISSUE_EVERY = 24.0

# The full run: the forecast setting with temperature as the one state at every station and window; the
# further variants (a dew-point state, the hindcast, winter) at the target window only, to keep the run's
# cost in bounds on a small machine.
PRIMARY = tuple(Variant(s, "forecast", ("T",)) for s in ("greensboro", "wuerzburg", "jfk"))
SECONDARY = (
    Variant("greensboro", "forecast", ("T", "D")),
    Variant("jfk", "forecast", ("T", "D")),
    Variant("greensboro", "hindcast", ("T",)),
    Variant("greensboro_jan", "forecast", ("T",)),
)
FAST = (
    Variant("greensboro", "forecast", ("T",)),
    Variant("greensboro", "hindcast", ("T",)),
    Variant("jfk", "forecast", ("T", "D")),
)


def default_plan(fast: bool = False, windows=None) -> list:
    """The variants and training windows a run covers.

    Parameters
    ----------
    fast : bool
        The smoke-run plan (three variants: both settings, both state sets; a one-day window).
    windows : sequence of int, optional
        Use these windows for every variant instead.

    Returns
    -------
    list of (Variant, tuple of int)
    """
    if fast:
        return [(v, tuple(windows or FAST_WINDOWS)) for v in FAST]
    if windows is not None:
        return [(v, tuple(windows)) for v in (*PRIMARY, *SECONDARY)]
    return [(v, WINDOWS) for v in PRIMARY] + [(v, (TARGET_WINDOW,)) for v in SECONDARY]


@dataclass(frozen=True)
class WindowRun:
    """The models trained on one window of a variant, and their rolling forecasts.

    Attributes
    ----------
    window : int
        Days of training data.
    t_end : float
        End of the training window (hours).
    train : pandas.DataFrame
        The training rows.
    data : Dataset
        The training window.
    fits : dict
        ``"physics"``, ``"UDE"``, ``"neural ODE"`` -> FitResult.
    found : Discovery
        The UDE's unknowns in closed form.
    tuned : FitResult
        The discovered structure with its coefficients (and the physics' parameters) refit on the
        forecast task (:func:`~udesci.pipelines.weather.models.with_learnable_coefficients`): the
        "discovered" forecasts and exports.
    preds : dict method -> ndarray of shape (B, horizon + 1, n_states)
        Rolling forecasts from every issue time (baselines and models).
    seconds : float
        Training and discovery time.
    """

    window: int
    t_end: float
    train: pd.DataFrame
    data: object
    fits: dict
    found: object
    tuned: object
    preds: dict
    seconds: float


@dataclass(frozen=True)
class VariantRun:
    """Result of :func:`run_variant`.

    Attributes
    ----------
    variant : Variant
    frame : pandas.DataFrame
        The whole series with the forecast inputs.
    full : Dataset
        The whole series (inputs for forecasts anywhere in it).
    starts : ndarray of shape (B,)
        Issue times of the rolling test forecasts.
    obs : ndarray of shape (B, horizon + 1, n_states)
        Observations at the forecasts' times.
    windows : dict int -> WindowRun
    summary : dict
        JSON-ready scores and details (see :func:`run_variant`).
    """

    variant: Variant
    frame: pd.DataFrame
    full: object
    starts: np.ndarray
    obs: np.ndarray
    windows: dict
    summary: dict


def _skill_json(table: dict) -> dict:
    return {m: {k: (v._asdict() if hasattr(v, "_asdict") else v) for k, v in row.items()} for m, row in table.items()}


def variant_frame(variant: Variant) -> pd.DataFrame:
    """A variant's data with the forecast inputs (:func:`~udesci.pipelines.weather.data.with_forecast_inputs`).

    Parameters
    ----------
    variant : Variant

    Returns
    -------
    pandas.DataFrame
    """
    return with_forecast_inputs(station_frame(variant.station), STATIONS[variant.station])


def run_variant(
    variant: Variant,
    *,
    windows=WINDOWS,
    test_after: int | None = None,
    seed: int = 0,
    fast: bool = False,
    quiet: bool = False,
    frame: pd.DataFrame | None = None,
) -> VariantRun:
    """Train and verify every model of one variant for each training window.

    Every window starts at the first hour with a ``Y`` input (24 h after the file's first sample); the
    test forecasts are issued at every day boundary after ``test_after`` days, the same for every window.

    Parameters
    ----------
    variant : Variant
    windows : sequence of int
        Training window lengths in days.
    test_after : int, optional
        Days after the first training hour where the test period begins (default: the longest of
        ``windows``); :func:`run_pipeline` passes the longest window of the whole run, so every window and
        variant is scored on the same days.
    seed : int
    fast : bool
    quiet : bool
    frame : DataFrame, optional
        The data (default :func:`variant_frame`).

    Returns
    -------
    VariantRun
        ``summary``: ``title``, ``clock``, ``test`` (issue times), and per window label (``"7 d"``):
        ``scores`` (per state: :func:`~udesci.pipelines.weather.scores.score_table`), ``by_lead`` (per state
        and method: ``rmse``, ``bias``, ``skill_vs_yesterday`` of leads 1..24), ``params``, ``equations``
        (discovered right-hand sides), ``fit_status`` and ``seconds``.

    Raises
    ------
    ConfigError
        For an empty or non-positive window, or one leaving no test day.
    """
    from ... import Dataset, discover, fit

    frame = variant_frame(variant) if frame is None else frame
    windows = tuple(int(w) for w in windows)
    if not windows or min(windows) < 1:
        raise ConfigError(f"windows: expected positive whole days, received {windows!r}.")
    first = float(frame["t"].min())
    test_days = max(windows) if test_after is None else int(test_after)
    starts = forecast_starts(frame, first + 24.0 * test_days)
    if starts.size == 0:
        raise ConfigError(f"windows: a {test_days}-day training period leaves no full test day in the data.")
    states = list(variant.states)
    mstates = list(variant.model_states)
    full = Dataset.from_frame(frame, time="t", states=mstates, inputs=list(variant.inputs), interpolation="cubic")
    grid = starts[:, None] + np.arange(HORIZON + 1)[None, :]
    obs = np.stack([observed_at(frame, grid, column=s) for s in states], axis=-1)
    y0 = np.stack([observed_at(frame, starts, column=s) for s in mstates], axis=-1)
    opts, dopts = fit_options(fast), discovery_options(fast)
    runs, details = {}, {}
    for w in windows:
        t_end = first + 24.0 * w
        train = frame[(frame["t"] >= first) & (frame["t"] <= t_end)]
        issues = np.arange(first, t_end - HORIZON + 1e-9, TRAIN_ISSUE_EVERY)
        data = forecast_windows(full, issues)
        started = time.perf_counter()
        start = {"T_ref": float(train["T"].mean())}  # the hindcast's reference values
        if "D" in states:
            start["D_ref"] = float(train["D"].mean())
        torch.manual_seed(seed)
        models = build_models(variant, start)
        fits = {"physics": fit(models["physics"], data, seed=seed, progress=not quiet, threads=1, **opts)}
        pvals = {str(s): v for s, v in fits["physics"].model.parameter_values().items()}
        models = build_models(variant, pvals)  # the UDE's networks start on the physics residual
        fits["UDE"] = fit(models["UDE"], data, seed=seed, progress=not quiet, threads=1, **opts)
        fits["neural ODE"] = fit(models["neural ODE"], data, seed=seed, progress=not quiet, threads=1, **opts)
        days = forecast_windows(full, np.arange(first, t_end - HORIZON + 1e-9, DISCOVERY_ISSUE_EVERY))
        found = discover(fits["UDE"], days, seed=seed, progress=not quiet, **dopts)
        # the discovered structure with its coefficients refit on the forecast task
        tuned = fit(with_learnable_coefficients(fits["UDE"].model, found), data, seed=seed, progress=not quiet,
                    threads=1, **opts)  # fmt: skip
        seconds = time.perf_counter() - started
        preds = {}
        for i, s in enumerate(states):
            for name, p in baselines(frame, train, starts, state=s).items():
                preds.setdefault(name, np.zeros_like(obs))[..., i] = p
        closed = {**{k: f.model for k, f in fits.items()}, "discovered": tuned.model}
        for name, model in closed.items():
            preds[name] = variant.verified(forecast(model, full, starts, y0), frame, grid)
        col = f"{w} d"
        scores, by_lead = {}, {}
        for i, s in enumerate(states):
            errors = {m: preds[m][:, 1:, i] - obs[:, 1:, i] for m in (*BASELINES, *MODELS)}
            errors = {m: np.where(np.isfinite(e), e, np.inf) for m, e in errors.items()}  # a failed forecast
            scores[s] = _skill_json(score_table(errors, seed=seed))
            by_lead[s] = {
                m: {
                    "rmse": rmse_by_lead(e).tolist(),
                    "bias": bias_by_lead(e).tolist(),
                    "skill_vs_yesterday": skill_by_lead(e, errors["yesterday"]).tolist(),
                }
                for m, e in errors.items()
            }
        details[col] = {
            "train_hours": [first, t_end],
            "scores": scores,
            "by_lead": by_lead,
            "params": {
                k: {str(p): round(v, 6) for p, v in f.model.parameter_values().items()} for k, f in fits.items()
            },
            "discovered_params": {str(p): round(v, 6) for p, v in tuned.model.parameter_values().items()},
            "equations": {str(s): str(rhs) for s, rhs in tuned_equations(tuned.model).items()},
            "selected": {str(k): str(v) for k, v in found.unknowns.items()},
            "fit_status": {k: f.status for k, f in fits.items()},
            "seconds": round(seconds, 2),
        }
        if not quiet:
            eq = "; ".join(f"d{k}/dt = {v}" for k, v in tuned_equations(tuned.model).items())
            print(f"[{variant.key}] {w}-day window: {eq}  ({seconds:.1f} s)", flush=True)
        runs[w] = WindowRun(w, t_end, train, data, fits, found, tuned, preds, seconds)
    station = STATIONS[variant.station]
    summary = {
        "title": station.title,
        "setting": variant.setting,
        "states": states,
        "model_states": mstates,
        "inputs": list(variant.inputs),
        "clock": station.clock,
        "test": {
            "issue_times": [float(s) for s in starts],
            "n_days": int(starts.size),
            "horizon_h": HORIZON,
            "first_training_hour": first,
        },
        "windows": details,
    }
    return VariantRun(variant, frame, full, starts, obs, runs, summary)


def target_check(variants: dict) -> dict:
    """The issue's target: in the forecast setting with the 7-day window, the discovered model's 24-h MSE
    skill against "same hour yesterday" is at least 0.10 with its interval above zero, at Greensboro and
    Würzburg.

    Parameters
    ----------
    variants : dict variant key -> summary
        :func:`run_variant` summaries (``VariantRun.summary``, or as read back from ``summary.json``).

    Returns
    -------
    dict
        ``what``, ``per_station`` (``value``, ``low``, ``high``, ``met``; absent stations are left out) and
        ``passed`` (False when a station is absent).
    """
    per = {}
    for station in ("greensboro", "wuerzburg"):
        key = Variant(station, "forecast", ("T",)).key
        col = f"{TARGET_WINDOW} d"
        if key not in variants or col not in variants[key]["windows"]:
            continue
        sk = variants[key]["windows"][col]["scores"]["T"]["discovered"]["SS vs yesterday"]
        per[station] = {**sk, "met": bool(sk["value"] >= TARGET_SKILL and sk["low"] > 0)}
    return {
        "what": f"forecast setting, {TARGET_WINDOW}-day window: discovered model's 24-h MSE skill vs same hour "
        f"yesterday >= {TARGET_SKILL:.2f} with the 95% interval above 0 (Greensboro, Würzburg)",
        "per_station": per,
        "passed": len(per) == 2 and all(p["met"] for p in per.values()),
    }


def format_table(table: dict, title: str) -> str:
    """Plain-text verification table of one state: method × (RMSE, bias, skill scores).

    Parameters
    ----------
    table : dict method -> row
        As ``summary["windows"][label]["scores"][state]`` (skills as dicts ``value``/``low``/``high``).
    title : str
        First line.

    Returns
    -------
    str
    """
    lines = [title, f"{'method':<12}{'RMSE':>7}{'bias':>7}{'SS vs persistence':>26}{'SS vs yesterday':>26}"]
    for m, row in table.items():
        cells = [f"{row[c]:>7.2f}" for c in ("RMSE", "bias")]
        for ref in ("persistence", "yesterday"):
            sk = row[f"SS vs {ref}"]
            txt = "n/a" if not np.isfinite(sk["value"]) else f"{sk['value']:+.2f} [{sk['low']:+.2f}, {sk['high']:+.2f}]"
            cells.append(f"{txt:>26}")
        lines.append(f"{m:<12}" + "".join(cells))
    return "\n".join(lines)


def run_pipeline(
    out: str | os.PathLike | None = None,
    seed: int = 0,
    fast: bool = False,
    quiet: bool = False,
    stations=None,
    windows=None,
    plots: bool = True,
    compare: bool = True,
) -> dict:
    """Weather pipeline: fit, forecast, verify against baselines, discover, compare, export, report.

    Runs with one torch thread and gives the caller its own thread setting back.

    Parameters
    ----------
    out : path, optional
        Output folder: ``report.md``/``.html``, ``summary.json``, PNG plots and, per variant, the discovered
        model of the 7-day window (or the longest below it) as ``<variant>_equations.json``, ``.tex`` and
        ``<variant>_model.py``.
    seed : int
        Seeds network initialisation, training, discovery and the bootstrap.
    fast : bool
        Few iterations, three variants on a one-day window and the comparison at Greensboro only (a smoke
        run, well under a minute).
    quiet : bool
        No progress or printed tables.
    stations : sequence of str, optional
        Only the variants at these stations (keys of :data:`~udesci.pipelines.weather.data.STATIONS`).
    windows : sequence of int, optional
        Training windows in days for every variant (default :func:`default_plan`).
    plots : bool
        Write plots and the report when ``out`` is given.
    compare : bool
        Run the NN-map / ResNet / neural-ODE comparison (:mod:`.compare`).

    Returns
    -------
    dict
        ``variants`` (per variant key: :func:`run_variant`'s summary), ``comparison``, ``check`` (the
        target, :func:`target_check`), ``seconds``, ``seed``, ``fast``.

    Raises
    ------
    ConfigError
        For an unknown station or invalid windows.
    """
    from ...evaluate import jsonable, torch_threads

    started = time.perf_counter()
    plan = default_plan(fast, windows)
    if stations is not None:
        bad = [s for s in stations if s not in STATIONS]
        if bad or not stations:
            raise ConfigError(f"stations: expected some of {sorted(STATIONS)}, received {list(stations)!r}.")
        plan = [(v, w) for v, w in plan if v.station in stations]
    if not plan:
        raise ConfigError(f"stations: no variant of the run is at {list(stations)!r}.")
    longest = max(max(w) for _, w in plan)
    test_after = longest if fast else max(longest, max(WINDOWS))
    with torch_threads(1, 1):
        results = {
            v.key: run_variant(v, windows=w, seed=seed, fast=fast, quiet=quiet, test_after=test_after) for v, w in plan
        }
        comparison = None
        if compare:
            from .compare import run_comparison

            where = ("greensboro",) if fast else ("greensboro", "wuerzburg", "jfk")
            comparison = run_comparison(
                [s for s in where if stations is None or s in stations],
                seed=seed,
                fast=fast,
                quiet=quiet,
            )
        summary = {
            "seed": seed,
            "fast": fast,
            "horizon_h": HORIZON,
            "variants": {k: r.summary for k, r in results.items()},
            "comparison": None if comparison is None else comparison.summary,
            "check": target_check({k: r.summary for k, r in results.items()}),
        }
        if out is not None:
            outp = Path(out)
            outp.mkdir(parents=True, exist_ok=True)
            exported = {}
            for key, r in results.items():
                w = export_window(r.windows)
                paths = export_tuned(r.windows[w], outp, prefix=f"{key}_")
                exported[key] = {k: os.fspath(p) for k, p in paths.items()}
            summary["exported"] = exported
            summary["seconds"] = time.perf_counter() - started
            from .reporting import FORECAST_NPZ, save_forecasts, write_weather_report

            save_forecasts(outp / FORECAST_NPZ, results)  # with summary.json: enough to rebuild the report
            write_text_atomic(outp / "summary.json", json.dumps(jsonable(summary), indent=2) + "\n")
            if plots:
                cmd = "udesci example weather" + (" --fast" if fast else "") + f" --seed {seed} --out {out}"
                if windows is not None:
                    cmd += " --windows " + ",".join(map(str, windows))
                if stations is not None:
                    cmd += " --stations " + ",".join(stations)
                write_weather_report(outp, None, comparison, summary, command=cmd)
        summary["seconds"] = time.perf_counter() - started
        if not quiet:
            for key, r in results.items():
                for col, d in r.summary["windows"].items():
                    for s, table in d["scores"].items():
                        print(
                            format_table(
                                table,
                                f"\n{key}, {col} window, state {s}: 24-h forecasts over "
                                f"{r.summary['test']['n_days']} test days (°C; 95% CI)",
                            )
                        )
            chk = summary["check"]
            print(f"\ncheck: {chk['what']}: {'passed' if chk['passed'] else 'NOT met'}; {summary['seconds']:.1f} s")
    return summary


def export_tuned(run: WindowRun, folder: Path, prefix: str = "") -> dict:
    """Write a window's discovered model (structure from discovery, coefficients refit on the forecast
    task) as ``equations.json``, ``equations.tex`` and a standalone ``model.py``.

    Parameters
    ----------
    run : WindowRun
    folder : Path
        Output folder (created if missing).
    prefix : str
        Put before each file name.

    Returns
    -------
    dict
        The paths written: ``json``, ``latex``, ``python``.
    """
    from ... import save_json, to_latex, to_python

    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / f"{prefix}{name}" for k, name in
             (("json", "equations.json"), ("latex", "equations.tex"), ("python", "model.py"))}  # fmt: skip
    extra = {
        "selected_by_discovery": {str(k): str(v) for k, v in run.found.unknowns.items()},
        "coefficients": "refit on 24-h forecast windows from every training hour (FullTrajectory, "
        "learn_initial=False); the structure is discovery's",
        "adequacy": run.found.adequacy.as_dict() if run.found.adequacy is not None else None,
        "training_window_days": run.window,
    }
    save_json(run.tuned.model, paths["json"], extra=extra)
    write_text_atomic(paths["latex"], to_latex(run.tuned.model) + "\n")
    to_python(run.tuned.model, paths["python"])
    return paths


def export_window(windows) -> int:
    """The window whose discovered model is exported and plotted: the target window (7 days), else the
    longest below it, else the shortest.

    Parameters
    ----------
    windows : iterable of int
        The windows of a variant.

    Returns
    -------
    int
    """
    windows = list(windows)
    below = [w for w in windows if w <= TARGET_WINDOW]
    return max(below) if below else min(windows)
