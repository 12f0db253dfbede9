"""Candidate libraries: the SymPy terms a closed form of an unknown is built from."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations_with_replacement

import numpy as np
import sympy as sp

from ..errors import ConfigError, ModelError, describe
from ..expr import parse_expression
from ..lambdify import as_expression


@dataclass(frozen=True)
class RationalTerms:
    """Saturating rational families of a :class:`Library`: ``m * a**n / (K**n + a**n)``.

    For every argument ``a`` of the unknown and every power ``n`` in ``powers`` (1: Michaelis–Menten
    or Holling type II, ``a/(K + a)``; 2: Hill, ``a**2/(K**2 + a**2)``), times every monomial ``m``
    of the arguments up to degree ``times`` (``m = 1`` included, so ``times=1`` offers ``y*x/(K + x)``
    in ``U(x, y)``).  The half-saturation constant ``K`` is not guessed.  :meth:`Library.terms` lists
    each family at ``K = median |a|`` (the median over discovery's samples of ``a``; 1 where it is 0 or
    no samples are given).  Discovery then moves each family's ``K`` to where the family, with the
    library's other terms, fits the trained network best (a search in ``log K`` from the grid
    ``multiples * median |a|``), so that the sparse regression has fixed columns at a near-right ``K``;
    a companion column ``d term/dK`` lets the candidates' linear refits move ``K`` further to first
    order (it counts as a parameter, as ``K`` does), and the final refit frees ``K`` (as
    ``exp(log K)``, so that it stays positive) with all coefficients
    (:func:`~udesci.discovery.proposal.unknown_library`, :func:`~udesci.discovery.refit.refit_constants`).
    Odd powers are offered only in arguments that are nonnegative at every sample (``a/(K + a)``
    has a pole at ``a = -K``).

    Parameters
    ----------
    powers : tuple of int, default (1, 2)
        Hill exponents ``n`` (each an int from 1 to 8).
    multiples : tuple of float, default (0.25, 1.0, 4.0)
        Where discovery's search for each family's ``K`` starts, in units of the argument's median
        magnitude (positive, finite); it searches up to 4 times beyond the ends.
    times : int, default 1
        Multiply each family by the monomials of the arguments up to this degree (0: bare families).

    Raises
    ------
    ConfigError
        For a power that is not an int from 1 to 8, an empty or non-positive ``multiples``, or a
        ``times`` that is not an int from 0 to 3.
    """

    powers: tuple = (1, 2)
    multiples: tuple = (0.25, 1.0, 4.0)
    times: int = 1

    def __post_init__(self):
        powers = self.powers if isinstance(self.powers, (list, tuple)) else None
        if not powers or any(not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 8 for n in powers):
            raise ConfigError(
                f"Library rational powers: expected a non-empty tuple of ints from 1 to 8, received {self.powers!r}."
            )
        mult = self.multiples if isinstance(self.multiples, (list, tuple)) else None
        ok = bool(mult) and all(
            isinstance(m, (int, float)) and not isinstance(m, bool) and math.isfinite(m) and m > 0 for m in mult
        )
        if not ok:
            raise ConfigError(
                "Library rational multiples: expected a non-empty tuple of positive finite numbers (where the K "
                f"search starts, in units of each argument's median magnitude), received {self.multiples!r}."
            )
        if not isinstance(self.times, int) or isinstance(self.times, bool) or not 0 <= self.times <= 3:
            raise ConfigError(f"Library rational times: expected an int from 0 to 3, received {self.times!r}.")
        object.__setattr__(self, "powers", tuple(dict.fromkeys(powers)))
        object.__setattr__(self, "multiples", tuple(sorted({float(m) for m in mult})))


@dataclass(frozen=True)
class SaturatingTerm:
    """One rational term of a library, ``multiplier * argument**power / (K**power + argument**power)``.

    Attributes
    ----------
    expression : sympy.Expr
        The term with ``K`` as a number.
    multiplier : sympy.Expr
        The monomial ``m`` (1 for a bare family).
    argument : sympy.Symbol
    power : int
    K : float
        Its half-saturation constant (positive).
    """

    expression: sp.Expr
    multiplier: sp.Expr
    argument: sp.Symbol
    power: int
    K: float

    @property
    def family(self) -> tuple:
        """``(multiplier, argument, power)``: what terms differing only in ``K`` share."""
        return (self.multiplier, self.argument, self.power)

    def at(self, K) -> sp.Expr:
        """The same family at another ``K`` (a positive number or a SymPy expression such as ``exp(s)``)."""
        return saturating(self.multiplier, self.argument, self.power, K)

    def slope(self) -> sp.Expr:
        """``d term / dK`` at this ``K``: with it as a companion column, ``c * term + b * slope`` is the
        term at ``K + b/c`` to first order, so linear refits move ``K`` too."""
        k = sp.Dummy("K", positive=True)
        return sp.diff(self.at(k), k).subs(k, sp.Float(self.K, 15))


def saturating(multiplier, argument, power: int, K) -> sp.Expr:
    """``multiplier * argument**power / (K**power + argument**power)`` (a number ``K`` as a 15-digit Float)."""
    K = sp.Float(float(K), 15) if isinstance(K, (int, float, np.floating)) else K
    a_n = argument**power
    return multiplier * a_n / (K**power + a_n)


def round_constant(K: float, digits: int = 3) -> float:
    """``K`` to ``digits`` significant digits (starting values of ``K``: short labels)."""
    return float(f"{K:.{digits - 1}e}")


def typical_magnitude(values) -> float:
    """The median magnitude of ``values`` (finite ones), or 1 where that is 0 or there are none."""
    v = np.abs(np.asarray(values, dtype=float).reshape(-1))
    v = v[np.isfinite(v)]
    med = float(np.median(v)) if v.size else 0.0
    return med if med > 0 else 1.0


@dataclass(frozen=True)
class Library:
    """Candidate terms for an unknown function, built in its own arguments.

    Parameters
    ----------
    degree : int, default 2
        Polynomial terms up to this total degree.
    constant : bool, default True
        Include the constant term.
    trig : bool, default False
        Include ``sin(a)`` and ``cos(a)`` for every argument ``a``.
    extra : sequence of sympy.Expr or str, default ()
        Further terms, in the unknown's argument symbols (strings are matched
        to argument names and parsed safely).  Their constants stay as given.
    rational : bool, dict or RationalTerms, default False
        Saturating rational families ``m * a**n / (K**n + a**n)`` in each argument ``a``, with ``K``
        fitted by the final refit (:class:`RationalTerms`; ``True`` for its defaults, a dict for its
        options).  Off by default.

    Raises
    ------
    ConfigError
        For a negative degree, an extra term using symbols that are not
        arguments of the unknown, or a ``rational`` that is not a bool, a dict of
        :class:`RationalTerms` options or a RationalTerms.
    """

    degree: int = 2
    constant: bool = True
    trig: bool = False
    extra: tuple = ()
    rational: RationalTerms | None = None

    def __post_init__(self):
        if not isinstance(self.degree, int) or self.degree < 0:
            raise ConfigError(f"Library degree: expected an int >= 0, received {self.degree!r}.")
        object.__setattr__(self, "extra", tuple(self.extra))
        rational = self.rational
        if rational is True:
            rational = RationalTerms()
        elif rational is False:
            rational = None
        elif isinstance(rational, Mapping):
            bad = sorted(set(rational) - {"powers", "multiples", "times"})
            if bad:
                raise ConfigError(
                    f"Library rational: unknown options {bad}; expected some of ['multiples', 'powers', 'times']."
                )
            rational = RationalTerms(**rational)
        elif rational is not None and not isinstance(rational, RationalTerms):
            raise ConfigError(
                "Library rational: expected True, False, a dict of RationalTerms options or a "
                f"udesci.discovery.library.RationalTerms, received {describe(rational)}."
            )
        object.__setattr__(self, "rational", rational)

    def saturating_terms(self, args: Sequence[sp.Symbol], samples: Mapping | None = None) -> list[SaturatingTerm]:
        """The rational terms of the library (empty without ``rational``), each at ``K = median |a|``.

        Parameters
        ----------
        args : sequence of sympy.Symbol
            The unknown's arguments.
        samples : mapping symbol -> array-like of shape (N,), optional
            Values of the arguments at discovery's samples: ``K`` is the median magnitude of ``a``
            there (3 significant digits), and odd powers are offered only in arguments nonnegative
            at every sample.  Without samples, ``K = 1`` and every power is offered.

        Returns
        -------
        list of SaturatingTerm
            By argument, power, then multiplier (constant first, then by degree).
        """
        if self.rational is None:
            return []
        opts = self.rational
        multipliers = [sp.Integer(1)]
        for d in range(1, opts.times + 1):
            multipliers += [sp.Mul(*combo) for combo in combinations_with_replacement(args, d)]
        out = []
        for a in args:
            values = None if samples is None or a not in samples else np.asarray(samples[a], dtype=float)
            scale = 1.0 if values is None else typical_magnitude(values)
            nonnegative = values is None or bool(np.all(values[np.isfinite(values)] >= 0))
            K = round_constant(scale)
            for n in opts.powers:
                if n % 2 and not nonnegative:
                    continue
                for m in multipliers:
                    out.append(SaturatingTerm(saturating(m, a, n, K), m, a, n, K))
        return out

    def terms(self, args: Sequence[sp.Symbol], samples: Mapping | None = None) -> list[sp.Expr]:
        """Library terms in ``args`` (no duplicates, deterministic order).

        Parameters
        ----------
        args : sequence of sympy.Symbol
            The unknown's arguments.
        samples : mapping symbol -> array-like of shape (N,), optional
            The arguments' values at discovery's samples, for the ``K`` of the rational terms
            (see :meth:`saturating_terms`); unused without ``rational``.

        Returns
        -------
        list of sympy.Expr
            Constant, monomials up to ``degree``, ``sin``/``cos`` with ``trig``, the rational terms
            with ``rational``, then ``extra``.

        Raises
        ------
        ConfigError
            For an extra term that is not a SymPy expression or string, or uses other symbols.
        """
        out: list[sp.Expr] = [sp.Integer(1)] if self.constant else []
        for d in range(1, self.degree + 1):
            for combo in combinations_with_replacement(args, d):
                out.append(sp.Mul(*combo))
        if self.trig:
            for a in args:
                out += [sp.sin(a), sp.cos(a)]
        out += [t.expression for t in self.saturating_terms(args, samples)]
        names = {str(a): a for a in args}
        for term in self.extra:
            if isinstance(term, str):
                term = parse_expression(term, names, where="Library extra")
            try:
                term = as_expression(term, "Library extra")
            except ModelError as err:
                raise ConfigError(str(err)) from None
            stray = {str(s) for s in term.free_symbols} - set(names)
            if stray:
                raise ConfigError(
                    f"Library extra term {term}: uses {sorted(stray)}, expected only the unknown's arguments "
                    f"{sorted(names)}."
                )
            out.append(term)
        seen, unique = set(), []
        for t in out:
            if t not in seen:
                seen.add(t)
                unique.append(t)
        return unique


def as_library(value, args: Sequence[sp.Symbol] | None = None, where: str = "library") -> Library:
    """A :class:`Library` from a Library, a plain list of terms, or None (the default library).

    Parameters
    ----------
    value : Library, list or tuple of (sympy.Expr, str or real number), or None
        A list is taken as exactly those candidate terms (no polynomial terms, no constant unless
        listed), e.g. ``[x, y, x*y, x**2*y]``; strings are parsed safely in the argument names,
        numbers are constants.
    args : sequence of sympy.Symbol, optional
        The unknown's arguments: when given, every term is checked now to use only these.
    where : str, default "library"
        How the argument is named in error messages (e.g. ``"library['U']"``).

    Returns
    -------
    Library

    Raises
    ------
    ConfigError
        For anything else, an empty list, an entry that is neither a SymPy expression, a string nor a
        real number (naming its position), a term equal to 0, or (with ``args``) a term in other symbols.
    """
    if value is None:
        lib = Library()
    elif isinstance(value, Library):
        lib = value
    elif isinstance(value, (list, tuple)):
        if not value:
            raise ConfigError(
                f"{where}: expected at least one candidate term, received an empty {type(value).__name__}."
            )
        for i, term in enumerate(value):
            ok = isinstance(term, (sp.Expr, str)) or (isinstance(term, (int, float)) and not isinstance(term, bool))
            if not ok:
                raise ConfigError(
                    f"{where}[{i}]: expected a SymPy expression (or a string or number), received {describe(term)}."
                )
            if isinstance(term, (sp.Expr, int, float)) and sp.sympify(term) == 0:
                raise ConfigError(f"{where}[{i}]: a candidate term is 0; list only nonzero terms.")
        lib = Library(degree=0, constant=False, extra=tuple(value))
    else:
        raise ConfigError(
            f"{where}: expected a udesci.Library or a list of SymPy terms (e.g. [x, y, x*y]), "
            f"received {describe(value)}."
        )
    if args is not None:
        try:
            lib.terms(args)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
    return lib
