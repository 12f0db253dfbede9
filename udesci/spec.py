"""Hybrid models from names and expression strings: the one builder behind the TOML and JSON loaders.

A file describes a model with names and expression strings: the ``[model]``
table of a pipeline TOML (:func:`udesci.config.build_model`) or a model JSON
(:func:`udesci.export.model_from_dict`).  The loader checks the file's own
layout and types, collects the description in a :class:`ModelText` and says
where its parts sit in the file (:class:`Places`); :func:`resolve` then

* makes the symbols from the names and checks that each has one role
  (:func:`udesci.model.symbol_roles`),
* takes the declared unknown functions, or detects them from the calls in the
  equations (:func:`udesci.expr.detect_unknowns`),
* parses every equation with :func:`udesci.expr.parse_expression` (text is never
  evaluated) and checks each unknown is applied as declared,

and :meth:`ResolvedModel.build` makes the :class:`~udesci.model.HybridModel`.
Every error is a :class:`~udesci.errors.ConfigError` whose message starts with
the source and the place, e.g. ``pipeline.toml: [model.equations] x: ...``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import sympy as sp
from sympy.core.function import AppliedUndef
from torch import nn

from .errors import ConfigError, ModelError
from .expr import detect_unknowns, parse_expression
from .model import HybridModel, Learnable, applications, symbol_roles
from .networks import check_size


@dataclass(frozen=True)
class Places:
    """Where the parts of a model description sit in their source, for error messages.

    Attributes
    ----------
    source : str
        The file (or other origin), e.g. ``"pipeline.toml"``; may be empty.
    model : str
        Label of the model as a whole, e.g. ``"[model]"``.
    equation : callable str -> str
        Label of a state's equation, e.g. ``"x" -> "[model.equations] x"``.
    unknown : callable str -> str
        Label of an unknown function's declaration, e.g. ``"U" -> "[model.unknowns] U"``.
    """

    source: str
    model: str
    equation: Callable[[str], str]
    unknown: Callable[[str], str]

    def prefix(self, label: str) -> str:
        """``"source: label"``, either part left out when empty."""
        return ": ".join(part for part in (self.source, label) if part)


@dataclass(frozen=True)
class ModelText:
    """A hybrid model as names and expression strings.

    Names are expected to be identifiers already (each loader checks them with its
    own messages).

    Attributes
    ----------
    equations : mapping str -> str
        Right-hand side of each state, in state order (a value that is not a string
        is reported by :func:`udesci.expr.parse_expression`).
    parameters : mapping str -> float or Learnable
        Parameter values; :class:`~udesci.model.Learnable` marks trainable ones.
    inputs : tuple of str
        Measured inputs.
    time : str
        The time symbol.
    unknowns : mapping str -> (tuple of str or None), or None
        Declared unknown functions and their arguments (None: arguments not
        declared, taken from the equations).  None: the unknowns are the names
        called like functions in the equations.
    net_options : mapping
        ``width``, ``depth`` and ``activation`` of the default networks.
    """

    equations: Mapping[str, object]
    parameters: Mapping[str, float | Learnable] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    time: str = "t"
    unknowns: Mapping[str, tuple[str, ...] | None] | None = None
    net_options: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedModel:
    """A checked :class:`ModelText`: its symbols, unknown functions and parsed equations.

    Attributes
    ----------
    text : ModelText
    places : Places
    symbols : dict str -> sympy.Symbol
        The time, states, inputs and parameters by name.
    functions : dict str -> undefined sympy Function
        The unknown functions (declared or detected) by name.
    equations : dict sympy.Symbol -> sympy.Expr
        Parsed right-hand sides, in state order.
    """

    text: ModelText
    places: Places
    symbols: dict[str, sp.Symbol]
    functions: dict[str, sp.FunctionClass]
    equations: dict[sp.Symbol, sp.Expr]

    @property
    def used_unknowns(self) -> list[str]:
        """Sorted names of the unknowns the equations apply."""
        return sorted({type(a).__name__ for rhs in self.equations.values() for a in rhs.atoms(AppliedUndef)})

    def parse(self, text, label: str) -> sp.Expr:
        """Parse another expression in the model's symbols and unknowns (e.g. a stored closed form).

        Parameters
        ----------
        text : str
        label : str
            Its place in the source, e.g. ``"unknowns['U']['expression']"``.

        Returns
        -------
        sympy.Expr

        Raises
        ------
        ConfigError
            As :func:`udesci.expr.parse_expression`, the message starting with the source and ``label``.
        """
        return parse_expression(text, self.symbols, self.functions, where=self.places.prefix(label))

    def build(self, networks: Mapping[str, nn.Module] | None = None) -> HybridModel:
        """The :class:`~udesci.model.HybridModel`.

        Parameters
        ----------
        networks : mapping name -> torch.nn.Module, optional
            Networks for some unknowns instead of default MLPs (built with
            ``text.net_options``).

        Returns
        -------
        HybridModel

        Raises
        ------
        ConfigError
            If a default network would be over the size limits (``network_width``,
            ``network_depth``, ``network_parameters`` of :mod:`udesci.limits`), checked
            before anything is allocated, or HybridModel rejects the model (message:
            source and model label, then its reason).
        """
        t, s = self.text, self.symbols
        defaults = inspect.signature(HybridModel).parameters
        width, depth = (t.net_options.get(k, defaults[k].default) for k in ("width", "depth"))
        for app in sorted({a for rhs in self.equations.values() for a in rhs.atoms(AppliedUndef)}, key=str):
            name = type(app).__name__
            if name not in (networks or {}):
                where = f"{self.places.prefix(self.places.model)}: network of {name}"
                check_size(len(app.args), 1, width, depth, where)
        try:
            return HybridModel(
                self.equations,
                {s[name]: value for name, value in t.parameters.items()},
                [s[u] for u in t.inputs],
                states=list(self.equations),
                time=s[t.time],
                networks=networks,
                **t.net_options,
            )
        except (ValueError, TypeError) as err:
            raise ConfigError(f"{self.places.prefix(self.places.model)}: {err}") from err


def resolve(text: ModelText, places: Places, *, allow_unused: bool = False) -> ResolvedModel:
    """Check a model description and parse its equations.

    Parameters
    ----------
    text : ModelText
    places : Places
        Where the parts of ``text`` sit in their source.
    allow_unused : bool, default False
        Accept declared unknowns no equation applies (a JSON file lists the unknowns
        already replaced by closed forms); otherwise they are an error.

    Returns
    -------
    ResolvedModel

    Raises
    ------
    ConfigError
        If a symbol has more than one role, an unknown is named like a symbol or
        declared with arguments other than states, inputs or the time, an equation
        is outside the safe grammar or applies an unknown otherwise than declared,
        or (without ``allow_unused``) a declared unknown is not used.  The message
        starts with the source and the place.
    """
    states, inputs, params = list(text.equations), list(text.inputs), list(text.parameters)
    symbols = {name: sp.Symbol(name) for name in (text.time, *states, *inputs, *params)}
    try:
        roles = symbol_roles(
            [symbols[n] for n in states], [symbols[n] for n in params], [symbols[n] for n in inputs], symbols[text.time]
        )
    except ModelError as err:
        raise ConfigError(f"{places.prefix(places.model)}: {err}") from None
    role_of = {str(sym): role for sym, role in roles.items()}

    declared: dict[str, tuple[sp.Symbol, ...] | None] = {}
    if text.unknowns is None:
        for rhs in text.equations.values():
            declared.update((n, None) for n in detect_unknowns(rhs, symbols))
    else:
        for name, args in text.unknowns.items():
            where = places.prefix(places.unknown(name))
            if name in role_of:
                raise ConfigError(f"{where}: unknown function name clashes with a {role_of[name]}.")
            if args is not None and any(role_of.get(a) not in ("state", "input", "time") for a in args):
                raise ConfigError(
                    f"{where}: expected arguments among states {states}, inputs {inputs} or time "
                    f"{text.time!r}, received {list(args)!r}."
                )
            declared[name] = None if args is None else tuple(symbols[a] for a in args)
    functions = {name: sp.Function(name) for name in declared}

    equations = {}
    first: set[str] = set()
    for state, rhs_text in text.equations.items():
        where = places.prefix(places.equation(state))
        rhs = parse_expression(rhs_text, symbols, functions, where=where)
        for app in applications(rhs):  # the order the model reads them in: the first gives the arguments
            name = type(app).__name__
            want = declared[name]
            if want is None:
                continue
            listed = f"the declaration {places.unknown(name)} = {[str(a) for a in want]}"
            if len(app.args) != len(want):
                raise ConfigError(f"{where}: {app} does not match {listed} (another number of arguments).")
            if name not in first and tuple(app.args) != want:
                raise ConfigError(
                    f"{where}: {app} is the first application of {name} and does not match {listed}; an unknown "
                    "applied in several places declares the arguments of its first one (in state order), "
                    "in which its closed forms are written."
                )
            first.add(name)
        equations[symbols[state]] = rhs
    resolved = ResolvedModel(text, places, symbols, functions, equations)
    if not allow_unused:
        used = resolved.used_unknowns
        unused = [name for name in declared if name not in used]
        if unused:
            raise ConfigError(f"{places.prefix(places.unknown(unused[0]))}: declared but not used in any equation.")
    return resolved


def build_model(text: ModelText, places: Places) -> HybridModel:
    """``resolve(text, places).build()``: the model a file describes.

    Parameters
    ----------
    text : ModelText
    places : Places

    Returns
    -------
    HybridModel

    Raises
    ------
    ConfigError
        As :func:`resolve` and :meth:`ResolvedModel.build`.
    """
    return resolve(text, places).build()


__all__ = ["ModelText", "Places", "ResolvedModel", "build_model", "resolve"]
