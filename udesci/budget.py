"""Bounding a solve: the work one solve may spend, and the error (with guidance) when it runs out.

Every solve in udesci runs under a :class:`Budget` (field evaluations and wall-clock seconds,
both optional).  A solve that exceeds it, or whose step size underflows, raises
:class:`SolverGaveUp`: an ``AssertionError`` (as torchdiffeq's own give-ups are, so callers
that catch those keep working) whose message says why and what to try.
"""

from __future__ import annotations

import time

STIFF_METHOD = "rodas4"

# what to try when a solve gives up, by whether the failing method was already stiff-capable
_ADVICE_EXPLICIT = (
    "The model may be stiff (time scales far apart, e.g. fast reactions or relaxation oscillations), or its "
    f"solution may blow up at these parameters: try Solver({STIFF_METHOD!r}, adjoint=False) (an L-stable "
    "Rosenbrock method for stiff models), shorter shooting segments, a smaller learning rate, or a larger "
    "max_steps / max_seconds."
)
_ADVICE_STIFF = (
    f"Solver({STIFF_METHOD!r}) is stiff-capable, so the model's solution probably blows up at these parameters: "
    "try a smaller learning rate, shorter shooting segments, better initial parameter values, looser "
    "tolerances, or a larger max_steps / max_seconds."
)


def advice(method: str | None = None) -> str:
    """What to try when a solve with ``method`` gives up or produces a non-finite loss (one or two sentences)."""
    return _ADVICE_STIFF if method == STIFF_METHOD else _ADVICE_EXPLICIT


class SolverGaveUp(AssertionError):
    """A solve stopped before reaching its last output time.

    Raised when a solve exceeds its step or wall-clock budget or its step size underflows.
    It subclasses ``AssertionError`` because torchdiffeq reports the same events with plain
    ``AssertionError``\\ s, so code that catches those keeps catching this.

    Parameters
    ----------
    reason : str
        What happened (starts the message; torchdiffeq's own text when it wraps one of its errors).
    method : str, optional
        The method that gave up; chooses the guidance appended to the message (see :func:`advice`).

    Attributes
    ----------
    reason : str
    method : str or None
    """

    def __init__(self, reason: str, method: str | None = None):
        self.reason, self.method = reason, method
        super().__init__(f"{reason}. {advice(method)}")


def gave_up(exc: BaseException) -> bool:
    """True if ``exc`` is a solve giving up: :class:`SolverGaveUp`, or torchdiffeq's step-size
    underflow / step budget ``AssertionError``."""
    if isinstance(exc, SolverGaveUp):
        return True
    msg = str(exc)
    return isinstance(exc, AssertionError) and ("underflow in dt" in msg or "max_num_steps" in msg)


def explained(exc: BaseException, method: str | None = None) -> SolverGaveUp:
    """``exc`` as a :class:`SolverGaveUp` (itself if it already is one), so its message carries the guidance.

    Parameters
    ----------
    exc : BaseException
        An exception for which :func:`gave_up` is true.
    method : str, optional
        The method that raised it, when ``exc`` does not say.
    """
    return exc if isinstance(exc, SolverGaveUp) else SolverGaveUp(str(exc), method)


class Budget:
    """Field evaluations and wall-clock seconds one solve may spend.

    Parameters
    ----------
    evaluations : int or None
        Most field evaluations; ``None`` for no cap.
    seconds : float or None
        Most wall-clock seconds from the budget's creation (so an adjoint's backward pass counts
        too); ``None`` for no limit.
    method : str, optional
        The solver method (for the guidance in the error).

    Attributes
    ----------
    calls : int
        Field evaluations spent so far.
    """

    def __init__(self, evaluations: int | None = None, seconds: float | None = None, method: str | None = None):
        self.evaluations, self.seconds, self.method = evaluations, seconds, method
        self.calls = 0
        self.deadline = None if seconds is None else time.perf_counter() + seconds

    def spend(self) -> None:
        """Count one field evaluation.

        Raises
        ------
        SolverGaveUp
            Once more than ``evaluations`` evaluations were spent, or ``seconds`` have passed.
        """
        self.calls += 1
        if self.evaluations is not None and self.calls > self.evaluations:
            # torchdiffeq's max_num_steps restarts at every output time, so a solve with many outputs
            # could take max_steps x outputs steps; this caps the whole solve
            raise SolverGaveUp(
                f"max_num_steps exceeded: more than {self.evaluations} field evaluations in one solve", self.method
            )
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise SolverGaveUp(
                f"max_seconds exceeded: the solve ran for more than {self.seconds:g} s of wall-clock time "
                f"({self.calls} field evaluations)",
                self.method,
            )
