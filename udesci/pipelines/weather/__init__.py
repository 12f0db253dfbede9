"""Hourly air temperature with a universal differential equation and measured forcing.

Two real data sets (copied into the project's ``data/`` folder, see ``data/README.md``):

* **Greensboro, NC, July 1981** (NREL TMY3, station 723170): hourly dry-bulb
  temperature ``T`` (°C), global horizontal irradiance (``S`` = GHI / 1000, in
  kW/m²) and total cloud cover (``C`` = tenths / 10, in [0, 1]).  Time ``t`` is
  in hours since 1981-07-01 00:00 local standard time (TMY3 stamps are
  hour-ending, so the first sample is ``t = 1``).

  * known physics (energy balance): ``dT/dt = -k (T - T_ref) + a S`` with
    learnable ``k`` (1/h), ``T_ref`` (°C) and ``a`` (°C/h per kW/m²);
  * UDE: ``dT/dt = -k (T - T_ref) + a S + U(T, C)``, the unknown ``U`` (°C/h)
    capturing what the relaxation and solar heating miss (night-time radiative
    cooling under clear skies, advection, ...);
  * pure neural ODE: ``dT/dt = N(T, S, C)``.

* **Würzburg, July 2021** (DWD station 5705, about 120 km from Heidelberg):
  hourly 2 m temperature only.  Time in hours since 2021-07-01 00:00 UTC;
  inputs are the hour of day as ``hs = sin(2π h/24)``, ``hc = cos(2π h/24)``.
  Known relaxation ``dT/dt = -k (T - T_ref)``, UDE ``... + U(T, hs, hc)``, neural
  ODE ``dT/dt = N(T, hs, hc)``.

For each training window (the first 1, 3 or 7 days) every model is trained on
that window only and then evaluated by **24-hour forecasts** started from the
observed temperature, simulated with the measured inputs:

* ``next 24 h``: one forecast from the end of the training window;
* ``rolling``: a forecast from every day boundary of the common test period
  (everything after the longest training window), pooled RMSE over all
  forecast hours — the same test set for every window.

Baselines: persistence (the last observed value), yesterday (the same hour one
day earlier), diurnal climatology (mean by hour of day over the training
window), the physics-only model with fitted coefficients, and the neural ODE.
The UDE's unknown is then discovered (:func:`udesci.discover`, polynomial
library of degree 2 in the unknown's arguments) and the closed-form model is
evaluated the same way.

Modules: :mod:`~udesci.pipelines.weather.data` (loading the data sets),
:mod:`~udesci.pipelines.weather.models` (cases and models),
:mod:`~udesci.pipelines.weather.forecast` (batched forecasts and baselines),
:mod:`~udesci.pipelines.weather.run` (training and evaluation per case and window,
:func:`run_pipeline`), :mod:`~udesci.pipelines.weather.reporting` (plots and ``report.md``).
"""

from .data import (
    DATA_DIR,
    DWD_FILE,
    GREENSBORO_FILE,
    PREPARED_FILE,
    WUERZBURG,
    dwd_frame,
    greensboro_frame,
    observed_at,
    write_prepared_csv,
)
from .forecast import HORIZON, METHODS, baselines, forecast, forecast_starts
from .models import CASES, Case, build_models, case_frame, discovery_options, fit_options
from .run import FAST_WINDOWS, WINDOWS, CaseRun, WindowModels, format_table, run_case, run_pipeline

__all__ = [
    "CASES", "DATA_DIR", "DWD_FILE", "FAST_WINDOWS", "GREENSBORO_FILE", "HORIZON", "METHODS", "PREPARED_FILE",
    "WINDOWS", "WUERZBURG", "Case", "CaseRun", "WindowModels", "baselines", "build_models", "case_frame",
    "discovery_options", "dwd_frame", "fit_options", "forecast", "forecast_starts", "format_table",
    "greensboro_frame", "observed_at", "run_case", "run_pipeline", "write_prepared_csv",
]  # fmt: skip
