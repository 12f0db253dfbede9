"""Training objectives: derivative matching, multiple shooting on segments, whole trajectories."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from ..model import HybridModel
from ..solve import Solver, integrate
from .batch import PaddedBatch


class CollocationPoints(NamedTuple):
    """The points derivative matching compares the field at: every interior point of every
    trajectory (spline derivatives are least reliable at the ends).

    Attributes
    ----------
    t : torch.Tensor of shape (N,)
    y : torch.Tensor of shape (N, n)
        Smoothed states.
    dy : torch.Tensor of shape (N, n)
        Smoothed derivatives.
    trajectory : torch.Tensor of shape (N,)
        Trajectory of each point (for the input series).
    weight : torch.Tensor of shape (n,)
        ``1 / scale**2`` of each state.
    """

    t: torch.Tensor
    y: torch.Tensor
    dy: torch.Tensor
    trajectory: torch.Tensor
    weight: torch.Tensor


def collocation_points(prep: PaddedBatch) -> CollocationPoints:
    """The interior points of ``prep``'s trajectories with their smoothed states and derivatives."""
    K, T, n = prep.y.shape
    keep = prep.valid.clone()
    for k, m in enumerate(prep.lengths):
        keep[k, 0] = keep[k, m - 1] = False
    index = torch.arange(K).unsqueeze(-1).expand(K, T)[keep]
    return CollocationPoints(prep.knots[keep], prep.smooth[keep], prep.dsmooth[keep], index, 1.0 / prep.scale**2)


def collocation_loss(model: HybridModel, prep: PaddedBatch) -> Callable[[], torch.Tensor]:
    """Derivative-matching loss: mean squared (scaled) gap between the field at the smoothed
    states and the smoothed derivatives, over the :func:`collocation_points`.

    Returns
    -------
    callable () -> torch.Tensor of shape ()
    """
    field_ = model.module
    n = prep.y.shape[-1]
    pts = collocation_points(prep)

    def loss():
        with field_.bound_inputs(prep.interp, pts.trajectory):
            r = field_(pts.t, pts.y) - pts.dy
        return (r.pow(2) * pts.weight).sum(-1).mean() / n

    return loss


class Segments(NamedTuple):
    """Trajectories cut into ``count`` segments of the same number of intervals (``L``).

    Attributes
    ----------
    knots : torch.Tensor of shape (S, L + 1)
        Output times of each segment (short segments repeat their last time).
    y, mask : torch.Tensor of shape (S, L + 1, n)
        Observations and their mask (a repeated padding point counts once).
    trajectory : torch.Tensor of shape (S,)
        Trajectory of each segment.
    first : torch.Tensor of shape (S,)
        Index of each segment's first point in its trajectory.
    links : torch.Tensor of shape (J,)
        Segments ``j`` whose end joins segment ``j + 1``'s start.
    count : int
        ``S``.
    """

    knots: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor
    trajectory: torch.Tensor
    first: torch.Tensor
    links: torch.Tensor
    count: int


def make_segments(prep: PaddedBatch, length: int) -> Segments:
    """Cut every trajectory of ``prep`` into segments of ``length`` observation intervals.

    Returns
    -------
    Segments
    """
    rows, idx, links = [], [], []
    for k, m in enumerate(prep.lengths):
        starts = list(range(0, m - 1, length))
        for j, s in enumerate(starts):
            cols = [min(s + c, m - 1) for c in range(length + 1)]
            rows.append((k, cols, s + length >= m))
            if j > 0:
                links.append(len(rows) - 2)
            idx.append(k)
    S = len(rows)
    sel_k = torch.tensor([r[0] for r in rows])
    sel_c = torch.tensor([r[1] for r in rows])
    knots = prep.knots[sel_k.unsqueeze(-1), sel_c]
    y = prep.y[sel_k.unsqueeze(-1), sel_c]
    mask = prep.mask[sel_k.unsqueeze(-1), sel_c].clone()
    # padded columns repeat the last point: count it once
    for r, (_, cols, _) in enumerate(rows):
        for c in range(1, len(cols)):
            if cols[c] == cols[c - 1]:
                mask[r, c] = 0.0
    # a point shared by two segments (end of one, start of next) is counted in both; that is
    # intentional: it ties both segments to the data there
    return Segments(knots, y, mask, sel_k, sel_c[:, 0], torch.tensor(links, dtype=torch.long), S)


def shooting_objective(
    field_, prep: PaddedBatch, seg: Segments, starts: torch.Tensor, continuity: float, solver: Solver
) -> Callable[[], torch.Tensor]:
    """Multiple-shooting loss: scaled data misfit of all segments (one batched solve) plus
    ``continuity`` times the mean squared gap between each segment's end and the next start."""
    knots, ys, mask, sel_k, links = seg.knots, seg.y, seg.mask, seg.trajectory, seg.links
    scale = prep.scale

    def loss():
        pred = integrate(field_, starts, knots, solver, inputs=(prep.interp, sel_k))
        value = masked_mse(pred, ys, mask, scale)
        if links.numel():
            gap = (pred[links, -1] - starts[links + 1]) / scale
            value = value + continuity * gap.pow(2).mean()
        return value

    return loss


def segment_starts(field_, prep: PaddedBatch, seg: Segments, y0: torch.Tensor | None = None) -> torch.Tensor:
    """Initial guess (S, n) of segment starts: the smoothed data, and for states with no
    observation there, a simulation of the current model from ``y0`` (default: data guess)."""
    sel_k, first = seg.trajectory, seg.first
    guess = prep.smooth[sel_k, first]
    if not torch.isfinite(guess).all():
        K = len(prep.lengths)
        start = prep.initial_guess() if y0 is None else y0
        with torch.no_grad():
            sim = integrate(field_, start, prep.knots, Solver("rk4", substeps=4), inputs=(prep.interp, torch.arange(K)))
        guess = torch.where(torch.isfinite(guess), guess, sim[sel_k, first])
        guess = torch.nan_to_num(guess, nan=0.0, posinf=0.0, neginf=0.0)
    return guess.detach().clone()


def masked_mse(pred, y, mask, scale):
    """Mean squared scaled residual ``((pred - y) / scale)**2`` over the observed entries (``mask``)."""
    r = (pred - y) / scale
    return (r.pow(2) * mask).sum() / mask.sum().clamp(min=1.0)


def full_trajectory_objective(
    field_, prep: PaddedBatch, y0: torch.Tensor, solver: Solver
) -> Callable[[], torch.Tensor]:
    """Single-shooting loss: scaled data misfit of whole trajectories simulated from ``y0`` (K, n)."""
    index = torch.arange(len(prep.lengths))

    def loss():
        pred = integrate(field_, y0, prep.knots, solver, inputs=(prep.interp, index))
        return masked_mse(pred, prep.y, prep.mask, prep.scale)

    return loss
