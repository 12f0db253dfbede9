"""Recovery studies: how reliably does discovery find the right equations?

* :mod:`udesci.study.engine` — the sweep engine: :func:`run_tasks` on a process
  pool, a Ray cluster or serially, with time limits and :class:`TaskFailed`
  records, and the crash-safe, resumable records file (:class:`RecordsFile`).
* :mod:`udesci.study.baselines` — SINDy alone on the same noisy data
  (:func:`sindy_baseline`, :func:`lv_baseline`).
* :mod:`udesci.study.recovery` — the Lotka–Volterra recovery study
  (:func:`recovery_study`): every (noise level, seed) through the full pipeline
  beside the baselines, summarised per noise level as CSV, JSON, Markdown and a plot.
"""

from ..evaluate import jsonable
from .baselines import DEFAULT_THRESHOLD, SWEEP_THRESHOLDS, lv_baseline, simulate_polynomial, sindy_baseline
from .engine import BACKENDS, RUNS_FILE, IncompleteRecordWarning, RecordsFile, TaskFailed, TaskTimeout, run_tasks
from .recovery import (
    load_runs,
    markdown_table,
    recovery_run,
    recovery_study,
    run_key,
    runs_file,
    summarize,
    write_outputs,
)

# strict-JSON copy (non-finite floats -> None) under the name the study command has always used
json_safe = jsonable

__all__ = [
    "BACKENDS", "DEFAULT_THRESHOLD", "RUNS_FILE", "SWEEP_THRESHOLDS", "IncompleteRecordWarning", "RecordsFile",
    "TaskFailed", "TaskTimeout", "json_safe", "load_runs", "lv_baseline", "markdown_table", "recovery_run",
    "recovery_study", "run_key", "run_tasks", "runs_file", "simulate_polynomial", "sindy_baseline", "summarize",
    "write_outputs",
]  # fmt: skip
