"""How well can *any* likelihood-based method do on the Lotka–Volterra recovery data?

The recovery study's data are 31 noisy points of one trajectory.  This script measures two limits
of those data, independently of udesci (plain SciPy: ``solve_ivp`` with DOP853 at 1e-10 and
``least_squares``), so udesci's study numbers can be read against them.

* **Structure ceiling.**  For each seed the true structure (U = c·xy, V = c·xy) is fitted by exact
  nonlinear least squares (coefficients and initial state free), and so is every *neighbour*: one
  library term (1, x, y, x², xy, y²) added to U or to V, or U's or V's x·y replaced by one other
  term.  All are scored with udesci's criterion (Gaussian likelihood with one unknown variance per
  state, Σᵢ nᵢ log(SSEᵢ/nᵢ) + k log n).  The truth "wins" when no same-size neighbour scores better
  and no larger neighbour scores better by more than the parsimony margin.  A selection that
  compares the truth with these neighbours by this criterion can find the truth at most this often;
  udesci compares it with more candidates, so this is an upper bound for udesci's rate.
* **Coefficient floor.**  The median relative error of β and γ fitted with the true structure
  (the maximum-likelihood estimate given the structure), beside the Cramér–Rao bound: the median
  |error| 0.6745·σ/|value| that an unbiased estimator with the smallest possible variance would
  have, from the Fisher information of (β, γ, x₀, y₀) at the truth with the true noise levels.

    .venv/bin/python bench/bench_ceiling.py --noise 0.001,0.01,0.05 --seeds 100

Prints a Markdown table and writes JSON (``--out``, default ``bench/results/ceiling.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares

from udesci.cli_study import noise_list
from udesci.pipelines import lotka_volterra as lv

LIBRARY = ("1", "x", "y", "x^2", "xy", "y^2")
MEDIAN_ABS_NORMAL = 0.6745  # median of |N(0, 1)|


def _term(name: str, x: float, y: float) -> float:
    return {"1": 1.0, "x": x, "y": y, "x^2": x * x, "xy": x * y, "y^2": y * y}[name]


def _simulate(t, u_terms, v_terms, coef, y0) -> np.ndarray | None:
    cu, cv = coef[: len(u_terms)], coef[len(u_terms) :]

    def rhs(_, u):
        x, y = u
        dx = lv.ALPHA * x + sum(c * _term(a, x, y) for c, a in zip(cu, u_terms, strict=True))
        dy = -lv.DELTA * y + sum(c * _term(a, x, y) for c, a in zip(cv, v_terms, strict=True))
        return [dx, dy]

    sol = solve_ivp(rhs, (t[0], t[-1]), y0, t_eval=t, method="DOP853", rtol=1e-10, atol=1e-10)
    return sol.y.T if sol.success and sol.y.shape[1] == t.size else None


def fit_structure(t, data, u_terms, v_terms) -> tuple[float, np.ndarray]:
    """Exact least-squares fit of one structure; returns (criterion, coefficients).

    The residuals are scaled by each state's spread (as udesci scales them); the criterion is the
    per-state Gaussian likelihood BIC.  Starts: x·y at its true value, other terms at 0, initial
    state at the first observation."""
    scale = data.std(axis=0)
    k = len(u_terms) + len(v_terms)
    start = [-lv.BETA if a == "xy" else 0.0 for a in u_terms] + [lv.GAMMA if a == "xy" else 0.0 for a in v_terms]

    def residuals(p):
        sim = _simulate(t, u_terms, v_terms, p[:k], p[k:])
        return np.full(data.size, 1e3) if sim is None else ((sim - data) / scale).ravel()

    with np.errstate(all="ignore"):
        res = least_squares(residuals, np.array(start + list(data[0])), xtol=1e-12, ftol=1e-12)
    sse = (res.fun.reshape(data.shape) ** 2).sum(axis=0)
    n = data.shape[0]
    crit = float(np.sum(n * np.log(sse / n)) + k * math.log(data.size))
    return crit, res.x[:k]


def one_seed(args) -> dict:
    """Truth and neighbours for one (noise, seed); criterion differences relative to the truth."""
    noise, seed = args
    t, _, noisy = lv.make_data(noise, seed)
    base, coef = fit_structure(t, noisy, ["xy"], ["xy"])
    neighbours = {}
    for a in LIBRARY:
        if a == "xy":
            continue
        for u_terms, v_terms, label in (
            (["xy", a], ["xy"], f"U + {a}"),
            (["xy"], ["xy", a], f"V + {a}"),
            ([a], ["xy"], f"U = {a}"),
            (["xy"], [a], f"V = {a}"),
        ):
            neighbours[label] = fit_structure(t, noisy, u_terms, v_terms)[0] - base
    return {
        "noise": noise,
        "seed": seed,
        "beta_rel_error": abs(abs(coef[0]) - lv.BETA) / lv.BETA,
        "gamma_rel_error": abs(abs(coef[1]) - lv.GAMMA) / lv.GAMMA,
        "neighbours": neighbours,
    }


def truth_wins(neighbours: dict, margin: float) -> bool:
    """No same-size neighbour better, no larger one better by more than ``margin``."""
    return all(d >= (0.0 if "=" in label else -margin) for label, d in neighbours.items())


def cramer_rao(noise: float) -> tuple[float, float]:
    """Median |relative error| of β and γ for an efficient unbiased estimator (Cramér–Rao)."""
    t, clean, _ = lv.make_data(noise, 0)
    p = np.array([lv.BETA, lv.GAMMA, *lv.U0])

    def sim(q):
        return _simulate(t, ["xy"], ["xy"], [-q[0], q[1]], q[2:])

    jac = []
    for i in range(p.size):
        h = 1e-6 * max(1.0, abs(p[i]))
        e = np.zeros(p.size)
        e[i] = h
        jac.append((sim(p + e) - sim(p - e)) / (2 * h))
    jac = np.stack(jac, axis=-1)  # (T, states, params)
    sigma = noise * clean.mean(axis=0)
    fisher = sum(jac[:, s, :].T @ jac[:, s, :] / sigma[s] ** 2 for s in range(sigma.size))
    sd = np.sqrt(np.diag(np.linalg.inv(fisher)))
    return MEDIAN_ABS_NORMAL * sd[0] / lv.BETA, MEDIAN_ABS_NORMAL * sd[1] / lv.GAMMA


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--noise", type=noise_list, default="0.001,0.01,0.05", help="comma-separated noise levels (%(default)s)"
    )
    parser.add_argument("--seeds", type=int, default=100, help="seeds 0..N-1 per level (default %(default)s)")
    parser.add_argument("--margin", type=float, default=6.0, help="parsimony margin (default %(default)s)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default="bench/results/ceiling.json")
    args = parser.parse_args(argv)
    levels = args.noise
    if args.seeds < 1:
        parser.error(f"--seeds: expected a positive int, received {args.seeds}")
    if args.workers < 1:
        parser.error(f"--workers: expected a positive int, received {args.workers}")
    start = time.perf_counter()
    jobs = [(noise, seed) for noise in levels for seed in range(args.seeds)]
    with Pool(args.workers) as pool:
        runs = []
        for i, run in enumerate(pool.imap(one_seed, jobs), 1):
            runs.append(run)
            if i % 10 == 0 or i == len(jobs):
                print(f"[{i}/{len(jobs)}] {time.perf_counter() - start:.0f} s", flush=True)
    rows = []
    for noise in levels:
        rs = [r for r in runs if r["noise"] == noise]
        wins = [truth_wins(r["neighbours"], args.margin) for r in rs]
        crb_beta, crb_gamma = cramer_rao(noise)
        rows.append(
            {
                "noise": noise,
                "seeds": len(rs),
                "structure_ceiling": float(np.mean(wins)),
                "structure_ceiling_first10": float(np.mean(wins[:10])),
                "losing_seeds": [r["seed"] for r, w in zip(rs, wins, strict=True) if not w],
                "mle_beta_error": float(np.median([r["beta_rel_error"] for r in rs])),
                "mle_gamma_error": float(np.median([r["gamma_rel_error"] for r in rs])),
                "cramer_rao_beta_error": crb_beta,
                "cramer_rao_gamma_error": crb_gamma,
            }
        )
    print(
        f"\nLikelihood ceiling of the Lotka–Volterra recovery data (seeds 0–{args.seeds - 1}, "
        f"parsimony margin {args.margin:g})\n"
    )
    print(
        "| noise | structure ceiling | (first 10 seeds) | MLE β err | MLE γ err "
        "| Cramér–Rao β | Cramér–Rao γ | truth loses on seeds |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        lost = ", ".join(map(str, r["losing_seeds"][:15])) + (" …" if len(r["losing_seeds"]) > 15 else "")
        print(
            f"| {r['noise']:g} | {100 * r['structure_ceiling']:.0f}% | {100 * r['structure_ceiling_first10']:.0f}% "
            f"| {100 * r['mle_beta_error']:.2f}% | {100 * r['mle_gamma_error']:.2f}% "
            f"| {100 * r['cramer_rao_beta_error']:.2f}% | {100 * r['cramer_rao_gamma_error']:.2f}% | {lost} |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows, "runs": runs}, indent=1) + "\n")
    print(f"\n{time.perf_counter() - start:.0f} s; JSON: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
