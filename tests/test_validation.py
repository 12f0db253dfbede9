"""Bad input is refused where it enters (issue: validate at construction, not deep inside torch).

Each case names what was wrong in a udesci error at ``HybridModel(...)``, ``Learnable(...)`` or
``Dataset(...)``; nothing is dropped, truncated or converted silently.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sympy as sp
import torch

import udesci as ud

x, y, a = sp.symbols("x y a")
U, f = sp.Function("U"), sp.Function("f")


@pytest.mark.parametrize(
    ("rhs", "message"),
    [
        (sp.zoo * x, "constant zoo is not a finite real number"),
        (x + sp.oo, "constant oo is not a finite real number"),
        (sp.nan * x, "constant nan is not a finite real number"),
        (sp.I * x, "imaginary unit"),
        (sp.Derivative(f(x), x), "Derivative is not supported"),
        (sp.Integral(x, x), "Integral is not supported"),
        (sp.Matrix([x]), "expected a sympy expression"),
        (sp.ImmutableMatrix([x]), "not supported"),
        (sp.Gt(x, 1), "expected a scalar real SymPy expression"),
        (sp.true, "expected a scalar real SymPy expression"),
        (sp.gamma(x), "function gamma has no torch translation"),
    ],
)
def test_unsupported_right_hand_sides_are_refused_at_construction(rhs, message):
    with pytest.raises(ud.ModelError, match=message) as err:
        ud.HybridModel({x: rhs})
    assert "equation for x" in str(err.value)


def test_supported_constructs_still_build():
    model = ud.HybridModel(
        {x: sp.Piecewise((x, x > 1), (0, True)) + sp.pi * x + sp.E + sp.Max(x, 0) + sp.Rational(1, 3)}
    )
    out = model.module(torch.tensor(0.0, dtype=torch.float64), torch.tensor([[2.0]], dtype=torch.float64))
    expected = 2.0 + np.pi * 2.0 + np.e + 2.0 + 1.0 / 3.0
    torch.testing.assert_close(out, torch.tensor([[expected]], dtype=torch.float64), rtol=1e-12, atol=0)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), True, np.bool_(False), "1.0", 1 + 2j])
def test_fixed_parameters_must_be_finite_real_numbers(value):
    with pytest.raises(ud.ConfigError, match=r"params\[a\]"):
        ud.HybridModel({x: a * x}, {a: value})


def test_learnable_refuses_booleans():
    with pytest.raises(ud.ConfigError, match="boolean"):
        ud.Learnable(True)


def test_user_network_of_the_wrong_size_is_refused_at_construction():
    with pytest.raises(ud.ModelError, match=r"networks\['U'\].*\(2, 2\).*failed"):
        ud.HybridModel({x: U(x, y), y: -y}, networks={"U": torch.nn.Linear(3, 1)})
    with pytest.raises(ud.ModelError, match=r"networks\['U'\]: expected output of shape \(2, 1\).*received \(2, 3\)"):
        ud.HybridModel({x: U(x, y), y: -y}, networks={"U": torch.nn.Linear(2, 3)})
    ud.HybridModel({x: U(x, y), y: -y}, networks={"U": torch.nn.Linear(2, 1)})  # the right size builds


def test_data_refuses_complex_text_and_booleans():
    t = np.arange(4.0)
    with pytest.raises(ud.DataError, match="complex"):
        ud.Dataset(t, t + 1j)
    with pytest.raises(ud.DataError, match="received 'b' at position 1"):
        ud.Dataset(t, np.array(["1", "b", "2", "3"], dtype=object))
    with pytest.raises(ud.DataError, match="booleans"):
        ud.Dataset(t, np.array([True, False, True, True]))
    with pytest.raises(ud.DataError, match="complex"):
        ud.Dataset(t + 0j, t)


def test_frame_with_missing_trajectory_ids_is_refused_not_dropped():
    df = pd.DataFrame({"t": [0, 1, 2, 0, 1, 2.0], "x": [1, 2, 3, 4, 5, 6.0], "run": [0, 0, 0, None, None, None]})
    with pytest.raises(ud.DataError, match=r"'run'.*3 rows have no trajectory id"):
        ud.Dataset.from_frame(df, "t", ["x"], trajectory="run")


def test_frame_text_in_a_state_column_names_column_and_value():
    df = pd.DataFrame({"t": [0.0, 1.0, 2.0], "x": ["1.5", "oops", "3"]})
    with pytest.raises(ud.DataError, match=r"column 'x': expected numbers, received 'oops' at position 1"):
        ud.Dataset.from_frame(df, "t", ["x"])
    df = pd.DataFrame({"t": [0.0, 1.0, 2.0], "x": [1.5, None, 3.0]})  # a missing value stays a missing value
    assert np.isnan(ud.Dataset.from_frame(df, "t", ["x"]).trajectories[0].y[1, 0])


def test_datetime_time_column_needs_a_unit_and_converts_exactly():
    df = pd.DataFrame({"t": pd.date_range("2021-07-01 06:00", periods=4, freq="30min"), "x": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(ud.DataError, match="time_unit='h'"):
        ud.Dataset.from_frame(df, "t", ["x"])
    data = ud.Dataset.from_frame(df, "t", ["x"], time_unit="h")
    np.testing.assert_array_equal(data.trajectories[0].t, [0.0, 0.5, 1.0, 1.5])
    assert data.time_unit == "h" and data.time_origin == "2021-07-01 06:00:00"
    with pytest.raises(ud.DataError, match="time_unit"):
        ud.Dataset.from_frame(df, "t", ["x"], time_unit="fortnight")
