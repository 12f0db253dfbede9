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
# # 4. Weather: a model driven by measured inputs
#
# Many systems are pushed by something you measure but do not model: sunshine heats the air, rain
# fills a reservoir, a drug is infused.  Such series are *inputs* (forcing) of the ODE: they appear in
# the equations but have no equation of their own, and the data supply them over time.
#
# This tutorial uses real hourly observations from Greensboro, North Carolina, July 1981 (NREL TMY3
# station 723170, bundled in `data/`; see `data/README.md` for the source and licence):
#
# * state `T`: air temperature (°C);
# * input `S`: global horizontal shortwave radiation, in kW/m²;
# * input `C`: total cloud cover as a fraction.
#
# The physics we are willing to write down is a crude energy balance: the air relaxes towards a
# reference temperature and the sun heats it,
#
# ```
# dT/dt = −k (T − T_ref) + a S
# ```
#
# Everything else (radiative cooling at night under a clear sky, advection, the effect of clouds) is
# left to an unknown function `U(T, C)` of the temperature and the cloud cover.
#
# **Fast mode.**  With `UDESCI_TUTORIAL_FAST=1` (the test suite) the models train on 2 days with 100
# warm-start and 30 shooting iterations and a tiny discovery search; the forecasts are then only a
# smoke test of the workflow.  The full mode trains on 7 days with the training settings of
# `udesci example weather`.

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp

import udesci as ud
from udesci.pipelines.weather import greensboro_frame

FAST = os.environ.get("UDESCI_TUTORIAL_FAST", "") not in ("", "0")
OUT = Path(os.environ.get("UDESCI_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="udesci-weather-"))
OUT.mkdir(parents=True, exist_ok=True)
print("fast mode:", FAST, "| outputs in", OUT)

# %% [markdown]
# ## The data
#
# `greensboro_frame` reads the TMY3 file and converts it to model units; time `t` is in hours since
# 1981-07-01 00:00 local standard time.

# %%
frame = greensboro_frame()
frame[["t", "T", "S", "C"]].head()

# %% [markdown]
# `Dataset.from_frame(..., inputs=[...])` keeps the measured input columns beside the observed states.
# Between samples the inputs are interpolated, here with cubic splines: a smooth forcing keeps adaptive
# ODE solvers from stepping through a kink at every hour.  `data.window(a, b)` keeps the observations
# in `[a, b]` but the inputs whole, so a model trained on the window can still be driven past its end.

# %%
full = ud.Dataset.from_frame(frame, time="t", states=["T"], inputs=["S", "C"], interpolation="cubic")
days = 2 if FAST else 7
t_end = float(frame["t"].iloc[0]) + 24.0 * days
train = full.window(frame["t"].iloc[0], t_end)
train

# %% [markdown]
# ## Step 1: the physics alone
#
# Fitting the energy balance by itself first gives sensible values of `k`, `T_ref` and `a`, and a
# baseline to beat.  A model without unknowns is trained the same way (its learnable parameters only).
# The time step of the shooting solver matters with hourly data: two RK4 substeps per hour.

# %%
T, S, C = sp.symbols("T S C")
k, T_ref, a = sp.symbols("k T_ref a")
solver = ud.Solver("rk4", substeps=2)
if FAST:
    stages = {
        "warm_start": ud.WarmStart(iterations=100, lr=2e-2),
        "shooting": ud.Shooting(segment_length=6, iterations=30, lr=1e-2, solver=solver),
    }
else:
    stages = {
        "warm_start": ud.WarmStart(iterations=500),
        "shooting": ud.Shooting(segment_length=6, iterations=400, lr=5e-3, solver=solver),
    }

start = {k: ud.Learnable(0.2), T_ref: ud.Learnable(float(frame["T"].iloc[:24].mean())), a: ud.Learnable(2.0)}
physics = ud.HybridModel({T: -k * (T - T_ref) + a * S}, params=start, inputs=[S])
physics_fit = ud.fit(physics, train, seed=0, progress=False, **stages)
fitted_params = physics_fit.model.parameter_values()
print({str(p): round(v, 3) for p, v in fitted_params.items()})

# %% [markdown]
# ## Step 2: the hybrid model
#
# The UDE keeps the energy balance and adds `U(T, C)`.  We fix `k`, `T_ref` and `a` at the values of
# step 1: `U`'s candidate library contains a constant and a term linear in `T`, which duplicate the
# relaxation `−k (T − T_ref)`, and a parameter that multiplies the same column as a library term cannot
# be told apart from it.  With them fixed, `U` is the correction to the physics, nothing else.
#
# Inputs are declared with `inputs=[S, C]`; `fit` takes their series from the data.

# %%
U = sp.Function("U")
ude = ud.HybridModel(
    {T: -k * (T - T_ref) + a * S + U(T, C)},
    params={p: fitted_params[p] for p in (k, T_ref, a)},
    inputs=[S, C],
    width=16,
)
ude_fit = ud.fit(ude, train, seed=0, progress=False, **stages)
ude_fit

# %% [markdown]
# ## Step 3: discover `U`
#
# The library is built in `U`'s own arguments, `T` and `C`.  `refit=False` skips discovery's final
# refit, which integrates with an adaptive solver at a tight tolerance and is slow on a month of hourly
# forcing; the shortlist's segment refits have already tuned the coefficients against the data.

# %%
if FAST:
    selection = ud.Selection(sweeps=1, shortlist=4, rescore=4, refine_iterations=3, exhaustive=1, bootstrap=10)
else:
    selection = ud.Selection(sweeps=1, shortlist=8, refine_iterations=10)
found = ud.discover(ude_fit, library=ud.Library(degree=2), selection=selection, refit=False, seed=0)
print(found)

# %% [markdown]
# ## Step 4: a 24-hour forecast
#
# A forecast starts from the temperature observed at the end of the training window and is driven by
# the *measured* radiation and cloud cover of the next day (a perfect-forecast assumption for the
# inputs: in operation they would come from a weather model).  Both `fitted.predict` and
# `found.predict` take a new initial state `y0` and the input series as a dict of arrays sampled at
# `input_times`.

# %%
hours = t_end + np.arange(0.0, 25.0)
rows = frame.set_index("t").loc[hours]
observed = rows["T"].to_numpy()
inputs = {"S": rows["S"].to_numpy(), "C": rows["C"].to_numpy()}
y0 = [observed[0]]

forecasts = {
    "persistence": np.full(hours.size, observed[0]),
    "physics": physics_fit.predict(hours, y0=y0, inputs={"S": inputs["S"]})[:, 0],
    "UDE": ude_fit.predict(hours, y0=y0, inputs=inputs)[:, 0],
    "discovered": found.predict(hours, y0=y0, inputs=inputs)[:, 0],
}
rmse = {name: float(np.sqrt(np.mean((f[1:] - observed[1:]) ** 2))) for name, f in forecasts.items()}
for name, value in rmse.items():
    print(f"{name:12s} 24-h RMSE {value:6.2f} °C")

# %%
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(hours, observed, "k.", label="observed")
for name, f in forecasts.items():
    ax.plot(hours, f, label=f"{name} ({rmse[name]:.2f} °C)")
ax.set_xlabel("hours since 1981-07-01 00:00 LST")
ax.set_ylabel("T (°C)")
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(OUT / "forecast.png", dpi=90)
found.to_json(OUT / "weather_equations.json")
print("files written:", sorted(p.name for p in OUT.iterdir()))

# %% [markdown]
# ## Reading the result
#
# * What the full mode finds (7 days of training, seed 0, measured when this tutorial was written):
#   `U(T, C) ≈ −0.68 C² + 0.025 T`, so cloud cover cools the air beyond what the reduced sunshine
#   already explains, with inclusion probabilities 0.79 for `C²` and 0.86 for `T`.  Its next-day
#   forecast RMSE was 1.2 °C, against 1.9 °C for the trained hybrid model, 2.4 °C for the physics
#   alone and 4.9 °C for persistence.  The fast mode often finds `U = 0`: two days and a few dozen
#   iterations do not give the network enough to go on, and discovery then says that the physics
#   suffices.
# * One forecast of one day is a noisy yardstick.  `udesci example weather` runs the careful
#   comparison: training windows of 1, 3 and 7 days, a forecast from every day boundary of a common
#   test period, and persistence, yesterday, diurnal climatology, the physics alone and a pure neural
#   ODE as baselines.
# * Inputs enter the unknowns like states do: `U(T, C)` is regressed on library terms in `T` and `C`,
#   so the discovered correction says how cloud cover changes the heating and cooling.
# * To forecast in earnest, the inputs over the horizon have to come from somewhere; a model driven by
#   measured radiation shows what the dynamics can do given the forcing, not what a forecaster would
#   get.
