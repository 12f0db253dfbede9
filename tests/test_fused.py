"""The fused (block-diagonal) evaluation of several MLP unknowns equals evaluating them one by one."""

import contextlib

import pytest
import sympy as sp
import torch

import udesci as ud
import udesci.solve as solve_mod

x, y, a, d = sp.symbols("x y alpha delta")
U, V, W = sp.symbols("U V W", cls=sp.Function)


def _model():
    torch.manual_seed(0)
    m = ud.HybridModel({x: a * x + U(x, y) + W(x), y: -d * y + V(y, x)}, params={a: 1.3, d: ud.Learnable(1.8)})
    for net in m.module.nets.values():  # the default last layer starts near zero: make outputs non-trivial
        torch.nn.init.normal_(net.net[-1].weight)
    return m


def test_fused_field_equals_separate_networks():
    f = _model().module
    z, t = torch.randn(7, 2, dtype=torch.float64), torch.zeros(7, dtype=torch.float64)
    with f.fused():
        fused = f(t, z)
    # the same sums in a different order (one block matmul vs separate ones): float64 round-off only
    torch.testing.assert_close(fused, f(t, z), rtol=0, atol=1e-13)


@pytest.mark.parametrize("solver", [ud.Solver("rk4", substeps=2), ud.Solver("dopri5", rtol=1e-8, atol=1e-8)])
def test_fused_solve_gives_the_same_values_and_gradients(solver, monkeypatch):
    f = _model().module
    knots = torch.linspace(0, 1, 6, dtype=torch.float64).expand(3, -1)
    y0 = torch.rand(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def run():
        f.zero_grad()
        out = ud.integrate(f, y0, knots, solver)
        out.pow(2).sum().backward()
        return out.detach(), [p.grad.clone() for p in f.parameters()]

    fused_out, fused_grad = run()
    monkeypatch.setattr(solve_mod, "_fused", lambda field: contextlib.nullcontext())
    plain_out, plain_grad = run()
    # identical arithmetic up to summation order; adaptive steps are accepted identically at this size
    torch.testing.assert_close(fused_out, plain_out, rtol=0, atol=1e-12)
    for g1, g2 in zip(fused_grad, plain_grad, strict=True):
        torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12)
