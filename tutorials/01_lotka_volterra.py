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
# # 1. Lotka–Volterra from scratch
#
# The classic predator–prey system is
#
# ```
# dx/dt =  α x − β x y        (prey)
# dy/dt = −δ y + γ x y        (predator)
# ```
#
# Suppose you trust the growth of the prey (α x) and the death of the predators (−δ y), but you do not
# know how the two species interact.  This tutorial writes exactly that down as a *hybrid model*: the
# known terms in SymPy, the interaction as two unknown functions `U(x, y)` and `V(x, y)`.  udesci then
#
# 1. trains a small neural network behind each unknown on the observed trajectories (`ud.fit`),
# 2. regresses each trained network back into a sparse closed form and refits it on the data
#    (`ud.discover`),
# 3. exports the closed-form model as JSON, LaTeX and a standalone Python module.
#
# The truth here is `U = −β x y` and `V = γ x y` with β = 0.9 and γ = 0.8, so we can check the answer.
#
# **Fast mode.**  When the environment variable `UDESCI_TUTORIAL_FAST=1` is set (the test suite does
# this), training and discovery use far fewer iterations and bootstrap replicates, so the notebook runs
# in seconds.  The numbers it prints are then rougher than those of the defaults, and the uncertainty
# estimates rest on only ten bootstrap replicates; run it without the variable for the real thing.

# %%
import importlib.util
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp

import udesci as ud
from udesci.pipelines.lotka_volterra import make_data

FAST = os.environ.get("UDESCI_TUTORIAL_FAST", "") not in ("", "0")
OUT = Path(os.environ.get("UDESCI_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="udesci-lv-"))
OUT.mkdir(parents=True, exist_ok=True)
print("fast mode:", FAST, "| outputs in", OUT)

# %% [markdown]
# ## The data
#
# `make_data` simulates the true system from the UDE paper's initial state, samples it every 0.1 on
# t ∈ [0, 3] and adds Gaussian noise with a standard deviation of `noise` × each state's mean.  Here
# the noise is 1 %.  It returns the times, the clean truth and the noisy observations.

# %%
t, clean, noisy = make_data(noise=0.01, seed=0)
print(t.shape, noisy.shape)
print("first rows (t, x, y):")
print(np.column_stack([t, noisy])[:3].round(4))

# %% [markdown]
# A `Dataset` holds one or more observed trajectories.  The column names must match the model's state
# names; missing observations may be NaN, and every trajectory may have its own time grid.  With a
# pandas DataFrame use `ud.Dataset.from_frame(df, time="t", states=["x", "y"])` instead.

# %%
data = ud.Dataset(t, noisy, states=["x", "y"])
data

# %% [markdown]
# ## The hybrid model
#
# States, parameters and the time are SymPy symbols; unknowns are *undefined functions* applied to the
# states (or inputs, or time) they may depend on.  Each unknown gets its own neural network (an MLP of
# width 32 and depth 2 by default).  Parameters are either fixed numbers or `ud.Learnable(start)`, which
# training adjusts along with the networks.  Here both α and δ are known.
#
# A word of warning about learnable parameters: had we written `delta: ud.Learnable(1.5)`, the term
# −δ y would compete with the term `y` in the candidate library of `V(x, y)`: a parameter multiplying
# the same function as a library term cannot be told apart from that term's coefficient, and discovery
# would happily return `V = γ x y − 0.3 y` with δ off by 0.3.  Learn a parameter only if nothing in the
# unknowns can mimic its term.

# %%
x, y, alpha, delta = sp.symbols("x y alpha delta")
U, V = sp.symbols("U V", cls=sp.Function)

model = ud.HybridModel(
    {x: alpha * x + U(x, y), y: -delta * y + V(x, y)},
    params={alpha: 1.3, delta: 1.8},
)
model

# %% [markdown]
# ## Training
#
# `ud.fit` runs up to three stages:
#
# * `WarmStart` matches the vector field to derivatives of smoothing splines of the data (no ODE
#   solve, about a millisecond per iteration): it puts the networks in the right region quickly;
# * `Shooting` cuts the trajectory into short segments with trainable starts and solves all of them in
#   one batched solve, with a penalty for gaps between segments;
# * `FullTrajectory` (off by default) is the classic single-shooting UDE loss with the adjoint method.
#
# `seed` makes the run reproducible (network initialisation and training).

# %%
if FAST:
    stages = {"warm_start": ud.WarmStart(iterations=200), "shooting": ud.Shooting(iterations=100, lr=1e-2)}
else:
    stages = {"warm_start": ud.WarmStart(), "shooting": ud.Shooting(iterations=300)}
fitted = ud.fit(model, data, seed=0, progress=False, **stages)
fitted

# %% [markdown]
# The trained hybrid model can already predict: `fitted.predict(t)` simulates it from its fitted
# initial state, and `fitted.history` holds the loss of every iteration of every stage.

# %%
print("final loss per stage:", {stage: float(fitted.loss(stage)[-1]) for stage in fitted.seconds})
fit_rmse = np.sqrt(np.mean((fitted.predict(t) - clean) ** 2))
print(f"RMSE of the trained hybrid model against the clean truth: {fit_rmse:.4f}")

# %% [markdown]
# ## Discovery
#
# `ud.discover` samples each trained network along the fitted trajectories, builds a library of
# candidate terms in *that unknown's* arguments (by default polynomials up to degree 2:
# 1, x, y, x², x y, y²), proposes sparse candidates and scores each by how well the model **with the
# candidate substituted** fits the *data* (BIC).  The sparsest candidate within 6 BIC units of the best
# wins.  A bootstrap over blocks of the trajectory gives each term an inclusion probability and each
# chosen coefficient a 95 % interval.
#
# `Selection` controls all of this; the fast mode shrinks the shortlist, the bootstrap and the number
# of passes over the unknowns.

# %%
selection = ud.Selection(bootstrap=10, shortlist=8, rescore=8, sweeps=1) if FAST else ud.Selection()
found = ud.discover(fitted, selection=selection, seed=0)
print(found)

# %% [markdown]
# `found.unknowns` holds the closed form of each unknown as a SymPy expression, `found.equations` the
# right-hand sides with them substituted, and `found.model` a closed-form `HybridModel` with every
# coefficient and learnable parameter refit on the whole trajectory.

# %%
for name, expr in found.unknowns.items():
    print(f"{name} =", expr)
terms = {name: sorted(str(k) for k in sp.expand(e).as_coefficients_dict()) for name, e in found.unknowns.items()}
recovered = terms == {"U": ["x*y"], "V": ["x*y"]}
print("exactly the x*y terms recovered:", recovered)
print("metrics:", found.metrics)

# %% [markdown]
# ## Predicting beyond the data
#
# The data end at t = 3.  A closed-form model is much more trustworthy outside the training range than
# a network, which has only seen the states the trajectory visited.  `found.predict` simulates the
# discovered model from its refit initial state on any grid.

# %%
t_long = np.linspace(0.0, 10.0, 201)
truth = ud.HybridModel({x: 1.3 * x - 0.9 * x * y, y: -1.8 * y + 0.8 * x * y})
true_long = ud.simulate(truth, (0.44249296, 4.6280594), t_long)
pred_long = found.predict(t_long)
long_rmse = np.sqrt(np.mean((pred_long - true_long) ** 2))
print(f"RMSE of the discovered model against the truth on [0, 10]: {long_rmse:.4f}")

# %%
fig, ax = plt.subplots(figsize=(7, 3))
for k, name in enumerate(["x (prey)", "y (predator)"]):
    ax.plot(t_long, true_long[:, k], color=f"C{k}", lw=1, alpha=0.6, label=f"truth {name}")
    ax.plot(t_long, pred_long[:, k], "--", color=f"C{k}", label=f"discovered {name}")
    ax.plot(t, noisy[:, k], ".", color=f"C{k}")
ax.axvline(t[-1], color="grey", lw=0.8)
ax.set_xlabel("t")
ax.legend(fontsize=7, ncol=2)
fig.tight_layout()
fig.savefig(OUT / "extrapolation.png", dpi=90)

# %% [markdown]
# ## Export and reload
#
# * `found.to_json(path)` writes the closed-form model with every candidate, inclusion probability and
#   interval; `ud.load_json` reads it back **without evaluating any code** (expressions are parsed from
#   a whitelist of the Python grammar), so a model file from someone else is safe to open;
# * `found.to_latex()` gives an `align*` block for a paper;
# * `found.to_python(path)` writes a module that needs only numpy and scipy, with `rhs(t, y)` and
#   `simulate(y0, t)`.

# %%
found.to_json(OUT / "equations.json")
(OUT / "equations.tex").write_text(found.to_latex() + "\n")
found.to_python(OUT / "model.py")
print(found.to_latex())

# %%
reloaded, info = ud.load_json(OUT / "equations.json")
print("reloaded equations:", {str(s): str(e) for s, e in reloaded.equations.items()})
y0_fit = found.initial_states[0]
same = np.allclose(ud.simulate(reloaded, y0_fit, t), ud.simulate(found.model, y0_fit, t))
print("reloaded model simulates identically:", same)

# %% [markdown]
# The standalone module runs without udesci or torch:

# %%
spec = importlib.util.spec_from_file_location("lv_model", OUT / "model.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
standalone = module.simulate(y0_fit, t)
print("standalone module agrees:", np.allclose(standalone, ud.simulate(found.model, y0_fit, t), atol=1e-6))
print("files written:", sorted(p.name for p in OUT.iterdir()))

# %% [markdown]
# ## What to take away
#
# * Write what you know, mark what you don't with an undefined function: the network fills the gap
#   and discovery turns it back into an equation.
# * Discovery judges candidates on the data, not on the network: an extra term has to pay for itself
#   in the information criterion.
# * The inclusion probabilities and intervals in `print(found)` say how firmly the data support each
#   term; at higher noise (try `make_data(noise=0.05)`) they widen.
