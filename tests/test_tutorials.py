"""The tutorials in ``tutorials/`` run, and say what their prose says they show.

* Default suite: all four in fast mode (``UDESCI_TUTORIAL_FAST=1``: tiny iteration counts and a small
  discovery search), run one after another in **one** subprocess so that udesci, torch, PySINDy and
  matplotlib are imported once (each tutorial gets a fresh namespace, its own output folder and its
  own captured stdout; an exception in one is recorded and does not stop the others).
* Slow suite: each tutorial in full mode (the defaults) in its own subprocess, and tutorial 1
  converted to a notebook with jupytext, executed with nbclient and rendered to HTML with nbconvert.

Outputs go to pytest's temporary folders, never into the repository.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
NAMES = [p.stem for p in TUTORIALS]

# runs each tutorial file given on the command line in a fresh namespace, in order
DRIVER = r"""
import contextlib, io, json, os, runpy, sys, time, traceback
from pathlib import Path

out = Path(sys.argv[1])
results = {}
for path in sys.argv[2:]:
    name = Path(path).stem
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["UDESCI_TUTORIAL_OUT"] = str(folder / "out")
    printed = io.StringIO()
    cpu, wall = time.process_time(), time.perf_counter()
    error = None
    try:
        with contextlib.redirect_stdout(printed):
            runpy.run_path(path, run_name="__main__")
    except BaseException:
        error = traceback.format_exc()
    (folder / "stdout.txt").write_text(printed.getvalue())
    results[name] = {"error": error, "cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}
    import matplotlib.pyplot as plt

    plt.close("all")
(out / "results.json").write_text(json.dumps(results, indent=1))
"""


def tutorial_env(fast: bool, out: Path | None = None) -> dict:
    """The environment a tutorial runs in: this checkout first on the path, a headless backend."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["UDESCI_TUTORIAL_FAST"] = "1" if fast else "0"
    env["MPLBACKEND"] = "Agg"
    if out is not None:
        env["UDESCI_TUTORIAL_OUT"] = str(out)
    return env


class Run:
    """One tutorial's run: what it printed and the folder it wrote to."""

    def __init__(self, name: str, stdout: str, out: Path):
        self.name, self.stdout, self.out = name, stdout, out

    def line(self, prefix: str) -> str:
        """The first printed line starting with ``prefix`` (fails the test if there is none)."""
        for line in self.stdout.splitlines():
            if line.startswith(prefix):
                return line
        raise AssertionError(f"{self.name}: no line starting with {prefix!r} in its output:\n{self.stdout}")


@pytest.fixture(scope="module")
def fast_runs(tmp_path_factory):
    """All tutorials in fast mode in one subprocess: name -> Run (error, if any, raised by the test)."""
    base = tmp_path_factory.mktemp("tutorials-fast")
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(base), *map(str, TUTORIALS)],
        cwd=base,
        env=tutorial_env(fast=True),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((base / "results.json").read_text())
    timings = ", ".join(f"{n} {r['cpu_s']:.1f} s CPU / {r['wall_s']:.1f} s" for n, r in results.items())
    print(f"\ntutorials (fast mode): {timings}")
    runs = {}
    for name, result in results.items():
        runs[name] = (result["error"], Run(name, (base / name / "stdout.txt").read_text(), base / name / "out"))
    return runs


def fast_run(fast_runs, name: str) -> Run:
    error, run = fast_runs[name]
    assert error is None, f"{name} raised in fast mode:\n{error}\nits output:\n{run.stdout[-3000:]}"
    return run


# ---- what each tutorial shows (checked in both modes) ---------------------------------------------


def check_lotka_volterra(run: Run) -> None:
    assert run.line("exactly the x*y terms recovered:").endswith("True")
    assert run.line("reloaded model simulates identically:").endswith("True")
    assert run.line("standalone module agrees:").endswith("True")
    for f in ("equations.json", "equations.tex", "model.py", "extrapolation.png"):
        assert (run.out / f).is_file(), f
    assert "\\begin{align*}" in (run.out / "equations.tex").read_text()
    rmse = float(run.line("RMSE of the discovered model against the truth").rsplit(":", 1)[1])
    assert rmse < 0.2  # the x*y model extrapolates to t = 10 (the data stop at t = 3)


def check_your_csv(run: Run) -> None:
    # the file's [check] asks for exactly U = c*x**2 and a held-out RMSE below 0.2
    assert run.line("check passed:") == "check passed: True []"
    assert run.line("exit status:") == "exit status: 0"
    assert run.line("same equations as from Python:").endswith("True")
    assert "did you mean 'iterations'" in run.line("ConfigError:")
    folder = run.out / "out"
    for f in ("equations.json", "equations.tex", "model.py", "summary.json", "report.md", "pipeline.toml"):
        assert (folder / f).is_file(), f
    assert json.loads((folder / "summary.json").read_text())["check"]["passed"] is True
    assert (run.out / "cli" / "summary.json").is_file()


def check_richer_library(run: Run) -> None:
    assert run.line("degree-3 terms:") == "degree-3 terms: ['x**2*y', 'y']"
    misfit = {
        label: float(re.search(r"data_rmse_scaled = ([0-9.e-]+)", run.line(label)).group(1))
        for label in ("degree 2: U", "degree 3: U")
    }
    assert misfit["degree 3: U"] < 0.02 < 0.1 < misfit["degree 2: U"]  # noise is 1% of the scale
    network = float(run.line("hybrid model (network) misfit:").rsplit(":", 1)[1])
    assert network < misfit["degree 2: U"] / 3  # the library, not the network, is what falls short
    assert "s/(s + 1)" in run.line("with s/(1 + s): U =")
    ratio = float(re.search(r"misfit is ([0-9.]+) times", run.line("the quadratic's misfit")).group(1))
    assert ratio > 2
    assert "s/(s + 1)" in run.line("from a grid of K_m: U =")


def check_weather_inputs(run: Run) -> None:
    rmse = {}
    for method in ("persistence", "physics", "UDE", "discovered"):
        line = run.line(f"{method} ")
        rmse[method] = float(re.search(r"24-h RMSE\s+([0-9.]+)", line).group(1))
    assert all(0 < v < 10 for v in rmse.values()), rmse  # finite forecasts of a plausible size (degC)
    assert (run.out / "forecast.png").is_file() and (run.out / "weather_equations.json").is_file()


CHECKS = {
    "01_lotka_volterra": check_lotka_volterra,
    "02_your_csv": check_your_csv,
    "03_richer_library": check_richer_library,
    "04_weather_inputs": check_weather_inputs,
}


def test_every_tutorial_is_checked():
    assert NAMES == sorted(CHECKS), "a tutorial without checks, or checks without a tutorial"


@pytest.mark.parametrize("name", NAMES)
def test_tutorial_fast(fast_runs, name):
    CHECKS[name](fast_run(fast_runs, name))


# ---- slow: full mode, and one tutorial as an executed, rendered notebook -----------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_tutorial_full(tmp_path, name):
    path = ROOT / "tutorials" / f"{name}.py"
    proc = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=tutorial_env(fast=False, out=tmp_path / "out"),
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    CHECKS[name](Run(name, proc.stdout, tmp_path / "out"))


@pytest.mark.slow
def test_tutorial_as_notebook(tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    name = "01_lotka_volterra"
    notebook = jupytext.read(ROOT / "tutorials" / f"{name}.py")
    for key, value in tutorial_env(fast=True, out=tmp_path / "out").items():
        if key != "MPLBACKEND":  # the kernel's inline backend puts the figure into the notebook
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    printed = "".join(
        out.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    )
    check_lotka_volterra(Run(name, printed, tmp_path / "out"))
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "the extrapolation figure is displayed in the notebook"
    html_exporter = pytest.importorskip("nbconvert").HTMLExporter
    body, _ = html_exporter().from_notebook_node(notebook)
    page = tmp_path / f"{name}.html"
    page.write_text(body, encoding="utf-8")
    assert "Lotka–Volterra from scratch" in body and "data:image/png;base64" in body
