"""ODEBench: udesci on the 63 systems of d'Ascoli et al. (ICLR 2024), beside PySINDy alone.

For every (system, noise level, setting) the truth is solved on t ∈ [0, 10] at 150 points from the
system's first initial state (training data) and from its second (generalisation) with SciPy's LSODA at
rtol 1e-9; Gaussian noise of ``noise`` × each state's mean absolute value is added to the training series.
Two settings:

* ``ude``: each expanded right-hand side is split into the known physics (the constant terms and the terms
  linear in the states, their constants fixed at the true values) and one unknown ``U_i(x_0, …, x_{d-1})``
  for everything else; an equation with nothing else has no unknown, a system with nothing else in any
  equation is skipped (and counted).
* ``full``: every right-hand side is an unknown function of all states.

Each run is ``udesci.fit`` + ``udesci.discover`` with udesci's defaults (``--fast``, for smoke runs only,
shortens the two training stages and lightens discovery, the same for every system).  The discovered
closed-form model is simulated from both initial states and scored against the noise-free truth by R²
pooled over the states (ODEFormer's ``r2_score(..., multioutput="variance_weighted")``,
``1 − Σ SSE / Σ SST``); a model that blows up or cannot be solved scores −inf.  Exact structure: every
unknown's expanded closed form has the same terms as the truth's unknown part and each coefficient is
within 10 % of the true one.  Beside it, in the same task, PySINDy alone on the same noisy data
(:func:`udesci.study.sindy_baseline`: smoothed finite differences, polynomials of udesci's default library
degree, STLSQ with the threshold chosen by BIC) is simulated and scored the same way (its structure
against the whole right-hand side).

    .venv/bin/python bench/bench_odebench.py --systems 24-33 --noise 0.01 --setting ude --workers 1

Runs go through the study engine (:func:`udesci.study.run_tasks`: process pool, Ray or serial, a time limit
per task) and are appended to ``OUT/runs.jsonl`` as each finishes, so an interrupted benchmark resumes
where it stopped.  ``OUT/odebench.json`` holds the records and the summary, ``OUT/odebench.md`` the tables.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import sympy as sp

from udesci.errors import ConfigError, describe
from udesci.evaluate import jsonable, write_text_atomic
from udesci.expr import parse_expression
from udesci.study import RecordsFile, TaskFailed, TaskTimeout, run_tasks

DATA = Path(__file__).resolve().parent / "odebench" / "odebench.json"
T_END, N_POINTS = 10.0, 150
SETTINGS = ("ude", "full")
SUCCESS, STRICT = 0.9, 0.99  # R² thresholds: ODEFormer's success, and a stricter one
COEF_RTOL = 0.1  # exact structure: every coefficient within 10 % of the true one
RTOL, ATOL = 1e-9, 1e-12  # every simulation (truth, udesci, PySINDy): LSODA at these tolerances
BLOWUP = 100.0  # a model leaving 100 × the truth's largest |state| has blown up
MAX_EVALS = 200_000  # right-hand side evaluations one simulation may use
FAST_ITERATIONS = 100  # --fast: warm-start and shooting iterations
DEFAULT_TIMEOUT = 1800.0
RUNS = "runs.jsonl"
# names ODEBench writes that udesci's parser spells differently (read as placeholders, then replaced)
ALIASES = {"abs": sp.Abs, "cot": sp.cot}


# --------------------------------------------------------------------------------------------------
# the systems


class System(NamedTuple):
    """One ODEBench system with its constants substituted.

    Attributes
    ----------
    id : int
    description : str
    states : tuple of sympy.Symbol
        ``x_0 … x_{d-1}``.
    rhs : tuple of sympy.Expr
        One right-hand side per state, numbers in place of the constants.
    inits : ndarray of shape (2, d)
        The training and the generalisation initial state.
    """

    id: int
    description: str
    states: tuple
    rhs: tuple
    inits: np.ndarray


class Split(NamedTuple):
    """A right-hand side cut into known physics and the unknown part, per equation.

    Attributes
    ----------
    known : tuple of sympy.Expr
        Constants and terms linear in the states.
    unknown : tuple of sympy.Expr
        Everything else (0 where an equation has nothing else).
    """

    known: tuple
    unknown: tuple


def parse_system(entry: dict) -> System:
    """Read one ODEBench entry with :func:`udesci.expr.parse_expression` (never evaluated).

    ``^`` is read as a power, ``abs`` and ``cot`` as ``Abs`` and ``cot``, and ``c_k`` is replaced by
    the k-th constant of the entry's first constant set.

    Parameters
    ----------
    entry : dict
        ``id``, ``eq`` (right-hand sides separated by ``|``), ``dim``, ``consts``, ``init``,
        ``eq_description``.

    Returns
    -------
    System

    Raises
    ------
    ConfigError
        If the entry lacks a field, its equation count differs from ``dim``, it uses a constant it does
        not define, an equation is outside the parser's grammar, or its initial states are not two of
        length ``dim``.
    """
    try:
        sid, text, dim = int(entry["id"]), str(entry["eq"]), int(entry["dim"])
        consts = [float(c) for c in (entry["consts"][0] if entry["consts"] else [])]
        inits = np.asarray(entry["init"], dtype=float)
        description = str(entry.get("eq_description", ""))
    except (KeyError, TypeError, ValueError, IndexError):
        raise ConfigError(
            f"entry: expected an ODEBench entry with id, eq, dim, consts and init, received {describe(entry)}."
        ) from None
    parts = text.split("|")
    if len(parts) != dim:
        raise ConfigError(f"system {sid}: expected {dim} right-hand sides separated by '|', received {len(parts)}.")
    if inits.shape != (2, dim):
        raise ConfigError(f"system {sid}: expected two initial states of length {dim}, received shape {inits.shape}.")
    states = tuple(sp.Symbol(f"x_{i}") for i in range(dim))
    constants = {f"c_{k}": sp.Symbol(f"c_{k}") for k in range(len(consts))}
    stray = sorted(set(re.findall(r"\bc_\d+\b", text)) - set(constants))
    if stray:
        raise ConfigError(f"system {sid}: uses constants {stray} but defines only {len(consts)}.")
    names = {str(s): s for s in states} | constants
    holders = {name: sp.Function(name) for name in ALIASES}
    values = {constants[f"c_{k}"]: sp.Float(v) for k, v in enumerate(consts)}
    rhs = []
    for i, part in enumerate(parts):
        expr = parse_expression(part.strip().replace("^", "**"), names, holders, where=f"system {sid}, equation {i}")
        for name, fn in ALIASES.items():
            expr = expr.replace(holders[name], fn)
        rhs.append(expr.xreplace(values))
    return System(sid, description, states, tuple(rhs), inits)


@functools.lru_cache(maxsize=4)
def load_systems(path: str | os.PathLike = DATA) -> dict[int, System]:
    """All ODEBench systems of the JSON file, by id.

    Parameters
    ----------
    path : path, default ``bench/odebench/odebench.json``

    Returns
    -------
    dict int -> System

    Raises
    ------
    ConfigError
        If the file cannot be read as a JSON list of entries, or an entry is invalid (see :func:`parse_system`).
    """
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"path: expected the ODEBench JSON file, could not read {os.fspath(path)!r}: {exc}") from None
    if not isinstance(entries, list):
        raise ConfigError(f"path: expected a JSON list of systems, received {describe(entries)}.")
    systems = [parse_system(e) for e in entries]
    return {s.id: s for s in systems}


def is_known_term(term: sp.Expr, states: Sequence[sp.Symbol]) -> bool:
    """Whether one term of an expanded right-hand side is known physics: a constant or linear in the states.

    Parameters
    ----------
    term : sympy.Expr
        A single term (not a sum).
    states : sequence of sympy.Symbol

    Returns
    -------
    bool
    """
    if not term.free_symbols & set(states):
        return True
    return bool(term.is_polynomial(*states)) and sp.Poly(term, *states).total_degree() <= 1


def split_rhs(rhs: Sequence[sp.Expr], states: Sequence[sp.Symbol]) -> Split:
    """Cut each right-hand side, expanded, into its known terms and the rest (see :func:`is_known_term`).

    Parameters
    ----------
    rhs : sequence of sympy.Expr
    states : sequence of sympy.Symbol

    Returns
    -------
    Split
        ``known[i] + unknown[i]`` equals ``expand(rhs[i])``.
    """
    known, unknown = [], []
    for expr in rhs:
        terms = sp.Add.make_args(sp.expand(expr))
        known.append(sp.Add(*[t for t in terms if is_known_term(t, states)]))
        unknown.append(sp.Add(*[t for t in terms if not is_known_term(t, states)]))
    return Split(tuple(known), tuple(unknown))


def unknown_name(i: int) -> str:
    """Name of the unknown in the right-hand side of state ``i``.

    Parameters
    ----------
    i : int

    Returns
    -------
    str
        ``"U_i"``.
    """
    return f"U_{i}"


def model_parts(system: System, setting: str) -> tuple[dict, dict]:
    """The hybrid model's right-hand sides and the truth of each unknown, for one setting.

    Parameters
    ----------
    system : System
    setting : {"ude", "full"}

    Returns
    -------
    equations : dict state -> sympy.Expr
        Known terms plus ``U_i(x_0, …, x_{d-1})`` where the equation has an unknown part.
    truths : dict name -> sympy.Expr
        The true (expanded) expression of each unknown; empty when the system has nothing nonlinear
        (``ude`` setting).

    Raises
    ------
    ConfigError
        For a setting other than ``"ude"`` or ``"full"``.
    """
    if setting not in SETTINGS:
        raise ConfigError(f"setting: expected one of {SETTINGS}, received {setting!r}.")
    if setting == "full":
        split = Split((sp.Integer(0),) * len(system.rhs), tuple(sp.expand(e) for e in system.rhs))
    else:
        split = split_rhs(system.rhs, system.states)
    equations, truths = {}, {}
    for i, (s, known, part) in enumerate(zip(system.states, split.known, split.unknown, strict=True)):
        if part == 0:
            equations[s] = known
            continue
        name = unknown_name(i)
        truths[name] = part
        equations[s] = known + sp.Function(name)(*system.states)
    return equations, truths


# --------------------------------------------------------------------------------------------------
# simulation, data and scores


def simulate(rhs: Sequence[sp.Expr], states: Sequence[sp.Symbol], y0, t, bound: float = math.inf) -> np.ndarray:
    """Solve ``dx/dt = rhs(x)`` with SciPy's LSODA (rtol 1e-9, atol 1e-12) at the times ``t``.

    The one solver of the benchmark: the truth, udesci's closed forms and PySINDy's models all go through it.

    Parameters
    ----------
    rhs : sequence of sympy.Expr
        Right-hand sides in ``states`` only (numbers for every constant).
    states : sequence of sympy.Symbol
    y0 : array of shape (d,)
    t : array of shape (T,)
        Increasing output times; the solve starts at ``t[0]``.
    bound : float, default inf
        The solve stops once some ``|x_i|`` exceeds it (a blow-up).

    Returns
    -------
    ndarray of shape (T, d)
        NaN from where the solve stopped, failed, left ``bound`` or exceeded 200,000 right-hand side
        evaluations on.
    """
    from scipy.integrate import solve_ivp

    f = sp.lambdify([list(states)], list(rhs), "numpy")
    t = np.asarray(t, dtype=float)
    out = np.full((t.size, len(states)), np.nan)
    calls = 0

    class TooCostly(Exception):
        pass

    def fun(_t, y):
        nonlocal calls
        calls += 1
        if calls > MAX_EVALS:
            raise TooCostly
        return np.asarray(f(y), dtype=float).reshape(-1)

    def escape(_t, y):
        return bound - float(np.max(np.abs(y)))

    escape.terminal = True
    with np.errstate(all="ignore"):
        try:
            sol = solve_ivp(
                fun, (t[0], t[-1]), np.asarray(y0, dtype=float), method="LSODA", t_eval=t, rtol=RTOL, atol=ATOL,
                events=escape if math.isfinite(bound) else None,
            )  # fmt: skip
        except (TooCostly, ValueError, ArithmeticError):
            return out
    if sol.y.size:
        y = sol.y.T
        out[: y.shape[0]] = np.where(np.isfinite(y), y, np.nan)
    return out


class Truth(NamedTuple):
    """Noise-free trajectories of a system and the noisy training series.

    Attributes
    ----------
    t : ndarray of shape (150,)
    train : ndarray of shape (150, d)
        From the first initial state.
    test : ndarray of shape (150, d)
        From the second initial state.
    noisy : ndarray of shape (150, d)
        ``train`` plus Gaussian noise of ``noise`` × each state's mean absolute value.
    """

    t: np.ndarray
    train: np.ndarray
    test: np.ndarray
    noisy: np.ndarray


def make_data(system: System, noise: float, seed: int = 0) -> Truth:
    """The paper's data: both trajectories on t ∈ [0, 10] at 150 points, and the noisy training series.

    Parameters
    ----------
    system : System
    noise : float
        Noise standard deviation as a fraction of each state's mean absolute value over the training series.
    seed : int, default 0
        With the system id and the noise level, seeds the noise.

    Returns
    -------
    Truth
        ``train``/``test`` hold NaN where the truth could not be solved (see :func:`simulate`).
    """
    t = np.linspace(0.0, T_END, N_POINTS)
    train = simulate(system.rhs, system.states, system.inits[0], t)
    test = simulate(system.rhs, system.states, system.inits[1], t)
    rng = np.random.default_rng([int(seed), system.id, int(round(noise * 1e6))])
    noisy = train + noise * np.abs(train).mean(axis=0) * rng.standard_normal(train.shape)
    return Truth(t, train, test, noisy)


def r2_score(truth: np.ndarray, pred: np.ndarray) -> float:
    """R² of a simulated trajectory, pooled over the states: ``1 − Σ_i SSE_i / Σ_i SST_i``.

    This is scikit-learn's ``r2_score(truth, pred, multioutput="variance_weighted")``, ODEFormer's metric.

    Parameters
    ----------
    truth, pred : ndarray of shape (T, d)

    Returns
    -------
    float
        ``-inf`` if ``pred`` has a non-finite value (a blow-up or a failed solve); for a constant
        truth 1.0 when ``pred`` equals it, else ``-inf``.
    """
    truth, pred = np.asarray(truth, dtype=float), np.asarray(pred, dtype=float)
    if not np.all(np.isfinite(pred)):
        return -math.inf
    sse = float(np.sum((truth - pred) ** 2))
    sst = float(np.sum((truth - truth.mean(axis=0)) ** 2))
    if sst == 0.0:
        return 1.0 if sse == 0.0 else -math.inf
    return 1.0 - sse / sst


def term_coefficients(expr: sp.Expr) -> dict:
    """Coefficient of each term of the expanded expression (``2*x*y - 3`` → ``{x*y: 2, 1: -3}``).

    Parameters
    ----------
    expr : sympy.Expr

    Returns
    -------
    dict sympy.Expr -> float
        Terms with a zero coefficient left out.
    """
    out: dict = {}
    for term in sp.Add.make_args(sp.expand(expr)):
        coef, rest = term.as_coeff_Mul()
        out[rest] = out.get(rest, 0.0) + float(coef)
    return {k: v for k, v in out.items() if v != 0.0}


def exact_structure(found: sp.Expr, truth: sp.Expr, rtol: float = COEF_RTOL) -> bool:
    """Whether ``found`` has exactly the terms of ``truth``, each coefficient within ``rtol`` relative.

    Parameters
    ----------
    found, truth : sympy.Expr
    rtol : float, default 0.1

    Returns
    -------
    bool
    """
    cf, ct = term_coefficients(found), term_coefficients(truth)
    return set(cf) == set(ct) and all(abs(cf[k] - ct[k]) <= rtol * abs(ct[k]) for k in ct)


def scores(rhs: Sequence[sp.Expr], system: System, truth: Truth) -> dict:
    """R² of a model simulated from both initial states against the noise-free truth.

    Parameters
    ----------
    rhs : sequence of sympy.Expr
        The model's right-hand sides in the system's states.
    system : System
    truth : Truth

    Returns
    -------
    dict
        ``r2_reconstruction`` (from the first initial state, the training trajectory) and
        ``r2_generalization`` (from the second); ``-inf`` for a model that blows up.
    """
    scale = max(1.0, float(np.nanmax(np.abs(truth.train))), float(np.nanmax(np.abs(truth.test))))
    out = {}
    for key, y0, ref in (
        ("r2_reconstruction", system.inits[0], truth.train),
        ("r2_generalization", system.inits[1], truth.test),
    ):
        out[key] = r2_score(ref, simulate(rhs, system.states, y0, truth.t, bound=BLOWUP * scale))
    return out


# --------------------------------------------------------------------------------------------------
# one task: udesci and PySINDy on one (system, noise, setting)


def fit_stages(fast: bool) -> dict:
    """Keyword arguments of ``udesci.fit``: the defaults, or ``--fast``'s shorter stages (the same for all systems).

    Parameters
    ----------
    fast : bool

    Returns
    -------
    dict
        Empty (defaults), or ``warm_start`` and ``shooting`` with 100 iterations each.
    """
    if not fast:
        return {}
    from udesci import Shooting, WarmStart

    return {"warm_start": WarmStart(iterations=FAST_ITERATIONS), "shooting": Shooting(iterations=FAST_ITERATIONS)}


def discover_options(fast: bool) -> dict:
    """Keyword arguments of ``udesci.discover``: the defaults, or ``--fast``'s lighter search (smoke runs only).

    Parameters
    ----------
    fast : bool

    Returns
    -------
    dict
        Empty (defaults), or a ``Selection`` without the bootstrap ensemble, one sweep, 8 shortlisted and 4
        rescored candidates and 5 refine iterations, and no final refit (``refit=False``).
    """
    if not fast:
        return {}
    from udesci import Selection

    selection = Selection(bootstrap=0, sweeps=1, shortlist=8, rescore=4, refine_iterations=5)
    return {"selection": selection, "refit": False}


def run_udesci(system: System, truth: Truth, setting: str, fast: bool, seed: int) -> dict:
    """``udesci.fit`` + ``udesci.discover`` (defaults) on the noisy training series, scored.

    Parameters
    ----------
    system : System
    truth : Truth
    setting : {"ude", "full"}
    fast : bool
    seed : int

    Returns
    -------
    dict
        ``fit_seconds``, ``discover_seconds``, ``discover_stages`` (seconds by stage,
        :attr:`udesci.Discovery.seconds`), ``seconds``, ``equations`` and ``unknowns`` (strings),
        ``true_unknowns``, ``exact`` (all unknowns), ``exact_unknowns`` (each), ``adequate`` and
        ``adequacy`` (:class:`udesci.discovery.results.Adequacy`), ``notes`` and the scores of :func:`scores`.

    Raises
    ------
    Exception
        Whatever fit or discover raises (the task records it).
    """
    import udesci as ud

    equations, truths = model_parts(system, setting)
    names = [str(s) for s in system.states]
    model = ud.HybridModel(equations, states=system.states)
    data = ud.Dataset(truth.t, truth.noisy, states=names)
    start = time.perf_counter()
    fitted = ud.fit(model, data, seed=seed, progress=False, **fit_stages(fast))
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    found = ud.discover(fitted, seed=seed, progress=False, **discover_options(fast))
    discover_seconds = time.perf_counter() - start
    values = found.model.parameter_values()
    rhs = [found.model.equations[s].xreplace(values) for s in system.states]
    exact = {n: exact_structure(found.unknowns[n], truths[n]) for n in truths}
    adequacy = found.adequacy
    out = {
        "fit_seconds": fit_seconds,
        "discover_seconds": discover_seconds,
        "discover_stages": {k: float(v) for k, v in found.seconds.items()},
        "seconds": fit_seconds + discover_seconds,
        "equations": {n: str(e) for n, e in zip(names, rhs, strict=True)},
        "unknowns": {n: str(found.unknowns[n]) for n in truths},
        "true_unknowns": {n: str(e) for n, e in truths.items()},
        "exact_unknowns": exact,
        "exact": all(exact.values()),
        "adequate": None if adequacy is None else adequacy.adequate,
        "adequacy": None if adequacy is None else adequacy.as_dict(),
        "notes": list(found.notes),
    }
    out.update(scores(rhs, system, truth))
    return out


def polynomial_rhs(coefficients, powers, states: Sequence[sp.Symbol]) -> list[sp.Expr]:
    """SymPy right-hand sides ``Σ_k C[i, k] Π_j x_j^P[k, j]`` of a polynomial (PySINDy) model.

    Parameters
    ----------
    coefficients : array of shape (d, K)
    powers : array of shape (K, d)
    states : sequence of sympy.Symbol

    Returns
    -------
    list of sympy.Expr
    """
    C, P = np.asarray(coefficients, dtype=float), np.asarray(powers, dtype=int)
    monomials = [sp.Mul(*[s ** int(p) for s, p in zip(states, row, strict=True)]) for row in P]
    return [sp.Add(*[sp.Float(c) * m for c, m in zip(C[i], monomials, strict=True) if c != 0.0]) for i in range(len(C))]


def run_sindy(system: System, truth: Truth) -> dict:
    """PySINDy alone on the noisy training series, scored like udesci (structure against the whole truth).

    Parameters
    ----------
    system : System
    truth : Truth

    Returns
    -------
    dict
        ``seconds``, ``threshold``, ``equations``, ``exact`` and the scores of :func:`scores`.

    Raises
    ------
    ConfigError
        If udesci's default library degree is not the degree :func:`udesci.study.sindy_baseline` uses (2).
    """
    from udesci.discovery import Library
    from udesci.study import sindy_baseline

    if Library().degree != 2:
        raise ConfigError(f"the PySINDy baseline uses degree 2, udesci's default library now {Library().degree}.")
    names = [str(s) for s in system.states]
    start = time.perf_counter()
    fit = sindy_baseline(truth.t, truth.noisy, names)
    seconds = time.perf_counter() - start
    rhs = polynomial_rhs(fit["coefficients"], fit["powers"], system.states)
    out = {
        "seconds": seconds,
        "threshold": fit["threshold"],
        "equations": {n: str(e) for n, e in zip(names, rhs, strict=True)},
        "exact": all(exact_structure(f, e) for f, e in zip(rhs, system.rhs, strict=True)),
    }
    out.update(scores(rhs, system, truth))
    return out


def run_task(task: dict) -> dict:
    """One benchmark task: the truth, udesci and PySINDy on one (system, noise, setting).

    Parameters
    ----------
    task : dict
        ``system`` (id), ``noise``, ``setting``, ``fast``, ``seed``.

    Returns
    -------
    dict
        ``status`` — ``"ok"``, ``"failed"`` (udesci raised: ``error``) or ``"truth_failed"`` (the truth
        could not be solved) — and the ``udesci`` and ``sindy`` results (a baseline that raises is
        ``{"error": ...}``).

    Raises
    ------
    TaskTimeout
        When the engine's time limit interrupts the task (recorded as a timeout).
    """
    system = load_systems()[int(task["system"])]
    truth = make_data(system, float(task["noise"]), int(task["seed"]))
    if not (np.all(np.isfinite(truth.train)) and np.all(np.isfinite(truth.test))):
        return {"status": "truth_failed", "error": "LSODA could not solve the truth over t in [0, 10]"}
    out: dict = {"status": "ok", "error": None}
    try:
        out["udesci"] = run_udesci(system, truth, task["setting"], bool(task["fast"]), int(task["seed"]))
    except TaskTimeout:
        raise
    except Exception as exc:  # a failed fit is a result of the benchmark, and the baseline still runs
        out.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    try:
        out["sindy"] = run_sindy(system, truth)
    except TaskTimeout:
        raise
    except Exception as exc:
        out["sindy"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


# --------------------------------------------------------------------------------------------------
# the benchmark: tasks, records, summary


def task_key(record: dict) -> tuple:
    """The task a record belongs to: ``(system, noise, setting, fast, seed)``.

    Parameters
    ----------
    record : dict

    Returns
    -------
    tuple of (int, float, str, bool, int)

    Raises
    ------
    KeyError, TypeError, ValueError
        If a field is missing or of the wrong kind.
    """
    setting = record["setting"]
    if setting not in SETTINGS:
        raise ValueError(f"setting {setting!r}")
    return (int(record["system"]), float(record["noise"]), setting, bool(record["fast"]), int(record["seed"]))


def records_file(out: str | os.PathLike) -> RecordsFile:
    """The crash-safe records file ``OUT/runs.jsonl``, keyed by :func:`task_key`.

    Parameters
    ----------
    out : path

    Returns
    -------
    RecordsFile
    """
    return RecordsFile(Path(out) / RUNS, task_key)


def parse_systems(text: str, available: Iterable[int]) -> list[int]:
    """``"1-5,20"`` → ``[1, 2, 3, 4, 5, 20]`` (sorted, without repeats).

    Parameters
    ----------
    text : str
        Comma-separated ids and inclusive ranges, or ``"all"``.
    available : iterable of int
        The ids that exist.

    Returns
    -------
    list of int

    Raises
    ------
    ConfigError
        For an item that is not an id or a range, an empty selection, or an id that does not exist.
    """
    available = sorted(available)
    if text.strip().lower() == "all":
        return available
    chosen: set[int] = set()
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", item)
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise ConfigError(f"--systems: expected ids or ranges such as 1-5,20, received {item!r} in {text!r}.")
        lo = int(m.group(1))
        chosen.update(range(lo, int(m.group(2) or lo) + 1))
    missing = sorted(chosen - set(available))
    if not chosen or missing:
        raise ConfigError(
            f"--systems: expected ids between {available[0]} and {available[-1]}, received {text!r}"
            + (f" (no system {missing})." if missing else ".")
        )
    return sorted(chosen)


def _median(values) -> float:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.median(vals)) if vals else math.nan


def _share(flags) -> float:
    flags = list(flags)
    return sum(bool(f) for f in flags) / len(flags) if flags else math.nan


def _r2(result: dict | None, key: str) -> float:
    value = (result or {}).get(key)
    return -math.inf if value is None else float(value)  # JSON null: a model that blew up


def summarize(records: Sequence[dict]) -> list[dict]:
    """One row per (setting, noise): success shares, exact structure, inadequacy labels, seconds.

    Parameters
    ----------
    records : sequence of dict
        Records of :func:`run_benchmark`.

    Returns
    -------
    list of dict
        ``setting``, ``noise``, ``systems`` (records), ``skipped`` (nothing nonlinear, ``ude``),
        ``truth_failed``, ``scored`` (the rest: the denominator), ``failed``, ``timeouts``; for udesci
        ``rec_0.9``, ``rec_0.99``, ``gen_0.9``, ``gen_0.99`` (share of scored systems with R² above the
        threshold: a failure or timeout counts as below), ``exact``, ``flagged`` (share of the finished
        results with reconstruction R² ≤ 0.9 that carry the inadequate label; NaN without such results), ``poor``
        and ``poor_flagged`` (their counts), ``good_flagged`` (results with R² > 0.9 labelled all the same),
        ``seconds`` (median fit + discover); the same prefixed ``sindy_`` for PySINDy.
    """
    rows = []
    for setting, noise in sorted({(r["setting"], float(r["noise"])) for r in records}, key=lambda k: (k[0], k[1])):
        recs = [r for r in records if r["setting"] == setting and float(r["noise"]) == noise]
        scored = [r for r in recs if r["status"] in ("ok", "failed", "timeout")]
        row = {
            "setting": setting,
            "noise": noise,
            "systems": len(recs),
            "skipped": sum(r["status"] == "skipped" for r in recs),
            "truth_failed": sum(r["status"] == "truth_failed" for r in recs),
            "scored": len(scored),
            "failed": sum(r["status"] == "failed" for r in recs),
            "timeouts": sum(r["status"] == "timeout" for r in recs),
        }
        for prefix, key in (("", "udesci"), ("sindy_", "sindy")):
            res = [r.get(key) or {} for r in scored]
            for short, metric in (("rec", "r2_reconstruction"), ("gen", "r2_generalization")):
                row[f"{prefix}{short}_{SUCCESS}"] = _share(_r2(x, metric) > SUCCESS for x in res)
                row[f"{prefix}{short}_{STRICT}"] = _share(_r2(x, metric) > STRICT for x in res)
            row[f"{prefix}exact"] = _share(x.get("exact") for x in res)
            row[f"{prefix}seconds"] = _median(x.get("seconds") for x in res)
        poor = [r["udesci"] for r in scored if r.get("udesci") and _r2(r["udesci"], "r2_reconstruction") <= SUCCESS]
        row["flagged"] = _share(x.get("adequate") is False for x in poor)
        row["poor"], row["poor_flagged"] = len(poor), sum(x.get("adequate") is False for x in poor)
        good = [r["udesci"] for r in scored if r.get("udesci") and _r2(r["udesci"], "r2_reconstruction") > SUCCESS]
        row["good_flagged"] = sum(x.get("adequate") is False for x in good)
        rows.append(row)
    return rows


def _pct(v) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{100 * v:.0f}%"


def _num(v, fmt: str = ".3g") -> str:
    if v is None:
        return "–"
    v = float(v)
    if math.isnan(v):
        return "–"
    return "−∞" if v == -math.inf else format(v, fmt)


def _r2_text(result: dict, key: str) -> str:
    """R² of a finished result as text; JSON null there is a model that blew up or could not be solved (−∞)."""
    return _num(_r2(result, key), ".4f") if key in (result or {}) else "–"


def _yes(v) -> str:
    return "–" if v is None else ("yes" if v else "no")


def system_table(records: Sequence[dict]) -> str:
    """Markdown table with one row per record.

    Parameters
    ----------
    records : sequence of dict

    Returns
    -------
    str
    """
    from udesci.report import markdown_table

    rows = []
    for r in sorted(records, key=task_key):
        u, s = r.get("udesci") or {}, r.get("sindy") or {}
        status = r["status"] if r["status"] != "failed" else f"failed: {str(r.get('error'))[:60]}"
        rows.append(
            {
                "id": r["system"],
                "system": r.get("description", "")[:40],
                "setting": r["setting"],
                "noise": f"{r['noise']:g}",
                "status": status,
                "R² rec": _r2_text(u, "r2_reconstruction"),
                "R² gen": _r2_text(u, "r2_generalization"),
                "exact": _yes(u.get("exact")),
                "adequate": _yes(u.get("adequate")),
                "fit s": _num(u.get("fit_seconds"), ".0f"),
                "discover s": _num(u.get("discover_seconds"), ".0f"),
                "SINDy R² rec": _r2_text(s, "r2_reconstruction"),
                "SINDy R² gen": _r2_text(s, "r2_generalization"),
                "SINDy exact": _yes(s.get("exact")),
                "SINDy s": _num(s.get("seconds"), ".1f"),
            }
        )
    return markdown_table(rows) if rows else "(no records)"


SUMMARY_COLUMNS = (
    "setting", "noise", "scored", "skipped", "truth unsolved", "failed", "timeouts",
    f"rec {SUCCESS}", f"rec {STRICT}", f"gen {SUCCESS}", f"gen {STRICT}", "exact", "flagged", "labelled, rec ok",
    "median s",
    f"SINDy rec {SUCCESS}", f"SINDy rec {STRICT}", f"SINDy gen {SUCCESS}", f"SINDy gen {STRICT}",
    "SINDy exact", "SINDy median s",
)  # fmt: skip


def summary_table(rows: Sequence[dict]) -> str:
    """Markdown table of :func:`summarize`'s rows.

    Parameters
    ----------
    rows : sequence of dict

    Returns
    -------
    str
    """
    from udesci.report import markdown_table

    cells = []
    for r in rows:
        values = [r["setting"], f"{r['noise']:g}", r["scored"], r["skipped"], r["truth_failed"], r["failed"]]
        values += [r["timeouts"]] + [_pct(r[f"{k}_{v}"]) for k in ("rec", "gen") for v in (SUCCESS, STRICT)]
        flagged = _pct(r["flagged"]) + (f" ({r['poor_flagged']} of {r['poor']})" if r.get("poor") else "")
        values += [_pct(r["exact"]), flagged, r.get("good_flagged", 0), _num(r["seconds"], ".0f")]
        values += [_pct(r[f"sindy_{k}_{v}"]) for k in ("rec", "gen") for v in (SUCCESS, STRICT)]
        values += [_pct(r["sindy_exact"]), _num(r["sindy_seconds"], ".1f")]
        cells.append(dict(zip(SUMMARY_COLUMNS, values, strict=True)))
    return markdown_table(cells, SUMMARY_COLUMNS) if cells else "(no records)"


NOTE = (
    "R²: pooled over the states (1 − ΣSSE/ΣSST, ODEFormer's variance-weighted R²) of the discovered closed-form "
    "model simulated (LSODA, rtol 1e-9) from the system's first initial state (rec, the training trajectory) and "
    "its second (gen) against the noise-free truth on t ∈ [0, 10], 150 points; a blow-up is −∞. Shares are over the "
    "scored systems (a failure or timeout counts as below the threshold): rec 0.9 is the share with reconstruction R² "
    "> 0.9, gen 0.99 the share with generalisation R² > 0.99, and so on. exact: every unknown has exactly the "
    "terms of the truth's unknown part (expanded), each coefficient within 10 %. flagged: share of the finished "
    "results with rec R² ≤ 0.9 that discovery labelled inadequate (and how many); labelled, rec ok: how many "
    "results with rec R² > 0.9 were labelled inadequate all the same. median s: fit + discover wall-clock. SINDy: "
    "PySINDy alone on the same noisy series (smoothed finite differences, degree-2 polynomials, STLSQ with the "
    "threshold chosen by BIC), its exact structure against the whole right-hand side."
)


def write_outputs(out: Path, records: list[dict], config: dict) -> dict:
    """Write ``odebench.json`` (config, summary, records) and ``odebench.md`` (both tables).

    Parameters
    ----------
    out : pathlib.Path
    records : list of dict
    config : dict

    Returns
    -------
    dict
        ``json``, ``markdown``: the paths written; ``summary``: the rows of :func:`summarize`.
    """
    rows = summarize(records)
    paths = {"json": out / "odebench.json", "markdown": out / "odebench.md"}
    doc = {"config": config, "summary": rows, "records": records}
    write_text_atomic(paths["json"], json.dumps(jsonable(doc), indent=2) + "\n")
    text = (
        f"# ODEBench\n\nCommand: `{config.get('command', '')}`\n\n## Summary\n\n{summary_table(rows)}\n\n{NOTE}\n\n"
        f"## Per system\n\n{system_table(records)}\n"
    )
    write_text_atomic(paths["markdown"], text)
    return {"json": os.fspath(paths["json"]), "markdown": os.fspath(paths["markdown"]), "summary": rows}


def run_benchmark(
    systems: Sequence[int],
    noise: Sequence[float],
    settings: Sequence[str],
    *,
    out: str | os.PathLike,
    fast: bool = False,
    seed: int = 0,
    workers: int | None = None,
    backend: str = "process",
    address: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    retry_failed: bool = False,
    progress: bool = True,
    task_fn: Callable[[dict], dict] = run_task,
    command: str = "",
) -> dict:
    """Run every (system, noise, setting) not yet recorded in ``OUT/runs.jsonl``; write the tables.

    Parameters
    ----------
    systems : sequence of int
        ODEBench ids.
    noise : sequence of float
        Noise levels (fractions of each state's mean absolute value), each >= 0.
    settings : sequence of {"ude", "full"}
    out : path
        Output directory (created).
    fast : bool
        Shorter training and a lighter discovery (:func:`fit_stages`, :func:`discover_options`), for smoke runs.
    seed : int
    workers, backend, address, timeout
        As :func:`udesci.study.run_tasks` (``timeout``: seconds per task; a task past it is a timeout).
    retry_failed : bool
        Run again tasks recorded as failed or timed out.
    progress : bool
        One line per finished task on stdout.
    task_fn : callable
        The function run per task (module level, picklable; tests swap it).
    command : str
        Recorded in the outputs.

    Returns
    -------
    dict
        ``records`` (of the selection), ``summary``, ``paths``, ``ran`` and ``skipped`` (counts of this call:
        tasks run, and tasks already recorded).

    Raises
    ------
    ConfigError
        For a bad noise level, setting or seed, an unknown system id, a records file with a line that is not
        a record (other than an interrupted last one), or a bad backend option (see ``run_tasks``).
    """
    catalogue = load_systems()
    unknown = sorted(set(systems) - set(catalogue))
    if unknown or not systems:
        raise ConfigError(f"systems: expected ids in 1..{max(catalogue)}, received {list(systems)!r}.")
    for v in noise:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"--noise: expected finite numbers >= 0, received {v!r}.")
    if not noise:
        raise ConfigError("--noise: expected at least one noise level, e.g. --noise 0,0.01,0.05.")
    for s in settings:
        if s not in SETTINGS:
            raise ConfigError(f"--setting: expected ude, full or both, received {s!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"--seed: expected an int >= 0, received {seed!r}.")
    # the engine checks its options (and Ray's presence) on an empty task list: refused before anything is written
    run_tasks(task_fn, [], backend=backend, workers=workers, address=address, timeout=timeout)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = records_file(out)
    existing = records.load()
    log = functools.partial(print, flush=True) if progress else (lambda *a, **k: None)
    wanted, todo = [], []
    for sid in systems:
        for level in dict.fromkeys(float(v) for v in noise):
            for setting in dict.fromkeys(settings):
                task = {"system": sid, "noise": level, "setting": setting, "fast": bool(fast), "seed": seed}
                key = task_key(task)
                wanted.append(key)
                old = existing.get(key)
                if old is not None and not (retry_failed and old["status"] in ("failed", "timeout")):
                    continue
                if setting == "ude" and not model_parts(catalogue[sid], "ude")[1]:
                    rec = {**task, "description": catalogue[sid].description, "status": "skipped", "error": None}
                    rec["reason"] = "every right-hand side is constant or linear in the states: nothing to discover"
                    records.append(rec)
                    existing[key] = jsonable(rec)
                    continue
                todo.append(task)
    if len(todo) < len(wanted):
        log(f"{out}: {len(wanted) - len(todo)} of {len(wanted)} tasks already recorded (or skipped)")
    config = {
        "command": command, "systems": list(systems), "noise": [float(v) for v in noise], "settings": list(settings),
        "fast": fast, "seed": seed, "backend": backend, "workers": workers, "timeout": timeout,
        "t": [0.0, T_END, N_POINTS], "solver": f"scipy LSODA rtol={RTOL} atol={ATOL}",
        "baseline": "udesci.study.sindy_baseline (PolynomialLibrary(2), SmoothedFiniteDifference, STLSQ by BIC)",
    }  # fmt: skip

    def shown():
        return [existing[k] for k in wanted if k in existing]

    start = time.perf_counter()
    for done, (task, result) in enumerate(
        run_tasks(task_fn, todo, backend=backend, workers=workers, address=address, timeout=timeout), 1
    ):
        rec = {**task, "description": catalogue[task["system"]].description}
        if isinstance(result, TaskFailed):
            status = "timeout" if result.error.startswith("TimeoutError") else "failed"
            rec.update(status=status, error=result.error, traceback=result.traceback)
        else:
            rec.update(result)
        rec = jsonable(rec)
        records.append(rec)
        existing[task_key(rec)] = rec
        write_outputs(out, shown(), config)
        log(f"[{done}/{len(todo)}] {_describe(rec)} ({time.perf_counter() - start:.0f} s elapsed)")
    shown_records = shown()
    written = write_outputs(out, shown_records, config)
    return {
        "records": shown_records,
        "summary": written["summary"],
        "paths": {"json": written["json"], "markdown": written["markdown"], "runs": os.fspath(out / RUNS)},
        "ran": len(todo),
        "skipped": len(wanted) - len(todo),
    }


def _describe(rec: dict) -> str:
    head = f"system {rec['system']} noise={rec['noise']:g} {rec['setting']}"
    if rec["status"] != "ok":
        return f"{head}: {rec['status'].upper()} {rec.get('error') or ''}".rstrip()
    u, s = rec["udesci"], rec.get("sindy") or {}
    return (
        f"{head}: R² rec {_r2_text(u, 'r2_reconstruction')} gen {_r2_text(u, 'r2_generalization')}, exact "
        f"{_yes(u['exact'])}, adequate {_yes(u['adequate'])}, {u['seconds']:.0f} s; SINDy rec "
        f"{_r2_text(s, 'r2_reconstruction')} gen {_r2_text(s, 'r2_generalization')}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: parse the options, run the benchmark, print the tables.

    Returns
    -------
    int
        0 on success, 2 for bad options.
    """
    from udesci.cli_common import noise_list

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", default="all", help="ids and ranges, e.g. 1-5,20 (default: %(default)s)")
    parser.add_argument("--noise", type=noise_list, default="0,0.01,0.05", help="noise levels (default %(default)s)")
    parser.add_argument("--setting", choices=("ude", "full", "both"), default="both", help="default %(default)s")
    parser.add_argument("--workers", type=int, default=None, help="parallel workers (default: CPU count)")
    parser.add_argument("--backend", choices=("process", "ray", "serial"), default="process")
    parser.add_argument("--address", default=None, help="Ray cluster address (with --backend ray)")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per task, then a timeout (%(default)s)"
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help=f"smoke run: {FAST_ITERATIONS} warm-start and shooting iterations, lighter discovery",
    )
    parser.add_argument("--seed", type=int, default=0, help="noise, network and discovery seed (default %(default)s)")
    parser.add_argument("--retry-failed", action="store_true", help="run failed and timed-out tasks again")
    parser.add_argument("--out", default="bench/results/odebench", help="output directory (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        systems = parse_systems(args.systems, load_systems())
        settings = list(SETTINGS) if args.setting == "both" else [args.setting]
        result = run_benchmark(
            systems, args.noise, settings, out=args.out, fast=args.fast, seed=args.seed, workers=args.workers,
            backend=args.backend, address=args.address, timeout=args.timeout, retry_failed=args.retry_failed,
            command=" ".join(["python bench/bench_odebench.py", *(argv if argv is not None else sys.argv[1:])]),
        )  # fmt: skip
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n## Summary\n\n" + summary_table(result["summary"]) + "\n\n" + NOTE)
    print("\n## Per system\n\n" + system_table(result["records"]))
    print(f"\nwrote {result['paths']['json']}, {result['paths']['markdown']} and {result['paths']['runs']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
