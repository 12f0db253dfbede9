"""Selection options: how discovery proposes, scores and chooses candidates."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .criteria import CRITERIA


@dataclass(frozen=True)
class Selection:
    """How discovery chooses among candidate expressions.

    Parameters
    ----------
    criterion : {"bic", "aic"}, default "bic"
        Information criterion computed from the data misfit of the model with
        the candidate substituted.
    thresholds : int, default 20
        Points in the geometric threshold sweep.
    ridge : float, default 1e-6
        Ridge penalty of each least-squares fit (on normalised columns).
    exhaustive : int, default 2
        Also score every support of up to this many terms (each size while
        at most ``MAX_EXHAUSTIVE_SUPPORTS`` = 5,000 supports are enumerated:
        every pair of up to 99 terms).
    shortlist : int, default 32
        Candidates (best by derivative matching) refit on trajectory segments
        and scored on the data (all in one batched solve).
    refine_iterations : int, default 15
        Levenberg–Marquardt iterations of the shortlisted candidates' segment
        refit (all candidates refit together in one batched solve).
    sweeps : int, default 2
        Passes over the unknowns; from the second on, each unknown is decided
        with all others in their chosen closed form (backfitting).
    parsimony : float, default 6.0
        Choose the sparsest candidate whose criterion is within this margin
        of the best (6 = Kass & Raftery's threshold of strong evidence: with
        twenty-odd candidate terms, 2 let noise-fitting terms through in 2 of
        10 seeds of the recovery study at every noise level).
    rescore : int, default 32
        The best candidates by the segment score that are then refit and scored
        on whole trajectories (single shooting, initial states refit); the
        final choice is made among these.  The default covers the whole
        shortlist: segments restart from the smoothed data, so at high noise
        their score can rank the true form low (recovery study, noise 5%,
        seed 15: outside the best 6, best on whole trajectories).  The
        segment refit then only supplies the starting coefficients.
    joint : int, default 3
        With several unknowns, every combination of each one's best ``joint``
        candidates is refit together on whole trajectories and the combination
        is chosen by the criterion (1 switches this off).
    bootstrap : int, default 100
        Bootstrap replicates over point blocks (resampled with replacement).
        Each replicate refits the candidate supports on its resampled data
        (one linearised whole-trajectory step from the final fit) and chooses
        one by the same criterion and parsimony rule; a term's inclusion
        probability is the share of replicates selecting it and its 95 %
        interval the 2.5–97.5 percentiles of its coefficient over the *same*
        replicates (0 where not selected).  0 switches the ensemble off
        (inclusion from criterion weights, Gauss–Newton intervals).

    Raises
    ------
    ConfigError
        For an unknown criterion or non-positive counts.
    """

    criterion: str = "bic"
    thresholds: int = 20
    ridge: float = 1e-6
    exhaustive: int = 2
    shortlist: int = 32
    refine_iterations: int = 15
    sweeps: int = 2
    parsimony: float = 6.0
    bootstrap: int = 100
    rescore: int = 32
    joint: int = 3

    def __post_init__(self):
        if self.criterion not in CRITERIA:
            raise ConfigError(f"Selection criterion: expected one of {CRITERIA}, received {self.criterion!r}.")
        if not isinstance(self.thresholds, int) or self.thresholds < 2:
            raise ConfigError(f"Selection thresholds: expected an int >= 2, received {self.thresholds!r}.")
        for name in ("shortlist", "refine_iterations", "sweeps", "rescore", "joint"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"Selection {name}: expected an int >= 1, received {getattr(self, name)!r}.")
        if not isinstance(self.parsimony, (int, float)) or self.parsimony < 0:
            raise ConfigError(f"Selection parsimony: expected a number >= 0, received {self.parsimony!r}.")
        if not isinstance(self.exhaustive, int) or self.exhaustive < 0:
            raise ConfigError(f"Selection exhaustive: expected an int >= 0, received {self.exhaustive!r}.")
        if not isinstance(self.bootstrap, int) or self.bootstrap < 0:
            raise ConfigError(f"Selection bootstrap: expected an int >= 0, received {self.bootstrap!r}.")
