"""Refit many candidate closed forms at once: batched Levenberg–Marquardt on shooting segments.

Discovery scores each candidate support by refitting its coefficients (and the
model's other closed-form coefficients and learnable parameters) on short
trajectory segments.  Done one candidate at a time with L-BFGS, that is hundreds
of sequential small solves.  Here every candidate is a row block of *one*
batched solve: the vector field is evaluated with per-row coefficients, the
Jacobian of the residuals with respect to each candidate's few active
coefficients comes from forward differences that are themselves extra row
blocks of the same solve, and a Levenberg–Marquardt step is taken for all
candidates together (each with its own damping).  A dozen such iterations
replace ``candidates × 15`` L-BFGS iterations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from ..errors import ConfigError
from ..networks import TermSum
from ..solve import Solver, integrate
from ..train import PaddedBatch, Segments

__all__ = ["Layout", "NetSlice", "ParamSlot", "point_blocks", "refit_candidates", "whole_trajectories"]


class NetSlice(NamedTuple):
    """Where one closed-form unknown's coefficients sit in the flat parameter vector."""

    name: str
    slice: slice


class ParamSlot(NamedTuple):
    """Where one (scalar) learnable parameter sits in the flat parameter vector."""

    name: str
    index: int


@dataclass
class Layout:
    """Where each closed-form coefficient and learnable parameter sits in a flat parameter vector.

    Attributes
    ----------
    nets : list of NetSlice
        The :class:`TermSum` unknowns of the field and their coefficient slices.
    params : list of ParamSlot
        Learnable parameters (scalars) and their positions.
    size : int
        Length ``D`` of the vector.
    """

    nets: list
    params: list
    size: int

    @classmethod
    def of(cls, field_) -> Layout:
        """The layout of ``field_``'s TermSum coefficients then its learnable parameters."""
        nets, params, at = [], [], 0
        for name, net in field_.nets.items():
            if isinstance(net, TermSum):
                p = net.coef.numel()
                nets.append(NetSlice(name, slice(at, at + p)))
                at += p
        for name, prm in field_.learnable.items():
            if prm.numel() != 1:
                raise ValueError(f"learnable parameter {name!r}: expected a scalar, received shape {tuple(prm.shape)}")
            params.append(ParamSlot(name, at))
            at += 1
        return cls(nets, params, at)

    def vector(self, field_) -> torch.Tensor:
        """Current values ``(D,)``; TermSum coefficients are masked (zero off the support)."""
        out = torch.zeros(self.size, dtype=field_.dtype)
        for name, sl in self.nets:
            net = field_.nets[name]
            out[sl] = (net.coef * net.mask).detach()
        for name, at in self.params:
            out[at] = field_.learnable[name].detach().reshape(())
        return out

    def active(self, field_) -> list[int]:
        """Positions of the currently active coefficients (mask > 0) and all learnable parameters."""
        idx = []
        for name, sl in self.nets:
            idx += [sl.start + int(i) for i in torch.nonzero(field_.nets[name].mask).flatten()]
        idx += [at for _, at in self.params]
        return idx

    def write(self, field_, theta: torch.Tensor) -> None:
        """Set the field's TermSum coefficients and learnable parameters from ``theta`` (D,)."""
        with torch.no_grad():
            for name, sl in self.nets:
                field_.nets[name].coef.copy_(theta[sl])
            for name, at in self.params:
                field_.learnable[name].copy_(theta[at].reshape(field_.learnable[name].shape))

    def split(self, field_, theta: torch.Tensor) -> list[torch.Tensor]:
        """``theta`` (D,) as a list matching ``[TermSum coefs..., learnables...]`` of ``field_``."""
        out = [theta[sl].clone() for _, sl in self.nets]
        out += [theta[at].reshape(field_.learnable[name].shape).clone() for name, at in self.params]
        return out


def refit_candidates(
    field_,
    prep: PaddedBatch,
    seg: Segments,
    starts: torch.Tensor,
    continuity: float,
    solver: Solver,
    layout: Layout,
    theta: torch.Tensor,
    active: list[list[int]],
    iterations: int = 15,
    weights: torch.Tensor | None = None,
    free_starts: bool = False,
    tol: float = 1e-7,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Levenberg–Marquardt refit of ``C`` parameter vectors on shooting segments, all in one batch.

    The objective of each candidate is the multiple-shooting loss of
    :func:`udesci.train.shooting_objective` with the segment ``starts`` held
    fixed: mean scaled squared data misfit plus ``continuity`` × the mean
    squared gap at segment junctions.

    Parameters
    ----------
    field_ : VectorField
        Its TermSum unknowns and learnable parameters are replaced, row by row,
        by the values in ``theta`` (restored on exit).
    prep : PaddedBatch
    seg : Segments
        Segments from :func:`udesci.train.make_segments` (``S`` segments).
    starts : torch.Tensor of shape (S, n)
    continuity : float
    solver : Solver
        A fixed-step solver (per iteration one batched solve of ``C × (P + 1) × S`` rows,
        ``P`` the most active entries of a candidate).
    layout : Layout
        The layout of ``field_`` (:meth:`Layout.of`).
    theta : torch.Tensor of shape (C, D) or (C, D + S·n)
        Starting parameter vectors laid out by :class:`Layout` (then the starts,
        with ``free_starts``).
    active : list of C lists of int
        Which entries of each vector are free; the others stay as given.
    iterations : int
        Levenberg–Marquardt iterations (each one batched solve: the trial point and
        its Jacobian probes).
    weights : torch.Tensor of shape (C, S), optional
        Weight of each segment's data misfit per candidate (bootstrap counts);
        default all ones.
    free_starts : bool
        Also refit the segment starts: ``theta`` then has ``D + S·n`` columns, the
        last ones the starts (row-major ``(S, n)``), all of them free.
    tol : float
        A candidate stops once an accepted step lowers its loss by less than this
        fraction.

    Returns
    -------
    theta : torch.Tensor, shaped like the input
        Refit vectors.
    loss : torch.Tensor of shape (C,)
        Shooting loss at the refit vectors (``inf`` where the model blew up).
    data_sse : torch.Tensor of shape (C, S, L + 1, n)
        Unweighted scaled squared data misfit of each observation at the refit
        vectors (0 where not observed, ``inf`` where the model blew up).

    Raises
    ------
    ConfigError
        If ``theta`` is not a ``(C, D)`` tensor (``D + S·n`` with ``free_starts``)
        or ``active`` does not hold one list per row.
    """
    knots, ys, mask, sel_k, _, links, S = seg
    D = layout.size
    n = ys.shape[-1]
    width = D + S * n if free_starts else D
    if not isinstance(theta, torch.Tensor) or theta.dim() != 2 or theta.shape[1] != width:
        got = tuple(theta.shape) if isinstance(theta, torch.Tensor) else type(theta).__name__
        raise ConfigError(f"theta: expected a tensor of shape (C, {width}), received {got}.")
    C = theta.shape[0]
    if len(active) != C:
        raise ConfigError(f"active: expected one index list per candidate ({C}), received {len(active)}.")
    if free_starts:
        extra = list(range(D, D + S * n))
        active = [list(a) + extra for a in active]
    scale = prep.scale
    w_data = (mask / mask.sum().clamp(min=1.0)).sqrt()
    seg_w = torch.ones(C, S, dtype=theta.dtype) if weights is None else weights.to(theta.dtype)
    w_gap = math.sqrt(continuity / max(links.numel() * n, 1))
    eps = torch.finfo(theta.dtype).eps

    def residuals(th: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        M = th.shape[0]
        st = th[:, D:].reshape(M, S, n) if free_starts else starts.expand(M, S, n)
        coefficients = {name: th[:, sl].repeat_interleave(S, dim=0) for name, sl in layout.nets}
        params = {name: th[:, at].repeat_interleave(S) for name, at in layout.params}
        with torch.no_grad(), field_.row_values(coefficients, params):
            pred = integrate(
                field_, st.reshape(M * S, n), knots.repeat(M, 1), solver, inputs=(prep.interp, sel_k.repeat(M))
            )
        pred = pred.reshape(M, S, *pred.shape[1:])
        d = (pred - ys) / scale
        sse = d.pow(2) * mask
        parts = [(d * w_data * w.sqrt()[:, :, None, None]).reshape(M, -1)]
        if links.numel():
            gap = (pred[:, links, -1] - st[:, links + 1]) / scale
            parts.append((gap * w_gap).reshape(M, -1))
        r = torch.cat(parts, dim=1)
        bad = ~torch.isfinite(r).all(dim=1)
        r = torch.where(bad.unsqueeze(-1), torch.zeros_like(r), r)
        return r, torch.where(bad[:, None, None, None], math.inf, sse), bad

    P = max([len(a) for a in active] + [1])
    idx = torch.zeros(C, P, dtype=torch.long)
    valid = torch.zeros(C, P, dtype=torch.bool)
    for c, a in enumerate(active):
        idx[c, : len(a)] = torch.as_tensor(a, dtype=torch.long)
        valid[c, : len(a)] = True
    theta = theta.clone()
    w_all = torch.cat([seg_w.unsqueeze(1), seg_w.unsqueeze(1).expand(C, P, S)], dim=1).reshape(C * (P + 1), S)

    def with_jacobian(th: torch.Tensor):
        """Residuals at ``th`` and their forward-difference Jacobian, from one batched solve."""
        h = math.sqrt(eps) * th.gather(1, idx).abs().clamp(min=1e-3) * valid
        probe = th.unsqueeze(1).repeat(1, P + 1, 1)
        probe[:, 1:].scatter_add_(2, idx.unsqueeze(-1), h.unsqueeze(-1))
        rp, sse_p, bad_p = residuals(probe.reshape(C * (P + 1), -1), w_all)
        rp, bad_p = rp.reshape(C, P + 1, -1), bad_p.reshape(C, P + 1)
        r0 = rp[:, 0]
        J = (rp[:, 1:] - r0.unsqueeze(1)) / torch.where(valid, h, 1.0).unsqueeze(-1)
        J = J * (valid & ~bad_p[:, 1:]).unsqueeze(-1)
        sse0 = sse_p.reshape(C, P + 1, *sse_p.shape[1:])[:, 0]
        return r0, J, sse0, torch.where(bad_p[:, 0], math.inf, r0.pow(2).sum(1))

    # each iteration is one batched solve: the trial point together with its Jacobian probes
    # (used next iteration if the trial is accepted, discarded otherwise)
    r, J, sse, loss = with_jacobian(theta)
    lam = torch.full((C,), 1e-3, dtype=theta.dtype)
    done = ~torch.isfinite(loss) | ~valid.any(1)
    for _ in range(iterations):
        if bool(done.all()):
            break
        g = (J @ r.unsqueeze(-1)).squeeze(-1)
        H = J @ J.transpose(1, 2)
        diag = H.diagonal(dim1=1, dim2=2).clamp(min=1e-12)
        A = H + torch.diag_embed(lam.unsqueeze(-1) * diag + (~valid).to(H.dtype))
        step = -torch.linalg.solve(A, g.unsqueeze(-1)).squeeze(-1) * valid
        step = torch.where(done.unsqueeze(-1), torch.zeros_like(step), step)
        trial = theta.scatter_add(1, idx, step)
        rt, Jt, sset, lt = with_jacobian(trial)
        better = (lt < loss) & ~done
        gain = torch.where(better, (loss - lt) / loss.clamp(min=1e-300), torch.zeros_like(loss))
        theta = torch.where(better.unsqueeze(-1), trial, theta)
        r = torch.where(better.unsqueeze(-1), rt, r)
        J = torch.where(better[:, None, None], Jt, J)
        sse = torch.where(better[:, None, None, None], sset, sse)
        loss = torch.where(better, lt, loss)
        lam = torch.where(better, lam / 3, lam * 4).clamp(1e-12, 1e12)
        done = done | (better & (gain < tol)) | (lam >= 1e12)
    return theta, loss, sse


def whole_trajectories(prep: PaddedBatch) -> Segments:
    """The trajectories of ``prep`` as :class:`~udesci.train.Segments` (one segment each, no junctions).

    With ``free_starts=True`` and ``continuity=0``, :func:`refit_candidates` on these is
    single shooting: each candidate's coefficients and initial states are refit on the
    whole span.
    """
    K = len(prep.lengths)
    index = torch.arange(K)
    return Segments(
        prep.knots, prep.y, prep.mask, index, torch.zeros(K, dtype=torch.long), torch.zeros(0, dtype=torch.long), K
    )


def point_blocks(prep: PaddedBatch, length: int) -> tuple[torch.Tensor, int]:
    """Block index ``(K, T)`` of every trajectory point: consecutive runs of ``length``
    intervals, numbered like the segments of :func:`udesci.train.make_segments` (the last
    point of a trajectory joins the last block); also the number of blocks."""
    K, T = prep.knots.shape
    out = torch.zeros(K, T, dtype=torch.long)
    at = 0
    for k, m in enumerate(prep.lengths):
        nseg = max(len(range(0, m - 1, length)), 1)
        out[k] = at + (torch.arange(T) // length).clamp(max=nseg - 1)
        at += nseg
    return out, at
