"""Recovery studies: the CLI, parallel backends, resume, crash-safe records, failure records and the
SINDy-only baseline."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import udesci.cli
from udesci import ConfigError
from udesci.pipelines.lotka_volterra import make_data
from udesci.study import (
    RUNS_FILE,
    SWEEP_THRESHOLDS,
    IncompleteRecordWarning,
    RecordsFile,
    TaskFailed,
    load_runs,
    lv_baseline,
    markdown_table,
    recovery_study,
    run_tasks,
    sindy_baseline,
    summarize,
)

ROOT = Path(__file__).resolve().parents[1]


# ---- cheap module-level task functions (picklable for the process pool) ----------------------------


def square(task):
    return task * task


def fails_on_odd_seed(task: dict) -> dict:
    """A stand-in for recovery_run: instant, and raising for odd seeds."""
    if task["seed"] % 2:
        raise ValueError(f"seed {task['seed']} is odd")
    return fake_run(task)


def fake_run(task: dict) -> dict:
    """A stand-in for recovery_run with the same record layout (no training)."""
    u = {
        "seconds": 0.01,
        "correct_structure": task["seed"] == 0,
        "beta": 0.9,
        "gamma": 0.8,
        "beta_rel_error": 0.01 * (task["seed"] + 1),
        "gamma_rel_error": 0.02,
        "extrapolation_rmse": 0.1,
        "U_terms": ["x*y"],
        "V_terms": ["x*y"],
        "equations": {"x": "x", "y": "y"},
    }
    b = {"correct_structure": False, "beta_rel_error": 0.5, "gamma_rel_error": 0.4, "extrapolation_rmse": float("inf")}
    return {"udesci": u, "sindy": dict(b), "sindy_bic": dict(b)}


# ---- run_tasks --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["serial", "process"])
def test_run_tasks_returns_every_result(backend):
    out = dict(run_tasks(square, [1, 2, 3, 4], backend=backend, workers=2))
    assert out == {1: 1, 2: 4, 3: 9, 4: 16}


def test_run_tasks_records_exceptions():
    tasks = [{"seed": 0}, {"seed": 1}]
    out = {t["seed"]: r for t, r in run_tasks(fails_on_odd_seed, tasks, backend="process", workers=2)}
    assert isinstance(out[1], TaskFailed) and "ValueError: seed 1 is odd" in out[1].error
    assert "Traceback" in out[1].traceback
    assert out[0]["udesci"]["correct_structure"] is True


@pytest.mark.parametrize("backend", ["serial", "process"])
def test_run_tasks_stops_a_task_past_its_time_limit(backend):
    import time

    out = dict(run_tasks(time.sleep, [30, 0.01], backend=backend, workers=2, timeout=1.0))
    assert out[0.01] is None
    assert isinstance(out[30], TaskFailed) and "TimeoutError" in out[30].error


def test_run_tasks_rejects_bad_options():
    with pytest.raises(ConfigError, match="backend"):
        list(run_tasks(square, [1], backend="mpi"))
    with pytest.raises(ConfigError, match="workers"):
        list(run_tasks(square, [1], workers=0))
    with pytest.raises(ConfigError, match="address"):
        list(run_tasks(square, [1], backend="process", address="auto"))
    with pytest.raises(ConfigError, match="timeout"):
        list(run_tasks(square, [1], timeout=0))


def test_ray_missing_gives_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ConfigError, match=r"--backend ray.*pip install -e \.\[distributed\]"):
        run_tasks(square, [1], backend="ray")
    assert udesci.cli.main(["study", "recovery", "--runs", "1", "--noise", "0.01", "--backend", "ray"]) == 2


# ---- the SINDy-only baseline ------------------------------------------------------------------------


def test_baseline_recovers_the_structure_from_clean_data():
    t, clean, _ = make_data(0.0, 0)
    res = lv_baseline(t, clean, 0.1)
    assert res["correct_structure"], res["equations"]
    # smoothed finite differences on 31 samples are biased: a loose bound
    assert res["beta_rel_error"] < 0.15 and res["gamma_rel_error"] < 0.2, res
    assert np.isfinite(res["extrapolation_rmse"])


def test_baseline_threshold_sweep_and_validation():
    t = np.linspace(0, 6, 61)
    y = np.stack([np.cos(t), -np.sin(t)], axis=1)  # dx/dt = y, dy/dt = -x
    res = sindy_baseline(t, y, ("x", "y"), "sweep")
    assert res["terms"] == {"x": ["y"], "y": ["x"]}, res["equations"]
    assert res["threshold"] in SWEEP_THRESHOLDS
    with pytest.raises(ConfigError, match="threshold"):
        sindy_baseline(t, y, ("x", "y"), -1.0)
    with pytest.raises(ConfigError, match="shape"):
        sindy_baseline(t, y[:, :1], ("x", "y"))


# ---- studies: CLI, outputs, resume, failures ---------------------------------------------------------


def test_failed_runs_are_recorded_and_retried(tmp_path):
    res = recovery_study([0.01], 2, out=tmp_path, backend="serial", progress=False, task_fn=fails_on_odd_seed)
    assert res["ran"] == 2
    runs = {r["seed"]: r for r in load_runs(tmp_path)}
    assert runs[0]["status"] == "ok" and runs[1]["status"] == "failed"
    assert "seed 1 is odd" in runs[1]["error"]
    row = res["table"][0]
    assert row["runs"] == 2 and row["failed"] == 1 and row["structure_rate"] == 0.5
    assert "| 0.01 | 2 | 1 | 50.0% |" in (tmp_path / "summary.md").read_text()
    csv_text = (tmp_path / "runs.csv").read_text()
    assert "failed" in csv_text and "seed 1 is odd" in csv_text
    # resume: nothing to do (failed runs are kept) unless asked to retry them
    again = recovery_study([0.01], 2, out=tmp_path, backend="serial", progress=False, task_fn=fails_on_odd_seed)
    assert again["ran"] == 0 and again["skipped"] == 2
    retry = recovery_study(
        [0.01], 2, out=tmp_path, backend="serial", progress=False, task_fn=fake_run, retry_failed=True
    )
    assert retry["ran"] == 1 and retry["table"][0]["failed"] == 0


def test_interrupted_study_keeps_finished_runs(tmp_path):
    recovery_study([0.01, 0.05], 1, out=tmp_path, backend="serial", progress=False, task_fn=fake_run)
    with open(tmp_path / "runs.jsonl", "a") as fh:
        fh.write('{"noise": 0.01, "seed": 1, "fa')  # a write cut short by an interrupt
    with pytest.warns(IncompleteRecordWarning, match="interrupted write"):
        assert len(load_runs(tmp_path)) == 2
    with pytest.warns(IncompleteRecordWarning):
        res = recovery_study([0.01, 0.05], 2, out=tmp_path, backend="serial", progress=False, task_fn=fake_run)
    assert res["ran"] == 2 and res["skipped"] == 2
    assert [r["runs"] for r in res["table"]] == [2, 2]
    # the partial line was cut off, not glued onto: every line is a record and a rerun resumes cleanly
    lines = (tmp_path / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["status"] == "ok" for line in lines)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = recovery_study([0.01, 0.05], 2, out=tmp_path, backend="serial", progress=False, task_fn=fake_run)
    assert again["ran"] == 0 and again["skipped"] == 4


def test_truncated_last_record_is_redone_exactly_once(tmp_path):
    """A last record cut anywhere (even just before its newline) is dropped with a warning; the rerun
    redoes exactly that run and leaves the file as an uninterrupted study would have."""
    args = ([0.01, 0.05], 3)
    recovery_study(*args, out=tmp_path / "ref", backend="serial", progress=False, task_fn=fake_run)
    reference = (tmp_path / "ref" / RUNS_FILE).read_bytes()
    last = reference[reference.rstrip(b"\n").rfind(b"\n") + 1 :]
    lost = json.loads(last)
    for cut in (1, len(last) // 2, len(last) - 1):
        out = tmp_path / f"cut{cut}"
        out.mkdir()
        (out / RUNS_FILE).write_bytes(reference[:-cut])
        with pytest.warns(IncompleteRecordWarning, match="incomplete record from an interrupted write"):
            res = recovery_study(*args, out=out, backend="serial", progress=False, task_fn=fake_run)
        assert res["ran"] == 1 and res["skipped"] == 5
        assert [(r["noise"], r["seed"]) for r in res["runs"]][-1] == (lost["noise"], lost["seed"])
        assert (out / RUNS_FILE).read_bytes() == reference, cut
        for name in ("runs.csv", "summary.json", "summary.md"):
            assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name


def test_records_file_rejects_a_damaged_middle_line(tmp_path):
    records = RecordsFile(tmp_path / RUNS_FILE, key=lambda r: r["id"])
    records.append({"id": 1, "value": float("inf")})
    records.append({"id": 2})
    assert records.load() == {1: {"id": 1, "value": None}, 2: {"id": 2}}
    with pytest.raises(ConfigError, match="record"):
        records.append({"value": 3})  # no key: refused before anything is written
    with pytest.raises(ConfigError, match="record: expected a dict"):
        records.append([1, 2])
    text = (tmp_path / RUNS_FILE).read_text()
    (tmp_path / RUNS_FILE).write_text(text.replace('{"id": 1', '{"id": 1,,', 1))
    with pytest.raises(ConfigError, match=r"line 1 is not a run record; move the file away"):
        records.load()
    # a complete last line that is not a record (e.g. zeros from a crash) is dropped too, then cut off
    (tmp_path / RUNS_FILE).write_text(text + "\x00\x00\x00\n")
    with pytest.warns(IncompleteRecordWarning):
        assert list(records.load()) == [1, 2]
    records.append({"id": 3})
    assert (tmp_path / RUNS_FILE).read_text() == text + '{"id": 3}\n'


# ---- killed studies: SIGKILL at random moments, then resume ------------------------------------------


def slow_fake_run(task: dict) -> dict:
    """fake_run taking a little while, so that kills land in and between runs."""
    time.sleep(0.03)
    return fake_run(task)


KILL_STUDY = {"noise_levels": [0.01, 0.05, 0.1], "runs": 8, "backend": "serial", "progress": False}


def _kill_study(out) -> None:
    recovery_study(out=out, task_fn=slow_fake_run, command="kill test", **KILL_STUDY)


def _check_kills(out: Path, reference: bytes, kill, delays) -> None:
    """Start, kill after each delay, check that the committed records only grow along ``reference``; finish."""
    committed = b""
    for delay in delays:
        kill(out, delay)
        data = (out / RUNS_FILE).read_bytes() if (out / RUNS_FILE).exists() else b""
        now = data[: data.rfind(b"\n") + 1]  # what follows the last newline is an interrupted write
        # no finished run lost (the file only grows) or recorded twice (it follows the uninterrupted run's file)
        assert now.startswith(committed) and reference.startswith(now), (delay, now[-200:])
        committed = now
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IncompleteRecordWarning)
        res = recovery_study(out=out, task_fn=slow_fake_run, command="kill test", **KILL_STUDY)
    assert res["ran"] + res["skipped"] == 24
    assert (out / RUNS_FILE).read_bytes() == reference


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method")
def test_study_killed_at_random_moments_loses_and_repeats_nothing(tmp_path):
    """SIGKILL a (forked) study process at 10 seeded random moments, resuming each time: no finished run is lost
    or recorded twice, and the final records and tables equal those of an uninterrupted study."""
    ref = tmp_path / "ref"
    _kill_study(ref)
    reference = (ref / RUNS_FILE).read_bytes()
    ctx = multiprocessing.get_context("fork")

    def kill(out, delay):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork of a process with threads: the child is ours
            proc = ctx.Process(target=_kill_study, args=(out,))
            proc.start()
        time.sleep(delay)
        proc.kill()  # SIGKILL
        proc.join()

    # one run takes ~0.04 s: 10 kills spread over the 24 runs
    _check_kills(tmp_path / "killed", reference, kill, np.random.default_rng(13).uniform(0.0, 0.15, size=10))
    for name in ("runs.csv", "summary.json", "summary.md"):
        assert (tmp_path / "killed" / name).read_bytes() == (ref / name).read_bytes(), name


KILL_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
from test_study import KILL_STUDY, slow_fake_run
from udesci.study import recovery_study
print("ready", flush=True)
recovery_study(out=sys.argv[1], task_fn=slow_fake_run, command="kill test", **KILL_STUDY)
"""


@pytest.mark.slow
def test_study_process_killed_at_random_moments(tmp_path):
    """The same with a fresh interpreter per cycle (``python -c``), killed once it has imported udesci."""
    ref = tmp_path / "ref"
    _kill_study(ref)
    reference = (ref / RUNS_FILE).read_bytes()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    script = KILL_SCRIPT.format(tests=str(ROOT / "tests"))

    def kill(out, delay):
        proc = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(delay)
        proc.kill()
        proc.wait()
        proc.stdout.close()

    _check_kills(tmp_path / "killed", reference, kill, np.random.default_rng(14).uniform(0.0, 0.15, size=10))


def test_summary_and_markdown():
    recs = [{"noise": 0.01, "seed": s, "fast": True, "status": "ok", **fake_run({"seed": s})} for s in range(3)]
    rows = summarize(recs, [0.01])
    assert rows[0]["structure_rate"] == pytest.approx(1 / 3)
    assert rows[0]["beta_error"] == pytest.approx(0.02)  # median of 0.01, 0.02, 0.03 over all runs
    assert rows[0]["beta_error_correct"] == pytest.approx(0.01)  # only seed 0 has the right structure
    assert rows[0]["sindy_extrapolation_rmse"] == float("inf")
    table = markdown_table(rows)
    assert table.splitlines()[0].startswith("| noise |") and "∞" in table
    assert "| 1.0% / 2.0% |" in table  # β / γ error over the correct runs


def test_cli_validates_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        udesci.cli.main(["study", "recovery", "--noise", "lots"])
    assert exc.value.code == 2
    assert udesci.cli.main(["study", "recovery", "--noise", "-0.1", "--runs", "1"]) == 2
    assert "--noise" in capsys.readouterr().err
    assert udesci.cli.main(["study", "recovery", "--runs", "0"]) == 2
    assert udesci.cli.main(["study", "recovery", "--runs", "1", "--workers", "0"]) == 2


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """2 fast runs at one noise level through the CLI, process backend with 2 workers."""
    out = tmp_path_factory.mktemp("study")
    argv = ["study", "recovery", "--noise", "0.005", "--runs", "2", "--fast", "--workers", "2", "--out", str(out)]
    code = udesci.cli.main(argv + ["--quiet"])
    return code, out, argv


@pytest.mark.slow
def test_cli_study_writes_table_json_csv_png(tiny_study):
    code, out, _ = tiny_study
    assert code == 0
    for name in ("runs.jsonl", "runs.csv", "summary.json", "summary.md", "recovery.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "recovery.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((out / "summary.json").read_text())
    (row,) = doc["table"]
    assert row["noise"] == 0.005 and row["runs"] == 2 and row["failed"] == 0
    assert 0.0 <= row["structure_rate"] <= 1.0 and row["seconds"] > 0
    assert row["beta_error"] is not None and 0.0 <= row["sindy_structure_rate"] <= 1.0
    assert len(doc["runs"]) == 2 and {r["seed"] for r in doc["runs"]} == {0, 1}
    assert doc["config"]["command"].startswith("udesci study recovery --noise 0.005 --runs 2")
    assert (out / "summary.md").read_text().startswith("| noise |")


@pytest.mark.slow
def test_cli_study_resumes(tiny_study, capsys):
    _, out, argv = tiny_study
    before = (out / "runs.jsonl").read_text()
    capsys.readouterr()
    assert udesci.cli.main(argv + ["--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ran"] == 0 and doc["skipped"] == 2
    assert (out / "runs.jsonl").read_text() == before


@pytest.mark.slow
def test_study_on_a_local_ray_instance(tmp_path, capsys):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    argv = ["study", "recovery", "--noise", "0.005", "--runs", "2", "--fast", "--backend", "ray", "--workers", "2"]
    assert udesci.cli.main(argv + ["--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ran"] == 2 and doc["table"][0]["runs"] == 2 and doc["table"][0]["failed"] == 0, doc
    assert (out / "recovery.png").stat().st_size > 0
    assert dict(run_tasks(abs, [-3, 4], backend="ray", workers=2)) == {-3: 3, 4: 4}
