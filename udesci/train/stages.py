"""Training stages: the options of each stage and what it does inside :func:`~udesci.fit`.

Every stage satisfies the small :class:`Stage` protocol: ``setup(ctx)`` adds the trainable
tensors it needs before the training loop is built (so checkpoints hold them), ``run(ctx)``
trains.  :func:`~udesci.fit` calls them in order on one :class:`TrainingContext`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import torch

from ..errors import ConfigError, describe
from ..model import HybridModel
from ..solve import Solver
from .batch import PaddedBatch
from .loop import TrainingLoop
from .objectives import (
    Segments,
    collocation_loss,
    full_trajectory_objective,
    make_segments,
    segment_starts,
    shooting_objective,
)


@dataclass
class TrainingContext:
    """What the stages of one :func:`~udesci.fit` call share.

    Attributes
    ----------
    model : HybridModel
        The copy being trained.
    batch : PaddedBatch
    y0 : torch.nn.Parameter of shape (K, n)
        Initial state of each trajectory.
    extras : dict name -> torch.nn.Parameter
        Trainable tensors outside the model (``y0``, segment starts), checkpointed with it.
    notes : list of str
        What the stages report (e.g. a stage skipped).
    loop : TrainingLoop or None
        Built after every stage's ``setup``.
    segments : Segments or None
        Set up by :class:`Shooting`.
    """

    model: HybridModel
    batch: PaddedBatch
    y0: torch.nn.Parameter
    extras: dict
    notes: list = field(default_factory=list)
    loop: TrainingLoop | None = None
    segments: Segments | None = None

    @property
    def trainable(self) -> list:
        """The model's parameters (network weights and learnable parameters)."""
        return list(self.model.module.parameters())


def projected(loss, batch: PaddedBatch, tensors: list):
    """``loss`` that first moves ``tensors`` (initial states or segment starts, states last) inside
    their states' declared domains (:meth:`PaddedBatch.inside`): projected gradient descent.

    Each optimiser step may leave the domain; the next evaluation starts from the projected point, so
    the loss, the gradient and the best weights the loop keeps all belong to values inside.  With no
    declared domain ``loss`` is returned unchanged.

    Parameters
    ----------
    loss : callable () -> torch.Tensor
    batch : PaddedBatch
    tensors : list of torch.Tensor of shape (..., n)
        Trainable leaf tensors, changed in place.

    Returns
    -------
    callable () -> torch.Tensor
    """
    if not batch.bounded:
        return loss

    def inside_first():
        project(batch, tensors)
        return loss()

    return inside_first


def project(batch: PaddedBatch, tensors: list) -> None:
    """Move ``tensors`` (states last) inside their declared domains in place (see :func:`projected`)."""
    if batch.bounded:
        with torch.no_grad():
            for tensor in tensors:
                tensor.copy_(batch.inside(tensor))


class Stage(Protocol):
    """A training stage: options plus ``setup(ctx)`` and ``run(ctx)``."""

    def setup(self, ctx: TrainingContext) -> None:
        """Add the trainable tensors the stage needs to ``ctx.extras`` (before the loop exists)."""

    def run(self, ctx: TrainingContext) -> None:
        """Train with ``ctx.loop`` (does nothing once the loop has stopped)."""


def check_int(value, name, minimum=0):
    """Raise ConfigError naming ``name`` unless ``value`` is an int (not bool) >= ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name}: expected an int >= {minimum}, received {value!r}.")


def check_positive(value, name):
    """Raise ConfigError naming ``name`` unless ``value`` is a positive finite number."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 or not math.isfinite(value):
        raise ConfigError(f"{name}: expected a positive finite number, received {value!r}.")


@dataclass(frozen=True)
class WarmStart:
    """Derivative-matching warm start (no ODE solve).

    Parameters
    ----------
    iterations : int, default 600
        Adam iterations.
    lr : float, default 1e-2
        Adam learning rate.
    smoothing : float or None, default None
        Smoothing-spline penalty; ``None`` chooses it per state by generalised
        cross-validation.
    lbfgs : int, default 0
        L-BFGS iterations after Adam.

    Raises
    ------
    ConfigError
        For non-positive values.
    """

    iterations: int = 600
    lr: float = 1e-2
    smoothing: float | None = None
    lbfgs: int = 0

    def __post_init__(self):
        check_int(self.iterations, "WarmStart iterations")
        check_int(self.lbfgs, "WarmStart lbfgs")
        check_positive(self.lr, "WarmStart lr")
        if self.smoothing is not None:
            check_positive(self.smoothing, "WarmStart smoothing")

    name = "warm_start"

    def setup(self, ctx: TrainingContext) -> None:
        """Nothing to add: derivative matching trains the model's parameters only."""

    def run(self, ctx: TrainingContext) -> None:
        """Fit the field to the smoothed derivatives; skipped (with a note) if a state is
        not observed in every trajectory."""
        if ctx.loop.status != "ok":
            return
        if not ctx.batch.fully_observed:
            ctx.notes.append("warm start skipped: some states are not observed in every trajectory")
            return
        loss = collocation_loss(ctx.model, ctx.batch)
        ctx.loop.run(self.name, ctx.trainable, loss, self.iterations, self.lr, self.lbfgs)


@dataclass(frozen=True)
class Shooting:
    """Multiple shooting with all segments in one batched solve.

    Parameters
    ----------
    segment_length : int, default 5
        Observation intervals per segment.
    continuity : float, default 10.0
        Weight of the squared mismatch between a segment's end and the next
        segment's trainable start (in units of each state's data scale).
    iterations : int, default 800
        Adam iterations.
    lr : float, default 5e-3
        Adam learning rate.
    lbfgs : int, default 0
        L-BFGS iterations after Adam.
    solver : Solver, default ``Solver("rk4", substeps=1)``
        Solver for the segments; set ``adjoint=True`` for adjoint gradients.

    Raises
    ------
    ConfigError
        For invalid values.
    """

    segment_length: int = 5
    continuity: float = 10.0
    iterations: int = 800
    lr: float = 5e-3
    lbfgs: int = 0
    solver: Solver = field(default_factory=lambda: Solver("rk4", substeps=1))

    def __post_init__(self):
        check_int(self.segment_length, "Shooting segment_length", 1)
        check_positive(self.continuity, "Shooting continuity")
        check_int(self.iterations, "Shooting iterations")
        check_int(self.lbfgs, "Shooting lbfgs")
        check_positive(self.lr, "Shooting lr")
        if not isinstance(self.solver, Solver):
            raise ConfigError(f"Shooting solver: expected a udesci.Solver, received {describe(self.solver)}.")

    name = "shooting"

    def setup(self, ctx: TrainingContext) -> None:
        """Cut the trajectories into segments and add their trainable starts (``"starts"``)."""
        ctx.segments = make_segments(ctx.batch, self.segment_length)
        ctx.extras["starts"] = torch.nn.Parameter(
            torch.zeros(ctx.segments.count, ctx.batch.n, dtype=ctx.model.module.dtype)
        )

    def run(self, ctx: TrainingContext) -> None:
        """Multiple shooting; afterwards each trajectory's initial state is its first segment's start.
        Segment starts stay inside the states' declared domains (:func:`projected`)."""
        loop, seg, starts, y0 = ctx.loop, ctx.segments, ctx.extras["starts"], ctx.y0
        if loop.status != "ok":
            return
        field_ = ctx.model.module
        if self.name not in loop.done and not loop.resuming(self.name):
            with torch.no_grad():
                starts.copy_(ctx.batch.inside(segment_starts(field_, ctx.batch, seg, y0)))
        loss = projected(
            shooting_objective(field_, ctx.batch, seg, starts, self.continuity, self.solver), ctx.batch, [starts]
        )
        ran = loop.run(self.name, ctx.trainable + [starts], loss, self.iterations, self.lr, self.lbfgs)
        project(ctx.batch, [starts])
        # a checkpoint written at the end of shooting holds y0 from before this copy: redo it when
        # resuming from there (but not once the full stage has trained y0)
        from_checkpoint = self.name in loop.done and not loop.resuming("full") and "full" not in loop.done
        if (ran or from_checkpoint) and loop.status == "ok":
            with torch.no_grad():
                firsts = [int((seg.trajectory == k).nonzero()[0]) for k in range(len(ctx.batch.lengths))]
                y0.copy_(starts[firsts])


@dataclass(frozen=True)
class FullTrajectory:
    """Single shooting over whole trajectories (all trajectories in one solve).

    Parameters
    ----------
    iterations : int, default 200
        Adam iterations.
    lr : float, default 1e-3
        Adam learning rate.
    lbfgs : int, default 0
        L-BFGS iterations after Adam.
    solver : Solver, default ``Solver("dopri5", rtol=1e-6, atol=1e-6, adjoint=True, max_seconds=300)``
        The adjoint method by default; ``adjoint=False`` backpropagates
        through the solver instead.  A solve running longer than ``max_seconds``
        stops training with a message naming stiffness and ``Solver("rodas4")``.
    learn_initial : bool, default True
        Train each trajectory's initial state (else it stays at its start value).

    Raises
    ------
    ConfigError
        For invalid values.
    """

    iterations: int = 200
    lr: float = 1e-3
    lbfgs: int = 0
    # a wall-clock cap per solve: a stiff model must stop with guidance, not spin (it is far above the
    # seconds a well-posed solve of this stage takes, so results do not depend on the machine's speed)
    solver: Solver = field(
        default_factory=lambda: Solver("dopri5", rtol=1e-6, atol=1e-6, adjoint=True, max_seconds=300.0)
    )
    learn_initial: bool = True

    def __post_init__(self):
        check_int(self.iterations, "FullTrajectory iterations")
        check_int(self.lbfgs, "FullTrajectory lbfgs")
        check_positive(self.lr, "FullTrajectory lr")
        if not isinstance(self.solver, Solver):
            raise ConfigError(f"FullTrajectory solver: expected a udesci.Solver, received {describe(self.solver)}.")

    name = "full"

    def setup(self, ctx: TrainingContext) -> None:
        """Nothing to add: the initial states ``y0`` are always part of the context."""

    def run(self, ctx: TrainingContext) -> None:
        """Single shooting over whole trajectories (initial states trained if ``learn_initial``, inside
        the states' declared domains: :func:`projected`)."""
        if ctx.loop.status != "ok":
            return
        ctx.y0.requires_grad_(self.learn_initial)
        loss = full_trajectory_objective(ctx.model.module, ctx.batch, ctx.y0, self.solver)
        loss = projected(loss, ctx.batch, [ctx.y0])
        ctx.loop.run(self.name, ctx.trainable + [ctx.y0], loss, self.iterations, self.lr, self.lbfgs)
        project(ctx.batch, [ctx.y0])
