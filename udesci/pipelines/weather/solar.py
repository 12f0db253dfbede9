"""Solar geometry from a station's latitude/longitude and the clock: the forecast setting's known forcing.

Everything here is a closed-form function of time and place, so it is known at any issue time for any
lead time.  The formulas (written out here, no solar library):

* day angle ``G = 2π (n - 1 + (h_UTC - 12) / 24) / 365`` with ``n`` the day of the year;
* declination (Spencer 1971, radians)
  ``δ = 0.006918 - 0.399912 cos G + 0.070257 sin G - 0.006758 cos 2G + 0.000907 sin 2G
  - 0.002697 cos 3G + 0.00148 sin 3G``;
* equation of time (minutes)
  ``E = 229.18 (0.000075 + 0.001868 cos G - 0.032077 sin G - 0.014615 cos 2G - 0.040849 sin 2G)``;
* Sun–Earth distance factor ``(r0/r)² = 1.000110 + 0.034221 cos G + 0.001280 sin G + 0.000719 cos 2G
  + 0.000077 sin 2G``;
* true solar time (minutes) ``τ = 60 h_UTC + E + 4 λ`` (longitude ``λ`` in degrees, east positive) and
  hour angle ``ω = (τ / 4 - 180)°``;
* cosine of the solar zenith angle ``cos z = sin φ sin δ + cos φ cos δ cos ω`` (latitude ``φ``);
* top-of-atmosphere irradiance on a horizontal surface ``G0 = S0 (r0/r)² max(cos z, 0)``, ``S0 = 1361 W/m²``;
* clear-sky global horizontal irradiance (Haurwitz 1945) ``Gc = 1098 cos z exp(-0.057 / cos z)`` W/m² for
  ``cos z > 0``, else 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...errors import DataError

SOLAR_CONSTANT = 1361.0  # W/m², total solar irradiance at 1 AU (Kopp & Lean 2011)


def _utc_parts(utc) -> tuple[np.ndarray, np.ndarray]:
    stamps = pd.DatetimeIndex(pd.to_datetime(np.asarray(utc).ravel()))
    if stamps.tz is not None:
        stamps = stamps.tz_convert("UTC").tz_localize(None)
    day = stamps.day_of_year.to_numpy().astype(float)
    hour = (stamps - stamps.normalize()).total_seconds().to_numpy() / 3600.0
    return day, hour


def _check_place(lat: float, lon: float) -> None:
    if not (np.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise DataError(f"lat: expected a latitude in degrees within [-90, 90], received {lat!r}.")
    if not (np.isfinite(lon) and -180.0 <= lon <= 360.0):
        raise DataError(f"lon: expected a longitude in degrees (east positive), received {lon!r}.")


def solar_position(utc, lat: float, lon: float) -> dict:
    """Declination, equation of time, hour angle and cosine of the zenith angle.

    Parameters
    ----------
    utc : array-like of datetimes, shape (n,)
        Instants in UTC (naive datetimes are read as UTC; aware ones are converted).
    lat, lon : float
        Latitude and longitude in degrees (north and east positive).

    Returns
    -------
    dict of ndarray of shape (n,)
        ``declination`` (rad), ``equation_of_time`` (minutes), ``hour_angle`` (rad, 0 at solar noon,
        positive in the afternoon), ``cos_zenith`` (may be negative: the sun is below the horizon) and
        ``distance_factor`` ((r0/r)², dimensionless).

    Raises
    ------
    DataError
        For a latitude or longitude out of range.
    """
    _check_place(lat, lon)
    day, hour = _utc_parts(utc)
    g = 2.0 * np.pi * (day - 1.0 + (hour - 12.0) / 24.0) / 365.0
    decl = (
        0.006918
        - 0.399912 * np.cos(g)
        + 0.070257 * np.sin(g)
        - 0.006758 * np.cos(2 * g)
        + 0.000907 * np.sin(2 * g)
        - 0.002697 * np.cos(3 * g)
        + 0.00148 * np.sin(3 * g)
    )
    eot = 229.18 * (
        0.000075 + 0.001868 * np.cos(g) - 0.032077 * np.sin(g) - 0.014615 * np.cos(2 * g) - 0.040849 * np.sin(2 * g)
    )
    dist = 1.000110 + 0.034221 * np.cos(g) + 0.001280 * np.sin(g) + 0.000719 * np.cos(2 * g) + 0.000077 * np.sin(2 * g)
    solar_minutes = 60.0 * hour + eot + 4.0 * lon
    omega = np.deg2rad(solar_minutes / 4.0 - 180.0)
    phi = np.deg2rad(lat)
    cosz = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(omega)
    omega = np.angle(np.exp(1j * omega))  # wrapped to (-π, π]
    return {
        "declination": decl,
        "equation_of_time": eot,
        "hour_angle": omega,
        "cos_zenith": cosz,
        "distance_factor": dist,
    }


def toa_horizontal(utc, lat: float, lon: float) -> np.ndarray:
    """Top-of-atmosphere shortwave irradiance on a horizontal surface (W/m²).

    Parameters
    ----------
    utc : array-like of datetimes, shape (n,)
    lat, lon : float
        Degrees, north and east positive.

    Returns
    -------
    ndarray of shape (n,)
        ``S0 (r0/r)² max(cos z, 0)``.

    Raises
    ------
    DataError
        For a latitude or longitude out of range.
    """
    p = solar_position(utc, lat, lon)
    return SOLAR_CONSTANT * p["distance_factor"] * np.maximum(p["cos_zenith"], 0.0)


def clear_sky_ghi(utc, lat: float, lon: float) -> np.ndarray:
    """Clear-sky global horizontal irradiance (W/m²), Haurwitz's model.

    Parameters
    ----------
    utc : array-like of datetimes, shape (n,)
    lat, lon : float
        Degrees, north and east positive.

    Returns
    -------
    ndarray of shape (n,)
        ``1098 cos z exp(-0.057 / cos z)`` where the sun is up, 0 otherwise.

    Raises
    ------
    DataError
        For a latitude or longitude out of range.
    """
    cosz = solar_position(utc, lat, lon)["cos_zenith"]
    up = cosz > 1e-6
    out = np.zeros_like(cosz)
    out[up] = 1098.0 * cosz[up] * np.exp(-0.057 / cosz[up])
    return out


def hour_mean(func, utc_end, lat: float, lon: float, samples: int = 60) -> np.ndarray:
    """Mean of an irradiance over the hour *ending* at each instant (as TMY3's hourly values).

    Parameters
    ----------
    func : callable
        :func:`toa_horizontal` or :func:`clear_sky_ghi` (``func(utc, lat, lon) -> (n,)``).
    utc_end : array-like of datetimes, shape (n,)
        Ends of the hours, UTC.
    lat, lon : float
    samples : int, default 60
        Midpoint-rule samples per hour.

    Returns
    -------
    ndarray of shape (n,)
    """
    ends = pd.DatetimeIndex(pd.to_datetime(np.asarray(utc_end).ravel()))
    offsets = pd.to_timedelta((np.arange(samples) + 0.5) / samples - 1.0, unit="h")
    grid = (ends.to_numpy()[:, None] + offsets.to_numpy()[None, :]).ravel()
    return func(grid, lat, lon).reshape(len(ends), samples).mean(axis=1)
