"""Expressions as text, safely: the one parser every string goes through, and the printers.

Reading never evaluates text: :func:`parse_expression` walks the Python syntax
tree of a string and admits only arithmetic, numbers, the given symbols and a
fixed table of functions, building the SymPy objects itself.  It is used for
equations given as strings (API, TOML, JSON, CLI), derived data columns and
extra library terms.

What a string may cost is capped (the names are limits of :mod:`udesci.limits`,
raised deliberately with the environment variable ``UDESCI_LIMITS``):

* ``expression_length`` — characters (default 20000);
* ``expression_depth`` — nesting levels: each operator chain, call, unary sign
  or power is a level, redundant brackets are not (default 100; Python's own
  parser refuses more than 200 nested brackets whatever the limit);
* ``exponent`` — every number in an exponent is at most this in magnitude
  (default 1000), except an exact power of an exact number such as ``2**2000``,
  which SymPy computes: its result may have at most ``number_bits`` bits
  (default 14000, so that every number can still be printed and exported), as
  may any exact number the expression builds (products);
* ``expansion_terms`` — the expression expanded (``sympy.expand``, as reports
  and checks do) may have at most this many terms (default 10000), and numbers
  of at most ``number_bits`` bits; both are bounded from the expression's shape
  before anything is expanded.

So ``sqrt(2)**(10**12)``, ``2**(10**12)``, ``(1 + x)**(10**9)`` or a chain of
100000 unary signs are refused in milliseconds with a
:class:`~udesci.errors.ConfigError` that names the limit.

An expression stands for finite real values, so the parser also refuses, with
a :class:`~udesci.errors.ConfigError` naming the part and what it evaluates
to: the names ``oo``, ``zoo``, ``nan`` and ``I``; any part that evaluates to
complex infinity (``1/0``, ``log(0)``), an undefined value (``atan2(0, 0)``,
``Piecewise((x, False))``) or a complex constant (``sqrt(-1)``, ``acos(2)``,
``(-1)**(1/3)``); floats a double cannot hold (``1e308*10``,
``1e-300*1e-300``); and a Piecewise inside a condition (SymPy would rewrite the
condition by solving inequalities, for seconds or minutes).

The printers write SymPy expressions back as text that round-trips exactly:
:func:`sstr` (SymPy syntax, floats printed with ``repr``) and
:class:`CodePrinter` (NumPy/SciPy code).  For :func:`sstr` that is exact
equality of trees: ``parse_expression(sstr(e)) == e`` for every ``e`` the
parser returns.  To that end a product is built as one SymPy ``Mul`` of its
factors, as SymPy built the products it prints (``-(x + y)/x`` reads as
``Mul(-1, x + y, 1/x)``, not as ``(-x - y)/x``), and the result is settled: a
node SymPy left unevaluated is evaluated again from its arguments.
"""

from __future__ import annotations

import ast
import keyword
import math
import re
import sys
from collections.abc import Mapping
from typing import NamedTuple

import sympy as sp
from sympy.core.function import UndefinedFunction
from sympy.logic.boolalg import ITE, Boolean
from sympy.printing.numpy import SciPyPrinter
from sympy.printing.str import StrPrinter

from . import limits
from .errors import ConfigError, describe

#: Default caps (the caps in effect are ``udesci.limits.current("expression_length")`` etc.).
MAX_EXPRESSION_LENGTH = limits.LIMITS["expression_length"].default
MAX_DEPTH = limits.LIMITS["expression_depth"].default
MAX_POWER_BITS = limits.LIMITS["number_bits"].default

#: Function names :func:`parse_expression` accepts, with (SymPy class, min args, max args).
FUNCTIONS: dict[str, tuple[type, int, int | None]] = {
    "sin": (sp.sin, 1, 1), "cos": (sp.cos, 1, 1), "tan": (sp.tan, 1, 1),
    "asin": (sp.asin, 1, 1), "acos": (sp.acos, 1, 1), "atan": (sp.atan, 1, 1), "atan2": (sp.atan2, 2, 2),
    "sinh": (sp.sinh, 1, 1), "cosh": (sp.cosh, 1, 1), "tanh": (sp.tanh, 1, 1),
    "exp": (sp.exp, 1, 1), "log": (sp.log, 1, 2), "sqrt": (sp.sqrt, 1, 1),
    "Abs": (sp.Abs, 1, 1), "sign": (sp.sign, 1, 1), "Min": (sp.Min, 1, None), "Max": (sp.Max, 1, None),
    "erf": (sp.erf, 1, 1), "floor": (sp.floor, 1, 1), "ceiling": (sp.ceiling, 1, 1),
    "Piecewise": (sp.Piecewise, 1, None), "Eq": (sp.Eq, 2, 2), "Ne": (sp.Ne, 2, 2),
}  # fmt: skip

#: Names of constants :func:`parse_expression` accepts (symbols of the same name take precedence).
CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}

#: Names of SymPy's non-finite and complex constants, refused with a reason (symbols of the same name
#: take precedence): an expression udesci reads stands for finite real values.
NON_FINITE_NAMES: dict[str, str] = {
    "oo": "infinity", "zoo": "complex infinity", "nan": "an undefined value", "I": "the imaginary unit",
    "inf": "infinity", "Infinity": "infinity", "NaN": "an undefined value",
}  # fmt: skip

_COMPARE = {ast.Gt: sp.Gt, ast.GtE: sp.Ge, ast.Lt: sp.Lt, ast.LtE: sp.Le}
_BUILD_ERRORS = (TypeError, ValueError, ArithmeticError, AttributeError, RecursionError, MemoryError)


# ----------------------------------------------------------------------------------------------
# safe parsing
# ----------------------------------------------------------------------------------------------
def short(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters for messages."""
    return text if len(text) <= limit else text[: limit - 5] + "(...)"


def listing(names, limit: int = 30) -> str:
    """Sorted, quoted list of ``names`` for messages (at most ``limit`` shown)."""
    names = sorted(names)
    if len(names) > limit:
        return "[" + ", ".join(repr(n) for n in names[:limit]) + f", ... ({len(names) - limit} more)]"
    return "[" + ", ".join(repr(n) for n in names) + "]"


def _bits(number) -> int:
    """Bits of an exact rational number's numerator or denominator, whichever is larger."""
    return max(abs(number.p), abs(number.q)).bit_length()


def _number_text(number) -> str:
    """A number for messages: itself if short, else its size (huge ints cannot even be printed)."""
    if number.is_Rational and _bits(number) > 64:
        return f"a number of {_bits(number)} bits"
    return str(number)


class _Caps(NamedTuple):
    """The limits one parse runs under (read once from :mod:`udesci.limits`)."""

    depth: int
    number_bits: int
    exponent: int
    expansion_terms: int

    @classmethod
    def current(cls) -> _Caps:
        return cls(*(limits.current(n) for n in ("expression_depth", "number_bits", "exponent", "expansion_terms")))


class _TooLarge(Exception):
    """A subexpression over a cap, found by :func:`_expansion`: ``(problem, limit name)``."""


def _comb_capped(n: int, k: int, cap: int) -> int:
    """``math.comb(n, k)``, or ``cap + 1`` when that is larger (decided from log-gamma, in O(1))."""
    k = min(k, n - k)
    if k <= 0:
        return 1
    log_comb = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    if log_comb > math.log(cap) + 1:
        return cap + 1
    return min(math.comb(n, k), cap + 1)


def _power_size(terms: int, bits: int, exp, cap: int) -> tuple[int, int]:
    """Terms and number bits of ``base**exp`` expanded, for a base of ``terms`` and ``bits`` expanded."""
    n = int(abs(exp))  # expand multiplies out the integer part of a rational power
    out_terms = 1 if terms == 1 else _comb_capped(terms + n - 1, n, cap)
    return out_terms, n * (bits + terms.bit_length())  # coefficients: the base's to the n, times at most terms**n


def _expansion(expr, caps: _Caps, seen: dict) -> tuple[int, int]:
    """Upper bounds on the terms and number bits of ``sympy.expand(expr)``, from its shape alone.

    Raises :class:`_TooLarge` for the first subexpression (innermost first) over
    ``caps.expansion_terms`` terms or ``caps.number_bits`` bits; ``seen`` caches shared
    subexpressions.
    """
    if expr in seen:
        return seen[expr]
    if getattr(expr, "is_Rational", False):
        out = (1, _bits(expr))
    elif not expr.args:
        out = (1, 0)  # symbols, floats, constants, True/False
    else:
        parts = [_expansion(a, caps, seen) for a in expr.args]
        cap = caps.expansion_terms
        if expr.is_Add:
            terms = min(sum(t for t, _ in parts), cap + 1)
            bits = max(b for _, b in parts) + terms.bit_length()
        elif expr.is_Mul:
            terms = 1
            for t, _ in parts:
                terms = min(terms * t, cap + 1)
            bits = sum(b for _, b in parts)
        elif expr.is_Pow and expr.exp.is_Rational and abs(expr.exp) >= 1:
            terms, bits = _power_size(*parts[0], expr.exp, cap)
        else:  # a call or a symbolic power: one term; its arguments expand inside it
            terms, bits = 1, max(b for _, b in parts)
        if terms > cap:
            raise _TooLarge(f"expanded, it would have more than {cap} terms", "expansion_terms")
        if bits > caps.number_bits:
            raise _TooLarge(f"expanded, it would hold a number of about {bits} bits", "number_bits")
        out = (terms, bits)
    seen[expr] = out
    return out


def is_complex_constant(node) -> bool:
    """Whether ``node`` is a constant expression whose value is not real, e.g. ``(-1)**(1/3)`` or ``acos(2)``.

    SymPy's assumptions decide where they can; where they cannot (``(-1.0)**pi``), the value is
    computed to 15 digits and counts as complex if it has an imaginary part.

    Parameters
    ----------
    node : sympy.Basic

    Returns
    -------
    bool
        False for atoms (numbers, symbols; the imaginary unit ``I`` itself is not counted here),
        for expressions with free symbols and for constants that cannot be evaluated numerically.
    """
    if node.is_Atom or not getattr(node, "is_number", False):
        return False
    real = node.is_extended_real
    if real is None:  # SymPy cannot tell: decide numerically
        try:
            approx = node.evalf(15, chop=True)
        except _BUILD_ERRORS:
            return False
        return bool(approx.is_number) and approx.has(sp.I)
    return real is False


def _rebuilt(node, memo: dict):
    """``node`` rebuilt bottom-up: each node evaluated again from its rebuilt arguments (``memo``: done ones)."""
    if not node.args:
        return node
    if node not in memo:
        memo[node] = node.func(*[_rebuilt(a, memo) for a in node.args])
    return memo[node]


def _settled(value, passes: int = 3):
    """``value`` rebuilt (:func:`_rebuilt`) until that changes nothing, at most ``passes`` times.

    SymPy's evaluation can leave a node that evaluating its own arguments again would not give
    (``Abs(-Min(x, y - x))`` holds ``-(x - y)`` as an unevaluated product): printed, such a node
    would read back as another tree.  The result has every node equal to ``node.func(*node.args)``,
    so :func:`sstr` of it parses back to itself.
    """
    for _ in range(passes):
        try:
            new = _rebuilt(value, {})
        except _BUILD_ERRORS:
            return value
        if new == value:
            return value
        value = new
    return value


def _value_problem(node) -> str | None:
    """Why one node of a built expression is not a finite real value :func:`sstr` can write back, or None.

    Refused: SymPy's non-finite numbers (``zoo`` from a division by zero or ``log(0)``, ``nan`` from
    ``atan2(0, 0)`` or a Piecewise without a true case, ``oo``), the imaginary unit (``sqrt(-1)``),
    ranges (``AccumBounds``), SymPy's rewrite of nested conditions (``ITE``) and floats outside the
    double-precision range (``1e308*10``, ``1e-300*1e-300``: a double cannot hold them, so they would
    not read back as themselves).
    """
    if node is sp.S.ComplexInfinity:  # not a Number in SymPy
        return "complex infinity (zoo: a division by zero or a pole such as log(0))"
    if node.is_Number:
        if node is sp.S.NaN:
            return "an undefined value (nan)"
        if node.is_infinite:
            return f"infinity ({node})"
        if node.is_Float:
            value = float(node)
            if not math.isfinite(value) or sp.Float(value) != node:
                shown = short(str(sp.Float(node, 6)), 40)  # str: format() of a huge exponent fails
                return (
                    f"the float {shown}, outside the double-precision range (a double holds "
                    f"magnitudes up to {sys.float_info.max:.3g}, and from {sys.float_info.min:.3g} down only "
                    "with fewer digits)"
                )
        return None
    if node is sp.I:
        return "the imaginary unit I (a complex value, e.g. sqrt(-1))"
    if is_complex_constant(node):
        return f"a complex value ({short(str(node), 40)}, not a real number)"
    if isinstance(node, sp.AccumBounds):
        return f"a range of values ({short(str(node), 40)})"
    if isinstance(node, ITE):
        return "a rewritten condition (ITE)"
    return None


def _first_problem(value, checked: set) -> str | None:
    """The :func:`_value_problem` of the first offending node of ``value``, or None.

    ``checked`` holds the subexpressions already found fine; they are skipped (so checking every
    node of a tree as it is built costs one visit per new node).
    """
    stack = [value]
    while stack:
        node = stack.pop()
        if node in checked:
            continue
        problem = _value_problem(node)
        if problem is not None:
            return problem
        checked.add(node)
        stack.extend(node.args)
    return None


def _unary_run(text: str) -> int:
    """The longest run of unary signs (``- - + ~ x``) in ``text``, found by one scan of its characters.

    Python's parser needs memory and stack in proportion to such a run, so it is
    measured before parsing.
    """
    longest = run = 0
    operand_next = True  # at the start, after an operator or an opening bracket
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in "+-~":
            if operand_next:
                run += 1
                longest = max(longest, run)
            else:
                operand_next, run = True, 0
        elif c in "*/%<>=&|^!@,([{":
            operand_next, run = True, 0
        elif c in ")]}":
            operand_next, run = False, 0
        else:  # a name, a number (1e-5: the sign follows an operand) or a quote
            operand_next, run = False, 0
            while i + 1 < n and (text[i + 1].isalnum() or text[i + 1] in "._"):
                i += 1
        i += 1
    return longest


class _Builder:
    """Walks an ``ast`` tree of a whitelisted expression and builds SymPy objects."""

    def __init__(self, text: str, symbols: dict, functions: dict, aliases: dict, where: str | None, caps: _Caps):
        self.text = text
        self.symbols = symbols
        self.functions = functions
        self.aliases = aliases  # placeholder name -> original (for keyword-named symbols)
        self.caps = caps
        self.checked: set = set()  # subexpressions found finite (see check_value)
        head = f"{where}: " if where else ""
        self.prefix = f"{head}expression {short(text)!r}"

    def fail(self, node, problem: str, expected: str):
        col = getattr(node, "col_offset", None)
        at = f" at column {col + 1}" if col is not None else ""
        raise ConfigError(f"{self.prefix}: {problem}{at}; {expected}.")

    def fail_limit(self, node, problem: str, expected: str, name: str):
        """:meth:`fail` for a value over the limit ``name``; the message names the limit and how to raise it."""
        self.fail(node, problem, f"{expected} ({limits.note(name)})")

    def check_number(self, node, value) -> None:
        """Refuse an exact number (or a product's exact coefficient) of more than ``number_bits`` bits."""
        coeff = value.as_coeff_Mul()[0] if isinstance(value, sp.Expr) else None
        if coeff is not None and coeff.is_Rational and _bits(coeff) > self.caps.number_bits:
            self.fail_limit(
                node,
                f"the product is an exact number of {_bits(coeff)} bits, too large",
                f"expected at most {self.caps.number_bits} bits",
                "number_bits",
            )

    def check_power(self, node, base, exp) -> None:
        """Refuse ``base**exp`` before SymPy computes it, if it would compute (or later expand) something huge.

        An exact power of an exact number is computed now: its result may have at most
        ``number_bits`` bits.  Otherwise every finite number in the exponent may be at
        most ``exponent`` in magnitude (``sqrt(2)**N`` becomes ``2**(N/2)``, ``(1+x)**N``
        expands to N+1 terms, ``2**(x + N)`` to ``2**x * 2**N``).
        """
        if base.is_Number and base in (0, 1, -1):
            return
        if base.is_Rational and exp.is_Rational:
            bits = math.log2(max(abs(base.p), abs(base.q))) * abs(exp.p) / exp.q
            if bits > self.caps.number_bits:
                self.fail_limit(
                    node,
                    f"power {_number_text(base)}**{_number_text(exp)} is too large to evaluate exactly "
                    f"(about {bits:.0f} bits)",
                    f"expected a result of at most {self.caps.number_bits} bits",
                    "number_bits",
                )
            return
        for number in (exp,) if exp.is_Number else exp.atoms(sp.Number):
            if (number.is_Rational or number.is_Float) and abs(number) > self.caps.exponent:
                self.fail_limit(
                    node,
                    f"exponent {_number_text(number)} is too large",
                    f"expected numbers of magnitude at most {self.caps.exponent} in an exponent",
                    "exponent",
                )
        if exp.is_Rational and abs(exp) >= 1:
            # SymPy distributes an integer power over a product ((2**50000*x)**1000): bound it first
            try:
                cap = self.caps.expansion_terms
                terms, bits = _power_size(*_expansion(base, self.caps, {}), exp, cap)
                if terms > cap:
                    raise _TooLarge(f"the power, expanded, would have more than {cap} terms", "expansion_terms")
                if bits > self.caps.number_bits:
                    raise _TooLarge(f"the power would hold a number of about {bits} bits", "number_bits")
            except _TooLarge as err:
                problem, name = err.args
                self.fail_limit(node, problem, "expected a smaller power", name)

    def expect_names(self) -> str:
        syms = [self.aliases.get(n, n) for n in self.symbols]
        return (
            f"expected one of symbols {listing(syms)}, constants {listing(CONSTANTS)} or a call of "
            f"functions {listing([*FUNCTIONS, *self.functions])}"
        )

    # arithmetic operands must be expressions, conditions must be booleans
    def expr(self, node, depth: int) -> sp.Expr:
        value = self.build(node, depth)
        if not isinstance(value, sp.Expr):
            self.fail(node, f"condition {value} is used as a number", "expected an arithmetic expression")
        return value

    def cond(self, node, depth: int) -> Boolean:
        value = self.build(node, depth)
        if not isinstance(value, Boolean):
            self.fail(node, f"{value} is used as a condition", "expected a comparison, True/False, & | ~ or Eq/Ne")
        return value

    def check_value(self, node, value) -> None:
        """Refuse a value that is not finite and real, or that a double cannot hold (see :func:`_value_problem`)."""
        problem = _first_problem(value, self.checked)
        if problem is not None:
            self.fail(
                node,
                f"{short(ast.unparse(node), 40)!r} evaluates to {problem}",
                "expected an expression of finite real values",
            )

    def check_condition_operands(self, node, operands) -> None:
        """Refuse a Piecewise inside a comparison: SymPy would rewrite the condition by solving inequalities
        (seconds to minutes even for short texts)."""
        for operand in operands:
            if operand.has(sp.Piecewise):
                self.fail(
                    node,
                    "Piecewise inside a condition is not allowed",
                    "expected conditions comparing expressions without Piecewise (write the cases as more "
                    "(expression, condition) pairs of one Piecewise)",
                )

    def build(self, node, depth: int = 0):
        value = self.build_node(node, depth)
        if not isinstance(node, (ast.Constant, ast.Name)):  # leaves are finite by construction
            self.check_value(node, value)
        return value

    def build_node(self, node, depth: int):
        if depth > self.caps.depth:
            self.fail_limit(
                node,
                f"expression nested more than {self.caps.depth} levels deep",
                "expected a flatter expression",
                "expression_depth",
            )
        d = depth + 1
        try:
            if isinstance(node, ast.Constant):
                return self.constant(node)
            if isinstance(node, ast.Name):
                return self.name(node)
            if isinstance(node, ast.BinOp):
                return self.binop(node, d)
            if isinstance(node, ast.UnaryOp):
                if isinstance(node.op, ast.USub):
                    return -self.expr(node.operand, d)
                if isinstance(node.op, ast.UAdd):
                    return self.expr(node.operand, d)
                if isinstance(node.op, ast.Invert):
                    return sp.Not(self.cond(node.operand, d))
                self.fail(node, f"operator {type(node.op).__name__} is not allowed", "expected unary - or + or ~")
            if isinstance(node, ast.Compare):
                if len(node.ops) != 1:
                    self.fail(node, "chained comparison is not allowed", "expected a single comparison a < b")
                op = type(node.ops[0])
                if op not in _COMPARE:
                    self.fail(
                        node,
                        f"comparison {op.__name__} is not allowed",
                        "expected one of < <= > >= (write Eq(a, b) or Ne(a, b) for equality)",
                    )
                operands = (self.expr(node.left, d), self.expr(node.comparators[0], d))
                self.check_condition_operands(node, operands)
                return _COMPARE[op](*operands)
            if isinstance(node, ast.Call):
                return self.call(node, d)
        except ConfigError:
            raise
        except _BUILD_ERRORS as err:
            self.fail(
                node,
                f"cannot build {type(node).__name__} ({type(err).__name__}: {short(str(err))})",
                "expected a well-formed SymPy expression",
            )
        what = {
            ast.Attribute: "attribute access",
            ast.Subscript: "subscript",
            ast.Lambda: "lambda",
            ast.Starred: "starred expression",
            ast.NamedExpr: "assignment expression",
            ast.JoinedStr: "f-string",
            ast.BoolOp: "and/or (use & and |)",
            ast.Tuple: "tuple",
            ast.List: "list",
            ast.Dict: "dict",
            ast.Set: "set",
            ast.IfExp: "if-else expression",
        }
        label = what.get(type(node), type(node).__name__)
        if isinstance(node, ast.Attribute):
            label = f"attribute access '.{node.attr}'"
        self.fail(
            node,
            f"{label} is not allowed",
            "expected numbers, symbols, + - * / **, comparisons and calls of allowed functions",
        )

    def constant(self, node: ast.Constant):
        value = node.value
        if isinstance(value, bool):
            return sp.true if value else sp.false
        if isinstance(value, int):
            return sp.Integer(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                self.fail(node, f"non-finite number {value!r}", "expected a finite int or float literal")
            return sp.Float(value)
        self.fail(
            node,
            f"constant {short(repr(value), 30)} ({type(value).__name__}) is not allowed",
            "expected an int or float literal",
        )

    def name(self, node: ast.Name):
        name = node.id
        if name.startswith("__"):
            self.fail(node, f"name {name!r} is not allowed (dunder names never are)", self.expect_names())
        if name in self.symbols:
            return self.symbols[name]
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name in NON_FINITE_NAMES:
            self.fail(
                node,
                f"name {name!r} ({NON_FINITE_NAMES[name]}) is not allowed",
                f"an expression stands for finite real values; {self.expect_names()}",
            )
        self.fail(node, f"name {name!r} is not allowed", self.expect_names())

    def binop(self, node: ast.BinOp, d: int):
        op = node.op
        if isinstance(op, (ast.Add, ast.Sub)):
            # flatten the left-nested chain a + b - c + ... without recursion
            parts, cur = [], node
            while isinstance(cur, ast.BinOp) and isinstance(cur.op, (ast.Add, ast.Sub)):
                parts.append((cur.op, cur.right))
                cur = cur.left
            terms = [self.expr(cur, d)]
            for part_op, part in reversed(parts):
                value = self.expr(part, d)
                terms.append(-value if isinstance(part_op, ast.Sub) else value)
            return sp.Add(*terms)
        if isinstance(op, (ast.Mult, ast.Div)):
            factors: list = []
            self.factors(node, d, False, factors)
            bits = sum(_bits(c) for c in (f.as_coeff_Mul()[0] for f in factors) if c.is_Rational)
            if bits > self.caps.number_bits:  # the exact coefficient of the product, before it is computed
                self.fail_limit(
                    node,
                    f"the product is an exact number of up to {bits} bits, too large",
                    f"expected at most {self.caps.number_bits} bits",
                    "number_bits",
                )
            value = sp.Mul(*factors)
            self.check_number(node, value)
            return value
        if isinstance(op, ast.Pow):
            base, exp = self.expr(node.left, d), self.expr(node.right, d)
            self.check_power(node, base, exp)
            return base**exp
        if isinstance(op, (ast.BitAnd, ast.BitOr)):
            left, right = self.cond(node.left, d), self.cond(node.right, d)
            return sp.And(left, right) if isinstance(op, ast.BitAnd) else sp.Or(left, right)
        self.fail(
            node,
            f"operator {type(op).__name__} is not allowed",
            "expected one of + - * / ** (and & | between conditions)",
        )

    def factors(self, node, d: int, invert: bool, out: list) -> None:
        """Append the factors of the product chain ``node`` (``a*b/c*...``) to ``out``, divisors as ``1/f``.

        A product is built as one SymPy ``Mul`` of all its factors, as SymPy builds the products
        :func:`sstr` prints: ``-(x + y)/x`` is ``Mul(-1, x + y, 1/x)`` and ``pi/(4*(x + 1))`` is
        ``Mul(pi, 1/4, 1/(x + 1))``.  Multiplying step by step would not give these trees back, since
        SymPy distributes a number over a sum in a product of two (``-(x + y)`` is ``-x - y``).  So a
        leading minus is a factor -1, and a divisor that is itself a product divides factor by factor.
        """
        if d > self.caps.depth:
            self.build_node(node, d)  # raises the nesting error
        parts, cur = [], node
        while isinstance(cur, ast.BinOp) and isinstance(cur.op, (ast.Mult, ast.Div)):
            parts.append((cur.op, cur.right))
            cur = cur.left
        if isinstance(cur, ast.UnaryOp) and isinstance(cur.op, ast.USub):
            out.append(sp.S.NegativeOne)
            cur = cur.operand
        operands = [(False, cur), *((isinstance(o, ast.Div), part) for o, part in reversed(parts))]
        for divides, part in operands:
            inverse = invert != divides
            if divides and isinstance(part, ast.BinOp) and isinstance(part.op, (ast.Mult, ast.Div)):
                self.factors(part, d + 1, inverse, out)
                continue
            value = self.expr(part, d)
            if inverse:
                self.check_power(part, value, sp.S.NegativeOne)
                value = sp.Pow(value, -1)
            out.append(value)

    def call(self, node: ast.Call, d: int):
        if not isinstance(node.func, ast.Name):
            label = f"'.{node.func.attr}'" if isinstance(node.func, ast.Attribute) else type(node.func).__name__
            self.fail(
                node,
                f"call of {label} is not allowed",
                f"expected a call of one of functions {listing([*FUNCTIONS, *self.functions])}",
            )
        name = node.func.id
        if name.startswith("__") or (name not in self.functions and name not in FUNCTIONS):
            self.fail(
                node,
                f"name {name!r} is not allowed as a function",
                f"expected one of symbols {listing([self.aliases.get(n, n) for n in self.symbols])} or "
                f"functions {listing([*FUNCTIONS, *self.functions])}",
            )
        if node.keywords:
            kw = node.keywords[0]
            self.fail(
                kw,
                f"keyword argument {(kw.arg or '**')!r} in call of {name} is not allowed",
                "expected positional arguments only",
            )
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                self.fail(
                    arg, f"starred argument in call of {name} is not allowed", "expected positional arguments only"
                )
        if name in self.functions:
            if not node.args:
                self.fail(node, f"unknown function {name} called without arguments", "expected its arguments")
            return self.functions[name](*[self.expr(a, d) for a in node.args])
        func, lo, hi = FUNCTIONS[name]
        n = len(node.args)
        if n < lo or (hi is not None and n > hi):
            count = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            self.fail(node, f"{name} called with {n} arguments", f"expected {count}")
        if name in ("Eq", "Ne"):
            operands = [self.expr(a, d) for a in node.args]
            self.check_condition_operands(node, operands)
            return func(*operands)
        if name == "Piecewise":
            pieces = []
            for arg in node.args:
                if not isinstance(arg, ast.Tuple) or len(arg.elts) != 2:
                    self.fail(arg, "Piecewise argument is not a pair", "expected (expression, condition) pairs")
                pieces.append((self.expr(arg.elts[0], d), self.cond(arg.elts[1], d)))
            return sp.Piecewise(*pieces)
        return func(*[self.expr(a, d) for a in node.args])


def _keyword_aliases(names) -> dict[str, str]:
    """Placeholder name -> name, for the ``names`` that are Python keywords (``lambda``)."""
    names = list(names)
    taken = set(names)
    aliases: dict[str, str] = {}
    for n in names:
        if keyword.iskeyword(n) and n not in ("True", "False", "None"):
            alias = f"_kw_{n}"
            while alias in taken:
                alias += "_"
            taken.add(alias)
            aliases[alias] = n
    return aliases


def _with_aliases(text: str, aliases: dict[str, str]) -> str:
    """``text`` with the keyword names of ``aliases`` replaced by their placeholders."""
    if not aliases:
        return text
    back = {v: k for k, v in aliases.items()}
    return re.sub(r"\b(" + "|".join(map(re.escape, back)) + r")\b", lambda m: back[m.group(1)], text)


def is_symbol_name(name) -> bool:
    """Whether ``name`` is a string :func:`parse_expression` reads back as a symbol.

    Parameters
    ----------
    name : object

    Returns
    -------
    bool
        True for an identifier (Python keywords included) that does not start
        with ``__`` and is not ``True``, ``False`` or ``None``; False otherwise
        (also for anything that is not a string).
    """
    return (
        isinstance(name, str)
        and name.isidentifier()
        and not name.startswith("__")
        and name not in ("True", "False", "None")
    )


def detect_unknowns(text, symbols=()) -> list[str]:
    """Names called like functions in ``text`` that can be unknown functions (syntax only).

    The text is parsed with :func:`ast.parse`, never evaluated.  A called name
    counts unless it is one of :data:`FUNCTIONS`, a dunder name or in ``symbols``.

    Parameters
    ----------
    text : str
        An expression, e.g. ``"-k*x + U(x)"``.
    symbols : iterable of str, optional
        Names that are symbols, not functions.

    Returns
    -------
    list of str
        Each name once; empty when ``text`` is not a string or not valid syntax
        (:func:`parse_expression` then reports the problem).
    """
    if not isinstance(text, str) or len(text) > limits.current("expression_length"):
        return []
    reserved = set(symbols)
    aliases = _keyword_aliases(reserved)
    try:
        tree = ast.parse(_with_aliases(text, aliases), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            n = aliases.get(node.func.id, node.func.id)
            if n not in FUNCTIONS and not n.startswith("__") and n not in reserved and n not in names:
                names.append(n)
    return names


def parse_expression(
    text: str,
    symbols: Mapping[str, sp.Symbol],
    functions: Mapping[str, type] | None = None,
    *,
    where: str | None = None,
) -> sp.Expr:
    """Parse a SymPy-printed expression string without evaluating any code.

    The string is parsed by :func:`ast.parse` (``mode="eval"``) and the tree is
    walked node by node: only numbers (int and float literals), the names in
    ``symbols`` and :data:`CONSTANTS` (``pi``, ``E``), the arithmetic
    operators ``+ - * / **``, comparisons ``< <= > >=``, ``&``, ``|``, ``~``
    between conditions, and calls of :data:`FUNCTIONS` (``sin``, ``exp``,
    ``Abs``, ``Min``, ``Piecewise``, ...) or of the unknown functions in
    ``functions`` are accepted; the SymPy objects are built here.  Integer
    division stays exact (``1/2`` gives ``Rational(1, 2)``).  Symbols whose
    name is a Python keyword (``lambda``) are accepted.  The value must be
    finite and real, and ``sstr`` of it parses back to the same tree (see the
    module docstring).

    Parameters
    ----------
    text : str
        The expression, e.g. ``"alpha*x - beta*x*y"``; its size, nesting, exponents
        and expanded size are capped (see the module docstring and :mod:`udesci.limits`).
    symbols : mapping str -> sympy.Symbol
        The names the expression may use.
    functions : mapping str -> undefined sympy Function class, optional
        Unknown functions the expression may call, e.g. ``{"U": sp.Function("U")}``.
    where : str, optional
        What is parsed, for error messages (e.g. ``"equations['x']"``).

    Returns
    -------
    sympy.Expr (or a SymPy boolean for a bare condition)

    Raises
    ------
    ConfigError
        If ``text`` is not a string, is not valid syntax, contains anything
        outside the whitelist (other names, attribute access, subscripts,
        strings, lambdas, keywords, starred arguments, dunder names, ...) or
        is over a limit (length, nesting, exponent, number size, expanded
        size); if a part is not a finite real value (``oo``, ``1/0``,
        ``atan2(0, 0)``, ``sqrt(-1)``, ``acos(2)``, a float beyond the double
        range) or a Piecewise sits inside a condition; the message names the
        offending token or part, its column and what was expected, and for a
        limit its name and how to raise it.  Also for invalid
        ``symbols``/``functions`` (a mapping, or None for ``functions``) and a
        malformed ``UDESCI_LIMITS``.
    """
    head = f"{where}: " if where else ""
    if not isinstance(text, str):
        raise ConfigError(f"{head}expected an expression string, received {describe(text)}.")
    caps = _Caps.current()
    length = limits.current("expression_length")
    if len(text) > length:
        raise ConfigError(
            f"{head}expression {short(text)!r} has {len(text)} characters; expected at most {length} "
            f"({limits.note('expression_length')})."
        )
    if not isinstance(symbols, Mapping):
        raise ConfigError(f"symbols: expected a mapping name -> sympy.Symbol, received {describe(symbols)}.")
    syms: dict[str, sp.Symbol] = {}
    for name, sym in symbols.items():
        if not isinstance(name, str) or not isinstance(sym, sp.Symbol):
            raise ConfigError(f"symbols: expected str -> sympy.Symbol entries, received {name!r}: {describe(sym)}.")
        syms[name] = sym
    if functions is not None and not isinstance(functions, Mapping):
        raise ConfigError(
            f"functions: expected None or a mapping name -> undefined sympy Function (sp.Function('U')), "
            f"received {describe(functions)}."
        )
    funcs: dict[str, type] = {}
    for name, cls in (functions or {}).items():
        if not isinstance(name, str) or not isinstance(cls, UndefinedFunction):
            raise ConfigError(
                f"functions: expected str -> undefined sympy Function entries (sp.Function('U')), "
                f"received {name!r}: {describe(cls)}."
            )
        funcs[name] = cls
    # names that are Python keywords (a parameter called ``lambda``) become placeholders
    aliases = _keyword_aliases([*syms, *funcs])
    back = {v: k for k, v in aliases.items()}
    text_parsed = _with_aliases(text, aliases)
    syms = {back.get(n, n): s for n, s in syms.items()}
    funcs = {back.get(n, n): f for n, f in funcs.items()}
    builder = _Builder(text, syms, funcs, aliases, where, caps)
    run = _unary_run(text_parsed)
    if run > caps.depth:
        builder.fail_limit(
            None,
            f"expression nested too deeply: {run} unary signs in a row, more than {caps.depth} levels",
            "expected a flatter expression",
            "expression_depth",
        )
    try:
        tree = ast.parse(text_parsed, mode="eval")
    except SyntaxError as err:
        if "too many nested parentheses" in str(err.msg):
            raise ConfigError(
                f"{builder.prefix}: brackets nested too deeply (Python's parser refuses more than 200 levels, "
                "whatever udesci's limits); expected a flatter expression."
            ) from None
        col = f" at column {err.offset}" if err.offset else ""
        raise ConfigError(
            f"{builder.prefix}: invalid syntax{col} ({err.msg}); expected a SymPy-printed "
            "expression such as 'alpha*x - beta*x*y'."
        ) from None
    except (RecursionError, MemoryError):
        raise ConfigError(
            f"{builder.prefix}: expression is nested too deeply to parse, or one chain of operators is too long "
            "for Python's parser; expected a flatter expression with fewer terms in a row."
        ) from None
    except ValueError as err:  # e.g. an int literal longer than Python converts
        raise ConfigError(f"{builder.prefix}: cannot parse ({short(str(err))}); expected shorter numbers.") from None
    # report dunder names first: they are the tokens an injection attempt hinges on
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id.startswith("__"):
            builder.fail(node, f"name {node.id!r} is not allowed (dunder names never are)", builder.expect_names())
    try:
        value = _settled(builder.build(tree.body))
        builder.check_value(tree.body, value)
        # powers that arise only while combining (x*x*...*x, (1+x)*(1+x)*...) and what expanding would cost
        for power in value.atoms(sp.Pow):
            builder.check_power(None, power.base, power.exp)
        _expansion(value, caps, {})
    except _TooLarge as err:
        problem, name = err.args
        builder.fail_limit(None, problem, "expected a smaller expression", name)
    except RecursionError:
        builder.fail_limit(
            None,
            "expression is nested too deeply to build",
            "expected a flatter expression",
            "expression_depth",
        )
    return value


# ----------------------------------------------------------------------------------------------
# printing
# ----------------------------------------------------------------------------------------------
class ExportStrPrinter(StrPrinter):
    """SymPy's str printer, with floats printed to round-trip exactly and constants
    printed unambiguously when a symbol is called ``E`` or ``pi``."""

    def __init__(self, names=(), settings=None):
        super().__init__(settings)
        self._names = set(names)

    def _print_Float(self, expr):
        value = float(expr)
        if expr._prec <= 53 and math.isfinite(value):
            return repr(value)
        return super()._print_Float(expr)

    def _print_Exp1(self, expr):
        return "exp(1)" if "E" in self._names else "E"

    def _print_Pi(self, expr):
        return "acos(-1)" if "pi" in self._names else "pi"


def sstr(expr, names=()) -> str:
    """SymPy ``str`` of ``expr`` with floats that round-trip exactly (``names``: symbol names in use)."""
    return ExportStrPrinter(names).doprint(expr)


class CodePrinter(SciPyPrinter):
    """NumPy/SciPy code printer with floats printed to round-trip exactly."""

    def _print_Float(self, expr):
        value = float(expr)
        if math.isfinite(value):
            return repr(value)
        return "numpy.nan" if value != value else ("numpy.inf" if value > 0 else "(-numpy.inf)")


__all__ = [
    "CONSTANTS", "FUNCTIONS", "MAX_DEPTH", "MAX_EXPRESSION_LENGTH", "MAX_POWER_BITS", "NON_FINITE_NAMES", "CodePrinter",
    "ExportStrPrinter", "detect_unknowns", "is_complex_constant", "is_symbol_name", "listing", "parse_expression",
    "short", "sstr",
]  # fmt: skip
