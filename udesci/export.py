"""Exporting hybrid models: JSON files, LaTeX and standalone NumPy/SciPy modules.

A model is written as SymPy-printed expression strings.  Reading a file never
evaluates its text: :func:`parse_expression` walks the Python syntax tree of
each string and admits only arithmetic, numbers, the model's symbols and a
fixed table of functions, building the SymPy objects itself.

Public functions
----------------
parse_expression
    Safe parser of SymPy-printed expressions.
model_to_dict, save_json, load_json
    JSON round trip (``"format": "udesci-model-1"``), including the weights of
    :class:`~udesci.networks.MLP` networks behind unknowns.
to_latex
    ``align*`` block of the equations (and discovered unknowns).
to_python
    Standalone module (numpy + scipy only) with ``rhs`` and ``simulate``.
"""

from __future__ import annotations

import builtins
import json
import keyword
import math
import pprint
import string
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import sympy as sp
import torch
from sympy.core.function import AppliedUndef
from torch import nn

from .errors import ConfigError, describe
from .expr import CONSTANTS, FUNCTIONS, MAX_EXPRESSION_LENGTH, CodePrinter, listing, parse_expression, short, sstr
from .model import HybridModel, Learnable
from .networks import ACTIVATIONS, MLP

FORMAT = "udesci-model-1"


# ----------------------------------------------------------------------------------------------
# model <-> dict
# ----------------------------------------------------------------------------------------------
def _check_name(name: str, role: str) -> None:
    if not name.isidentifier() or name in ("True", "False", "None") or name.startswith("__"):
        raise ConfigError(
            f"{role} {name!r}: cannot be exported; expected an identifier name (letters, digits, "
            "underscores, not starting with '__', not True/False/None). Rename the symbol."
        )


def _model_symbols(model: HybridModel) -> dict[str, sp.Symbol]:
    out = {str(model.time): model.time}
    for group in (model.states, model.inputs, tuple(model.params)):
        out.update((str(s), s) for s in group)
    return out


def _jsonable(value, where: str):
    """Plain-JSON copy of ``value`` (dicts with str keys, lists, str, bool, None, finite numbers)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            raise ConfigError(
                f"{where}: expected a finite number (JSON has no NaN/inf), received {value!r}; "
                "replace it (e.g. by None) before exporting."
            )
        return float(value)
    if isinstance(value, torch.Tensor):
        return _jsonable(value.detach().cpu().numpy(), where)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist(), where)
    if isinstance(value, sp.Basic):
        if isinstance(value, sp.Integer):
            return int(value)
        if isinstance(value, sp.Number) and value.is_real:
            return _jsonable(float(value), where)
        return sstr(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            key = sstr(k) if isinstance(k, sp.Basic) else k
            if not isinstance(key, (str, int, float)) or isinstance(key, bool):
                raise ConfigError(f"{where}: expected str keys, received key {describe(k)}.")
            out[str(key)] = _jsonable(v, f"{where}[{str(key)!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ConfigError(
        f"{where}: expected a JSON-serialisable value (dict, list, str, number, bool, None, "
        f"numpy array), received {describe(value)}."
    )


def _normalize_unknowns(model: HybridModel, unknowns) -> dict[str, dict]:
    """``{name: {"args": tuple of Symbol, "expression": Expr | None, "fields": dict}}``."""
    if unknowns is None:
        unknowns = {}
    if not isinstance(unknowns, Mapping):
        raise ConfigError(
            f"unknowns: expected a mapping name -> expression or dict with 'expression', received {describe(unknowns)}."
        )
    syms = _model_symbols(model)
    funcs = {name: spec.function for name, spec in model.unknowns.items()}
    out: dict[str, dict] = {}
    for name, spec in model.unknowns.items():
        out[name] = {"args": spec.args, "expression": None, "fields": {}}
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
                if key not in syms:
                    raise ConfigError(
                        f"{where}['args']: {key!r} is not a symbol of the model; expected names from {listing(syms)}."
                    )
                arg_syms.append(syms[key])
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
        out[name] = {"args": args, "expression": expr, "fields": fields}
    return out


def _network_spec(net: nn.Module) -> dict | None:
    """Weights of a udesci MLP as nested lists, or None for any other module."""
    if not isinstance(net, MLP):
        return None
    children = list(net.net)
    linears = children[0::2]
    acts = children[1::2]
    act_cls = ACTIVATIONS.get(net.activation)
    if (
        len(children) != 2 * net.depth + 1
        or not all(type(m) is nn.Linear for m in linears)
        or act_cls is None
        or not all(type(m) is act_cls for m in acts)
    ):
        return None
    return {
        "n_in": net.n_in, "n_out": net.n_out, "width": net.width, "depth": net.depth,
        "activation": net.activation,
        "in_loc": net.in_loc.detach().cpu().tolist(),
        "in_scale": net.in_scale.detach().cpu().tolist(),
        "out_scale": net.out_scale.detach().cpu().tolist(),
        "layers": [{"weight": m.weight.detach().cpu().tolist(), "bias": m.bias.detach().cpu().tolist()}
                   for m in linears],
    }  # fmt: skip


def _network_from_spec(spec, where: str, dtype: torch.dtype) -> MLP:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected an object with the network's weights, received {describe(spec)}.")
    for key in ("n_in", "n_out", "width", "depth", "activation", "in_loc", "in_scale", "out_scale", "layers"):
        if key not in spec:
            raise ConfigError(f"{where}: missing key {key!r}.")
    try:
        net = MLP(spec["n_in"], spec["n_out"], width=spec["width"], depth=spec["depth"], activation=spec["activation"])
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    net = net.to(dtype)
    linears = list(net.net)[0::2]
    layers = spec["layers"]
    if not isinstance(layers, list) or len(layers) != len(linears):
        raise ConfigError(f"{where}['layers']: expected a list of {len(linears)} layers, received {describe(layers)}.")

    def assign(target: torch.Tensor, value, key: str):
        try:
            tensor = torch.as_tensor(value, dtype=dtype)
        except (TypeError, ValueError, RuntimeError):
            raise ConfigError(f"{where}{key}: expected a numeric array, received {describe(value)}.") from None
        if tensor.shape != target.shape:
            raise ConfigError(f"{where}{key}: expected shape {tuple(target.shape)}, received {tuple(tensor.shape)}.")
        if not torch.isfinite(tensor).all():
            raise ConfigError(f"{where}{key}: expected finite values.")
        with torch.no_grad():
            target.copy_(tensor)

    for i, (lin, layer) in enumerate(zip(linears, layers, strict=True)):
        if not isinstance(layer, Mapping) or "weight" not in layer or "bias" not in layer:
            raise ConfigError(f"{where}['layers'][{i}]: expected an object with 'weight' and 'bias'.")
        assign(lin.weight, layer["weight"], f"['layers'][{i}]['weight']")
        assign(lin.bias, layer["bias"], f"['layers'][{i}]['bias']")
    for key in ("in_loc", "in_scale", "out_scale"):
        assign(getattr(net, key), spec[key], f"[{key!r}]")
    return net


def model_to_dict(model: HybridModel, *, unknowns: Mapping | None = None, extra: Mapping | None = None) -> dict:
    """Describe a model as a plain JSON-serialisable dict.

    Parameters
    ----------
    model : HybridModel
    unknowns : mapping name -> sympy.Expr or dict, optional
        Closed forms found for unknowns (e.g. by sparse regression), with any
        JSON-able fields to keep next to them: ``{"U": {"expression": expr,
        "intervals": {...}}}`` or simply ``{"U": expr}``.  A dict may give
        ``"args"`` (symbol names); otherwise the model's arguments of that
        unknown are used, or, for an unknown already substituted, the states,
        inputs and time the expression uses.
    extra : mapping, optional
        Anything JSON-able (metrics, provenance); numpy scalars/arrays are
        converted.

    Returns
    -------
    dict
        ``{"format": "udesci-model-1", "states": [...], "time": "t",
        "inputs": [...], "parameters": {name: value}, "learnable": [...],
        "equations": {state: str}, "unknowns": {name: {"args": [...],
        "expression": str or None, ...}}, "networks": {name: weights or None},
        "net_options": {...}, "dtype": "float64", "extra": {...}}``.
        Parameters hold current (trained) values; expressions are SymPy
        ``str`` output with floats printed to round-trip exactly.  Networks
        are stored for unknowns still in the model when they are udesci
        :class:`~udesci.networks.MLP` instances (None otherwise).

    Raises
    ------
    ConfigError
        If ``model`` is not a HybridModel, a symbol or unknown name cannot be
        written (not an identifier, or an unknown named like a built-in
        function), a parameter is not finite, an equation cannot be parsed
        back, or ``unknowns``/``extra`` hold invalid or non-JSON values.
    """
    if not isinstance(model, HybridModel):
        raise ConfigError(f"model: expected a HybridModel, received {describe(model)}.")
    syms = _model_symbols(model)
    for name in syms:
        _check_name(name, "symbol")
    funcs = {name: spec.function for name, spec in model.unknowns.items()}
    norm = _normalize_unknowns(model, unknowns)
    for name in norm:
        _check_name(name, "unknown")
        if name in FUNCTIONS or name in CONSTANTS:
            raise ConfigError(
                f"unknown {name!r}: cannot be exported because {name} is also a built-in function "
                "or constant name; rename the unknown."
            )
    if extra is not None and not isinstance(extra, Mapping):
        raise ConfigError(f"extra: expected a mapping of JSON-able values, received {describe(extra)}.")
    values = model.parameter_values()
    params = {}
    for sym, value in values.items():
        if not math.isfinite(value):
            raise ConfigError(f"parameters[{str(sym)!r}]: expected a finite value, received {value!r}.")
        params[str(sym)] = float(value)
    equations = {}
    for state, rhs in model.equations.items():
        text = sstr(rhs, syms)
        parse_expression(text, syms, funcs, where=f"equations[{str(state)!r}] (export check)")
        equations[str(state)] = text
    unk_out = {}
    for name, entry in norm.items():
        item = {
            "args": [str(a) for a in entry["args"]],
            "expression": None if entry["expression"] is None else sstr(entry["expression"], syms),
        }
        for key, value in entry["fields"].items():
            item[str(key)] = _jsonable(value, f"unknowns[{name!r}][{str(key)!r}]")
        unk_out[name] = item
    networks = {}
    for name, net in model.networks().items():
        if not all(bool(torch.isfinite(v).all()) for v in net.state_dict().values()):
            raise ConfigError(
                f"networks[{name!r}]: the network's weights are not all finite; expected a "
                "trained network without NaN/inf (JSON cannot hold them)."
            )
        networks[name] = _network_spec(net)
    dtype = str(model.module.dtype).replace("torch.", "")
    return {
        "format": FORMAT,
        "states": model.state_names,
        "time": str(model.time),
        "inputs": model.input_names,
        "parameters": params,
        "learnable": sorted(str(s) for s in model.learnable),
        "equations": equations,
        "unknowns": unk_out,
        "networks": networks,
        "net_options": dict(model.net_options),
        "dtype": dtype,
        "extra": _jsonable(dict(extra or {}), "extra"),
    }


def save_json(model: HybridModel, path, *, unknowns: Mapping | None = None, extra: Mapping | None = None) -> Path:
    """Write :func:`model_to_dict` output to a JSON file.

    Parameters
    ----------
    model : HybridModel
    path : str or path-like
        Destination file (overwritten).
    unknowns, extra : optional
        As in :func:`model_to_dict`.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ConfigError
        As :func:`model_to_dict`.
    OSError
        If the file cannot be written.
    """
    data = model_to_dict(model, unknowns=unknowns, extra=extra)
    path = Path(path)
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def _require(data: Mapping, key: str, types, what: str, src: str, default=...):
    if key not in data:
        if default is ...:
            raise ConfigError(f"{src}: missing key {key!r}; expected {what}.")
        return default
    value = data[key]
    if not isinstance(value, types):
        raise ConfigError(f"{src}: key {key!r}: expected {what}, received {describe(value)}.")
    return value


def _name_list(data, key, src, default=...) -> list[str]:
    values = _require(data, key, list, "a list of names", src, default)
    for v in values:
        if not isinstance(v, str):
            raise ConfigError(f"{src}: key {key!r}: expected a list of names (strings), received entry {describe(v)}.")
        _check_name_loaded(v, key, src)
    if len(set(values)) != len(values):
        raise ConfigError(f"{src}: key {key!r}: names must be unique, received {values}.")
    return list(values)


def _check_name_loaded(name: str, key: str, src: str) -> None:
    if not name.isidentifier() or name in ("True", "False", "None") or name.startswith("__"):
        raise ConfigError(f"{src}: key {key!r}: expected identifier names (not starting with '__'), received {name!r}.")


def model_from_dict(data: Mapping, *, source: str = "model dict") -> HybridModel:
    """Rebuild a :class:`HybridModel` from a :func:`model_to_dict` dict.

    Expressions are read with :func:`parse_expression` (never ``eval`` or
    ``sympify``).  Unknowns whose network weights are stored get a udesci MLP
    with those weights; others get fresh default networks (built with the
    stored ``net_options``).  The module is converted to the stored ``dtype``
    and learnable parameters are then set to their stored values exactly.

    Parameters
    ----------
    data : mapping
        Keys as written by :func:`model_to_dict`; ``format``, ``states`` and
        ``equations`` are required, the rest default to empty.
    source : str
        Where ``data`` came from (a file name), for error messages.

    Returns
    -------
    HybridModel

    Raises
    ------
    ConfigError
        For a wrong format tag, a missing or ill-typed key, an expression
        outside the safe grammar, stored weights of the wrong shape, or a
        specification HybridModel rejects; the message names the key and
        ``source``.
    """
    src = source
    if not isinstance(data, Mapping):
        raise ConfigError(f"{src}: expected a JSON object at top level, received {describe(data)}.")
    fmt = _require(data, "format", str, f"the format tag {FORMAT!r}", src)
    if fmt != FORMAT:
        raise ConfigError(f"{src}: key 'format': expected {FORMAT!r}, received {fmt!r}.")
    states = _name_list(data, "states", src)
    if not states:
        raise ConfigError(f"{src}: key 'states': expected at least one state.")
    time = _require(data, "time", str, "the name of the time symbol", src, "t")
    _check_name_loaded(time, "time", src)
    inputs = _name_list(data, "inputs", src, [])
    params = _require(data, "parameters", dict, "an object {name: number}", src, {})
    for name, value in params.items():
        _check_name_loaded(name, "parameters", src)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(
                f"{src}: key 'parameters'[{name!r}]: expected a finite number, received {describe(value)}."
            )
    learnable = _name_list(data, "learnable", src, [])
    for name in learnable:
        if name not in params:
            raise ConfigError(f"{src}: key 'learnable': {name!r} is not in 'parameters' ({listing(params)}).")
    equations = _require(data, "equations", dict, "an object {state: expression string}", src)
    missing = [s for s in states if s not in equations]
    if missing:
        raise ConfigError(f"{src}: key 'equations': missing equations for states {missing}.")
    unexpected = [k for k in equations if k not in states]
    if unexpected:
        raise ConfigError(
            f"{src}: key 'equations': received equations for {unexpected}, which are not states {states}."
        )
    unknowns = _require(data, "unknowns", dict, "an object {name: {'args': [...], 'expression': ...}}", src, {})
    for name, entry in unknowns.items():
        _check_name_loaded(name, "unknowns", src)
        if not isinstance(entry, dict):
            raise ConfigError(f"{src}: key 'unknowns'[{name!r}]: expected an object, received {describe(entry)}.")
        _name_list(entry, "args", f"{src}: unknowns[{name!r}]", [])
        expr = entry.get("expression")
        if expr is not None and not isinstance(expr, str):
            raise ConfigError(
                f"{src}: key 'unknowns'[{name!r}]['expression']: expected a string or null, received {describe(expr)}."
            )
    networks = _require(data, "networks", dict, "an object {name: weights or null}", src, {})
    net_options = _require(data, "net_options", dict, "an object {width, depth, activation}", src, {})
    unexpected = [k for k in net_options if k not in ("width", "depth", "activation")]
    if unexpected:
        raise ConfigError(f"{src}: key 'net_options': unexpected keys {unexpected}; expected width, depth, activation.")
    dtype_name = _require(data, "dtype", str, "'float32' or 'float64'", src, None)
    dtypes = {"float32": torch.float32, "float64": torch.float64}
    if dtype_name is not None and dtype_name not in dtypes:
        raise ConfigError(f"{src}: key 'dtype': expected 'float32' or 'float64', received {dtype_name!r}.")
    dtype = dtypes[dtype_name] if dtype_name else torch.get_default_dtype()

    syms = {name: sp.Symbol(name) for name in (time, *states, *inputs, *params)}
    if len(syms) != 1 + len(states) + len(inputs) + len(params):
        raise ConfigError(f"{src}: time, states, inputs and parameters must have distinct names.")
    funcs = {name: sp.Function(name) for name in unknowns}
    eqs = {}
    for state in states:
        text = _require(equations, state, str, "an expression string", f"{src}: equations")
        eqs[syms[state]] = parse_expression(text, syms, funcs, where=f"{src}: equations[{state!r}]")
    for name, entry in unknowns.items():
        if entry.get("expression") is not None:
            parse_expression(entry["expression"], syms, funcs, where=f"{src}: unknowns[{name!r}]['expression']")

    used = {type(a).__name__ for rhs in eqs.values() for a in rhs.atoms(AppliedUndef)}
    nets = {}
    for name in sorted(used):
        spec = networks.get(name)
        if spec is not None:
            nets[name] = _network_from_spec(spec, f"{src}: networks[{name!r}]", dtype)
    param_values = {syms[n]: (Learnable(float(v)) if n in learnable else float(v)) for n, v in params.items()}
    try:
        model = HybridModel(
            eqs,
            param_values,
            [syms[u] for u in inputs],
            states=[syms[s] for s in states],
            time=syms[time],
            networks=nets,
            **net_options,
        )
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{src}: invalid model: {err}") from err
    for name, spec in model.unknowns.items():
        if name in nets and (nets[name].n_in != len(spec.args) or nets[name].n_out != 1):
            raise ConfigError(
                f"{src}: key 'networks'[{name!r}]: stored network maps {nets[name].n_in} -> "
                f"{nets[name].n_out}, expected {len(spec.args)} -> 1 for {spec.call}."
            )
        stored = unknowns.get(name, {}).get("args")
        if stored and stored != [str(a) for a in spec.args]:
            raise ConfigError(
                f"{src}: key 'unknowns'[{name!r}]['args']: stored {stored}, but the equations apply {spec.call}."
            )
    model.module.to(dtype)
    with torch.no_grad():
        for name, param in model.module.learnable.items():
            param.fill_(float(params[name]))
    return model


def load_json(path) -> tuple[HybridModel, dict]:
    """Read a model written by :func:`save_json`.

    Every expression is parsed with :func:`parse_expression`; the file's text
    is never evaluated.  Unknowns still present in the equations get back
    their stored MLP weights when the file holds them (``"networks"``), and
    otherwise fresh, untrained networks (built with the stored
    ``net_options``), so a hybrid model whose networks were not udesci MLPs
    loads with fresh networks.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    model : HybridModel
    data : dict
        The whole file content (expressions as strings, ``extra`` etc.).

    Raises
    ------
    ConfigError
        For invalid JSON, a wrong format tag, a missing or ill-typed key, an
        expression outside the safe grammar or an inconsistent model; the
        message names the key and the file.
    OSError
        If the file cannot be read.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}.") from None
    model = model_from_dict(data, source=str(path))
    return model, data


# ----------------------------------------------------------------------------------------------
# LaTeX
# ----------------------------------------------------------------------------------------------
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
        If ``model`` is not a HybridModel or ``unknowns`` is invalid.
    """
    if not isinstance(model, HybridModel):
        raise ConfigError(f"model: expected a HybridModel, received {describe(model)}.")
    norm = _normalize_unknowns(model, unknowns)
    t = sp.latex(model.time)
    lines = [rf"\frac{{d {sp.latex(s)}}}{{d {t}}} &= {sp.latex(rhs)}" for s, rhs in model.equations.items()]
    for name, entry in norm.items():
        if entry["expression"] is None:
            continue
        args = ", ".join(sp.latex(a) for a in entry["args"])
        lines.append(f"{sp.latex(sp.Symbol(name))}({args}) &= {sp.latex(entry['expression'])}")
    return "\\begin{align*}\n" + " \\\\\n".join(lines) + "\n\\end{align*}"


# ----------------------------------------------------------------------------------------------
# standalone Python
# ----------------------------------------------------------------------------------------------
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

_MODULE_TEMPLATE = string.Template('''\
"""Standalone export of a udesci model (generated by udesci.export.to_python).

Requires only numpy and scipy.  Equations::

${doc_equations}
Use ``rhs(t, y)`` for the vector field and ``simulate(y0, t)`` to integrate.
"""

${imports}
from scipy.integrate import solve_ivp

STATES = ${states}
INPUTS = ${inputs}
TIME = ${time}
PARAMETERS = ${parameters}
EQUATIONS = ${equations}
UNKNOWNS = ${unknowns}

# Weights of the networks behind unknown functions (udesci MLPs):
# out = (last layer o ... o act(first layer))((z - in_loc) / in_scale) * out_scale
NETWORKS = ${networks}


def _activation(name, z):
    if name == "tanh":
        return numpy.tanh(z)
    if name == "relu":
        return numpy.maximum(z, 0.0)
    if name == "gelu":
        return 0.5 * z * (1.0 + scipy.special.erf(z / numpy.sqrt(2.0)))
    if name == "silu":
        return z * scipy.special.expit(z)
    if name == "softplus":
        return numpy.where(z > 20.0, z, numpy.log1p(numpy.exp(numpy.minimum(z, 20.0))))
    if name == "sigmoid":
        return scipy.special.expit(z)
    if name == "elu":
        return numpy.where(z > 0.0, z, numpy.expm1(numpy.minimum(z, 0.0)))
    raise ValueError(f"unknown activation {name!r}")


_NETS = {
    _name: {
        "activation": _spec["activation"],
        "in_loc": numpy.asarray(_spec["in_loc"], dtype=float),
        "in_scale": numpy.asarray(_spec["in_scale"], dtype=float),
        "out_scale": numpy.asarray(_spec["out_scale"], dtype=float),
        "layers": [(numpy.asarray(_l["weight"], dtype=float), numpy.asarray(_l["bias"], dtype=float))
                   for _l in _spec["layers"]],
    }
    for _name, _spec in NETWORKS.items()
}


def _mlp(name, *args):
    """Network ``name`` at arguments broadcast to a common shape (...); returns shape (...)."""
    net = _NETS[name]
    z = numpy.stack(numpy.broadcast_arrays(*[numpy.asarray(a, dtype=float) for a in args]), axis=-1)
    h = (z - net["in_loc"]) / net["in_scale"]
    layers = net["layers"]
    for weight, bias in layers[:-1]:
        h = _activation(net["activation"], h @ weight.T + bias)
    weight, bias = layers[-1]
    return ((h @ weight.T + bias) * net["out_scale"])[..., 0]


def _merge_params(params):
    if params is PARAMETERS:
        return PARAMETERS
    unknown = [k for k in params if k not in PARAMETERS]
    if unknown:
        raise ValueError(f"params: unknown parameter(s) {unknown}; expected names from {list(PARAMETERS)}.")
    return {**PARAMETERS, **params}


def _inputs_at(t, inputs):
    if not INPUTS:
        return {}
    if inputs is None:
        raise ValueError(f"inputs: this model needs the inputs {INPUTS}; pass a dict name -> value "
                         "or a callable t -> dict.")
    values = inputs(t) if callable(inputs) else inputs
    missing = [k for k in INPUTS if k not in values]
    if missing:
        raise ValueError(f"inputs: missing {missing}; expected keys {INPUTS}.")
    return values


def rhs(t, y, params=PARAMETERS, inputs=None):
    """Right-hand side dy/dt of the model.

    Parameters
    ----------
    t : float
        Time.
    y : array of shape (n_states,) or (n_states, k)
        States, in the order of STATES.
    params : dict name -> float, default PARAMETERS
        Parameter values; names left out keep their PARAMETERS value.
    inputs : dict name -> float, or callable t -> dict, optional
        Values of INPUTS at time t (required when the model has inputs).

    Returns
    -------
    ndarray of shape (n_states,) or (n_states, k)
    """
    _p = _merge_params(params)
    _u = _inputs_at(t, inputs)
${body}


def _input_function(t, inputs, input_times):
    if not INPUTS:
        if inputs is not None:
            raise ValueError("inputs: this model has no inputs, received an input series.")
        return None
    if inputs is None:
        raise ValueError(f"inputs: this model needs series for {INPUTS}; pass inputs={{name: array}}.")
    ut = t if input_times is None else numpy.asarray(input_times, dtype=float)
    if isinstance(inputs, dict):
        missing = [k for k in INPUTS if k not in inputs]
        if missing:
            raise ValueError(f"inputs: missing series {missing}; expected keys {INPUTS}.")
        cols = [numpy.asarray(inputs[k], dtype=float).reshape(-1) for k in INPUTS]
    else:
        arr = numpy.asarray(inputs, dtype=float).reshape(len(ut), -1)
        if arr.shape[1] != len(INPUTS):
            raise ValueError(f"inputs: expected shape ({len(ut)}, {len(INPUTS)}), received {arr.shape}.")
        cols = list(arr.T)
    for k, c in zip(INPUTS, cols):
        if c.size != ut.size:
            raise ValueError(f"inputs[{k!r}]: expected {ut.size} samples (one per input time), received {c.size}.")

    def at(s):
        # linear interpolation, end values held outside the sampled range
        return {k: numpy.interp(s, ut, c) for k, c in zip(INPUTS, cols)}

    return at


def simulate(y0, t, params=PARAMETERS, inputs=None, input_times=None, rtol=1e-10, atol=1e-10):
    """Integrate the model with scipy's DOP853.

    Parameters
    ----------
    y0 : array of shape (n_states,)
        Initial state at t[0].
    t : array of shape (T,)
        Strictly increasing output times.
    params : dict name -> float, default PARAMETERS
    inputs : dict name -> array of shape (T_u,), or array (T_u, n_inputs), optional
        Input series sampled at ``input_times`` (default ``t``), interpolated
        linearly (end values held outside their range).
    input_times : array of shape (T_u,), optional
    rtol, atol : float, default 1e-10

    Returns
    -------
    ndarray of shape (T, n_states)
    """
    t = numpy.asarray(t, dtype=float)
    if t.ndim != 1 or t.size < 2 or numpy.any(numpy.diff(t) <= 0):
        raise ValueError("t: expected a 1-D, strictly increasing array of at least two times.")
    y0 = numpy.asarray(y0, dtype=float).reshape(-1)
    if y0.size != len(STATES):
        raise ValueError(f"y0: expected {len(STATES)} values ({STATES}), received {y0.size}.")
    p = _merge_params(params)
    u = _input_function(t, inputs, input_times)
    sol = solve_ivp(lambda s, y: rhs(s, y, p, u), (t[0], t[-1]), y0, method="DOP853", t_eval=t,
                    rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return sol.y.T


if __name__ == "__main__":
    for _state in STATES:
        print(f"d{_state}/d{TIME} = {EQUATIONS[_state]}")
    for _name, _value in PARAMETERS.items():
        print(f"{_name} = {_value!r}")
''')


def _python_source(model: HybridModel, unknowns) -> str:
    norm = _normalize_unknowns(model, unknowns)
    syms = _model_symbols(model)
    # substitute closed forms for unknowns still in the model
    repl = {
        spec.call: norm[name]["expression"]
        for name, spec in model.unknowns.items()
        if norm[name]["expression"] is not None
    }
    eqs = [model.equations[s] for s in model.states]
    for _ in range(len(repl) + 1):  # a closed form may itself use another unknown
        eqs = [e.xreplace(repl) for e in eqs]
    remaining = {}
    for e in eqs:
        for app in e.atoms(AppliedUndef):
            remaining[type(app).__name__] = app
    nets = model.networks()
    net_specs = {}
    for name in sorted(remaining):
        spec = _network_spec(nets[name])
        if spec is None:
            raise ConfigError(
                f"unknowns: the network behind {name} is a {type(nets[name]).__name__}, not a udesci MLP, so it "
                f"cannot be written as numpy code; substitute a closed form first (to_python(..., "
                f"unknowns={{{name!r}: expression}}) or model.substitute)."
            )
        net_specs[name] = spec

    # local variable names for the symbols inside rhs()
    local: dict[sp.Symbol, str] = {model.time: "t"}
    taken = set(_RESERVED)
    counter = 0
    for sym in (*model.states, *model.inputs, *model.params):
        name = str(sym)
        if name in taken or not name.isidentifier() or name.startswith("_") or keyword.iskeyword(name):
            name = f"_v{counter}"
            counter += 1
        taken.add(name)
        local[sym] = name
    to_local = {sym: sp.Symbol(name) for sym, name in local.items()}
    body = []

    def note(sym):
        return "" if local[sym] == str(sym) else f"  # {sym}"

    used = set().union(*(e.free_symbols for e in eqs))  # unknowns' arguments included
    if str(model.time) != "t" and model.time in used:
        body.append(f"    # t is the time {model.time}")
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
    for i, (name, app) in enumerate(sorted(remaining.items())):
        ph = sp.Symbol(f"_unk_{i}")
        placeholders[app] = ph
        args = ", ".join(local[a] for a in app.args)
        body.append(f"    {ph} = _mlp({name!r}, {args})  # {sstr(app)}")
    printer = CodePrinter({"fully_qualified_modules": True})
    outs = []
    for i, (state, e) in enumerate(zip(model.states, eqs, strict=True)):
        code_expr = e.xreplace(placeholders).xreplace(to_local)
        try:
            code = printer.doprint(code_expr)
        except NotImplementedError as err:
            raise ConfigError(f"equation for {state}: cannot be written as numpy code ({err}).") from None
        body.append(f"    _dydt_{i} = {code}  # d{state}/d{model.time}")
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
            "args": [str(a) for a in entry["args"]],
            "expression": None if entry["expression"] is None else sstr(entry["expression"], syms),
        }
        for name, entry in norm.items()
    }
    params = {str(s): float(v) for s, v in model.parameter_values().items()}
    doc_eqs = "".join(f"    d{s}/d{model.time} = {eq_strings[str(s)]}\n" for s in model.states)
    return _MODULE_TEMPLATE.substitute(
        doc_equations=doc_eqs.replace("\\", "\\\\").replace('"""', '\\"\\"\\"'),
        imports=imports,
        states=repr(model.state_names),
        inputs=repr(model.input_names),
        time=repr(str(model.time)),
        parameters=pprint.pformat(params, width=110, sort_dicts=False),
        equations=pprint.pformat(eq_strings, width=110, sort_dicts=False),
        unknowns=pprint.pformat(unk_strings, width=110, sort_dicts=False),
        networks=pprint.pformat(net_specs, width=110, compact=True, sort_dicts=False),
        body="\n".join(body),
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
    weights embedded in the file.

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
        If ``model`` is not a HybridModel, ``unknowns`` is invalid, an unknown
        left in the model is backed by a network other than a udesci MLP (a
        closed form is required then), or an equation has no numpy translation.
    OSError
        If the file cannot be written.
    """
    if not isinstance(model, HybridModel):
        raise ConfigError(f"model: expected a HybridModel, received {describe(model)}.")
    source = _python_source(model, unknowns)
    path = Path(path)
    path.write_text(source, encoding="utf-8")
    return path


__all__ = [
    "CONSTANTS", "FORMAT", "FUNCTIONS", "MAX_EXPRESSION_LENGTH", "load_json", "model_from_dict", "model_to_dict",
    "parse_expression", "save_json", "to_latex", "to_python",
]  # fmt: skip
