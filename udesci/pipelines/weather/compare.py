"""NN map, ResNet or neural ODE?  The talk's comparison on the weather series, regular and gappy.

State ``T`` (°C), input ``Q`` (clear-sky shortwave, kW/m², known at any time), forecast setting.  Each
model is trained on the first 7 days (after the first day, as in the main run) and verified on the main
run's rolling 24-h forecasts (issued at every day boundary after 14 days, rolled out hourly from the
observed temperature):

* **NN map**: ``T(t + Δ) = N(T(t), Q(t), Δ)`` — a network predicts the next value;
* **ResNet**: ``T(t + Δ) = T(t) + N(T(t), Q(t), Δ)`` — a network predicts the increment;
* **ResNet (no Δ)**: ``T_{n+1} = T_n + N(T_n, Q(t_n))`` — one step per *sample*, blind to the gap length;
* **neural ODE**: ``dT/dt = N(T, Q)``, trained with :func:`udesci.fit` (defaults), solved over any gap.

Sampling: **regular** (every hour) or **gappy** (a random 30 % of the training hours removed; the
discrete models are trained on consecutive retained samples, so ``Δ`` is 1, 2, 3, ... hours).  The
discrete models use 2 hidden layers of 32 tanh units, full-batch Adam on one-step pairs (teacher forcing);
forecasts always step hourly (``Δ = 1``).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .data import observed_at
from .forecast import HORIZON, forecast, forecast_starts
from .scores import mse_skill

GAP_FRACTION = 0.3
TRAIN_DAYS = 7
TEST_AFTER_DAYS = 14
SAMPLINGS = ("regular", "gappy")
DISCRETE = ("NN map", "ResNet", "ResNet (no Δ)")


def series_fit_options(fast: bool = False) -> dict:
    """The neural ODE's training on the (gappy) series: udesci's default stages (derivative-matching warm
    start, then multiple shooting), which take the series' own irregular times as they are; fewer
    iterations when fast.

    Returns
    -------
    dict
        Keyword arguments ``warm_start`` and ``shooting`` for :func:`udesci.fit`.
    """
    from ... import Shooting, WarmStart

    if fast:
        return {"warm_start": WarmStart(iterations=60, lr=2e-2), "shooting": Shooting(iterations=20)}
    return {"warm_start": WarmStart(), "shooting": Shooting()}


class Comparison(NamedTuple):
    """Result of :func:`run_comparison`.

    Attributes
    ----------
    summary : dict
        JSON-ready: per station and sampling, per model ``RMSE`` (°C, 24-h pooled), ``SS vs yesterday``
        (value/low/high) and ``seconds``; ``winners`` (station -> sampling -> best model by RMSE).
    table : dict row -> column -> str
        The report's table (rows ``station, sampling``; columns the models).
    """

    summary: dict
    table: dict


def _pairs(t: np.ndarray, T: np.ndarray, Q: np.ndarray, use_dt: bool):
    x = np.stack([T[:-1], Q[:-1], np.diff(t) if use_dt else np.zeros(len(t) - 1)], axis=1)
    return x, T[1:]


def _train_discrete(x: np.ndarray, y: np.ndarray, residual: bool, epochs: int, seed: int):
    torch.manual_seed(seed)
    mean_t, std_t = float(x[:, 0].mean()), float(x[:, 0].std() + 1e-9)
    net = nn.Sequential(nn.Linear(3, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1)).double()
    xs = torch.tensor(x)
    scale = torch.tensor([std_t, 1.0, 1.0], dtype=torch.float64)
    shift = torch.tensor([mean_t, 0.0, 0.0], dtype=torch.float64)

    def step(inp: torch.Tensor) -> torch.Tensor:
        out = net((inp - shift) / scale)[:, 0] * std_t
        return inp[:, 0] + out if residual else out + mean_t

    target = torch.tensor(y)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for _ in range(epochs):
        opt.zero_grad()
        loss = torch.mean((step(xs) - target) ** 2)
        loss.backward()
        opt.step()
        sched.step()
    return step


def _rollout(step, T0: np.ndarray, Q: np.ndarray, use_dt: bool) -> np.ndarray:
    """Hourly rollouts: ``T0`` (B,), ``Q`` (B, horizon + 1) -> (B, horizon + 1)."""
    out = np.zeros_like(Q)
    out[:, 0] = T0
    with torch.no_grad():
        for k in range(Q.shape[1] - 1):
            x = np.stack([out[:, k], Q[:, k], np.full(len(T0), 1.0 if use_dt else 0.0)], axis=1)
            out[:, k + 1] = step(torch.tensor(x)).numpy()
    return np.where(np.isfinite(out) & (np.abs(out) < 1e3), out, np.nan)


def compare_station(station: str, *, seed: int = 0, fast: bool = False, quiet: bool = True) -> dict:
    """The comparison at one station, for both samplings.

    Parameters
    ----------
    station : str
        A key of :data:`~udesci.pipelines.weather.data.STATIONS`.
    seed : int
        Of the removed hours, the networks and the bootstrap.
    fast : bool
        Few iterations (tests).
    quiet : bool

    Returns
    -------
    dict sampling -> model -> {``RMSE``, ``SS vs yesterday`` (value/low/high), ``seconds``}
    """
    import sympy as sp

    from ... import Dataset, HybridModel, fit
    from .models import Variant
    from .run import variant_frame

    frame = variant_frame(Variant(station, "forecast", ("T",)))
    first = float(frame["t"].min())
    t_end = first + 24.0 * TRAIN_DAYS
    starts = forecast_starts(frame, first + 24.0 * TEST_AFTER_DAYS)
    grid = starts[:, None] + np.arange(HORIZON + 1)[None, :]
    obs = observed_at(frame, grid)
    q_grid = observed_at(frame, grid, column="Q")
    yesterday = observed_at(frame, grid - 24.0)
    ref = yesterday[:, 1:] - obs[:, 1:]
    train = frame[(frame["t"] >= first) & (frame["t"] <= t_end)].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    epochs = 60 if fast else 1500
    out = {}
    for sampling in SAMPLINGS:
        keep = np.ones(len(train), dtype=bool)
        if sampling == "gappy":
            inner = np.arange(1, len(train) - 1)
            keep[rng.choice(inner, size=int(round(GAP_FRACTION * len(train))), replace=False)] = False
        kept = train[keep]
        t, T, Q = kept["t"].to_numpy(), kept["T"].to_numpy(), kept["Q"].to_numpy()
        rows = {}
        for name in DISCRETE:
            started = time.perf_counter()
            use_dt = name != "ResNet (no Δ)"
            x, y = _pairs(t, T, Q, use_dt)
            step = _train_discrete(x, y, residual=name != "NN map", epochs=epochs, seed=seed)
            pred = _rollout(step, obs[:, 0], q_grid, use_dt)
            rows[name] = (pred, time.perf_counter() - started)
        started = time.perf_counter()
        Tsym, Qsym = sp.symbols("T Q")
        node = HybridModel({Tsym: sp.Function("N")(Tsym, Qsym)}, {}, [Qsym])
        gappy = train[["t", "T", "Q"]].copy()
        gappy.loc[~keep, "T"] = np.nan  # the inputs stay known at every hour
        data = Dataset.from_frame(gappy, time="t", states=["T"], inputs=["Q"], interpolation="cubic")
        fitted = fit(node, data, seed=seed, progress=not quiet, threads=1, **series_fit_options(fast))
        full = Dataset.from_frame(frame, time="t", states=["T"], inputs=["Q"], interpolation="cubic")
        rows["neural ODE"] = (forecast(fitted.model, full, starts, obs[:, :1])[..., 0], time.perf_counter() - started)
        out[sampling] = {}
        for name, (pred, seconds) in rows.items():
            e = pred[:, 1:] - obs[:, 1:]
            e = np.where(np.isfinite(e), e, np.inf)
            out[sampling][name] = {
                "RMSE": float(np.sqrt(np.mean(e**2))),
                "SS vs yesterday": mse_skill(e, ref)._asdict(),
                "seconds": round(seconds, 2),
            }
        if not quiet:
            best = min(out[sampling], key=lambda m: out[sampling][m]["RMSE"])
            print(f"[compare {station}, {sampling}] best: {best}", flush=True)
    return out


def run_comparison(stations, *, seed: int = 0, fast: bool = False, quiet: bool = True) -> Comparison:
    """NN map, ResNet and neural ODE at each station, on regular and gappy training series.

    Parameters
    ----------
    stations : sequence of str
    seed : int
    fast : bool
    quiet : bool

    Returns
    -------
    Comparison
    """
    results = {s: compare_station(s, seed=seed, fast=fast, quiet=quiet) for s in stations}
    winners = {s: {k: min(r, key=lambda m: r[m]["RMSE"]) for k, r in res.items()} for s, res in results.items()}
    summary = {
        "stations": results,
        "winners": winners,
        "gap_fraction": GAP_FRACTION,
        "train_days": TRAIN_DAYS,
        "test_after_days": TEST_AFTER_DAYS,
    }
    return Comparison(summary, comparison_table(summary))


def comparison_table(summary: dict) -> dict:
    """The report's table of a comparison summary.

    Parameters
    ----------
    summary : dict
        :attr:`Comparison.summary` (also as read back from ``summary.json``).

    Returns
    -------
    dict row (``"station, sampling"``) -> model -> str
        ``RMSE (skill vs yesterday)``, the best model of each row marked.
    """
    table = {}
    for s, res in summary["stations"].items():
        for sampling, rows in res.items():
            cells = {}
            for m, row in rows.items():
                sk = row["SS vs yesterday"]
                mark = " **(best)**" if m == summary["winners"][s][sampling] else ""
                ok = all(v is not None and np.isfinite(v) for v in (row["RMSE"], sk["value"]))
                cells[m] = (f"{row['RMSE']:.2f} ({sk['value']:+.2f})" if ok else "diverged") + mark
            table[f"{s}, {sampling}"] = cells
    return table
