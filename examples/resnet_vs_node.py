"""ResNet or neural ODE?  A plain NN map, a ResNet and a neural ODE on the same oscillator series.

The claim under test (from the talk that motivated udesci): *"regular data: ResNets; irregular data or
intermediate times: neural ODEs"*.

Truth: the Van der Pol oscillator ``x' = v``, ``v' = mu (1 - x^2) v - x`` (mu = 1; ``--system damped`` gives
a damped harmonic oscillator instead).  Training data: 6 trajectories from random initial states on
t in [0, 8], sampled either **regularly** (every 0.2) or **irregularly** (the same number of points at
sorted uniform random times), with optional Gaussian noise.

Models (the same MLP size, 2 hidden layers of 64 tanh units, for the discrete models; the neural ODE
uses one 2-32-32-1 MLP per state):

* **NN map**     ``y_{n+1} = N(y_n)``           (irregular data: ``N(y_n, dt_n)``)
* **ResNet**     ``y_{n+1} = y_n + N(y_n)``     (irregular data: ``y_n + N(y_n, dt_n)``) — one Euler-like
  step per sample
* **neural ODE** ``dy/dt = (U(x, v), V(x, v))`` — a :class:`udesci.HybridModel` whose whole right-hand side
  is unknown, trained with :func:`udesci.fit` (warm start + multiple shooting; irregular grids are native)

The discrete models are trained on one-step pairs (teacher forcing).  All models are evaluated on 3 new
test trajectories, rolled out from the initial state over t in [0, 8]:

* **grid**: at the regular training spacing (0.2);
* **intermediate**: at the midpoints between grid times (0.1, 0.3, ...): the map interpolates linearly
  between its steps, the ResNet takes a fractional Euler step ``y_n + (tau / dt) N(y_n)``; models with a
  ``dt`` input are queried with ``dt = tau``; the ODE is simply evaluated there;
* **irregular**: at random test times (discrete models with a ``dt`` input step along them; the others
  are evaluated as for intermediate times).

Run:  python examples/resnet_vs_node.py [--fast] [--seed 0] [--noise 0.0] [--system vdp|damped] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import sympy as sp
import torch
from torch import nn

import udesci as ud
from udesci.evaluate import rmse, simulate_or_nan, torch_threads

T_END = 8.0
DT = 0.2
N_TRAIN, N_TEST = 6, 3


def truth_model(system: str) -> ud.HybridModel:
    """The true oscillator as a closed-form :class:`udesci.HybridModel`."""
    x, v = sp.symbols("x v")
    if system == "vdp":
        return ud.HybridModel({x: v, v: (1 - x**2) * v - x})
    return ud.HybridModel({x: v, v: -0.2 * v - 2.0 * x})


def make_series(system: str, rng: np.random.Generator, n: int, times) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` trajectories ``(t (T,), y (T, 2))`` from random initial states in [-2.5, 2.5]^2."""
    model = truth_model(system)
    out = []
    for _ in range(n):
        y0 = rng.uniform(-2.5, 2.5, size=2)
        t = times(rng)
        out.append((t, ud.simulate(model, y0, t, solver=ud.Solver("dopri5", rtol=1e-10, atol=1e-10))))
    return out


def regular_times(_rng=None) -> np.ndarray:
    return np.round(np.arange(0.0, T_END + DT / 2, DT), 10)


def irregular_times(rng) -> np.ndarray:
    n = regular_times().size
    inner = np.sort(rng.uniform(0.0, T_END, size=n - 2))
    t = np.concatenate([[0.0], inner, [T_END]])
    return np.unique(np.round(t, 6))


class Discrete(nn.Module):
    """``y_{n+1} = [y_n +] N(y_n [, dt])`` with input/output standardisation."""

    def __init__(self, residual: bool, use_dt: bool, width: int = 64):
        super().__init__()
        self.residual, self.use_dt = residual, use_dt
        n_in = 3 if use_dt else 2
        self.net = nn.Sequential(
            nn.Linear(n_in, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 2)
        )
        self.register_buffer("loc", torch.zeros(n_in))
        self.register_buffer("scale", torch.ones(n_in))
        self.register_buffer("out_scale", torch.ones(2))

    def forward(self, y, dt=None):
        z = torch.cat([y, dt.unsqueeze(-1)], -1) if self.use_dt else y
        step = self.net((z - self.loc) / self.scale) * self.out_scale
        return y + step if self.residual else step


def train_discrete(model: Discrete, series, iterations: int, lr: float = 3e-3) -> Discrete:
    """Full-batch Adam on the one-step pairs of all trajectories."""
    y0 = torch.tensor(np.concatenate([y[:-1] for _, y in series]))
    y1 = torch.tensor(np.concatenate([y[1:] for _, y in series]))
    dt = torch.tensor(np.concatenate([np.diff(t) for t, _ in series]))
    z = torch.cat([y0, dt.unsqueeze(-1)], -1) if model.use_dt else y0
    target = (y1 - y0) if model.residual else y1
    with torch.no_grad():
        model.loc.copy_(z.mean(0))
        model.scale.copy_(z.std(0).clamp(min=1e-6))
        model.out_scale.copy_(target.std(0).clamp(min=1e-6))
        if not model.residual:
            model.net[-1].bias.copy_(target.mean(0) / model.out_scale)  # start near the data mean
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations)
    for _ in range(iterations):
        opt.zero_grad()
        loss = ((model(y0, dt) - y1) ** 2).mean()
        loss.backward()
        opt.step()
        sched.step()
    return model


@torch.no_grad()
def rollout_discrete(model: Discrete, y0: np.ndarray, t_query: np.ndarray) -> np.ndarray:
    """Predictions of a discrete model at ``t_query`` (T,), starting from ``y0`` at t = 0.

    Models with a ``dt`` input step directly along the query times.  The others step on the regular
    grid (their training spacing) and answer in-between times by linear interpolation (map) or a
    fractional Euler step (ResNet).
    """
    y = torch.tensor(y0).unsqueeze(0)
    if model.use_dt:
        out, t_prev = [], 0.0
        for tq in t_query:
            if tq > t_prev:
                y = model(y, torch.tensor([tq - t_prev]))
                t_prev = tq
            out.append(y[0].numpy().copy())
        return np.array(out)
    grid = np.arange(0.0, t_query.max() + DT + 1e-9, DT)
    states = [y]
    for _ in range(grid.size - 1):
        states.append(model(states[-1]))
    ys = torch.cat(states).numpy()
    out = []
    for tq in t_query:
        n = min(int(math.floor(tq / DT + 1e-9)), grid.size - 1)
        tau = tq - grid[n]
        if tau < 1e-9:
            out.append(ys[n])
        elif model.residual:
            step = model(torch.tensor(ys[n]).unsqueeze(0))[0].numpy() - ys[n]
            out.append(ys[n] + (tau / DT) * step)
        else:
            out.append(ys[n] + (tau / DT) * (ys[n + 1] - ys[n]))
    return np.array(out)


def train_node(series, fast: bool, seed: int) -> ud.FitResult:
    """Neural ODE ``dx/dt = U(x, v)``, ``dv/dt = V(x, v)`` fitted with udesci."""
    x, v = sp.symbols("x v")
    U, V = sp.symbols("U V", cls=sp.Function)
    torch.manual_seed(seed)
    model = ud.HybridModel({x: U(x, v), v: V(x, v)})
    data = ud.Dataset([t for t, _ in series], [y for _, y in series], states=["x", "v"])
    if fast:
        opts = {"warm_start": ud.WarmStart(iterations=300, lr=2e-2), "shooting": ud.Shooting(iterations=80, lr=1e-2)}
    else:
        opts = {"warm_start": ud.WarmStart(iterations=800), "shooting": ud.Shooting(iterations=600, lr=5e-3)}
    return ud.fit(model, data, seed=seed, progress=False, threads=1, **opts)


def run(fast: bool = False, seed: int = 0, noise: float = 0.0, system: str = "vdp", out: str | None = None) -> dict:
    """Train all models on regular and irregular data; return the error table.

    Runs with one torch thread (restored afterwards) and sets torch's default dtype to float64.

    Returns
    -------
    dict
        ``rows``: list of {"data", "model", "grid", "intermediate", "irregular"} RMSEs on the test
        trajectories (``inf`` for a rollout that diverged); ``takeaway``: the claim checked against the
        numbers; ``seconds``.
    """
    with torch_threads(1, 2):
        return _run(fast, seed, noise, system, out)


def _run(fast: bool, seed: int, noise: float, system: str, out: str | None) -> dict:
    started = time.perf_counter()
    torch.set_default_dtype(torch.float64)
    rng = np.random.default_rng(seed)
    sampling = {"regular": regular_times, "irregular": irregular_times}
    train = {}
    for kind, times in sampling.items():
        series = make_series(system, np.random.default_rng(seed + 1), N_TRAIN, times)  # same initial states
        if noise:
            series = [(t, y + noise * y.std(0) * rng.standard_normal(y.shape)) for t, y in series]
        train[kind] = series
    test_rng = np.random.default_rng(seed + 1000)
    t_grid = regular_times()[1:]
    t_mid = t_grid - DT / 2
    t_irr = np.sort(test_rng.uniform(0.05, T_END, size=t_grid.size))
    truth = truth_model(system)
    y0s = test_rng.uniform(-2.5, 2.5, size=(N_TEST, 2))
    exact = {
        name: [
            ud.simulate(truth, y0, np.concatenate([[0.0], tq]), solver=ud.Solver("dopri5", rtol=1e-10, atol=1e-10))[1:]
            for y0 in y0s
        ]
        for name, tq in (("grid", t_grid), ("intermediate", t_mid), ("irregular", t_irr))
    }
    iters = 400 if fast else 3000
    rows = []
    for kind, series in train.items():
        use_dt = kind == "irregular"
        models = {}
        for label, residual in (("NN map", False), ("ResNet", True)):
            torch.manual_seed(seed)
            name = label + (" (dt input)" if use_dt else "")
            models[name] = train_discrete(Discrete(residual, use_dt), series, iters)
        t0 = time.perf_counter()
        node = train_node(series, fast, seed)
        node_s = time.perf_counter() - t0
        for name, m in models.items():
            row = {"data": kind, "model": name}
            for q, tq in (("grid", t_grid), ("intermediate", t_mid), ("irregular", t_irr)):
                preds = [rollout_discrete(m, y0, tq) for y0 in y0s]
                row[q] = rmse(np.array(preds), np.array(exact[q]))
            rows.append(row)
        row = {"data": kind, "model": "neural ODE"}
        for q, tq in (("grid", t_grid), ("intermediate", t_mid), ("irregular", t_irr)):
            t_sim = np.concatenate([[0.0], tq])
            solver = ud.Solver("dopri5", rtol=1e-9, atol=1e-9)  # udesci.simulate's default
            preds = [simulate_or_nan(node.model, y0, t_sim, solver=solver, finite_only=False)[1:] for y0 in y0s]
            row[q] = rmse(np.array(preds), np.array(exact[q]))
        row["fit_s"] = round(node_s, 1)
        rows.append(row)

    # the talk's claim, checked
    def best(kind, q):
        cand = [r for r in rows if r["data"] == kind]
        return min(cand, key=lambda r: r[q])["model"]

    verdict = {
        "regular data, grid times: best": best("regular", "grid"),
        "regular data, intermediate times: best": best("regular", "intermediate"),
        "irregular data, irregular test times: best": best("irregular", "irregular"),
    }
    result = {
        "system": system,
        "noise": noise,
        "seed": seed,
        "fast": fast,
        "rows": rows,
        "takeaway": verdict,
        "seconds": time.perf_counter() - started,
    }
    if out:
        p = Path(out)
        p.mkdir(parents=True, exist_ok=True)
        (p / "resnet_vs_node.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    return result


def format_table(result: dict) -> str:
    lines = [
        f"{result['system']} oscillator, noise {result['noise']:g}, seed {result['seed']}"
        + (" (fast)" if result["fast"] else ""),
        "test RMSE over 3 new trajectories, rolled out from the initial state on t in [0, 8]",
        f"{'training data':<14}{'model':<22}{'grid (dt 0.2)':>15}{'intermediate':>15}{'irregular':>12}",
    ]
    for r in result["rows"]:
        cells = "".join(
            f"{r[q]:>15.4f}" if math.isfinite(r[q]) else f"{'diverged':>15}" for q in ("grid", "intermediate")
        )
        irr = f"{r['irregular']:>12.4f}" if math.isfinite(r["irregular"]) else f"{'diverged':>12}"
        lines.append(f"{r['data']:<14}{r['model']:<22}{cells}{irr}")
    lines.append("")
    for k, v in result["takeaway"].items():
        lines.append(f"{k}: {v}")
    lines.append(f"({result['seconds']:.0f} s)")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fast", action="store_true", help="few iterations (smoke run)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.0, help="noise std as a fraction of each state's std")
    p.add_argument("--system", choices=["vdp", "damped"], default="vdp")
    p.add_argument("--out", default=None, help="folder for resnet_vs_node.json")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    res = run(args.fast, args.seed, args.noise, args.system, args.out)
    print(json.dumps(res, default=float) if args.json else format_table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
