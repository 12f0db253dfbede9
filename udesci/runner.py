"""Running a pipeline config: ``udesci run pipeline.toml`` (:func:`run_config`).

:func:`run_config` is a sequence of stages, each a function of the records the
earlier ones returned:

1. :func:`load` — validated config, data (whole and training window), model built
   under the seed, training options, the structures ``[check]`` expects
   (:class:`Setup`);
2. :func:`train` — :func:`udesci.fit` (:class:`~udesci.FitResult`);
3. :func:`discover_unknowns` — :func:`udesci.discover`, if discovery is on;
   both results are kept in :class:`Trained`, which presents them as
   :class:`Outcome` objects;
4. :func:`evaluate` — train/test RMSE per state of the fitted and of the final
   model, the held-out observations and the report's curves (:class:`Evaluation`);
5. :func:`check` — a discovery labelled inadequate, then the ``[check]`` table's failures;
6. :func:`export` — the final model as JSON, LaTeX and Python, and the config;
7. :func:`report` — ``report.md`` with its plots;
8. :func:`summarise` — the summary dict (also written as ``summary.json``).

An :class:`Outcome` is the one export protocol for a fitted model
(:class:`FittedOutcome`) and a discovered one (:class:`DiscoveredOutcome`): the
model to evaluate, its initial states, equations, unknowns and parameters, and
``to_json``/``to_latex``/``to_python``, so no stage asks which one it has.
"""

from __future__ import annotations

import json
import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np
import sympy as sp

from .config import (
    PipelineConfig,
    build_model,
    check_output_dir,
    discovery_options,
    expected_terms,
    load_config,
    load_frame,
    training_options,
)
from .data import Dataset
from .discovery import Discovery, discover
from .errors import ConfigError, DataError
from .evaluate import jsonable, rmse_by_state, simulate_or_nan, torch_threads, write_text_atomic
from .model import HybridModel
from .report import code_span, escape_text, write_report
from .train import FitResult, fit

# ----------------------------------------------------------------------------------------------
# what is exported and evaluated: a fitted or a discovered model
# ----------------------------------------------------------------------------------------------


class Outcome(ABC):
    """A model the runner evaluates and exports: a fitted one or a discovered one.

    Attributes
    ----------
    json_file : str
        File name of the JSON export (``model.json`` or ``equations.json``).
    """

    json_file: ClassVar[str]

    @property
    @abstractmethod
    def model(self) -> HybridModel:
        """The model to simulate and evaluate."""

    @property
    @abstractmethod
    def initial_states(self) -> np.ndarray:
        """Initial state of each trajectory, shape (K, n_states)."""

    @property
    @abstractmethod
    def equations(self) -> dict:
        """Right-hand sides, state symbol -> sympy expression."""

    @property
    @abstractmethod
    def unknowns(self) -> dict:
        """Closed forms of the unknowns, name -> sympy expression (empty for a fitted model)."""

    @abstractmethod
    def to_json(self, path) -> None:
        """Write the model as JSON (see :func:`udesci.export.save_json`)."""

    @abstractmethod
    def to_latex(self) -> str:
        """LaTeX ``align*`` block of the equations."""

    @abstractmethod
    def to_python(self, path) -> None:
        """Write a standalone numpy/scipy module simulating the model."""

    @abstractmethod
    def summary(self) -> str:
        """Readable account, printed at the end of a run."""

    def parameters(self) -> dict:
        """Parameter values by name (trained values for learnable ones)."""
        return {str(k): v for k, v in self.model.parameter_values().items()}


@dataclass(frozen=True)
class FittedOutcome(Outcome):
    """A :class:`~udesci.FitResult` as an :class:`Outcome` (networks still in the model)."""

    fitted: FitResult
    json_file: ClassVar[str] = "model.json"

    @property
    def model(self) -> HybridModel:
        return self.fitted.model

    @property
    def initial_states(self) -> np.ndarray:
        return self.fitted.initial_states

    @property
    def equations(self) -> dict:
        return self.fitted.model.equations

    @property
    def unknowns(self) -> dict:
        return {}

    def to_json(self, path) -> None:
        from .export import save_json

        save_json(self.model, path)

    def to_latex(self) -> str:
        from .export import to_latex

        return to_latex(self.model)

    def to_python(self, path) -> None:
        from .export import to_python

        to_python(self.model, path)

    def summary(self) -> str:
        return str(self.model)


@dataclass(frozen=True)
class DiscoveredOutcome(Outcome):
    """A :class:`~udesci.Discovery` as an :class:`Outcome`; initial states from its refit, else from the fit."""

    found: Discovery
    fitted: FitResult
    json_file: ClassVar[str] = "equations.json"

    @property
    def model(self) -> HybridModel:
        return self.found.model

    @property
    def initial_states(self) -> np.ndarray:
        refit = self.found.refit
        return refit.initial_states if refit is not None else self.fitted.initial_states

    @property
    def equations(self) -> dict:
        return self.found.equations

    @property
    def unknowns(self) -> dict:
        return self.found.unknowns

    def to_json(self, path) -> None:
        self.found.to_json(path)

    def to_latex(self) -> str:
        return self.found.to_latex()

    def to_python(self, path) -> None:
        self.found.to_python(path)

    def summary(self) -> str:
        return self.found.summary()


# ----------------------------------------------------------------------------------------------
# the records passed from stage to stage
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """A loaded run, before training.

    Attributes
    ----------
    config : PipelineConfig
        The validated config (seed override applied).
    full : Dataset
        All the data (held-out window included).
    train : Dataset
        The ``[data] train`` window of ``full`` (``full`` itself without one).
    model : HybridModel
        Built under the run's seed, untrained.
    training : dict
        Keyword arguments of :func:`udesci.fit`.
    expected : dict
        The ``[check.terms]`` structures, name -> sorted term strings.
    discover : bool
        Whether discovery runs.
    """

    config: PipelineConfig
    full: Dataset
    train: Dataset
    model: HybridModel
    training: dict
    expected: dict
    discover: bool

    @property
    def observed(self) -> list[int]:
        """Model state index of each observed state (the order of ``[data] states``)."""
        position = {s: i for i, s in enumerate(self.model.state_names)}
        return [position[s] for s in self.config.data["states"]]


@dataclass(frozen=True)
class Trained:
    """The fitted model and, if discovery ran, its discovery.

    Attributes
    ----------
    fitted : FitResult
    found : Discovery or None
    notes : list of str
        What training and discovery had to work around.
    """

    fitted: FitResult
    found: Discovery | None
    notes: list

    @property
    def fitted_outcome(self) -> FittedOutcome:
        """The fitted model as an :class:`Outcome`."""
        return FittedOutcome(self.fitted)

    @property
    def final(self) -> Outcome:
        """The run's result: the discovered model if discovery ran, else the fitted one."""
        return DiscoveredOutcome(self.found, self.fitted) if self.found is not None else self.fitted_outcome


class HeldOut(NamedTuple):
    """Held-out observations of trajectory 0: ``t`` (T2,), ``y`` (T2, n_observed)."""

    t: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` measured.

    Attributes
    ----------
    metrics : dict
        ``fitted_train_rmse``, ``fitted_test_rmse`` (fitted model), ``train_rmse``,
        ``test_rmse`` (final model), each state -> RMSE; the test entries only with a
        held-out window that has observations.
    held_out : HeldOut or None
    curves : dict
        Report curves: label -> (t, y) or a list of such pieces (see
        :func:`udesci.report.model_section`).
    """

    metrics: dict
    held_out: HeldOut | None
    curves: dict


# ----------------------------------------------------------------------------------------------
# stages
# ----------------------------------------------------------------------------------------------


def load(path, *, seed: int | None = None, fast: bool = False) -> Setup:
    """Load the config, its data and its model (built under the seed).

    Parameters
    ----------
    path : str, PathLike or PipelineConfig
        The TOML file, or a config :func:`udesci.config.load_config` has read already
        (``seed`` and ``fast`` were then given to it, and must be left out here).
    seed : int, optional
        Overrides the file's ``seed``.
    fast : bool
        Apply the ``[fast]`` overrides.

    Returns
    -------
    Setup

    Raises
    ------
    ConfigError
        For an invalid config, a model with nothing to train (no unknown function and no
        learnable parameter), or discovery switched on for a model without unknowns.
    DataError
        For data that do not fit the config (columns, time order, windows).
    TypeError
        For ``seed`` or ``fast`` given with a loaded config.
    """
    import torch

    if isinstance(path, PipelineConfig):
        if seed is not None or fast:
            raise TypeError("load: seed and fast apply when the file is read; pass them to load_config.")
        cfg = path
    else:
        cfg = load_config(path, fast=fast, seed=seed)
    d = cfg.data
    df = load_frame(cfg)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)  # networks initialised under the seed
    if not model.unknowns and not model.learnable:
        raise ConfigError(
            f"{cfg.where.sub('model').prefix()}: nothing to train: the model has no unknown function and no "
            "learnable parameter; expected an unknown such as U(x) in [model.equations] or a parameter "
            "{ value = ..., learnable = true } in [model.parameters]."
        )
    training = training_options(cfg)
    expected = expected_terms(cfg, model)
    full = Dataset.from_frame(
        df,
        time=d["time"],
        states=d["states"],
        trajectory=d["trajectory"],
        inputs=d["inputs"],
        interpolation=d["interpolation"],
    )
    if d["train"] is not None:
        try:
            train_data = full.window(*d["train"])
        except DataError as exc:
            raise DataError(f"{cfg.where.sub('data').prefix('train')}: {exc}") from None
    else:
        train_data = full
    wanted = cfg.discovery["enabled"]
    run_discovery = wanted if wanted is not None else bool(model.unknowns)
    if run_discovery and not model.unknowns:
        raise ConfigError(f"{cfg.where.sub('discovery').prefix('enabled')}: the model has no unknowns to discover.")
    return Setup(cfg, full, train_data, model, training, expected, run_discovery)


def train(setup: Setup, *, quiet: bool = False) -> FitResult:
    """Fit the model to the training window (:func:`udesci.fit` with ``[training]``).

    Returns
    -------
    FitResult
    """
    cfg = setup.config
    return fit(
        setup.model, setup.train, seed=cfg.seed, progress=not quiet, threads=cfg.training["threads"], **setup.training
    )


def discover_unknowns(setup: Setup, fitted: FitResult, *, quiet: bool = False) -> Discovery | None:
    """Discover closed forms of the unknowns (:func:`udesci.discover` with ``[discovery]``), if discovery is on.

    Returns
    -------
    Discovery or None
        ``None`` when discovery is off.

    Raises
    ------
    ConfigError
        For a library of a name that is not an unknown, or invalid extra terms.
    """
    if not setup.discover:
        return None
    cfg = setup.config
    return discover(fitted, seed=cfg.seed, progress=not quiet, **discovery_options(cfg, setup.model))


def _test_window(setup: Setup, k: int):
    """Observation mask of trajectory ``k`` in the ``[data] test`` window (``None`` without one)."""
    window = setup.config.data["test"]
    if window is None:
        return None
    t = setup.full.trajectories[k].t
    return (t >= window[0]) & (t <= window[1])


def _held_out_prediction(setup: Setup, outcome: Outcome, k: int):
    """Prediction and observations of trajectory ``k`` on the test window, or ``None`` (no window or no points)."""
    keep = _test_window(setup, k)
    if keep is None or not keep.any():
        return None
    cfg = setup.config
    fullk, trk = setup.full.trajectories[k], setup.train.trajectories[k]
    t_test = fullk.t[keep]
    if cfg.evaluation["start"] == "observed":
        y_start = fullk.y[keep][0]
        if len(setup.observed) != len(setup.model.states) or not np.all(np.isfinite(y_start)):
            raise ConfigError(
                f"{cfg.where.sub('evaluation').prefix('start')}: 'observed' needs every state observed "
                f"at the test window's first time {t_test[0]}."
            )
        y_init, t_sim = np.asarray(y_start, dtype=float), t_test
    else:
        y_init, t_sim = outcome.initial_states[k], np.union1d(trk.t[trk.t <= t_test[0]], t_test)
    sim = simulate_or_nan(outcome.model, y_init, t_sim, data=setup.full, trajectory=k)
    return sim[np.isin(t_sim, t_test)][:, setup.observed], fullk.y[keep]


def _errors(setup: Setup, outcome: Outcome, prefix: str) -> dict:
    """``{prefix}train_rmse`` (and ``{prefix}test_rmse``) of ``outcome``, each state -> RMSE."""
    names = setup.config.data["states"]
    tr_pred, tr_obs, te_pred, te_obs = [], [], [], []
    for k, trk in enumerate(setup.train.trajectories):
        sim = simulate_or_nan(outcome.model, outcome.initial_states[k], trk.t, data=setup.full, trajectory=k)
        tr_pred.append(sim[:, setup.observed])
        tr_obs.append(trk.y)
        held = _held_out_prediction(setup, outcome, k)
        if held is not None:
            te_pred.append(held[0])
            te_obs.append(held[1])
    out = {f"{prefix}train_rmse": rmse_by_state(np.concatenate(tr_pred), np.concatenate(tr_obs), names)}
    if te_pred:
        out[f"{prefix}test_rmse"] = rmse_by_state(np.concatenate(te_pred), np.concatenate(te_obs), names)
    return out


def _held_out(setup: Setup) -> HeldOut | None:
    keep = _test_window(setup, 0)
    if keep is None or not keep.any():
        return None
    tr0 = setup.full.trajectories[0]
    return HeldOut(tr0.t[keep], tr0.y[keep])


def _curves(setup: Setup, trained: Trained, held: HeldOut | None) -> dict:
    """The report's model curves of trajectory 0 over the training (and held-out) span."""
    tr0, train0 = setup.full.trajectories[0], setup.train.trajectories[0]
    t_lo = train0.t[0]
    t_hi = held.t[-1] if held is not None else train0.t[-1]
    t_dense = np.union1d(np.linspace(t_lo, t_hi, 300), tr0.t[(tr0.t >= t_lo) & (tr0.t <= t_hi)])
    restart = setup.config.evaluation["start"] == "observed" and held is not None
    fitted_label = "fitted UDE" if (restart or setup.model.unknowns) else "fitted model"
    shown = [(fitted_label, trained.fitted_outcome)]
    if trained.found is not None:
        shown.append(("discovered model", trained.final))
    curves = {}
    for label, outcome in shown:
        if restart:
            # the fit over the training span, then the forecast restarted from the observed state
            t_fit = t_dense[t_dense <= train0.t[-1]]
            t_fc = t_dense[t_dense >= held.t[0]]
            y_start = np.asarray(tr0.y[np.searchsorted(tr0.t, held.t[0])], dtype=float)
            curves[label] = [
                (t_fit, simulate_or_nan(outcome.model, outcome.initial_states[0], t_fit, data=setup.full)),
                (t_fc, simulate_or_nan(outcome.model, y_start, t_fc, data=setup.full)),
            ]
        else:
            curves[label] = (
                t_dense,
                simulate_or_nan(outcome.model, outcome.initial_states[0], t_dense, data=setup.full),
            )
    return curves


def evaluate(setup: Setup, trained: Trained) -> Evaluation:
    """RMSEs of the fitted and the final model on the training and held-out windows, and the report's curves.

    A held-out prediction continues the fitted trajectory (``[evaluation] start = "fit"``) or
    restarts from the observed state at the test window's start (``"observed"``).  A model
    that cannot be simulated has NaN predictions and an RMSE of ``inf``.

    Returns
    -------
    Evaluation

    Raises
    ------
    ConfigError
        If ``start = "observed"`` but not every state is observed at the test window's start.
    """
    metrics = {**_errors(setup, trained.fitted_outcome, "fitted_"), **_errors(setup, trained.final, "")}
    held = _held_out(setup)
    return Evaluation(metrics, held, _curves(setup, trained, held))


def check(setup: Setup, trained: Trained, evaluation: Evaluation) -> list[str]:
    """Failures of the run: a discovery labelled inadequate or not identified (always checked), then the
    ``[check]`` table's.

    A discovered closed form that :class:`~udesci.discovery.Adequacy` labels inadequate, or that the data
    do not identify (:class:`~udesci.discovery.results.Identifiability`: an unknown of a never-observed
    state), fails the run with or without a ``[check]`` table (``udesci run`` exits 1): its equations must
    not be read as the law.

    Returns
    -------
    list of str
        One line per failure (empty: passed).
    """
    c = setup.config.check
    failures = []
    adequacy = getattr(trained.found, "adequacy", None)
    if adequacy is not None and not adequacy.adequate:
        failures.append(
            f"adequacy: the closed form of {', '.join(adequacy.inadequate_unknowns())} is inadequate ("
            + "; ".join(adequacy.problems())
            + ")"
        )
    ident = getattr(trained.found, "identifiability", None)
    if ident is not None and not ident.identified:
        failures.append(
            f"identifiability: the data do not identify {', '.join(ident.unknowns)} (never-observed "
            f"{', '.join(ident.hidden)}: " + "; ".join(ident.problems()) + ")"
        )
    if c is None:
        return failures
    for key, metric in (("max_train_rmse", "train_rmse"), ("max_test_rmse", "test_rmse")):
        if c[key] is not None:
            vals = evaluation.metrics.get(metric)
            if vals is None:
                failures.append(f"{key}: no {metric} (is [data] test set?)")
            else:
                bad = {k: v for k, v in vals.items() if not (v <= c[key])}
                if bad:
                    failures.append(f"{key} = {c[key]}: exceeded by {bad}")
    found = trained.found
    for name, wanted in setup.expected.items():
        if found is None or name not in found.unknowns:
            failures.append(f"terms.{name}: no discovered unknown {name}")
            continue
        got = sorted(str(t) for t in sp.expand(found.unknowns[name]).as_coefficients_dict() if t != 0)
        if got != wanted:
            failures.append(f"terms.{name}: expected {wanted}, discovered {got}")
    return failures


def output_dir(cfg: PipelineConfig, out=None) -> Path:
    """``out``, else ``[output] dir`` (relative to the config file), else ``out/<file stem>``.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ConfigError
        If the folder, or a folder above it, exists as a file (the message names
        ``out`` or the ``[output] dir`` key).
    """
    if out is not None:
        return check_output_dir(out, "out")
    if cfg.output["dir"]:
        return check_output_dir(cfg.resolve(cfg.output["dir"]), cfg.where.sub("output").prefix("dir"))
    return check_output_dir(Path("out") / cfg.path.stem, f"{cfg.name}: default output folder")


def export(cfg: PipelineConfig, outcome: Outcome, outdir: Path) -> None:
    """Write ``outcome`` in the ``[output] export`` formats and the config's text into ``outdir``.

    Files: ``model.json``/``equations.json`` (json), ``equations.tex`` (latex), ``model.py``
    (python), ``pipeline.toml``.
    """
    formats = cfg.output["export"]
    if "json" in formats:
        outcome.to_json(outdir / outcome.json_file)
    if "latex" in formats:
        write_text_atomic(outdir / "equations.tex", outcome.to_latex() + "\n")
    if "python" in formats:
        outcome.to_python(outdir / "model.py")
    write_text_atomic(outdir / "pipeline.toml", cfg.text)


def report_intro(cfg: PipelineConfig, notes: list, failures: list) -> str:
    """The report's opening paragraph: what ran on which data, notes and the check's outcome.

    Everything taken from the config or from messages is escaped (see :func:`udesci.report.escape_text`).

    Returns
    -------
    str
        Markdown.
    """
    d = cfg.data
    start = "observed state" if cfg.evaluation["start"] == "observed" else "fitted trajectory"
    intro = (
        f"Pipeline run from {code_span(cfg.name)}: data {code_span(d['file'])}, states {escape_text(d['states'])}, "
        f"inputs {escape_text(d['inputs'])}, training window {d['train'] or 'all'}, held-out window "
        f"{d['test'] or 'none'} (held-out prediction starts from the {start})."
        + (" **Fast mode.**" if cfg.fast else "")
    )
    if notes:
        intro += "\n\nNotes: " + escape_text("; ".join(notes))
    if cfg.check is not None:  # an inadequate discovery without a [check] table: the banner above says so
        intro += "\n\nCheck: " + ("passed" if not failures else "FAILED: " + escape_text("; ".join(failures)))
    return intro


def report(setup: Setup, trained: Trained, evaluation: Evaluation, failures: list, outdir: Path) -> Path:
    """Write ``report.md`` (and its plots, unless ``[output] plots = false``) into ``outdir``.

    Returns
    -------
    pathlib.Path
        The report file.
    """
    cfg = setup.config
    by_state: dict = {}
    for key, vals in evaluation.metrics.items():
        for s, v in vals.items():
            by_state.setdefault(s, {})[key.replace("_", " ")] = v
    command = f"udesci run {cfg.name} --seed {cfg.seed}" + (" --fast" if cfg.fast else "") + f" --out {outdir}"
    return write_report(
        outdir,
        title=cfg.title,
        config=cfg.text,
        fitted=trained.fitted,
        figures=cfg.output["plots"],
        found=trained.found,
        data=setup.train,
        metrics=by_state,
        held_out=evaluation.held_out,
        predictions=evaluation.curves,
        seed=cfg.seed,
        command=command,
        intro=report_intro(cfg, trained.notes, failures),
        time_label=cfg.model["time"],
        metrics_index="state",
    )


def summarise(setup: Setup, trained: Trained, evaluation: Evaluation, failures: list, outdir: Path) -> dict:
    """The run's summary (see :func:`run_config`, Returns), without ``seconds``.

    Returns
    -------
    dict
    """
    cfg, final = setup.config, trained.final
    return {
        "title": cfg.title,
        "config": os.fspath(cfg.path),
        "seed": cfg.seed,
        "fast": cfg.fast,
        "out": os.fspath(outdir),
        "states": setup.model.state_names,
        "inputs": setup.model.input_names,
        "parameters": final.parameters(),
        "unknowns": {k: str(v) for k, v in final.unknowns.items()},
        "equations": {str(s): str(e) for s, e in final.equations.items()},
        "metrics": evaluation.metrics,
        "fit_status": trained.fitted.status,
        "check": {"passed": not failures, "failures": failures, "configured": cfg.check is not None},
        "adequacy": None if getattr(trained.found, "adequacy", None) is None else trained.found.adequacy.as_dict(),
        "identifiability": (
            None if getattr(trained.found, "identifiability", None) is None else trained.found.identifiability.as_dict()
        ),
        "notes": trained.notes,
    }


def _print_results(cfg: PipelineConfig, final: Outcome, result: dict) -> None:
    print(final.summary())
    for key, vals in result["metrics"].items():
        print(f"{key}: " + ", ".join(f"{k} = {v:.4g}" for k, v in vals.items()))
    failures = result["check"]["failures"]
    if cfg.check is not None or failures:
        print("check: " + ("passed" if not failures else "FAILED: " + "; ".join(failures)))
    print(f"outputs in {result['out']} ({result['seconds']:.1f} s)")


def run_config(path, *, out=None, seed: int | None = None, fast: bool = False, quiet: bool = False) -> dict:
    """Run the pipeline a TOML file describes: data → fit → discover → evaluate → check → export → report.

    torch's thread count is ``[training] threads`` during the run and restored afterwards.

    Parameters
    ----------
    path : str, PathLike or PipelineConfig
        The TOML file, or a config already read by :func:`udesci.config.load_config`
        (then leave ``seed`` and ``fast`` out: they were given to it).
    out : path, optional
        Output folder (overrides ``[output] dir``).
    seed : int, optional
        Overrides the file's ``seed``.
    fast : bool
        Apply the ``[fast]`` overrides (smoke runs, tests).
    quiet : bool
        No progress or printed results.

    Returns
    -------
    dict
        ``title``, ``config``, ``seed``, ``fast``, ``out``, ``states``, ``inputs``,
        ``parameters`` (fitted values), ``unknowns`` (discovered expressions, if discovery
        ran), ``equations``, ``metrics`` (``train_rmse``/``test_rmse`` per state, of the
        discovered model if any, else the fitted one; also ``fitted_*`` for the network
        model), ``fit_status``, ``check`` (``passed``, ``failures``, ``configured``; a discovery
        labelled inadequate or not identified is a failure with or without a ``[check]`` table), ``adequacy``
        (the discovery's :meth:`~udesci.discovery.Adequacy.as_dict`, None without discovery),
        ``identifiability`` (its :meth:`~udesci.discovery.results.Identifiability.as_dict` when an unknown
        depends on a never-observed state, else None), ``notes``,
        ``seconds``.  Also written to ``summary.json`` in the output folder.

    Raises
    ------
    ConfigError
        For an invalid config (see :func:`udesci.config.load_config`, :func:`udesci.config.build_model`),
        nothing to train, or an output folder that exists as a file (checked before training).
    DataError
        For data that do not fit the config (columns, time order, windows).
    """
    started = time.perf_counter()
    setup = load(path, seed=seed, fast=fast)
    cfg = setup.config
    outdir = output_dir(cfg, out)  # a bad folder is reported before training, not after
    with torch_threads(cfg.training["threads"], len(setup.model.states)):
        fitted = train(setup, quiet=quiet)
        found = discover_unknowns(setup, fitted, quiet=quiet)
        notes = [fitted.message] if fitted.status != "ok" else []
        if found is not None and found.notes:
            notes.append("; ".join(found.notes))
        trained = Trained(fitted, found, notes)
        evaluation = evaluate(setup, trained)
        failures = check(setup, trained, evaluation)
        result = summarise(setup, trained, evaluation, failures, outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        export(cfg, trained.final, outdir)
        if cfg.output["report"]:
            report(setup, trained, evaluation, failures, outdir)
    result["seconds"] = time.perf_counter() - started
    write_text_atomic(outdir / "summary.json", json.dumps(jsonable(result), indent=2) + "\n")
    if not quiet:
        _print_results(cfg, trained.final, result)
    return result


__all__ = [
    "DiscoveredOutcome", "Evaluation", "FittedOutcome", "HeldOut", "Outcome", "Setup", "Trained", "check",
    "discover_unknowns", "evaluate", "export", "load", "output_dir", "report", "report_intro", "run_config",
    "summarise", "train",
]  # fmt: skip
