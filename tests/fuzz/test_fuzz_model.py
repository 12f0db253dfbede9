"""Fuzz: ``udesci.HybridModel(equations, params, inputs=...)`` and its compiled field.

Equations are SymPy trees built by hypothesis over the states, parameters, an input and the time, with
unknown functions (applied correctly and incorrectly), supported and unsupported functions, and
constants including nan, oo, zoo, I, huge and tiny numbers; or strings from the expression grammar; or
values that are not expressions at all.  Parameter values include bools, None, strings, NaN, arrays
and tensors.  Property: a ModelError/ConfigError, or a model whose ``model.module(t, y)`` evaluates on a
small batch (finite or not) with the right shape.
"""

from __future__ import annotations

import warnings
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple

import numpy as np
import pytest
import sympy as sp
import torch
from fuzz_support import (
    PROFILES,
    Hang,
    arithmetic_text,
    evaluate_field,
    expression_text,
    run_contract,
    run_property,
    time_limit,
)
from hypothesis import reject
from hypothesis import strategies as st
from sympy.utilities.exceptions import SymPyDeprecationWarning

import udesci as ud

x, y, a, b, u, t = sp.symbols("x y a b u t")
U, V, W = sp.Function("U"), sp.Function("V"), sp.Function("W")

#: Bugs a random model may run into; each has a strict-xfail reproducer below.
MODEL_BUGS = ()

CONSTANTS = [
    sp.Integer(0), sp.Integer(1), sp.Integer(-1), sp.Integer(2), sp.Rational(1, 3), sp.Float(0.5), sp.Float(1e-300),
    sp.Float(1e300), sp.Float("1e-400"), sp.Integer(10**20), sp.Integer(10**400), sp.nan, sp.oo, -sp.oo, sp.zoo,
    sp.I, sp.pi, sp.E, sp.GoldenRatio, sp.EulerGamma, sp.S.Half, sp.Float(-0.0), sp.Integer(-(10**30)),
]  # fmt: skip
SYMBOLS = [x, y, a, b, u, t, sp.Symbol("c"), sp.Symbol("x", positive=True)]
SPECIAL = [
    U(x), U(x, y), V(y), W(t), U(u), V(x, y, t), U(x + 1), U(), U(a), sp.Function("U", real=True)(x),
    sp.Function("x")(y), x ** (10**30), (-1) ** sp.Rational(1, 3), sp.acos(2),
]  # fmt: skip
UNARY = [sp.sin, sp.cos, sp.tan, sp.exp, sp.log, sp.sqrt, sp.Abs, sp.sign, sp.floor, sp.ceiling, sp.erf, sp.tanh,
         sp.asin, sp.acos, sp.atan, sp.sinh, sp.cosh, sp.gamma, sp.re, sp.Heaviside, sp.LambertW]  # fmt: skip
#: Exponents of powers; a power's base is a leaf, so powers never nest (SymPy would evaluate huge numbers).
EXPONENTS = [2, 3, -1, -2, sp.Rational(1, 2), sp.Rational(1, 3), sp.Float(0.5), x]


class Node(NamedTuple):
    """A SymPy expression to build: ``op`` applied to ``args`` (Nodes or SymPy objects).

    The strategy draws these recipes and the property builds them under its time limit: SymPy's own
    constructors can be slow (a Piecewise solves its conditions), which must not stall data generation.
    """

    op: str
    args: tuple


BUILDERS = {
    "add": sp.Add, "mul": sp.Mul, "pow": sp.Pow, "min": sp.Min, "max": sp.Max, "atan2": sp.atan2, "mod": sp.Mod,
    "eq": sp.Eq, "derivative": lambda e: sp.Derivative(e, x),
    "piecewise": lambda p, q, r: sp.Piecewise((p, q > r), (r, True)),
    "piecewise2": lambda p, q: sp.Piecewise((p, sp.And(x > 0, y < 1)), (q, sp.Not(x < 2))),
    **{f.__name__: f for f in UNARY},
}  # fmt: skip


def realize(value):
    """The SymPy expression of a :class:`Node` (other values as they are); 0 where SymPy refuses a node."""
    if not isinstance(value, Node):
        return value
    args = [realize(a) for a in value.args]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", SymPyDeprecationWarning)  # e.g. Mul of a boolean
            return BUILDERS[value.op](*args)
    except (
        TypeError,
        ValueError,
        ArithmeticError,
        AttributeError,
        RecursionError,
        NotImplementedError,
        SymPyDeprecationWarning,
    ):
        return sp.Integer(0)


def built(value):
    """``realize(value)``, rejecting the example when SymPy takes more than a second to build it."""
    try:
        with time_limit(1.0):
            return realize(value)
    except Hang:
        reject()


def sympy_trees():
    """Strategy: recipes (:class:`Node`) of SymPy expressions over the model's symbols, unknowns,
    supported and unsupported functions and odd constants."""
    leaves = st.one_of(st.sampled_from(CONSTANTS), st.sampled_from(SYMBOLS), st.sampled_from(SPECIAL),
                       st.floats(allow_nan=False, allow_infinity=False, width=32).map(sp.Float))  # fmt: skip

    def node(op, *parts):
        return st.tuples(*parts).map(lambda args: Node(op, tuple(args)))

    def extend(inner):
        return st.one_of(
            st.lists(inner, min_size=2, max_size=3).map(lambda args: Node("add", tuple(args))),
            st.lists(inner, min_size=2, max_size=3).map(lambda args: Node("mul", tuple(args))),
            node("pow", leaves, st.sampled_from(EXPONENTS)),
            st.sampled_from([f.__name__ for f in UNARY]).flatmap(lambda name: node(name, inner)),
            st.sampled_from(["min", "max", "atan2", "mod", "eq"]).flatmap(lambda name: node(name, inner, inner)),
            node("piecewise", inner, inner, inner),
            node("piecewise2", inner, inner),
            node("derivative", inner),
        )

    return st.recursive(leaves, extend, max_leaves=8)


def equation_values():
    """Strategy: right-hand sides: SymPy trees, strings, numbers, and values that are no expression."""
    return st.one_of(
        sympy_trees(),
        sympy_trees(),
        arithmetic_text(("x", "y", "a", "b", "u", "t"), ("U", "V"), max_leaves=6),
        expression_text(("x", "y", "a", "t"), ("U",), max_leaves=5),
        st.sampled_from(
            [
                None,
                True,
                1,
                2.5,
                float("nan"),
                1 + 2j,
                np.float64(3.0),
                [x],
                (x,),
                {"x": 1},
                b"x",
                sp.Matrix([x]),
                sp.Tuple(x, y),
                sp.true,
                "x",
                "",
            ]
        ),  # fmt: skip
    )


def parameter_values():
    """Strategy: parameter values: numbers, edge cases, Learnable, and things that are not numbers."""
    return st.one_of(
        st.floats(),
        st.integers(-5, 5),
        st.sampled_from([True, None, "1.0", float("nan"), float("inf"), 10**400, 1j, np.float64(2.0), np.nan,
                         np.array(1.0), np.array([1.0, 2.0]), torch.tensor(2.0), torch.tensor([1.0]), Fraction(1, 3),
                         Decimal("1.5"), Decimal("nan"), sp.Float(2), sp.Integer(3), sp.I, sp.nan, sp.Symbol("b")]),
        st.floats(allow_nan=False, allow_infinity=False).map(ud.Learnable),
    )  # fmt: skip


EQUATION_VALUES = equation_values()
PARAMETERS = st.dictionaries(st.sampled_from([a, b, "a", "b", sp.Symbol("c"), "t", x]), parameter_values(), max_size=3)


@st.composite
def model_specs(draw):
    states = draw(st.sampled_from([[x], [x, y], ["x", "y"], [x, "y"]]))
    equations = {s: draw(EQUATION_VALUES) for s in states}
    params = draw(PARAMETERS)
    inputs = draw(st.sampled_from([(), (u,), ["u"], (u, sp.Symbol("w"))]))
    options = draw(st.fixed_dictionaries({}, optional={
        "width": st.sampled_from([1, 4, 0, -1, 2.5, True, "8"]),
        "depth": st.sampled_from([1, 2, 0, None]),
        "activation": st.sampled_from(["tanh", "relu", "gelu", "bogus", None, ["tanh"]]),
        "dtype": st.sampled_from([torch.float32, torch.float64, torch.int64, "float64"]),
        "time": st.sampled_from([t, "t", "tau", x, "1t", sp.Symbol("s")]),
        "states": st.sampled_from([None, ["x"], ["y", "x"], [x, y, sp.Symbol("z")]]),
    }))  # fmt: skip
    options.setdefault("width", 4)
    return equations, params, inputs, options


def build_and_evaluate(spec):
    equations, params, inputs, options = spec
    model = ud.HybridModel({k: built(v) for k, v in equations.items()}, params, inputs=inputs, **options)
    out = evaluate_field(model)
    assert out.dtype == model.module.dtype
    return model


@pytest.mark.parametrize("profile", PROFILES)
def test_random_models(profile):
    run_property(
        profile,
        "model: random HybridModel",
        model_specs(),
        lambda spec: run_contract(build_and_evaluate, spec, known=MODEL_BUGS),
    )


@pytest.mark.parametrize("profile", PROFILES)
def test_string_models_match_sympy_models(profile):
    """A model from strings and one from the parsed SymPy expressions evaluate to the same field."""

    def check(texts):
        names = {n: sp.Symbol(n) for n in ("x", "y", "a", "b", "t")}
        functions = {"U": U, "V": V}
        parsed = [run_contract(ud.parse_expression, text, names, functions) for text in texts]
        if not all(p.ok for p in parsed):
            return parsed[0] if not parsed[0].ok else parsed[1]
        params = {a: 1.5, b: ud.Learnable(-0.5)}
        torch.manual_seed(0)
        from_text = run_contract(ud.HybridModel, {"x": texts[0], "y": texts[1]}, params, width=3, known=MODEL_BUGS)
        torch.manual_seed(0)
        from_sympy = run_contract(
            ud.HybridModel, {x: parsed[0].value, y: parsed[1].value}, params, width=3, known=MODEL_BUGS
        )
        assert (from_text.ok, from_text.error is None) == (from_sympy.ok, from_sympy.error is None), (
            from_text,
            from_sympy,
        )
        if not from_text.ok or not from_sympy.ok:
            return from_text
        left = run_contract(evaluate_field, from_text.value)
        right = run_contract(evaluate_field, from_sympy.value)
        if left.ok and right.ok:
            torch.testing.assert_close(left.value, right.value, equal_nan=True)
        return left

    text = arithmetic_text(("x", "y", "a", "b", "t"), ("U", "V"), max_leaves=6)
    run_property(profile, "model: strings vs SymPy", st.tuples(text, text), check)


# ----------------------------------------------------------------------------------------------
# bugs the properties above found, fixed: regression tests (the contract, no bug tolerated)
# ----------------------------------------------------------------------------------------------
def contract(equations, params=None, **options):
    """Build and evaluate under the contract, no bug tolerated."""
    return run_contract(build_and_evaluate, (equations, params, options.pop("inputs", ()), options), limit=10)


@pytest.mark.parametrize(
    "rhs", [sp.Integer(10) ** 400 * x, x ** (10**30), sp.sin(sp.Integer(10) ** 1000), sp.Integer(10) ** 400]
)
def test_known_huge_constant_breaks_the_field(rhs):
    contract({x: rhs})


def test_known_huge_int_parameter():
    contract({x: a * x}, {a: 10**400})


@pytest.mark.parametrize("rhs", [sp.Integer(10) ** 4300 * x, "10**4300*x"])
def test_known_long_integer_constant(rhs):
    contract({"x": rhs})


def test_known_unknown_with_assumptions():
    contract({x: -x + sp.Function("U", real=True)(x)})


@pytest.mark.parametrize(
    "rhs",
    [
        (-1) ** sp.Rational(1, 3),
        sp.Min(x, x + (-1) ** sp.Rational(1, 3)),
        sp.Piecewise((0, x > x + (-1) ** sp.Rational(1, 3)), (x, True)),
        sp.Float(-1.0) ** sp.pi,  # SymPy cannot tell whether it is real: decided numerically
        "x + (-1.0)**pi",
    ],
    ids=["constant", "Min", "Piecewise", "float-power", "text"],
)
def test_known_complex_constant_without_i(rhs):
    outcome = contract({x: rhs})
    assert isinstance(outcome.error, (ud.ModelError, ud.ConfigError)), outcome
    assert "not real" in str(outcome.error) or "complex value" in str(outcome.error)


def test_known_activation_list():
    contract({x: U(x)}, activation=["tanh"])


def test_known_inputs_none():
    contract({x: -x}, inputs=None)


def test_known_huge_network_width():
    contract({x: U(x)}, width=10**12)


@pytest.mark.parametrize(
    "rhs",
    ["-(Piecewise((x, x > asin(a)), (y, True)))", "-(Min(x, asin(a)))", "Piecewise((x, x > sqrt(a - 2)), (1, True))"],
)
def test_known_fixed_parameter_makes_a_comparison_complex(rhs):
    # was bug fixed-parameter-complex (SymPy's TypeError/ValueError from the substitution of fixed values)
    outcome = contract({"x": rhs, "y": "-y"}, {a: 1.5})
    assert isinstance(outcome.error, ud.ModelError) and "not real" in str(outcome.error)


def test_fixed_parameter_making_a_term_complex_is_a_model_error():
    outcome = contract({"x": "x + asin(a)", "y": "-y"}, {a: 1.5})
    assert isinstance(outcome.error, ud.ModelError) and "not real" in str(outcome.error)


def test_known_power_of_numbers_beyond_float_range_is_a_model_error():
    # found by the thorough profile: (1e300)**pi passed the constant checks and raised OverflowError in
    # Python's float pow when the field was evaluated
    outcome = contract({x: 2 * sp.Float(1e300) ** sp.pi, y: -y})
    assert isinstance(outcome.error, ud.ModelError) and "orders of magnitude" in str(outcome.error)
