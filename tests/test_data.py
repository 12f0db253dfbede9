"""Datasets, trajectories and input interpolation (udesci.data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.interpolate import CubicSpline

import udesci as ud
from udesci.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread")

# InputInterpolator evaluates the same piecewise polynomials as np.interp / scipy (it takes scipy's
# spline coefficients) in Horner form in float64; the values are O(1), so the only differences are
# rounding (~1e-16).  1e-12 leaves four orders of margin.
INTERP_TOL = 1e-12


# ------------------------------------------------------------------------------------------------
# construction and validation


def test_single_trajectory_and_mask():
    t = np.array([0.0, 0.5, 1.25, 3.0])
    y = np.array([[1.0, np.nan], [2.0, 0.5], [np.nan, np.nan], [4.0, 1.0]])
    data = ud.Dataset(t, y, states=["x", "v"])
    assert data.n_trajectories == len(data) == 1
    tr = data.trajectories[0]
    np.testing.assert_array_equal(tr.t, t)
    np.testing.assert_array_equal(tr.y, y)  # NaN kept in place (assert_array_equal treats NaN == NaN)
    np.testing.assert_array_equal(tr.mask, [[True, False], [True, True], [False, False], [True, True]])
    assert tr.u.shape == (4, 0)
    assert data.state_names == ["x", "v"] and data.input_names == []


def test_one_dimensional_y_is_one_column():
    data = ud.Dataset([0.0, 1.0, 2.0], [1.0, 2.0, 3.0])
    assert data.trajectories[0].y.shape == (3, 1)
    assert data.state_names is None


def test_plain_lists_are_one_trajectory():
    """Lists of numbers are one trajectory's arrays (not one trajectory per number)."""
    data = ud.Dataset([0.0, 1.0, 2.0], [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], inputs=[0.0, 0.5, 1.0],
                      input_names=["S"], input_times=[0.0, 1.0, 2.0])  # fmt: skip
    assert data.n_trajectories == 1
    tr = data.trajectories[0]
    np.testing.assert_array_equal(tr.y, [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    np.testing.assert_array_equal(tr.u[:, 0], [0.0, 0.5, 1.0])
    # a list of arrays is one array per trajectory, each with its own grid
    data = ud.Dataset([np.arange(3.0), np.arange(5.0) / 2], [np.zeros(3), np.ones(5)])
    assert data.n_trajectories == 2 and [tr.t.size for tr in data.trajectories] == [3, 5]


@pytest.mark.parametrize("times", [[0.0, 1.0, 1.0, 2.0], [0.0, 2.0, 1.0, 3.0]], ids=["repeated", "decreasing"])
def test_time_not_strictly_increasing(times):
    with pytest.raises(DataError, match=r"t: times must be strictly increasing, received .* at positions 1, 2"):
        ud.Dataset(times, np.zeros(4))


def test_time_with_nan():
    with pytest.raises(DataError, match=r"t: times must be finite, received nan at position 2"):
        ud.Dataset([0.0, 1.0, np.nan, 3.0], np.zeros(4))


def test_fewer_than_two_time_points():
    with pytest.raises(DataError, match="expected at least two time points, received 1"):
        ud.Dataset([0.0], [[1.0]])


def test_time_not_one_dimensional():
    with pytest.raises(DataError, match=r"expected a 1-D array of times, received shape \(2, 2\)"):
        ud.Dataset(np.zeros((2, 2)), np.zeros(2))


def test_y_rows_must_match_times():
    with pytest.raises(
        DataError, match=r"y \(t\): expected shape \(3, n_states\) to match 3 time points, received \(4, 2\)"
    ):
        ud.Dataset([0.0, 1.0, 2.0], np.zeros((4, 2)))


def test_inconsistent_columns_between_trajectories():
    with pytest.raises(DataError, match=r"y \(trajectory 1\): expected 2 columns like trajectory 0, received 3"):
        ud.Dataset([[0.0, 1.0], [0.0, 2.0]], [np.zeros((2, 2)), np.zeros((2, 3))])


def test_one_y_per_time_array():
    with pytest.raises(DataError, match="expected one y array per time array, received 2 and 1"):
        ud.Dataset([np.arange(3.0), np.arange(4.0)], [np.zeros(3)])


def test_state_names_must_match_columns():
    with pytest.raises(DataError, match=r"states: expected 2 names \(one per column of y\), received 1: \['x'\]"):
        ud.Dataset([0.0, 1.0], np.zeros((2, 2)), states=["x"])
    with pytest.raises(DataError, match=r"states: names must be unique, received \['x', 'x'\]"):
        ud.Dataset([0.0, 1.0], np.zeros((2, 2)), states=["x", "x"])


def test_infinite_or_all_missing_observations():
    with pytest.raises(DataError, match="observations must be finite or NaN"):
        ud.Dataset([0.0, 1.0], [1.0, np.inf])
    with pytest.raises(DataError, match="every observation is NaN"):
        ud.Dataset([0.0, 1.0], [np.nan, np.nan])


def test_inputs_wrong_shape_or_missing_names():
    t = np.arange(4.0)
    with pytest.raises(DataError, match=r"inputs \(t\): expected shape \(4, 1\), received \(3, 1\)"):
        ud.Dataset(t, np.zeros(4), inputs=np.zeros(3), input_names=["S"])
    with pytest.raises(DataError, match=r"inputs \(t\): expected shape \(4, 2\), received \(4, 3\)"):
        ud.Dataset(t, np.zeros(4), inputs=np.zeros((4, 3)), input_names=["S", "R"])
    with pytest.raises(DataError, match="input_names: expected the names of the input columns"):
        ud.Dataset(t, np.zeros(4), inputs=np.zeros(4))
    with pytest.raises(DataError, match="inputs must be finite"):
        ud.Dataset(t, np.zeros(4), inputs=[0.0, 1.0, np.nan, 2.0], input_names=["S"])
    with pytest.raises(DataError, match=r"inputs: expected one array per trajectory \(2\), received 1"):
        ud.Dataset([t, t], [np.zeros(4), np.zeros(4)], inputs=[np.zeros(4)], input_names=["S"])


def test_inputs_on_their_own_time_grid():
    data = ud.Dataset([0.0, 1.0, 2.0], np.zeros(3), inputs=np.arange(5.0), input_names=["S"],
                      input_times=np.linspace(-1.0, 3.0, 5))  # fmt: skip
    tr = data.trajectories[0]
    np.testing.assert_array_equal(tr.u_t, np.linspace(-1.0, 3.0, 5))
    np.testing.assert_array_equal(tr.u[:, 0], np.arange(5.0))


def test_bad_interpolation_kind():
    with pytest.raises(DataError, match=r"interpolation: expected one of \('linear', 'cubic'\), received 'spline'"):
        ud.Dataset([0.0, 1.0], [1.0, 2.0], interpolation="spline")


# ------------------------------------------------------------------------------------------------
# from_frame


def _frame():
    return pd.DataFrame(
        {
            "run": ["b", "b", "b", "a", "a", "a", "a"],
            "time": [0.0, 0.4, 1.0, 0.0, 0.1, 0.7, 2.0],
            "x": [1.0, 2.0, np.nan, 5.0, 6.0, 7.0, 8.0],
            "S": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )


def test_from_frame_with_trajectory_column():
    data = ud.Dataset.from_frame(_frame(), time="time", states=["x"], trajectory="run", inputs=["S"])
    assert data.n_trajectories == 2
    b, a = data.trajectories  # order of first appearance, not sorted
    np.testing.assert_array_equal(b.t, [0.0, 0.4, 1.0])
    np.testing.assert_array_equal(a.t, [0.0, 0.1, 0.7, 2.0])
    np.testing.assert_array_equal(b.y[:, 0], [1.0, 2.0, np.nan])
    np.testing.assert_array_equal(b.mask[:, 0], [True, True, False])
    np.testing.assert_array_equal(a.u[:, 0], [3.0, 4.0, 5.0, 6.0])
    np.testing.assert_array_equal(a.u_t, a.t)
    assert data.state_names == ["x"] and data.input_names == ["S"]


def test_from_frame_single_trajectory_and_string_states():
    df = pd.DataFrame({"t": [0.0, 1.0, 3.0], "x": [1.0, 2.0, 3.0], "q": [0.0, np.nan, 1.0]})
    data = ud.Dataset.from_frame(df, time="t", states="x")
    assert data.n_trajectories == 1 and data.state_names == ["x"]
    np.testing.assert_array_equal(data.trajectories[0].y[:, 0], [1.0, 2.0, 3.0])


def test_from_frame_unknown_columns():
    df = pd.DataFrame({"t": [0.0, 1.0], "x": [1.0, 2.0]})
    with pytest.raises(DataError, match=r"unknown column\(s\) \['q'\]; the frame has columns \['t', 'x'\]"):
        ud.Dataset.from_frame(df, time="t", states=["x", "q"])
    with pytest.raises(DataError, match=r"unknown column\(s\) \['time', 'run'\]"):
        ud.Dataset.from_frame(df, time="time", states=["x"], trajectory="run")


def test_from_frame_time_errors_name_the_trajectory():
    df = _frame()
    df.loc[5, "time"] = np.nan
    with pytest.raises(DataError, match=r"column 'time' \(trajectory 'a'\): times must be finite"):
        ud.Dataset.from_frame(df, time="time", states=["x"], trajectory="run")
    df = _frame()
    df.loc[1, "time"] = 0.0
    with pytest.raises(DataError, match=r"column 'time' \(trajectory 'b'\): times must be strictly increasing"):
        ud.Dataset.from_frame(df, time="time", states=["x"], trajectory="run")


# ------------------------------------------------------------------------------------------------
# window


def test_window_keeps_points_in_range_and_inputs_whole():
    data = ud.Dataset.from_frame(_frame(), time="time", states=["x"], trajectory="run", inputs=["S"])
    sub = data.window(0.1, 1.0)
    b, a = sub.trajectories
    np.testing.assert_array_equal(b.t, [0.4, 1.0])
    np.testing.assert_array_equal(a.t, [0.1, 0.7])
    np.testing.assert_array_equal(a.y[:, 0], [6.0, 7.0])
    np.testing.assert_array_equal(a.u_t, [0.0, 0.1, 0.7, 2.0])  # inputs kept whole
    np.testing.assert_array_equal(a.u[:, 0], [3.0, 4.0, 5.0, 6.0])
    assert sub.state_names == ["x"] and sub.input_names == ["S"]
    assert len(data.trajectories[1].t) == 4  # the original is unchanged


def test_window_with_too_few_points():
    data = ud.Dataset([0.0, 1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(DataError, match="expected at least two time points, received 1"):
        data.window(1.5, 5.0)


# ------------------------------------------------------------------------------------------------
# InputInterpolator


def _series():
    rng = np.random.default_rng(3)
    t0 = np.sort(np.concatenate([[0.0, 4.0], rng.uniform(0.0, 4.0, 9)]))  # 11 irregular samples on [0, 4]
    t1 = np.sort(np.concatenate([[1.0, 2.5], rng.uniform(1.0, 2.5, 4)]))  # 6 samples on [1, 2.5]
    v0 = np.stack([np.sin(t0), t0**2], axis=1)
    v1 = np.stack([np.exp(-t1), np.cos(3 * t1)], axis=1)
    return [t0, t1], [v0, v1]


def _evaluate(interp, t, index):
    return interp(torch.as_tensor(t, dtype=torch.float64), torch.as_tensor(index)).numpy()


@pytest.mark.parametrize("kind", ["linear", "cubic"])
def test_interpolator_matches_reference_inside_range(kind):
    times, values = _series()
    interp = ud.InputInterpolator(times, values, kind, torch.float64)
    rng = np.random.default_rng(4)
    for k, (tk, vk) in enumerate(zip(times, values, strict=True)):
        # random points plus the samples themselves (interpolation must reproduce them)
        tq = np.concatenate([rng.uniform(tk[0], tk[-1], 50), tk])
        got = _evaluate(interp, tq, np.full(tq.size, k))
        if kind == "linear":
            ref = np.stack([np.interp(tq, tk, vk[:, j]) for j in range(2)], axis=1)
        else:
            ref = CubicSpline(tk, vk, bc_type="natural", axis=0)(tq)
        np.testing.assert_allclose(got, ref, rtol=INTERP_TOL, atol=INTERP_TOL)


@pytest.mark.parametrize("kind", ["linear", "cubic"])
def test_interpolator_holds_end_values_outside_range(kind):
    times, values = _series()
    interp = ud.InputInterpolator(times, values, kind, torch.float64)
    tq = np.array([-5.0, -1e-3, 4.5, 100.0, 0.0, 3.0])
    index = np.array([0, 0, 0, 0, 1, 1])
    got = _evaluate(interp, tq, index)
    expected = np.stack([values[0][0], values[0][0], values[0][-1], values[0][-1], values[1][0], values[1][-1]])
    np.testing.assert_allclose(got, expected, rtol=INTERP_TOL, atol=INTERP_TOL)


def test_interpolator_mixed_batch_and_scalar_time():
    times, values = _series()
    interp = ud.InputInterpolator(times, values, "linear", torch.float64)
    index = np.array([1, 0, 1, 0])
    tq = np.array([1.3, 2.2, 2.0, 0.05])
    got = _evaluate(interp, tq, index)
    for row, (tt, k) in enumerate(zip(tq, index, strict=True)):
        ref = [np.interp(tt, times[k], values[k][:, j]) for j in range(2)]
        np.testing.assert_allclose(got[row], ref, rtol=INTERP_TOL, atol=INTERP_TOL)
    # a scalar time is broadcast to every batch element
    got = _evaluate(interp, 2.0, index)
    np.testing.assert_allclose(got[0], [np.interp(2.0, times[1], values[1][:, j]) for j in range(2)],
                               rtol=INTERP_TOL, atol=INTERP_TOL)  # fmt: skip


def test_cubic_with_two_samples_is_linear():
    interp = ud.InputInterpolator([np.array([0.0, 2.0])], [np.array([[1.0], [3.0]])], "cubic", torch.float64)
    got = _evaluate(interp, np.array([0.5, 1.0]), np.zeros(2, dtype=int))
    np.testing.assert_allclose(got[:, 0], [1.5, 2.0], rtol=INTERP_TOL, atol=INTERP_TOL)


def test_interpolator_bad_kind():
    with pytest.raises(DataError, match="received 'quadratic'"):
        ud.InputInterpolator([np.array([0.0, 1.0])], [np.zeros((2, 1))], "quadratic")
