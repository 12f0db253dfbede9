"""The Lotka–Volterra discovery pipeline (the UDE paper's set-up).

Truth: ``dx/dt = α x − β x y``, ``dy/dt = −δ y + γ x y`` with α=1.3, β=0.9,
γ=0.8, δ=1.8, u0=(0.44249296, 4.6280594), observed on t ∈ [0, 3] every 0.1
with Gaussian noise of ``noise`` × each state's mean.  Known: α x and −δ y;
unknown: U(x, y) and V(x, y).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import sympy as sp
import torch

from ..evaluate import write_text_atomic

ALPHA, BETA, GAMMA, DELTA = 1.3, 0.9, 0.8, 1.8
U0 = (0.44249296, 4.6280594)


def make_data(noise: float = 0.05, seed: int = 0, t_end: float = 3.0, dt: float = 0.1):
    """Noisy Lotka–Volterra observations.

    Parameters
    ----------
    noise : float, default 0.05
        Noise standard deviation as a fraction of each state's mean over the series.
    seed : int, default 0
        Seeds the noise.
    t_end : float, default 3.0
        Last observation time (the series starts at 0).
    dt : float, default 0.1
        Sampling step.

    Returns
    -------
    t : ndarray (T,)
    clean : ndarray (T, 2)
        The truth from ``U0`` (prey x, predator y).
    noisy : ndarray (T, 2)
        ``clean`` plus the noise.
    """
    from .. import HybridModel, simulate

    x, y = sp.symbols("x y")
    truth = HybridModel({x: ALPHA * x - BETA * x * y, y: -DELTA * y + GAMMA * x * y})
    t = np.round(np.arange(0.0, t_end + dt / 2, dt), 10)
    clean = simulate(truth, U0, t)
    rng = np.random.default_rng(seed)
    noisy = clean + noise * clean.mean(axis=0) * rng.standard_normal(clean.shape)
    return t, clean, noisy


def build_model(seed: int = 0):
    """The hybrid model with known α x, −δ y and unknown U(x, y), V(x, y).

    Parameters
    ----------
    seed : int, default 0
        Seeds torch before the networks are created.

    Returns
    -------
    HybridModel
    """
    from .. import HybridModel

    x, y, alpha, delta = sp.symbols("x y alpha delta")
    U, V = sp.symbols("U V", cls=sp.Function)
    torch.manual_seed(seed)
    return HybridModel({x: alpha * x + U(x, y), y: -delta * y + V(x, y)}, params={alpha: ALPHA, delta: DELTA})


def assess(found) -> dict:
    """Structure and coefficient recovery of a Discovery for this system.

    Parameters
    ----------
    found : Discovery
        With unknowns ``U`` and ``V`` of ``x`` and ``y``.

    Returns
    -------
    dict
        ``U_terms``, ``V_terms`` (sorted term strings), ``beta``, ``gamma`` (magnitudes of the
        x*y coefficients, 0 if missing), ``beta_rel_error``, ``gamma_rel_error`` and
        ``correct_structure`` (both unknowns exactly the x*y term).
    """
    x, y = sp.symbols("x y")
    out = {}
    for name, true_coef, key in (("U", -BETA, "beta"), ("V", GAMMA, "gamma")):
        expr = sp.expand(found.unknowns[name])
        terms = expr.as_coefficients_dict()
        out[f"{name}_terms"] = sorted(str(k) for k in terms)
        coef = float(terms.get(x * y, 0.0))
        out[key] = abs(coef)
        out[f"{key}_rel_error"] = abs(abs(coef) - abs(true_coef)) / abs(true_coef)
    out["correct_structure"] = out["U_terms"] == ["x*y"] and out["V_terms"] == ["x*y"]
    return out


def fit_options(fast: bool = False) -> dict:
    """Training options used by the pipeline.

    Parameters
    ----------
    fast : bool, default False
        Fewer warm-start iterations and a higher shooting learning rate (tests, smoke runs).

    Returns
    -------
    dict
        Keyword arguments ``warm_start`` and ``shooting`` for :func:`udesci.fit`.
    """
    from .. import Shooting, WarmStart

    if fast:
        return {"warm_start": WarmStart(iterations=300), "shooting": Shooting(iterations=300, lr=1e-2)}
    # 300 shooting iterations: the loss has flattened by then (measured: 200, 400 and 800 give the same
    # equations at noise 0.005), and discovery refits the coefficients on the data anyway
    return {"warm_start": WarmStart(), "shooting": Shooting(iterations=300)}


def _simulate(model, y0, t):
    """Simulate with a step budget; NaN rows if the model blows up or stiffens (a wrong structure can).

    The truth needs about 800 dopri5 steps over t in [0, 30]; 5,000 in total is the budget."""
    from .. import Solver
    from ..evaluate import simulate_or_nan

    return simulate_or_nan(
        model, y0, t, solver=Solver("dopri5", rtol=1e-9, atol=1e-9, max_steps=5_000), finite_only=False
    )


def write_csv(path: str | os.PathLike, noise: float = 0.05, seed: int = 0, t_end: float = 6.0) -> Path:
    """Write a noisy Lotka–Volterra series as CSV (the data of ``examples/lotka_volterra.toml``).

    The series is :func:`make_data`'s (α=1.3, β=0.9, γ=0.8, δ=1.8,
    u0=(0.44249296, 4.6280594), every 0.1 from t = 0, Gaussian noise of ``noise``
    × each state's mean): two ``#`` comment lines saying so, the header ``t,x,y``
    and one row per time, every number written with ``%.10g``.

    Parameters
    ----------
    path : str or PathLike
        CSV to write; missing parent folders are created.
    noise : float, default 0.05
        Noise level, >= 0.
    seed : int, default 0
        Seeds the noise.
    t_end : float, default 6.0
        Last time (the example trains on t ≤ 3 and holds out the rest).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ConfigError
        For a noise level that is not a number >= 0.
    """
    from ..errors import ConfigError, describe

    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or noise < 0:
        raise ConfigError(f"noise: expected a number >= 0, received {describe(noise)}.")
    t, _, noisy = make_data(noise=noise, seed=seed, t_end=t_end)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Lotka-Volterra, alpha=1.3 beta=0.9 gamma=0.8 delta=1.8, u0=(0.44249296, 4.6280594), noise={noise:g} x "
        f"state mean, seed={seed}",
        "# generated by udesci.pipelines.lotka_volterra.write_csv",
        "t,x,y",
    ]
    lines += [f"{ti:.10g},{a:.10g},{b:.10g}" for ti, (a, b) in zip(t, noisy, strict=True)]
    write_text_atomic(p, "\n".join(lines) + "\n")
    return p


def run_pipeline(
    noise: float = 0.05,
    seed: int = 0,
    out: str | os.PathLike | None = None,
    quiet: bool = False,
    fast: bool = False,
    plots: bool = True,
) -> dict:
    """Data → fit → discover → refit → export for Lotka–Volterra.

    Parameters
    ----------
    noise : float
        Noise level as a fraction of each state's mean.
    seed : int
        Seeds the noise, the network initialisation and training.
    out : path, optional
        Directory for ``equations.json``, ``equations.tex``, ``model.py``,
        ``fit.png``, ``loss.png``, ``phase.png``, ``summary.json``.
    quiet : bool
        No progress or printed equations.
    fast : bool
        Fewer iterations (for tests).
    plots : bool
        Write PNG plots when ``out`` is given.

    Returns
    -------
    dict
        ``seconds``, ``correct_structure``, ``beta``, ``gamma``, relative
        errors, ``equations`` (strings), ``extrapolation_rmse`` and more.
    """
    from .. import Dataset, discover, fit, simulate
    from ..evaluate import rmse

    start = time.perf_counter()
    t, clean, noisy = make_data(noise, seed)
    data = Dataset(t, noisy, states=["x", "y"])
    model = build_model(seed)
    fitted = fit(model, data, seed=seed, progress=not quiet, **fit_options(fast))
    found = discover(fitted, seed=seed, progress=not quiet)
    seconds = time.perf_counter() - start
    result = {"noise": noise, "seed": seed, "seconds": seconds, "fit_seconds": sum(fitted.seconds.values())}
    result.update(assess(found))
    result["adequacy"] = found.adequacy.as_dict() if found.adequacy is not None else None
    result["equations"] = {str(s): str(e) for s, e in found.equations.items()}
    t_long = np.linspace(0.0, 30.0, 601)
    from .. import HybridModel

    x, y = sp.symbols("x y")
    truth = HybridModel({x: ALPHA * x - BETA * x * y, y: -DELTA * y + GAMMA * x * y})
    true_long = simulate(truth, U0, t_long)
    y0_fit = found.refit.initial_states[0] if found.refit is not None else fitted.initial_states[0]
    for key, tt, ref in (("extrapolation_rmse", t_long, true_long), ("data_rmse", t, noisy)):
        result[key] = rmse(_simulate(found.model, y0_fit, tt), ref)  # inf: the discovered model blows up
    if out is not None:
        from . import write_discovery

        out = Path(out)
        write_discovery(found, out)
        if plots:
            from ..plots import plot_fit, plot_loss, plot_phase

            t_ext = np.linspace(0.0, 10.0, 401)
            try:
                ude = fitted.predict(t_ext)
            except (AssertionError, RuntimeError):  # an exploding network extrapolation
                ude = np.full((t_ext.size, 2), np.nan)
            closed = _simulate(found.model, y0_fit, t_ext)
            true_ext = simulate(truth, U0, t_ext)
            curves = {"truth": true_ext, "trained UDE": ude, "discovered model": closed}
            plot_fit(
                out / "fit.png",
                t,
                noisy,
                t_ext,
                curves,
                ["x (prey)", "y (predator)"],
                t_train_end=t[-1],
                title=f"Lotka–Volterra, noise {noise:g}, seed {seed}: fit (t ≤ 3) and extrapolation",
            )
            plot_loss(out / "loss.png", fitted.history)
            plot_phase(out / "phase.png", noisy, {"truth": true_ext, "discovered model": closed}, ["x", "y"])
        write_text_atomic(out / "summary.json", json.dumps(result, indent=2, default=float) + "\n")
    if not quiet:
        print(found.summary())
        print(
            f"correct structure: {result['correct_structure']}; beta = {result['beta']:.4f} "
            f"({100 * result['beta_rel_error']:.1f}% off), gamma = {result['gamma']:.4f} "
            f"({100 * result['gamma_rel_error']:.1f}% off); {seconds:.1f} s"
        )
    return result
