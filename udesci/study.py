"""Recovery studies: how reliably does discovery find the right equations?

Two layers:

* :func:`run_tasks` runs any sweep (seeds, noise levels, hyper-parameters) in
  parallel behind one small interface, on an embedded process pool
  (``backend="process"``), a Ray cluster (``backend="ray"``, optional
  dependency) or in this process (``backend="serial"``, for debugging).  A task
  that raises is returned as a :class:`TaskFailed` record instead of stopping
  the sweep.
* :func:`recovery_study` runs the full Lotka–Volterra pipeline for every
  (noise level, seed), beside a SINDy-only baseline on the same noisy data
  (:func:`sindy_baseline`), appends each finished run to ``runs.jsonl`` (so an
  interrupted study keeps its runs and a rerun resumes), and writes a table per
  noise level as CSV, JSON and Markdown plus a PNG plot.

The baseline is PySINDy on the noisy trajectory identifying the whole
right-hand side: ``SINDy(STLSQ(threshold), PolynomialLibrary(degree=2),
SmoothedFiniteDifference())`` with PySINDy's default threshold 0.1 (key
``sindy``).  Beside it (key ``sindy_bic``) the threshold is chosen per run from
a sweep (0.01 … 1) by BIC of the simulated model's misfit to the data, taking
the sparsest model within 2 BIC units of the best, the rule udesci's own
selection applies.  On these short (31-sample) trajectories the smoothed
finite-difference derivatives are biased, and the BIC choice usually prefers a
denser model that fits the training window better, so the default threshold is
the stronger baseline and the one the table reports in full.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, describe

BACKENDS = ("process", "ray", "serial")
SWEEP_THRESHOLDS = tuple(float(v) for v in np.round(np.geomspace(0.01, 1.0, 13), 6))
DEFAULT_THRESHOLD = 0.1
RUNS_FILE = "runs.jsonl"


# --------------------------------------------------------------------------------------------------
# executing sweeps


@dataclass(frozen=True)
class TaskFailed:
    """Outcome of a task that raised (or whose worker process died).

    Attributes
    ----------
    error : str
        ``"ExceptionType: message"``.
    traceback : str
        Formatted traceback from the worker (empty if unavailable).
    """

    error: str
    traceback: str = ""


def _single_thread() -> None:
    """Process initialiser: one intra-op thread per worker (workers already run in parallel)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import torch

    torch.set_num_threads(1)


class TaskTimeout(Exception):
    """A task ran past its time limit (raised inside the worker by a timer signal)."""


def _alarm(signum, frame):
    raise TaskTimeout()


def _guarded(fn: Callable, task: Any, timeout: float | None = None) -> Any:
    """Call ``fn(task)``; an exception becomes a :class:`TaskFailed` (picklable, carries the traceback).

    With ``timeout`` (seconds) and a POSIX main thread, a real-time timer interrupts the task.
    """
    import signal
    import threading

    timed = bool(timeout) and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if timed:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, float(timeout))
    try:
        return fn(task)
    except TaskTimeout:
        return TaskFailed(f"TimeoutError: the task ran past the time limit of {timeout:g} s", traceback.format_exc())
    except Exception as exc:  # a failing task is data, not a crash of the sweep
        return TaskFailed(f"{type(exc).__name__}: {exc}", traceback.format_exc())
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0.0)
            signal.signal(signal.SIGALRM, previous)


def _guarded_single_thread(fn: Callable, task: Any, timeout: float | None = None) -> Any:
    _single_thread()
    return _guarded(fn, task, timeout)


def run_tasks(
    fn: Callable[[Any], Any],
    tasks: Iterable,
    backend: str = "process",
    workers: int | None = None,
    address: str | None = None,
    timeout: float | None = None,
) -> Iterator[tuple[Any, Any]]:
    """Run ``fn(task)`` for every task in parallel; yield ``(task, result)`` as each finishes.

    Parameters
    ----------
    fn : callable
        A module-level (picklable) function of one argument.
    tasks : iterable
        Picklable task descriptions (e.g. dicts of seed and hyper-parameters).
    backend : {"process", "ray", "serial"}, default "process"
        ``"process"``: a ``concurrent.futures.ProcessPoolExecutor`` with the
        ``spawn`` context (each worker sets ``torch.set_num_threads(1)``).
        ``"ray"``: Ray tasks of one CPU each, on the cluster at ``address`` or
        on a local Ray instance with ``workers`` CPUs (``ray.init(num_cpus=workers)``).
        ``"serial"``: one after another in this process (debugging).
    workers : int, optional
        Parallel workers (default: the number of CPUs; capped at the number of tasks).
    address : str, optional
        Ray cluster address (``"auto"``, ``"ray://host:10001"``); only with ``backend="ray"``.
    timeout : float, optional
        Seconds a task may run before it is interrupted and recorded as
        failed (a timer signal in the worker: POSIX only, ignored elsewhere).

    Yields
    ------
    task, result
        ``result`` is ``fn(task)``, or a :class:`TaskFailed` if it raised or
        its worker process died (twice: a pool that breaks is rebuilt once for
        the tasks it was running).

    Raises
    ------
    ConfigError
        For an unknown backend, a worker count below 1, a non-positive timeout, an address without
        ``backend="ray"``, or ``backend="ray"`` when Ray is not installed.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend: expected one of {BACKENDS}, received {backend!r}.")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise ConfigError(f"workers: expected an int >= 1, received {workers!r}.")
    if address is not None and backend != "ray":
        raise ConfigError(f"address: only used with --backend ray, received backend {backend!r}.")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0):
        raise ConfigError(f"timeout: expected a positive number of seconds, received {timeout!r}.")
    ray = _import_ray() if backend == "ray" else None
    tasks = list(tasks)
    workers = workers or os.cpu_count() or 1
    if not tasks:
        return iter(())
    if backend == "serial":
        return ((task, _guarded(fn, task, timeout)) for task in tasks)
    if backend == "ray":
        return _run_ray(ray, fn, tasks, workers, address, timeout)
    return _run_process(fn, tasks, min(workers, len(tasks)), timeout)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--backend ray: Ray is not installed; install the optional dependency with "
            "`pip install -e .[distributed]` (or `pip install ray`), or use --backend process."
        ) from None
    return ray


def _run_process(fn, tasks, workers, timeout) -> Iterator[tuple[Any, Any]]:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")
    pending = list(range(len(tasks)))
    crashes = [0] * len(tasks)
    while pending:
        pool = ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=ctx, initializer=_single_thread)
        broken = False
        try:
            futures = {pool.submit(_guarded, fn, tasks[i], timeout): i for i in pending}
            left = set(futures)
            while left and not broken:
                done, left = wait(left, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = futures[fut]
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    pending.remove(i)
                    yield tasks[i], result
        finally:
            pool.shutdown(wait=not broken, cancel_futures=True)
        if broken:
            for i in list(pending):
                crashes[i] += 1
                if crashes[i] >= 2:
                    pending.remove(i)
                    yield tasks[i], TaskFailed("BrokenProcessPool: the worker process running this task died twice")


def _run_ray(ray, fn, tasks, workers, address, timeout) -> Iterator[tuple[Any, Any]]:
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=1)(_guarded_single_thread)
        refs = {remote.remote(fn, task, timeout): task for task in tasks}
        left = list(refs)
        while left:
            done, left = ray.wait(left, num_returns=1)
            for ref in done:
                try:
                    result = ray.get(ref)
                except Exception as exc:  # worker died, object lost, ...: recorded, the sweep goes on
                    result = TaskFailed(re.sub(r"\x1b\[[0-9;]*m", "", f"{type(exc).__name__}: {exc}"))
                yield refs[ref], result
    finally:
        if started:
            ray.shutdown()


# --------------------------------------------------------------------------------------------------
# the SINDy-only baseline


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
        string), ``bic`` and the fitted ``powers`` (K, n) list.

    Raises
    ------
    ConfigError
        For a threshold that is neither a positive number nor ``"sweep"``, or
        observations that are not a finite (T, len(names)) array.
    """
    import warnings

    import pysindy as ps
    from scipy.signal import savgol_filter

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
        k = int(np.count_nonzero(coef))
        bic = n_res * math.log(max(rss, 1e-300) / n_res) + math.log(n_res) * k if math.isfinite(rss) else math.inf
        fits.append((thr, model, coef, powers, bic, k))
    best = min(f[4] for f in fits)
    close = [f for f in fits if f[4] <= best + parsimony]
    thr, model, coef, powers, bic, _ = min(close, key=lambda f: (f[5], f[4]))
    features = list(model.get_feature_names())
    terms = {s: sorted(features[j] for j in np.flatnonzero(coef[i])) for i, s in enumerate(names)}
    equations = {
        s: " + ".join(f"{coef[i, j]:.4g}*{features[j]}" for j in np.flatnonzero(coef[i])) or "0"
        for i, s in enumerate(names)
    }
    return {
        "threshold": thr,
        "features": features,
        "coefficients": coef.tolist(),
        "powers": powers.tolist(),
        "terms": terms,
        "equations": equations,
        "bic": bic,
        "initial_state": smooth[0].tolist(),
    }


def simulate_polynomial(coefficients, powers, y0, t, bound: float = 1e3) -> np.ndarray:
    """Simulate ``dy/dt = C @ monomials(y)``; rows after a blow-up (``|y| > bound``) are inf.

    Parameters
    ----------
    coefficients : array (n, K)
    powers : array (K, n)
    y0 : array (n,)
    t : array (T,)
    bound : float

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
    from .pipelines.lotka_volterra import ALPHA, BETA, DELTA, GAMMA, U0

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
    rmse = float(np.sqrt(np.mean((found - truth) ** 2)))
    return {
        "correct_structure": bool(correct),
        "beta": float(beta),
        "gamma": float(gamma),
        "beta_rel_error": abs(beta - BETA) / BETA,
        "gamma_rel_error": abs(gamma - GAMMA) / GAMMA,
        "extrapolation_rmse": rmse if math.isfinite(rmse) else math.inf,
        "threshold": fit["threshold"],
        "terms": fit["terms"],
        "equations": fit["equations"],
    }


def _lv_truth(features, alpha, beta, gamma, delta) -> np.ndarray:
    C = np.zeros((2, len(features)))
    C[0, features.index("x")], C[0, features.index("x y")] = alpha, -beta
    C[1, features.index("y")], C[1, features.index("x y")] = -delta, gamma
    return C


# --------------------------------------------------------------------------------------------------
# the recovery study


def recovery_run(task: dict) -> dict:
    """One study run: the full udesci pipeline and both SINDy baselines on the same data.

    Parameters
    ----------
    task : dict
        ``noise`` (float), ``seed`` (int), ``fast`` (bool).

    Returns
    -------
    dict
        ``udesci`` (the pipeline's result without plots or files), ``sindy``
        (threshold 0.1), ``sindy_bic`` (threshold swept, BIC); a baseline that
        raises is recorded as ``{"error": ...}``.

    Raises
    ------
    Exception
        Whatever the udesci pipeline raises (the study records it as a failed run).
    """
    from .pipelines.lotka_volterra import make_data, run_pipeline

    noise, seed, fast = float(task["noise"]), int(task["seed"]), bool(task.get("fast", False))
    result = run_pipeline(noise, seed, out=None, quiet=True, fast=fast, plots=False)
    t, _, noisy = make_data(noise, seed)
    out = {"udesci": result}
    for key, thr in (("sindy", DEFAULT_THRESHOLD), ("sindy_bic", "sweep")):
        start = time.perf_counter()
        try:
            out[key] = lv_baseline(t, noisy, thr)
        except Exception as exc:  # the baseline failing must not lose the udesci run
            out[key] = {"error": f"{type(exc).__name__}: {exc}"}
        out[key]["seconds"] = time.perf_counter() - start
    return out


def _key(noise, seed, fast) -> tuple:
    return (float(noise), int(seed), bool(fast))


def load_runs(out: str | os.PathLike) -> list[dict]:
    """Run records in ``out/runs.jsonl`` (a truncated last line from an interrupted write is skipped).

    Parameters
    ----------
    out : path
        Study directory.

    Returns
    -------
    list of dict
        One record per finished run; a later record of the same run replaces
        an earlier one.

    Raises
    ------
    ConfigError
        If a complete line of the file is not a JSON run record.
    """
    path = Path(out) / RUNS_FILE
    if not path.exists():
        return []
    records: dict[tuple, dict] = {}
    lines = path.read_text().splitlines()
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            key = _key(rec["noise"], rec["seed"], rec["fast"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            if n == len(lines) - 1:
                continue  # the write was interrupted
            raise ConfigError(
                f"{path}: line {n + 1} is not a run record; move the file away to start afresh."
            ) from None
        records[key] = rec
    return list(records.values())


def _append(path: Path, record: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record, default=_json_default) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _json_default(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def json_safe(v):
    """JSON-safe copy of nested dicts/lists: inf and NaN become None (strict JSON has neither).

    Parameters
    ----------
    v : object

    Returns
    -------
    object
        ``v`` with every non-finite float replaced by ``None`` and numpy floats made Python floats.
    """
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v


def _median(values) -> float:
    vals = [float(v) for v in values if v is not None]
    return float(np.median(vals)) if vals else math.nan


def summarize(records: list[dict], noise_levels: Iterable[float]) -> list[dict]:
    """One row per noise level: recovery rates and median errors.

    Parameters
    ----------
    records : list of dict
        Run records (``status`` ``"ok"`` or ``"failed"``).
    noise_levels : iterable of float

    Returns
    -------
    list of dict
        Keys: ``noise``, ``runs`` (finished, ok or failed), ``failed``,
        ``structure_rate`` (correct / finished: a failed run counts as not
        recovered), ``beta_error``, ``gamma_error`` (median relative errors
        over successful runs; a run without the x*y term counts as 100%),
        ``beta_error_correct``, ``gamma_error_correct`` (the same over the runs
        with the correct structure), ``extrapolation_rmse``, ``seconds`` (medians),
        and the same rates and errors for the baselines prefixed ``sindy_``
        (threshold 0.1) and ``sindy_bic_`` (threshold swept, BIC).
    """
    rows = []
    for noise in noise_levels:
        recs = [r for r in records if float(r["noise"]) == float(noise)]
        ok = [r for r in recs if r["status"] == "ok"]
        row = {"noise": float(noise), "runs": len(recs), "failed": len(recs) - len(ok)}
        u = [r["udesci"] for r in ok]
        row["structure_rate"] = sum(bool(x["correct_structure"]) for x in u) / len(recs) if recs else math.nan
        row["beta_error"] = _median(x["beta_rel_error"] for x in u)
        row["gamma_error"] = _median(x["gamma_rel_error"] for x in u)
        right = [x for x in u if x["correct_structure"]]
        row["beta_error_correct"] = _median(x["beta_rel_error"] for x in right)
        row["gamma_error_correct"] = _median(x["gamma_rel_error"] for x in right)
        row["extrapolation_rmse"] = _median(_inf(x.get("extrapolation_rmse")) for x in u)
        row["seconds"] = _median(x["seconds"] for x in u)
        for key in ("sindy", "sindy_bic"):
            b = [r[key] for r in ok if "error" not in r.get(key, {"error": 1})]
            row[f"{key}_structure_rate"] = sum(bool(x["correct_structure"]) for x in b) / len(b) if b else math.nan
            row[f"{key}_beta_error"] = _median(x["beta_rel_error"] for x in b)
            row[f"{key}_gamma_error"] = _median(x["gamma_rel_error"] for x in b)
            row[f"{key}_extrapolation_rmse"] = _median(_inf(x.get("extrapolation_rmse")) for x in b)
        rows.append(row)
    return rows


def _inf(v):
    return math.inf if v is None else float(v)


def _pct(v) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{100 * v:.1f}%"


def _num(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return "∞" if math.isinf(v) else f"{v:.3g}"


def markdown_table(rows: list[dict]) -> str:
    """The study table in Markdown (udesci columns, then the SINDy-only baselines).

    Parameters
    ----------
    rows : list of dict
        Output of :func:`summarize`.

    Returns
    -------
    str
    """
    head = (
        "| noise | runs | failed | structure | β err | γ err | β/γ err, correct runs | extrap. RMSE | s/run "
        "| SINDy structure | SINDy β err | SINDy γ err | SINDy extrap. RMSE | SINDy-BIC structure |"
    )
    lines = [head, "|" + "---:|" * 14]
    for r in rows:
        lines.append(
            f"| {r['noise']:g} | {r['runs']} | {r['failed']} | {_pct(r['structure_rate'])} | {_pct(r['beta_error'])} "
            f"| {_pct(r['gamma_error'])} | {_pct(r.get('beta_error_correct'))} / {_pct(r.get('gamma_error_correct'))} "
            f"| {_num(r['extrapolation_rmse'])} | {_num(r['seconds'])} "
            f"| {_pct(r['sindy_structure_rate'])} | {_pct(r['sindy_beta_error'])} | {_pct(r['sindy_gamma_error'])} "
            f"| {_num(r['sindy_extrapolation_rmse'])} | {_pct(r['sindy_bic_structure_rate'])} |"
        )
    return "\n".join(lines)


def _flat(rec: dict) -> dict:
    row = {k: rec.get(k) for k in ("noise", "seed", "fast", "status", "error")}
    u = rec.get("udesci") or {}
    for k in (
        "correct_structure",
        "beta",
        "gamma",
        "beta_rel_error",
        "gamma_rel_error",
        "extrapolation_rmse",
        "data_rmse",
        "seconds",
        "fit_seconds",
    ):
        row[k] = u.get(k)
    row["U_terms"] = " ".join(u.get("U_terms", []))
    row["V_terms"] = " ".join(u.get("V_terms", []))
    row["equations"] = "; ".join(f"d{s}/dt = {e}" for s, e in (u.get("equations") or {}).items())
    for key in ("sindy", "sindy_bic"):
        b = rec.get(key) or {}
        for k in ("correct_structure", "beta_rel_error", "gamma_rel_error", "extrapolation_rmse", "threshold"):
            row[f"{key}_{k}"] = b.get(k)
        row[f"{key}_equations"] = "; ".join(f"d{s}/dt = {e}" for s, e in (b.get("equations") or {}).items())
        row[f"{key}_error"] = b.get("error")
    return row


def write_outputs(
    out: str | os.PathLike, records: list[dict], rows: list[dict], config: dict, plot: bool = True
) -> dict:
    """Write ``runs.csv``, ``summary.json``, ``summary.md`` and (optionally) ``recovery.png``.

    Parameters
    ----------
    out : path
    records : list of dict
        The runs shown (one CSV row each).
    rows : list of dict
        Output of :func:`summarize`.
    config : dict
        Study settings stored in ``summary.json``.
    plot : bool, default True

    Returns
    -------
    dict
        Paths written, by kind.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "runs.csv", "json": out / "summary.json", "markdown": out / "summary.md"}
    flat = [_flat(r) for r in sorted(records, key=lambda r: (r["noise"], r["seed"]))]
    tmp = paths["csv"].with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        if flat:
            writer = csv.DictWriter(fh, fieldnames=list(flat[0]))
            writer.writeheader()
            writer.writerows(flat)
    os.replace(tmp, paths["csv"])
    doc = {"config": config, "table": json_safe(rows), "runs": json_safe(flat)}
    _write_atomic(paths["json"], json.dumps(doc, indent=2, default=_json_default) + "\n")
    note = (
        f"\n\nCommand: `{config.get('command', '')}`. structure: share of runs whose discovered U and V are exactly "
        "the x*y term (a failed run counts as not recovered); β/γ err: median relative error of the x*y "
        "coefficients over all runs (a run whose U or V lacks x*y counts as 100%); β/γ err, correct runs: the same "
        "over the runs with the correct structure; extrap. RMSE: median RMSE of the discovered model against "
        "the truth on t ∈ [0, 30] "
        "(training data t ≤ 3; ∞ if it blows up); s/run: median wall-clock seconds of one udesci run "
        "(one worker process, one torch thread). "
        "SINDy: PySINDy alone on the same noisy data identifying the whole right-hand side (degree-2 polynomials, "
        "smoothed finite differences, STLSQ with the default threshold 0.1); correct structure = dx/dt has exactly "
        "{x, x y} and dy/dt exactly {y, x y}. SINDy-BIC: the STLSQ threshold chosen per run from 0.01…1 by BIC of "
        "the simulated model's misfit to the data (sparsest within 2 units). The SINDy columns count the runs that "
        "finished (a failed run has no baseline).\n"
    )
    _write_atomic(paths["markdown"], markdown_table(rows) + note)
    if plot and rows:
        from .plots import plot_recovery

        paths["png"] = out / "recovery.png"
        plot_recovery(paths["png"], rows)
    return {k: os.fspath(v) for k, v in paths.items()}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def recovery_study(
    noise_levels: Iterable[float],
    runs: int,
    *,
    out: str | os.PathLike = "out/study",
    workers: int | None = None,
    backend: str = "process",
    address: str | None = None,
    fast: bool = False,
    retry_failed: bool = False,
    timeout: float | None = None,
    progress: bool = True,
    task_fn: Callable[[dict], dict] = recovery_run,
    command: str = "",
) -> dict:
    """Recovery rate and coefficient errors of udesci against a SINDy-only baseline.

    Runs :func:`recovery_run` for every noise level and seeds ``0 .. runs-1``
    in parallel (see :func:`run_tasks`).  Each finished run is appended to
    ``out/runs.jsonl`` at once and the tables are rewritten, so an interrupted
    study keeps its runs; calling again with the same ``out`` skips runs
    already recorded (failed ones too, unless ``retry_failed``).

    Parameters
    ----------
    noise_levels : iterable of float
        Noise as a fraction of each state's mean (each >= 0).
    runs : int
        Seeds per noise level.
    out : path, default "out/study"
    workers : int, optional
        Parallel workers (default: CPU count).
    backend : {"process", "ray", "serial"}
    address : str, optional
        Ray cluster address.
    fast : bool
        The pipeline's fast configuration (fewer iterations).
    retry_failed : bool
        Run again runs recorded as failed.
    timeout : float, optional
        Seconds one run may take before it is stopped and recorded as failed.
    progress : bool
        One line per finished run on stdout.
    task_fn : callable
        The function run per task (a picklable module-level function; tests swap it).
    command : str
        Command line recorded in the outputs.

    Returns
    -------
    dict
        ``table`` (rows of :func:`summarize`), ``runs`` (records), ``paths``,
        ``ran`` and ``skipped`` (counts of this call).

    Raises
    ------
    ConfigError
        For invalid noise levels, run or worker counts, backend or address,
        an unreadable ``runs.jsonl``, or Ray missing with ``backend="ray"``.
    """
    levels = []
    for v in noise_levels:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"--noise: expected finite numbers >= 0, received {v!r}.")
        if float(v) not in levels:
            levels.append(float(v))
    if not levels:
        raise ConfigError("--noise: expected at least one noise level, e.g. --noise 0.01,0.05.")
    if not isinstance(runs, int) or isinstance(runs, bool) or runs < 1:
        raise ConfigError(f"--runs: expected an int >= 1, received {runs!r}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    existing = {_key(r["noise"], r["seed"], r["fast"]): r for r in load_runs(out)}
    # seed-major order: a study stopped early has about as many runs at every noise level
    wanted = [_key(n, s, fast) for s in range(runs) for n in levels]
    todo = [k for k in wanted if k not in existing or (retry_failed and existing[k]["status"] != "ok")]
    config = {
        "command": command,
        "noise": levels,
        "runs": runs,
        "fast": fast,
        "backend": backend,
        "workers": workers,
        "timeout": timeout,
        "baseline": f"PySINDy STLSQ(threshold={DEFAULT_THRESHOLD}) + PolynomialLibrary(2) + "
        "SmoothedFiniteDifference (sindy); the same with the threshold chosen by BIC over "
        f"{list(SWEEP_THRESHOLDS)}, sparsest within 2 (sindy_bic)",
    }
    tasks = [{"noise": n, "seed": s, "fast": f} for n, s, f in todo]
    log = print if progress else (lambda *a, **k: None)
    if len(todo) < len(wanted):
        log(f"resuming {out}: {len(wanted) - len(todo)} of {len(wanted)} runs already recorded", flush=True)

    def shown():
        return [existing[k] for k in wanted if k in existing]

    start = time.perf_counter()
    done = 0
    for task, result in run_tasks(task_fn, tasks, backend=backend, workers=workers, address=address, timeout=timeout):
        done += 1
        rec = {"noise": task["noise"], "seed": task["seed"], "fast": task["fast"]}
        if isinstance(result, TaskFailed):
            rec.update(status="failed", error=result.error, traceback=result.traceback)
        else:
            rec.update(status="ok", error=None, **result)
        rec = json_safe(rec)
        _append(out / RUNS_FILE, rec)
        existing[_key(rec["noise"], rec["seed"], rec["fast"])] = rec
        write_outputs(out, shown(), summarize(shown(), levels), config, plot=False)
        log(f"[{done}/{len(tasks)}] {_describe_run(rec)} ({time.perf_counter() - start:.0f} s elapsed)", flush=True)
    records = shown()
    rows = summarize(records, levels)
    paths = write_outputs(out, records, rows, config, plot=True)
    paths["runs"] = os.fspath(out / RUNS_FILE)
    return {
        "table": rows,
        "runs": records,
        "paths": paths,
        "ran": len(tasks),
        "skipped": len(wanted) - len(tasks),
        "config": config,
    }


def _describe_run(rec: dict) -> str:
    head = f"noise={rec['noise']:g} seed={rec['seed']}"
    if rec["status"] != "ok":
        return f"{head}: FAILED {rec['error']}"
    u = rec["udesci"]
    s = rec.get("sindy", {})
    base = "error" if "error" in s else ("right" if s.get("correct_structure") else "wrong")
    return (
        f"{head}: structure {'right' if u['correct_structure'] else 'wrong'}, β err "
        f"{_pct(u['beta_rel_error'])}, γ err {_pct(u['gamma_rel_error'])}, {u['seconds']:.0f} s; SINDy structure {base}"
    )
