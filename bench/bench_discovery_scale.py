"""How the cost of ``fit`` and ``discover`` grows: library size, states/unknowns, points.

Every case is a system with a known answer, run with udesci's defaults (``fit(model, data)``,
``discover(fitted, library=Library(degree=...))``); only the library's degree (and so its size) and
the problem change.  Beside each case, PySINDy alone on the same noisy data (``SINDy`` with
``STLSQ``, a ``PolynomialLibrary`` of the same degree and ``SmoothedFiniteDifference``) is timed as
the floor: what derivative-based regression without a trained model costs.

Axes (1 % Gaussian noise of each state's mean absolute value, seed 0):

* **library** — the Lorenz system ``x' = σ(y − x)``, ``y' = x(ρ − z) − y``, ``z' = U − βz`` (σ, ρ, β =
  10, 28, 8/3; 201 points on [0, 2] from (−8, 7, 27); truth ``U = x y``).  ``U(x, y)`` with degree 2
  gives 6 terms; ``U(x, y, z)`` with degree 2, 3, 4, 5 gives 10, 20, 35, 56 terms.  One fit per
  argument list, one discovery per library.
* **states** — 1 state: logistic ``x' = x + U(x)`` (truth ``−x²/2``, 150 points on [0, 10] from 0.1);
  2: Lotka–Volterra ``x' = 1.3x + U(x, y)``, ``y' = −1.8y + V(x, y)`` (truth ``−0.9xy``, ``0.8xy``; 31
  points on [0, 3]); 3: Lorenz with three unknowns ``x' = −σx + U₁(y)``, ``y' = ρx − y + U₂(x, z)``,
  ``z' = −βz + U₃(x, y)`` (truths ``σy``, ``−xz``, ``xy``); 5: Lorenz-96 on 5 sites, ``x_i' = −x_i + 8 +
  U_i(x_{i−2}, x_{i−1}, x_{i+1})`` (truth ``x_{i−1}x_{i+1} − x_{i−2}x_{i−1}``, 150 points on [0, 3]).
  Degree-2 libraries.
* **points** — Lotka–Volterra as above on [0, 6] with 31, 150, 600 and 2,000 points.

For each axis the table gives seconds of fit, discover (and its slowest stages) and their sum, whether
the structure is right (every unknown's term set equals the truth's and every coefficient is within
10 %), whether discovery labelled it inadequate (``Discovery.adequacy``), PySINDy's seconds, and the
exponent ``b`` of a least-squares fit ``seconds ∝ size^b`` in log–log.

Run ``python bench/bench_discovery_scale.py`` (all axes, ~20–40 min on 2 cores) or ``--fast``
(short training, the two smallest sizes per axis; a smoke run).  ``--axes library,points`` picks
axes.  Writes ``bench/results/discovery_scale.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sympy as sp
import torch

import udesci as ud

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "discovery_scale.json"
NOISE = 0.01
AXES = ("library", "states", "points")


class Case:
    """One benchmark problem: truth, data, hybrid model and the expected unknowns.

    Parameters
    ----------
    label : str
    size : int
        The axis value (library terms, states or points).
    truth : dict state -> sympy.Expr
    y0 : sequence of float
    t : ndarray of shape (T,)
    known : dict state -> sympy.Expr
        Right-hand sides with unknown functions.
    expected : dict unknown name -> dict term -> coefficient
    degree : int
        Library degree.
    """

    def __init__(self, label, size, truth, y0, t, known, expected, degree=2):
        self.label, self.size, self.truth, self.y0, self.t = label, size, truth, y0, t
        self.known, self.expected, self.degree = known, expected, degree


def noisy_data(truth: dict, y0, t: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The truth simulated at ``t`` (dopri5, tolerances 1e-9) plus 1 % Gaussian noise of each state's mean |value|."""
    clean = ud.simulate(ud.HybridModel(truth), y0, t)
    rng = np.random.default_rng(seed)
    return clean, clean + NOISE * np.abs(clean).mean(axis=0) * rng.standard_normal(clean.shape)


def lorenz_cases(fast: bool) -> list[Case]:
    x, y, z = sp.symbols("x y z")
    U = sp.Function("U")
    s, r, b = 10.0, 28.0, 8.0 / 3.0
    truth = {x: s * (y - x), y: x * (r - z) - y, z: x * y - b * z}
    t = np.linspace(0.0, 2.0, 201)
    cases = [Case("Lorenz U(x,y) deg 2", 6, truth, (-8.0, 7.0, 27.0), t,
                  {x: s * (y - x), y: x * (r - z) - y, z: U(x, y) - b * z}, {"U": {x * y: 1.0}}, 2)]  # fmt: skip
    for degree, size in ((2, 10), (3, 20), (4, 35), (5, 56)):
        cases.append(Case(f"Lorenz U(x,y,z) deg {degree}", size, truth, (-8.0, 7.0, 27.0), t,
                          {x: s * (y - x), y: x * (r - z) - y, z: U(x, y, z) - b * z}, {"U": {x * y: 1.0}},
                          degree))  # fmt: skip
    return cases[:2] if fast else cases


def lotka_volterra(points: int, t_end: float) -> Case:
    x, y = sp.symbols("x y")
    U, V = sp.symbols("U V", cls=sp.Function)
    truth = {x: 1.3 * x - 0.9 * x * y, y: -1.8 * y + 0.8 * x * y}
    known = {x: 1.3 * x + U(x, y), y: -1.8 * y + V(x, y)}
    t = np.linspace(0.0, t_end, points)
    return Case(f"Lotka–Volterra {points} points", points, truth, (0.44249296, 4.6280594), t, known,
                {"U": {x * y: -0.9}, "V": {x * y: 0.8}})  # fmt: skip


def state_cases(fast: bool) -> list[Case]:
    x = sp.Symbol("x")
    U = sp.Function("U")
    cases = [Case("logistic", 1, {x: x - x**2 / 2}, (0.1,), np.linspace(0.0, 10.0, 150), {x: x + U(x)},
                  {"U": {x**2: -0.5}})]  # fmt: skip
    cases.append(lotka_volterra(31, 3.0))
    cases[-1].size, cases[-1].label = 2, "Lotka–Volterra"
    if fast:
        return cases
    x, y, z = sp.symbols("x y z")
    U1, U2, U3 = sp.symbols("U1 U2 U3", cls=sp.Function)
    s, r, b = 10.0, 28.0, 8.0 / 3.0
    cases.append(Case("Lorenz, three unknowns", 3, {x: s * (y - x), y: x * (r - z) - y, z: x * y - b * z},
                      (-8.0, 7.0, 27.0), np.linspace(0.0, 2.0, 201),
                      {x: -s * x + U1(y), y: r * x - y + U2(x, z), z: -b * z + U3(x, y)},
                      {"U1": {y: s}, "U2": {x * z: -1.0}, "U3": {x * y: 1.0}}))  # fmt: skip
    xs = sp.symbols("x0:5")
    truth, known, expected = {}, {}, {}
    for i in range(5):
        a, bm, c = xs[(i - 2) % 5], xs[(i - 1) % 5], xs[(i + 1) % 5]
        truth[xs[i]] = bm * (c - a) - xs[i] + 8.0
        known[xs[i]] = -xs[i] + 8.0 + sp.Function(f"U{i}")(a, bm, c)
        expected[f"U{i}"] = {bm * c: 1.0, a * bm: -1.0}
    y0 = tuple(8.0 + (0.5 if i == 0 else 0.0) for i in range(5))
    cases.append(Case("Lorenz-96, 5 sites", 5, truth, y0, np.linspace(0.0, 3.0, 150), known, expected))
    return cases


def point_cases(fast: bool) -> list[Case]:
    sizes = (31, 150) if fast else (31, 150, 600, 2000)
    return [lotka_volterra(m, 6.0) for m in sizes]


def structure_ok(found, expected: dict) -> bool:
    """Every unknown's term set equals the truth's and every coefficient is within 10 %."""
    for name, terms in expected.items():
        got = {k: float(v) for k, v in sp.expand(found.unknowns[name]).as_coefficients_dict().items()}
        if set(got) != set(terms):
            return False
        if any(abs(got[k] - c) > 0.1 * abs(c) for k, c in terms.items()):
            return False
    return True


def pysindy_seconds(t: np.ndarray, y: np.ndarray, degree: int) -> float:
    """Seconds of PySINDy alone (import excluded) on the same data: fit of the whole right-hand side."""
    import pysindy as ps

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ps.SINDy(
            optimizer=ps.STLSQ(threshold=0.1),
            feature_library=ps.PolynomialLibrary(degree=degree),
            differentiation_method=ps.SmoothedFiniteDifference(),
        ).fit(y, t=t)
    return time.perf_counter() - start


def fit_options(fast: bool) -> dict:
    if not fast:
        return {}
    return {"warm_start": ud.WarmStart(iterations=100), "shooting": ud.Shooting(iterations=40, lr=1e-2)}


def run_axis(axis: str, cases: list[Case], fast: bool, seed: int) -> list[dict]:
    """Fit (once per distinct model) and discover every case of one axis; a row per case."""
    rows = []
    fitted_for: dict = {}
    for case in cases:
        _, noisy = noisy_data(case.truth, case.y0, case.t, seed)
        states = [str(s) for s in case.truth]
        data = ud.Dataset(case.t, noisy, states=states)
        key = (tuple(sorted(map(str, case.known.values()))), len(case.t))
        fit_s = 0.0
        if key not in fitted_for:
            torch.manual_seed(seed)
            model = ud.HybridModel(case.known)
            start = time.perf_counter()
            fitted_for[key] = ud.fit(model, data, seed=seed, progress=False, **fit_options(fast))
            fit_s = time.perf_counter() - start
        fitted = fitted_for[key]
        start = time.perf_counter()
        found = ud.discover(fitted, library=ud.Library(degree=case.degree), seed=seed, progress=False)
        disc_s = time.perf_counter() - start
        stages = sorted(found.seconds.items(), key=lambda kv: -kv[1])[:3]
        row = {
            "axis": axis,
            "case": case.label,
            "size": case.size,
            "library_terms": max(len(d.terms) for d in found.details.values()),
            "points": len(case.t),
            "fit_s": fit_s if fit_s else None,
            "fit_s_of_model": sum(fitted.seconds.values()),
            "discover_s": disc_s,
            "total_s": sum(fitted.seconds.values()) + disc_s,
            "slowest_stages": {k: round(v, 2) for k, v in stages},
            "correct_structure": structure_ok(found, case.expected),
            "adequate": None if found.adequacy is None else found.adequacy.adequate,
            "equations": {str(k): str(v) for k, v in found.unknowns.items()},
            "pysindy_s": pysindy_seconds(case.t, noisy, case.degree),
        }
        rows.append(row)
        print(f"  {case.label}: fit {row['fit_s_of_model']:.1f} s, discover {disc_s:.1f} s, "
              f"structure {'ok' if row['correct_structure'] else 'WRONG'}, {_label(row['adequate'])}",
              file=sys.stderr, flush=True)  # fmt: skip
    return rows


def exponent(sizes, seconds) -> float | None:
    """Slope ``b`` of ``log seconds = a + b log size`` (least squares); None with fewer than two sizes."""
    pts = [(math.log(s), math.log(v)) for s, v in zip(sizes, seconds, strict=True) if v and v > 0]
    if len({p[0] for p in pts}) < 2:
        return None
    X = np.array([[1.0, p[0]] for p in pts])
    return float(np.linalg.lstsq(X, np.array([p[1] for p in pts]), rcond=None)[0][1])


def _label(adequate) -> str:
    """The adequacy label of a row: "inadequate", "no" (adequate) or "–" (not assessed)."""
    return "–" if adequate is None else ("no" if adequate else "inadequate")


def markdown(rows: list[dict]) -> str:
    """One table per axis with the log–log exponents below it."""
    out = []
    names = {"library": "library terms", "states": "states", "points": "points"}
    for axis in AXES:
        part = [r for r in rows if r["axis"] == axis]
        if not part:
            continue
        out.append(f"### {names[axis]}\n")
        head = "fit s | discover s | total s | slowest stages | structure | labelled | PySINDy s"
        out.append(f"| case | {names[axis]} | {head} |")
        out.append("| --- | ---: | ---: | ---: | ---: | --- | --- | --- | ---: |")
        for r in part:
            stages = ", ".join(f"{k} {v:.1f}" for k, v in r["slowest_stages"].items())
            out.append(
                f"| {r['case']} | {r['size']} | {r['fit_s_of_model']:.1f} | {r['discover_s']:.1f} | {r['total_s']:.1f} "
                f"| {stages} | {'ok' if r['correct_structure'] else '**wrong**'} | {_label(r.get('adequate'))} "
                f"| {r['pysindy_s']:.3f} |"
            )
        sizes = [r["size"] for r in part]
        exps = {key: exponent(sizes, [r[key] for r in part]) for key in ("fit_s_of_model", "discover_s", "total_s")}
        words = ", ".join(
            f"{k.replace('_s_of_model', '').replace('_s', '')} b = {v:.2f}" for k, v in exps.items() if v is not None
        )
        out.append(f"\nGrowth (seconds ∝ {names[axis]}^b, least squares in log–log): {words}.\n")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fast", action="store_true", help="short training, the two smallest sizes per axis")
    p.add_argument("--axes", default=",".join(AXES), help="comma list of axes: library, states, points")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DEFAULT_OUT), help="JSON output (default bench/results/discovery_scale.json)")
    args = p.parse_args(argv)
    axes = [a.strip() for a in args.axes.split(",") if a.strip()]
    for a in axes:
        if a not in AXES:
            p.error(f"--axes: expected a comma list of {', '.join(AXES)}, received {a!r}")
    torch.set_num_threads(1)
    build = {"library": lorenz_cases, "states": state_cases, "points": point_cases}
    load0 = os.getloadavg()
    rows = []
    for axis in axes:
        print(f"axis {axis}:", file=sys.stderr, flush=True)
        rows += run_axis(axis, build[axis](args.fast), args.fast, args.seed)
    table = markdown(rows)
    print(table)
    result = {
        "rows": rows,
        "fast": args.fast,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_start": load0,
            "load_end": os.getloadavg(),
            "torch": torch.__version__,
        },  # fmt: skip
        "markdown": table,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
