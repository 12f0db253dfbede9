"""Scale benchmark: a UDE with >= 1,000 states, adjoint memory against horizon, time against state size.

The system is Lorenz-96 on a ring of ``n`` sites,

    dx_i/dt = C(x_{i-2}, x_{i-1}, x_{i+1}) - x_i + F,       truth  C = (x_{i+1} - x_{i-2}) x_{i-1},

with the damping ``-x_i`` and forcing ``F = 8`` known and the coupling ``C`` unknown: one small MLP
(3 -> 32 -> 32 -> 1, tanh) shared by every site.  Writing 1,000 SymPy equations for a HybridModel is
needlessly slow, so the vector field is a plain ``torch.nn.Module`` with ``field(t, y)`` (``t`` of
shape ``(B,)``, ``y`` of shape ``(B, n)``), solved with ``udesci.integrate``.

1. training: a few Adam steps of the adjoint method (dopri5) on a 1,000-state trajectory; the loss decreases.
2. peak memory (max RSS of a fresh subprocess per configuration) of one loss + gradient against the
   horizon, adjoint against direct backpropagation, fixed-step rk4 (so both take the same steps).
3. seconds per loss + gradient against the state size (100, 1,000, 10,000).

Run ``python bench/bench_scale.py`` (full) or ``python bench/bench_scale.py --quick``.
Writes ``bench/results/scale.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

import udesci as ud

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "scale.json"
FORCING = 8.0
DT = 0.05  # rk4 step of the memory and timing runs


class Lorenz96UDE(nn.Module):
    """Lorenz-96 with known damping and forcing and an unknown coupling shared across sites.

    ``field(t, y)``: ``t`` of shape ``(B,)`` (unused: autonomous), ``y`` of shape ``(B, n)``.
    With ``truth=True`` the coupling is the true ``(x_{i+1} - x_{i-2}) x_{i-1}``.
    """

    def __init__(self, forcing: float = FORCING, width: int = 32, truth: bool = False):
        super().__init__()
        self.forcing = forcing
        self.truth = truth
        self.net = nn.Sequential(
            nn.Linear(3, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1)
        )
        with torch.no_grad():  # start near the known physics, as udesci's MLP does
            self.net[-1].weight.mul_(0.1)
            self.net[-1].bias.zero_()
        # typical Lorenz-96 (F = 8) climatology: mean ~2.3, std ~3.6; coupling std ~ 10
        self.register_buffer("in_loc", torch.tensor(2.3))
        self.register_buffer("in_scale", torch.tensor(3.6))
        self.register_buffer("out_scale", torch.tensor(10.0))

    def stencil(self, y: torch.Tensor) -> torch.Tensor:
        """(x_{i-2}, x_{i-1}, x_{i+1}) for every site: shape ``(B, n, 3)``."""
        return torch.stack([torch.roll(y, 2, -1), torch.roll(y, 1, -1), torch.roll(y, -1, -1)], dim=-1)

    def coupling(self, y: torch.Tensor) -> torch.Tensor:
        z = self.stencil(y)
        if self.truth:
            return (z[..., 2] - z[..., 0]) * z[..., 1]
        return self.net((z - self.in_loc) / self.in_scale).squeeze(-1) * self.out_scale

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.coupling(y) - y + self.forcing


def l96_state(n: int, dtype=torch.float64, seed: int = 0, spinup: float = 5.0) -> torch.Tensor:
    """A state on the Lorenz-96 attractor: ``F`` plus a small perturbation, spun up with rk4."""
    g = torch.Generator().manual_seed(seed)
    y = FORCING + 0.01 * torch.randn(1, n, generator=g, dtype=dtype)
    truth = Lorenz96UDE(truth=True).to(dtype)
    steps = int(round(spinup / 0.01))
    knots = torch.linspace(0.0, spinup, steps + 1, dtype=dtype).unsqueeze(0)
    with torch.no_grad():
        return ud.integrate(truth, y, knots[:, [0, -1]], ud.Solver("rk4", substeps=steps))[:, -1]


def loss_and_grad(
    field: nn.Module, y0: torch.Tensor, knots: torch.Tensor, target: torch.Tensor, solver: ud.Solver
) -> float:
    for p in field.parameters():
        p.grad = None
    pred = ud.integrate(field, y0, knots, solver)
    loss = (pred - target).pow(2).mean()
    loss.backward()
    return float(loss.detach())


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


# --------------------------------------------------------------------------------------------------
# 1. training


def train_demo(args) -> dict:
    n, dtype = args.n, torch.float64
    torch.manual_seed(0)
    y0 = l96_state(n, dtype)
    horizon, n_obs = 0.5, 10
    knots = torch.linspace(0.0, horizon, n_obs + 1, dtype=dtype).unsqueeze(0)
    truth = Lorenz96UDE(truth=True).to(dtype)
    with torch.no_grad():
        target = ud.integrate(truth, y0, knots, ud.Solver("dopri5", rtol=1e-9, atol=1e-9))
    field = Lorenz96UDE().to(dtype)
    solver = ud.Solver("dopri5", rtol=1e-5, atol=1e-5, adjoint=True)
    opt = torch.optim.Adam(field.parameters(), lr=args.lr)
    losses, times = [], []
    print(
        f"1. training: Lorenz-96, {n} states, unknown coupling MLP 3-32-32-1 shared by all sites, "
        f"dopri5 adjoint, {n_obs + 1} observations on [0, {horizon}]",
        flush=True,
    )
    for step in range(args.train_steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        pred = ud.integrate(field, y0, knots, solver)
        loss = (pred - target).pow(2).mean()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss.detach()))
        print(f"   step {step:3d}  loss {losses[-1]:.5g}  ({times[-1]:.2f} s)", flush=True)
    with torch.no_grad():
        final = float((ud.integrate(field, y0, knots, solver) - target).pow(2).mean())
    n_params = sum(p.numel() for p in field.parameters())
    return {
        "states": n,
        "parameters": n_params,
        "horizon": horizon,
        "observations": n_obs + 1,
        "solver": "dopri5 rtol=atol=1e-5, adjoint",
        "lr": args.lr,
        "losses": losses,
        "final_loss": final,
        "seconds_per_step": statistics.median(times),
        "decreased": final < losses[0],
    }


# --------------------------------------------------------------------------------------------------
# 2. memory against horizon (one fresh subprocess per configuration)


def child_memory(mode: str, horizon: float, n: int) -> dict:
    dtype = torch.float64
    torch.manual_seed(0)
    field = Lorenz96UDE().to(dtype)
    y0 = l96_state(n, dtype, spinup=1.0)
    substeps = 10  # outputs every 10 steps (0.5 time units)
    J = max(1, int(round(horizon / (DT * substeps))))
    knots = torch.linspace(0.0, J * DT * substeps, J + 1, dtype=dtype).unsqueeze(0)
    target = y0.unsqueeze(1).expand(1, J + 1, n)
    solver = ud.Solver("rk4", substeps=substeps, adjoint=(mode == "adjoint"))
    # warm-up on the shortest horizon so that both modes start from the same loaded state
    loss_and_grad(field, y0, knots[:, :2], target[:, :2], solver)
    base = maxrss_mb()
    t0 = time.perf_counter()
    loss_and_grad(field, y0, knots, target, solver)
    seconds = time.perf_counter() - t0
    peak = maxrss_mb()
    return {
        "mode": mode,
        "horizon": J * DT * substeps,
        "steps": J * substeps,
        "states": n,
        "baseline_mb": base,
        "peak_mb": peak,
        "delta_mb": peak - base,
        "seconds": seconds,
    }


def run_child(mode: str, horizon: float, n: int, threads: int) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        mode,
        str(horizon),
        str(n),
        "--threads",
        str(threads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"mode": mode, "horizon": horizon, "states": n, "error": proc.stderr.strip()[-500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory_sweep(args) -> list[dict]:
    print(
        f"2. peak memory of one loss + gradient against the horizon ({args.mem_n} states, rk4 dt={DT}, "
        "fresh process each)",
        flush=True,
    )
    rows = []
    for horizon in args.horizons:
        for mode in ("adjoint", "direct"):
            r = run_child(mode, horizon, args.mem_n, args.threads)
            rows.append(r)
            if "error" in r:
                print(f"   {mode:<8} horizon {horizon:g}: failed: {r['error']}", flush=True)
            else:
                print(
                    f"   {mode:<8} horizon {r['horizon']:6g} ({r['steps']:5d} steps)  peak {r['peak_mb']:8.0f} MB"
                    f"  (+{r['delta_mb']:.0f} MB over baseline)  {r['seconds']:.2f} s",
                    flush=True,
                )
    return rows


# --------------------------------------------------------------------------------------------------
# 3. time against state size


def time_sweep(args) -> list[dict]:
    dtype = torch.float64
    horizon = args.time_horizon
    steps = int(round(horizon / DT))
    print(
        f"3. seconds per loss + gradient against the state size (horizon {horizon:g}, rk4 dt={DT}, "
        f"{steps} steps = {4 * steps} field evaluations forward)",
        flush=True,
    )
    rows = []
    for n in args.sizes:
        torch.manual_seed(0)
        field = Lorenz96UDE().to(dtype)
        y0 = l96_state(n, dtype, spinup=1.0)
        J = max(1, int(round(horizon / 0.5)))
        knots = torch.linspace(0.0, horizon, J + 1, dtype=dtype).unsqueeze(0)
        target = y0.unsqueeze(1).expand(1, J + 1, n)
        row = {"states": n, "horizon": horizon, "steps": steps}
        for mode in ("adjoint", "direct"):
            solver = ud.Solver("rk4", substeps=steps // J, adjoint=(mode == "adjoint"))
            loss_and_grad(field, y0, knots, target, solver)
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                loss_and_grad(field, y0, knots, target, solver)
                times.append(time.perf_counter() - t0)
            row[f"{mode}_s"] = statistics.median(times)
        rows.append(row)
        print(f"   n={n:6d}  adjoint {row['adjoint_s']:.3f} s   direct {row['direct_s']:.3f} s", flush=True)
    return rows


# --------------------------------------------------------------------------------------------------


def markdown(result: dict) -> str:
    lines = []
    tr = result.get("training")
    if tr:
        lines += [
            f"### 1. Training a {tr['states']}-state Lorenz-96 UDE with the adjoint ({tr['solver']})",
            "",
            "| states | parameters | Adam steps | first loss | last step loss | final loss | decreased | s / step |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
            f"| {tr['states']} | {tr['parameters']} | {len(tr['losses'])} | {tr['losses'][0]:.4g} | "
            f"{tr['losses'][-1]:.4g} | {tr['final_loss']:.4g} | {'yes' if tr['decreased'] else 'NO'} | "
            f"{tr['seconds_per_step']:.2f} |",
            "",
        ]
    mem = result.get("memory")
    if mem:
        lines += [
            f"### 2. Peak memory of one loss + gradient against the horizon ({mem[0]['states']} states, rk4 dt={DT})",
            "",
            "| horizon | rk4 steps | adjoint peak MB | adjoint +MB | adjoint s | direct peak MB | direct +MB | "
            "direct s |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        by = {}
        for r in mem:
            by.setdefault(r["horizon"], {})[r["mode"]] = r
        for h, d in by.items():
            cells = []
            for mode in ("adjoint", "direct"):
                r = d.get(mode, {})
                if "peak_mb" in r:
                    cells += [f"{r['peak_mb']:.0f}", f"{r['delta_mb']:.0f}", f"{r['seconds']:.2f}"]
                else:
                    cells += ["failed", "", ""]
            steps = next((r["steps"] for r in d.values() if "steps" in r), "")
            lines.append(f"| {h:g} | {steps} | " + " | ".join(cells) + " |")
        lines.append("")
    tm = result.get("time")
    if tm:
        lines += [
            f"### 3. Seconds per loss + gradient against the state size (horizon {tm[0]['horizon']:g}, "
            f"{tm[0]['steps']} rk4 steps)",
            "",
            "| states | adjoint s | direct s | adjoint / direct |",
            "| ---: | ---: | ---: | ---: |",
        ]
        for r in tm:
            lines.append(
                f"| {r['states']} | {r['adjoint_s']:.3f} | {r['direct_s']:.3f} | {r['adjoint_s'] / r['direct_s']:.2f} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: small horizons, sizes and step counts")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="JSON output path (default bench/results/scale.json)")
    p.add_argument("--n", type=int, default=1000, help="states of the training demo (default 1000)")
    p.add_argument("--train-steps", type=int, default=None, help="Adam steps of the training demo (default 10)")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--mem-n", type=int, default=1000, help="states of the memory sweep (default 1000)")
    p.add_argument(
        "--horizons",
        type=float,
        nargs="+",
        default=None,
        help="horizons (time units) of the memory sweep (default 10 20 40 80)",
    )
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="state sizes (default 100 1000 10000)")
    p.add_argument("--time-horizon", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 3, quick 1)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--skip", default="", help="comma list of parts to skip: 1, 2, 3")
    p.add_argument("--child", nargs=3, metavar=("MODE", "HORIZON", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child:
        mode, horizon, n = args.child
        print(json.dumps(child_memory(mode, float(horizon), int(n))))
        return 0
    args.train_steps = args.train_steps or (3 if args.quick else 10)
    args.horizons = args.horizons or ([1.0, 2.0] if args.quick else [10.0, 20.0, 40.0, 80.0])
    args.sizes = args.sizes or ([100, 1000] if args.quick else [100, 1000, 10000])
    args.repeats = args.repeats or (1 if args.quick else 3)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    result: dict = {
        "meta": {
            "quick": args.quick,
            "threads": args.threads,
            "dtype": "float64",
            "dt": DT,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "loadavg_start": list(os.getloadavg()),
        }
    }
    t_start = time.perf_counter()
    if "1" not in skip:
        result["training"] = train_demo(args)
    if "2" not in skip:
        result["memory"] = memory_sweep(args)
    if "3" not in skip:
        result["time"] = time_sweep(args)
    result["meta"]["loadavg_end"] = list(os.getloadavg())
    result["meta"]["total_seconds"] = time.perf_counter() - t_start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print()
    print(markdown(result))
    print(f"\nwrote {out} ({result['meta']['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
