"""The weather model variants: station × setting × states, and their physics-only, UDE and neural-ODE models.

Two settings, never mixed:

* **forecast** — only what is known at the issue time: the clear-sky shortwave ``Q`` computed from the
  station's latitude/longitude and the clock (:mod:`.solar`), and the persistence inputs ``Y``/``YD``
  (temperature / dew point observed 24 h earlier, all in the past for leads up to 24 h).  Cloud and
  measured radiation of the forecast period are *not* used.
* **hindcast** — the measured forcing of the forecast period: global horizontal irradiance ``S`` and
  cloud cover ``C`` (Greensboro only, the one file with radiation).  A hindcast says how good the model
  would be with a perfect forecast of the forcing; it is not a forecast.

Verified states: ``T`` (air temperature, °C) everywhere, and ``T`` with ``D`` (dew point, °C) where the file
has humidity.  Known physics (learnable coefficients):

* forecast: the models' states are the departures from the same hour yesterday, ``A = T - Y`` and
  ``AD = D - YD``; ``dA/dt = -k A`` and ``dAD/dt = -k_D AD`` — "yesterday plus a decaying anomaly"
  (``k = 0`` keeps the issue time's departure, a large ``k`` is "same hour yesterday").  The forecast of
  ``T`` is ``Y + A`` (:meth:`Variant.verified`); ``Y`` at every lead is an observation of the past.
* hindcast: ``dT/dt = -k (T - T_ref) + a S`` and ``dD/dt = -k_D (D - D_ref) + b S`` — relaxation towards
  a reference and shortwave heating / evaporation driven by the measured radiation.

The UDE adds unknown functions ``U`` (and ``V``) of the model states and the inputs; the neural ODE
replaces the whole right-hand side by networks ``N`` (and ``M``) of the same arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from ...errors import ConfigError

# every input: (definition, unit)
INPUTS = {
    "Q": (
        "clear-sky global horizontal irradiance at the station, computed from latitude, longitude and the "
        "clock (solar declination, equation of time, hour angle; Haurwitz clear-sky model)",
        "kW/m²",
    ),
    "Y": ("air temperature observed 24 h earlier (persistence of the diurnal cycle)", "°C"),
    "YD": ("dew point observed 24 h earlier", "°C"),
    "S": ("measured global horizontal irradiance of the same hour (TMY3 GHI / 1000)", "kW/m²"),
    "C": ("measured total cloud cover of the same hour (TMY3 tenths / 10)", "fraction, 0..1"),
}
STATES = {
    "T": ("air temperature (2 m / dry bulb)", "°C"),
    "D": ("dew point", "°C"),
    "A": ("departure of the air temperature from the same hour yesterday, T - Y (forecast setting)", "°C"),
    "AD": ("departure of the dew point from the same hour yesterday, D - YD (forecast setting)", "°C"),
}
# a verified state -> (its value 24 h earlier, its departure from it): the forecast setting's model states
DEPARTURES = {"T": ("Y", "A"), "D": ("YD", "AD")}
SETTINGS = ("forecast", "hindcast")


@dataclass(frozen=True)
class Variant:
    """One station, setting and state set.

    Attributes
    ----------
    station : str
        A key of :data:`~udesci.pipelines.weather.data.STATIONS`.
    setting : {"forecast", "hindcast"}
    states : tuple of str
        The verified states: ``("T",)`` or ``("T", "D")``.
    """

    station: str
    setting: str
    states: tuple

    def __post_init__(self):
        if self.setting not in SETTINGS:
            raise ConfigError(f"setting: expected one of {SETTINGS}, received {self.setting!r}.")
        if tuple(self.states) not in (("T",), ("T", "D")):
            raise ConfigError(f"states: expected ('T',) or ('T', 'D'), received {self.states!r}.")

    @property
    def key(self) -> str:
        """``<station>_<setting>_<T|TD>``, used in file names and tables."""
        return f"{self.station}_{self.setting}_{''.join(self.states)}"

    @property
    def model_states(self) -> tuple:
        """The states the models integrate: the departures ``A``, ``AD`` from the same hour yesterday in
        the forecast setting, the verified states themselves in the hindcast."""
        if self.setting == "hindcast":
            return tuple(self.states)
        return tuple(DEPARTURES[s][1] for s in self.states)

    def unknown_args(self) -> dict:
        """The arguments of each unknown, by the model state whose equation it is in.

        Returns
        -------
        dict model state -> tuple of str
            Forecast: the departures and ``Q`` — not ``Y``, whose level in a test week can lie outside
            the training week's (a warm spell after a cool one) where a fitted function of it
            extrapolates; hindcast: the states, ``C`` and the state's value 24 h before.
        """
        if self.setting == "forecast":
            return {m: (*self.model_states, "Q") for m in self.model_states}
        return {s: (*self.states, "C", DEPARTURES[s][0]) for s in self.states}

    @property
    def inputs(self) -> tuple:
        """Every input any of the variant's models reads, in a fixed order."""
        names = ["S"] if self.setting == "hindcast" else []
        for args in self.unknown_args().values():
            names += [a for a in args if a not in self.model_states and a not in names]
        return tuple(names)

    def verified(self, pred, frame, times) -> np.ndarray:
        """Model-state forecasts as forecasts of the verified states: ``T = Y + A`` (and ``D = YD + AD``)
        in the forecast setting, unchanged in the hindcast.

        Parameters
        ----------
        pred : array of shape (B, L, n_states)
            Forecasts of :attr:`model_states` at ``times``.
        frame : DataFrame
            The variant's data (:func:`~udesci.pipelines.weather.run.variant_frame`), with ``Y``/``YD``.
        times : array of shape (B, L)
            The forecasts' times.

        Returns
        -------
        ndarray of shape (B, L, n_states)
            Forecasts of :attr:`states`; NaN where ``Y`` is missing.
        """
        from .data import observed_at

        pred = np.asarray(pred, dtype=float)
        if self.setting == "hindcast":
            return pred
        lagged = np.stack([observed_at(frame, times, column=DEPARTURES[s][0]) for s in self.states], axis=-1)
        return pred + lagged


UNKNOWN_NAMES = {"T": ("U", "N"), "D": ("V", "M")}  # verified state -> (UDE unknown, neural-ODE network)


def build_models(variant: Variant, start: dict) -> dict:
    """The physics-only, UDE and neural-ODE models of a variant.

    Parameters
    ----------
    variant : Variant
    start : dict name -> float
        Starting values of the learnable parameters.  The hindcast needs ``T_ref`` (and ``D_ref`` with a
        dew-point state), e.g. the training window's means; ``k``, ``a``, ``k_D``, ``b`` default to 0.2 1/h,
        2 °C/h per kW/m², 0.1 1/h and 0.5 °C/h per kW/m².  Other keys are ignored.

    Returns
    -------
    dict with keys ``"physics"``, ``"UDE"``, ``"neural ODE"`` -> HybridModel

    Raises
    ------
    ConfigError
        If a reference value is missing from ``start``.
    """
    from ... import HybridModel, Learnable

    hindcast = variant.setting == "hindcast"
    need = (["T_ref"] + (["D_ref"] if "D" in variant.states else [])) if hindcast else []
    missing = [n for n in need if n not in start]
    if missing:
        raise ConfigError(f"start: expected values for {need}, missing {missing}.")
    values = {"k": 0.2, "a": 2.0, "k_D": 0.1, "b": 0.5, **start}
    k, T_ref, a, k_D, D_ref, b = sp.symbols("k T_ref a k_D D_ref b")
    x = dict(zip(variant.states, sp.symbols(variant.model_states), strict=True))
    S = sp.Symbol("S")
    physics = {x["T"]: -k * (x["T"] - T_ref) + a * S if hindcast else -k * x["T"]}
    names = [k, T_ref, a] if hindcast else [k]
    if "D" in variant.states:
        physics[x["D"]] = -k_D * (x["D"] - D_ref) + b * S if hindcast else -k_D * x["D"]
        names += [k_D, D_ref, b] if hindcast else [k_D]
    params = {p: Learnable(float(values[str(p)])) for p in names}
    args = variant.unknown_args()
    ude, node = {}, {}
    for state, symbol in x.items():
        u_name, n_name = UNKNOWN_NAMES[state]
        arguments = sp.symbols(args[str(symbol)])
        ude[symbol] = physics[symbol] + sp.Function(u_name)(*arguments)
        node[symbol] = sp.Function(n_name)(*arguments)
    read = {a for s in args.values() for a in s if a not in variant.model_states}
    node_inputs = sorted(read, key=variant.inputs.index)
    sym = lambda names: [sp.Symbol(n) for n in names]  # noqa: E731
    return {
        "physics": HybridModel(physics, params, sym(["S"] if hindcast else [])),
        "UDE": HybridModel(ude, params, sym(variant.inputs)),
        "neural ODE": HybridModel(node, {}, sym(node_inputs)),
    }


def with_learnable_coefficients(ude, found):
    """The UDE with each unknown replaced by its discovered closed form, every coefficient a learnable
    parameter (named ``<unknown>_c<i>``, starting at the discovered value) and the physics' parameters
    starting at the discovered model's values.

    Discovery scores candidates on trajectories whose initial states it fits; a forecast starts from the
    observed state.  Refitting the discovered structure's coefficients with the forecast task
    (:func:`fit_options`) keeps the structure discovery chose and makes its numbers those of the task
    it is verified on.

    Parameters
    ----------
    ude : HybridModel
        The trained UDE.
    found : Discovery
        Its discovery.

    Returns
    -------
    HybridModel
        No unknowns; learnable: the UDE's learnable parameters and the coefficients.
    """
    exprs, extra, values = {}, {}, {}
    for name, expr in found.unknowns.items():
        terms = sp.expand(expr).as_coefficients_dict()
        total = sp.Integer(0)
        for i, (term, coef) in enumerate(sorted(terms.items(), key=lambda kv: sp.default_sort_key(kv[0]))):
            c = sp.Symbol(f"{name}_c{i}")
            extra[c] = float(coef)
            total += c * term
        exprs[name] = total
    for sym, value in found.model.parameter_values().items():
        if sym in ude.learnable:
            values[sym] = value
    return ude.substitute(exprs, learnable=list(extra), params={**values, **extra})


def tuned_equations(model, digits: int = 4) -> dict:
    """A closed-form model's right-hand sides with its parameter values written in.

    Parameters
    ----------
    model : HybridModel
        Without unknowns (e.g. :func:`with_learnable_coefficients` after training).
    digits : int, default 4
        Significant digits of the numbers.

    Returns
    -------
    dict state -> sympy.Expr
    """
    values = {p: sp.Float(v, digits) for p, v in model.parameter_values().items()}
    return {s: sp.N(rhs.xreplace(values), digits) for s, rhs in model.equations.items()}


def fit_options(fast: bool = False) -> dict:
    """Training options: the task the models are verified on, single shooting over 24-h windows from
    every training hour (:func:`~udesci.pipelines.weather.forecast.forecast_windows`), each rollout
    starting at its window's first value (udesci's smoothed first observation), as a forecast starts
    at the issue time.

    No derivative-matching warm start: it fits the hourly tendencies of the departures, which are
    dominated by the day-to-day differences of the diurnal cycle rather than by the decay the 24-h
    rollouts need, and started the UDE far from the forecast optimum (Würzburg, 7 days: UDE skill
    against yesterday -2.3 with it, -0.01 without).

    Parameters
    ----------
    fast : bool, default False
        A smoke run for tests (few iterations).

    Returns
    -------
    dict
        Keyword arguments ``warm_start`` and ``shooting`` (both None) and ``full`` for :func:`udesci.fit`.
    """
    from ... import FullTrajectory, Solver

    solver = Solver("rk4", substeps=2)
    iterations = 20 if fast else 300
    full = FullTrajectory(iterations=iterations, lr=1e-2, solver=solver, learn_initial=False)
    return {"warm_start": None, "shooting": None, "full": full}


def discovery_options(fast: bool = False) -> dict:
    """Options of :func:`udesci.discover`, the same for every station and setting.

    Parameters
    ----------
    fast : bool, default False
        A smaller selection (tests).

    Returns
    -------
    dict
        ``library`` (polynomials of degree 2 in each unknown's arguments), ``selection`` and ``refit``.
    """
    from ... import Library, Selection

    if fast:
        sel = Selection(sweeps=1, shortlist=2, refine_iterations=3, exhaustive=1, thresholds=10, bootstrap=0)
    else:
        # smaller than discover's defaults (shortlist 32, 2 sweeps, 100 bootstrap replicates) only for cost:
        # the full run discovers about 25 models on a shared 2-core machine; inclusion then comes from
        # criterion weights instead of the bootstrap.
        sel = Selection(sweeps=1, shortlist=4, refine_iterations=10, exhaustive=2, bootstrap=0)
    # refit=False: discover's final refit integrates with dopri5 at rtol 1e-7, which crawls through the
    # interpolated hourly inputs; the shortlist refit on segments already tunes coefficients and parameters.
    return {"library": Library(degree=2), "selection": sel, "refit": False}
