"""What every exporter needs: the model's names, the check that they can be written, closed forms.

A name is written into JSON, LaTeX or Python source only when it is a plain
identifier (:func:`udesci.expr.is_symbol_name`): a SymPy symbol may be called
``"a\\nimport os"`` or ``"\\input{x}"``, and such a name is rejected with a
:class:`~udesci.errors.ConfigError` naming it before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import sympy as sp

from ..errors import ConfigError, describe
from ..expr import is_symbol_name, listing, parse_expression, short
from ..model import HybridModel


class ClosedForm(NamedTuple):
    """An unknown of a model as an exporter writes it.

    Attributes
    ----------
    args : tuple of sympy.Symbol
        Its arguments (states, inputs or time).
    expression : sympy.Expr or None
        Its closed form in ``args`` and the model's parameters (None: none given).
    fields : dict
        Further JSON-able fields to keep next to it (intervals, scores, ...).
    """

    args: tuple[sp.Symbol, ...]
    expression: sp.Expr | None
    fields: dict


def require_model(model) -> None:
    """Check that ``model`` is a :class:`HybridModel`.

    Raises
    ------
    ConfigError
        If it is not; the message names the argument ``model`` and what was received.
    """
    if not isinstance(model, HybridModel):
        raise ConfigError(f"model: expected a HybridModel, received {describe(model)}.")


def model_symbols(model: HybridModel) -> dict[str, sp.Symbol]:
    """The time, states, inputs and parameters of ``model`` by name.

    Returns
    -------
    dict str -> sympy.Symbol
        In that order.
    """
    out = {str(model.time): model.time}
    for group in (model.states, model.inputs, tuple(model.params)):
        out.update((str(s), s) for s in group)
    return out


def model_functions(model: HybridModel) -> dict[str, sp.FunctionClass]:
    """The unknowns still in ``model`` by name.

    Returns
    -------
    dict str -> undefined sympy Function
    """
    return {name: unknown.function for name, unknown in model.unknowns.items()}


def check_name(name: str, role: str) -> None:
    """Check that ``name`` can be written into a file (see :func:`udesci.expr.is_symbol_name`).

    Parameters
    ----------
    name : str
    role : str
        What is named (``"symbol"``, ``"unknown"``), for the message.

    Raises
    ------
    ConfigError
        If ``name`` is not a plain identifier; the message shows it with ``repr``.
    """
    if not is_symbol_name(name):
        raise ConfigError(
            f"{role} {name!r}: cannot be exported; expected an identifier name (letters, digits, "
            "underscores, not starting with '__', not True/False/None). Rename the {role}."
        )


def exportable(model: HybridModel, unknowns) -> dict[str, ClosedForm]:
    """Check that ``model`` and ``unknowns`` can be written.

    Parameters
    ----------
    model : HybridModel
    unknowns : mapping or None
        As in :func:`closed_forms`.

    Returns
    -------
    dict name -> ClosedForm
        :func:`closed_forms` of ``model`` and ``unknowns``.

    Raises
    ------
    ConfigError
        If ``model`` is not a HybridModel, a symbol or unknown name is not a plain
        identifier, or ``unknowns`` is invalid (see :func:`closed_forms`).
    """
    require_model(model)
    for name in model_symbols(model):
        check_name(name, "symbol")
    forms = closed_forms(model, unknowns)
    for name in forms:
        check_name(name, "unknown")
    return forms


def closed_forms(model: HybridModel, unknowns) -> dict[str, ClosedForm]:
    """The unknowns of ``model`` and those given in ``unknowns``, with their closed forms.

    Parameters
    ----------
    model : HybridModel
    unknowns : mapping name -> expression or dict, or None
        ``{"U": expr}`` or ``{"U": {"expression": expr, "args": ["x", "y"], ...}}``;
        an expression is a SymPy expression, a number or a string (read by
        :func:`udesci.expr.parse_expression`).  Without ``"args"`` an unknown keeps
        the model's arguments, or, for one already substituted, the states, inputs
        and time its expression uses.

    Returns
    -------
    dict name -> ClosedForm
        The model's unknowns first (without expression unless given), then the others.

    Raises
    ------
    ConfigError
        If ``unknowns`` is not a mapping, a name is not an identifier, an expression
        is invalid or uses symbols outside the model, or ``args`` names something
        other than a state, input or the time.
    """
    if unknowns is None:
        unknowns = {}
    if not isinstance(unknowns, Mapping):
        raise ConfigError(
            f"unknowns: expected a mapping name -> expression or dict with 'expression', received {describe(unknowns)}."
        )
    syms = model_symbols(model)
    arg_names = {str(s): s for s in (model.time, *model.states, *model.inputs)}
    funcs = model_functions(model)
    out = {name: ClosedForm(unknown.args, None, {}) for name, unknown in model.unknowns.items()}
    for name, entry in unknowns.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"unknowns: expected identifier names as keys, received {name!r}.")
        where = f"unknowns[{name!r}]"
        fields: dict = {}
        args = None
        if isinstance(entry, Mapping):
            fields = {k: v for k, v in entry.items() if k not in ("expression", "args")}
            expr = entry.get("expression")
            args = entry.get("args")
        else:
            expr = entry
        if expr is not None:
            if isinstance(expr, str):
                expr = parse_expression(expr, syms, funcs, where=where)
            elif isinstance(expr, (int, float)) and not isinstance(expr, bool):
                expr = sp.Float(expr) if isinstance(expr, float) else sp.Integer(expr)
            elif not isinstance(expr, sp.Expr):
                raise ConfigError(f"{where}: expected a sympy expression (or None), received {describe(expr)}.")
        if args is not None:
            if isinstance(args, (str, bytes)) or not hasattr(args, "__iter__"):
                raise ConfigError(f"{where}['args']: expected a list of symbol names, received {describe(args)}.")
            arg_syms = []
            for a in args:
                key = str(a)
                if key not in arg_names:
                    raise ConfigError(
                        f"{where}['args']: {key!r} is not a state, input or the time of the model; "
                        f"expected names from {listing(arg_names)}."
                    )
                arg_syms.append(arg_names[key])
            args = tuple(arg_syms)
        elif name in model.unknowns:
            args = model.unknowns[name].args
        else:
            free = expr.free_symbols if expr is not None else set()
            args = tuple(s for s in (model.time, *model.states, *model.inputs) if s in free)
        if expr is not None:
            extra_syms = expr.free_symbols - set(syms.values()) - set(args)
            if extra_syms:
                raise ConfigError(
                    f"{where}: expression {short(str(expr))!r} uses symbols {listing(map(str, extra_syms))} "
                    f"that are not in the model; expected symbols from {listing(syms)} (add coefficients "
                    "to the model's params or substitute their values)."
                )
        out[name] = ClosedForm(args, expr, fields)
    return out


__all__ = [
    "ClosedForm", "check_name", "closed_forms", "exportable", "model_functions", "model_symbols", "require_model",
]  # fmt: skip
