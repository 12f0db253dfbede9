"""The equations of a hybrid model (and closed forms of its unknowns) as a LaTeX ``align*`` block."""

from __future__ import annotations

from collections.abc import Mapping

import sympy as sp

from ..model import HybridModel
from .common import exportable


def to_latex(model: HybridModel, *, unknowns: Mapping | None = None) -> str:
    """The model's equations as a LaTeX ``align*`` environment.

    Parameters
    ----------
    model : HybridModel
    unknowns : mapping name -> sympy.Expr or dict with "expression", optional
        Closed forms to list after the equations, one line each, as
        ``U(x, y) &= ...``.

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
        source as it is), or ``unknowns`` is invalid.
    """
    forms = exportable(model, unknowns)
    t = sp.latex(model.time)
    lines = [rf"\frac{{d {sp.latex(s)}}}{{d {t}}} &= {sp.latex(rhs)}" for s, rhs in model.equations.items()]
    for name, form in forms.items():
        if form.expression is None:
            continue
        args = ", ".join(sp.latex(a) for a in form.args)
        lines.append(f"{sp.latex(sp.Symbol(name))}({args}) &= {sp.latex(form.expression)}")
    return "\\begin{align*}\n" + " \\\\\n".join(lines) + "\n\\end{align*}"


__all__ = ["to_latex"]
