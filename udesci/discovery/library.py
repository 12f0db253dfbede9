"""Candidate libraries: the SymPy terms a closed form of an unknown is built from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations_with_replacement

import sympy as sp

from ..errors import ConfigError, ModelError, describe
from ..expr import parse_expression
from ..lambdify import as_expression


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
        to argument names and parsed safely).

    Raises
    ------
    ConfigError
        For a negative degree or an extra term using symbols that are not
        arguments of the unknown.
    """

    degree: int = 2
    constant: bool = True
    trig: bool = False
    extra: tuple = ()

    def __post_init__(self):
        if not isinstance(self.degree, int) or self.degree < 0:
            raise ConfigError(f"Library degree: expected an int >= 0, received {self.degree!r}.")
        object.__setattr__(self, "extra", tuple(self.extra))

    def terms(self, args: Sequence[sp.Symbol]) -> list[sp.Expr]:
        """Library terms in ``args`` (no duplicates, deterministic order).

        Parameters
        ----------
        args : sequence of sympy.Symbol
            The unknown's arguments.

        Returns
        -------
        list of sympy.Expr
            Constant, monomials up to ``degree``, ``sin``/``cos`` with ``trig``, then ``extra``.

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
