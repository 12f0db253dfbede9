"""Standalone Python modules (numpy + scipy only) that evaluate and integrate a hybrid model.

The module is :mod:`udesci.export.standalone_template` with its marked lines
filled in: a line ending in ``# udesci:fill NAME`` and a block from
``# udesci:begin NAME`` to ``# udesci:end NAME`` are replaced by the text
generated for ``NAME``.  Names reach the file only as ``repr`` string literals
or as plain identifiers (every name is checked first, see
:func:`udesci.export.common.exportable`), and comments are kept on one line, so
no name or expression of a model can become code.
"""

from __future__ import annotations

import builtins
import keyword
import pprint
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path

import sympy as sp
from sympy.core.function import AppliedUndef

from ..errors import ConfigError
from ..evaluate import write_text_atomic
from ..expr import CodePrinter, sstr
from ..model import HybridModel
from .common import exportable, model_symbols
from .json_io import network_spec

TEMPLATE = Path(__file__).with_name("standalone_template.py")

# names the generated code uses itself; a symbol of the same name gets another local name in rhs()
_RESERVED = (
    set(dir(builtins))
    | set(keyword.kwlist)
    | {
        "numpy",
        "np",
        "scipy",
        "functools",
        "math",
        "solve_ivp",
        "t",
        "y",
        "params",
        "inputs",
        "STATES",
        "INPUTS",
        "TIME",
        "PARAMETERS",
        "EQUATIONS",
        "UNKNOWNS",
        "NETWORKS",
        "rhs",
        "simulate",
    }
)

_FILL = re.compile(r"#\s*udesci:fill (\w+)\s*$")
_BEGIN = re.compile(r"^\s*#\s*udesci:begin (\w+)\s*$")
_END = re.compile(r"^\s*#\s*udesci:end (\w+)\s*$")


def _one_line(text: str) -> str:
    """``text`` with every non-printable character (line breaks included) escaped, for a comment."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _fill(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each marked line and block replaced by ``values[NAME]`` (empty: removed)."""
    out: list[str] = []
    seen: set[str] = set()
    block = None  # name of the block being skipped
    for line in template.split("\n"):
        if block is not None:
            end = _END.match(line)
            if end and end.group(1) == block:
                block = None
            continue
        marker = _BEGIN.match(line) or _FILL.search(line)
        if marker is None:
            out.append(line)
            continue
        name = marker.group(1)
        if marker.re is _BEGIN:
            block = name
        if name not in values or name in seen:
            raise RuntimeError(f"{TEMPLATE.name}: marker {name!r} has no value or appears twice.")
        seen.add(name)
        if values[name]:
            out.extend(values[name].split("\n"))
    if block is not None:
        raise RuntimeError(f"{TEMPLATE.name}: block {block!r} has no end marker.")
    if seen != set(values):
        raise RuntimeError(f"{TEMPLATE.name}: no markers for {sorted(set(values) - seen)}.")
    return "\n".join(out)


def _python_source(model: HybridModel, unknowns) -> str:
    forms = exportable(model, unknowns)
    syms = model_symbols(model)
    # substitute closed forms for unknowns still in the model
    repl = {}
    for name, unknown in model.unknowns.items():
        form = forms[name]
        if form.expression is None:
            continue
        if tuple(form.args) == unknown.args:  # at every application's own arguments
            repl.update(unknown.applied(form.expression))
        else:
            repl[unknown.call] = form.expression
    eqs = [model.equations[s] for s in model.states]
    for _ in range(len(repl) + 1):  # a closed form may itself use another unknown
        eqs = [e.xreplace(repl) for e in eqs]
    remaining = {}  # every application left, by its unknown's name (one unknown may be applied in several places)
    for e in eqs:
        for app in e.atoms(AppliedUndef):
            remaining.setdefault(app, type(app).__name__)
    nets = model.networks()
    net_specs = {}
    for name in sorted(set(remaining.values())):
        spec = network_spec(nets[name])
        if spec is None:
            raise ConfigError(
                f"unknowns: the network behind {name} is a {type(nets[name]).__name__}, not a udesci MLP, so it "
                f"cannot be written as numpy code; substitute a closed form first (to_python(..., "
                f"unknowns={{{name!r}: expression}}) or model.substitute)."
            )
        net_specs[name] = spec

    # local variable names for the symbols inside rhs(); Python reads identifiers in NFKC form,
    # so a name that normalises differently could shadow another one and gets a local name too
    local: dict[sp.Symbol, str] = {model.time: "t"}
    taken = set(_RESERVED)
    counter = 0
    for sym in (*model.states, *model.inputs, *model.params):
        name = str(sym)
        if (
            name in taken
            or not name.isidentifier()
            or name.startswith("_")
            or keyword.iskeyword(name)
            or unicodedata.normalize("NFKC", name) != name
        ):
            name = f"_v{counter}"
            counter += 1
        taken.add(name)
        local[sym] = name
    to_local = {sym: sp.Symbol(name) for sym, name in local.items()}
    body = []

    def note(sym):
        return "" if local[sym] == str(sym) else f"  # {_one_line(str(sym))}"

    used = set().union(*(e.free_symbols for e in eqs))  # unknowns' arguments included
    if str(model.time) != "t" and model.time in used:
        body.append(f"    # t is the time {_one_line(str(model.time))}")
    for sym in model.params:
        if sym in used:
            body.append(f"    {local[sym]} = _p[{str(sym)!r}]{note(sym)}")
    for i, sym in enumerate(model.states):
        if sym in used:
            body.append(f"    {local[sym]} = y[{i}]{note(sym)}")
    for sym in model.inputs:
        if sym in used:
            body.append(f"    {local[sym]} = _u[{str(sym)!r}]{note(sym)}")
    placeholders = {}
    for i, (app, name) in enumerate(sorted(remaining.items(), key=lambda item: (item[1], sstr(item[0])))):
        ph = sp.Symbol(f"_unk_{i}")
        placeholders[app] = ph
        args = ", ".join(local[a] for a in app.args)
        body.append(f"    {ph} = _mlp({name!r}, {args})  # {_one_line(sstr(app))}")
    printer = CodePrinter({"fully_qualified_modules": True})
    outs = []
    for i, (state, e) in enumerate(zip(model.states, eqs, strict=True)):
        code_expr = e.xreplace(placeholders).xreplace(to_local)
        try:
            code = printer.doprint(code_expr)
        except NotImplementedError as err:
            raise ConfigError(f"equation for {state}: cannot be written as numpy code ({err}).") from None
        body.append(f"    _dydt_{i} = {code}  # {_one_line(f'd{state}/d{model.time}')}")
        outs.append(f"_dydt_{i}")
    body.append(f"    _out = numpy.broadcast_arrays({', '.join(outs)}, numpy.asarray(y[0], dtype=float))[:-1]")
    body.append("    return numpy.stack(_out).astype(float)")

    modules = {"numpy", "scipy.special"} | set(printer.module_imports)
    for mod in modules:
        if mod.split(".")[0] not in ("numpy", "scipy", "functools", "math"):
            raise ConfigError(f"the generated code would need module {mod!r}; expected numpy/scipy only.")
    imports = "\n".join(
        f"import {m}" + ("\nimport numpy as np  # noqa: F401" if m == "numpy" else "") for m in sorted(modules)
    )

    eq_strings = {str(s): sstr(e, syms) for s, e in zip(model.states, eqs, strict=True)}
    unk_strings = {
        name: {
            "args": [str(a) for a in form.args],
            "expression": None if form.expression is None else sstr(form.expression, syms),
        }
        for name, form in forms.items()
    }
    params = {str(s): float(v) for s, v in model.parameter_values().items()}
    doc = "\n".join(_one_line(f"    d{s}/d{model.time} = {eq_strings[str(s)]}") for s in model.states)

    def pformat(value, **options) -> str:
        return pprint.pformat(value, width=110, sort_dicts=False, **options)

    return _fill(
        TEMPLATE.read_text(encoding="utf-8"),
        {
            "header": "",
            "doc_equations": doc.replace("\\", "\\\\").replace('"""', '\\"\\"\\"'),
            "imports": imports,
            "STATES": f"STATES = {model.state_names!r}",
            "INPUTS": f"INPUTS = {model.input_names!r}",
            "TIME": f"TIME = {str(model.time)!r}",
            "PARAMETERS": f"PARAMETERS = {pformat(params)}",
            "EQUATIONS": f"EQUATIONS = {pformat(eq_strings)}",
            "UNKNOWNS": f"UNKNOWNS = {pformat(unk_strings)}",
            "NETWORKS": f"NETWORKS = {pformat(net_specs, compact=True)}",
            "body": "\n".join(body),
        },
    )


def to_python(model: HybridModel, path, *, unknowns: Mapping | None = None) -> Path:
    """Write a standalone Python module (numpy + scipy only) for the model.

    The module defines ``STATES``, ``INPUTS``, ``TIME``, ``PARAMETERS`` (current
    values), ``EQUATIONS`` (strings), ``rhs(t, y, params=PARAMETERS,
    inputs=None)`` returning ``dy/dt`` and ``simulate(y0, t,
    params=PARAMETERS, inputs=None, input_times=None, rtol=1e-10,
    atol=1e-10)`` integrating with ``scipy.integrate.solve_ivp`` (DOP853) and
    returning an array of shape ``(T, n_states)``.  Inputs are dicts of
    series sampled at ``input_times`` (default ``t``) and interpolated
    linearly, as :func:`udesci.simulate` does by default.  Running the module
    prints its equations.

    Unknowns given a closed form in ``unknowns`` are substituted; unknowns
    left in the model are evaluated by a small numpy MLP with the trained
    weights embedded in the file.  The states' declared domains
    (:attr:`HybridModel.state_bounds`) are not written: the module simulates
    the equations as they are (the JSON export keeps the domains).

    Parameters
    ----------
    model : HybridModel
    path : str or path-like
        Destination ``.py`` file (overwritten).
    unknowns : mapping name -> sympy.Expr or dict with "expression", optional
        Closed forms to substitute for unknowns of the model (in their argument
        symbols and the model's parameters); others are listed in ``UNKNOWNS``.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ConfigError
        If ``model`` is not a HybridModel, a symbol or unknown name is not a
        plain identifier (it would be written into the source), ``unknowns`` is
        invalid, an unknown left in the model is backed by a network other than
        a udesci MLP (a closed form is required then), or an equation has no
        numpy translation.
    OSError
        If the file cannot be written.
    """
    source = _python_source(model, unknowns)
    path = Path(path)
    write_text_atomic(path, source)
    return path


__all__ = ["TEMPLATE", "to_python"]
