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
# # 3. When the default library is not enough
#
# Discovery can only find what its candidate library contains.  `ud.Library()` holds the polynomials of
# degree ≤ 2 in the unknown's arguments.  If the missing term is cubic, or rational, discovery still
# returns *something* (the best sparse combination of the terms it has); udesci labels it inadequate
# when it fits the data clearly worse than the trained model, and the job of the scientist is to look.
# (Called without `library=`, discover starts from degree 2 and escalates to degree 3, then sin/cos,
# by itself while the result is labelled inadequate: `Discovery.escalation` lists the tries.  This
# tutorial passes its libraries explicitly to show each step.)
#
# This tutorial shows two cases:
#
# 1. the **Van der Pol oscillator**, whose damping term `μ (1 − x²) y` contains the cubic `x² y`;
# 2. **Michaelis–Menten** uptake, a rational rate `−V s / (K_m + s)`.
#
# **Fast mode.**  With `UDESCI_TUTORIAL_FAST=1` (the test suite) training and discovery use few
# iterations and ten bootstrap replicates; the conclusions below hold in both modes, the numbers
# (coefficients, intervals) are rougher in fast mode.

# %%
import os

import numpy as np
import sympy as sp

import udesci as ud
from udesci.display import rounded

FAST = os.environ.get("UDESCI_TUTORIAL_FAST", "") not in ("", "0")
print("fast mode:", FAST)

# training stages and discovery options, shared by every fit and discovery below
if FAST:
    stages = {"warm_start": ud.WarmStart(iterations=200), "shooting": ud.Shooting(iterations=100, lr=1e-2)}
    options = {"selection": ud.Selection(bootstrap=10, shortlist=8, rescore=8, sweeps=1)}
else:
    stages = {"warm_start": ud.WarmStart(), "shooting": ud.Shooting(iterations=400)}
    options = {"selection": ud.Selection()}

# %% [markdown]
# ## Van der Pol: a cubic term
#
# ```
# dx/dt = y
# dy/dt = −x + μ (1 − x²) y          μ = 1
# ```
#
# We know that `x` is a position and `y` its velocity, and that there is a unit restoring force; the
# damping is unknown: `dy/dt = −x + U(x, y)` with the truth `U = y − x² y`.  Two trajectories, one
# from outside and one from inside the limit cycle, with 1 % noise (of each state's standard
# deviation).

# %%
x, y = sp.symbols("x y")
truth = ud.HybridModel({x: y, y: -x + (1 - x**2) * y})
t = np.round(np.arange(0.0, 6.0 + 1e-9, 0.1), 10)
rng = np.random.default_rng(0)
series = []
for start in [(2.0, 0.0), (0.5, 0.5)]:
    clean = ud.simulate(truth, start, t)
    series.append(clean + 0.01 * clean.std(axis=0) * rng.standard_normal(clean.shape))
vdp_data = ud.Dataset([t, t], series, states=["x", "y"])

U = sp.Function("U")
vdp = ud.HybridModel({x: y, y: -x + U(x, y)})
vdp_fit = ud.fit(vdp, vdp_data, seed=0, progress=False, **stages)
vdp_fit

# %% [markdown]
# One fit serves any number of discoveries: `ud.discover` only reads the trained network, so we can
# try several libraries on the same `FitResult`.  First the default library, degree 2:
# 1, x, y, x², x y, y².

# %%
quadratic = ud.discover(vdp_fit, library=ud.Library(degree=2), seed=0, **options)
print("U =", rounded(quadratic.unknowns["U"], 4))
print("metrics:", quadratic.metrics)

# the trained hybrid model's own misfit, in the same units (each state / the std of its observations)
observed = np.concatenate(series)
hybrid = np.concatenate([vdp_fit.predict(trajectory=k) for k in range(len(series))])
hybrid_misfit = np.sqrt(np.mean(((hybrid - observed) / observed.std(axis=0)) ** 2))
print(f"hybrid model (network) misfit: {hybrid_misfit:.4f}")

# %% [markdown]
# Discovery returned a closed form, but look at the misfit: `found.metrics["data_rmse_scaled"]` is the
# root-mean-square difference between the closed-form model's simulation and the data, each state in
# units of the standard deviation of its observations.  The noise is 1 % of that, so a correct model
# should sit near 0.01; this one is more than ten times that.  A misfit far above the noise level is
# the signature of a library that lacks the right term: the best sparse combination of the terms it
# has is a compromise.  A badly trained network could be the cause too, which is why the cell also
# prints the trained hybrid model's own misfit: the network fits the data far better than any closed
# form this library offers.
#
# With `degree=3` the library gains x³, x² y, x y², y³:

# %%
cubic = ud.discover(vdp_fit, library=ud.Library(degree=3), seed=0, **options)
print(cubic)

# %%
rows = [("degree 2", quadratic), ("degree 3", cubic)]
for label, found in rows:
    det = found.details["U"]
    print(
        f"{label}: U = {rounded(found.unknowns['U'], 4)!s:40s}"
        f" data_rmse_scaled = {found.metrics['data_rmse_scaled']:.4f}   BIC = {det.chosen.score:.1f}"
    )
cubic_terms = sorted(str(term) for term in sp.expand(cubic.unknowns["U"]).as_coefficients_dict())
print("degree-3 terms:", cubic_terms)

# %% [markdown]
# The cubic library recovers `U = y − x² y` with coefficients close to ±1 and a misfit at the noise
# level.  The BIC values of the two discoveries are comparable because they are computed on the same
# data with the same likelihood; the difference is enormous.
#
# Why not always use a large library?  Every extra term is another way to fit the noise, the
# exhaustive search over small supports grows quickly with the number of terms (the defaults score all
# supports of up to two terms only for libraries of at most 15 terms), and with few data the criterion
# has less room to tell nearly collinear terms apart.  Start small and grow the library when the misfit
# says so.

# %% [markdown]
# ## Michaelis–Menten: a rational term
#
# A substrate `s` is consumed at a saturating rate,
#
# ```
# ds/dt = −V s / (K_m + s)          V = 2, K_m = 1
# ```
#
# and we pretend to know nothing: `ds/dt = U(s)`.  Three experiments start from different
# concentrations.

# %%
s = sp.Symbol("s")
mm_truth = ud.HybridModel({s: -2.0 * s / (1 + s)})
t_mm = np.round(np.arange(0.0, 4.0 + 1e-9, 0.1), 10)
mm_series = []
for s0 in (1.0, 3.0, 6.0):
    clean = ud.simulate(mm_truth, (s0,), t_mm)
    mm_series.append(clean + 0.01 * rng.standard_normal(clean.shape))
mm_data = ud.Dataset([t_mm] * 3, mm_series, states=["s"])
mm_fit = ud.fit(ud.HybridModel({s: U(s)}), mm_data, seed=0, progress=False, **stages)

polynomial = ud.discover(mm_fit, library=ud.Library(degree=2), seed=0, **options)
print("degree 2: U =", rounded(polynomial.unknowns["U"], 4))
print("data_rmse_scaled =", round(polynomial.metrics["data_rmse_scaled"], 4))

# %% [markdown]
# A quadratic approximates the saturating curve over the range of the data, but only roughly (compare
# its misfit with the one below), and it would extrapolate badly: a parabola turns round for large `s`,
# a saturating rate does not.
#
# `Library(extra=[...])` adds terms of your own, written in the unknown's arguments (strings are parsed
# safely, or pass SymPy expressions):

# %%
rational = ud.discover(mm_fit, library=ud.Library(extra=["s/(1 + s)"]), seed=0, **options)
print("with s/(1 + s): U =", rounded(rational.unknowns["U"], 4))
print("data_rmse_scaled =", round(rational.metrics["data_rmse_scaled"], 4))
ratio = polynomial.metrics["data_rmse_scaled"] / rational.metrics["data_rmse_scaled"]
print(f"the quadratic's misfit is {ratio:.1f} times the rational term's")

# %% [markdown]
# **The honest caveat.**  A library term is a fixed function: discovery fits the coefficient in front
# of `s/(1 + s)` (here about −2 = −V), but it cannot fit the half-saturation constant `K_m` *inside*
# the term.  The current API has no candidate terms with free nonlinear parameters.  What you can do is
# offer a few values and let the criterion choose, which also tells you how well the data pin `K_m`
# down:

# %%
grid = ud.Library(extra=["s/(0.5 + s)", "s/(1 + s)", "s/(2 + s)"])
chosen = ud.discover(mm_fit, library=grid, seed=0, **options)
print("from a grid of K_m: U =", chosen.unknowns["U"])
for c in chosen.details["U"].candidates[:4]:
    print(f"   candidate {rounded(c.expression, 4)!s:45s} BIC {c.score:9.1f}")

# %% [markdown]
# If you need `K_m` as a fitted number, write the rational form into the model itself with learnable
# parameters, e.g. `ud.HybridModel({s: -V*s/(K_m + s)}, params={V: ud.Learnable(1.0), K_m:
# ud.Learnable(0.5)})`, and use discovery for what you do not know.
