"""Training-speed benchmark: udesci against hand-written torchdiffeq baselines (and diffrax).

One process, side by side, on the Lotka-Volterra UDE

    dx/dt =  alpha x + U(x, y)        (alpha = 1.3 known)
    dy/dt = -delta y + V(x, y)        (delta = 1.8 known)

whose true unknowns are U = -beta x y, V = gamma x y (beta = 0.9, gamma = 0.8).

(a) milliseconds per loss + gradient (median over repeats after warm-up) on 21 noise-free points on
    t in [0, 5] for: a hand-written ``torchdiffeq.odeint_adjoint`` script (MLP 2-32-32-2 tanh, dopri5,
    rtol = atol = 1e-6), the same with ``odeint`` (direct backprop), and the losses udesci's ``fit``
    builds for its stages (multiple shooting, full-trajectory adjoint, warm start); each as a ratio
    to the adjoint baseline.
(b) wall-clock from data to recovered equations (noise 0.005, 31 points on [0, 3]): the two hand-written
    scripts (Adam, lr 1e-2, fixed iteration budget, then a fixed-threshold SINDy on the network) and
    udesci's defaults.
(c) optional diffrax column (jit-compiled loss + gradient, compile time separately, and end to end).

Run ``python bench/bench_speed.py`` (full) or ``python bench/bench_speed.py --quick`` (smoke run).
Writes ``bench/results/speed.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import sympy as sp
import torch
import torchdiffeq
from scipy.integrate import solve_ivp
from torch import nn

import udesci as ud
from udesci.train import PaddedBatch, make_segments, masked_mse, set_network_scaling

ALPHA, BETA, GAMMA, DELTA = 1.3, 0.9, 0.8, 1.8
U0 = (0.44249296, 4.6280594)
RTOL = ATOL = 1e-6
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "speed.json"
TERMS = ["1", "x", "y", "x^2", "x*y", "y^2"]


# --------------------------------------------------------------------------------------------------
# data


def lv_rhs(t, u):
    x, y = u
    return [ALPHA * x - BETA * x * y, GAMMA * x * y - DELTA * y]


def lv_data(t: np.ndarray, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Lotka-Volterra truth at ``t`` plus Gaussian noise of std ``noise * mean(state)`` per state."""
    sol = solve_ivp(lv_rhs, (t[0], t[-1]), U0, t_eval=t, method="DOP853", rtol=1e-12, atol=1e-12)
    y = sol.y.T.copy()
    if noise > 0:
        rng = np.random.default_rng(seed)
        y = y + noise * y.mean(axis=0) * rng.standard_normal(y.shape)
    return y


def udesci_model() -> ud.HybridModel:
    x, y, alpha, delta = sp.symbols("x y alpha delta")
    U, V = sp.Function("U"), sp.Function("V")
    return ud.HybridModel({x: alpha * x + U(x, y), y: -delta * y + V(x, y)}, params={alpha: ALPHA, delta: DELTA})


# --------------------------------------------------------------------------------------------------
# hand-written baseline (what a user writes with torchdiffeq directly)


class HandUDE(nn.Module):
    """Known alpha x, -delta y plus one MLP 2-32-32-2 (tanh) for (U, V); default torch init."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 2))
        self.nfe = 0

    def forward(self, t, u):
        self.nfe += 1
        known = torch.stack([ALPHA * u[..., 0], -DELTA * u[..., 1]], dim=-1)
        return known + self.net(u)

    def unknowns(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def hand_loss(func: HandUDE, t: torch.Tensor, y: torch.Tensor, adjoint: bool):
    solve = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
    pred = solve(func, y[0], t, rtol=RTOL, atol=ATOL, method="dopri5")
    return (pred - y).pow(2).mean()


# --------------------------------------------------------------------------------------------------
# fixed-threshold SINDy on a trained network


def stlsq(theta: np.ndarray, target: np.ndarray, threshold: float = 0.1, iterations: int = 10) -> np.ndarray:
    """Sequentially thresholded least squares (Brunton et al. 2016) with a fixed threshold."""
    xi = np.linalg.lstsq(theta, target, rcond=None)[0]
    for _ in range(iterations):
        small = np.abs(xi) < threshold
        xi[small] = 0.0
        big = ~small
        if not big.any():
            break
        xi[big] = np.linalg.lstsq(theta[:, big], target, rcond=None)[0]
    return xi


def library(z: np.ndarray) -> np.ndarray:
    x, y = z[:, 0], z[:, 1]
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)


def sindy(states: np.ndarray, unknowns: np.ndarray, threshold: float = 0.1) -> dict:
    """Fit U and V (columns of ``unknowns``) at ``states`` on {1, x, y, x^2, xy, y^2}.

    The structure is correct when each of U and V keeps exactly the x*y term."""
    theta = library(states)
    xu = stlsq(theta, unknowns[:, 0], threshold)
    xv = stlsq(theta, unknowns[:, 1], threshold)
    xy = TERMS.index("x*y")
    correct = bool(np.flatnonzero(xu).tolist() == [xy] and np.flatnonzero(xv).tolist() == [xy])

    def show(xi):
        return " + ".join(f"{c:.3g}*{TERMS[i]}" for i, c in enumerate(xi) if c != 0) or "0"

    return {"correct_structure": correct, "beta": float(-xu[xy]), "gamma": float(xv[xy]), "U": show(xu), "V": show(xv)}


# --------------------------------------------------------------------------------------------------
# timing helpers


def median_ms(step, repeats: int, warmup: int) -> tuple[float, list[float]]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), times


def make_step(loss_fn, params):
    params = [p for p in params if p.requires_grad]

    def step():
        for p in params:
            p.grad = None
        loss = loss_fn()
        loss.backward()
        return float(loss.detach())

    return step


def count_nfe(step, field) -> int:
    field.nfe = 0
    step()
    return int(field.nfe)


# --------------------------------------------------------------------------------------------------
# (a) per-gradient timings


def per_gradient(args, dtype) -> list[dict]:
    t_np = np.linspace(0.0, 5.0, 21)
    y_np = lv_data(t_np)
    t = torch.as_tensor(t_np, dtype=dtype)
    y = torch.as_tensor(y_np, dtype=dtype)
    rows = []
    steps = []  # timed together below, round-robin

    def record(name, what, step, field):
        nfe = count_nfe(step, field)
        rows.append({"method": name, "what": what, "nfe": nfe})
        steps.append(step)

    print("(a) loss + gradient, 21 points on [0, 5]", flush=True)
    for adjoint in (True, False):
        torch.manual_seed(0)
        func = HandUDE().to(dtype)
        step = make_step(lambda func=func, adjoint=adjoint: hand_loss(func, t, y, adjoint), func.parameters())
        name = "hand-written odeint_adjoint" if adjoint else "hand-written odeint (direct)"
        record(name, "torchdiffeq dopri5 1e-6, MLP 2-32-32-2, whole trajectory", step, func)

    # udesci: the losses fit() builds (same data, same dtype), on a freshly initialised model
    torch.manual_seed(0)
    model = udesci_model().copy()
    model.module.to(dtype)
    data = ud.Dataset(t_np, y_np, states=["x", "y"])
    prep = PaddedBatch(model, data, dtype)
    set_network_scaling(model, prep)
    field = model.module
    trainable = list(field.parameters())

    shooting = ud.Shooting()
    knots, ys, mask, sel_k, first, links, n_seg = make_segments(prep, shooting.segment_length)
    starts = nn.Parameter(prep.smooth[sel_k, first].clone())

    def shooting_loss():  # as in udesci.train.fit
        pred = ud.integrate(field, starts, knots, shooting.solver)
        loss = masked_mse(pred, ys, mask, prep.scale)
        if links.numel():
            gap = (pred[links, -1] - starts[links + 1]) / prep.scale
            loss = loss + shooting.continuity * gap.pow(2).mean()
        return loss

    what = (
        f"{n_seg} segments x {shooting.segment_length} intervals, rk4 substeps={shooting.solver.substeps}, "
        "one batched solve"
    )
    record("udesci shooting (default)", what, make_step(shooting_loss, trainable + [starts]), field)

    y0 = nn.Parameter(prep.initial_guess().clone())
    for adjoint in (True, False):
        solver = ud.Solver("dopri5", rtol=RTOL, atol=ATOL, adjoint=adjoint)

        def full_loss(solver=solver):  # as in udesci.train.fit
            pred = ud.integrate(field, y0, prep.knots, solver)
            return masked_mse(pred, prep.y, prep.mask, prep.scale)

        name = "udesci full trajectory adjoint" if adjoint else "udesci full trajectory direct"
        record(
            name,
            "dopri5 1e-6, FullTrajectory stage" + ("" if adjoint else " with adjoint=False"),
            make_step(full_loss, trainable + [y0]),
            field,
        )

    try:
        from udesci.train import collocation_loss

        record(
            "udesci warm start (collocation)",
            "derivative matching on smoothed data, no ODE solve",
            make_step(collocation_loss(model, prep), trainable),
            field,
        )
    except ImportError:
        rows.append({"method": "udesci warm start (collocation)", "ms": None, "note": "_collocation_loss not found"})

    # round-robin: every repeat times each method once, so a slow spell on this shared machine hits all
    # of them rather than one row, and the ratios stay comparable
    timed = [r for r in rows if "ms" not in r]
    for step in steps:
        for _ in range(args.warmup):
            step()
    times = [[] for _ in steps]
    for _ in range(args.repeats):
        for k, step in enumerate(steps):
            t0 = time.perf_counter()
            step()
            times[k].append((time.perf_counter() - t0) * 1e3)
    for r, tk in zip(timed, times, strict=True):
        r["ms"], r["times_ms"] = statistics.median(tk), tk
        print(f"  {r['method']:<34} {r['ms']:9.2f} ms  (nfe fwd+bwd {r['nfe']})", flush=True)
    base = rows[0]["ms"]
    for r in rows:
        r["ratio_to_adjoint"] = None if r.get("ms") is None else r["ms"] / base
    return rows


# --------------------------------------------------------------------------------------------------
# (b) data to equations


def train_hand(adjoint: bool, t, y, dtype, iterations: int, lr: float, budget_s: float, target: float | None):
    torch.manual_seed(0)
    func = HandUDE().to(dtype)
    opt = torch.optim.Adam(func.parameters(), lr=lr)
    start = time.perf_counter()
    status = f"{iterations} iterations done"
    losses = []
    it = 0
    for it in range(1, iterations + 1):
        if time.perf_counter() - start > budget_s:
            status = f"not reached in budget ({budget_s:g} s, stopped after {it - 1} iterations)"
            it -= 1
            break
        opt.zero_grad(set_to_none=True)
        loss = hand_loss(func, t, y, adjoint)
        if not torch.isfinite(loss):
            status = f"loss became {float(loss)} at iteration {it}"
            break
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if target is not None and losses[-1] <= target:
            status = f"reached udesci's loss at iteration {it}"
            break
    else:
        if target is not None:
            status = f"not reached in {iterations} iterations"
    train_s = time.perf_counter() - start
    return func, train_s, it, losses, status


def discover_hand(func: HandUDE, t, y, dtype) -> tuple[dict, float]:
    start = time.perf_counter()
    dense = torch.linspace(float(t[0]), float(t[-1]), 200, dtype=dtype)
    with torch.no_grad():
        traj = torchdiffeq.odeint(func, y[0], dense, rtol=1e-8, atol=1e-8, method="dopri5")
        unk = func.unknowns(traj)
    res = sindy(traj.numpy(), unk.numpy())
    return res, time.perf_counter() - start


def data_mse_hand(func, t, y) -> float:
    with torch.no_grad():
        return float(hand_loss(func, t, y, adjoint=False))


def end_to_end(args, dtype) -> tuple[list[dict], dict]:
    t_np = np.round(np.arange(0.0, 3.0 + 1e-9, 0.1), 10)
    y_np = lv_data(t_np, noise=args.noise, seed=0)
    t = torch.as_tensor(t_np, dtype=dtype)
    y = torch.as_tensor(y_np, dtype=dtype)
    rows = []
    print(f"(b) data to equations, noise {args.noise}, {t_np.size} points on [0, 3]", flush=True)

    # udesci first: its reached loss is the baselines' target
    pipeline, why = None, "quick run" if args.quick else "udesci.pipelines.lotka_volterra not available"
    if not args.quick:
        try:
            pipeline = importlib.import_module("udesci.pipelines.lotka_volterra").run_pipeline
        except (ImportError, AttributeError):
            pipeline = None
    target = None
    if pipeline is not None:
        start = time.perf_counter()
        try:
            res = pipeline(noise=args.noise, seed=0, out=None, quiet=True)
        except Exception as exc:  # a pipeline still being written must not sink the benchmark
            why = f"run_pipeline failed: {type(exc).__name__}: {exc}"
            pipeline = None
        else:
            wall = time.perf_counter() - start
            rmse = res.get("data_rmse")
            rows.append(
                {
                    "method": "udesci defaults (run_pipeline)",
                    "seconds": wall,
                    "pipeline_seconds": res.get("seconds"),
                    "train_seconds": res.get("fit_seconds"),
                    "correct_structure": res.get("correct_structure"),
                    "beta": res.get("beta"),
                    "gamma": res.get("gamma"),
                    "status": "fit + discover + refit",
                    "data_mse": None if rmse is None else rmse**2,
                    "extrapolation_rmse": res.get("extrapolation_rmse"),
                    "equations": res.get("equations"),
                }
            )
            print(f"  {rows[-1]['method']:<34} {wall:8.1f} s  structure={rows[-1]['correct_structure']}", flush=True)
    # the bare fit (defaults) plus the benchmark's SINDy: always, so the pipeline's own overhead is visible
    row, fit_target = udesci_fit_row(args, t_np, y_np, dtype)
    if pipeline is None:
        row["pipeline"] = f"n/a ({why})"
    rows.append(row)
    target = target if target is not None else fit_target
    print(f"  {row['method']:<34} {row['seconds']:8.1f} s  structure={row['correct_structure']}", flush=True)

    for adjoint in (True, False):
        func, train_s, its, losses, status = train_hand(
            adjoint, t, y, dtype, args.iterations, args.lr, args.budget_s, target
        )
        disc, disc_s = discover_hand(func, t, y, dtype)
        name = "hand-written adjoint + SINDy" if adjoint else "hand-written direct + SINDy"
        rows.append(
            {
                "method": name,
                "seconds": train_s + disc_s,
                "train_seconds": train_s,
                "discovery_seconds": disc_s,
                "iterations": its,
                "data_mse": data_mse_hand(func, t, y),
                "status": status,
                **disc,
            }
        )
        print(f"  {name:<34} {train_s + disc_s:8.1f} s  {status}; structure={disc['correct_structure']}", flush=True)
    return rows, {"t": t_np.tolist(), "target_mse": target}


def udesci_fit_row(args, t_np, y_np, dtype) -> tuple[dict, float]:
    data = ud.Dataset(t_np, y_np, states=["x", "y"])
    kwargs = {}
    if args.quick:
        kwargs = {"warm_start": ud.WarmStart(iterations=20), "shooting": ud.Shooting(iterations=20)}
    start = time.perf_counter()
    result = ud.fit(udesci_model(), data, progress=False, dtype=dtype, **kwargs)
    train_s = time.perf_counter() - start
    d0 = time.perf_counter()
    dense = np.linspace(t_np[0], t_np[-1], 200)
    traj = result.predict(dense)
    field = result.model.module
    with torch.no_grad():
        z = torch.as_tensor(traj, dtype=field.dtype)
        unk = torch.stack([field.nets["U"](z).squeeze(-1), field.nets["V"](z).squeeze(-1)], dim=-1).numpy()
    disc = sindy(traj, unk)
    disc_s = time.perf_counter() - d0
    mse = float(np.mean((result.predict() - y_np) ** 2))
    row = {
        "method": "udesci ud.fit defaults + SINDy" + (" (quick)" if args.quick else ""),
        "seconds": train_s + disc_s,
        "train_seconds": train_s,
        "discovery_seconds": disc_s,
        "stage_seconds": result.seconds,
        "iterations": len(result.history),
        "data_mse": mse,
        "status": result.status,
        **disc,
    }
    return row, mse


# --------------------------------------------------------------------------------------------------
# (c) diffrax


def diffrax_column(args) -> dict:
    try:
        import diffrax
        import equinox as eqx
        import jax
        import jax.numpy as jnp
        import optax
    except ImportError:
        return {"available": False, "note": "diffrax: not installed (pip install -e .[bench])"}
    jax.config.update("jax_enable_x64", True)
    print(f"(c) diffrax (jax {jax.__version__}, diffrax {importlib.metadata.version('diffrax')})", flush=True)

    def make(ts_np, ys_np):
        ts, ys = jnp.asarray(ts_np), jnp.asarray(ys_np)

        def vf(t, u, net):
            return jnp.stack([ALPHA * u[0], -DELTA * u[1]]) + net(u)

        term = diffrax.ODETerm(vf)
        controller = diffrax.PIDController(rtol=RTOL, atol=ATOL)

        def solve(net, ts_out, y0):
            sol = diffrax.diffeqsolve(
                term,
                diffrax.Dopri5(),
                ts_out[0],
                ts_out[-1],
                None,
                y0,
                args=net,
                saveat=diffrax.SaveAt(ts=ts_out),
                stepsize_controller=controller,
                max_steps=100_000,
            )
            return sol.ys

        def loss(net):
            return jnp.mean((solve(net, ts, ys[0]) - ys) ** 2)

        return loss, solve

    net = eqx.nn.MLP(2, 2, 32, 2, activation=jnp.tanh, key=jax.random.PRNGKey(0))
    net = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, net)
    out: dict = {"available": True, "jax": jax.__version__}

    # loss + gradient on the (a) problem
    t_np = np.linspace(0.0, 5.0, 21)
    loss, _ = make(t_np, lv_data(t_np))
    grad = eqx.filter_jit(eqx.filter_value_and_grad(loss))
    t0 = time.perf_counter()
    jax.block_until_ready(grad(net))
    out["compile_s"] = time.perf_counter() - t0

    def step():
        jax.block_until_ready(grad(net))

    out["ms"], out["times_ms"] = median_ms(step, args.repeats, args.warmup)
    print(f"  diffrax loss+grad                  {out['ms']:9.2f} ms  (compile {out['compile_s']:.1f} s)", flush=True)

    # end to end on the (b) problem: Adam lr 1e-2, same iteration budget as the hand-written scripts
    t_np = np.round(np.arange(0.0, 3.0 + 1e-9, 0.1), 10)
    y_np = lv_data(t_np, noise=args.noise, seed=0)
    loss, solve = make(t_np, y_np)
    opt = optax.adam(args.lr)
    params = net
    state = opt.init(eqx.filter(params, eqx.is_inexact_array))

    @eqx.filter_jit
    def train_step(params, state):
        value, g = eqx.filter_value_and_grad(loss)(params)
        updates, state = opt.update(g, state)
        return eqx.apply_updates(params, updates), state, value

    start = time.perf_counter()
    c0 = time.perf_counter()
    params, state, value = train_step(params, state)
    jax.block_until_ready(value)
    compile_train = time.perf_counter() - c0
    its = 1
    target = getattr(args, "target_mse", None)
    status = f"{args.iterations} iterations done" if target is None else f"not reached in {args.iterations} iterations"
    while its < args.iterations:
        if time.perf_counter() - start > args.budget_s:
            status = f"not reached in budget ({args.budget_s:g} s, stopped after {its} iterations)"
            break
        params, state, value = train_step(params, state)
        its += 1
        if target is not None and its % 10 == 0 and float(value) <= target:  # checked every 10: a sync each time
            status = f"reached udesci's loss at iteration {its}"
            break
    jax.block_until_ready(value)
    train_s = time.perf_counter() - start
    d0 = time.perf_counter()
    dense = jnp.linspace(0.0, 3.0, 200)
    traj = np.asarray(solve(params, dense, jnp.asarray(y_np[0])))
    unk = np.asarray(jax.vmap(params)(jnp.asarray(traj)))
    disc = sindy(traj, unk)
    disc_s = time.perf_counter() - d0
    out["end_to_end"] = {
        "method": "diffrax (jit) + SINDy",
        "seconds": train_s + disc_s,
        "train_seconds": train_s,
        "compile_seconds": compile_train,
        "discovery_seconds": disc_s,
        "iterations": its,
        "data_mse": float(loss(params)),
        "status": status,
        **disc,
    }
    print(
        f"  diffrax + SINDy end to end         {train_s + disc_s:8.1f} s  {status}; "
        f"structure={disc['correct_structure']}",
        flush=True,
    )
    return out


# --------------------------------------------------------------------------------------------------
# report


def fmt(v, spec=".2f", none="n/a"):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return none
    return format(v, spec)


def markdown(result: dict) -> str:
    lines = [
        "### (a) Loss + gradient, LV UDE, 21 points on [0, 5], "
        f"{result['meta']['dtype']}, {result['meta']['threads']} torch thread(s)",
        "",
        "| method | ms / loss+grad | × adjoint baseline | NFE (fwd+bwd) | what |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    base = result["per_gradient"][0]["ms"] if result["per_gradient"] else None
    for r in result["per_gradient"]:
        lines.append(
            f"| {r['method']} | {fmt(r.get('ms'))} | {fmt(r.get('ratio_to_adjoint'), '.3f')} | "
            f"{r.get('nfe', 'n/a')} | {r.get('what', r.get('note', ''))} |"
        )
    dx = result["diffrax"]
    if dx.get("available"):
        ratio = fmt(dx["ms"] / base if base else None, ".3f")
        lines.append(
            f"| diffrax jit (compile {dx['compile_s']:.1f} s) | {fmt(dx['ms'])} | {ratio} | n/a | "
            "Dopri5 + PIDController 1e-6, eqx MLP 2-32-32-2, RecursiveCheckpointAdjoint |"
        )
    else:
        lines.append(f"| {dx['note']} | | | | |")
    lines += [
        "",
        f"### (b) Data to equations, noise {result['meta']['noise']}, 31 points on [0, 3]",
        "",
        "| method | total s | train s | iterations | data MSE | status | x*y-only structure | beta | gamma |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: |",
    ]
    rows = list(result["end_to_end"])
    if dx.get("available"):
        rows.append(dx["end_to_end"])
    elif dx.get("note"):
        rows.append({"method": dx["note"]})
    for r in rows:
        if "seconds" not in r:
            lines.append(f"| {r['method']} | | | | | | | | |")
            continue
        structure = r.get("correct_structure")
        structure = "n/a" if structure is None else ("yes" if structure else "no")
        status = r.get("status", "")
        if r.get("pipeline"):
            status += "; pipeline " + r["pipeline"]
        lines.append(
            f"| {r['method']} | {fmt(r['seconds'], '.1f')} | {fmt(r.get('train_seconds'), '.1f')} | "
            f"{r.get('iterations', 'n/a')} | {fmt(r.get('data_mse'), '.2e')} | {status} | {structure} | "
            f"{fmt(r.get('beta'), '.3f')} | {fmt(r.get('gamma'), '.3f')} |"
        )
    lines.append("")
    lines.append(
        f"Truth: beta = {BETA}, gamma = {GAMMA}. Target loss for the hand-written scripts: udesci's data "
        f"MSE {fmt(result['meta'].get('target_mse'), '.2e')}."
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: few repeats, tiny training budgets")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="JSON output path (default bench/results/speed.json)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per method (default 20, quick 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed warm-up calls (default 3, quick 1)")
    p.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="Adam iterations of the hand-written scripts and diffrax (default 3000, quick 5)",
    )
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--budget-s", type=float, default=None, help="time cap per baseline (default 120, quick 30)")
    p.add_argument("--noise", type=float, default=0.005)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--skip", default="", help="comma list of parts to skip: a, b, c")
    args = p.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    args.iterations = args.iterations or (5 if args.quick else 3000)
    args.budget_s = args.budget_s or (30.0 if args.quick else 120.0)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    dtype = getattr(torch, args.dtype)
    torch.set_num_threads(args.threads)

    meta = {
        "quick": args.quick,
        "dtype": args.dtype,
        "threads": args.threads,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "iterations": args.iterations,
        "lr": args.lr,
        "budget_s": args.budget_s,
        "noise": args.noise,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchdiffeq": torchdiffeq.__version__,
        "udesci": ud.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "loadavg_start": list(os.getloadavg()),
    }
    t_start = time.perf_counter()
    result: dict = {
        "meta": meta,
        "per_gradient": [],
        "end_to_end": [],
        "diffrax": {"available": False, "note": "skipped"},
    }
    if "a" not in skip:
        result["per_gradient"] = per_gradient(args, dtype)
    if "b" not in skip:
        result["end_to_end"], info = end_to_end(args, dtype)
        meta["target_mse"] = info["target_mse"]
    if "c" not in skip:
        # diffrax trains toward the same target as the hand-written scripts (udesci's data MSE)
        args.target_mse = meta.get("target_mse")
        result["diffrax"] = diffrax_column(args)
        if not result["diffrax"]["available"]:
            print(result["diffrax"]["note"], flush=True)
    meta["loadavg_end"] = list(os.getloadavg())
    meta["total_seconds"] = time.perf_counter() - t_start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print()
    print(markdown(result))
    print(
        f"\nwrote {out} ({meta['total_seconds']:.0f} s; load average {meta['loadavg_start'][0]:.2f} -> "
        f"{meta['loadavg_end'][0]:.2f} on {os.cpu_count()} cores)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
