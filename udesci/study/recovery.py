"""The Lotka–Volterra recovery study: how reliably does discovery find the right equations?

:func:`recovery_study` runs the full Lotka–Volterra pipeline for every (noise
level, seed) (:func:`recovery_run`), beside the SINDy-only baselines on the same
noisy data (:mod:`udesci.study.baselines`), through the sweep engine
(:func:`udesci.study.engine.run_tasks`).  Each finished run is appended to
``runs.jsonl`` (a :class:`~udesci.study.engine.RecordsFile`, so an interrupted
study keeps its runs and a rerun resumes), and the study writes a table per noise
level as CSV, JSON and Markdown plus a PNG plot.

The table reports the baseline with PySINDy's default threshold 0.1 (key
``sindy``) in full and, beside it, the one whose threshold is chosen per run by
BIC (key ``sindy_bic``).  On these short (31-sample) trajectories the smoothed
finite-difference derivatives are biased, and the BIC choice usually prefers a
denser model that fits the training window better, so the default threshold is
the stronger baseline.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..evaluate import jsonable, write_text_atomic
from .baselines import DEFAULT_THRESHOLD, SWEEP_THRESHOLDS, lv_baseline
from .engine import RUNS_FILE, RecordsFile, TaskFailed, run_tasks


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
    from ..pipelines.lotka_volterra import make_data, run_pipeline

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


def run_key(record: dict) -> tuple:
    """The run a record belongs to: ``(noise, seed, fast)``.

    Parameters
    ----------
    record : dict
        A run record with ``noise``, ``seed`` and ``fast``.

    Returns
    -------
    tuple of (float, int, bool)

    Raises
    ------
    KeyError, TypeError, ValueError
        If ``record`` lacks one of them or holds a value of the wrong kind.
    """
    return (float(record["noise"]), int(record["seed"]), bool(record["fast"]))


def runs_file(out: str | os.PathLike) -> RecordsFile:
    """The records file ``out/runs.jsonl`` of a study, keyed by :func:`run_key`.

    Parameters
    ----------
    out : path
        Study directory.

    Returns
    -------
    RecordsFile
    """
    return RecordsFile(Path(out) / RUNS_FILE, run_key)


def load_runs(out: str | os.PathLike) -> list[dict]:
    """Run records in ``out/runs.jsonl`` (an incomplete last line from an interrupted write is ignored).

    Parameters
    ----------
    out : path
        Study directory.

    Returns
    -------
    list of dict
        One record per finished run; a later record of the same run replaces
        an earlier one.

    Warns
    -----
    udesci.study.engine.IncompleteRecordWarning
        When the last line was cut short (its run is to be redone).

    Raises
    ------
    ConfigError
        If a complete line of the file is not a JSON run record.
    """
    return list(runs_file(out).load().values())


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


TABLE_COLUMNS = (
    "noise", "runs", "failed", "structure", "β err", "γ err", "β/γ err, correct runs", "extrap. RMSE", "s/run",
    "SINDy structure", "SINDy β err", "SINDy γ err", "SINDy extrap. RMSE", "SINDy-BIC structure",
)  # fmt: skip


def markdown_table(rows: list[dict]) -> str:
    """The study table in Markdown (udesci columns, then the SINDy-only baselines), numbers right-aligned.

    Parameters
    ----------
    rows : list of dict
        Output of :func:`summarize`.

    Returns
    -------
    str
        Header, alignment row and one line per noise level; ``–`` marks a value
        that does not exist (no finished run), ``∞`` an RMSE of a model that blew up.
    """
    from ..report import markdown_table as table

    cells = [
        dict(
            zip(
                TABLE_COLUMNS,
                (
                    f"{r['noise']:g}",
                    f"{r['runs']}",
                    f"{r['failed']}",
                    _pct(r["structure_rate"]),
                    _pct(r["beta_error"]),
                    _pct(r["gamma_error"]),
                    f"{_pct(r.get('beta_error_correct'))} / {_pct(r.get('gamma_error_correct'))}",
                    _num(r["extrapolation_rmse"]),
                    _num(r["seconds"]),
                    _pct(r["sindy_structure_rate"]),
                    _pct(r["sindy_beta_error"]),
                    _pct(r["sindy_gamma_error"]),
                    _num(r["sindy_extrapolation_rmse"]),
                    _pct(r["sindy_bic_structure_rate"]),
                ),
                strict=True,
            )
        )
        for r in rows
    ]
    lines = table(cells, TABLE_COLUMNS).split("\n")
    lines[1] = "|" + "---:|" * len(TABLE_COLUMNS)  # report.markdown_table left-aligns; these are numbers
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
    table = io.StringIO(newline="")
    if flat:
        writer = csv.DictWriter(table, fieldnames=list(flat[0]))
        writer.writeheader()
        writer.writerows(flat)
    write_text_atomic(paths["csv"], table.getvalue())
    doc = {"config": config, "table": rows, "runs": flat}
    write_text_atomic(paths["json"], json.dumps(jsonable(doc), indent=2) + "\n")
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
    write_text_atomic(paths["markdown"], markdown_table(rows) + note)
    if plot and rows:
        from ..plots import plot_recovery

        paths["png"] = out / "recovery.png"
        plot_recovery(paths["png"], rows)
    return {k: os.fspath(v) for k, v in paths.items()}


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
    in parallel (see :func:`udesci.study.engine.run_tasks`).  Each finished run is appended to
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
        ``ran`` and ``skipped`` (counts of this call) and ``config`` (the
        settings stored in ``summary.json``).

    Warns
    -----
    udesci.study.engine.IncompleteRecordWarning
        When ``runs.jsonl`` ends in a line cut short by an interrupt (that run is redone).

    Raises
    ------
    ConfigError
        For invalid noise levels, run or worker counts, backend or address,
        a ``runs.jsonl`` with a line that is not a run record (other than an
        interrupted last one), or Ray missing with ``backend="ray"``.
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
    records_file = runs_file(out)
    existing = records_file.load()
    # seed-major order: a study stopped early has about as many runs at every noise level
    wanted = [run_key({"noise": n, "seed": s, "fast": fast}) for s in range(runs) for n in levels]
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
        rec = jsonable(rec)
        records_file.append(rec)
        existing[run_key(rec)] = rec
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
