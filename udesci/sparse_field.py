"""Right-hand sides of many states evaluated as one sparse polynomial instead of one expression each.

A lambdified right-hand side costs a few torch operations per equation, so a method-of-lines model of
1,000 cells spends milliseconds of Python per field evaluation.  :class:`SparsePolynomial` reads each
right-hand side that is a polynomial with numeric coefficients in the field's columns (time, states,
inputs, learnable parameters and the values of the unknowns' applications) into index tables, grouped
by degree, and evaluates all of them with a handful of gathers, products and one ``index_add`` per
degree; the equations that are not polynomial stay lambdified.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import sympy as sp
import torch
from torch import nn

from .lambdify import broadcast_outputs, torch_function

# a model with at least this many states evaluates its right-hand sides with SparsePolynomial.  Measured
# (Lorenz-96-like polynomial fields plus one unknown, 16 rows, one evaluation): lambdified 86, 139, 208,
# 588 µs at 2, 8, 16, 64 states; tables 118, 122, 124, 136 µs.  Below it the lambdified expressions are
# faster, and small models keep their results bit for bit.
SPARSE_MIN_STATES = 8


def polynomial_terms(expr: sp.Expr, position: dict) -> list[tuple[float, tuple[int, ...]]] | None:
    """``expr`` as a sum of ``coefficient * prod(columns)`` terms, or None when it is not a polynomial
    with finite numeric coefficients in ``symbols``.

    Parameters
    ----------
    expr : sympy.Expr
    position : dict sympy.Symbol -> int
        The columns' symbols and their positions.

    Returns
    -------
    list of (float, tuple of int) or None
        Each term's coefficient and the positions of its factors, repeated by their powers (``()``
        for a constant).
    """
    free = expr.free_symbols
    if not free <= position.keys():
        return None
    gens = sorted(free, key=position.__getitem__)
    if not gens:
        value = complex(expr) if expr.is_number else None
        if value is None or value.imag != 0 or not abs(value.real) < float("inf"):
            return None
        return [(value.real, ())] if value.real != 0 else []
    try:
        poly = sp.Poly(expr, *gens)
    except (sp.PolynomialError, sp.GeneratorsNeeded, sp.CoercionFailed, ValueError, TypeError):
        return None
    out = []
    for monom, coeff in poly.terms():
        if not coeff.is_number or not coeff.is_real:
            return None
        c = float(coeff)
        if not abs(c) < float("inf"):
            return None
        factors = tuple(position[g] for g, k in zip(gens, monom, strict=True) for _ in range(k))
        out.append((c, factors))
    return out


class SparsePolynomial(nn.Module):
    """Right-hand sides ``f_i(v)`` of columns ``v``: the polynomial ones from index tables, the others
    lambdified.

    Parameters
    ----------
    exprs : sequence of sympy.Expr, length n
        One right-hand side per output.
    symbols : sequence of sympy.Symbol, length P
        The columns they are written in, in the order of ``v``'s last axis.

    Call it with ``v`` of shape ``(..., P)``; returns ``(..., n)``.  The tables are non-persistent
    buffers: they follow ``.to(dtype)`` and are not part of a ``state_dict``.
    """

    def __init__(self, exprs: Sequence[sp.Expr], symbols: Sequence[sp.Symbol]):
        super().__init__()
        self.n_out = len(exprs)
        symbols = list(symbols)
        position = {s: i for i, s in enumerate(symbols)}
        groups: dict[int, list] = defaultdict(list)
        rest_rows, rest_exprs = [], []
        for i, expr in enumerate(exprs):
            terms = polynomial_terms(expr, position)
            if terms is None:
                rest_rows.append(i)
                rest_exprs.append(expr)
                continue
            for c, factors in terms:
                groups[len(factors)].append((i, c, factors))
        self.degrees = sorted(groups)
        for d in self.degrees:
            rows = [r for r, _, _ in groups[d]]
            self.register_buffer(f"_rows{d}", torch.tensor(rows, dtype=torch.long), persistent=False)
            coef = torch.tensor([c for _, c, _ in groups[d]], dtype=torch.float64)
            self.register_buffer(f"_coef{d}", coef, persistent=False)
            factors = torch.tensor([f for _, _, f in groups[d]], dtype=torch.long).reshape(len(rows), d)
            self.register_buffer(f"_factors{d}", factors.t().contiguous(), persistent=False)
        self.rest_exprs = rest_exprs
        used = sorted({position[s] for e in rest_exprs for s in e.free_symbols if s in position})
        self.rest_symbols = [symbols[j] for j in used]
        self.register_buffer("_rest_rows", torch.tensor(rest_rows, dtype=torch.long), persistent=False)
        self.register_buffer("_rest_columns", torch.tensor(used, dtype=torch.long), persistent=False)
        self._rest_fn = torch_function(rest_exprs, self.rest_symbols) if rest_exprs else None

    @property
    def n_polynomial(self) -> int:
        """How many outputs are evaluated from the tables."""
        return self.n_out - len(self.rest_exprs)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_rest_fn"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        # the lambdified function is not picklable: rebuild it from the stored expressions
        self._rest_fn = torch_function(self.rest_exprs, self.rest_symbols) if self.rest_exprs else None

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        out = v.new_zeros(*v.shape[:-1], self.n_out)
        for d in self.degrees:
            rows, coef = getattr(self, f"_rows{d}"), getattr(self, f"_coef{d}")
            if d == 0:
                out = out.index_add(-1, rows, coef.expand(*v.shape[:-1], -1))
                continue
            factors = getattr(self, f"_factors{d}")
            term = v[..., factors[0]]
            for k in range(1, d):
                term = term * v[..., factors[k]]
            out = out.index_add(-1, rows, term * coef)
        if self._rest_fn is not None:
            cols = v[..., self._rest_columns].unbind(-1)
            rest = broadcast_outputs(self._rest_fn(*cols), v[..., 0])
            out = out.index_add(-1, self._rest_rows, rest)
        return out
