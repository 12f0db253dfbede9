"""Hudson Bay lynx and snowshoe hare, 1900–1920: learn and discover the predator–prey interactions.

Data: Hudson Bay Company pelt counts in thousands (``data/hudson_bay_lynx_hare_1900-1920.csv``,
see ``data/README.md``).  **Scaling**: the states are ``H = hare pelts / 10 000`` and
``L = lynx pelts / 10 000`` (the file's thousands divided by 10, so both lie in about
0.4–8); time ``t`` is years since 1900.

Model: prey growth and predator death are known in form, their rates learnable,
the interactions are unknown functions::

    dH/dt =  a H + U(H, L)
    dL/dt = -d L + V(H, L)

Lotka–Volterra would be ``U = -b H L`` and ``V = c H L``.  After training, each
unknown is regressed on a degree-2 polynomial library in ``(H, L)`` by
:func:`udesci.discover`; the report lists the discovered terms with their
inclusion probabilities and 95% intervals.  As a reference, the classical
Lotka–Volterra model with all four rates learnable is fitted too.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import sympy as sp
import torch

from ..errors import ConfigError, DataError
from ..evaluate import write_text_atomic

DATA_FILE = Path(__file__).resolve().parents[2] / "data" / "hudson_bay_lynx_hare_1900-1920.csv"
SCALE = 10.0  # thousands of pelts per model unit
START = {"a": 0.5, "d": 0.8}


def load_frame(path=None) -> pd.DataFrame:
    """The pelt data in model units.

    Parameters
    ----------
    path : path, optional
        CSV with ``Year, Lynx, Hare`` (thousands), ``#`` comment lines allowed.

    Returns
    -------
    pandas.DataFrame with 21 rows and columns
        ``year``, ``t`` (years since 1900), ``H``, ``L`` (tens of thousands of pelts).

    Raises
    ------
    DataError
        If the file is missing or lacks a column.
    """
    p = Path(path) if path is not None else DATA_FILE
    if not p.is_file():
        raise DataError(f"lynx-hare data file {os.fspath(p)!r} not found (see data/README.md).")
    raw = pd.read_csv(p, comment="#", skipinitialspace=True)
    raw.columns = [c.strip() for c in raw.columns]
    missing = [c for c in ("Year", "Lynx", "Hare") if c not in raw.columns]
    if missing:
        raise DataError(f"{p.name}: missing column(s) {missing}; it has {list(raw.columns)}.")
    return pd.DataFrame(
        {
            "year": raw["Year"].astype(int),
            "t": raw["Year"].astype(float) - 1900.0,
            "H": raw["Hare"].astype(float) / SCALE,
            "L": raw["Lynx"].astype(float) / SCALE,
        }
    )


def build_model(width: int = 16, depth: int = 2):
    """The UDE ``dH/dt = a H + U(H, L)``, ``dL/dt = -d L + V(H, L)`` (a, d learnable)."""
    from .. import HybridModel, Learnable

    H, L, a, d = sp.symbols("H L a d")
    U, V = sp.symbols("U V", cls=sp.Function)
    return HybridModel(
        {H: a * H + U(H, L), L: -d * L + V(H, L)},
        {a: Learnable(START["a"]), d: Learnable(START["d"])},
        width=width,
        depth=depth,
    )


def build_lotka_volterra():
    """The classical Lotka–Volterra model with all four rates learnable (reference fit)."""
    from .. import HybridModel, Learnable

    H, L, a, b, c, d = sp.symbols("H L a b c d")
    return HybridModel(
        {H: a * H - b * H * L, L: -d * L + c * H * L},
        {a: Learnable(0.5), b: Learnable(0.25), c: Learnable(0.25), d: Learnable(0.8)},
    )


def fit_options(fast: bool = False) -> dict:
    """Training options (``fast``: smoke run)."""
    from .. import Shooting, WarmStart

    if fast:
        return {
            "warm_start": WarmStart(iterations=400, lr=2e-2),
            "shooting": Shooting(segment_length=4, iterations=150, lr=1e-2),
        }
    return {"warm_start": WarmStart(iterations=600), "shooting": Shooting(segment_length=4, iterations=800)}


def discovery_options(fast: bool = False) -> dict:
    """Options of :func:`udesci.discover`."""
    from .. import Library, Selection

    if fast:
        sel = Selection(sweeps=1, shortlist=2, refine_iterations=4, exhaustive=1, thresholds=10)
        return {"library": Library(degree=2), "selection": sel, "refit": False}
    return {"library": Library(degree=2), "selection": Selection(), "refit": True, "refit_iterations": 30}


def run_pipeline(
    out: str | os.PathLike | None = None,
    seed: int = 0,
    fast: bool = False,
    quiet: bool = False,
    holdout: int = 0,
    width: int = 16,
    depth: int = 2,
    plots: bool = True,
) -> dict:
    """Fit the lynx–hare UDE, discover U and V, compare with Lotka–Volterra, write the report.

    Runs with one torch thread (two states: more threads only add synchronisation) and
    gives the caller its own thread setting back.

    Parameters
    ----------
    out : path, optional
        Output folder: ``report.md``, ``summary.json``, ``equations.json``,
        ``equations.tex``, ``model.py`` and PNG plots.
    seed : int
    fast : bool
        Few iterations (tests).
    quiet : bool
    holdout : int, default 0
        Leave the last ``holdout`` years out of training and report their
        prediction error (0: train on all 21 years).
    width, depth : int
        Size of the networks behind U and V.
    plots : bool

    Returns
    -------
    dict
        ``U``, ``V`` (discovered expressions), ``equations``, ``terms`` (per
        unknown: term -> coefficient, inclusion probability, 95% interval),
        ``parameters``, ``ude_parameters``, ``lotka_volterra`` (reference fit),
        ``rmse_thousands`` (per model, thousands of pelts), ``interaction_found``
        (H·L with the predator–prey signs in both U and V), ``seconds``,
        ``notes`` (what discovery had to work around) and the run settings.

    Raises
    ------
    ConfigError
        For a holdout that leaves fewer than 8 training years.
    """
    from ..evaluate import torch_threads

    started = time.perf_counter()
    frame = load_frame()
    if not isinstance(holdout, int) or holdout < 0 or len(frame) - holdout < 8:
        raise ConfigError(f"holdout: expected an int in [0, {len(frame) - 8}], received {holdout!r}.")
    with torch_threads(1, 2):
        return _run(frame, out, seed, fast, quiet, holdout, width, depth, plots, started)


def _run(frame, out, seed, fast, quiet, holdout, width, depth, plots, started) -> dict:
    """The body of :func:`run_pipeline` (arguments checked, threads set): fit, discover, assess, report."""
    from .. import Dataset, discover, fit
    from ..evaluate import jsonable, rmse, simulate_or_nan

    train = frame.iloc[: len(frame) - holdout]
    data = Dataset.from_frame(train, time="t", states=["H", "L"])
    torch.manual_seed(seed)
    network = {"width": width, "depth": depth}
    model = build_model(width, depth)
    fitted = fit(model, data, seed=seed, progress=not quiet, threads=1, **fit_options(fast))
    found = discover(fitted, seed=seed, progress=not quiet, **discovery_options(fast))
    notes = ["; ".join(found.notes)] if found.notes else []
    lv = fit(build_lotka_volterra(), data, seed=seed, progress=not quiet, threads=1, **fit_options(fast))
    y0_found = found.refit.initial_states[0] if found.refit is not None else fitted.initial_states[0]
    t_all = frame["t"].to_numpy()
    obs = frame[["H", "L"]].to_numpy()
    starts = {
        "UDE (networks)": (fitted.model, fitted.initial_states[0]),
        "discovered model": (found.model, y0_found),
        "Lotka–Volterra fit": (lv.model, lv.initial_states[0]),
    }
    sims = {name: simulate_or_nan(m, y0, t_all, data=data) for name, (m, y0) in starts.items()}
    n_train = len(train)
    errors = {}
    for name, sim in sims.items():
        tr_err = rmse(sim[:n_train] * SCALE, obs[:n_train] * SCALE, axis=0)
        row = {"train H": float(tr_err[0]), "train L": float(tr_err[1])}
        if holdout:
            te = rmse(sim[n_train:] * SCALE, obs[n_train:] * SCALE, axis=0)
            row.update({"held-out H": float(te[0]), "held-out L": float(te[1])})
        errors[name] = row
    H, L = sp.symbols("H L")
    terms = {}
    for name, det in found.details.items():
        coefs = sp.expand(found.unknowns[name]).as_coefficients_dict()
        terms[name] = {
            str(term): {
                "coefficient": float(coefs.get(term, 0.0)),
                "inclusion": float(det.inclusion.get(str(term), 0.0)),
                "interval": [float(v) for v in det.intervals[str(term)]] if str(term) in det.intervals else None,
            }
            for term in det.terms
            if coefs.get(term, 0) != 0 or det.inclusion.get(str(term), 0.0) > 0.01
        }
    u_hl = float(sp.expand(found.unknowns["U"]).as_coefficients_dict().get(H * L, 0.0))
    v_hl = float(sp.expand(found.unknowns["V"]).as_coefficients_dict().get(H * L, 0.0))
    params = {str(k): v for k, v in found.model.parameter_values().items()}
    result = {
        "seed": seed,
        "fast": fast,
        "holdout_years": holdout,
        "scaling": f"H = hare pelts / {int(SCALE * 1000)}, L = lynx pelts / {int(SCALE * 1000)}, t = year - 1900",
        "U": str(found.unknowns["U"]),
        "V": str(found.unknowns["V"]),
        "equations": {str(s): str(e) for s, e in found.equations.items()},
        "parameters": params,
        "ude_parameters": {str(k): v for k, v in fitted.model.parameter_values().items()},
        "terms": terms,
        "interaction_found": u_hl < 0 < v_hl,
        "lotka_volterra": {str(k): v for k, v in lv.model.parameter_values().items()},
        "rmse_thousands": errors,
        "notes": notes,
        "adequacy": found.adequacy.as_dict() if found.adequacy is not None else None,
    }
    if out is not None:
        from . import write_discovery

        write_discovery(found, out)
        if plots:
            _write_report(
                out, result, fitted=fitted, found=found, data=data, starts=starts, frame=frame, network=network
            )
    result["seconds"] = time.perf_counter() - started
    if out is not None:
        write_text_atomic(Path(out) / "summary.json", json.dumps(jsonable(result), indent=2) + "\n")
    if not quiet:
        print(found.summary())
        print(f"scaling: {result['scaling']}")
        print("RMSE in thousands of pelts:")
        print(f"{'model':<34}" + "".join(f"{c:>12}" for c in next(iter(errors.values()))))
        for name, row in errors.items():
            print(f"{name:<34}" + "".join(f"{v:>12.2f}" for v in row.values()))
        lvp = result["lotka_volterra"]
        print("Lotka–Volterra reference: " + ", ".join(f"{k} = {v:.3f}" for k, v in lvp.items()))
        print(
            f"H·L interaction with predator–prey signs in U and V: {result['interaction_found']}; "
            f"{result['seconds']:.1f} s"
        )
    return result


def _write_report(out, result: dict, *, fitted, found, data, starts: dict, frame, network: dict) -> None:
    """``report.md`` and its plots (see :func:`udesci.report.write_report`) in the folder ``out``.

    ``starts``: model and initial state of each compared model, by label; ``frame``: all years;
    ``network``: width and depth of the networks.
    """
    from ..evaluate import simulate_or_nan
    from ..report import write_report

    seed, fast, holdout, notes = result["seed"], result["fast"], result["holdout_years"], result["notes"]
    t_all = frame["t"].to_numpy()
    test = frame.iloc[len(frame) - holdout :]
    t_dense = np.linspace(t_all[0], t_all[-1], 241)
    preds = {name: (t_dense, simulate_or_nan(m, y0, t_dense, data=data)) for name, (m, y0) in starts.items()}
    term_rows = {
        f"{name}: {term}": {
            "coefficient": v["coefficient"],
            "inclusion probability": v["inclusion"],
            "95% interval": (f"[{v['interval'][0]:.3g}, {v['interval'][1]:.3g}]" if v["interval"] else "—"),
        }
        for name, tt in result["terms"].items()
        for term, v in tt.items()
    }
    intro = (
        "Hudson Bay Company lynx and snowshoe-hare pelts, 1900–1920 (Hewitt 1921; MacLulich 1937; tabulated "
        f"by Howard 2009).  **Scaling**: {result['scaling']} (the file's thousands divided by {SCALE:g}). "
        "Known: prey growth `a H` and predator death `-d L` (a, d learnable); unknown interactions "
        "`U(H, L)`, `V(H, L)` (networks), then discovered on a degree-2 polynomial library.  "
        + (f"The last {holdout} years are held out." if holdout else "All 21 years are used for training.")
        + (" **Fast mode**: few iterations, a smoke test." if fast else "")
        + ("\n\nNotes: " + "; ".join(notes) if notes else "")
    )
    held = (test["t"].to_numpy(), test[["H", "L"]].to_numpy()) if holdout else None
    config = {
        "holdout": holdout,
        "network": network,
        "fit": {k: asdict(v) for k, v in fit_options(fast).items()},
        "discovery": {
            k: (asdict(v) if hasattr(v, "__dataclass_fields__") else v) for k, v in discovery_options(fast).items()
        },
    }
    cmd = f"udesci example lynx-hare --seed {seed} --holdout {holdout}" + (" --fast" if fast else "")
    write_report(
        out,
        title="Lynx and hare (Hudson Bay, 1900–1920): discovered predator–prey interactions",
        config=config,
        fitted=fitted,
        found=found,
        data=data,
        held_out=held,
        predictions=preds,
        names=["H (hare / 10⁴)", "L (lynx / 10⁴)"],
        metrics={k: v for k, v in result["rmse_thousands"].items()},
        tables={
            "Discovered terms: coefficient, inclusion probability and 95% interval (udesci.discover)": term_rows,
            "Fitted rates": {
                "UDE + discovery": {k: result["parameters"].get(k) for k in ("a", "d")},
                "Lotka–Volterra fit": result["lotka_volterra"],
            },
        },
        intro=intro,
        seed=seed,
        command=cmd + f" --out {out}",
        time_label="years since 1900",
    )
