"""Information criteria and the parsimony rule that pick among candidate closed forms."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError

CRITERIA = ("bic", "aic")


def information_criterion(sse, n, k, criterion: str = "bic"):
    """BIC or AIC of a Gaussian misfit with its own unknown noise variance per state.

    ``sum_i n_i log(SSE_i / n_i) + penalty * k`` over the observed states ``i``, with
    ``penalty = log(sum_i n_i)`` (BIC) or 2 (AIC).  Lower is better.

    Parameters
    ----------
    sse : float or array ending in the state axis
        Sum of squared (scaled) residuals, per state.  A scalar is one pooled state.
    n : float or array broadcastable to ``sse``
        Observations behind each entry of ``sse``.
    k : int or array matching the leading axes of ``sse``
        Free parameters.
    criterion : {"bic", "aic"}, default "bic"

    Returns
    -------
    float for scalar ``sse``, else ndarray of the leading shape of ``sse``
        ``inf`` where a misfit is not finite.

    Raises
    ------
    ConfigError
        For an unknown criterion.
    """
    if criterion not in CRITERIA:
        raise ConfigError(f"criterion: expected one of {CRITERIA}, received {criterion!r}.")
    if np.ndim(sse) == 0 and np.ndim(n) == 0 and np.ndim(k) == 0:
        sse, n = float(sse), float(n)
        if not math.isfinite(sse):
            return math.inf
        return n * math.log(max(sse, 1e-300) / n) + (math.log(n) if criterion == "bic" else 2.0) * k
    sse, n = np.asarray(sse, dtype=float), np.broadcast_to(np.asarray(n, dtype=float), np.shape(sse))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(n > 0, n * np.log(np.maximum(sse, 1e-300) / np.maximum(n, 1.0)), 0.0)
        total = n.sum(-1)
        penalty = np.log(np.maximum(total, 1.0)) if criterion == "bic" else 2.0
        score = terms.sum(-1) + penalty * k
    return np.where(np.isfinite(sse).all(-1), score, np.inf)


def parsimonious(ranked: list, margin: float):
    """The sparsest candidate whose score is within ``margin`` of the best.

    Parameters
    ----------
    ranked : list of objects with ``score`` (float) and ``support`` (sized)
        Sorted best score first.
    margin : float
        Criterion units (6 = Kass & Raftery's "strong evidence").

    Returns
    -------
    The chosen element (ties in size: the lower score); the first one if no score is finite.
    """
    best = ranked[0]
    if not math.isfinite(best.score):
        return best
    close = [c for c in ranked if c.score <= best.score + margin]
    return min(close, key=lambda c: (len(c.support), c.score))
