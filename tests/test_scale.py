"""Scale checks: adjoint gradients of a 1,000-state UDE, and the speed benchmark's smoke run."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import udesci as ud

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _gradient(field, y0, knots, target, solver):
    for p in field.parameters():
        p.grad = None
    pred = ud.integrate(field, y0, knots, solver)
    (pred - target).pow(2).mean().backward()
    return torch.cat([p.grad.reshape(-1) for p in field.parameters()])


def test_lorenz96_1000_states_adjoint_gradient_matches_direct():
    """1,000-state Lorenz-96 with an unknown (MLP) coupling: the adjoint gradient equals the
    backpropagated one to 1e-6 relative.

    Why 1e-6 holds: both runs use dopri5 at rtol = atol = 1e-10 in float64 over a short horizon
    (0.2 time units).  Direct backprop differentiates the discrete dopri5 solution, which is within
    ~1e-10 of the exact flow; the adjoint integrates the continuous adjoint system (state, adjoint and
    parameter-gradient integral, all under the same error control) backward at the same tolerance.  Both
    are therefore within ~tol x (sensitivity growth over the horizon) of the exact gradient; over 0.2 time
    units Lorenz-96 perturbations grow by at most a factor of a few, so the two gradients agree to
    ~1e-10 (measured: 1.2e-10), four orders below the bound; float64 round-off (~1e-13) is negligible.
    """
    bench = _load("bench_scale")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small per-op work: extra threads only add synchronisation (and stall on a busy box)
    try:
        _check_adjoint_matches_direct(bench)
    finally:
        torch.set_num_threads(threads)


def _check_adjoint_matches_direct(bench):
    torch.manual_seed(0)
    n = 1000
    dtype = torch.float64
    field = bench.Lorenz96UDE().to(dtype)
    y0 = bench.l96_state(n, dtype, spinup=1.0)
    knots = torch.linspace(0.0, 0.2, 5, dtype=dtype).unsqueeze(0)
    with torch.no_grad():
        target = ud.integrate(
            bench.Lorenz96UDE(truth=True).to(dtype), y0, knots, ud.Solver("dopri5", rtol=1e-10, atol=1e-10)
        )
    assert y0.shape == (1, n) and target.shape == (1, 5, n)
    g_adj = _gradient(field, y0, knots, target, ud.Solver("dopri5", rtol=1e-10, atol=1e-10, adjoint=True))
    g_dir = _gradient(field, y0, knots, target, ud.Solver("dopri5", rtol=1e-10, atol=1e-10, adjoint=False))
    assert torch.isfinite(g_adj).all()
    assert g_dir.norm() > 0
    rel = float((g_adj - g_dir).norm() / g_dir.norm())
    assert rel < 1e-6, rel


@pytest.mark.slow
def test_bench_speed_quick_runs(tmp_path):
    out = tmp_path / "speed.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_speed.py"), "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ms / loss+grad" in proc.stdout
    result = json.loads(out.read_text())
    methods = [r["method"] for r in result["per_gradient"]]
    assert methods[0] == "hand-written odeint_adjoint"
    assert any(m.startswith("udesci shooting") for m in methods)
    assert all(r["ms"] is None or r["ms"] > 0 for r in result["per_gradient"])
    assert len(result["end_to_end"]) >= 3
    assert "available" in result["diffrax"]
