"""Tests of the weather pipeline: solar geometry, data, the two settings, verification scores, the fast run.

Known answers: the solar formulas against NOAA's published values and against the extraterrestrial
irradiance column of the TMY3 file itself; the scores against closed forms; the exported ``model.py``
against udesci's own solve of the same model.
"""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pandas as pd
import pytest

import udesci as ud
from udesci import cli
from udesci.errors import ConfigError, DataError
from udesci.pipelines import weather

# -- solar geometry ----------------------------------------------------------------------------------


def test_declination_and_equation_of_time_match_known_values():
    """Spencer's series against the NOAA solar calculator: declination +23.44° at the June solstice and
    -23.44° at the December solstice; equation of time -14.2 min on 11 February and +16.4 min on 3 November
    (the extremes).  Spencer's series is accurate to about 0.05° and 0.5 min."""
    utc = pd.to_datetime(["2021-06-21 12:00", "2021-12-21 12:00", "2021-02-11 12:00", "2021-11-03 12:00"])
    p = weather.solar_position(utc, 0.0, 0.0)
    np.testing.assert_allclose(np.rad2deg(p["declination"][:2]), [23.44, -23.44], atol=0.1)
    np.testing.assert_allclose(p["equation_of_time"][2:], [-14.2, 16.4], atol=0.5)


def test_hour_angle_is_zero_at_solar_noon_and_zenith_matches_latitude():
    """At the equinox-free check: at local solar noon (12:00 UTC - 4 min/degree * lon - EoT) the hour angle
    is 0 and the zenith angle is |latitude - declination|."""
    lat, lon = 36.1, -79.95
    day = pd.Timestamp("1981-07-15")
    eot = weather.solar_position([day + pd.Timedelta(hours=12)], lat, lon)["equation_of_time"][0]
    noon = day + pd.Timedelta(minutes=720 - 4 * lon - eot)
    p = weather.solar_position([noon], lat, lon)
    assert abs(p["hour_angle"][0]) < 1e-3
    zenith = np.rad2deg(np.arccos(p["cos_zenith"][0]))
    assert zenith == pytest.approx(abs(lat - np.rad2deg(p["declination"][0])), abs=0.05)


@pytest.mark.parametrize(("month", "station"), [(1, "greensboro_jan"), (7, "greensboro")])
def test_top_of_atmosphere_matches_the_tmy3_etr_column(month, station):
    """The hour-mean top-of-atmosphere irradiance from the station's coordinates and the clock reproduces
    TMY3's own ETR column (computed by NREL with S0 = 1367 W/m², so ours is scaled by 1367/1361): mean
    absolute difference below 2 W/m² and at most 10 W/m² in any hour (sunrise/sunset hours), against
    values up to about 1300 W/m²."""
    frame = weather.tmy3_month_frame(month)
    st = weather.STATIONS[station]
    ours = weather.hour_mean(weather.toa_horizontal, st.utc(frame["t"]), st.lat, st.lon) * 1367.0 / 1361.0
    diff = np.abs(ours - frame["ETR"].to_numpy())
    assert diff.mean() < 2.0 and diff.max() < 10.0
    assert (ours[frame["ETR"].to_numpy() == 0] < 5.0).all()  # night is night


def test_clear_sky_bounds_the_measured_radiation():
    """The Haurwitz clear-sky irradiance is 0 at night, below the top of the atmosphere, and the measured
    Greensboro GHI (July) rarely exceeds it: the 95th percentile of measured / clear-sky in daylight
    hours (clear sky > 100 W/m²) lies between 0.85 and 1.1."""
    st = weather.STATIONS["greensboro"]
    frame = weather.greensboro_frame()
    utc = st.utc(frame["t"])
    cs = weather.hour_mean(weather.clear_sky_ghi, utc, st.lat, st.lon)
    toa = weather.hour_mean(weather.toa_horizontal, utc, st.lat, st.lon)
    assert (cs <= toa + 1e-9).all() and (cs[toa == 0] == 0).all()
    day = cs > 100
    ratio = 1000.0 * frame["S"].to_numpy()[day] / cs[day]
    assert 0.85 < np.quantile(ratio, 0.95) < 1.1


def test_solar_refuses_bad_coordinates():
    with pytest.raises(DataError, match="lat"):
        weather.solar_position(pd.to_datetime(["2021-01-01"]), 95.0, 0.0)


# -- data ----------------------------------------------------------------------------------------------


def test_july_file_is_the_july_of_the_full_tmy3_year():
    july = weather.greensboro_frame()
    year = weather.tmy3_month_frame(7)
    for c in ("t", "T", "D", "S", "C"):
        np.testing.assert_allclose(july[c].to_numpy(), year[c].to_numpy(), err_msg=c)


def test_jfk_and_forecast_inputs():
    """JFK is converted from °F (first row 71.96 °F = 22.2 °C); ``Y`` is T 24 h earlier and ``Q`` the
    clear-sky irradiance, zero at local midnight and largest near local noon."""
    jfk = weather.jfk_frame()
    assert len(jfk) == 744 and jfk["T"].iloc[0] == pytest.approx((71.96 - 32) / 1.8)
    assert (jfk["D"] <= jfk["T"] + 1e-9).all()
    f = weather.with_forecast_inputs(jfk, weather.STATIONS["jfk"])
    assert f["t"].iloc[0] == 24.0
    np.testing.assert_allclose(f["Y"].to_numpy(), weather.observed_at(jfk, f["t"].to_numpy() - 24.0))
    np.testing.assert_allclose(f["A"].to_numpy(), f["T"].to_numpy() - f["Y"].to_numpy())
    np.testing.assert_allclose(f["AD"].to_numpy(), f["D"].to_numpy() - f["YD"].to_numpy())
    np.testing.assert_allclose(f["YD"].to_numpy(), weather.observed_at(jfk, f["t"].to_numpy() - 24.0, column="D"))
    by_hour = f.groupby("hour")["Q"].mean()
    assert by_hour[0] == 0 and 11 <= by_hour.idxmax() <= 14 and 0.8 < by_hour.max() < 1.1


# -- settings and models ----------------------------------------------------------------------------


def test_forecast_setting_sees_no_measured_forcing():
    """The forecast setting's models read only Q, Y, YD (known at issue time) and integrate the departures
    from yesterday; the hindcast's read S, C and integrate T itself."""
    for states in (("T",), ("T", "D")):
        v = weather.Variant("greensboro", "forecast", states)
        models = weather.build_models(v, {})
        assert v.model_states == ("A", "AD")[: len(states)]
        for name, m in models.items():
            assert set(m.input_names) <= {"Q", "Y", "YD"}, name
            assert [str(x) for x in m.states] == list(v.model_states), name
    h = weather.build_models(weather.Variant("greensboro", "hindcast", ("T",)), {"T_ref": 20.0})
    assert set(h["UDE"].input_names) == {"S", "C", "Y"}
    with pytest.raises(ConfigError, match="setting"):
        weather.Variant("greensboro", "nowcast", ("T",))


def test_batched_forecast_equals_simulate_and_reads_nothing_after_the_horizon():
    """weather.forecast (one batched solve, rows with their own start times and input windows) equals
    udesci.simulate from each start given the same window of inputs (3 h before the issue to the end of
    the horizon).  Tolerance: rk4 with 4 substeps per hour on a smooth field against dopri5 agrees to
    ~1e-5 °C; 1e-3 leaves slack.  Changing every temperature after an issue time (which shapes Y only
    after the horizon) leaves its forecast exactly as it was."""
    import sympy as sp

    A, Q, Y = sp.symbols("A Q Y")
    model = ud.HybridModel({A: -0.3 * A + 0.05 * (Y - 20) + 2 * Q}, {}, [Q, Y])
    frame = weather.variant_frame(weather.Variant("greensboro", "forecast", ("T",)))
    names = ["Q", "Y"]
    full = ud.Dataset.from_frame(frame, time="t", states=["A"], inputs=names, interpolation="cubic")
    starts = np.array([48.0, 120.0, 300.0])
    y0 = np.array([[2.0], [-1.0], [0.5]])
    batched = weather.forecast(model, full, starts, y0)
    tr = full.trajectories[0]
    for b, s in enumerate(starts):
        keep = (tr.u_t >= s - 3) & (tr.u_t <= s + 24)
        series = {n: tr.u[keep, i] for i, n in enumerate(names)}
        one = ud.simulate(model, y0[b], s + np.arange(25.0), inputs=series, input_times=tr.u_t[keep],
                          interpolation="cubic")  # fmt: skip
        np.testing.assert_allclose(batched[b], one, atol=1e-3)
    assert np.ptp(batched[0, :, 0]) > 1.0  # the inputs drive the state
    raw = weather.station_frame("greensboro")
    for b, s in enumerate(starts):
        changed = raw.assign(T=np.where(raw["t"] > s, raw["T"] + 5.0, raw["T"]))
        cf = weather.with_forecast_inputs(changed, weather.STATIONS["greensboro"])
        cdata = ud.Dataset.from_frame(cf, time="t", states=["A"], inputs=names, interpolation="cubic")
        np.testing.assert_array_equal(weather.forecast(model, cdata, starts[b : b + 1], y0[b : b + 1])[0], batched[b])


def test_forecast_physics_is_yesterday_plus_a_decaying_anomaly():
    """The forecast setting's physics dA/dt = -k A for the departure A = T - Y gives the temperature
    forecast T(t0 + L) = Y(t0 + L) + (T0 - Y(t0)) exp(-k L): rk4 with 4 substeps per hour matches the
    exponential to 1e-6 °C."""
    v = weather.Variant("greensboro", "forecast", ("T",))
    frame = weather.variant_frame(v)
    full = ud.Dataset.from_frame(frame, time="t", states=["A"], interpolation="cubic")
    model = weather.build_models(v, {"k": 0.15})["physics"]
    starts = weather.forecast_starts(frame, 48.0)
    grid = starts[:, None] + np.arange(25.0)[None, :]
    y0 = weather.observed_at(frame, starts, column="A")[:, None]
    pred = v.verified(weather.forecast(model, full, starts, y0), frame, grid)[..., 0]
    closed = weather.observed_at(frame, grid, column="Y") + y0 * np.exp(-0.15 * np.arange(25.0))
    np.testing.assert_allclose(pred, closed, atol=1e-6)
    np.testing.assert_allclose(pred[:, 0], weather.observed_at(frame, starts), atol=1e-9)  # starts at T0


def test_baselines_and_issue_times():
    frame = weather.variant_frame(weather.Variant("wuerzburg", "forecast", ("T",)))
    starts = weather.forecast_starts(frame, 100.0)
    assert starts[0] == 120.0 and np.all(np.mod(starts, 24.0) == 0) and starts[-1] + 24 <= frame["t"].max()
    b = weather.baselines(frame, frame.iloc[:48], starts[:2])
    obs = weather.observed_at(frame, starts[:2, None] + np.arange(25.0))
    np.testing.assert_allclose(b["persistence"], np.repeat(obs[:, :1], 25, axis=1))
    np.testing.assert_allclose(b["yesterday"], weather.observed_at(frame, starts[:2, None] - 24 + np.arange(25.0)))


# -- scores --------------------------------------------------------------------------------------------


def test_scores_against_closed_forms():
    """RMSE/bias by lead of constructed errors; SS = 1 - (1/2)² = 0.75 for halved errors, and its
    bootstrap interval collapses to the value when every day has the same ratio; SS of a forecast equal
    to its reference is 0."""
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(20, 24))
    e = 0.5 * ref
    np.testing.assert_allclose(weather.rmse_by_lead(e), np.sqrt(np.mean(e**2, axis=0)))
    np.testing.assert_allclose(weather.bias_by_lead(e + 2.0), np.mean(e, axis=0) + 2.0)
    sk = weather.mse_skill(e, ref)
    assert sk.value == pytest.approx(0.75) and sk.low == pytest.approx(0.75) and sk.high == pytest.approx(0.75)
    assert weather.mse_skill(ref, ref).value == pytest.approx(0.0)
    np.testing.assert_allclose(weather.skill_by_lead(e, ref), 0.75)
    # a forecast better on some days, worse on others: the interval brackets the value and is not empty
    mixed = ref * np.where(np.arange(20)[:, None] % 2 == 0, 0.5, 1.2)
    sk = weather.mse_skill(mixed, ref)
    assert sk.low < sk.value < sk.high
    table = weather.score_table({"persistence": ref, "yesterday": 2 * ref, "model": e})
    assert table["model"]["SS vs yesterday"].value == pytest.approx(1 - 0.25 / 4)
    assert table["model"]["RMSE +24h"] == pytest.approx(np.sqrt(np.mean(e[:, 23] ** 2)))
    with pytest.raises(DataError, match="reference"):
        weather.score_table({"model": e})


# -- the pipeline (fast) -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    """One `udesci example weather --fast --json` run shared by the tests below: (exit code, JSON, folder)."""
    import contextlib
    import io

    folder = tmp_path_factory.mktemp("weather-fast")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main(["example", "weather", "--fast", "--json", "--out", str(folder)])
    return code, json.loads(buf.getvalue()), folder


def test_weather_cli_fast(fast_run):
    """`udesci example weather --fast --json`: both settings, both state sets, every output; the exported
    model.py reproduces udesci's own solve of the discovered model (linear input interpolation in both)."""
    code, res, tmp_path = fast_run
    assert code in (0, 1)  # 1: the target is not met in a smoke run
    assert set(res["variants"]) == {"greensboro_forecast_T", "greensboro_hindcast_T", "jfk_forecast_TD"}
    for key, v in res["variants"].items():
        d = v["windows"]["1 d"]
        assert set(d["scores"]) == set(v["states"])
        for m in ("persistence", "yesterday", "climatology"):
            row = d["scores"]["T"][m]
            assert 0 < row["RMSE"] < 10 and math.isfinite(row["bias"])
            assert len(d["by_lead"]["T"][m]["rmse"]) == weather.HORIZON
        sk = d["scores"]["T"]["yesterday"]["SS vs persistence"]
        assert sk["low"] <= sk["value"] <= sk["high"]
        for suffix in ("equations.json", "equations.tex", "model.py", "by_lead.png", "forecasts.png"):
            assert (tmp_path / f"{key}_{suffix}").is_file(), (key, suffix)
    assert res["comparison"]["winners"]["greensboro"].keys() == {"regular", "gappy"}
    report = (tmp_path / "report.md").read_text()
    for text in ("FORECAST setting", "HINDCAST setting", "MSE SS vs yesterday", "clear-sky", "Deutscher Wetterdienst",
                 "](greensboro_forecast_T_forecasts.png)", "NN map", "kW/m²"):  # fmt: skip
        assert text in report, text
    # the standalone module against udesci's solve of the same discovered model
    found_model, _ = ud.load_json(tmp_path / "jfk_forecast_TD_equations.json")
    spec = importlib.util.spec_from_file_location("jfk_model", tmp_path / "jfk_forecast_TD_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    frame = weather.variant_frame(weather.Variant("jfk", "forecast", ("T", "D")))
    win = frame[(frame["t"] >= 360) & (frame["t"] <= 384)]
    inputs = {k: win[k].to_numpy() for k in mod.INPUTS}
    y0 = win[["A", "AD"]].to_numpy()[0]  # the forecast setting's models integrate the departures
    ours = mod.simulate(y0, win["t"].to_numpy(), inputs=inputs, input_times=win["t"].to_numpy())
    theirs = ud.simulate(found_model, y0, win["t"].to_numpy(), inputs=inputs, input_times=win["t"].to_numpy(),
                         interpolation="linear")  # fmt: skip
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_rebuild_and_merge_reports_of_finished_runs(fast_run, tmp_path):
    """The report is rebuilt from summary.json and forecasts.npz alone (no training); runs are joined into
    one folder, and a variant present in two parts is refused."""
    import shutil

    from udesci.pipelines.weather.reporting import merge_runs, rebuild_report

    _, res, folder = fast_run
    part = tmp_path / "part"
    shutil.copytree(folder, part)
    (part / "report.md").unlink()
    path = rebuild_report(part, command="udesci example weather --fast")
    assert "jfk_forecast_TD" in path.read_text() and "NN map" in path.read_text()
    with pytest.raises(DataError, match="summary.json"):
        rebuild_report(tmp_path / "nothing")
    joined = merge_runs(tmp_path / "joined", [part])
    summary = json.loads((tmp_path / "joined" / "summary.json").read_text())
    assert summary["variants"].keys() == res["variants"].keys() and "jfk_forecast_TD_model.py" in joined.read_text()
    assert (tmp_path / "joined" / "jfk_forecast_TD_forecasts.png").is_file()
    with pytest.raises(DataError, match="more than one part"):
        merge_runs(tmp_path / "twice", [part, part])


def test_bad_stations_and_windows():
    with pytest.raises(ConfigError, match="stations"):
        weather.run_pipeline(stations=["atlantis"], quiet=True)
    with pytest.raises(ConfigError, match="windows"):
        weather.run_variant(weather.Variant("jfk", "forecast", ("T",)), windows=(0,), quiet=True)
