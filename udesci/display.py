"""Notebook displays: short text, HTML and LaTeX views of models, data, fits and discoveries.

Jupyter shows an object through its ``_repr_html_`` / ``_repr_latex_`` methods; those of
:class:`~udesci.HybridModel`, :class:`~udesci.Dataset`, :class:`~udesci.FitResult` and
:class:`~udesci.Discovery` call the functions here.  Every name and expression taken from the
user is HTML-escaped; equations are shown as LaTeX (MathJax renders it in notebook HTML) with
the fitted parameter values substituted and rounded to ``digits`` significant digits.
"""

from __future__ import annotations

import html
import math

import numpy as np
import sympy as sp

DIGITS = 4
REPR_LIMIT = 300


def rounded(expr: sp.Expr, digits: int = DIGITS) -> sp.Expr:
    """``expr`` with every float rounded to ``digits`` significant digits.

    Parameters
    ----------
    expr : sympy.Expr
    digits : int, default 4

    Returns
    -------
    sympy.Expr
    """
    return expr.xreplace({n: sp.Float(float(f"{float(n):.{digits}g}"), digits) for n in expr.atoms(sp.Float)})


def format_number(value, digits: int = DIGITS) -> str:
    """``value`` with ``digits`` significant digits ("n/a" for NaN, "∞" for inf)."""
    v = float(value)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    return f"{v:.{digits}g}"


def clip(text: str, limit: int = REPR_LIMIT) -> str:
    """``text`` cut to at most ``limit`` characters (with an ellipsis)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def substituted_equations(model, digits: int = DIGITS, substitute: bool = True) -> dict:
    """Right-hand sides with the current parameter values substituted (or kept as symbols).

    Returns
    -------
    dict state -> sympy.Expr
    """
    values = {s: sp.Float(v) for s, v in model.parameter_values().items()} if substitute else {}
    return {s: rounded(rhs.xreplace(values), digits) for s, rhs in model.equations.items()}


def equations_latex(model, digits: int = DIGITS, substitute: bool = True, extra: dict | None = None) -> str:
    """An ``aligned`` LaTeX block of the model's equations (and ``extra`` lines name -> expression)."""
    t = sp.latex(model.time)
    lines = [
        rf"\frac{{d {sp.latex(s)}}}{{d {t}}} &= {sp.latex(rhs)}"
        for s, rhs in substituted_equations(model, digits, substitute).items()
    ]
    for lhs, rhs in (extra or {}).items():
        lines.append(f"{lhs} &= {sp.latex(rounded(rhs, digits))}")
    return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"


def equations_text(model, digits: int = DIGITS, substitute: bool = True, extra: dict | None = None) -> list[str]:
    """The model's equations as plain text lines ``dx/dt = ...`` (and ``extra`` lines ``name = expression``).

    Parameters
    ----------
    model : HybridModel
    digits : int, default 4
        Significant digits of every number.
    substitute : bool, default True
        Substitute the current parameter values.
    extra : dict str -> sympy.Expr, optional

    Returns
    -------
    list of str
    """
    lines = [f"d{s}/d{model.time} = {rhs}" for s, rhs in substituted_equations(model, digits, substitute).items()]
    lines += [f"{lhs} = {rounded(rhs, digits)}" for lhs, rhs in (extra or {}).items()]
    return lines


def unknown_forms(found, latex: bool = False) -> dict:
    """Each discovered unknown with its declared arguments -> its closed form, e.g. ``{"U(x, y)": -0.9*x*y}``.

    Parameters
    ----------
    found : Discovery
    latex : bool
        Write the left-hand sides in LaTeX (for :func:`equations_latex`).

    Returns
    -------
    dict str -> sympy.Expr
    """
    fmt = sp.latex if latex else str
    return {
        f"{fmt(sp.Symbol(name))}({', '.join(fmt(a) for a in det.args)})": det.expression
        for name, det in found.details.items()
    }


def term_rows(det, digits: int = DIGITS) -> list[list[str]]:
    """Rows ``[term, coefficient, 95% interval, inclusion]`` of an unknown's chosen terms.

    Parameters
    ----------
    det : UnknownDiscovery

    Returns
    -------
    list of list of str
    """
    rows = []
    coef = dict(zip(map(str, det.terms), det.chosen.coefficients, strict=True))
    for term in det.support_terms():
        lo_hi = det.intervals.get(str(term))
        interval = "" if lo_hi is None else f"[{format_number(lo_hi[0], digits)}, {format_number(lo_hi[1], digits)}]"
        rows.append(
            [
                str(term),
                format_number(coef[str(term)], digits),
                interval,
                format_number(det.inclusion.get(str(term), math.nan), 2),
            ]
        )
    return rows


def candidate_rows(det, limit: int = 5, digits: int = DIGITS) -> list[list[str]]:
    """Rows ``[chosen, candidate, score, terms]`` of an unknown's candidates, sorted by score (lower first).

    Only candidates with a finite score are listed, at most ``limit`` of them, plus the chosen
    one (marked ``"→"``) wherever it ranks.

    Parameters
    ----------
    det : UnknownDiscovery
    limit : int, default 5
    digits : int, default 4

    Returns
    -------
    list of list of str
    """
    scored = sorted((c for c in det.candidates if math.isfinite(c.score)), key=lambda c: c.score)
    shown = scored[:limit]
    if not any(c is det.chosen for c in shown):  # identity: candidates hold arrays
        shown.append(det.chosen)
    return [
        [
            "→" if c is det.chosen else "",
            str(rounded(c.expression, digits)),
            format_number(c.score, 6),
            str(len(c.support)),
        ]
        for c in shown
    ]


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _math(latex: str) -> str:
    return "<div>$$" + html.escape(latex, quote=False) + "$$</div>"


def parameter_rows(model, digits: int = DIGITS, intervals: dict | None = None) -> list[list[str]]:
    """Rows ``[name, value, learnable, interval]`` of the model's parameters."""
    rows = []
    for sym, value in model.parameter_values().items():
        lo_hi = (intervals or {}).get(str(sym))
        interval = "" if lo_hi is None else f"[{format_number(lo_hi[0], digits)}, {format_number(lo_hi[1], digits)}]"
        rows.append([str(sym), format_number(value, digits), "yes" if sym in model.learnable else "no", interval])
    return rows


# ----------------------------------------------------------------------------------------------
# HybridModel
# ----------------------------------------------------------------------------------------------
def model_repr(model) -> str:
    """One line: states, unknowns with their arguments, parameters (≤ 300 characters)."""
    unknowns = ", ".join(
        str(u.call) + (f" in {len(u.calls)} places" if len(u.calls) > 1 else "") for u in model.unknowns.values()
    )
    unknowns = unknowns or "none"
    params = ", ".join(
        f"{s}={format_number(v)}" + ("*" if s in model.learnable else "") for s, v in model.parameter_values().items()
    )
    text = f"HybridModel(states={model.state_names}, unknowns=[{unknowns}], params=[{params}]"
    text += f", inputs={model.input_names})" if model.inputs else ")"
    return clip(text)


def model_html(model, digits: int = DIGITS) -> str:
    """Equations (values substituted) and the parameter table."""
    parts = [f"<b>HybridModel</b>: {len(model.states)} states, {len(model.unknowns)} unknowns"]
    parts.append(_math(equations_latex(model, digits)))
    if model.params:
        parts.append(_table(["parameter", "value", "learnable", "95% interval"], parameter_rows(model, digits)))
    return "<div>" + "".join(parts) + "</div>"


# ----------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------
def data_rows(data) -> list[list[str]]:
    """Rows ``[trajectory, points, time span, missing values]`` of a dataset."""
    rows = []
    for k, tr in enumerate(data.trajectories):
        missing = int(np.isnan(tr.y).sum())
        rows.append([str(k), str(tr.t.size), f"{tr.t[0]:g} – {tr.t[-1]:g}", f"{missing} of {tr.y.size}"])
    return rows


def data_repr(data) -> str:
    """One line: trajectories, points, states, inputs (≤ 300 characters)."""
    points = sum(tr.t.size for tr in data.trajectories)
    missing = sum(int(np.isnan(tr.y).sum()) for tr in data.trajectories)
    text = (
        f"Dataset({data.n_trajectories} trajectories, {points} points, {missing} missing, "
        f"states={data.state_names}, inputs={data.input_names})"
    )
    return clip(text)


def data_html(data) -> str:
    """A compact summary table of a dataset."""
    head = (
        f"<b>Dataset</b>: states {html.escape(str(data.state_names))}, inputs {html.escape(str(data.input_names))}"
        + (f", time in {html.escape(data.time_unit)} since {html.escape(data.time_origin)}" if data.time_unit else "")
    )
    return "<div>" + head + _table(["trajectory", "points", "time span", "missing"], data_rows(data)) + "</div>"


# ----------------------------------------------------------------------------------------------
# FitResult and Discovery
# ----------------------------------------------------------------------------------------------
def fit_html(fitted, digits: int = DIGITS) -> str:
    """Status, per-stage loss and time, and the trained model."""
    rows = []
    for stage, seconds in fitted.seconds.items():
        losses = fitted.loss(stage)
        rows.append(
            [stage, str(losses.size), format_number(losses.min() if losses.size else math.nan), f"{seconds:.1f}"]
        )
    parts = [
        f"<b>FitResult</b>: status <code>{html.escape(fitted.status)}</code> — {html.escape(fitted.message)}",
        _table(["stage", "iterations", "best loss", "seconds"], rows),
        model_html(fitted.model, digits),
    ]
    return "<div>" + "".join(parts) + "</div>"


def discovery_repr(found) -> str:
    """One line: each unknown's closed form and the scaled data RMSE (≤ 300 characters)."""
    forms = "; ".join(f"{name} = {rounded(expr)}" for name, expr in found.unknowns.items())
    rmse = found.metrics.get("data_rmse_scaled")
    tail = f", data_rmse_scaled={format_number(rmse)}" if rmse is not None else ""
    adequacy = getattr(found, "adequacy", None)
    if adequacy is not None and not adequacy.adequate:
        tail += ", INADEQUATE"
    ident = getattr(found, "identifiability", None)
    if ident is not None and not ident.identified:
        tail += ", NOT IDENTIFIED"
    return clip(f"Discovery({forms}{tail})")


def _alert(title: str, items) -> str:
    """A red-bordered warning box: a bold title and a list of reasons (both HTML-escaped)."""
    lis = "".join(f"<li>{html.escape(p)}</li>" for p in items)
    return (
        '<div role="alert" style="border:3px solid #c53030;background:#fff5f5;padding:6px 10px">'
        f"<b>⚠ {html.escape(title)}</b><ul>{lis}</ul></div>"
    )


def discovery_html(found, digits: int = DIGITS, candidates: int = 5) -> str:
    """Equations, each unknown's terms with intervals and inclusion, and its best candidates."""
    parts = []
    adequacy = getattr(found, "adequacy", None)
    if adequacy is not None and not adequacy.adequate:
        title = f"Inadequate closed form: {', '.join(adequacy.inadequate_unknowns())}"
        parts.append(_alert(title, adequacy.problems()))
    ident = getattr(found, "identifiability", None)
    if ident is not None and not ident.identified:
        title = f"Not identified by the data: {', '.join(ident.unknowns)} (never observed: {', '.join(ident.hidden)})"
        parts.append(_alert(title, ident.problems()))
    parts += ["<b>Discovery</b>", _math(equations_latex(found.model, digits, extra=unknown_forms(found, latex=True)))]
    for name, det in found.details.items():
        parts.append(f"<p><b>{html.escape(name)}</b>: chosen terms</p>")
        parts.append(_table(["term", "coefficient", "95% interval", "inclusion"], term_rows(det, digits)))
        bases = [(k, v) for k, v in (("inclusion", det.inclusion_basis), ("95% interval", det.interval_basis)) if v]
        if bases:
            parts.append("<p><small>" + "; ".join(f"{k}: {html.escape(v)}" for k, v in bases) + "</small></p>")
        cand_rows = [
            [f"{mark} {text}".strip(), score] for mark, text, score, _ in candidate_rows(det, candidates, digits)
        ]
        if cand_rows:
            parts.append(_table(["candidate (→ chosen)", found.selection.criterion], cand_rows))
    if getattr(found, "adequacy", None) is not None:
        parts.append(f"<p><b>Adequacy</b>: {html.escape(found.adequacy.summary())}</p>")
    shown = {k: v for k, v in found.metrics.items() if k != "adequacy"}
    if shown:
        parts.append(
            _table(
                ["metric", "value"],
                [[k, format_number(v) if isinstance(v, float) else str(v)] for k, v in shown.items()],
            )
        )
    for note in found.notes:
        parts.append(f"<p>Note: {html.escape(note)}</p>")
    return "<div>" + "".join(parts) + "</div>"
