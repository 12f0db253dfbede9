"""The equations of a hybrid model (and closed forms of its unknowns) as a LaTeX ``align*`` block."""

from __future__ import annotations

from collections.abc import Mapping

import sympy as sp

from ..display import DIGITS, rounded
from ..errors import ConfigError
from ..model import HybridModel
from .common import exportable


def to_latex(
    model: HybridModel, *, unknowns: Mapping | None = None, digits: int | None = DIGITS, substitute: bool = True
) -> str:
    """The model's equations as a LaTeX ``align*`` environment.

    Parameters
    ----------
    model : HybridModel
    unknowns : mapping name -> sympy.Expr or dict with "expression", optional
        Closed forms to list after the equations, one line each, as
        ``U(x, y) &= ...``.
    digits : int or None, default 4
        Significant digits of every number written (``None``: as stored).
    substitute : bool, default True
        Write the parameters' current (fitted) values into the equations; ``False``
        keeps them as symbols.

    Returns
    -------
    str
        ``\\begin{align*} ... \\end{align*}`` with one line
        ``\\frac{d x}{d t} &= ...`` per state.

    Raises
    ------
    ConfigError
        If ``model`` is not a HybridModel, a symbol or unknown name is not a plain
        identifier (a name such as ``"\\input{x}"`` would be written into the LaTeX
        source as it is), ``unknowns`` is invalid, or ``digits`` is not an int
        from 1 to 17 (or None).
    """
    if digits is not None and (not isinstance(digits, int) or isinstance(digits, bool) or not 1 <= digits <= 17):
        raise ConfigError(f"digits: expected an int from 1 to 17 or None, received {digits!r}.")
    forms = exportable(model, unknowns)
    t = sp.latex(model.time)

    def written(expr):
        return expr if digits is None else rounded(expr, digits)

    values = {s: sp.Float(v) for s, v in model.parameter_values().items()} if substitute else {}
    lines = [
        rf"\frac{{d {sp.latex(s)}}}{{d {t}}} &= {sp.latex(written(rhs.xreplace(values)))}"
        for s, rhs in model.equations.items()
    ]
    for name, form in forms.items():
        if form.expression is None:
            continue
        args = ", ".join(sp.latex(a) for a in form.args)
        lines.append(f"{sp.latex(sp.Symbol(name))}({args}) &= {sp.latex(written(form.expression.xreplace(values)))}")
    return "\\begin{align*}\n" + " \\\\\n".join(lines) + "\n\\end{align*}"


__all__ = ["to_latex"]
