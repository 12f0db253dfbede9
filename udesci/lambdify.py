"""SymPy expressions to batched torch functions.

The generated functions take one tensor per argument symbol, all broadcastable
to a common batch shape ``(...)``, and return tensors of that shape.  The
function table below is the set of SymPy functions the printer may emit; it is
what known physics terms may use.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence

import sympy as sp
import torch
from sympy.core.relational import Relational
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import And, BooleanAtom, Not, Or

from .errors import ModelError
from .expr import is_complex_constant


def _as_tensor_like(value, ref):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(ref, torch.Tensor):
        return torch.as_tensor(value, dtype=ref.dtype, device=ref.device)
    # constant subexpression (e.g. atan2(1, 2)): keep full precision; broadcast_outputs casts to the batch dtype
    return torch.as_tensor(value, dtype=torch.float64)


def _pair(a, b):
    ref = a if isinstance(a, torch.Tensor) else b
    return _as_tensor_like(a, ref), _as_tensor_like(b, ref)


def _minimum(*args):
    out = args[0]
    for other in args[1:]:
        out = torch.minimum(*_pair(out, other))
    return out


def _maximum(*args):
    out = args[0]
    for other in args[1:]:
        out = torch.maximum(*_pair(out, other))
    return out


def _where(cond, a, b):
    cond = _as_tensor_like(cond, a if isinstance(a, torch.Tensor) else b)
    a, b = _pair(a, b)
    return torch.where(cond.bool(), a, b)


def _pow(a, b):
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return torch.pow(*_pair(a, b)) if not isinstance(b, (int, float)) else torch.pow(a, b)
    return a**b


def _unary(fn: Callable) -> Callable:
    def apply(a):
        # constant arguments (sqrt(2), sin(2), log(3)) are evaluated in float64: a 0-dim float64 tensor does
        # not up-cast the batch tensors it multiplies, and broadcast_outputs casts constant outputs
        return fn(a if isinstance(a, torch.Tensor) else torch.as_tensor(a, dtype=torch.float64))

    return apply


#: Names the SymPy torch printer emits, mapped to batch-safe torch callables.
FUNCTION_TABLE: dict[str, Callable] = {
    "sin": _unary(torch.sin),
    "cos": _unary(torch.cos),
    "tan": _unary(torch.tan),
    "asin": _unary(torch.asin),
    "acos": _unary(torch.acos),
    "atan": _unary(torch.atan),
    "atan2": lambda a, b: torch.atan2(*_pair(a, b)),
    "sinh": _unary(torch.sinh),
    "cosh": _unary(torch.cosh),
    "tanh": _unary(torch.tanh),
    "exp": _unary(torch.exp),
    "log": _unary(torch.log),
    "sqrt": _unary(torch.sqrt),
    "abs": _unary(torch.abs),
    "sign": _unary(torch.sign),
    "erf": _unary(torch.erf),
    "floor": _unary(torch.floor),
    "ceil": _unary(torch.ceil),
    "min": _minimum,
    "max": _maximum,
    "where": _where,
    "pow": _pow,
    "gt": lambda a, b: torch.gt(*_pair(a, b)),
    "ge": lambda a, b: torch.ge(*_pair(a, b)),
    "lt": lambda a, b: torch.lt(*_pair(a, b)),
    "le": lambda a, b: torch.le(*_pair(a, b)),
    "eq": lambda a, b: torch.eq(*_pair(a, b)),
    "ne": lambda a, b: torch.ne(*_pair(a, b)),
    "logical_and": lambda a, b: torch.logical_and(*_pair(a, b)),
    "logical_or": lambda a, b: torch.logical_or(*_pair(a, b)),
    "logical_not": _unary(torch.logical_not),
    "e": math.e,
    "pi": math.pi,
}

#: SymPy function classes a known term may contain (anything else is rejected).
SUPPORTED_FUNCTIONS: tuple[type, ...] = (
    sp.sin, sp.cos, sp.tan, sp.asin, sp.acos, sp.atan, sp.atan2, sp.sinh, sp.cosh, sp.tanh,
    sp.exp, sp.log, sp.Abs, sp.sign, sp.erf, sp.floor, sp.ceiling, sp.Min, sp.Max, sp.Piecewise,
)  # fmt: skip


FLOAT_MAX = sys.float_info.max
INT64_MAX = 2**63 - 1

# node types a right-hand side may be built of, besides numbers, symbols and supported functions
_STRUCTURE = (
    sp.Add, sp.Mul, sp.Pow, sp.NumberSymbol, sp.core.function.AppliedUndef, ExprCondPair,
    Relational, And, Or, Not, BooleanAtom,
)  # fmt: skip


def check_supported(expr: sp.Expr, where: str) -> None:
    """Raise :class:`ModelError` unless ``expr`` is a real scalar expression udesci can compile.

    Accepted: finite real numbers, symbols, ``pi``/``E``, ``+ - * / **``, the functions of
    :data:`SUPPORTED_FUNCTIONS`, unknown (undefined) functions, and relations and ``& | ~``
    inside ``Piecewise`` conditions.

    Parameters
    ----------
    expr : sympy.Expr
    where : str
        Name of the argument or equation, used in the message.

    Raises
    ------
    ModelError
        For a value that is not a scalar expression (a matrix, a relation or boolean as a
        right-hand side), a non-finite or complex constant (``zoo``, ``oo``, ``nan``, ``I``),
        a function outside :data:`SUPPORTED_FUNCTIONS`, or any other construct
        (``Derivative``, ``Integral``, ``Sum``, ...).
    """
    if not isinstance(expr, sp.Expr):
        raise ModelError(
            f"{where}: expected a scalar real SymPy expression, received {type(expr).__name__} {str(expr)[:60]!r}."
        )
    names = None
    for node in sp.preorder_traversal(expr):
        if is_complex_constant(node):
            raise ModelError(
                f"{where}: constant {str(node)[:60]} is not real (a complex value); right-hand sides are real."
            )
        if isinstance(node, sp.Number) or (node.is_Atom and node.is_number and not isinstance(node, sp.NumberSymbol)):
            if node is sp.I:
                raise ModelError(f"{where}: the imaginary unit I is not allowed; right-hand sides are real.")
            too_big = isinstance(node, sp.Integer) and abs(int(node)) > INT64_MAX
            if too_big or (node.is_finite and node.is_real and abs(node) > FLOAT_MAX):
                digits = (
                    len(str(abs(int(node))))
                    if isinstance(node, sp.Integer) and int(node).bit_length() < 13_000
                    else None
                )
                size = (
                    f"with {digits} digits"
                    if digits
                    else "of more than 4000 digits"
                    if isinstance(node, sp.Integer)
                    else ""
                )
                raise ModelError(
                    f"{where}: a constant {size} is beyond what torch computes with (integers up to 2**63, "
                    f"floats up to {FLOAT_MAX:.3g}); rescale the model."
                )
            if not (node.is_finite and node.is_real):
                raise ModelError(
                    f"{where}: constant {node} is not a finite real number; expected finite real constants "
                    f"(received {str(expr)[:60]!r})."
                )
        elif isinstance(node, sp.Pow) and node.is_number:
            # a power of numbers is computed in Python floats, which raise OverflowError beyond FLOAT_MAX
            value = node.evalf(20)
            if value.is_real and value.is_finite and abs(value) > FLOAT_MAX:
                raise ModelError(
                    f"{where}: the constant {str(node)[:60]} is about {float(sp.log(abs(value), 10)):.0f} orders of "
                    f"magnitude, beyond what torch computes with (floats up to {FLOAT_MAX:.3g}); rescale the model."
                )
        elif isinstance(node, (sp.Symbol, *SUPPORTED_FUNCTIONS)):
            continue
        elif isinstance(node, sp.Function) and not isinstance(node, sp.core.function.AppliedUndef):
            if not isinstance(node, SUPPORTED_FUNCTIONS):
                names = names or ", ".join(sorted(f.__name__ for f in SUPPORTED_FUNCTIONS))
                raise ModelError(
                    f"{where}: function {type(node).__name__} has no torch translation; "
                    f"expected one of {names}, received {node}."
                )
        elif not isinstance(node, _STRUCTURE):
            raise ModelError(
                f"{where}: {type(node).__name__} is not supported in a right-hand side; expected numbers, "
                f"symbols, + - * / **, supported functions and unknown functions (received {str(node)[:60]!r})."
            )


def torch_function(exprs: Sequence[sp.Expr], args: Sequence[sp.Symbol]) -> Callable[..., list]:
    """Compile SymPy expressions into one batched torch function.

    Parameters
    ----------
    exprs : sequence of sympy.Expr, length m
        Expressions in the symbols ``args``.
    args : sequence of sympy.Symbol, length k
        Argument order of the generated function.

    Returns
    -------
    callable
        ``f(a_1, ..., a_k) -> list`` of ``m`` tensors (or Python numbers for
        constant expressions), each broadcast over the arguments' batch shape.
        Use :func:`broadcast_outputs` to turn constants into full tensors.

    Raises
    ------
    ModelError
        If an expression uses an unsupported function.
    """
    exprs = [as_expression(expr, f"exprs[{i}]") for i, expr in enumerate(exprs)]
    for i, expr in enumerate(exprs):
        check_supported(expr, f"expression {i}")
    return sp.lambdify(list(args), exprs, modules=[FUNCTION_TABLE, "torch"], cse=True)


def as_expression(value, where: str) -> sp.Basic:
    """``value`` if it is a SymPy object, a SymPy number for a real Python number.

    Strings are refused, never handed to ``sympify`` (which evaluates them, also inside a
    tuple or list): parse them with :func:`udesci.expr.parse_expression` first.

    Raises
    ------
    ModelError
        For anything else, naming ``where``.
    """
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return sp.Integer(value) if isinstance(value, int) else sp.Float(value)
    raise ModelError(
        f"{where}: expected a SymPy expression, received {type(value).__name__} {str(value)[:60]!r}"
        + ("; parse strings with udesci.parse_expression first." if isinstance(value, str) else ".")
    )


def broadcast_outputs(values: Sequence, like: torch.Tensor) -> torch.Tensor:
    """Stack outputs of a :func:`torch_function` along a new last axis.

    Parameters
    ----------
    values : sequence of tensors or numbers, length m
    like : torch.Tensor of shape (...)
        Reference tensor giving batch shape, dtype and device.

    Returns
    -------
    torch.Tensor of shape (..., m)
    """
    cols = []
    for v in values:
        if not isinstance(v, torch.Tensor):
            v = torch.as_tensor(float(v), dtype=like.dtype, device=like.device)
        elif v.dtype != like.dtype or v.device != like.device:
            v = v.to(dtype=like.dtype, device=like.device)
        cols.append(v.expand(like.shape) if v.shape != like.shape else v)
    return torch.stack(cols, dim=-1)
