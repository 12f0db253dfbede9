"""The automatic library: rediscover the unknowns at fault with richer libraries while the closed form
is labelled inadequate (:func:`escalate`, used by :func:`~udesci.discovery.discover` with ``library=None``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..model import HybridModel
from .library import Library
from .results import Discovery


@dataclass(frozen=True)
class LibraryTry:
    """One library the automatic library tried (see :func:`escalate`).

    Attributes
    ----------
    unknowns : tuple of str
        The unknowns it was given to (the others kept theirs).
    library : str
        What it holds, in words.
    data_ratio : float
        The closed-form model's scaled data RMSE over the trained UDE's, the larger of the two
        :class:`Adequacy` measures (:attr:`Adequacy.ratio`).
    adequate : bool
    """

    unknowns: tuple
    library: str
    data_ratio: float
    adequate: bool

    def as_dict(self) -> dict:
        """JSON-ready view."""
        ratio = self.data_ratio if math.isfinite(self.data_ratio) else None
        return {
            "unknowns": list(self.unknowns),
            "library": self.library,
            "data_ratio": ratio,
            "adequate": self.adequate,
        }


# the automatic library: polynomials of degree 2, then 3, then 3 with sin/cos of each argument, then 2 with
# saturating rational terms (K fitted), tried in this order while the closed form is labelled inadequate
ESCALATION = (Library(), Library(degree=3), Library(degree=3, trig=True), Library(degree=2, rational=True))
# a rung holding more terms than this for an unknown is not tried (a degree-3 library in 6 arguments has 84)
MAX_ESCALATED_TERMS = 84


def describe_library(lib: Library) -> str:
    """``"polynomials up to degree 3 with sin/cos"``-style words for a Library."""
    text = f"polynomials up to degree {lib.degree}" + ("" if lib.constant else " without constant")
    if lib.trig:
        text += " with sin/cos of each argument"
    if lib.rational is not None:
        text += " with saturating rational terms (K fitted)"
    if lib.extra:
        text += f" and {len(lib.extra)} extra terms"
    return text


def escalate(found: Discovery, libraries: dict, model: HybridModel, attempt) -> Discovery:
    """The automatic library: while ``found`` is labelled inadequate, rediscover the unknowns at fault
    with the next library of :data:`ESCALATION`; keep the result with the smallest data ratio (the
    first adequate one stops the search).  The libraries tried are in ``Discovery.escalation`` and a
    note says what happened.  The last rung offers saturating rational terms (``Library(degree=2,
    rational=True)``, their ``K`` fitted); a result inadequate at every rung stays labelled so.

    Parameters
    ----------
    found : Discovery
        The result with the first rung (``libraries``).
    libraries : dict name -> Library
    model : HybridModel
    attempt : callable dict name -> Library -> Discovery

    Returns
    -------
    Discovery
    """

    def ratio(d: Discovery) -> float:
        return d.adequacy.ratio if d.adequacy is not None else math.inf

    tries = [LibraryTry(tuple(libraries), describe_library(ESCALATION[0]), ratio(found), found.adequacy.adequate)]
    best, current = found, dict(libraries)
    for lib in ESCALATION[1:]:
        if best.adequacy is None or best.adequacy.adequate:
            break
        at_fault = best.adequacy.inadequate_unknowns() or list(libraries)
        too_big = [n for n in at_fault if len(lib.terms(model.unknowns[n].args)) > MAX_ESCALATED_TERMS]
        if too_big:
            best.notes.append(
                f"the automatic library stopped before {describe_library(lib)}: more than {MAX_ESCALATED_TERMS} "
                f"terms for {', '.join(too_big)}; pass library= to try it"
            )
            break
        libs = {**current, **{n: lib for n in at_fault}}
        trial = attempt(libs)
        tries.append(LibraryTry(tuple(at_fault), describe_library(lib), ratio(trial), trial.adequacy.adequate))
        if ratio(trial) < ratio(best):
            best, current = trial, libs
    best.escalation = tries
    if len(tries) > 1:
        steps = "; ".join(
            f"{t.library} for {', '.join(t.unknowns)}: data ratio {t.data_ratio:.3g} "
            f"({'adequate' if t.adequate else 'inadequate'})"
            for t in tries
        )
        best.notes.append(f"automatic library escalated — {steps}")
    return best
