"""Discovery: trained networks -> sparse closed-form expressions -> closed-form model.

For each unknown function the trained network is sampled on the states the fitted model
visits; a library of candidate SymPy terms in *that unknown's* arguments is evaluated there;
a threshold sweep of SINDy's STLSQ (on normalised columns; in NumPy, with PySINDy's supports)
plus every small support proposes candidates; each is scored on the *data* by simulating the model with the
candidate in place of the network (an information criterion over the observations, so the
noise in the data, not the network's approximation error, sets the bar for an extra term).
The chosen expressions are built from coefficients and terms directly (never by parsing
strings), substituted into the equations, and refit against the trajectories.

Modules: ``library`` (candidate terms), ``selection`` (options), ``criteria`` (BIC/AIC and
the parsimony rule), ``proposal`` (samples, columns, sweep), ``batch_lm`` (batched
Levenberg–Marquardt refits), ``uncertainty`` (bootstrap and Gauss–Newton), ``joint``
(the joint choice), ``refit`` (the final refit), ``results`` (what is returned),
``discover`` (the entry point as a sequence of stages), ``escalation`` (the automatic library).
"""

from .batch_lm import Layout, NetSlice, ParamSlot, point_blocks, refit_candidates, whole_trajectories
from .criteria import CRITERIA, information_criterion, parsimonious
from .discover import DiscoveryState, discover
from .library import Library, RationalTerms, as_library
from .proposal import sample_states
from .refit import SCORING_SOLVER
from .results import Adequacy, Candidate, Discovery, Identifiability, Rival, UnknownDiscovery
from .selection import Selection

__all__ = [
    "CRITERIA", "SCORING_SOLVER", "Adequacy", "Candidate", "Discovery", "DiscoveryState", "Identifiability", "Layout",
    "Library", "NetSlice", "ParamSlot", "RationalTerms", "Rival", "Selection", "UnknownDiscovery", "discover",
    "information_criterion", "parsimonious", "as_library", "point_blocks", "refit_candidates", "sample_states",
    "whole_trajectories",
]  # fmt: skip
