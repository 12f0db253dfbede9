"""The weather pipeline's report: per-case forecast plots and model sections, and ``report.md``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .data import observed_at
from .forecast import HORIZON, METHODS, forecast
from .models import Case, discovery_options, fit_options
from .run import CaseRun


class CaseReport(NamedTuple):
    """The report parts of one case.

    Attributes
    ----------
    plots : dict caption -> path
        The forecast and RMSE-vs-window plots.
    section : str
        The Markdown section of the case's UDE and discovered model.
    """

    plots: dict
    section: str


def case_report(out: Path, case: Case, run: CaseRun) -> CaseReport:
    """Forecast and RMSE-vs-window plots and the model section of a case's report.

    Parameters
    ----------
    out : pathlib.Path
        Output folder (exists); the plots are written there, prefixed by the case key.
    case : Case
    run : CaseRun
        :func:`~udesci.pipelines.weather.run.run_case`'s result for ``case``.

    Returns
    -------
    CaseReport
    """
    from ...evaluate import simulate_or_nan
    from ...plots import plot_forecast, plot_metric_lines
    from ...report import model_section

    res = run.summary
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
    obj = run.last
    frame, full = run.frame, run.full
    starts = run.rolling_starts[:7]
    y0 = observed_at(frame, starts)[:, None]
    grid = starts[:, None] + np.arange(HORIZON + 1)[None, :]
    curves = {}
    for name in ("physics", "neural ODE", "UDE"):
        fc = forecast(obj.fits[name].model, full, starts, y0)
        curves[name] = [(grid[b], fc[b]) for b in range(len(starts))]
    fc = forecast(obj.found.model, full, starts, y0)
    curves["discovered"] = [(grid[b], fc[b]) for b in range(len(starts))]
    train = obj.train
    test = frame[(frame["t"] > obj.t_end) & (frame["t"] <= grid[-1, -1])]
    plots[f"{case.key}: daily 24-h forecasts of the {obj.window}-day models on the first test week"] = plot_forecast(
        out / f"{case.key}_forecasts.png",
        train["t"].to_numpy(),
        train["T"].to_numpy(),
        test["t"].to_numpy(),
        test["T"].to_numpy(),
        curves,
        ["T (°C)"],
        t_split=obj.t_end,
        title=f"{case.key}: forecasts restarted daily from the observed temperature",
        xlabel=case.time_note,
    )
    # the report's fit plot: fitted trajectories over the training window, then the next-24-h forecast
    t_next = obj.t_end + np.arange(HORIZON + 1)
    held = (t_next[1:], observed_at(frame, t_next[1:])[:, None])
    preds = {}
    for name, model, y_init in (
        ("UDE", obj.fits["UDE"].model, obj.fits["UDE"].initial_states[0]),
        ("physics", obj.fits["physics"].model, obj.fits["physics"].initial_states[0]),
        ("discovered", obj.found.model, obj.fits["UDE"].initial_states[0]),
    ):
        t_fit = np.linspace(float(train["t"].iloc[0]), obj.t_end, 8 * len(train))
        fit_curve = simulate_or_nan(model, y_init, t_fit, data=obj.data)
        fc = forecast(model, full, np.array([obj.t_end]), observed_at(frame, np.array([obj.t_end]))[:, None])[0]
        preds[name] = [(t_fit, fit_curve), (t_next, fc)]
    section = model_section(
        out,
        label=f"{case.title}: models trained on {obj.window} days",
        fitted=obj.fits["UDE"],
        found=obj.found,
        data=obj.data,
        held_out=held,
        predictions=preds,
        names=["T (°C)"],
        prefix=f"{case.key}_",
        time_label=case.time_note,
        plot_title=f"{case.key}, {obj.window}-day models: fit, then 24-h forecast from the observed T",
    )
    return CaseReport(plots, section)


def write_weather_report(
    out: Path, results: dict, reports: list, *, cases, windows, fast: bool, seed: int, command: str
) -> Path:
    """Write ``report.md`` (tables, sections and plots of every case) into ``out``.

    Parameters
    ----------
    out : pathlib.Path
        Output folder (exists, holds the plots of ``reports``).
    results : dict case key -> CaseRun
    reports : list of CaseReport
        One per case, in the order of ``results``.
    cases : sequence of str
        The cases asked for.
    windows : sequence of int
        Training windows in days.
    fast : bool
    seed : int
    command : str
        The command line that reproduces the run.

    Returns
    -------
    pathlib.Path
        The report.
    """
    from ...report import write_report

    tables = {}
    for key, run in results.items():
        res = run.summary
        tables[
            f"{key}: rolling 24-h forecast RMSE (°C) over {res['test']['n_forecasts']} test days, by training window"
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
    plots = {}
    for r in reports:
        plots.update(r.plots)
    return write_report(
        out,
        title="Weather: hybrid temperature models with measured forcing",
        config=config,
        intro=intro,
        tables=tables,
        sections=[r.section for r in reports],
        plots=plots,
        seed=seed,
        command=command,
    )
