"""The two weather data sets, in model units (see ``data/README.md``).

* Greensboro, NC, July 1981 (NREL TMY3 station 723170): hourly temperature,
  shortwave radiation and cloud cover (:func:`greensboro_frame`), and the derived
  CSV with a numeric time column that ``examples/weather.toml`` reads
  (:func:`write_prepared_csv`).
* Würzburg, July 2021 (DWD station 5705): hourly 2 m temperature (:func:`dwd_frame`).
"""

from __future__ import annotations

import os
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


def _data_path(name: str, path) -> Path:
    p = Path(path) if path is not None else DATA_DIR / name
    if not p.is_file():
        raise DataError(
            f"weather data file {os.fspath(p)!r} not found; expected the real data copied into the project's "
            f"data/ folder (see data/README.md), or pass its path."
        )
    return p


def _hour_columns(df: pd.DataFrame) -> pd.DataFrame:
    df["hs"] = np.sin(2 * np.pi * df["hour"] / 24.0)
    df["hc"] = np.cos(2 * np.pi * df["hour"] / 24.0)
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
        ``hour`` (hour of day, 0..23), ``T`` (°C), ``S`` (GHI in kW/m²),
        ``C`` (total cloud cover, fraction), ``RH`` (fraction), ``wind`` (m/s),
        ``hs``, ``hc`` (sin/cos of 2π hour / 24).

    Raises
    ------
    DataError
        If the file is missing, lacks a column or holds non-finite values.
    """
    raw = pd.read_csv(_data_path(GREENSBORO_FILE, path))
    need = ["date", "time_lst", "ghi_Wm2", "total_cloud_tenths", "temp_C", "rh_pct", "wind_speed_ms"]
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
            "S": raw["ghi_Wm2"].astype(float) / 1000.0,
            "C": raw["total_cloud_tenths"].astype(float) / 10.0,
            "RH": raw["rh_pct"].astype(float) / 100.0,
            "wind": raw["wind_speed_ms"].astype(float),
        }
    )
    df = _hour_columns(df)
    if not np.isfinite(df.to_numpy()).all():
        raise DataError(f"{GREENSBORO_FILE}: non-finite values after conversion.")
    return df


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
        ``t`` (hours since 2021-07-01 00:00 UTC), ``hour`` (UTC hour, 0..23),
        ``T`` (°C), ``hs``, ``hc``.

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
    return _hour_columns(df).sort_values("t").reset_index(drop=True)


def observed_at(frame: pd.DataFrame, times) -> np.ndarray:
    """Observed temperature at ``times`` (NaN where there is no sample).

    Parameters
    ----------
    frame : DataFrame
        With columns ``t`` and ``T`` (as :func:`greensboro_frame`, :func:`dwd_frame`).
    times : array-like of any shape
        Times in the frame's unit; matched to ``t`` after rounding both to 6 decimals.

    Returns
    -------
    ndarray of the shape of ``times``
    """
    s = pd.Series(frame["T"].to_numpy(), index=np.round(frame["t"].to_numpy(), 6))
    return s.reindex(np.round(np.asarray(times, dtype=float).ravel(), 6)).to_numpy().reshape(np.shape(times))
