"""SINDy-alone baselines: PySINDy identifying the whole right-hand side from the noisy data.

The baseline is ``SINDy(STLSQ(threshold), PolynomialLibrary(degree=2),
SmoothedFiniteDifference())`` with PySINDy's default threshold 0.1
(:data:`DEFAULT_THRESHOLD`), or with the threshold chosen per run from a sweep
(:data:`SWEEP_THRESHOLDS`, 0.01 … 1) by BIC of the simulated model's misfit to
the data, taking the sparsest model within 2 BIC units of the best — the rule
udesci's own selection applies (:func:`udesci.discovery.information_criterion`,
:func:`udesci.discovery.parsimonious`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError, describe

SWEEP_THRESHOLDS = tuple(float(v) for v in np.round(np.geomspace(0.01, 1.0, 13), 6))
DEFAULT_THRESHOLD = 0.1


class _Fit(NamedTuple):
    """One STLSQ fit of the sweep: the candidate :func:`udesci.discovery.parsimonious` chooses among."""

    threshold: float
    model: object  # pysindy.SINDy
    coefficients: np.ndarray  # (n, K)
    powers: np.ndarray  # (K, n)
    score: float  # BIC
    support: np.ndarray  # indices of the non-zero coefficients


def sindy_baseline(
    t: np.ndarray,
    y: np.ndarray,
    names: tuple[str, ...] | list[str] = ("x", "y"),
    threshold: float | str = "sweep",
    thresholds: Iterable[float] = SWEEP_THRESHOLDS,
    parsimony: float = 2.0,
) -> dict:
    """SINDy alone on one observed trajectory: the sparse quadratic right-hand side.

    Fits ``ps.SINDy(optimizer=ps.STLSQ(threshold), feature_library=ps.PolynomialLibrary(degree=2),
    differentiation_method=ps.SmoothedFiniteDifference())`` to the (noisy) observations.

    Parameters
    ----------
    t : ndarray of shape (T,)
    y : ndarray of shape (T, n)
        Observations of every state (no missing values).
    names : sequence of str
        State names, one per column.
    threshold : float or "sweep", default "sweep"
        STLSQ threshold; ``"sweep"`` fits every value in ``thresholds`` and
        keeps the sparsest model within ``parsimony`` BIC units of the best,
        BIC computed from the misfit to the observations of the model
        simulated from the smoothed first observation (each state scaled by
        its standard deviation; a model that blows up scores inf) — the
        criterion udesci's own selection uses.
    thresholds : iterable of float
        Sweep values (default: 13 values from 0.01 to 1, geometric).
    parsimony : float, default 2.0

    Returns
    -------
    dict
        ``threshold`` (chosen), ``features`` (names such as ``"x y"``),
        ``coefficients`` (n, K) list, ``terms`` (state -> sorted list of
        feature names with a non-zero coefficient), ``equations`` (state ->
        string), ``bic``, the fitted ``powers`` (K, n) list and the
        ``initial_state`` the simulations start from (the smoothed first observation).

    Raises
    ------
    ConfigError
        For a threshold that is neither a positive number nor ``"sweep"``, or
        observations that are not a finite (T, len(names)) array.
    """
    import warnings

    import pysindy as ps
    from scipy.signal import savgol_filter

    from ..discovery import information_criterion, parsimonious

    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    if y.ndim != 2 or y.shape != (t.size, len(names)) or not np.all(np.isfinite(y)):
        raise ConfigError(
            f"y: expected a finite array of shape ({t.size}, {len(names)}), received {describe(y)}"
            + (" with non-finite values." if y.size and not np.all(np.isfinite(y)) else ".")
        )
    if threshold == "sweep":
        candidates = [float(v) for v in thresholds]
    elif isinstance(threshold, (int, float)) and not isinstance(threshold, bool) and threshold > 0:
        candidates = [float(threshold)]
    else:
        raise ConfigError(f"threshold: expected a positive number or 'sweep', received {threshold!r}.")
    window = min(11, t.size - (1 - t.size % 2))  # savgol needs an odd window no longer than the series
    smooth = savgol_filter(y, window, 3, axis=0) if window > 3 else y
    scale = np.where(y.std(axis=0) > 0, y.std(axis=0), 1.0)
    n_res = y.size
    fits = []
    for thr in candidates:
        model = ps.SINDy(
            optimizer=ps.STLSQ(threshold=thr),
            feature_library=ps.PolynomialLibrary(degree=2),
            differentiation_method=ps.SmoothedFiniteDifference(smoother_kws={"window_length": window, "polyorder": 3}),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ill-conditioning and "sparsity parameter too big" notes
            model.fit(y, t=t, feature_names=list(names))
        coef = np.asarray(model.coefficients(), dtype=float)
        powers = np.asarray(model.feature_library.powers_, dtype=int)
        sim = simulate_polynomial(coef, powers, smooth[0], t)
        rss = float(np.sum(((sim - y) / scale) ** 2)) if np.all(np.isfinite(sim)) else math.inf
        support = np.flatnonzero(coef)
        fits.append(_Fit(thr, model, coef, powers, information_criterion(rss, n_res, support.size), support))
    # ranked by score, then size: when every model blows up, the sparsest one (threshold order breaks ties)
    chosen = parsimonious(sorted(fits, key=lambda f: (f.score, f.support.size)), parsimony)
    coef, features = chosen.coefficients, list(chosen.model.get_feature_names())
    terms = {s: sorted(features[j] for j in np.flatnonzero(coef[i])) for i, s in enumerate(names)}
    equations = {
        s: " + ".join(f"{coef[i, j]:.4g}*{features[j]}" for j in np.flatnonzero(coef[i])) or "0"
        for i, s in enumerate(names)
    }
    return {
        "threshold": chosen.threshold,
        "features": features,
        "coefficients": coef.tolist(),
        "powers": chosen.powers.tolist(),
        "terms": terms,
        "equations": equations,
        "bic": chosen.score,
        "initial_state": smooth[0].tolist(),
    }


def simulate_polynomial(coefficients, powers, y0, t, bound: float = 1e3) -> np.ndarray:
    """Simulate ``dy/dt = C @ monomials(y)``; rows after a blow-up (``|y| > bound``) are inf.

    Parameters
    ----------
    coefficients : array (n, K)
        ``C``: row ``i`` holds the coefficients of ``dy_i/dt`` on the ``K`` monomials.
    powers : array (K, n)
        Exponent of each state in each monomial.
    y0 : array (n,)
    t : array (T,)
        Output times, increasing; the solve starts at ``t[0]``.
    bound : float
        The solve stops (and the remaining rows are inf) once some ``|y_i|`` exceeds it.

    Returns
    -------
    ndarray of shape (T, n)
    """
    from scipy.integrate import solve_ivp

    C, P = np.asarray(coefficients, dtype=float), np.asarray(powers, dtype=int)

    def rhs(_t, y):
        return C @ np.prod(y[None, :] ** P, axis=1)

    def escape(_t, y):
        return bound - float(np.max(np.abs(y)))

    escape.terminal = True
    out = np.full((np.size(t), C.shape[0]), np.inf)
    sol = solve_ivp(
        rhs, (t[0], t[-1]), np.asarray(y0, dtype=float), t_eval=t, method="LSODA", rtol=1e-8, atol=1e-10, events=escape
    )
    if sol.y.size:
        out[: sol.y.shape[1]] = sol.y.T
    return out


def lv_baseline(t: np.ndarray, noisy: np.ndarray, threshold: float | str = "sweep") -> dict:
    """The SINDy-only baseline on Lotka–Volterra data, assessed like the udesci pipeline.

    "Correct structure" means dx/dt has exactly the terms {x, x y} and dy/dt
    exactly {y, x y}; β and γ come from the x y coefficients; the
    extrapolation error is the RMSE against the truth on t ∈ [0, 30] (601
    points) from the smoothed first observation (inf if the model blows up).

    Parameters
    ----------
    t : ndarray (T,)
    noisy : ndarray (T, 2)
        Observed prey and predator.
    threshold : float or "sweep"
        See :func:`sindy_baseline`.

    Returns
    -------
    dict
        ``correct_structure``, ``beta``, ``gamma``, ``beta_rel_error``,
        ``gamma_rel_error``, ``extrapolation_rmse``, ``threshold``, ``terms``,
        ``equations``.

    Raises
    ------
    ConfigError
        As :func:`sindy_baseline`.
    """
    from ..evaluate import rmse
    from ..pipelines.lotka_volterra import ALPHA, BETA, DELTA, GAMMA, U0

    fit = sindy_baseline(t, noisy, ("x", "y"), threshold)
    features = fit["features"]
    coef = np.asarray(fit["coefficients"])
    j = features.index("x y")
    beta, gamma = -coef[0, j], coef[1, j]
    correct = fit["terms"]["x"] == ["x", "x y"] and fit["terms"]["y"] == ["x y", "y"]
    t_long = np.linspace(0.0, 30.0, 601)
    powers = np.asarray(fit["powers"])
    truth = simulate_polynomial(_lv_truth(features, ALPHA, BETA, GAMMA, DELTA), powers, U0, t_long)
    found = simulate_polynomial(coef, powers, fit["initial_state"], t_long)
    return {
        "correct_structure": bool(correct),
        "beta": float(beta),
        "gamma": float(gamma),
        "beta_rel_error": abs(beta - BETA) / BETA,
        "gamma_rel_error": abs(gamma - GAMMA) / GAMMA,
        "extrapolation_rmse": rmse(found, truth),  # inf if the model blows up
        "threshold": fit["threshold"],
        "terms": fit["terms"],
        "equations": fit["equations"],
    }


def _lv_truth(features, alpha, beta, gamma, delta) -> np.ndarray:
    C = np.zeros((2, len(features)))
    C[0, features.index("x")], C[0, features.index("x y")] = alpha, -beta
    C[1, features.index("y")], C[1, features.index("x y")] = -delta, gamma
    return C
