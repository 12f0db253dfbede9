"""The weather model variants: station × setting × states, and their physics-only, UDE and neural-ODE models.

Two settings, never mixed:

* **forecast** — only what is known at the issue time: the clear-sky shortwave ``Q`` computed from the
  station's latitude/longitude and the clock (:mod:`.solar`), and the persistence inputs ``Y``/``YD``
  (temperature / dew point observed 24 h earlier, all in the past for leads up to 24 h).  Cloud and
  measured radiation of the forecast period are *not* used.
* **hindcast** — the measured forcing of the forecast period: global horizontal irradiance ``S`` and
  cloud cover ``C`` (Greensboro only, the one file with radiation).  A hindcast says how good the model
  would be with a perfect forecast of the forcing; it is not a forecast.

States: ``T`` (air temperature, °C) everywhere, and ``T`` with ``D`` (dew point, °C) where the file has
humidity.  Known physics (learnable coefficients):

* ``dT/dt = -k (T - T_ref) + a F`` — relaxation towards a reference temperature and shortwave heating
  (``F = Q`` in the forecast setting, ``S`` in the hindcast);
* ``dD/dt = -k_D (D - D_ref) + b F`` — relaxation of the moisture towards a reference dew point and
  daytime moistening by evaporation, driven by the same shortwave.

The UDE adds unknown functions ``U`` (and ``V``) of the states and the inputs; the neural ODE replaces the
whole right-hand side by networks ``N`` (and ``M``) of the same arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

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
STATES = {"T": ("air temperature (2 m / dry bulb)", "°C"), "D": ("dew point", "°C")}
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
        ``("T",)`` or ``("T", "D")``.
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
    def forcing(self) -> str:
        """The shortwave input of the known physics: ``Q`` (forecast) or ``S`` (hindcast)."""
        return "Q" if self.setting == "forecast" else "S"

    def unknown_args(self) -> dict:
        """The arguments of each unknown, by the state whose equation it is in.

        Returns
        -------
        dict state -> tuple of str
        """
        extra = "Q" if self.setting == "forecast" else "C"
        lag = {"T": "Y", "D": "YD"}
        return {s: (*self.states, extra, lag[s]) for s in self.states}

    @property
    def inputs(self) -> tuple:
        """Every input any of the variant's models reads, in a fixed order."""
        names = [self.forcing]
        for args in self.unknown_args().values():
            names += [a for a in args if a not in self.states and a not in names]
        return tuple(names)


UNKNOWN_NAMES = {"T": ("U", "N"), "D": ("V", "M")}  # state -> (UDE unknown, neural-ODE network)


def build_models(variant: Variant, start: dict) -> dict:
    """The physics-only, UDE and neural-ODE models of a variant.

    Parameters
    ----------
    variant : Variant
    start : dict name -> float
        Starting values of the learnable parameters; must hold ``T_ref`` (and ``D_ref`` with a dew-point
        state), e.g. the training window's means; ``k``, ``a``, ``k_D``, ``b`` default to 0.2 1/h,
        2 °C/h per kW/m², 0.1 1/h and 0.5 °C/h per kW/m².

    Returns
    -------
    dict with keys ``"physics"``, ``"UDE"``, ``"neural ODE"`` -> HybridModel

    Raises
    ------
    ConfigError
        If a reference value is missing from ``start``.
    """
    from ... import HybridModel, Learnable

    need = ["T_ref"] + (["D_ref"] if "D" in variant.states else [])
    missing = [n for n in need if n not in start]
    if missing:
        raise ConfigError(f"start: expected values for {need}, missing {missing}.")
    values = {"k": 0.2, "a": 2.0, "k_D": 0.1, "b": 0.5, **start}
    F = sp.Symbol(variant.forcing)
    T, D = sp.symbols("T D")
    k, T_ref, a, k_D, D_ref, b = sp.symbols("k T_ref a k_D D_ref b")
    physics = {T: -k * (T - T_ref) + a * F}
    names = [k, T_ref, a]
    if "D" in variant.states:
        physics[D] = -k_D * (D - D_ref) + b * F
        names += [k_D, D_ref, b]
    params = {p: Learnable(float(values[str(p)])) for p in names}
    args = variant.unknown_args()
    ude, node = {}, {}
    for state, rhs in physics.items():
        u_name, n_name = UNKNOWN_NAMES[str(state)]
        symbols = sp.symbols(args[str(state)])
        ude[state] = rhs + sp.Function(u_name)(*symbols)
        node[state] = sp.Function(n_name)(*symbols)
    node_inputs = sorted({a for s in args.values() for a in s if a not in variant.states}, key=variant.inputs.index)
    sym = lambda names: [sp.Symbol(n) for n in names]  # noqa: E731
    return {
        "physics": HybridModel(physics, params, sym([variant.forcing])),
        "UDE": HybridModel(ude, params, sym(variant.inputs)),
        "neural ODE": HybridModel(node, {}, sym(node_inputs)),
    }


def fit_options(fast: bool = False) -> dict:
    """Training options: udesci's defaults (warm start, then multiple shooting); fewer iterations when fast.

    Parameters
    ----------
    fast : bool, default False
        A smoke run for tests (few iterations).

    Returns
    -------
    dict
        Keyword arguments ``warm_start`` and ``shooting`` for :func:`udesci.fit`.
    """
    from ... import Shooting, WarmStart

    if fast:
        return {"warm_start": WarmStart(iterations=60, lr=2e-2), "shooting": Shooting(iterations=20)}
    return {"warm_start": WarmStart(), "shooting": Shooting()}


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
