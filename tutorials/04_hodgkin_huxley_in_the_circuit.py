# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial 4 — a Hodgkin–Huxley neuron as a circuit node
#
# You know the Hodgkin–Huxley neuron as a set of equations: a membrane capacitor, a leak,
# and sodium and potassium conductances `g_Na m³h` and `g_K n⁴` whose gates follow their
# own kinetics. It is also a **circuit**: a node (the membrane) with a capacitor to ground,
# and three elements from the node to their batteries — the leak `g_L` to `E_L`, the
# sodium channel to `E_Na`, the potassium channel to `E_K`. In `ephys_eqprop` each of
# these elements is one small class; the neuron is a node model made of them, and it
# lives in a circuit with everything else a circuit can hold: other neurons, resistors
# between them (gap junctions), current clamps, voltage sources.
#
# Why bother? Because a circuit has a **gradient**. For any loss on the voltage traces —
# here, how far a neuron's trace is from a recorded one — the package computes the exact
# derivative with respect to every conductance (`Adjoint`: the adjoint of the circuit's
# equations, run backwards in time), and the local, biased estimate a synapse or channel
# could compute itself from two runs (`LagrangianEP`, Kendall 2021).
#
# In this tutorial we
#
# 1. build a neuron from NEURON's `hh` parameters, drive it with current steps, and look
#    at its voltage, gates and f–I curve next to NEURON's own `hh` mechanism;
# 2. couple two neurons by a gap junction (a resistor between two nodes);
# 3. fit `g_Na`, `g_K` and `g_L` of a neuron to a target trace: the gradient by `Adjoint`
#    against finite differences, the local estimate of Lagrangian EP next to it, and a few
#    steps of gradient descent.

# %%
import os
import sys
import time
from pathlib import Path

import matplotlib

# Small-size mode (used by the test suite): shorter runs and fewer points, no windows.
SMALL = os.environ.get("EPHYS_EQPROP_TUTORIAL_SMALL", "") not in ("", "0")
HEADLESS = (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
            and not os.environ.get("WAYLAND_DISPLAY") and "ipykernel" not in sys.modules)
if SMALL or HEADLESS:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from brian2 import amp, ms, nS, umetre, uS, volt  # noqa: E402

import ephys_eqprop as eq  # noqa: E402
from ephys_eqprop.dynamics import prepare, simulate  # noqa: E402

INTERACTIVE = matplotlib.get_backend().lower() != "agg"
OUT = Path(os.environ.get("EPHYS_EQPROP_TUTORIAL_OUT", "tutorial_figures"))
OUT.mkdir(parents=True, exist_ok=True)
T_START = time.time()


def save(fig, name):
    """Save a figure as PNG into OUT; show it only on an interactive backend."""
    path = OUT / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"saved figure: {path}")
    if INTERACTIVE:
        plt.show()
    plt.close(fig)


# %% [markdown]
# ## 1. One neuron, step currents
#
# `eq.models.HHNeuron("hh")` is the squid axon of Hodgkin & Huxley (1952) as NEURON's
# built-in `hh` mechanism has it — rest at −65 mV, 6.3 °C — on a soma of 20,000 µm²
# (so 1 µA/cm² is 0.2 nA). It is a `NodeModel` with three channels:

# %%
AREA = 20000 * umetre**2
UA_CM2 = 1e-6 * 20000e-8  # one µA/cm² on this soma, in amp
neuron = eq.models.HHNeuron("hh", area=AREA)
print([type(ch).__name__ for ch in neuron.shunts])

# %% [markdown]
# A circuit holds one node group `soma` of such neurons and a current clamp into it.
# Each of the four batch copies gets its own step: below threshold, a single onset
# spike, repetitive firing, and depolarisation block. `dt = 0.01 ms`: every state steps
# with forward Euler (the scheme the adjoint differentiates exactly), which at this
# step keeps spike times within ~0.02 ms of a converged solution.

# %%
DT = 0.01 * ms
T_MS = 40 if SMALL else 100
N = int(T_MS / 0.01)
c = eq.Circuit()
c.add_nodes("soma", 1, neuron)
c.add_current_input("I", "soma")
c.set_output("soma")
densities = np.array([1.0, 3.0, 10.0, 100.0])  # µA/cm²
net = c.build(batch=len(densities), dt=DT)
I = np.zeros((len(densities), N, 1))
I[:, 500:, 0] = densities[:, None] * UA_CM2   # from 5 ms on
steps = eq.TimeSeries(I * amp, dt=DT)
traj = simulate(net, prepare(net, steps), record=True)
t_ms = np.arange(N + 1) * 0.01
v = traj.v["soma"] * 1e3                      # (N + 1, batch) in mV
m = traj.node_states[("soma", "m")]
h = traj.node_states[("soma", "h")]
n = traj.node_states[("soma", "n")]

# %% [markdown]
# The neurons are plain Brian2 objects: `net.groups["soma"]` is a `NeuronGroup` with the
# variables `v`, `m`, `h`, `n`, `g_Na`, ... that you can monitor and change as usual.

# %%
print(net.groups["soma"].name, sorted(k for k in ("v", "m", "h", "n", "g_Na", "g_K", "g_L")
                                      if k in net.groups["soma"].variables))

# %% [markdown]
# The same steps in NEURON (its `hh` mechanism with the exact rate functions,
# `usetable_hh = 0`, one cylindrical soma of the same area, Crank–Nicolson at the same dt),
# if NEURON is installed (`pip install neuron`):

# %%
try:
    from ephys_eqprop.validation.neuron_reference import neuron_available, neuron_hh_cells

    HAVE_NEURON = neuron_available()
except ImportError:
    HAVE_NEURON = False


def spikes(t, trace, threshold=0.0):
    up = np.flatnonzero((trace[:-1] < threshold) & (trace[1:] >= threshold))
    return t[up] + (threshold - trace[up]) / (trace[up + 1] - trace[up]) * (t[up + 1] - t[up])


if HAVE_NEURON:
    tn, vn = neuron_hh_cells(20000e-12, I[:, :, 0], 0.01e-3, method="crank_nicolson")
    vn = vn * 1e3
    worst = 0.0
    for k in range(len(densities)):
        a, b = spikes(t_ms, v[:, k]), spikes(tn * 1e3, vn[:, k])
        if len(a) != len(b):
            worst = np.inf
        elif len(a):
            worst = max(worst, float(np.max(np.abs(a - b))))
    print(f"spike times against NEURON: max difference {worst:.4f} ms over "
          f"{sum(len(spikes(t_ms, v[:, k])) for k in range(len(densities)))} spikes")
else:
    print("NEURON is not installed: pip install neuron to compare with it")

fig, axes = plt.subplots(3, 4, figsize=(13, 6.5), sharex=True)
labels = ["sub-threshold", "onset spike", "repetitive", "depolarisation block"]
for k in range(len(densities)):
    ax = axes[0, k]
    if HAVE_NEURON:
        ax.plot(tn * 1e3, vn[:, k], color="C3", lw=2.2, alpha=0.45, label="NEURON hh")
    ax.plot(t_ms, v[:, k], color="C0", lw=0.8, label="ephys_eqprop")
    ax.set_title(f"{labels[k]}: {densities[k]:g} µA/cm²", fontsize=9)
    axes[1, k].plot(t_ms, m[:, k], label="m")
    axes[1, k].plot(t_ms, h[:, k], label="h")
    axes[1, k].plot(t_ms, n[:, k], label="n")
    axes[2, k].plot(t_ms[:-1], I[k, :, 0] / UA_CM2, color="0.3")
    axes[2, k].set_xlabel("t (ms)")
axes[0, 0].set_ylabel("v (mV)")
axes[1, 0].set_ylabel("gates")
axes[2, 0].set_ylabel("I (µA/cm²)")
axes[0, 0].legend(fontsize=7)
axes[1, 0].legend(fontsize=7)
save(fig, "04_step_responses.png")

# %% [markdown]
# The f–I curve: the firing rate against the step amplitude, counted after the first
# 50 ms. The squid-axon neuron is of Hodgkin's class II — it jumps from silence to
# ~50 Hz.

# %%
FI_MS = 100 if SMALL else 300
NF = int(FI_MS / 0.025)
amps = np.linspace(0, 40, 6 if SMALL else 17)
fi_net = c.build(batch=len(amps), dt=0.025 * ms)
I_fi = np.tile(amps[:, None, None] * UA_CM2, (1, NF, 1))
vf = simulate(fi_net, prepare(fi_net, eq.TimeSeries(I_fi * amp, dt=0.025 * ms)),
              record=True).v["soma"]
tf = np.arange(NF + 1) * 0.025e-3
rate = np.array([np.sum(spikes(tf, vf[:, k]) >= 0.05) for k in range(len(amps))]) / (
    FI_MS * 1e-3 - 0.05)
fig, ax = plt.subplots(figsize=(5.5, 3.8))
if HAVE_NEURON:
    tnf, vnf = neuron_hh_cells(20000e-12, I_fi[:, :, 0], 0.025e-3, method="crank_nicolson")
    rate_n = np.array([np.sum(spikes(tnf, vnf[:, k]) >= 0.05) for k in range(len(amps))]) / (
        FI_MS * 1e-3 - 0.05)
    ax.plot(amps, rate_n, "o-", color="C3", lw=2.2, alpha=0.5, label="NEURON hh")
    print(f"f-I curve: max rate difference to NEURON {np.max(np.abs(rate - rate_n)):.1f} Hz")
ax.plot(amps, rate, "s", color="C0", ms=4, label="ephys_eqprop")
ax.set_xlabel("step current (µA/cm²)")
ax.set_ylabel("firing rate (Hz)")
ax.legend()
save(fig, "04_fi_curve.png")

# %% [markdown]
# ## 2. Two neurons and a gap junction
#
# A gap junction is a resistor between two membranes: a `Resistor` branch between two
# nodes of the `soma` group (`i=[0], j=[1]`), conductance 30 nS, learnable like any
# synapse. Neuron 0 gets a 10 µA/cm² step; neuron 1 only the junction's current.

# %%
pair = eq.Circuit()
pair.add_nodes("soma", 2, eq.models.HHNeuron("hh", area=AREA))
pair.add_current_input("I", "soma")
pair.connect("soma", "soma", eq.models.Resistor(), g=[30.0] * nS, i=[0], j=[1], name="gap")
pair.set_output("soma")
pair_net = pair.build(batch=1, dt=DT)
I2 = np.zeros((1, N, 2))
I2[0, 500:, 0] = 10 * UA_CM2
v2 = simulate(pair_net, prepare(pair_net, eq.TimeSeries(I2 * amp, dt=DT)),
              record=True).v["soma"] * 1e3
print(f"gap junction: neuron 0 fires {len(spikes(t_ms, v2[:, 0]))} spikes, neuron 1 "
      f"{len(spikes(t_ms, v2[:, 1]))}")
fig, ax = plt.subplots(figsize=(9, 3.4))
ax.plot(t_ms, v2[:, 0], label="neuron 0 (driven)")
ax.plot(t_ms, v2[:, 1], label="neuron 1 (through the junction)")
ax.set_xlabel("t (ms)")
ax.set_ylabel("v (mV)")
ax.legend()
save(fig, "04_gap_junction.png")

# %% [markdown]
# ## 3. The gradient of a voltage-trace loss
#
# A "recorded" trace: the same neuron with `g_Na` 10 % lower and `g_K` 15 % higher, driven
# by 10 µA/cm². Our model neuron starts from the textbook values; the loss is the mean
# squared difference of the voltage traces, as a power: `C = ∫ ½ g_n (v − v_rec)² dt`
# (`eq.losses.MSE(g_nudge=g_n)`).
#
# `Adjoint` gives `dC/dg_Na`, `dC/dg_K`, `dC/dg_L` exactly (for the simulated, forward-Euler
# loss). Finite differences check it: a relative step of 1e-4 moves the spikes by
# microseconds, so the loss stays smooth and central differences are accurate to their
# O(ε²). Lagrangian EP is local in space and time — each channel integrates
# `½ m³h (v − E_Na)²` (its co-content at fixed gates) in a nudged and an anti-nudged run —
# but a spiking neuron is far from the quasi-static limit where it is exact.

# %%
FIT_STEPS = 1200 if SMALL else 4000
x_fit = eq.TimeSeries(np.concatenate([np.zeros((1, 200, 1)),
                                      np.full((1, FIT_STEPS - 200, 1), 10 * UA_CM2)], 1) * amp,
                      dt=DT)
one = eq.Circuit()
one.add_nodes("soma", 1, eq.models.HHNeuron("hh", area=AREA))
one.add_current_input("I", "soma")
one.set_output("soma")
teacher = one.build(batch=1, dt=DT)
p = teacher.get_params()
teacher.set_params({"soma.g_Na": 0.9 * p["soma.g_Na"], "soma.g_K": 1.15 * p["soma.g_K"]})
recorded = simulate(teacher, prepare(teacher, x_fit)).v_out
y_fit = eq.TimeSeries(np.transpose(recorded, (1, 0, 2)) * volt, dt=DT)
model = one.build(batch=1, dt=DT)
loss = eq.losses.MSE(g_nudge=10 * nS)
exact = eq.Adjoint().gradient(model, x_fit, y_fit, loss)
fd = eq.FiniteDifference(eps=1e-4).gradient(model, x_fit, y_fit, loss)
lep = eq.LagrangianEP(beta=1e-3).gradient(model, x_fit, y_fit, loss)
names = ["soma.g_Na", "soma.g_K", "soma.g_L"]
a = np.array([float(exact[k][0]) for k in names])
f = np.array([float(fd[k][0]) for k in names])
e = np.array([float(lep[k][0]) for k in names])
err = float(np.max(np.abs(a - f)) / np.max(np.abs(f)))
cos_lep = float(a @ e / (np.linalg.norm(a) * np.linalg.norm(e)))
print(f"adjoint vs finite differences on g_Na, g_K, g_L: max relative error {err:.2e}")
print(f"cosine of LagrangianEP to the exact gradient (spiking neuron): {cos_lep:.3f}")

fig, ax = plt.subplots(figsize=(6, 3.6))
xs = np.arange(3)
scale = np.abs(f)
ax.bar(xs - 0.25, a / scale, 0.25, label="Adjoint")
ax.bar(xs, f / scale, 0.25, label="finite differences")
ax.bar(xs + 0.25, e / scale, 0.25, label="Lagrangian EP (β = 1e-3)")
ax.axhline(0, color="0.5", lw=0.8)
ax.set_xticks(xs, ["g_Na", "g_K", "g_L"])
ax.set_ylabel("dC/dθ / |finite differences|")
ax.legend(fontsize=8)
save(fig, "04_gradients.png")

# %% [markdown]
# A few steps of gradient descent with the exact gradient (Adam; one rate per parameter,
# in siemens, and the conductances kept ≥ 0 by their declared sign) bring the model's
# trace to the recording:

# %%
EPOCHS = 5 if SMALL else 30
opt = eq.Adam(lr={"soma.g_Na": 0.4 * uS, "soma.g_K": 0.15 * uS, "soma.g_L": 1 * nS})
trainer = eq.Trainer(model, eq.Adjoint(), loss, opt, progress=False)
before = trainer.evaluate(x_fit, y_fit)["loss"]
hist = trainer.fit(x_fit, y_fit, epochs=EPOCHS)
after = trainer.evaluate(x_fit, y_fit)["loss"]
print(f"voltage-trace loss {before:.3e} J -> {after:.3e} J after {EPOCHS} steps "
      f"(factor {before / after:.1f})")
learned = model.get_params()
print("g_Na / target: {:.3f}, g_K / target: {:.3f}".format(
    float(learned["soma.g_Na"][0] / (0.9 * p["soma.g_Na"][0])),
    float(learned["soma.g_K"][0] / (1.15 * p["soma.g_K"][0]))))
fitted = simulate(model, prepare(model, x_fit)).v_out
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.4))
tt = np.arange(FIT_STEPS) * 0.01
a1.plot(tt, recorded[:, 0, 0] * 1e3, color="k", lw=2, alpha=0.4, label="recorded")
a1.plot(tt, fitted[:, 0, 0] * 1e3, color="C0", lw=0.8, label="fitted")
a1.set_xlabel("t (ms)")
a1.set_ylabel("v (mV)")
a1.legend(fontsize=8)
a2.plot(np.arange(1, EPOCHS + 1), hist.train_loss, "o-")
a2.set_yscale("log")
a2.set_xlabel("step")
a2.set_ylabel("loss (J)")
save(fig, "04_fit.png")
print(f"total {time.time() - T_START:.0f} s")
