"""Where does udesci's per-gradient time go?  Profiles the default multiple-shooting loss + gradient.

Compares, on the Lotka-Volterra UDE of ``bench_speed.py`` (21 points on [0, 5], 4 shooting segments,
classic rk4 with 2 substeps, float64):

1. one vector-field evaluation (forward, and forward + backward) of udesci's ``VectorField`` against
   hand-written fields: one MLP 2-32-32-2, and two MLPs 2-32-32-1 with udesci's input/output scaling;
2. autograd nodes recorded per evaluation;
3. the whole shooting loss + gradient: udesci against the same algorithm written by hand;
4. 1 against 2 torch threads;
5. cProfile's top entries of udesci's shooting loss + gradient.

Run ``python bench/profile_udesci.py`` (about a minute).
"""

from __future__ import annotations

import cProfile
import io
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_speed as bs  # noqa: E402

import udesci as ud  # noqa: E402
from udesci.solve import rk_step  # noqa: E402
from udesci.train import PaddedBatch, make_segments, masked_mse, set_network_scaling  # noqa: E402


def timeit(fn, repeats=200, warmup=20) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6  # microseconds


def count_nodes(out: torch.Tensor) -> int:
    seen, stack = set(), [out.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        stack.extend(f for f, _ in fn.next_functions)
    return len(seen)


def mlp(n_out):
    return nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, n_out))


class OneNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = mlp(2)

    def forward(self, t, u):
        return torch.stack([bs.ALPHA * u[..., 0], -bs.DELTA * u[..., 1]], dim=-1) + self.net(u)


class TwoNets(nn.Module):
    """udesci's structure (one scaled MLP per unknown) without the SymPy/columns plumbing."""

    def __init__(self):
        super().__init__()
        self.u, self.v = mlp(1), mlp(1)
        self.register_buffer("loc", torch.zeros(2))
        self.register_buffer("scale", torch.ones(2))
        self.register_buffer("out", torch.ones(1))

    def forward(self, t, u):
        z = (u - self.loc) / self.scale
        uv = torch.cat([self.u(z) * self.out, self.v(z) * self.out], dim=-1)
        return torch.stack([bs.ALPHA * u[..., 0], -bs.DELTA * u[..., 1]], dim=-1) + uv


def setup(dtype=torch.float64):
    t_np = np.linspace(0.0, 5.0, 21)
    y_np = bs.lv_data(t_np)
    torch.manual_seed(0)
    model = bs.udesci_model().copy()
    model.module.to(dtype)
    prep = PaddedBatch(model, ud.Dataset(t_np, y_np, states=["x", "y"]), dtype)
    set_network_scaling(model, prep)
    return model.module, prep


def main() -> int:
    torch.set_num_threads(1)
    dtype = torch.float64
    field, prep = setup(dtype)
    sh = ud.Shooting()
    knots, ys, mask, sel_k, first, links, n_seg = make_segments(prep, sh.segment_length)
    starts = nn.Parameter(prep.smooth[sel_k, first].clone())
    t = knots[:, 0]
    one, two = OneNet().to(dtype), TwoNets().to(dtype)

    print(f"1./2. one field evaluation, batch of {n_seg} segments (microseconds, 1 thread)")
    print(f"   {'field':<36} {'fwd us':>8} {'fwd+bwd us':>11} {'autograd nodes':>15}")
    for name, f in (
        ("udesci VectorField", field),
        ("hand: two scaled MLPs 2-32-32-1", two),
        ("hand: one MLP 2-32-32-2", one),
    ):
        with torch.no_grad():
            fwd = timeit(lambda f=f: f(t, starts))

        def fb(f=f):
            f(t, starts).sum().backward()

        both = timeit(fb)
        nodes = count_nodes(f(t, starts))
        print(f"   {name:<36} {fwd:8.1f} {both:11.1f} {nodes:15d}")

    def udesci_loss():
        pred = ud.integrate(field, starts, knots, sh.solver)
        loss = masked_mse(pred, ys, mask, prep.scale)
        gap = (pred[links, -1] - starts[links + 1]) / prep.scale
        return loss + sh.continuity * gap.pow(2).mean()

    def hand_loss(f):
        dt = torch.diff(knots, dim=1)
        y, out = starts, [starts]
        for j in range(dt.shape[1]):
            h = (dt[:, j] / 2).unsqueeze(-1)
            tt = knots[:, j]
            for _ in range(2):
                y = rk_step(f, tt, y, h, "rk4")
                tt = tt + h[:, 0]
            out.append(y)
        pred = torch.stack(out, dim=1)
        gap = (pred[links, -1] - starts[links + 1]) / prep.scale
        return masked_mse(pred, ys, mask, prep.scale) + sh.continuity * gap.pow(2).mean()

    params = list(field.parameters()) + list(one.parameters()) + list(two.parameters()) + [starts]

    def grad_step(loss_fn):
        def step():
            for p in params:
                p.grad = None
            loss_fn().backward()

        return step

    print("\n3./4. shooting loss + gradient (ms), 40 field evaluations forward")
    print(f"   {'loss':<44} {'1 thread':>9} {'2 threads':>10}")
    losses = (
        ("udesci (as in fit)", udesci_loss),
        ("hand: same algorithm, udesci-like field", lambda: hand_loss(two)),
        ("hand: same algorithm, one MLP 2-32-32-2", lambda: hand_loss(one)),
    )
    for name, fn in losses:
        cells = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            cells.append(timeit(grad_step(fn), repeats=30, warmup=3) / 1e3)
        torch.set_num_threads(1)
        print(f"   {name:<44} {cells[0]:9.2f} {cells[1]:10.2f}")

    print("\n5. cProfile of 30 udesci shooting loss + gradient calls (by own time)")
    step = grad_step(udesci_loss)
    step()
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(30):
        step()
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(15)
    print("\n".join(line for line in s.getvalue().splitlines() if line.strip())[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
