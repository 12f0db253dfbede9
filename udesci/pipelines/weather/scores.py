"""Forecast verification: RMSE and bias by lead time, MSE skill scores with bootstrap intervals over days.

Errors are ``e[d, l] = forecast - observed`` for forecast day ``d`` (one issue per test day) and lead
``l = 1..24`` hours.  Definitions:

* ``RMSE(l) = sqrt(mean_d e[d, l]²)``, ``bias(l) = mean_d e[d, l]``; the 24-h values pool all leads;
* ``SDE`` = standard deviation of the errors (pooled over days and leads): the spread about the bias;
* MSE skill score against a reference forecast ``r``: ``SS = 1 - sum e² / sum e_r²`` over the same days
  and leads (1 = perfect, 0 = as good as the reference, negative = worse);
* 95 % intervals: percentile bootstrap resampling whole test days (with replacement), so the dependence
  between the leads of one forecast is kept.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...errors import DataError

BOOTSTRAP = 2000
LEADS_SHOWN = (1, 6, 12, 24)


class Skill(NamedTuple):
    """An MSE skill score and its bootstrap interval.

    Attributes
    ----------
    value : float
    low, high : float
        2.5 % and 97.5 % bootstrap percentiles.
    """

    value: float
    low: float
    high: float

    def text(self) -> str:
        """``+0.12 [+0.03, +0.20]``, or ``n/a`` when not finite."""
        if not np.isfinite(self.value):
            return "n/a"
        return f"{self.value:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


def _errors(errors, where: str) -> np.ndarray:
    e = np.asarray(errors, dtype=float)
    if e.ndim != 2 or e.shape[0] < 1:
        raise DataError(f"{where}: expected errors of shape (days, leads), received shape {e.shape}.")
    return e


def lead_errors(pred, obs) -> np.ndarray:
    """Forecast errors by day and lead, dropping the issue time.

    Parameters
    ----------
    pred, obs : array of shape (days, horizon + 1)
        Forecasts and observations at leads 0..horizon (lead 0 is the issue time).

    Returns
    -------
    ndarray of shape (days, horizon)
        ``pred - obs`` at leads 1..horizon; NaN where a forecast failed.

    Raises
    ------
    DataError
        If the shapes differ.
    """
    p, o = np.asarray(pred, dtype=float), np.asarray(obs, dtype=float)
    if p.shape != o.shape or p.ndim != 2:
        raise DataError(f"pred, obs: expected equal shapes (days, horizon + 1), received {p.shape} and {o.shape}.")
    return p[:, 1:] - o[:, 1:]


def rmse_by_lead(errors) -> np.ndarray:
    """Root-mean-square error at each lead.

    Parameters
    ----------
    errors : array of shape (days, leads)

    Returns
    -------
    ndarray of shape (leads,)
        NaN (or inf) where a forecast failed.
    """
    return np.sqrt(np.mean(_errors(errors, "errors") ** 2, axis=0))


def bias_by_lead(errors) -> np.ndarray:
    """Mean error (forecast minus observed) at each lead.

    Parameters
    ----------
    errors : array of shape (days, leads)

    Returns
    -------
    ndarray of shape (leads,)
    """
    return np.mean(_errors(errors, "errors"), axis=0)


def skill_by_lead(errors, reference) -> np.ndarray:
    """MSE skill score against a reference forecast at each lead.

    Parameters
    ----------
    errors, reference : array of shape (days, leads)

    Returns
    -------
    ndarray of shape (leads,)
        ``1 - mean_d e² / mean_d e_ref²``.
    """
    e, r = _errors(errors, "errors"), _errors(reference, "reference")
    return 1.0 - np.mean(e**2, axis=0) / np.mean(r**2, axis=0)


def bootstrap_days(n_days: int, n_boot: int = BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """Resampled day indices for the bootstrap.

    Parameters
    ----------
    n_days : int
    n_boot : int, default 2000
    seed : int, default 0

    Returns
    -------
    ndarray of int, shape (n_boot, n_days)
    """
    return np.random.default_rng(seed).integers(0, n_days, size=(n_boot, n_days))


def mse_skill(errors, reference, days: np.ndarray | None = None) -> Skill:
    """MSE skill score over all days and leads, with a day-resampling bootstrap interval.

    Parameters
    ----------
    errors, reference : array of shape (days, leads)
        The forecast's and the reference forecast's errors on the same days.
    days : int array of shape (n_boot, days), optional
        Bootstrap resamples (default :func:`bootstrap_days` with seed 0); pass the same array to every
        score so that all intervals come from the same resampled days.

    Returns
    -------
    Skill

    Raises
    ------
    DataError
        If the shapes differ.
    """
    e, r = _errors(errors, "errors"), _errors(reference, "reference")
    if e.shape != r.shape:
        raise DataError(f"errors, reference: expected equal shapes, received {e.shape} and {r.shape}.")
    se, sr = np.sum(e**2, axis=1), np.sum(r**2, axis=1)
    value = 1.0 - se.sum() / sr.sum()
    if not np.isfinite(value):
        return Skill(float("nan"), float("nan"), float("nan"))
    idx = bootstrap_days(len(se)) if days is None else days
    boot = 1.0 - se[idx].sum(axis=1) / sr[idx].sum(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return Skill(float(value), float(low), float(high))


def score_table(errors: dict, references=("persistence", "yesterday"), seed: int = 0) -> dict:
    """The compact verification table of one station, setting and window.

    Parameters
    ----------
    errors : dict method -> array of shape (days, leads)
        Must hold the reference methods.
    references : sequence of str
        Methods the skill scores compare against.
    seed : int
        Of the bootstrap resamples (shared by every row).

    Returns
    -------
    dict method -> dict
        ``RMSE`` (24-h pooled), ``bias``, ``SDE``, ``RMSE +Lh`` for the leads in :data:`LEADS_SHOWN`, and
        ``SS vs <reference>`` (:class:`Skill`) for each reference other than the method itself.

    Raises
    ------
    DataError
        If a reference is missing.
    """
    missing = [r for r in references if r not in errors]
    if missing:
        raise DataError(f"errors: expected the reference methods {missing} too, received {sorted(errors)}.")
    n_days = _errors(next(iter(errors.values())), "errors").shape[0]
    days = bootstrap_days(n_days, seed=seed)
    table = {}
    for name, e in errors.items():
        e = _errors(e, f"errors[{name!r}]")
        by_lead = rmse_by_lead(e)
        row = {
            "RMSE": float(np.sqrt(np.mean(e**2))),
            "bias": float(np.mean(e)),
            "SDE": float(np.std(e)) if np.isfinite(e).all() else float("inf"),
            **{f"RMSE +{lead}h": float(by_lead[lead - 1]) for lead in LEADS_SHOWN if lead <= e.shape[1]},
        }
        for ref in references:
            row[f"SS vs {ref}"] = Skill(0.0, 0.0, 0.0) if ref == name else mse_skill(e, errors[ref], days)
        table[name] = row
    return table
