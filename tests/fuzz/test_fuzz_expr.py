"""Fuzz: the safe expression parser (``udesci.parse_expression`` / ``udesci.expr.parse_expression``).

Random strings, expressions from a grammar (numbers, names, operators, allowed and forbidden calls,
attributes, subscripts, lambdas, comprehensions, f-strings, dunders), nesting a few thousand levels
deep, huge exponents and injected payloads.  Property: a ConfigError or a SymPy object of finite real
values, no hang, no marker file; a parsed value printed with ``udesci.expr.sstr`` parses back to the same
tree (exact equality).
"""

from __future__ import annotations

import pytest
import sympy as sp
from fuzz_support import (
    PROFILES,
    arithmetic_text,
    deeply_nested,
    expression_text,
    json_values,
    run_contract,
    run_property,
    spliced,
    unprintable,
)
from hypothesis import strategies as st

import udesci as ud
from udesci import expr
from udesci.errors import ConfigError

PARSERS = [ud.parse_expression, expr.parse_expression, ud.export.parse_expression]
FUNCS = {"U": sp.Function("U"), "V": sp.Function("V")}
#: Symbol sets: plain names, a Python keyword, names that shadow the constants E and pi, the time.
NAME_SETS = [("x", "y", "k"), ("x", "lambda", "for"), ("E", "pi", "x"), ("t", "alpha", "x_1")]


def symbols(names) -> dict:
    return {n: sp.Symbol(n) for n in names}


def parse(text, names=("x", "y", "k"), parser=expr.parse_expression):
    """Parse under the contract (no bug tolerated)."""
    return run_contract(parser, text, symbols(names), FUNCS)


def check_round_trip(value, names) -> None:
    """``value`` holds only what sstr can write, and sstr's text parses back to the same tree."""
    assert not unprintable(value), f"the parser returned a value sstr cannot write back: {value!r}"
    printed = expr.sstr(value, list(names))
    back = expr.parse_expression(printed, symbols(names), FUNCS)
    assert back == value, f"round trip changed {sp.srepr(value)} -> {printed!r} -> {sp.srepr(back)}"


def check_parsed(outcome, names):
    if outcome.error is not None:
        assert isinstance(outcome.error, ConfigError), f"expected ConfigError, got {outcome.error!r}"
    else:
        assert isinstance(outcome.value, sp.Basic), f"expected a SymPy object, got {outcome.value!r}"
        check_round_trip(outcome.value, names)
    return outcome


# ----------------------------------------------------------------------------------------------
# properties
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", PROFILES)
def test_random_text(profile):
    def check(example):
        text, parser = example
        found = run_contract(expr.detect_unknowns, text, ["x"])
        assert isinstance(found.value, list) and all(isinstance(n, str) for n in found.value)
        return check_parsed(parse(text, parser=parser), ("x", "y", "k"))

    strategy = st.tuples(st.one_of(st.text(max_size=80), st.text(alphabet="xyk()+-*/^.,1 eE_[]'", max_size=60)),
                         st.sampled_from(PARSERS))  # fmt: skip
    run_property(profile, "expr: random text", strategy, check, scale=2)


@pytest.mark.parametrize("profile", PROFILES)
def test_grammar_expressions(profile):
    def check(example):
        names, text = example
        return check_parsed(parse(text, names), names)

    strategy = st.one_of([st.tuples(st.just(n), expression_text(n, ("U", "V"))) for n in NAME_SETS])
    run_property(profile, "expr: grammar (all syntax)", strategy, check, scale=2)


@pytest.mark.parametrize("profile", PROFILES)
def test_arithmetic_round_trips(profile):
    def check(example):
        names, text = example
        return check_parsed(parse(text, names), names)

    strategy = st.one_of([st.tuples(st.just(n), arithmetic_text(n, ("U", "V"))) for n in NAME_SETS])
    run_property(profile, "expr: arithmetic round trip", strategy, check, scale=2)


@pytest.mark.parametrize("profile", PROFILES)
def test_injected_payloads_never_run(profile, tmp_path):
    marker = tmp_path / "udesci-fuzz-marker-expr"

    def check(text):
        outcome = run_contract(expr.parse_expression, text, symbols("xyk"), FUNCS, marker=marker)
        assert outcome.error is not None, f"a text with a payload parsed: {text!r} -> {outcome.value!r}"
        assert isinstance(outcome.error, ConfigError)
        return outcome

    run_property(profile, "expr: injected payloads", spliced(expression_text(max_leaves=8), marker), check)


@pytest.mark.parametrize("profile", PROFILES)
def test_deep_nesting(profile):
    run_property(profile, "expr: deep nesting", deeply_nested(), lambda text: check_parsed(parse(text), "xyk"))


HUGE_BASES = ["x", "x*y", "sin(x)", "2", "(1/3)", "-1", "0", "2.5", "pi", "E", "oo", "U(x)", "10**400", "(x+1)"]
HUGE_EXPONENTS = ["10**5", "10**30", "10**400", "-10**30", "2**64", "0.5", "1e308", "1e-308", "(10**30+1/2)", "x"]


@pytest.mark.parametrize("profile", PROFILES)
def test_huge_exponents(profile):
    strategy = st.lists(st.tuples(st.sampled_from(HUGE_BASES), st.sampled_from(HUGE_EXPONENTS)), min_size=1,
                        max_size=3).map(lambda terms: " + ".join(f"({b})**({e})" for b, e in terms))  # fmt: skip
    run_property(profile, "expr: huge exponents", strategy, lambda text: check_parsed(parse(text), "xyk"))


@pytest.mark.parametrize("profile", PROFILES)
def test_invalid_symbol_tables(profile):
    def check(example):
        syms, funcs = example
        return run_contract(expr.parse_expression, "x + U(x)", syms, funcs)

    entries = st.one_of(json_values(), st.builds(sp.Symbol, st.sampled_from("xy")))
    table = st.one_of(json_values(), st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), entries))
    funcs = st.one_of(st.none(), table, st.just(FUNCS), st.just({"U": sp.Symbol("U")}))
    run_property(profile, "expr: invalid symbols/functions", st.tuples(table, funcs), check)


# ----------------------------------------------------------------------------------------------
# bugs the properties above found, fixed (each test asserts the fix)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["(3*x)**(10**8)", "sqrt(3)**(10**8)"])
def test_power_of_a_non_rational_base_is_refused_fast(text):
    outcome = run_contract(expr.parse_expression, text, symbols("x"), limit=1.0)
    assert isinstance(outcome.error, ConfigError) and "exponent" in str(outcome.error)


@pytest.mark.parametrize("depth", [1, 60, 99])
def test_nested_trig_of_infinity_is_refused_fast(depth):
    # accumbounds-slow: sin(oo) was AccumBounds(-1, 1), and 60 nested sines took ~10 s in SymPy
    text = "sin(" * depth + "oo" + ")" * depth
    outcome = run_contract(expr.parse_expression, text, {}, limit=1.0)
    assert isinstance(outcome.error, ConfigError)
    assert "name 'oo' (infinity) is not allowed" in str(outcome.error)
    assert f"column {4 * depth + 1}" in str(outcome.error)


@pytest.mark.parametrize(
    "text",
    [
        "Piecewise((x, Piecewise((1, tan(x) > cos(x)), (0, True)) > 0), (y, True))",
        "Piecewise((x, Piecewise((x, x > 1), (1, True)) > 0), (1, True))",
        "Piecewise((x, 1 < 2*Piecewise((x, x > 1), (1, True))), (1, True))",
        "Eq(Piecewise((1, x > 0), (0, True)), 1)",
        "Piecewise((x, U(Piecewise((1, x > 0), (0, True))) > 0), (y, True))",
    ],
)
def test_piecewise_inside_a_condition_is_refused_fast(text):
    # piecewise-solve: SymPy rewrote such a condition (ITE) by solving inequalities, > 30 s for the first text
    outcome = run_contract(expr.parse_expression, text, symbols("xy"), FUNCS, limit=1.0)
    assert isinstance(outcome.error, ConfigError)
    assert "Piecewise inside a condition is not allowed" in str(outcome.error)


def test_piecewise_outside_conditions_still_parses():
    x = sp.Symbol("x")
    value = expr.parse_expression("Piecewise((Piecewise((x, x > 1), (1, True)), x > 0), (0, True)) + 1", {"x": x})
    assert value.subs(x, 2) == 3 and value.subs(x, 0.5) == 2 and value.subs(x, -1) == 1


@pytest.mark.parametrize("functions", [True, ["U"], "U", 3])
def test_functions_argument_is_checked(functions):
    outcome = run_contract(expr.parse_expression, "x", {"x": sp.Symbol("x")}, functions)
    assert isinstance(outcome.error, ConfigError)
    assert str(outcome.error).startswith("functions: expected None or a mapping")
    assert type(functions).__name__ in str(outcome.error)


def test_long_integer_is_printed_and_read_back():
    parsed = run_contract(expr.parse_expression, "10**4300", {})
    if parsed.ok:  # refusing the text is a fix too
        assert expr.parse_expression(expr.sstr(parsed.value), {}) == parsed.value


@pytest.mark.parametrize(
    "text",
    [
        "(x + y)/(-x)",
        "-(x + y)/x",
        "-(x + y)*y/3",
        "x - (x + y)/(-y)",
        "-2*(x - 1)*(y + 1)/(3*x)",
        "sin(-(x + y)/x)**2",
        "Piecewise((-(x + y)/x, x > 0), (1, True))",
        "pi/(4*(-pi + atan(1/141)))",
        "3*(x + y)/(4*x)",
        "Abs(-(Min(x, y - x)))",
    ],
)
def test_round_trip_keeps_the_tree(text):
    # round-trip-structure: '(x + y)/(-x)' printed '-(x + y)/x', which read back as (-x - y)/x
    value = expr.parse_expression(text, symbols("xy"))
    printed = expr.sstr(value, ["x", "y"])
    assert expr.parse_expression(printed, symbols("xy")) == value, (sp.srepr(value), printed)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("1/0", "evaluates to complex infinity (zoo"),
        ("log(0)*x", "'log(0)' evaluates to complex infinity"),
        ("x/(x - x)", "evaluates to complex infinity"),
        ("0*oo", "name 'oo' (infinity) is not allowed"),
        ("zoo", "name 'zoo' (complex infinity) is not allowed"),
        ("nan + x", "name 'nan' (an undefined value) is not allowed"),
        ("I*x", "name 'I' (the imaginary unit) is not allowed"),
        ("sqrt(-1)", "'sqrt(-1)' evaluates to the imaginary unit I"),
        ("sin(oo)", "name 'oo' (infinity) is not allowed"),
        ("1e308*10", "'1e+308 * 10' evaluates to the float 1.00000e+309, outside the double-precision range"),
        ("1e-300*1e-300", "evaluates to the float 1.00000e-600, outside the double-precision range"),
        ("10*(x + 1e308*y)", "outside the double-precision range"),
        ("sinh(1e300)", "'sinh(1e+300)' evaluates to the float 1.24930e+43429448190325185045365657(...), outside"),
        ("atan2(0, 0)", "'atan2(0, 0)' evaluates to an undefined value (nan)"),
        ("acos(pi)", "'acos(pi)' evaluates to a complex value (acos(pi), not a real number)"),
        ("log(1, acos(pi))", "'acos(pi)' evaluates to a complex value"),
        ("(-1.0)**pi", "evaluates to a complex value ((-1.0)**pi, not a real number)"),
        ("(-1)**(1/3)*x", "evaluates to a complex value ((-1)**(1/3), not a real number)"),
        ("Piecewise((x, False))", "evaluates to an undefined value (nan)"),
        ("Piecewise((x, Piecewise((x, x > 1), (1, True)) > 0), (1, True))", "Piecewise inside a condition"),
    ],
)
def test_values_that_do_not_round_trip_are_refused(text, problem):
    # unprintable-values: these parsed to zoo, nan, I, AccumBounds, ITE or Floats a double cannot hold
    outcome = run_contract(expr.parse_expression, text, symbols("xy"), FUNCS)
    assert isinstance(outcome.error, ConfigError), (text, outcome)
    assert problem in str(outcome.error) and f"expression '{text[:20]}" in str(outcome.error)


@pytest.mark.parametrize("text, value", [("1e-320", 1e-320), ("4.9e-324*1", 5e-324), ("1e-150*1e-150", 1e-300)])
def test_floats_a_double_holds_are_kept(text, value):
    parsed = expr.parse_expression(text, {})
    assert float(parsed) == value and expr.parse_expression(expr.sstr(parsed), {}) == parsed


def test_symbols_named_like_constants_take_precedence():
    names = {n: sp.Symbol(n) for n in ("oo", "nan", "I", "x")}
    value = expr.parse_expression("oo*x + nan - I", names)
    assert value == names["oo"] * names["x"] + names["nan"] - names["I"]
