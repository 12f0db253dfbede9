"""The sweep engine: run tasks in parallel, and keep finished results in a crash-safe records file.

* :func:`run_tasks` runs any sweep (seeds, noise levels, hyper-parameters) behind
  one small interface, on an embedded process pool (``backend="process"``), a Ray
  cluster (``backend="ray"``, optional dependency) or in this process
  (``backend="serial"``, for debugging).  A task that raises, runs past its time
  limit or kills its worker is returned as a :class:`TaskFailed` record instead of
  stopping the sweep.
* :class:`RecordsFile` is the resumable record of a sweep: one JSON object per
  line, appended (and fsynced) as each task finishes.  A record counts once its
  line, newline included, is on disk; a last line cut short by an interrupt is
  dropped on reading (with a warning) and cut off before the next append, so an
  interrupted sweep loses at most the task it was writing and never corrupts the
  file.
"""

from __future__ import annotations

import json
import os
import re
import traceback
import warnings
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, describe
from ..evaluate import jsonable

BACKENDS = ("process", "ray", "serial")
RUNS_FILE = "runs.jsonl"


# --------------------------------------------------------------------------------------------------
# running tasks


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


class TaskTimeout(BaseException):
    """A task ran past its time limit (raised inside the worker by a timer signal).

    A ``BaseException`` (like ``KeyboardInterrupt``), so that the broad ``except Exception``
    fallbacks inside a task (a solver failure retried another way) cannot swallow the time limit.
    """


def _single_thread() -> None:
    """Initialiser of a worker process: one intra-op thread for torch and the BLAS libraries.

    The workers already run in parallel, one per CPU; threads inside each would only
    oversubscribe the cores.  This sets the process-wide torch setting on purpose: the
    worker process is the engine's own and runs nothing but tasks, so there is no caller
    whose setting it would have to restore (which :func:`udesci.evaluate.torch_threads`
    does for code running in someone else's process).
    """
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import torch

    torch.set_num_threads(1)


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
# the records file


class IncompleteRecordWarning(UserWarning):
    """The last line of a records file was cut short (an interrupted write) and is ignored."""


@dataclass(frozen=True)
class RecordsFile:
    """An append-only JSON-lines file of finished task records, safe against interrupted writes.

    A record is committed once its whole line, ending in a newline, is on disk
    (:meth:`append` writes it in one call and fsyncs).  A last line that lacks its
    newline or is not a record is an interrupted write: :meth:`load` ignores it
    (and warns), :meth:`append` cuts it off before writing, so a new record is never
    glued onto it.  Any other line that is not a record is an error.

    Attributes
    ----------
    path : pathlib.Path
        The file (created by the first :meth:`append`).
    key : callable dict -> hashable
        Identifies the task of a record (a later record of the same task
        replaces an earlier one); raising ``KeyError``, ``TypeError`` or
        ``ValueError`` marks a line that is not a record.
    """

    path: Path
    key: Callable[[dict], Hashable]

    def load(self) -> dict:
        """The committed records, by task key, in the order of their first appearance.

        Returns
        -------
        dict key -> dict
            An empty dict if the file does not exist.

        Warns
        -----
        IncompleteRecordWarning
            When the last line is an interrupted write (ignored: its task is to be redone).

        Raises
        ------
        ConfigError
            If a line other than the last is not a JSON record.
        """
        path = Path(self.path)
        if not path.exists():
            return {}
        with open(path, "rb") as fh:
            end = fh.seek(0, os.SEEK_END)
            start = _last_line_start(fh, end)
            fh.seek(0)
            data = fh.read()
        if self._torn(data[start:]):
            warnings.warn(
                f"{os.fspath(path)}: the last line ({len(data) - start} bytes) is an incomplete record from an "
                "interrupted write; it is ignored and its run will be redone.",
                IncompleteRecordWarning,
                stacklevel=2,
            )
            data = data[:start]
        records: dict = {}
        for n, raw in enumerate(data.split(b"\n")):
            if not raw.strip():
                continue
            try:
                key, rec = self._record(raw)
            except (ValueError, KeyError, TypeError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                raise ConfigError(
                    f"{os.fspath(path)}: line {n + 1} is not a run record; move the file away to start afresh."
                ) from None
            records[key] = rec
        return records

    def append(self, record: dict) -> None:
        """Append one record as a JSON line and fsync; first cut off an incomplete last line.

        Parameters
        ----------
        record : dict
            Made strict JSON with :func:`udesci.evaluate.jsonable` (non-finite floats become null).

        Raises
        ------
        ConfigError
            If ``record`` is not a dict, or the key function rejects it.
        OSError
            If the file cannot be written.
        """
        if not isinstance(record, dict):
            raise ConfigError(f"record: expected a dict, received {describe(record)}.")
        line = json.dumps(jsonable(record)) + "\n"
        try:
            self._record(line.encode("utf-8"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"record: expected a record of {os.fspath(self.path)} ({type(exc).__name__}: {exc}), "
                f"received {describe(record)}."
            ) from None
        with open(self.path, "a+b") as fh:  # writes go to the end, whatever the position
            end = fh.seek(0, os.SEEK_END)
            start = _last_line_start(fh, end)
            fh.seek(start)
            if self._torn(fh.read()):
                fh.truncate(start)
            fh.write(line.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())  # the cut and the new line together

    def _record(self, raw: bytes) -> tuple[Hashable, dict]:
        rec = json.loads(raw)
        return self.key(rec), rec

    def _torn(self, tail: bytes) -> bool:
        """Whether ``tail`` (the file from the start of its last non-blank line) is an interrupted write."""
        body = tail.rstrip()
        if not body:
            return False
        if b"\n" not in tail[len(body) :]:
            return True  # the write stopped before the line's newline
        try:
            self._record(body)
        except (ValueError, KeyError, TypeError):
            return True
        return False


def _last_line_start(fh, end: int, chunk: int = 1 << 16) -> int:
    """Offset where the last non-blank line of the open binary file ``fh`` (``end`` bytes) starts."""
    pos, buf = end, b""
    while pos > 0:
        step = min(chunk, pos)
        pos -= step
        fh.seek(pos)
        buf = fh.read(step) + buf
        body = buf.rstrip()
        if body and b"\n" in body:
            return pos + body.rindex(b"\n") + 1
    return 0
