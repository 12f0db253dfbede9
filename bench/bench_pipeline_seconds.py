"""Seconds of ``fit`` and ``discover`` on the two problems the discovery-speed issue names, per stage.

1. the Lotka–Volterra pipeline's data and model (noise 0.005, seed 0, the pipeline's training options),
   run twice in this process: the first run pays the one-time imports, the second does not;
2. the Lorenz UDE ``x' = σ(y − x)``, ``y' = x(ρ − z) − y``, ``z' = U(x, y, z) − βz`` (201 points on
   [0, 2] from (−8, 7, 27), 1 % noise, ``ud.fit`` and ``ud.discover`` defaults);
3. Van der Pol (μ = 1) with both right-hand sides unknown, ``x' = U(x, y)``, ``y' = V(x, y)`` (150 points
   on [0, 10] from (2, 0), 1 % noise), discovered with ``Library(degree=3, trig=True)``: 14 terms per
   unknown, the issue's "2-state system, 150 points, degree-3 + trig library" target (≤ 30 s).

Prints one line per run with fit and discover seconds and discovery's stage seconds
(``Discovery.seconds``).  Run it in the checkouts to compare, one after the other, on a quiet machine:
``python bench/bench_pipeline_seconds.py`` (about 1.5 minutes), or ``--fast`` (short training, Lotka–Volterra
only; a smoke run).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import sympy as sp
import torch

import udesci as ud
from udesci.pipelines import lotka_volterra as lv


def timed(label: str, model, data, fit_options: dict, library=None) -> dict:
    """Fit and discover once (with ``library``, or the automatic one); a row with the seconds and the
    discovered unknowns."""
    start = time.perf_counter()
    fitted = ud.fit(model, data, seed=0, progress=False, **fit_options)
    fit_s = time.perf_counter() - start
    found = ud.discover(fitted, library=library, seed=0, progress=False)
    discover_s = time.perf_counter() - start - fit_s
    stages = {k: round(v, 2) for k, v in getattr(found, "seconds", {}).items()}
    row = {"run": label, "fit_s": fit_s, "discover_s": discover_s, "stages": stages,
           "unknowns": {k: str(v) for k, v in found.unknowns.items()}}  # fmt: skip
    found_text = "; ".join(f"{k} = {sp.N(v, 4)}" for k, v in found.unknowns.items())
    print(f"{label}: fit {fit_s:.1f} s, discover {discover_s:.1f} s, total {fit_s + discover_s:.1f} s; "
          f"stages {stages}; found {found_text}", flush=True)  # fmt: skip
    return row


def lorenz() -> tuple:
    x, y, z = sp.symbols("x y z")
    U = sp.Function("U")
    s, r, b = 10.0, 28.0, 8.0 / 3.0
    t = np.linspace(0.0, 2.0, 201)
    clean = ud.simulate(ud.HybridModel({x: s * (y - x), y: x * (r - z) - y, z: x * y - b * z}), (-8.0, 7.0, 27.0), t)
    noisy = clean + 0.01 * np.abs(clean).mean(0) * np.random.default_rng(0).standard_normal(clean.shape)
    torch.manual_seed(0)
    model = ud.HybridModel({x: s * (y - x), y: x * (r - z) - y, z: U(x, y, z) - b * z})
    return model, ud.Dataset(t, noisy, states=["x", "y", "z"])


def van_der_pol() -> tuple:
    """Van der Pol (mu = 1) with both right-hand sides unknown, 150 points on [0, 10] from (2, 0), 1 % noise."""
    x, y = sp.symbols("x y")
    U, V = sp.symbols("U V", cls=sp.Function)
    t = np.linspace(0.0, 10.0, 150)
    clean = ud.simulate(ud.HybridModel({x: y, y: (1 - x**2) * y - x}), (2.0, 0.0), t)
    noisy = clean + 0.01 * np.abs(clean).mean(0) * np.random.default_rng(0).standard_normal(clean.shape)
    torch.manual_seed(0)
    return ud.HybridModel({x: U(x, y), y: V(x, y)}), ud.Dataset(t, noisy, states=["x", "y"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fast", action="store_true", help="short training, Lotka–Volterra only (smoke run)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t, _, noisy = lv.make_data(0.005, 0)
    data = ud.Dataset(t, noisy, states=["x", "y"])
    rows = []
    for label in ("Lotka–Volterra, first run in the process", "Lotka–Volterra, second run"):
        rows.append(timed(label, lv.build_model(0), data, lv.fit_options(args.fast)))
    if not args.fast:
        model, ldata = lorenz()
        rows.append(timed("Lorenz, U(x, y, z) degree 2", model, ldata, {}))
        model, vdata = van_der_pol()
        library = ud.Library(degree=3, trig=True)  # 14 terms per unknown: monomials to degree 3, sin and cos
        rows.append(timed("Van der Pol, U(x, y) and V(x, y), degree 3 + trig", model, vdata, {}, library))
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
