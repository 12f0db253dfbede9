"""The weather cases and their models: physics-only energy balance, UDE and neural ODE."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import sympy as sp

from .data import dwd_frame, greensboro_frame


@dataclass(frozen=True)
class Case:
    """One weather data set and its models.

    Attributes
    ----------
    key : str
        ``"greensboro"`` or ``"dwd"``.
    title : str
    inputs : tuple of str
        Measured inputs of the UDE (and of the physics-only model's data).
    physics_inputs : tuple of str
        Inputs the physics-only model uses.
    unknown_args, node_args : tuple of str
        Arguments of the UDE's unknown ``U`` and of the neural ODE's ``N``.
    solar : bool
        The energy balance has the solar heating term ``a S``.
    interpolation : str
        Of the input series between samples.
    time_note : str
        What the time axis is.
    """

    key: str
    title: str
    inputs: tuple  # inputs of the physics + UDE models
    physics_inputs: tuple
    unknown_args: tuple
    node_args: tuple
    solar: bool
    interpolation: str
    time_note: str


CASES = {
    "greensboro": Case(
        "greensboro",
        "Greensboro, NC — TMY3 July 1981 (temperature, shortwave radiation, cloud cover)",
        ("S", "C"),
        ("S",),
        ("T", "C"),
        ("T", "S", "C"),
        True,
        "cubic",
        "hours since 1981-07-01 00:00 local standard time",
    ),
    "dwd": Case(
        "dwd",
        "Würzburg (DWD 5705) — July 2021 (temperature only, hour of day as input)",
        ("hs", "hc"),
        (),
        ("T", "hs", "hc"),
        ("T", "hs", "hc"),
        False,
        "cubic",
        "hours since 2021-07-01 00:00 UTC",
    ),
}


def case_frame(case: Case) -> pd.DataFrame:
    """The data frame of a case (see :func:`greensboro_frame`, :func:`dwd_frame`).

    Parameters
    ----------
    case : Case

    Returns
    -------
    pandas.DataFrame
    """
    return greensboro_frame() if case.key == "greensboro" else dwd_frame()


def build_models(case: Case, t_ref: float, params: dict | None = None) -> dict:
    """The physics-only, UDE and neural-ODE models of a case.

    Parameters
    ----------
    case : Case
    t_ref : float
        Initial value of ``T_ref`` (e.g. the mean temperature of the training window).
    params : dict name -> float, optional
        Starting values for ``k``, ``T_ref``, ``a`` (e.g. the fitted physics-only
        values, so the UDE's network starts on the physics residual).

    Returns
    -------
    dict with keys ``"physics"``, ``"UDE"``, ``"neural ODE"`` -> HybridModel
    """
    from ... import HybridModel, Learnable

    T = sp.Symbol("T")
    k, T_ref, a = sp.symbols("k T_ref a")
    start = {"k": 0.2, "T_ref": t_ref, "a": 2.0, **(params or {})}
    relax = -k * (T - T_ref)
    physics = relax + (a * sp.Symbol("S") if case.solar else 0)
    pvals = {k: Learnable(start["k"]), T_ref: Learnable(start["T_ref"])}
    if case.solar:
        pvals[a] = Learnable(start["a"])
    U = sp.Function("U")(*sp.symbols(case.unknown_args))
    N = sp.Function("N")(*sp.symbols(case.node_args))
    sym = lambda names: [sp.Symbol(n) for n in names]  # noqa: E731
    return {
        "physics": HybridModel({T: physics}, pvals, sym(case.physics_inputs)),
        "UDE": HybridModel({T: physics + U}, pvals, sym(case.inputs)),
        "neural ODE": HybridModel({T: N}, {}, sym([a for a in case.node_args if a != "T"])),
    }


def fit_options(fast: bool = False) -> dict:
    """Training options.

    Parameters
    ----------
    fast : bool, default False
        A smoke run for tests (few iterations).

    Returns
    -------
    dict
        Keyword arguments ``warm_start`` and ``shooting`` for :func:`udesci.fit`.
    """
    from ... import Shooting, Solver, WarmStart

    solver = Solver("rk4", substeps=2)
    if fast:
        return {
            "warm_start": WarmStart(iterations=100, lr=2e-2),
            "shooting": Shooting(segment_length=6, iterations=30, lr=1e-2, solver=solver),
        }
    return {
        "warm_start": WarmStart(iterations=500, lr=1e-2),
        "shooting": Shooting(segment_length=6, iterations=400, lr=5e-3, solver=solver),
    }


def discovery_options(fast: bool = False) -> dict:
    """Options of :func:`udesci.discover` for the single unknown ``U``.

    Parameters
    ----------
    fast : bool, default False
        A smaller selection (tests).

    Returns
    -------
    dict
        ``library``, ``selection`` and ``refit`` (False, see the comment in the code).
    """
    from ... import Library, Selection

    if fast:
        sel = Selection(sweeps=1, shortlist=2, refine_iterations=3, exhaustive=1, thresholds=10)
    else:
        sel = Selection(sweeps=1, shortlist=4, refine_iterations=10, exhaustive=2)
    # refit=False: discover's refit integrates with dopri5 at rtol 1e-7, which crawls through the kinks of
    # linearly interpolated hourly inputs (hundreds of steps per solve); the shortlist refit on segments
    # already tunes coefficients and parameters against the data.
    return {"library": Library(degree=2), "selection": sel, "refit": False}
