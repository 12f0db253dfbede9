"""Fuzz: ``udesci.Dataset(...)`` and ``Dataset.from_frame(...)``.

Random pandas frames with random dtypes (int, float with NaN/inf, object with strings/None/numbers,
bool, complex, datetimes with and without time zone, nullable extension types, categories), trajectory
columns with NaN ids and mixed types, unsorted and duplicate times, single rows and duplicate column
names; and random arrays and lists for the constructor.  Property: a DataError, or a Dataset whose
number of points equals the number of input rows (nothing dropped silently), with strictly increasing
finite times, no infinite observation, and windows and reprs that keep the contract too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fuzz_support import PROFILES, run_contract, run_property
from hypothesis import strategies as st

import udesci as ud

COLUMN_KINDS = [
    "increasing", "float", "int", "bool", "complex", "text", "mixed", "datetime", "datetime-tz", "timedelta",
    "Int64", "Float64", "boolean", "string", "category", "huge-int",
]  # fmt: skip


@st.composite
def column(draw, kind: str, n: int):
    """A column of ``n`` values of the given kind (a list or a pandas array)."""
    size = {"min_size": n, "max_size": n}
    if kind == "increasing":
        steps = draw(st.lists(st.floats(1e-6, 1e3), **size))
        start = draw(st.floats(-1e6, 1e6))
        return list(start + np.cumsum(steps)) if n else []
    if kind == "float":
        return np.array(draw(st.lists(st.floats(), **size)), dtype=float)
    if kind == "observed":  # finite values, some missing
        cells = st.one_of(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.just(np.nan))
        return np.array(draw(st.lists(cells, **size)), dtype=float)
    if kind == "int":
        return np.array(draw(st.lists(st.integers(-(10**6), 10**6), **size)), dtype=np.int64)
    if kind == "bool":
        return np.array(draw(st.lists(st.booleans(), **size)), dtype=bool)
    if kind == "complex":
        return np.array(draw(st.lists(st.complex_numbers(max_magnitude=1e6), **size)), dtype=complex)
    if kind == "text":
        cells = st.one_of(st.text(max_size=4), st.none(), st.floats().map(str), st.integers().map(str))
        return pd.Series(draw(st.lists(cells, **size)), dtype=object)
    if kind == "mixed":
        cells = st.one_of(st.floats(), st.integers(-5, 5), st.none(), st.text(max_size=3), st.booleans(),
                          st.just(b"1"), st.just([1]), st.just(1 + 1j))  # fmt: skip
        return pd.Series(draw(st.lists(cells, **size)), dtype=object)
    if kind in ("datetime", "datetime-tz"):
        seconds = draw(st.lists(st.one_of(st.integers(0, 10**8), st.none()), **size))
        stamps = pd.to_datetime([None if s is None else 1_600_000_000 + s for s in seconds], unit="s")
        return stamps.tz_localize("UTC") if kind == "datetime-tz" else stamps
    if kind == "timedelta":
        return pd.to_timedelta(draw(st.lists(st.integers(0, 10**6), **size)), unit="s")
    if kind == "Int64":
        return pd.array(draw(st.lists(st.one_of(st.integers(-100, 100), st.none()), **size)), dtype="Int64")
    if kind == "Float64":
        return pd.array(draw(st.lists(st.one_of(st.floats(-1e6, 1e6), st.none()), **size)), dtype="Float64")
    if kind == "boolean":
        return pd.array(draw(st.lists(st.one_of(st.booleans(), st.none()), **size)), dtype="boolean")
    if kind == "string":
        return pd.array(draw(st.lists(st.one_of(st.text(max_size=3), st.none()), **size)), dtype="string")
    if kind == "category":
        return pd.Categorical(draw(st.lists(st.sampled_from([0.5, 1.5, 2.5, np.nan]), **size)))
    assert kind == "huge-int"
    return pd.Series(draw(st.lists(st.sampled_from([1, 2.5, 10**400, -(10**400), None]), **size)), dtype=object)


@st.composite
def trajectory_ids(draw, n: int):
    size = {"min_size": n, "max_size": n}
    kind = draw(st.sampled_from(["int", "int", "text", "float-nan", "none", "mixed", "unhashable"]))
    if kind == "int":
        return draw(st.lists(st.integers(0, 2), **size))
    if kind == "text":
        return pd.Series(draw(st.lists(st.sampled_from(["a", "b"]), **size)), dtype=object)
    if kind == "float-nan":
        return draw(st.lists(st.sampled_from([0.0, 1.0, np.nan]), **size))
    if kind == "none":
        return pd.Series(draw(st.lists(st.sampled_from([1, None]), **size)), dtype=object)
    if kind == "mixed":
        return pd.Series(draw(st.lists(st.sampled_from([1, "1", 1.0, True]), **size)), dtype=object)
    return pd.Series(draw(st.lists(st.sampled_from([[1], [2], {"a": 1}]), **size)), dtype=object)


@st.composite
def frame_calls(draw):
    """A frame and the ``from_frame`` arguments for it: half of them clean (most give a dataset)."""
    clean = draw(st.booleans())
    n = draw(st.integers(2, 12) if clean else st.one_of(st.integers(0, 3), st.integers(0, 12)))
    kinds = ["observed"] if clean else ["observed", "float", "float", *COLUMN_KINDS]
    time_kind = "increasing" if clean else draw(st.sampled_from(["increasing"] * 4 + COLUMN_KINDS))
    columns = {"t": draw(column(time_kind, n))}
    for name in ("x", "y"):
        columns[name] = draw(column(draw(st.sampled_from(kinds)), n))
    columns["u"] = draw(column(draw(st.sampled_from(["increasing", "float", "int", "text"])), n))
    trajectory = draw(st.sampled_from([None, None, "r"] if clean else [None, None, "r", "x", "t", "missing"]))
    if trajectory == "r":
        columns["r"] = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)) if clean else draw(trajectory_ids(n))
    df = pd.DataFrame(columns)
    if not clean and draw(st.integers(0, 9)) == 0:  # duplicate column names
        df.columns = draw(st.sampled_from([["t", "x", "x", "u"], ["t", "t", "y", "u"], ["t", "x", "y", "x"]])) + list(
            df.columns[4:]
        )
    states = [["x"], ["x", "y"], ["y", "x"], "x"]
    states = draw(st.sampled_from(states if clean else [*states, ["z"], ["x", "t"], [], ["x", "x"]]))
    kwargs = {"time": "t", "states": states}
    if trajectory is not None:
        kwargs["trajectory"] = trajectory
    if not clean:
        kwargs.update(draw(st.fixed_dictionaries({}, optional={
            "inputs": st.sampled_from([(), ["u"], "u", ["x"], ["missing"]]),
            "interpolation": st.sampled_from(["linear", "cubic", "quadratic", None]),
            "time_unit": st.sampled_from(["h", "s", "min", "d", "weeks", None]),
        })))  # fmt: skip
    return df, kwargs


def check_dataset(ds, rows: int):
    """The dataset keeps every row: points == rows; times finite and increasing; no inf observed."""
    assert isinstance(ds, ud.Dataset)
    points = sum(tr.t.size for tr in ds.trajectories)
    assert points == rows, f"{rows} rows became {points} points"
    for tr in ds.trajectories:
        assert tr.t.ndim == 1 and tr.t.size >= 2 and np.all(np.isfinite(tr.t)) and np.all(np.diff(tr.t) > 0)
        assert tr.y.shape[0] == tr.t.size and not np.isinf(tr.y).any()
        assert tr.u.shape[0] == tr.u_t.size and np.all(np.isfinite(tr.u))
    assert run_contract(repr, ds).ok


@pytest.mark.parametrize("profile", PROFILES)
def test_random_frames(profile):
    def check(call):
        df, kwargs = call
        outcome = run_contract(ud.Dataset.from_frame, df, **kwargs)
        if outcome.ok:
            check_dataset(outcome.value, len(df))
        return outcome

    run_property(profile, "data: Dataset.from_frame", frame_calls(), check)


def array_like():
    """Strategy: times or observations: lists, arrays of random shapes and dtypes, odd values."""
    floats = st.lists(st.floats(), min_size=0, max_size=8)
    increasing = st.lists(st.floats(1e-3, 10), min_size=2, max_size=8).map(lambda s: np.cumsum(s))
    return st.one_of(
        increasing,
        increasing.map(list),
        floats.map(np.array),
        floats,
        st.lists(floats, max_size=3),
        st.lists(st.lists(st.floats(-5, 5), min_size=2, max_size=2), min_size=2, max_size=6).map(np.array),
        st.sampled_from([None, 3.0, "abc", [], [[]], np.zeros((2, 2, 2)), np.array(["1", "2"]), np.array([1 + 1j, 2]),
                         np.array([True, False]), [1, "2"], [[1, 2], [3]], {"a": 1}]),
    )  # fmt: skip


ARRAY_LIKE = array_like()


@st.composite
def constructor_calls(draw):
    several = draw(st.booleans())
    if several:
        k = draw(st.integers(0, 3))
        t = draw(st.lists(ARRAY_LIKE, min_size=k, max_size=k))
        y = draw(st.lists(ARRAY_LIKE, min_size=k, max_size=k + draw(st.integers(0, 1))))
    else:
        t, y = draw(ARRAY_LIKE), draw(ARRAY_LIKE)
    kwargs = draw(st.fixed_dictionaries({}, optional={
        "states": st.sampled_from([None, ["x"], ["x", "y"], ["x", "x"], "xy", [1, 2]]),
        "inputs": ARRAY_LIKE,
        "input_names": st.sampled_from([None, ["u"], ["u", "v"], "u"]),
        "input_times": ARRAY_LIKE,
        "interpolation": st.sampled_from(["linear", "cubic", "spline", 3]),
    }))  # fmt: skip
    return t, y, kwargs


def rows_of(t) -> int:
    several = isinstance(t, (list, tuple)) and len(t) > 0 and all(np.ndim(tk) >= 1 for tk in t)
    return sum(np.size(tk) for tk in t) if several else np.size(t)


@pytest.mark.parametrize("profile", PROFILES)
def test_random_constructor_arguments(profile):
    def check(call):
        t, y, kwargs = call
        outcome = run_contract(ud.Dataset, t, y, **kwargs)
        if outcome.ok:
            check_dataset(outcome.value, rows_of(t))
        return outcome

    run_property(profile, "data: Dataset(...)", constructor_calls(), check)


@pytest.mark.parametrize("profile", PROFILES)
def test_random_windows(profile):
    def check(call):
        steps, start, end = call
        times = np.cumsum(steps)
        ds = ud.Dataset(times, np.arange(len(steps), dtype=float))
        start = times[start % len(times)] if isinstance(start, int) else start  # an int picks an observed time
        end = times[end % len(times)] if isinstance(end, int) else end
        outcome = run_contract(ds.window, start, end)
        if outcome.ok:
            check_dataset(outcome.value, int(np.sum((times >= start) & (times <= end))))
        return outcome

    bound = st.one_of(st.integers(0, 20), st.floats(-5, 60), st.floats())
    strategy = st.tuples(st.lists(st.floats(1e-3, 10), min_size=2, max_size=10), bound, bound)
    run_property(profile, "data: Dataset.window", strategy, check)


# ----------------------------------------------------------------------------------------------
# bugs the properties above found, fixed: regression tests (the contract, no bug tolerated)
# ----------------------------------------------------------------------------------------------
def from_frame(df, **kwargs):
    """``Dataset.from_frame`` under the contract, no bug tolerated; a dataset must keep every row."""
    outcome = run_contract(ud.Dataset.from_frame, df, limit=10, **{"time": "t", "states": ["x"], **kwargs})
    if outcome.ok:
        check_dataset(outcome.value, len(df))


@pytest.mark.parametrize(
    "times",
    [
        pd.array(["0", "1"], dtype="str"),
        pd.array([0, 1], dtype="Int64"),
        pd.array([0.0, 1.0], dtype="Float64"),
        pd.to_datetime(["2020-01-01", "2020-01-02"]).tz_localize("UTC"),
        pd.period_range("2020-01", periods=2, freq="M"),
    ],
    ids=["str", "Int64", "Float64", "datetime-tz", "period"],
)
def test_known_time_column_of_an_extension_dtype(times):
    from_frame(pd.DataFrame({"t": times, "x": [1.0, 2.0]}), time_unit="h")


def test_known_huge_int_cell():
    from_frame(pd.DataFrame({"t": [0.0, 1.0], "x": pd.Series([10**400, 1], dtype=object)}))


def test_known_unhashable_trajectory_ids():
    df = pd.DataFrame({"t": [0.0, 1.0, 0.0, 1.0], "x": [1.0, 2.0, 3.0, 4.0], "r": [[1], [1], [2], [2]]})
    from_frame(df, trajectory="r")


@pytest.mark.parametrize("role", ["time", "trajectory", "state"])
def test_known_duplicate_column_names(role):
    if role == "time":
        from_frame(pd.DataFrame([[0.0, 0.0, 1.0], [1.0, 1.0, 2.0]], columns=["t", "t", "x"]))
        return
    df = pd.DataFrame([[0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 2.0, 0.0]], columns=["t", "x", "x", "u"])
    if role == "trajectory":
        from_frame(df, trajectory="x")
    else:
        from_frame(df, states=["x", "t"])


def test_known_no_state_columns():
    from_frame(pd.DataFrame({"t": [0.0, 1.0], "x": [1.0, 2.0]}), states=[])


def test_known_ragged_time_list():
    run_contract(ud.Dataset, [[[], [0.0]]], [np.array([1.0, 2.0])], limit=10)


@pytest.mark.parametrize(
    "call",
    [
        ({"t": [0.0, 1.0], "x": [1.0, 2.0]}, {}),
        (None, {}),
        (pd.DataFrame({"t": [0.0, 1.0], "x": [1.0, 2.0]}), {"time": ["t"]}),
        (pd.DataFrame({"t": [0.0, 1.0], "x": [1.0, 2.0]}), {"time_unit": ["h"]}),
        (pd.DataFrame({"t": [0.0, 1.0], "x": [1.0, 2.0]}), {"states": None}),
    ],
    ids=["dict", "None", "time-list", "time_unit-list", "states-None"],
)
def test_known_argument_types_are_not_checked(call):
    df, kwargs = call
    run_contract(ud.Dataset.from_frame, df, limit=10, **{"time": "t", "states": ["x"], **kwargs})


def test_input_times_of_another_count_than_the_trajectories():
    # found by the thorough profile: input_times=[] with one trajectory raised IndexError
    t, y = [np.array([1.0, 2.0])], [np.array([1.0, 2.0])]
    outcome = run_contract(ud.Dataset, t, y, inputs=np.array([1.0, 2.0]), input_names=["u"], input_times=[])
    assert isinstance(outcome.error, ud.DataError)
    assert str(outcome.error) == "input_times: expected one array per trajectory (1), received 0."
