"""Three more systems through the same fit → discover pipeline, each with a different kind of unknown.

* ``duffing`` — an unknown nonlinear restoring force: ``x' = v``,
  ``v' = −c v + U(x)`` with known damping ``c`` and true
  ``U(x) = −k x − ε x³``.  Three trajectories of different amplitude make the
  cubic term identifiable.
* ``logistic`` — an unknown that multiplies a known term: ``x' = r x U(x)``
  with known ``r`` and true ``U(x) = 1 − x/K``.  Trajectories start below and
  above the carrying capacity.
* ``forced`` — an unknown response to a measured input: ``x' = v``,
  ``v' = −ω² x − c v + U(F)`` with ``F(t)`` a measured forcing series (a sum
  of sinusoids, different per trajectory) and true ``U(F) = b F``.

Each system has ``make_data(noise, seed)``, ``build_model(seed)`` and a
common :func:`run` (``run(system, noise, seed, fast)``) returning structure and
coefficient recovery.  Noise is Gaussian with standard deviation ``noise`` ×
each state's standard deviation over all trajectories (the states of the
oscillators have mean ≈ 0, so the Lotka–Volterra convention "× mean" would not
work for them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import sympy as sp
import torch

from ..errors import ConfigError

x, v, F = sp.symbols("x v F")
c_, r_, w2_ = sp.symbols("c r omega2")
U = sp.Function("U")


@dataclass(frozen=True)
class System:
    """A benchmark system: truth, hybrid model, data and the terms discovery should find.

    Attributes
    ----------
    name : str
    description : str
    states : tuple of str
    truth : dict str -> float
        True coefficient of each library term of ``U`` (term as a string, e.g. ``"x**3"``).
    degree : int
        Polynomial degree of the discovery library.
    """

    name: str
    description: str
    states: tuple
    truth: dict
    degree: int = 3

    def make_data(self, noise: float = 0.01, seed: int = 0) -> dict:
        """Noisy observations (see the module-level :func:`make_data`)."""
        return make_data(self.name, noise, seed)

    def build_model(self, seed: int = 0):
        """The hybrid model with ``U`` as a network (see :func:`build_model`)."""
        return build_model(self.name, seed)

    def run(self, noise: float = 0.01, seed: int = 0, fast: bool = False, quiet: bool = True) -> dict:
        """Data → fit → discover, with recovery of ``U`` (see :func:`run`)."""
        return run(self.name, noise, seed, fast, quiet)


# ---- Duffing ---------------------------------------------------------------------------------------

DUFFING = {"c": 0.2, "k": 1.0, "eps": 0.5}
DUFFING_X0 = ((1.0, 0.0), (1.6, 0.0), (-2.2, 0.5))


def _duffing_truth():
    from .. import HybridModel

    p = DUFFING
    return HybridModel({x: v, v: -p["c"] * v - p["k"] * x - p["eps"] * x**3})


def _duffing_model(seed: int = 0):
    from .. import HybridModel

    torch.manual_seed(seed)
    return HybridModel({x: v, v: -c_ * v + U(x)}, params={c_: DUFFING["c"]})


# ---- logistic --------------------------------------------------------------------------------------

LOGISTIC = {"r": 0.8, "K": 2.0}
LOGISTIC_X0 = ((0.1,), (0.5,), (3.5,))


def _logistic_truth():
    from .. import HybridModel

    p = LOGISTIC
    return HybridModel({x: p["r"] * x * (1 - x / p["K"])})


def _logistic_model(seed: int = 0):
    from .. import HybridModel

    torch.manual_seed(seed)
    return HybridModel({x: r_ * x * U(x)}, params={r_: LOGISTIC["r"]})


# ---- forced oscillator -----------------------------------------------------------------------------

FORCED = {"omega2": 1.0, "c": 0.3, "b": 0.8}
FORCED_X0 = ((0.5, 0.0), (-0.3, 0.4))
# per trajectory: (amplitude, angular frequency, phase) of each sinusoid of the forcing
FORCING = (((1.0, 0.7, 0.0), (0.5, 1.3, 1.0)), ((0.8, 1.1, 0.5), (0.6, 0.4, 2.0)))


def forcing(k: int, t: np.ndarray) -> np.ndarray:
    """The measured forcing ``F(t)`` of trajectory ``k``.

    Parameters
    ----------
    k : int
        Trajectory index (0 or 1).
    t : ndarray

    Returns
    -------
    ndarray, same shape as ``t``
    """
    return sum(a * np.sin(w * t + ph) for a, w, ph in FORCING[k])


def _forced_truth():
    from .. import HybridModel

    p = FORCED
    return HybridModel({x: v, v: -p["omega2"] * x - p["c"] * v + p["b"] * F}, inputs=[F])


def _forced_model(seed: int = 0):
    from .. import HybridModel

    torch.manual_seed(seed)
    return HybridModel({x: v, v: -w2_ * x - c_ * v + U(F)}, params={w2_: FORCED["omega2"], c_: FORCED["c"]}, inputs=[F])


SYSTEMS = {
    "duffing": System(
        "duffing",
        "Duffing oscillator, unknown restoring force U(x) = -k x - eps x^3",
        ("x", "v"),
        {"x": -DUFFING["k"], "x**3": -DUFFING["eps"]},
    ),
    "logistic": System(
        "logistic",
        "logistic growth, unknown U(x) = 1 - x/K multiplying the known r x",
        ("x",),
        {"1": 1.0, "x": -1.0 / LOGISTIC["K"]},
        degree=3,
    ),
    "forced": System(
        "forced",
        "forced damped oscillator, unknown response U(F) = b F to a measured input F(t)",
        ("x", "v"),
        {"F": FORCED["b"]},
    ),
}
_SPANS = {"duffing": (10.0, 0.1), "logistic": (8.0, 0.2), "forced": (8.0, 0.1)}


def _system(name: str) -> System:
    if name not in SYSTEMS:
        raise ConfigError(f"system: expected one of {sorted(SYSTEMS)}, received {name!r}.")
    return SYSTEMS[name]


def make_data(system: str, noise: float = 0.01, seed: int = 0) -> dict:
    """Noisy observations of several trajectories of a system.

    Parameters
    ----------
    system : {"duffing", "logistic", "forced"}
    noise : float
        Noise standard deviation as a fraction of each state's standard
        deviation over all trajectories.
    seed : int

    Returns
    -------
    dict
        ``t`` (list of (T,) arrays), ``clean`` and ``noisy`` (lists of (T, n)
        arrays), ``y0`` (true initial states), and for ``forced`` also
        ``inputs`` (list of (T_u, 1) arrays) and ``input_times`` (list of (T_u,)).

    Raises
    ------
    ConfigError
        For an unknown system or a negative or non-finite noise level.
    """
    from .. import simulate

    _system(system)
    if not np.isfinite(noise) or noise < 0:
        raise ConfigError(f"noise: expected a finite number >= 0, received {noise!r}.")
    t_end, dt = _SPANS[system]
    t = np.round(np.arange(0.0, t_end + dt / 2, dt), 10)
    out: dict = {"t": [], "clean": [], "y0": []}
    if system == "duffing":
        truth, x0s = _duffing_truth(), DUFFING_X0
    elif system == "logistic":
        truth, x0s = _logistic_truth(), LOGISTIC_X0
    else:
        truth, x0s = _forced_truth(), FORCED_X0
        out["inputs"], out["input_times"] = [], []
    for k, y0 in enumerate(x0s):
        if system == "forced":
            # the input is measured with the states; between samples it is a cubic spline, in the truth and in
            # training alike (a smooth input keeps adaptive solvers from stepping on every kink)
            t_in = t
            u = forcing(k, t_in)[:, None]
            out["clean"].append(simulate(truth, y0, t, inputs=u, input_times=t_in, interpolation="cubic"))
            out["inputs"].append(u)
            out["input_times"].append(t_in)
        else:
            out["clean"].append(simulate(truth, y0, t))
        out["t"].append(t)
        out["y0"].append(np.asarray(y0, dtype=float))
    scale = np.concatenate(out["clean"]).std(axis=0)
    rng = np.random.default_rng(seed)
    out["noisy"] = [c + noise * scale * rng.standard_normal(c.shape) for c in out["clean"]]
    return out


def build_model(system: str, seed: int = 0):
    """The hybrid model of a system with its unknown ``U`` as a network.

    Parameters
    ----------
    system : {"duffing", "logistic", "forced"}
    seed : int
        Seeds the network initialisation.

    Returns
    -------
    HybridModel

    Raises
    ------
    ConfigError
        For an unknown system.
    """
    _system(system)
    return {"duffing": _duffing_model, "logistic": _logistic_model, "forced": _forced_model}[system](seed)


def dataset(system: str, data: dict):
    """The :class:`~udesci.Dataset` of :func:`make_data`'s output (noisy observations).

    Parameters
    ----------
    system : str
    data : dict
        Output of :func:`make_data`.

    Returns
    -------
    Dataset

    Raises
    ------
    ConfigError
        For an unknown system.
    """
    from .. import Dataset

    spec = _system(system)
    if system == "forced":
        return Dataset(
            data["t"],
            data["noisy"],
            states=list(spec.states),
            inputs=data["inputs"],
            input_names=["F"],
            input_times=data["input_times"],
            interpolation="cubic",
        )
    return Dataset(data["t"], data["noisy"], states=list(spec.states))


def assess(system: str, expression: sp.Expr) -> dict:
    """Structure and coefficient recovery of a discovered ``U``.

    Parameters
    ----------
    system : str
    expression : sympy.Expr
        The discovered closed form of ``U``.

    Returns
    -------
    dict
        ``terms`` (sorted term strings found), ``correct_structure`` (exactly
        the true terms), ``coefficients`` (term -> value found, 0 if missing),
        ``rel_errors`` (term -> relative error) and ``max_rel_error``.

    Raises
    ------
    ConfigError
        For an unknown system.
    """
    spec = _system(system)
    coeffs = {str(k): float(c) for k, c in sp.expand(expression).as_coefficients_dict().items() if c != 0}
    found = {term: coeffs.get(term, 0.0) for term in spec.truth}
    errors = {term: abs(found[term] - true) / abs(true) for term, true in spec.truth.items()}
    return {
        "terms": sorted(coeffs),
        "correct_structure": sorted(coeffs) == sorted(spec.truth),
        "coefficients": found,
        "found_coefficients": coeffs,
        "rel_errors": errors,
        "max_rel_error": max(errors.values()),
    }


def fit_options(fast: bool = False) -> dict:
    """Training options (``fast``: fewer iterations, for tests).

    Parameters
    ----------
    fast : bool

    Returns
    -------
    dict
        Keyword arguments for :func:`udesci.fit`.
    """
    from .. import Shooting, WarmStart

    if fast:
        return {"warm_start": WarmStart(iterations=300), "shooting": Shooting(iterations=300, lr=1e-2)}
    return {"warm_start": WarmStart(), "shooting": Shooting()}


def run(system: str, noise: float = 0.01, seed: int = 0, fast: bool = False, quiet: bool = True) -> dict:
    """Data → fit → discover for one system; structure and coefficient recovery of ``U``.

    Parameters
    ----------
    system : {"duffing", "logistic", "forced"}
    noise : float
        See :func:`make_data`.
    seed : int
        Seeds the noise, the network initialisation, training and discovery.
    fast : bool
        Fewer training iterations.
    quiet : bool
        No progress or printed summary.

    Returns
    -------
    dict
        ``system``, ``noise``, ``seed``, ``seconds``, ``expression`` (string),
        ``equations``, ``data_rmse_scaled`` and the keys of :func:`assess`.

    Raises
    ------
    ConfigError
        For an unknown system or invalid noise.
    """
    from .. import Library, Selection, discover, fit

    spec = _system(system)
    start = time.perf_counter()
    data = make_data(system, noise, seed)
    model = build_model(system, seed)
    fitted = fit(model, dataset(system, data), seed=seed, progress=not quiet, **fit_options(fast))
    # one unknown: a second backfitting sweep would re-decide it in the same context, so one sweep suffices
    found = discover(
        fitted,
        library=Library(degree=spec.degree),
        selection=Selection(sweeps=1),
        refit_iterations=20 if fast else 40,
        seed=seed,
        progress=not quiet,
    )
    result = {"system": system, "noise": noise, "seed": seed, "fast": fast}
    result.update(assess(system, found.unknowns["U"]))
    result["expression"] = str(found.unknowns["U"])
    result["equations"] = {str(s): str(e) for s, e in found.equations.items()}
    result["data_rmse_scaled"] = found.metrics.get("data_rmse_scaled")
    result["seconds"] = time.perf_counter() - start
    if not quiet:
        print(found.summary())
        errs = ", ".join(f"{k}: {100 * e:.1f}%" for k, e in result["rel_errors"].items())
        print(
            f"{system}: correct structure {result['correct_structure']}; coefficient errors {errs}; "
            f"{result['seconds']:.1f} s"
        )
    return result


duffing, logistic, forced = SYSTEMS["duffing"], SYSTEMS["logistic"], SYSTEMS["forced"]


def run_task(task: dict) -> dict:
    """:func:`run` on a task dict, for sweeps with :func:`udesci.study.run_tasks`.

    Parameters
    ----------
    task : dict
        ``system``, ``noise``, ``seed`` and optionally ``fast``.

    Returns
    -------
    dict
        As :func:`run`.

    Raises
    ------
    ConfigError
        For an unknown system or invalid noise.
    """
    return run(task["system"], float(task["noise"]), int(task["seed"]), bool(task.get("fast", False)))
