"""Hybrid models: SymPy equations with unknown functions backed by networks."""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import sympy as sp
import torch
from sympy.core.function import AppliedUndef
from torch import nn

from .errors import ConfigError, ModelError, describe
from .expr import detect_unknowns, parse_expression
from .field import VectorField
from .lambdify import check_supported
from .networks import MLP

TIME = sp.Symbol("t")


@dataclass(frozen=True)
class Learnable:
    """Marks a parameter as trainable, starting from ``value``.

    Parameters
    ----------
    value : float
        Initial value.

    Raises
    ------
    ConfigError
        If ``value`` is not a finite real number.
    """

    value: float

    def __post_init__(self):
        if isinstance(self.value, (bool, np.bool_)):
            raise ConfigError(f"Learnable value: expected a real number, received the boolean {self.value!r}.")
        try:
            v = float(self.value)
        except (TypeError, ValueError):
            raise ConfigError(f"Learnable value: expected a real number, received {describe(self.value)}.") from None
        if v != v or v in (float("inf"), float("-inf")):
            raise ConfigError(f"Learnable value: expected a finite number, received {self.value!r}.")
        object.__setattr__(self, "value", v)


def applications(rhs: sp.Expr) -> list[sp.Expr]:
    """The unknowns' applications in a right-hand side, in the order :class:`HybridModel` reads them
    (by their text): with the equations in state order, the first application of an unknown gives
    its formal arguments :attr:`Unknown.args`."""
    return sorted(rhs.atoms(AppliedUndef), key=str)


@dataclass(frozen=True)
class Unknown:
    """An unknown function and the symbols it is applied to.

    One unknown may be applied in several places with different arguments, e.g. a reaction term
    ``U(u_i)`` in every cell of a method-of-lines model, or the same coupling ``U(x)``, ``U(y)`` in two
    equations: one network then stands behind every application, and a closed form found for it
    holds in all of them.

    Attributes
    ----------
    name : str
        Function name, e.g. ``"U"``.
    args : tuple of sympy.Symbol
        Its formal arguments: those of its first application (in state order), in call order.
        Closed forms of the unknown are written in these symbols.
    calls : tuple of tuple of sympy.Symbol
        The arguments of every distinct application, the first being ``args``; ``()`` when built
        means ``(args,)``.

    Raises
    ------
    ModelError
        If ``calls`` does not start with ``args`` or an application has another number of arguments.
    """

    name: str
    args: tuple[sp.Symbol, ...]
    calls: tuple[tuple[sp.Symbol, ...], ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "args", tuple(self.args))
        calls = tuple(tuple(c) for c in self.calls) or (self.args,)
        if calls[0] != self.args:
            raise ModelError(
                f"unknown {self.name}: calls must start with its arguments {self.args}, received {calls[0]}."
            )
        for c in calls:
            if len(c) != len(self.args):
                raise ModelError(
                    f"unknown {self.name} is applied as {self.function(*self.args)} and as {self.function(*c)}; "
                    "an unknown function must take the same number of arguments everywhere."
                )
        object.__setattr__(self, "calls", calls)

    @property
    def function(self) -> sp.FunctionClass:
        """The undefined SymPy function class."""
        return sp.Function(self.name)

    @property
    def call(self) -> sp.Expr:
        """The first application, in the formal arguments, e.g. ``U(x, y)``."""
        return self.function(*self.args)

    @property
    def applications(self) -> tuple[sp.Expr, ...]:
        """Every application, e.g. ``(U(u_0), U(u_1), ...)``, in the order of :attr:`calls`."""
        return tuple(self.function(*c) for c in self.calls)

    def applied(self, expression: sp.Expr) -> dict[sp.Expr, sp.Expr]:
        """Each application mapped to ``expression`` (written in :attr:`args`) at its own arguments.

        Parameters
        ----------
        expression : sympy.Expr
            A closed form of the unknown in its formal arguments.

        Returns
        -------
        dict sympy.Expr -> sympy.Expr
            ``{U(c_1, ...): expression(c_1, ...)}`` for every application (simultaneous replacement,
            so swapped arguments such as ``U(y, x)`` are right); a mapping for ``xreplace``.
        """
        return {self.function(*c): expression.xreplace(dict(zip(self.args, c, strict=True))) for c in self.calls}


@dataclass(frozen=True)
class Bounds:
    """The interval a state's values are declared to lie in.

    Parameters
    ----------
    lower, upper : float, default -inf, inf
        The sides; an infinite side is open (no bound).  ``lower < upper``.
    lower_open, upper_open : bool, default False
        Whether a finite side is excluded (``positive=True`` is ``Bounds(0, inf, lower_open=True)``);
        set to False on an infinite side.

    Raises
    ------
    ConfigError
        For a side that is not a real number (a boolean, a string, NaN), ``lower = inf``,
        ``upper = -inf``, or ``lower >= upper``.
    """

    lower: float = -math.inf
    upper: float = math.inf
    lower_open: bool = False
    upper_open: bool = False

    def __post_init__(self):
        for side in ("lower", "upper"):
            value = getattr(self, side)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
                raise ConfigError(f"Bounds {side}: expected a real number (or ±inf), received {describe(value)}.")
            value = float(value)
            if math.isnan(value):
                raise ConfigError(f"Bounds {side}: expected a real number (or ±inf), received nan.")
            object.__setattr__(self, side, value)
        if self.lower == math.inf or self.upper == -math.inf:
            raise ConfigError(
                f"Bounds: expected lower < inf and upper > -inf, received lower={self.lower}, upper={self.upper}."
            )
        if not self.lower < self.upper:
            raise ConfigError(
                f"Bounds: expected lower < upper, received lower={self.lower:g}, upper={self.upper:g}; "
                "a state bounded to one value is a constant, not a state."
            )
        for side in ("lower_open", "upper_open"):
            if not isinstance(getattr(self, side), (bool, np.bool_)):
                raise ConfigError(f"Bounds {side}: expected True or False, received {describe(getattr(self, side))}.")
        object.__setattr__(self, "lower_open", bool(self.lower_open) and math.isfinite(self.lower))
        object.__setattr__(self, "upper_open", bool(self.upper_open) and math.isfinite(self.upper))

    @property
    def declared(self) -> bool:
        """True if a side is finite (the state is bounded at all)."""
        return math.isfinite(self.lower) or math.isfinite(self.upper)

    def interval(self) -> str:
        """The interval in the usual notation, e.g. ``"[0, 1]"``, ``"(0, inf)"``."""
        left = "(" if self.lower_open or not math.isfinite(self.lower) else "["
        right = ")" if self.upper_open or not math.isfinite(self.upper) else "]"
        return f"{left}{self.lower:g}, {self.upper:g}{right}"

    def intersect(self, other: Bounds) -> Bounds:
        """The tighter of the two on each side.

        Parameters
        ----------
        other : Bounds

        Returns
        -------
        Bounds

        Raises
        ------
        ConfigError
            If the intersection is empty or a single value.
        """
        low = self if self.lower > other.lower else other
        lower, lower_open = low.lower, low.lower_open or (self.lower == other.lower and self.lower_open)
        high = self if self.upper < other.upper else other
        upper, upper_open = high.upper, high.upper_open or (self.upper == other.upper and self.upper_open)
        if not lower < upper:
            raise ConfigError(f"the intervals {self.interval()} and {other.interval()} do not overlap")
        return Bounds(lower, upper, lower_open, upper_open)

    def margin(self, scale: float) -> float:
        """How far inside an open side :meth:`clip` moves a value: ``OPEN_MARGIN`` × ``scale``, at most
        a quarter of a bounded interval's width."""
        width = self.upper - self.lower
        return min(OPEN_MARGIN * float(scale), width / 4) if math.isfinite(width) else OPEN_MARGIN * float(scale)

    def clip(self, values: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """``values`` moved inside: onto a closed side, or ``OPEN_MARGIN`` × ``scale`` inside an open one.

        Parameters
        ----------
        values : torch.Tensor of any shape
        scale : float, default 1.0
            The state's scale (its data's standard deviation): the margin inside an open side.

        Returns
        -------
        torch.Tensor, shaped like ``values``
            Values inside are unchanged (NaN stays NaN).
        """
        eps = self.margin(scale)
        lo = self.lower + eps if self.lower_open else self.lower
        hi = self.upper - eps if self.upper_open else self.upper
        out = values
        if math.isfinite(lo):
            out = torch.where(out < lo, torch.full_like(out, lo), out)
        if math.isfinite(hi):
            out = torch.where(out > hi, torch.full_like(out, hi), out)
        return out

    def contains(self, values: torch.Tensor) -> torch.Tensor:
        """Which ``values`` lie in the interval (exactly: an open side excludes its bound).

        Parameters
        ----------
        values : torch.Tensor of any shape

        Returns
        -------
        torch.Tensor of bool, shaped like ``values``
            False for NaN.
        """
        above = values > self.lower if self.lower_open else values >= self.lower
        below = values < self.upper if self.upper_open else values <= self.upper
        return above & below

    def at_side(self, values: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """Which ``values`` sit on a finite side: within 2 × ``OPEN_MARGIN`` × ``scale`` of it (where
        :meth:`clip` puts values from outside).

        Parameters
        ----------
        values : torch.Tensor of any shape
        scale : float, default 1.0

        Returns
        -------
        torch.Tensor of bool, shaped like ``values``
        """
        tol = 2 * OPEN_MARGIN * float(scale)
        return ((values - self.lower).abs() <= tol) | ((values - self.upper).abs() <= tol)

    def outside(self, values: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """Which ``values`` lie beyond a side by more than ``OPEN_MARGIN`` × ``scale`` (round-off).

        Parameters
        ----------
        values : torch.Tensor of any shape
        scale : float, default 1.0

        Returns
        -------
        torch.Tensor of bool, shaped like ``values``
            False for NaN.
        """
        tol = OPEN_MARGIN * float(scale)
        return (values < self.lower - tol) | (values > self.upper + tol)


#: How far inside an open side (``positive=True``: ``x > 0``) a value is moved, relative to the state's scale.
OPEN_MARGIN = 1e-6
UNBOUNDED = Bounds()


def assumption_bounds(symbol: sp.Symbol) -> Bounds:
    """The bounds a state symbol's SymPy assumptions declare.

    Parameters
    ----------
    symbol : sympy.Symbol

    Returns
    -------
    Bounds
        ``(0, inf)`` for ``positive=True``, ``[0, inf)`` for ``nonnegative=True``, ``(-inf, 0)`` for
        ``negative=True``, ``(-inf, 0]`` for ``nonpositive=True``, unbounded otherwise.
    """
    if symbol.is_positive:
        return Bounds(0.0, math.inf, lower_open=True)
    if symbol.is_nonnegative:
        return Bounds(0.0, math.inf)
    if symbol.is_negative:
        return Bounds(-math.inf, 0.0, upper_open=True)
    if symbol.is_nonpositive:
        return Bounds(-math.inf, 0.0)
    return UNBOUNDED


def _assumption_text(symbol: sp.Symbol) -> str:
    for flag in ("positive", "nonnegative", "negative", "nonpositive"):
        if getattr(symbol, f"is_{flag}"):
            return f"{flag}=True"
    return ""


def _side(value, name: str, side: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, (bool, np.bool_, str, bytes)) or not isinstance(value, numbers.Real):
        raise ConfigError(
            f"bounds[{name!r}]: expected the {side} bound as a real number, None or ±inf, received {describe(value)}."
        )
    return float(value)


def declared_bounds(bounds, states: Iterable[sp.Symbol]) -> dict[str, Bounds]:
    """Check a ``bounds=`` argument of :class:`HybridModel`: the declared bounds by state name.

    Parameters
    ----------
    bounds : mapping state -> (lower, upper) or Bounds, or None
        Keys are state symbols or names; ``None`` or ``±inf`` leaves a side open.
    states : iterable of sympy.Symbol
        The model's states.

    Returns
    -------
    dict str -> Bounds
        In state order; entries that bound nothing (``(None, None)``) are left out.

    Raises
    ------
    ModelError
        If ``bounds`` is not a mapping, a key is not a state (or names one twice), or a value is not
        a ``(lower, upper)`` pair or :class:`Bounds`.
    ConfigError
        For a side that is not a real number, NaN, or ``lower >= upper``.
    """
    states = list(states)
    names = [str(s) for s in states]
    if bounds is None:
        return {}
    if not isinstance(bounds, Mapping):
        raise ModelError(f"bounds: expected a mapping {{state: (lower, upper)}}, received {describe(bounds)}.")
    given: dict[str, Bounds] = {}
    for key, value in bounds.items():
        if not isinstance(key, (str, sp.Symbol)) or str(key) not in names:
            raise ModelError(f"bounds: {describe(key)} is not a state of the model; expected one of {names}.")
        name = str(key)
        if name in given:
            raise ModelError(f"bounds: state {name!r} is given twice (as a name and as a symbol); give it once.")
        if isinstance(value, Bounds):
            given[name] = value
            continue
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise ModelError(
                f"bounds[{name!r}]: expected a (lower, upper) pair (None or ±inf for an open side) or "
                f"udesci.model.Bounds, received {describe(value)}."
            )
        pair = list(value)
        if len(pair) != 2:
            raise ModelError(f"bounds[{name!r}]: expected a (lower, upper) pair, received {len(pair)} values {pair!r}.")
        lower, upper = _side(pair[0], name, "lower", -math.inf), _side(pair[1], name, "upper", math.inf)
        try:
            given[name] = Bounds(lower, upper)
        except ConfigError as err:
            raise ConfigError(f"bounds[{name!r}]: {err}") from None
    return {name: given[name] for name in names if name in given and given[name].declared}


def merged_bounds(states: Iterable[sp.Symbol], declared: Mapping[str, Bounds]) -> dict[str, Bounds]:
    """Every state's domain: its SymPy assumptions (:func:`assumption_bounds`) and its declared bounds.

    Parameters
    ----------
    states : iterable of sympy.Symbol
    declared : mapping name -> Bounds
        As returned by :func:`declared_bounds`.

    Returns
    -------
    dict str -> Bounds
        By state name in state order; the tighter side wins.

    Raises
    ------
    ModelError
        If a declared interval and a symbol's assumption leave no value (e.g. ``positive=True`` and
        ``bounds={x: (-1, 0)}``).
    """
    out = {}
    for sym in states:
        name, own = str(sym), assumption_bounds(sym)
        if name not in declared:
            out[name] = own
            continue
        try:
            out[name] = own.intersect(declared[name])
        except ConfigError:
            raise ModelError(
                f"bounds[{name!r}]: {declared[name].interval()} contradicts the state's SymPy assumption "
                f"{_assumption_text(sym)} (the domain {own.interval()}): no value satisfies both."
            ) from None
    return out


def _as_symbol(key, what: str) -> sp.Symbol:
    if isinstance(key, sp.Symbol):
        return key
    if isinstance(key, str) and key.isidentifier():
        return sp.Symbol(key)
    raise ModelError(f"{what}: expected a sympy Symbol or identifier string, received {describe(key)}.")


def _check_network(name: str, net: nn.Module, n_args: int, dtype: torch.dtype) -> None:
    """A user network must map a ``(B, n_args)`` batch to ``(B, 1)`` finite values."""
    probe = torch.zeros(2, n_args, dtype=dtype)
    try:
        with torch.no_grad():  # on a copy: a network with state (a call counter, a cache) is left untouched
            out = copy.deepcopy(net)(probe)
    except Exception as exc:  # a user module can fail in any way; report it at construction
        raise ModelError(
            f"networks[{name!r}]: calling it on a batch of shape (2, {n_args}) ({name}'s arguments) failed "
            f"({type(exc).__name__}: {str(exc)[:120]}); expected a module mapping (..., {n_args}) -> (..., 1)."
        ) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, 1):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(
            f"networks[{name!r}]: expected output of shape (2, 1) for an input of shape (2, {n_args}), "
            f"received {got}; the network must map (..., {n_args}) -> (..., 1)."
        )


def symbol_roles(
    states: Iterable[sp.Symbol], params: Iterable[sp.Symbol], inputs: Iterable[sp.Symbol], time: sp.Symbol
) -> dict[sp.Symbol, str]:
    """The role of every symbol of a model: ``"state"``, ``"parameter"``, ``"input"`` or ``"time"``.

    Parameters
    ----------
    states, params, inputs : iterable of sympy.Symbol
    time : sympy.Symbol

    Returns
    -------
    dict Symbol -> str
        In the order states, parameters, inputs, time.

    Raises
    ------
    ModelError
        If a symbol is declared in more than one role; the message names each such
        symbol and its roles.
    """
    roles: dict[sp.Symbol, list[str]] = {}
    for role, group in (("state", states), ("parameter", params), ("input", inputs), ("time", (time,))):
        for sym in group:
            held = roles.setdefault(sym, [])
            if role not in held:
                held.append(role)
    clash = {sym: held for sym, held in roles.items() if len(held) > 1}
    if clash:
        detail = "; ".join(
            f"{str(sym)!r} is declared "
            + (f"both as {held[0]} and as {held[1]}" if len(held) == 2 else "as " + ", ".join(held))
            for sym, held in clash.items()
        )
        raise ModelError(
            f"symbols {sorted(map(str, clash))} are declared in more than one role "
            f"(state, parameter, input, time): {detail}; give each symbol one role."
        )
    return {sym: held[0] for sym, held in roles.items()}


def _expression(value, symbols: Mapping, functions: Mapping, where: str) -> sp.Expr:
    """``value`` as SymPy: a string is parsed (never evaluated), a SymPy object or number passes through.

    Nothing else is handed to ``sympy.sympify``: it evaluates strings, also those inside a
    tuple or dict (even with ``strict=True``).
    """
    if isinstance(value, str):
        return parse_expression(value, symbols, functions, where=where)
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, numbers.Number):
        return sp.sympify(value, strict=True)
    raise ModelError(f"{where}: expected a sympy expression or an expression string, received {describe(value)}.")


class HybridModel:
    """ODE model ``dy/dt = f(t, y, u; p)`` whose right-hand side mixes known SymPy
    terms and unknown functions represented by neural networks.

    Parameters
    ----------
    equations : mapping state -> sympy expression or str
        One right-hand side per state; the keys (Symbols or names) define the
        states and their order.  Unknown terms are undefined functions applied
        to states, inputs or the time symbol, e.g. ``U(x, y)``; one unknown may be
        applied to different arguments in different places (``U(u_0)``, ``U(u_1)``, ...:
        one network behind all, see :class:`Unknown`).  A string is
        read by :func:`udesci.expr.parse_expression` (never evaluated) with the
        states, parameters, inputs and time as symbols; names called like
        functions that are not built-in functions are unknowns.
    params : mapping symbol -> float or Learnable, optional
        Parameter values; :class:`Learnable` marks trainable ones.
    inputs : iterable of symbols, optional
        Measured time-varying inputs (forcing), supplied with the data.
    states : iterable of symbols, optional
        Explicit state list; if given it must match the equation keys.
    time : sympy.Symbol, default ``t``
        Symbol of the independent variable.
    networks : mapping name -> torch.nn.Module, optional
        Networks to use for some unknowns instead of the default MLP; each maps
        ``(..., n_args) -> (..., 1)``.
    width, depth : int, default 32, 2
        Size of the default MLPs.
    activation : str, default "tanh"
        Activation of the default MLPs.
    dtype : torch.dtype, default torch.float64
        Floating dtype of parameters and computations (``fit`` may change it).
    bounds : mapping state -> (lower, upper) or Bounds, optional
        The interval each state's values are declared to lie in (keys: state symbols or names;
        ``None`` or ``±inf`` for an open side; closed sides, or :class:`Bounds` with open ones).
        They join the state symbols' SymPy assumptions (``positive=True`` is ``(0, inf)``,
        ``nonnegative=True`` ``[0, inf)``, likewise ``negative``/``nonpositive``), the tighter
        side winning: :attr:`state_bounds`.  Training keeps initial states inside, discovery
        refuses candidates whose trajectories leave, plots keep the axes inside.

    Raises
    ------
    ModelError
        For a symbol declared in more than one role (see :func:`symbol_roles`), a
        free symbol that is neither state, parameter, input nor time, a state
        without equation, an equation for a non-state, an unknown applied
        to nothing or to something other than states, inputs or time, an
        unknown applied to different numbers of arguments in different places, or ``bounds``
        that are not a mapping of states to pairs, or contradict a state's assumptions.
    ConfigError
        For an invalid parameter value (not a finite real number, a boolean),
        network option or bound (not a number, NaN, ``lower >= upper``), or an
        equation string outside the safe grammar of :func:`udesci.expr.parse_expression`.

    Notes
    -----
    Right-hand sides are checked by :func:`udesci.lambdify.check_supported`
    (finite real constants, supported functions only), and user networks are
    called once on a small batch to check they map ``(..., n_args)`` to
    ``(..., 1)``; both raise :class:`ModelError` here rather than deep inside
    torch later.
    """

    def __init__(
        self,
        equations: Mapping,
        params: Mapping | None = None,
        inputs: Iterable = (),
        *,
        states: Iterable | None = None,
        time: sp.Symbol = TIME,
        networks: Mapping[str, nn.Module] | None = None,
        width: int = 32,
        depth: int = 2,
        activation: str = "tanh",
        dtype: torch.dtype = torch.float64,
        bounds: Mapping | None = None,
    ):
        if not isinstance(equations, Mapping) or not equations:
            raise ModelError(
                f"equations: expected a non-empty mapping {{state: expression}}, received {describe(equations)}."
            )
        self.time = _as_symbol(time, "time")
        eqs: dict[sp.Symbol, object] = {}
        for key, rhs in equations.items():
            eqs[_as_symbol(key, "equations key")] = rhs  # converted below, once every symbol is known
        self.states: tuple[sp.Symbol, ...] = tuple(eqs)
        if states is not None:
            declared = tuple(_as_symbol(s, "states entry") for s in states)
            for s in declared:
                if s not in eqs:
                    raise ModelError(
                        f"state {s} has no equation: expected one equation per state {list(declared)}, received "
                        f"equations for {list(eqs)}; add equations[{s}] = <right-hand side>."
                    )
            for s in eqs:
                if s not in declared:
                    raise ModelError(
                        f"equations: received an equation for {s}, which is not a state "
                        f"(states={list(declared)}); add it to states or remove the equation."
                    )
            self.states = declared
            eqs = {s: eqs[s] for s in declared}
        if inputs is None:
            inputs = ()
        if isinstance(inputs, (str, sp.Symbol)) or not isinstance(inputs, Iterable):
            raise ModelError(f"inputs: expected a list of symbols or names, received {describe(inputs)}.")
        self.inputs: tuple[sp.Symbol, ...] = tuple(_as_symbol(u, "inputs entry") for u in inputs)
        #: The bounds declared with ``bounds=`` by state name (see :attr:`state_bounds` for the domains).
        self.bounds: dict[str, Bounds] = declared_bounds(bounds, self.states)
        merged_bounds(self.states, self.bounds)  # a contradiction with the assumptions is refused here

        self.params: dict[sp.Symbol, float] = {}
        self.learnable: set[sp.Symbol] = set()
        for key, value in (params or {}).items():
            sym = _as_symbol(key, "params key")
            if isinstance(value, Learnable):
                self.params[sym] = value.value
                self.learnable.add(sym)
            else:
                try:
                    if isinstance(value, (bool, np.bool_, str, bytes)):
                        raise TypeError
                    number = float(value)
                except (TypeError, ValueError, OverflowError):
                    raise ConfigError(
                        f"params[{sym}]: expected a number or ud.Learnable(value), received {describe(value)}."
                    ) from None
                if not math.isfinite(number):
                    raise ConfigError(f"params[{sym}]: expected a finite number, received {value!r}.")
                self.params[sym] = number

        symbol_roles(self.states, self.params, self.inputs, self.time)
        names = {str(s): s for s in (self.time, *self.states, *self.inputs, *self.params)}
        functions = {n: sp.Function(n) for rhs in eqs.values() for n in detect_unknowns(rhs, names)}
        self.equations = {s: _expression(rhs, names, functions, f"equation for {s}") for s, rhs in eqs.items()}

        calls: dict[str, dict] = {}
        allowed_args = set(self.states) | set(self.inputs) | {self.time}
        known = allowed_args | set(self.params)
        for state, rhs in self.equations.items():
            for app in applications(rhs):
                name = type(app).__name__
                if getattr(type(app), "_kwargs", None):
                    raise ModelError(
                        f"equation for {state}: unknown {app} was declared with assumptions "
                        f"({sorted(type(app)._kwargs)}); declare it plainly, sp.Function({name!r})."
                    )
                if not name.isidentifier() or name.startswith("_"):
                    raise ModelError(
                        f"equation for {state}: unknown function name {name!r} is not allowed; expected an "
                        "identifier not starting with '_' (letters, digits, underscores), e.g. 'U'."
                    )
                if not app.args:
                    raise ModelError(
                        f"equation for {state}: unknown {name}() has no arguments; expected it applied to "
                        f"states/inputs/{self.time}, e.g. {name}({', '.join(map(str, self.states))})."
                    )
                for a in app.args:
                    if not isinstance(a, sp.Symbol) or a not in allowed_args:
                        raise ModelError(
                            f"equation for {state}: unknown {name} has argument {a}, expected states "
                            f"{list(map(str, self.states))}, inputs {list(map(str, self.inputs))} or "
                            f"time {self.time}; received {app}."
                        )
                calls.setdefault(name, {}).setdefault(tuple(app.args), None)  # distinct, in order of appearance
            free = rhs.free_symbols
            for sym in sorted(free - known, key=str):
                raise ModelError(
                    f"equation for {state}: symbol {sym} is neither a state {list(map(str, self.states))}, "
                    f"a parameter {list(map(str, self.params))}, an input {list(map(str, self.inputs))} "
                    f"nor the time {self.time}; add it to params= or inputs=."
                )
            check_supported(rhs, f"equation for {state}")
        self.unknowns: dict[str, Unknown] = {name: Unknown(name, next(iter(c)), tuple(c)) for name, c in calls.items()}
        names = {str(s) for s in (*self.states, *self.params, *self.inputs, self.time)}
        for name in self.unknowns:
            if name in names:
                raise ModelError(f"unknown function {name} has the same name as a symbol; rename one of them.")

        networks = dict(networks or {})
        for name in networks:
            if name not in self.unknowns:
                raise ModelError(f"networks: received a network for {name!r}, expected one of {sorted(self.unknowns)}.")
            if not isinstance(networks[name], nn.Module):
                raise ModelError(
                    f"networks[{name!r}]: expected a torch.nn.Module, received {describe(networks[name])}."
                )
        nets = nn.ModuleDict()
        for name, unk in self.unknowns.items():
            # not `networks.get(name) or ...`: a container module with no children (nn.Sequential()) is falsy
            if name in networks:
                nets[name] = networks[name]
            else:
                nets[name] = MLP(len(unk.args), 1, width=width, depth=depth, activation=activation)
        self.net_options = {"width": width, "depth": depth, "activation": activation}
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"dtype: expected torch.float32 or torch.float64, received {dtype!r}.")
        self.module = VectorField(self, nets).to(dtype)
        for name in networks:
            _check_network(name, self.module.nets[name], len(self.unknowns[name].args), dtype)

    # -- views ---------------------------------------------------------------------------------
    @property
    def state_names(self) -> list[str]:
        """Names of the states, in order."""
        return [str(s) for s in self.states]

    @property
    def input_names(self) -> list[str]:
        """Names of the inputs, in order."""
        return [str(s) for s in self.inputs]

    @property
    def state_bounds(self) -> dict[str, Bounds]:
        """Every state's declared domain: its SymPy assumptions and ``bounds=``, the tighter side winning.

        Returns
        -------
        dict str -> Bounds
            By state name, in state order; an undeclared state is unbounded (``Bounds()``,
            ``declared`` False).
        """
        return merged_bounds(self.states, self.bounds)

    def with_bounds(self, bounds: Mapping | None) -> HybridModel:
        """A copy whose ``bounds=`` are ``bounds`` (replacing the declared ones; assumptions stay).

        Parameters
        ----------
        bounds : mapping state -> (lower, upper) or Bounds, or None
            As :class:`HybridModel`'s ``bounds``.

        Returns
        -------
        HybridModel

        Raises
        ------
        ModelError, ConfigError
            As :class:`HybridModel` for ``bounds``.
        """
        declared = declared_bounds(bounds, self.states)
        merged_bounds(self.states, declared)
        out = self.copy()
        out.bounds = declared
        return out

    def parameter_values(self) -> dict[sp.Symbol, float]:
        """Current parameter values (trained values for learnable ones)."""
        out = dict(self.params)
        for sym in self.learnable:
            out[sym] = float(self.module.learnable[str(sym)].detach())
        return out

    def networks(self) -> dict[str, nn.Module]:
        """The network behind each unknown, by name."""
        return dict(self.module.nets.items())

    def copy(self) -> HybridModel:
        """Deep copy (specification and all weights).

        Returns
        -------
        HybridModel
        """
        return copy.deepcopy(self)

    def substitute(
        self,
        expressions: Mapping[str, sp.Expr],
        learnable: Iterable[sp.Symbol] = (),
        params: Mapping[sp.Symbol, float] | None = None,
    ) -> HybridModel:
        """Replace unknowns by closed-form expressions in their arguments.

        Parameters
        ----------
        expressions : mapping unknown name -> sympy expression or str
            Expression in the unknown's (formal) argument symbols :attr:`Unknown.args` (and any
            ``params``); an unknown applied in several places is replaced in each at its own
            arguments.  A
            string is read by :func:`udesci.expr.parse_expression` (never evaluated)
            with the model's symbols, the names in ``params`` and the unknowns.
        learnable : iterable of Symbol
            New parameters (from ``params``) to mark learnable.
        params : mapping Symbol -> float, optional
            Extra parameters introduced by the expressions (e.g. coefficients).

        Returns
        -------
        HybridModel
            New model; parameters keep their current (trained) values, the
            networks of unknowns not substituted keep their weights, and the
            declared ``bounds`` are kept.

        Raises
        ------
        ModelError
            If a name is not an unknown of this model or an expression is neither a
            SymPy expression (or number) nor a string.
        ConfigError
            If an expression string is outside the safe grammar of
            :func:`udesci.expr.parse_expression`.
        """
        for name in expressions:
            if name not in self.unknowns:
                raise ModelError(f"expressions: {name!r} is not an unknown of this model ({sorted(self.unknowns)}).")
        names = {str(s): s for s in (self.time, *self.states, *self.inputs, *self.params)}
        names.update((str(k), _as_symbol(k, "params key")) for k in (params or {}))
        functions = {n: u.function for n, u in self.unknowns.items()}
        repl = {}
        for n, e in expressions.items():
            repl.update(self.unknowns[n].applied(_expression(e, names, functions, f"expressions[{n!r}]")))
        eqs = {s: rhs.xreplace(repl) for s, rhs in self.equations.items()}
        values = self.parameter_values()
        learn = set(learnable) | self.learnable
        new_params: dict = {}
        for sym, val in {**values, **(params or {})}.items():
            new_params[sym] = Learnable(val) if sym in learn else val
        keep = {n: copy.deepcopy(net) for n, net in self.networks().items() if n not in expressions}
        model = HybridModel(
            eqs,
            new_params,
            self.inputs,
            states=self.states,
            time=self.time,
            networks=keep,
            bounds=self.bounds,
            **self.net_options,
        )
        model.module.to(self.module.dtype)
        return model

    def __repr__(self) -> str:
        from .display import model_repr

        return model_repr(self)

    def __str__(self) -> str:
        from .display import format_number, substituted_equations

        lines = [f"HybridModel({len(self.states)} states, {len(self.unknowns)} unknowns)"]
        for s, rhs in substituted_equations(self).items():
            lines.append(f"  d{s}/d{self.time} = {rhs}")
        if self.params:
            values = ", ".join(
                f"{k} = {format_number(v)}" + (" (learnable)" if k in self.learnable else "")
                for k, v in self.parameter_values().items()
            )
            lines.append(f"  parameters: {values}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from .display import model_html

        return model_html(self)

    def _repr_latex_(self) -> str:
        from .display import equations_latex

        return "$$" + equations_latex(self) + "$$"
