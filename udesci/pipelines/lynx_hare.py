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
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import sympy as sp
import torch

from ..errors import ConfigError, DataError

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
            "warm_start": WarmStart(iterations=200, lr=2e-2),
            "shooting": Shooting(segment_length=4, iterations=100, lr=1e-2),
        }
    return {"warm_start": WarmStart(iterations=600), "shooting": Shooting(segment_length=4, iterations=800)}


def discovery_options(fast: bool = False) -> dict:
    """Options of :func:`udesci.discover`."""
    from .. import Library, Selection

    if fast:
        sel = Selection(sweeps=1, shortlist=2, refine_iterations=4, exhaustive=1, thresholds=10)
        return {"library": Library(degree=2), "selection": sel, "refit": False}
    return {"library": Library(degree=2), "selection": Selection(), "refit": True, "refit_iterations": 30}


def robust_discover(fitted, **options):
    """:func:`udesci.discover`, retried without its refit if the refit's solver fails.

    discover's coefficient refit (L-BFGS over full trajectories with dopri5) can
    step into parameters where the ODE blows up; torchdiffeq then raises
    ``AssertionError: underflow in dt``, which discover does not catch.

    Returns
    -------
    (Discovery, str)
        The discovery and a note ("" if the first attempt succeeded).
    """
    from .. import discover

    try:
        return discover(fitted, **options), ""
    except (AssertionError, RuntimeError) as exc:
        if not options.get("refit", True):
            raise
        note = f"discover's refit failed ({type(exc).__name__}: {exc}); rerun with refit=False"
        return discover(fitted, **{**options, "refit": False}), note


def _rmse(pred, obs) -> list:
    pred, obs = np.asarray(pred, dtype=float), np.asarray(obs, dtype=float)
    if pred.shape != obs.shape or obs.size == 0:
        return [math.nan] * (obs.shape[1] if obs.ndim == 2 else 1)
    if not np.all(np.isfinite(pred)):
        return [math.inf] * obs.shape[1]
    return [float(v) for v in np.sqrt(np.mean((pred - obs) ** 2, axis=0))]


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
        ``U``, ``V`` (discovered expressions), ``terms`` (per unknown: term ->
        coefficient, inclusion probability, 95% interval), ``parameters``,
        ``lotka_volterra`` (reference fit), ``rmse`` tables (thousands of
        pelts), ``interaction_found`` (H·L with the predator–prey signs in both),
        ``seconds``, ``notes``.

    Raises
    ------
    ConfigError
        For a holdout that leaves fewer than 8 training years.
    """
    from .. import Dataset, fit
    from ..report import jsonable, simulate_on, write_report

    started = time.perf_counter()
    frame = load_frame()
    if not isinstance(holdout, int) or holdout < 0 or len(frame) - holdout < 8:
        raise ConfigError(f"holdout: expected an int in [0, {len(frame) - 8}], received {holdout!r}.")
    train = frame.iloc[: len(frame) - holdout]
    test = frame.iloc[len(frame) - holdout :]
    data = Dataset.from_frame(train, time="t", states=["H", "L"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    notes = []
    try:
        torch.manual_seed(seed)
        model = build_model(width, depth)
        fitted = fit(model, data, seed=seed, progress=not quiet, threads=1, **fit_options(fast))
        found, note = robust_discover(fitted, seed=seed, progress=not quiet, **discovery_options(fast))
        if note:
            notes.append(note)
        lv = fit(build_lotka_volterra(), data, seed=seed, progress=not quiet, threads=1, **fit_options(fast))
    finally:
        torch.set_num_threads(threads)
    y0_found = found.refit.initial_states[0] if found.refit is not None else fitted.initial_states[0]
    t_all = frame["t"].to_numpy()
    obs = frame[["H", "L"]].to_numpy()
    sims = {
        "UDE (networks)": simulate_on(fitted.model, data, fitted.initial_states[0], t_all),
        "discovered": simulate_on(found.model, data, y0_found, t_all),
        "Lotka–Volterra fit": simulate_on(lv.model, data, lv.initial_states[0], t_all),
    }
    n_train = len(train)
    rmse = {}
    for name, sim in sims.items():
        tr_err = _rmse(sim[:n_train] * SCALE, obs[:n_train] * SCALE)
        row = {"train H": tr_err[0], "train L": tr_err[1]}
        if holdout:
            te = _rmse(sim[n_train:] * SCALE, obs[n_train:] * SCALE)
            row.update({"held-out H": te[0], "held-out L": te[1]})
        rmse[name] = row
    H, L = sp.symbols("H L")
    terms = {}
    for name, det in found.details.items():
        expr = sp.expand(found.unknowns[name])
        coefs = expr.as_coefficients_dict()
        terms[name] = {
            str(term): {
                "coefficient": float(coefs.get(term, 0.0)),
                "inclusion": float(det.inclusion.get(str(term), 0.0)),
                "interval": [float(v) for v in det.intervals[str(term)]] if str(term) in det.intervals else None,
            }
            for term in det.terms
            if coefs.get(term, 0) != 0 or det.inclusion.get(str(term), 0.0) > 0.01
        }
    hl = H * L
    u_hl = float(sp.expand(found.unknowns["U"]).as_coefficients_dict().get(hl, 0.0))
    v_hl = float(sp.expand(found.unknowns["V"]).as_coefficients_dict().get(hl, 0.0))
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
        "interaction_found": bool(u_hl < 0 < v_hl),
        "lotka_volterra": {str(k): v for k, v in lv.model.parameter_values().items()},
        "rmse_thousands": rmse,
        "notes": notes,
    }
    if out is not None:
        outp = Path(out)
        outp.mkdir(parents=True, exist_ok=True)
        found.to_json(outp / "equations.json")
        (outp / "equations.tex").write_text(found.to_latex() + "\n")
        found.to_python(outp / "model.py")
        if plots:
            t_dense = np.linspace(t_all[0], t_all[-1], 241)
            preds = {
                "UDE (networks)": (t_dense, simulate_on(fitted.model, data, fitted.initial_states[0], t_dense)),
                "discovered": (t_dense, simulate_on(found.model, data, y0_found, t_dense)),
                "Lotka–Volterra fit": (t_dense, simulate_on(lv.model, data, lv.initial_states[0], t_dense)),
            }
            term_rows = {
                f"{name}: {term}": {
                    "coefficient": v["coefficient"],
                    "inclusion probability": v["inclusion"],
                    "95% interval": (f"[{v['interval'][0]:.3g}, {v['interval'][1]:.3g}]" if v["interval"] else "—"),
                }
                for name, tt in terms.items()
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
                "network": {"width": width, "depth": depth},
                "fit": {k: asdict(v) for k, v in fit_options(fast).items()},
                "discovery": {
                    k: (asdict(v) if hasattr(v, "__dataclass_fields__") else v)
                    for k, v in discovery_options(fast).items()
                },
            }
            cmd = f"udesci example lynx-hare --seed {seed} --holdout {holdout}" + (" --fast" if fast else "")
            write_report(
                outp,
                title="Lynx and hare (Hudson Bay, 1900–1920): discovered predator–prey interactions",
                config=config,
                fitted=fitted,
                found=found,
                data=data,
                held_out=held,
                predictions=preds,
                names=["H (hare / 10⁴)", "L (lynx / 10⁴)"],
                metrics={k: v for k, v in rmse.items()},
                tables={
                    "Discovered terms: coefficient, inclusion probability and 95% interval": term_rows,
                    "Fitted rates": {
                        "UDE + discovery": {k: params.get(k) for k in ("a", "d")},
                        "Lotka–Volterra fit": result["lotka_volterra"],
                    },
                },
                intro=intro,
                seed=seed,
                command=cmd + f" --out {out}",
                time_label="years since 1900",
            )
    result["seconds"] = time.perf_counter() - started
    if out is not None:
        (Path(out) / "summary.json").write_text(json.dumps(jsonable(result), indent=2) + "\n")
    if not quiet:
        print(found.summary())
        print(f"scaling: {result['scaling']}")
        print(f"{'model':<20}" + "".join(f"{c:>14}" for c in next(iter(rmse.values()))))
        for name, row in rmse.items():
            print(f"{name:<20}" + "".join(f"{v:>14.2f}" for v in row.values()))
        lvp = result["lotka_volterra"]
        print("Lotka–Volterra reference: " + ", ".join(f"{k} = {v:.3f}" for k, v in lvp.items()))
        print(
            f"H·L interaction with predator–prey signs in U and V: {result['interaction_found']}; "
            f"{result['seconds']:.1f} s"
        )
    return result
