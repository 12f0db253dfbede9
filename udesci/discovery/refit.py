"""Refits on the data: the whole-trajectory misfit and the final Levenberg–Marquardt refit."""

from __future__ import annotations

import math
import time
import warnings

import torch

from ..model import HybridModel, Learnable
from ..solve import Solver, integrate
from ..train import FitResult, PaddedBatch
from .batch_lm import Layout, refit_candidates

# Discovery's trajectory solves: classic RK4 with four steps per observation interval.  Fixed steps keep
# the misfit a smooth function of the coefficients (finite-difference intervals need that; adaptive step
# selection adds noise), cost the same for every candidate, and need no special care at the kinks of
# linearly interpolated inputs, where an adaptive solver crawls.
SCORING_SOLVER = Solver("rk4", substeps=4)


def data_misfit(field_, y0: torch.Tensor, prep: PaddedBatch) -> float:
    """Scaled squared misfit to the data of ``field_`` simulated from ``y0`` (K, n)."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = integrate(
                field_, y0, prep.knots, SCORING_SOLVER, inputs=(prep.interp, torch.arange(len(prep.lengths)))
            )
    except (AssertionError, RuntimeError):  # torchdiffeq step-size underflow on an exploding candidate
        return math.inf
    r = ((pred - prep.y) / prep.scale).pow(2) * prep.mask
    sse = float(r.sum())
    return sse if math.isfinite(sse) else math.inf


def lbfgs(params, loss_fn, iterations: int) -> None:
    """Minimise ``loss_fn`` over ``params`` with strong-Wolfe L-BFGS for ``iterations`` iterations."""
    for prm in params:
        prm.requires_grad_(True)
    opt = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=iterations,
        history_size=10,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
    )

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        return loss

    opt.step(closure)


def refit_whole(field_, model, data, prep, whole, y0, iterations) -> FitResult | None:
    """Levenberg–Marquardt refit of all active coefficients, learnable parameters and initial
    states on whole trajectories (``SCORING_SOLVER`` solver); the field is updated in place.

    Returns a :class:`FitResult` for the closed-form ``model``, or None if the solve blew up.
    """
    start = time.perf_counter()
    layout = Layout.of(field_)
    th0 = torch.cat([layout.vector(field_), y0.reshape(-1)])
    theta, loss, _ = refit_candidates(
        field_,
        prep,
        whole,
        y0,
        0.0,
        SCORING_SOLVER,
        layout,
        th0[None],
        [layout.active(field_)],
        iterations,
        free_starts=True,
    )
    if not bool(torch.isfinite(loss[0])):
        return None
    th = theta[0]
    layout.write(field_, th)
    y0_new = th[layout.size :].reshape(y0.shape).numpy().copy()
    return FitResult(
        model,
        [{"stage": "refit", "iteration": 0, "loss": float(loss[0])}],
        y0_new,
        message="coefficients, learnable parameters and initial states refit on whole trajectories "
        "(Levenberg–Marquardt)",
        seconds={"refit": time.perf_counter() - start},
        data=data,
    )


def with_params(model: HybridModel, values: dict) -> HybridModel:
    """Copy of a closed-form model with parameter values replaced (learnable flags kept)."""
    params = {s: (Learnable(values[s]) if s in model.learnable else values[s]) for s in model.params}
    out = HybridModel(model.equations, params, model.inputs, states=model.states, time=model.time)
    out.module.to(model.module.dtype)
    return out
