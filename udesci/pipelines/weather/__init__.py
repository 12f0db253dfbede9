"""Hourly weather forecasts with universal differential equations, verified as a meteorologist would.

Data (copied into the project's ``data/`` folder, see ``data/README.md``): Greensboro, NC (NREL TMY3,
July 1981 and January 1988 of the full TMY3 year: temperature, dew point, radiation, cloud), New York JFK
(ASOS, July 2013: temperature, dew point) and Würzburg (DWD, July 2021: temperature only).

Two settings, labelled everywhere (:mod:`.models`):

* **forecast** — only what is known at the issue time: the clear-sky shortwave ``Q`` from the station's
  latitude/longitude and the clock (:mod:`.solar`), and the states observed 24 h earlier;
* **hindcast** — the measured radiation and cloud of the forecast period (Greensboro): an upper bound on
  what a perfect forcing forecast would give, not a forecast.

Each model (physics only, UDE, neural ODE, and the UDE's discovered closed form) is trained on the first
1, 3, 7 or 14 days and verified by 24-h forecasts issued at every day boundary of the common test period,
started from the observed state, against persistence, same hour yesterday and the training window's
diurnal climatology (:mod:`.scores`: RMSE and bias by lead time, MSE skill scores with bootstrap
intervals over test days).  :mod:`.compare` puts a plain NN map, a ResNet and a neural ODE side by side on
regularly sampled and gappy series.

Modules: :mod:`.data`, :mod:`.solar`, :mod:`.models`, :mod:`.forecast`, :mod:`.scores`, :mod:`.run`
(:func:`run_pipeline`), :mod:`.compare`, :mod:`.reporting`.
"""

from .data import (
    DATA_DIR,
    DWD_FILE,
    GREENSBORO_FILE,
    JFK_FILE,
    PREPARED_FILE,
    STATIONS,
    TMY3_YEAR_FILE,
    WUERZBURG,
    Station,
    dwd_frame,
    greensboro_frame,
    jfk_frame,
    observed_at,
    station_frame,
    tmy3_month_frame,
    with_forecast_inputs,
    write_prepared_csv,
)
from .forecast import BASELINES, HORIZON, METHODS, MODELS, baselines, forecast, forecast_starts
from .models import INPUTS, STATES, Variant, build_models, discovery_options, fit_options
from .run import (
    FAST_WINDOWS,
    TARGET_WINDOW,
    WINDOWS,
    VariantRun,
    WindowRun,
    default_plan,
    format_table,
    run_pipeline,
    run_variant,
    target_check,
    variant_frame,
)
from .scores import Skill, bias_by_lead, lead_errors, mse_skill, rmse_by_lead, score_table, skill_by_lead
from .solar import clear_sky_ghi, hour_mean, solar_position, toa_horizontal

__all__ = [
    "BASELINES", "DATA_DIR", "DWD_FILE", "FAST_WINDOWS", "GREENSBORO_FILE", "HORIZON", "INPUTS", "JFK_FILE",
    "METHODS", "MODELS", "PREPARED_FILE", "STATES", "STATIONS", "TARGET_WINDOW", "TMY3_YEAR_FILE", "WINDOWS",
    "WUERZBURG", "Skill", "Station", "Variant", "VariantRun", "WindowRun", "baselines", "bias_by_lead",
    "build_models", "clear_sky_ghi", "default_plan", "discovery_options", "dwd_frame", "fit_options",
    "forecast", "forecast_starts", "format_table", "greensboro_frame", "hour_mean", "jfk_frame", "lead_errors",
    "mse_skill", "observed_at", "rmse_by_lead", "run_pipeline", "run_variant", "score_table", "skill_by_lead",
    "solar_position", "station_frame", "target_check", "tmy3_month_frame", "toa_horizontal", "variant_frame",
    "with_forecast_inputs", "write_prepared_csv",
]  # fmt: skip
