"""Hybrid models as JSON files (``"format": "udesci-model-1"``) and back.

A model is written as SymPy-printed expression strings, its parameter values and
the weights of the udesci :class:`~udesci.networks.MLP` networks behind its
unknowns, and each bounded state's domain.  Reading a file never evaluates its text: every expression goes through
:func:`udesci.expr.parse_expression`, and the model is built by
:mod:`udesci.spec`, the builder the TOML loader uses too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .. import limits
from ..errors import ConfigError, ModelError, describe
from ..evaluate import jsonable, write_text_atomic
from ..expr import CONSTANTS, FUNCTIONS, is_symbol_name, listing, parse_expression, sstr
from ..model import Bounds, HybridModel, Learnable
from ..networks import ACTIVATIONS, MLP, check_size
from ..spec import ModelText, Places, resolve
from .common import exportable, model_functions, model_symbols

#: Version tag of the files :func:`save_json` writes.
FORMAT = "udesci-model-1"


def network_spec(net: nn.Module) -> dict | None:
    """Weights of a udesci MLP as nested lists, or None for any other module.

    Parameters
    ----------
    net : torch.nn.Module

    Returns
    -------
    dict or None
        ``{"n_in", "n_out", "width", "depth", "activation", "in_loc", "in_scale",
        "out_scale", "layers": [{"weight", "bias"}, ...]}`` (lists of floats) for an
        unmodified :class:`~udesci.networks.MLP`; None for any other module.
    """
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


def network_from_spec(spec, where: str, dtype: torch.dtype) -> MLP:
    """The udesci MLP whose weights :func:`network_spec` wrote.

    Parameters
    ----------
    spec : mapping
        As returned by :func:`network_spec` (read from a file).
    where : str
        Where ``spec`` comes from, for error messages.
    dtype : torch.dtype
        Floating dtype of the network.

    Returns
    -------
    MLP

    Raises
    ------
    ConfigError
        For a missing key, invalid sizes or activation, sizes over the limits
        ``network_width``, ``network_depth`` or ``network_parameters`` (checked
        before anything is allocated), or weights of the wrong shape or not
        finite; the message starts with ``where``.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected an object with the network's weights, received {describe(spec)}.")
    for key in ("n_in", "n_out", "width", "depth", "activation", "in_loc", "in_scale", "out_scale", "layers"):
        if key not in spec:
            raise ConfigError(f"{where}: missing key {key!r}.")
    check_size(spec["n_in"], spec["n_out"], spec["width"], spec["depth"], where)
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
            index = tuple(int(i) for i in (~torch.isfinite(tensor)).nonzero()[0])
            raise ConfigError(
                f"{where}{key}: expected finite values (in {str(dtype).replace('torch.', '')}), received "
                f"{float(tensor[index])} at index {list(index)}."
            )
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
        ``"args"`` (names of states, inputs or the time); otherwise the model's
        arguments of that unknown are used, or, for an unknown already
        substituted, the states, inputs and time the expression uses.
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
        "net_options": {...}, "dtype": "float64", "bounds": {state: {"lower",
        "upper", "lower_open", "upper_open"}}, "extra": {...}}``.  ``bounds`` holds
        every bounded state's domain (:attr:`HybridModel.state_bounds`: its SymPy
        assumptions and ``bounds=``; ``null`` for an infinite side), so a model read
        back keeps it although its symbols are plain.
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
    forms = exportable(model, unknowns)
    syms = model_symbols(model)
    funcs = model_functions(model)
    for name in forms:
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
    for name, form in forms.items():
        item = {
            "args": [str(a) for a in form.args],
            "expression": None if form.expression is None else sstr(form.expression, syms),
        }
        for key, value in form.fields.items():
            item[str(key)] = jsonable(value, strict=f"unknowns[{name!r}][{str(key)!r}]")
        unk_out[name] = item
    networks = {}
    for name, net in model.networks().items():
        if not all(bool(torch.isfinite(v).all()) for v in net.state_dict().values()):
            raise ConfigError(
                f"networks[{name!r}]: the network's weights are not all finite; expected a "
                "trained network without NaN/inf (JSON cannot hold them)."
            )
        networks[name] = network_spec(net)
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
        "bounds": {
            name: {
                "lower": b.lower if math.isfinite(b.lower) else None,
                "upper": b.upper if math.isfinite(b.upper) else None,
                "lower_open": b.lower_open,
                "upper_open": b.upper_open,
            }
            for name, b in model.state_bounds.items()
            if b.declared
        },
        "extra": jsonable(dict(extra or {}), strict="extra"),
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
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
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


def _name_list(data, key, src, default=..., limit: str = "names") -> list[str]:
    values = _require(data, key, list, "a list of names", src, default)
    limits.check(limit, len(values), f"{src}: key {key!r} (entries)")
    for v in values:
        if not isinstance(v, str):
            raise ConfigError(f"{src}: key {key!r}: expected a list of names (strings), received entry {describe(v)}.")
        _check_name_loaded(v, key, src)
    if len(set(values)) != len(values):
        raise ConfigError(f"{src}: key {key!r}: names must be unique, received {values}.")
    return list(values)


def _check_name_loaded(name: str, key: str, src: str) -> None:
    if not is_symbol_name(name):
        raise ConfigError(f"{src}: key {key!r}: expected identifier names (not starting with '__'), received {name!r}.")


def model_from_dict(data: Mapping, *, source: str = "model dict") -> HybridModel:
    """Rebuild a :class:`HybridModel` from a :func:`model_to_dict` dict.

    Expressions are read with :func:`~udesci.expr.parse_expression` (never
    ``eval`` or ``sympify``) and the model is built by :mod:`udesci.spec`.
    Unknowns whose network weights are stored get a udesci MLP
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
        For a wrong format tag, a missing or ill-typed key, a name that is not
        an identifier, a symbol in more than one role, an expression outside the
        safe grammar, an unknown applied otherwise than its stored ``args``,
        stored weights of the wrong shape, ``bounds`` that are not states' intervals (or
        contradict the stored model), a size over a limit of
        :mod:`udesci.limits` (nesting, number of states or names, network sizes:
        checked before anything is allocated), or a specification HybridModel
        rejects; the message names the key and ``source``.
    """
    src = source
    if not isinstance(data, Mapping):
        raise ConfigError(f"{src}: expected a JSON object at top level, received {describe(data)}.")
    limits.check_nesting(dict(data), src)
    limits.check_numbers(dict(data), src)
    fmt = _require(data, "format", str, f"the format tag {FORMAT!r}", src)
    if fmt != FORMAT:
        raise ConfigError(f"{src}: key 'format': expected {FORMAT!r}, received {fmt!r}.")
    states = _name_list(data, "states", src, limit="states")
    if not states:
        raise ConfigError(f"{src}: key 'states': expected at least one state.")
    time = _require(data, "time", str, "the name of the time symbol", src, "t")
    _check_name_loaded(time, "time", src)
    inputs = _name_list(data, "inputs", src, [])
    params = _require(data, "parameters", dict, "an object {name: number}", src, {})
    limits.check("names", len(params), f"{src}: key 'parameters' (entries)")
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
    limits.check("names", len(unknowns), f"{src}: key 'unknowns' (entries)")
    declared = {}
    for name, entry in unknowns.items():
        _check_name_loaded(name, "unknowns", src)
        if not isinstance(entry, dict):
            raise ConfigError(f"{src}: key 'unknowns'[{name!r}]: expected an object, received {describe(entry)}.")
        declared[name] = tuple(_name_list(entry, "args", f"{src}: unknowns[{name!r}]", [])) or None
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
    for key, limit in (("width", "network_width"), ("depth", "network_depth")):
        value = net_options.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            limits.check(limit, value, f"{src}: key 'net_options'[{key!r}]")
    dtype_name = _require(data, "dtype", str, "'float32' or 'float64'", src, None)
    dtypes = {"float32": torch.float32, "float64": torch.float64}
    if dtype_name is not None and dtype_name not in dtypes:
        raise ConfigError(f"{src}: key 'dtype': expected 'float32' or 'float64', received {dtype_name!r}.")
    dtype = dtypes[dtype_name] if dtype_name else torch.get_default_dtype()

    text = ModelText(
        equations={state: equations[state] for state in states},
        parameters={n: (Learnable(float(v)) if n in learnable else float(v)) for n, v in params.items()},
        inputs=tuple(inputs),
        time=time,
        unknowns=declared,
        net_options=net_options,
    )
    places = Places(
        source=src,
        model="invalid model",
        equation=lambda state: f"equations[{state!r}]",
        unknown=lambda name: f"unknowns[{name!r}]",
    )
    resolved = resolve(text, places, allow_unused=True)  # unknowns already substituted stay listed
    for name, entry in unknowns.items():
        if entry.get("expression") is not None:
            resolved.parse(entry["expression"], f"unknowns[{name!r}]['expression']")
    nets = {}
    for name in resolved.used_unknowns:
        spec = networks.get(name)
        if spec is not None:
            nets[name] = network_from_spec(spec, f"{src}: networks[{name!r}]", dtype)
    model = resolved.build(networks=nets)
    for name, unknown in model.unknowns.items():
        if name in nets and (nets[name].n_in != len(unknown.args) or nets[name].n_out != 1):
            raise ConfigError(
                f"{src}: key 'networks'[{name!r}]: stored network maps {nets[name].n_in} -> "
                f"{nets[name].n_out}, expected {len(unknown.args)} -> 1 for {unknown.call}."
            )
    bounds = _bounds(data, states, src)
    if bounds:
        try:
            model = model.with_bounds(bounds)
        except (ConfigError, ModelError) as err:
            raise ConfigError(f"{src}: key 'bounds': {err}") from None
    model.module.to(dtype)
    with torch.no_grad():
        for name, param in model.module.learnable.items():
            param.fill_(float(params[name]))
    return model


def _bounds(data: Mapping, states: list, src: str) -> dict:
    """The ``bounds`` entry of a model dict as :class:`~udesci.model.Bounds` by state name."""
    raw = _require(data, "bounds", dict, "an object {state: {lower, upper, lower_open, upper_open}}", src, {})
    out = {}
    for name, entry in raw.items():
        where = f"{src}: key 'bounds'[{name!r}]"
        if name not in states:
            raise ConfigError(f"{where}: not a state (states {states}).")
        if not isinstance(entry, dict) or set(entry) - {"lower", "upper", "lower_open", "upper_open"}:
            raise ConfigError(
                f"{where}: expected an object with some of lower, upper (numbers or null), lower_open, "
                f"upper_open (true/false), received {describe(entry)}."
            )
        sides = {}
        for key, default in (("lower", -math.inf), ("upper", math.inf)):
            value = entry.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"{where}[{key!r}]: expected a number or null, received {describe(value)}.")
            sides[key] = default if value is None else float(value)
        for key in ("lower_open", "upper_open"):
            value = entry.get(key, False)
            if not isinstance(value, bool):
                raise ConfigError(f"{where}[{key!r}]: expected true or false, received {describe(value)}.")
            sides[key] = value
        try:
            out[name] = Bounds(**sides)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
    return out


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
        For a file that is not UTF-8 text or is larger than the limit
        ``file_bytes``, invalid JSON, a wrong format tag, a missing or
        ill-typed key, an expression outside the safe grammar, a size over a
        limit or an inconsistent model; the message names the key and the
        file.
    OSError
        If the file cannot be read.
    """
    path = Path(path)
    text = limits.read_text(path, str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}.") from None
    except ValueError as err:
        if "integer string conversion" not in str(err):
            raise
        raise limits.int_literal_error(text, str(path)) from None
    except RecursionError:
        raise limits.too_large("file_depth", str(path), "arrays or objects nested too deeply to read") from None
    model = model_from_dict(data, source=str(path))
    return model, data
