# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. Your own CSV with `udesci run`
#
# Most of the time your data sit in a CSV file and you would rather not write a training script.
# `udesci run pipeline.toml` runs a whole pipeline from a small TOML file: it reads the data, builds the
# model from equation *strings* with unknown functions, trains, discovers, evaluates on a held-out
# window, checks the result if you ask it to, exports the equations and writes a report.
#
# This tutorial makes up a data set so that we know the answer: **logistic growth**,
# `dx/dt = r x (1 − x/K)` with r = 0.8 and K = 2, observed as two experiments (one starting far below
# the carrying capacity, one above it) with 2 % noise.  We pretend to know only the exponential growth
# `r x` and ask udesci for the rest, `U(x)`; the truth is `U(x) = −(r/K) x² = −0.4 x²`.
#
# **Fast mode.**  With `UDESCI_TUTORIAL_FAST=1` (as in the test suite) the pipeline is run with the
# file's `[fast]` overrides: fewer training iterations and a much smaller discovery search, so the
# numbers are rougher than a full run's.

# %%
import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from udesci.cli import main
from udesci.errors import ConfigError
from udesci.runner import run_config

FAST = os.environ.get("UDESCI_TUTORIAL_FAST", "") not in ("", "0")
OUT = Path(os.environ.get("UDESCI_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="udesci-csv-"))
OUT.mkdir(parents=True, exist_ok=True)
print("fast mode:", FAST, "| working in", OUT)

# %% [markdown]
# ## A CSV file
#
# The logistic equation has a closed-form solution, so we can write the data without a solver.  The
# file is in *long format*: one row per observation, a time column, one column per observed state and a
# column naming the experiment (trajectory).  Lines starting with `#` are comments.  Missing values
# may be left empty (NaN); each trajectory may have its own irregular time grid.

# %%
r, K = 0.8, 2.0
rng = np.random.default_rng(0)
rows = []
for run, x0 in (("low", 0.1), ("high", 3.5)):
    t = np.arange(0.0, 10.0 + 1e-9, 0.25)
    x = K / (1 + (K / x0 - 1) * np.exp(-r * t))
    x_obs = x + 0.02 * K * rng.standard_normal(t.size)
    rows += [{"run": run, "t": ti, "x": xi} for ti, xi in zip(t, x_obs, strict=True)]
frame = pd.DataFrame(rows)
csv = OUT / "growth.csv"
with open(csv, "w") as fh:
    fh.write("# logistic growth r=0.8 K=2, noise 2% of K, two experiments\n")
    frame.to_csv(fh, index=False, float_format="%.6g")
print(csv.read_text().splitlines()[:5])

# %% [markdown]
# ## The pipeline file
#
# Paths in the TOML file are relative to the file itself.  The tables, in order:
#
# * `[data]`: which columns are time, states and trajectories, and the training and held-out windows;
# * `[model]`: one equation string per state.  A name *called* like a function that is not a known
#   function (`U(x)`) is an unknown and gets a network.  Strings are parsed by a whitelist parser and
#   never evaluated, so a config from someone else cannot run code;
# * `[model.parameters]`: numbers are fixed, `{value = ..., learnable = true}` is trained;
# * `[training.*]` and `[discovery]`: the options of `ud.fit` and `ud.discover`;
# * `[fast]`: overrides applied by `--fast` (smoke runs);
# * `[check]`: what counts as success; a failed check makes `udesci run` exit with status 1, which is
#   what you want in a script or in CI.
#
# Every key is validated, and a typo is reported with the file, the table and the key.  The whole
# schema is in the docstring of `udesci.config`.

# %%
toml = OUT / "growth.toml"
toml.write_text(
    """\
title = "Logistic growth: discover the crowding term"
seed = 0

[data]
file = "growth.csv"
time = "t"
states = ["x"]
trajectory = "run"
train = [0.0, 6.0]      # fit on t <= 6 ...
test = [6.0, 10.0]      # ... and predict the rest

[model]
width = 16

[model.equations]
x = "r*x + U(x)"

[model.parameters]
r = 0.8

[training.warm_start]
iterations = 400

[training.shooting]
iterations = 300

[discovery]
degree = 2

[output]
dir = "out"
plots = true

[fast]
[fast.training.warm_start]
iterations = 200
[fast.training.shooting]
iterations = 100
lr = 0.01
[fast.discovery]
sweeps = 1
shortlist = 6
rescore = 6
bootstrap = 10

[check]
max_test_rmse = 0.2
[check.terms]
U = ["x**2"]
"""
)

# %% [markdown]
# ## Run it from Python
#
# `udesci.runner.run_config` is what the command calls.  It returns the summary as a dict (also written
# to `summary.json` in the output folder).

# %%
result = run_config(toml, fast=FAST, quiet=True)
print("discovered:", result["unknowns"])
print("equations:", result["equations"])
print("held-out RMSE per state:", result["metrics"]["test_rmse"])
print("check passed:", result["check"]["passed"], result["check"]["failures"])

# %% [markdown]
# ## Run it from the command line
#
# The same run from a shell is
#
# ```bash
# udesci run growth.toml --fast --out other-folder
# ```
#
# In a notebook, `udesci.cli.main` takes the same arguments as a list and returns the exit status
# instead of exiting (`subprocess.run([sys.executable, "-m", "udesci.cli", "run", ...])` works too, at
# the price of a second Python start-up).  The status says whether the `[check]` passed (0), failed (1)
# or whether the config or the data were bad (2).  `--json` prints the summary on stdout.

# %%
arguments = ["run", str(toml), "--out", str(OUT / "cli"), "--quiet", "--json"] + (["--fast"] if FAST else [])
printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    status = main(arguments)
print("exit status:", status)
cli_result = json.loads(printed.getvalue())
print("same equations as from Python:", cli_result["unknowns"] == result["unknowns"])

# %% [markdown]
# ## What was written
#
# The output folder holds the discovered model in three forms (`equations.json`, `equations.tex`,
# `model.py`), a copy of the config, `summary.json` and `report.md` with its plots.

# %%
outdir = OUT / "out"
for p in sorted(outdir.iterdir()):
    print(f"{p.name:24s} {p.stat().st_size:8d} bytes")
print()
print((outdir / "equations.tex").read_text())

# %% [markdown]
# ## A mistake, reported
#
# A misspelt key is not silently ignored: the error names the file, the table and the key, and
# suggests the closest valid one.

# %%
bad = OUT / "typo.toml"
bad.write_text(toml.read_text().replace("[training.shooting]\niterations", "[training.shooting]\niteratons"))
try:
    run_config(bad, fast=FAST, quiet=True)
except ConfigError as err:
    print("ConfigError:", err)
