"""Refits on the data: the whole-trajectory misfit and the final Levenberg–Marquardt refit."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import sympy as sp
import torch

from ..model import HybridModel, Learnable
from ..networks import TermSum
from ..solve import Solver, integrate
from ..train import FitResult, PaddedBatch
from .batch_lm import MAX_FREE_STARTS, Layout, refit_candidates

# Discovery's trajectory solves: classic RK4 with four steps per observation interval.  Fixed steps keep
# the misfit a smooth function of the coefficients (finite-difference intervals need that; adaptive step
# selection adds noise), cost the same for every candidate, and need no special care at the kinks of
# linearly interpolated inputs, where an adaptive solver crawls.
SCORING_SOLVER = Solver("rk4", substeps=4)


def data_misfit(field_, y0: torch.Tensor, prep: PaddedBatch) -> float:
    """Scaled squared misfit to the data of ``field_`` simulated from ``y0`` (K, n) (``inf`` if it blows up)."""
    return data_misfits(field_, [y0], prep)[0]


def data_misfits(field_, starts: list, prep: PaddedBatch) -> list[float]:
    """:func:`data_misfit` from each of several sets of initial states, in one batched solve.

    A solve's cost is dominated by its number of steps, not its rows, so ``m`` start sets cost about
    what one does.

    Parameters
    ----------
    field_ : VectorField
    starts : list of torch.Tensor of shape (K, n)
        Initial states of ``prep``'s ``K`` trajectories, one tensor per set.
    prep : PaddedBatch

    Returns
    -------
    list of float
        The scaled squared data misfit from each set, in order; ``inf`` for a set whose simulation
        blows up (all of them if the solver itself fails).
    """
    m, K = len(starts), len(prep.lengths)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = integrate(
                field_,
                torch.cat([torch.as_tensor(y0, dtype=prep.y.dtype) for y0 in starts]),
                prep.knots.repeat(m, 1),
                SCORING_SOLVER,
                inputs=(prep.interp, torch.arange(K).repeat(m)),
            )
    except (AssertionError, RuntimeError):  # torchdiffeq step-size underflow on an exploding candidate
        return [math.inf] * m
    r = ((pred.reshape(m, K, *pred.shape[1:]) - prep.y) / prep.scale).pow(2) * prep.mask
    out = []
    for sse in r.flatten(1).sum(1).tolist():
        out.append(sse if math.isfinite(sse) else math.inf)
    return out


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
        message=(
            "coefficients, learnable parameters and initial states refit on whole trajectories (Levenberg–Marquardt)"
            if y0.numel() <= MAX_FREE_STARTS
            else "coefficients and learnable parameters refit on whole trajectories (Levenberg–Marquardt; the "
            f"{y0.numel()} initial-state entries, more than {MAX_FREE_STARTS}, stay at the fitted ones)"
        ),
        seconds={"refit": time.perf_counter() - start},
        data=data,
    )


def with_params(model: HybridModel, values: dict) -> HybridModel:
    """Copy of a closed-form model with parameter values replaced (learnable flags and declared bounds kept)."""
    params = {s: (Learnable(values[s]) if s in model.learnable else values[s]) for s in model.params}
    out = HybridModel(
        model.equations, params, model.inputs, states=model.states, time=model.time, bounds=model.bounds or None
    )
    out.module.to(model.module.dtype)
    return out


class ConstantsFit(NamedTuple):
    """The outcome of :func:`refit_constants`.

    Attributes
    ----------
    terms : dict name -> list of sympy.Expr
        Each refit unknown's library with its chosen rational terms at their fitted ``K``.
    coefficients : dict name -> ndarray of shape (p,)
        Their coefficients (0 off the support).
    constants : dict name -> dict int -> float
        The fitted ``K`` of each chosen rational term, by position in the library.
    model : HybridModel
        The refit model, its coefficients and ``log K`` learnable parameters.
    fit : FitResult
        Its refit (``initial_states`` the refit initial states).
    arguments : dict name -> tuple of sympy.Symbol
        Each refit unknown's arguments.
    supports : dict name -> tuple of int
        Each refit unknown's support, without the companion terms (their ``K`` is now fitted).
    """

    terms: dict
    coefficients: dict
    constants: dict
    model: HybridModel
    fit: FitResult
    arguments: dict
    supports: dict

    def write(self, field_) -> None:
        """Put the result into the closed-form working model's ``field_``: a :class:`TermSum` on the new
        terms behind each refit unknown, the other closed forms' coefficients and the learnable parameters."""
        refit = self.model.module
        for name, terms in self.terms.items():
            mask = np.zeros(len(terms))
            mask[list(self.supports[name])] = 1.0
            module = TermSum(terms, self.arguments[name], self.coefficients[name], mask)
            field_.set_network(name, module.to(field_.dtype))
        with torch.no_grad():
            for name, net in refit.nets.items():
                if isinstance(net, TermSum) and name in field_.nets:
                    field_.nets[name].coef.copy_(net.coef)
            for name, prm in field_.learnable.items():
                prm.copy_(refit.learnable[name])


def refit_constants(model, libraries, data, prep, whole, y0, iterations) -> ConstantsFit | None:
    """Free the half-saturation constants ``K`` of the chosen rational terms and refit them, all
    coefficients, learnable parameters and initial states on whole trajectories (Levenberg–Marquardt).

    Each chosen term ``c * m * a**n / (K**n + a**n)`` becomes ``c * m * a**n / (exp(s)**n + a**n)`` with
    ``c`` and ``s = log K`` learnable parameters (``K`` stays positive), starting at the current ``c``
    and at ``K + b/c`` where the support holds the term's companion ``d term/dK`` with coefficient
    ``b`` (its first-order move of ``K``; ``K`` itself if that leaves ``[K/16, 16 K]``); the companion
    is dropped and the other terms' coefficients are learnable too.  The refit is kept only if it
    misfits the data no more than the model as it stands (both simulated with ``SCORING_SOLVER``).

    Parameters
    ----------
    model : HybridModel
        The closed-form working model: a :class:`TermSum` behind each decided unknown.
    libraries : dict name -> (list of sympy.Expr, dict int -> SaturatingTerm, dict int -> int)
        Each unknown's library terms, its rational terms and their companions by position
        (:class:`~udesci.discovery.proposal.UnknownWork`).
    data : Dataset
    prep : PaddedBatch
    whole : Segments
        The whole trajectories (:func:`~udesci.discovery.batch_lm.whole_trajectories`).
    y0 : torch.Tensor of shape (K, n)
        Starting initial states.
    iterations : int
        Levenberg–Marquardt iterations.

    Returns
    -------
    ConstantsFit or None
        None when no chosen support holds a rational term, the refit blows up, or it fits worse.
    """
    field_ = model.module
    taken = {str(s) for s in (model.time, *model.states, *model.inputs, *model.params)} | set(model.unknowns)
    exprs, params, where, arguments = {}, {}, {}, {}

    def fresh(base: str) -> sp.Symbol:
        name = base
        while name in taken:
            name += "_"
        taken.add(name)
        return sp.Symbol(name, real=True)

    kept = {}
    for name, (terms, saturating, companions) in libraries.items():
        net = field_.nets[name] if name in field_.nets else None
        if not isinstance(net, TermSum):
            continue
        coef = (net.coef * net.mask).detach().numpy()
        support = [int(i) for i in np.flatnonzero(net.mask.numpy())]
        if not any(i in saturating for i in support):
            continue
        paired = {companions[i] for i in support if i in saturating and i in companions}
        expr, slots = sp.Integer(0), {}
        kept[name] = tuple(i for i in support if i not in paired)
        for i in kept[name]:
            c = fresh(f"c_{name}{i}")
            params[c] = float(coef[i])
            if i in saturating:
                log_k = fresh(f"logK_{name}{i}")
                K = saturating[i].K
                if companions.get(i) in paired and coef[i] != 0:
                    moved = K + float(coef[companions[i]]) / float(coef[i])
                    K = moved if K / 16 < moved < 16 * K else K
                params[log_k] = math.log(K)
                expr += c * saturating[i].at(sp.exp(log_k))
                slots[i] = (c, log_k)
            else:
                expr += c * terms[i]
                slots[i] = (c, None)
        exprs[name], where[name] = expr, slots
        arguments[name] = model.unknowns[name].args
    if not exprs:
        return None
    free = model.substitute(exprs, learnable=list(params), params=params)
    result = refit_whole(free.module, free, data, prep, whole, y0, iterations)
    if result is None:
        return None
    y0_new = torch.as_tensor(result.initial_states, dtype=field_.dtype)
    if not data_misfit(free.module, y0_new, prep) <= data_misfit(field_, y0, prep):
        return None
    values = free.parameter_values()
    new_terms, coefficients, constants = {}, {}, {}
    for name, slots in where.items():
        terms, saturating, companions = libraries[name]
        terms, coef, fitted = list(terms), np.zeros(len(terms)), {}
        for i, (c, log_k) in slots.items():
            coef[i] = values[c]
            if log_k is not None:
                fitted[i] = math.exp(values[log_k])
                moved = replace(saturating[i], expression=saturating[i].at(fitted[i]), K=fitted[i])
                terms[i] = moved.expression
                if i in companions:
                    terms[companions[i]] = moved.slope()
        new_terms[name], coefficients[name], constants[name] = terms, coef, fitted
    return ConstantsFit(new_terms, coefficients, constants, free, result, arguments, kept)
