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
# # Tutorial 5 — Hodgkin–Huxley networks that learn
#
# A network of Hodgkin–Huxley neurons learns to make its output neuron follow a
# recorded voltage trace. Its synapses — conductance-based chemical synapses and gap
# junctions — and the channel conductances of its neurons are the parameters. Two
# gradients train it side by side:
#
# * **`Adjoint()`**: the exact gradient of the simulated loss, through the adjoint of
#   the network's equations run backwards in time. Local in space: each synapse
#   integrates a product of quantities at its own terminals.
# * **`LagrangianEP(beta)`**: Kendall's estimator, local in space *and* time — each gap
#   junction and channel compares what it sees (`½ Δv²`, `½ m³h (v − E_Na)²`, ...) in a
#   run nudged towards the target and one nudged away. It has no energy term for a
#   chemical synapse (a directed element), so it leaves those alone, and a spiking
#   network is far from the quasi-static limit where it is exact.
#
# The task: a *teacher* network made the targets; the *student* has the teacher's
# wiring and parameters that are off by about 25 % (`eq.datasets.hh_task`). The input
# neurons are driven by current clamps (multi-sine currents around 2 nA).

# %%
import os
import sys
import time
from pathlib import Path

import matplotlib

SMALL = os.environ.get("EPHYS_EQPROP_TUTORIAL_SMALL", "") not in ("", "0")
HEADLESS = (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
            and not os.environ.get("WAYLAND_DISPLAY") and "ipykernel" not in sys.modules)
if SMALL or HEADLESS:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from brian2 import ms, nS, uS  # noqa: E402

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
# ## The network and the data
#
# `hh_task` returns the two circuits and train / validation / test waveforms. The
# circuit is plain: node groups `in`, `hid`, `out` of `HHNeuron`s, a current input `I`,
# connections `in->hid` (chemical, excitatory), `gap` (resistors between hidden
# neurons), `hid->out` and `hid-|out` (chemical, excitatory and inhibitory).

# %%
if SMALL:
    task = eq.datasets.hh_task(n_in=3, n_hidden=3, n_train=3, n_val=1, n_test=2,
                               duration=12 * ms)
    EPOCHS = 2
else:
    task = eq.datasets.hh_task(n_in=3, n_hidden=5, n_train=16, n_val=8, n_test=8,
                               duration=40 * ms)
    EPOCHS = 20
student = task.student
print("connections:", list(student.connections))
print("learnable parameters:", {k: int(np.prod(s.shape)) for k, s in
                                student.parameters().items()})
loss = eq.losses.MSE(g_nudge=10 * nS, window=task.window)

# %% [markdown]
# ## What a synapse sees
#
# Before training, look at one gradient through the eyes of the synapses. A
# `SynapticMonitor` records, per synapse and over time, the quantity each estimator
# uses: in Lagrangian EP's free and nudged runs the local quantity `½ Δv²` of a gap
# junction (V²), in the adjoint's reverse run the integrand of its gradient — whose time
# sum is the gradient. They are plain Brian2 `StateMonitor`s underneath.

# %%
net = student.build(batch=task.x_train.n_samples, dt=task.dt)
gap = eq.SynapticMonitor(net, "gap")
chem = eq.SynapticMonitor(net, "in->hid")
exact = eq.Adjoint().gradient(net, task.x_train, task.y_train, loss)
names = net.local_parameters()
lep = eq.LagrangianEP(beta=1e-3, params=names).gradient(net, task.x_train, task.y_train, loss)
print("runs recorded for the gap junctions:", gap.runs)
rec = gap["adjoint"]
total = np.asarray(rec.values).sum(axis=(0, 1)) * float(task.dt)
g_gap = np.asarray(exact["gap"])
print(f"the adjoint integrand summed over time and samples equals the gradient: max relative "
      f"difference {np.max(np.abs(total - g_gap)) / np.max(np.abs(g_gap)):.1e}")


def cosine(a, b, keys):
    va = np.concatenate([np.asarray(a[k]).ravel() for k in keys])
    vb = np.concatenate([np.asarray(b[k]).ravel() for k in keys])
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))


cos0 = cosine(lep, exact, names)
print(f"cosine of LagrangianEP to the exact gradient at the start: {cos0:.3f}")

fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
gap.plot(axes[0], runs=["free"])
axes[0].set_title("gap junction 0: ½ Δv² in the free run", fontsize=9)
# what each estimator sums over time for gap junction 0, sample 0: Lagrangian EP the
# difference of ½ Δv² between its nudged runs over 2β, the adjoint its integrand
t_ms = np.asarray(gap["adjoint"].t) * 1e3
lep_integrand = (np.asarray(gap["nudged (β=+0.001)"].values)
                 - np.asarray(gap["nudged (β=-0.001)"].values))[:, 0, 0] / 2e-3
axes[1].plot(t_ms, np.asarray(gap["adjoint"].values)[:, 0, 0], label="Adjoint: its integrand")
axes[1].set_xlabel("t (ms)")
axes[1].set_ylabel("Adjoint, per time step (V²)")
twin = axes[1].twinx()  # on its own scale: Lagrangian EP's is far smaller here
twin.plot(t_ms, lep_integrand, color="C1", label="LagrangianEP: Δ(½ Δv²)/2β")
twin.set_ylabel("LagrangianEP, per time step (V²)", color="C1")
twin.legend(fontsize=6, loc="lower right")
print(f"gap junction 0: |Lagrangian EP's sum| / |the adjoint's| = "
      f"{abs(lep_integrand.sum()) / abs(np.asarray(gap['adjoint'].values)[:, 0, 0].sum()):.3f}")
axes[1].set_title("gap junction 0: what each estimator sums", fontsize=9)
chem.plot(axes[2], runs=["adjoint"])
axes[2].set_title("chemical synapse in 0 → hid 0: the adjoint integrand", fontsize=9)
for ax in axes:
    ax.legend(fontsize=6)
save(fig, "05_synaptic_monitors.png")
gap.detach()
chem.detach()

# %% [markdown]
# ## Training, side by side
#
# The same initial student, data, shuffling seed and optimizer (Adam with a step size
# per kind of parameter, decaying by 5 % per step; full-batch gradients) for both.

# %%
rates = {"*.g_Na": 0.5 * uS, "*.g_K": 0.15 * uS, "*.g_L": 1.5 * nS, "*": 0.5 * nS}
curves = {}
trained = {}
for label, est in (("Adjoint (all parameters)", eq.Adjoint()),
                   ("LagrangianEP (gap junctions, channels)",
                    eq.LagrangianEP(beta=1e-3, params=names))):
    net = student.build(batch=task.x_train.n_samples, dt=task.dt)
    trainer = eq.Trainer(net, est, loss, eq.Adam(lr=rates, decay=0.95), seed=0, progress=False)
    curve = [trainer.evaluate(task.x_test, task.y_test)["loss"]]
    for epoch in range(1, EPOCHS + 1):
        trainer.fit(task.x_train, task.y_train, epochs=epoch)
        curve.append(trainer.evaluate(task.x_test, task.y_test)["loss"])
    curves[label], trained[label] = curve, net
    print(f"{label}: test loss {curve[0]:.3e} J -> {curve[-1]:.3e} J after {EPOCHS} epochs "
          f"(factor {curve[0] / curve[-1]:.2f})")

fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.6))
for label, curve in curves.items():
    a1.plot(np.arange(len(curve)), curve, "o-", label=label)
a1.set_yscale("log")
a1.set_xlabel("epoch")
a1.set_ylabel("test loss (J)")
a1.legend(fontsize=8)
x0, y0 = task.x_test[:1], task.y_test[:1]
t = np.arange(y0.n_steps) * float(task.dt) * 1e3
a2.plot(t, np.asarray(y0.values)[0, :, 0] * 1e3, color="k", lw=2, alpha=0.35, label="teacher")
before = student.build(batch=1, dt=task.dt)
a2.plot(t, simulate(before, prepare(before, x0)).v_out[:, 0, 0] * 1e3, color="0.5", lw=0.8,
        label="student before")
for label, net in trained.items():
    one = student.build(batch=1, dt=task.dt)
    one.set_params(net.get_params())
    a2.plot(t, simulate(one, prepare(one, x0)).v_out[:, 0, 0] * 1e3, lw=0.8,
            label=label.split(" (")[0] + " after")
a2.set_xlabel("t (ms)")
a2.set_ylabel("output neuron v (mV)")
a2.legend(fontsize=7)
save(fig, "05_training.png")
print(f"total {time.time() - T_START:.0f} s")
