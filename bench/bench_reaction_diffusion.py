"""A method-of-lines reaction–diffusion UDE whose unknown reaction term is shared by every cell.

Fisher–KPP on a ring of ``n`` cells, ``u_i' = (u_{i+1} − 2 u_i + u_{i−1}) + U(u_i)`` with the truth
``U(u) = u − u²``: the diffusion is the known physics, one network stands behind every cell's
``U(u_i)``, and discovery regresses it on the samples of all cells.  Data: one trajectory from a
smooth random field (0.05–0.95), 41 points on [0, 6], Gaussian noise of 1 % of the mean state;
``ud.fit`` and ``ud.discover`` defaults, seed 0.

Prints one row per size: seconds of building the model, fit and discover, the reaction term found,
its largest coefficient error against ``u − u²``, the adequacy label, and the microseconds of one
field evaluation (16 rows) with the index tables of :mod:`udesci.sparse_field` against the
lambdified right-hand side, measured side by side.  ``python bench/bench_reaction_diffusion.py``
(1,000 cells, about 2 minutes), ``--cells 100 300 1000``, ``--seed 0 1 2``, ``--fast`` (16 cells; a
smoke run), ``--json PATH``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import sympy as sp
import torch

import udesci as ud
import udesci.field as field_module

TARGET_S = 120.0  # issue 12: a 1,000-state discovery with the right reaction term within 2 minutes


def problem(n: int, seed: int = 0, noise: float = 0.01):
    """The UDE, its data and the cells' symbols."""
    u = sp.symbols(f"u_0:{n}")
    U = sp.Function("U")
    rng = np.random.default_rng(seed)
    cells = np.arange(n)
    u0 = 0.5 + 0.35 * np.sin(6 * np.pi * cells / n) * np.cos(4 * np.pi * cells / n)
    u0 = np.clip(u0 + 0.05 * rng.standard_normal(n), 0.05, 0.95)
    lap = [u[(i + 1) % n] - 2 * u[i] + u[i - 1] for i in range(n)]
    truth = ud.HybridModel({u[i]: lap[i] + u[i] - u[i] ** 2 for i in range(n)})
    t = np.linspace(0.0, 6.0, 41)
    clean = ud.simulate(truth, u0, t)
    noisy = clean + noise * np.mean(np.abs(clean)) * rng.standard_normal(clean.shape)
    start = time.perf_counter()
    model = ud.HybridModel({u[i]: lap[i] + U(u[i]) for i in range(n)})
    build_s = time.perf_counter() - start
    return model, ud.Dataset(t, noisy, states=[str(s) for s in u]), u, build_s


def evaluation_us(model, repeats: int = 200) -> tuple[float, float]:
    """Microseconds of one field evaluation (16 rows): the index tables, then the lambdified field."""
    n = len(model.states)
    y = torch.rand(16, n, dtype=torch.float64)
    t = torch.tensor(0.0, dtype=torch.float64)
    old = field_module.SPARSE_MIN_STATES
    try:
        field_module.SPARSE_MIN_STATES = 10**9
        plain = model.copy()
        plain.module.__init__(plain, plain.module.nets)
    finally:
        field_module.SPARSE_MIN_STATES = old
    out = []
    with torch.no_grad():
        for f in (model.module, plain.module):
            for _ in range(5):
                f(t, y)
            start = time.perf_counter()
            for _ in range(repeats):
                f(t, y)
            out.append((time.perf_counter() - start) / repeats * 1e6)
    return out[0], out[1]


def run(n: int, seed: int = 0) -> dict:
    """Build, fit and discover the ``n``-cell problem (data, initial field and training seeded by ``seed``);
    one row."""
    torch.manual_seed(seed)
    model, data, u, build_s = problem(n, seed)
    tables_us, lambdified_us = evaluation_us(model, repeats=50 if n > 300 else 200)
    start = time.perf_counter()
    fitted = ud.fit(model, data, seed=seed, progress=False)
    fit_s = time.perf_counter() - start
    found = ud.discover(fitted, seed=seed, progress=False)
    discover_s = time.perf_counter() - start - fit_s
    expr = sp.expand(found.unknowns["U"])
    truth = {sp.Integer(1): 0.0, u[0]: 1.0, u[0] ** 2: -1.0}
    coeffs = dict(expr.as_coefficients_dict())
    right_terms = set(coeffs) == {u[0], u[0] ** 2}
    error = max(abs(float(coeffs.get(term, 0.0)) - value) for term, value in truth.items())
    total = build_s + fit_s + discover_s
    return {
        "cells": n,
        "seed": seed,
        "build_s": build_s,
        "fit_s": fit_s,
        "discover_s": discover_s,
        "total_s": total,
        "U": str(found.unknowns["U"]),
        "right_terms": right_terms,
        "max_coefficient_error": error,
        "adequate": bool(found.adequacy.adequate) if found.adequacy is not None else None,
        "tables_us": tables_us,
        "lambdified_us": lambdified_us,
        "stages": {k: round(v, 2) for k, v in getattr(found, "seconds", {}).items()},
    }


def table(rows: list[dict]) -> str:
    head = (
        "| cells | seed | build s | fit s | discover s | total s | U found | right terms | max coef. error | adequate "
        "| field eval µs tables / lambdified |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lines.append(
            f"| {r['cells']} | {r['seed']} | {r['build_s']:.1f} | {r['fit_s']:.1f} | {r['discover_s']:.1f} "
            f"| {r['total_s']:.1f} "
            f"| `{r['U']}` | {'yes' if r['right_terms'] else 'no'} | {r['max_coefficient_error']:.3g} "
            f"| {r['adequate']} | {r['tables_us']:.0f} / {r['lambdified_us']:.0f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=int, nargs="+", default=[1000], help="ring sizes (default 1000)")
    p.add_argument("--fast", action="store_true", help="16 cells only (smoke run)")
    p.add_argument("--seed", type=int, nargs="+", default=[0], help="seeds of data and training (default 0)")
    p.add_argument("--json", help="write the rows to this JSON file")
    args = p.parse_args(argv)
    if any(n < 3 for n in args.cells):
        p.error(f"--cells: expected ring sizes of at least 3, received {args.cells}")
    sizes = [16] if args.fast else args.cells
    rows = []
    for n in sizes:
        for seed in args.seed:
            rows.append(run(n, seed))
            r = rows[-1]
            print(f"{n} cells, seed {seed}: fit {r['fit_s']:.1f} s, discover {r['discover_s']:.1f} s, U = {r['U']}",
                  flush=True)  # fmt: skip
    print(table(rows))
    for r in rows:
        if r["cells"] >= 1000:
            ok = r["right_terms"] and r["total_s"] <= TARGET_S
            verdict = "met" if ok else "missed"
            where = f"{r['cells']} cells, seed {r['seed']}"
            print(f"target ({where}, right reaction term within {TARGET_S:.0f} s): {verdict}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
