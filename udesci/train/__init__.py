"""Training hybrid models on observed trajectories.

``fit`` runs up to three stages, each optional:

1. :class:`WarmStart` — derivative matching (collocation): smooth each observed
   state with a smoothing spline, estimate its derivative, and fit networks and
   learnable parameters so that the vector field matches it.  No ODE solve.
2. :class:`Shooting` — multiple shooting: every trajectory is cut into short
   segments whose initial states are trainable; all segments of all
   trajectories are solved together in one batched solve, with a continuity
   penalty between consecutive segments.
3. :class:`FullTrajectory` — classic single shooting over whole trajectories
   (batched across trajectories), by default with the adjoint method.

Modules: ``batch`` (the padded batch and smoothing), ``objectives`` (the losses),
``stages`` (stage options and the stage protocol), ``loop`` (optimisers,
checkpoints, progress), ``fit`` (the entry point and its result).
"""

from .batch import PaddedBatch, set_network_scaling, smooth_series
from .fit import FitResult, fit
from .loop import Progress, TrainingLoop, TrainingWarning, solver_gave_up
from .objectives import (
    CollocationPoints,
    Segments,
    collocation_loss,
    collocation_points,
    full_trajectory_objective,
    make_segments,
    masked_mse,
    segment_starts,
    shooting_objective,
)
from .stages import FullTrajectory, Shooting, Stage, TrainingContext, WarmStart, check_int, check_positive

__all__ = [
    "CollocationPoints", "FitResult", "FullTrajectory", "PaddedBatch", "Progress", "Segments", "Shooting", "Stage",
    "TrainingContext", "TrainingLoop", "TrainingWarning", "WarmStart", "check_int", "check_positive",
    "collocation_loss", "collocation_points", "fit",
    "full_trajectory_objective", "make_segments", "masked_mse", "segment_starts", "set_network_scaling",
    "shooting_objective", "smooth_series", "solver_gave_up",
]  # fmt: skip
