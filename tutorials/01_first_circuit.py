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
# # Tutorial 1 — a first circuit, and the gradient it computes by itself
#
# `ephys_eqprop` describes a neural network as an electrical circuit and builds it as
# ordinary Brian2 objects:
#
# * **inputs** are ideal voltage sources,
# * **neurons** are circuit nodes: a capacitor and a leak conductance to ground,
# * **synapses** are resistors whose conductances `g` are the learnable weights.
#
# In this tutorial we
#
# 1. build a small circuit (3 inputs → 5 nodes → 2 outputs),
# 2. check that what we get are plain Brian2 objects, record a node voltage with a
#    `StateMonitor` and watch the circuit charge up,
# 3. compute the gradient of a loss with respect to every conductance with
#    equilibrium propagation (EP) — two or three settled runs of the circuit and a
#    quantity each resistor can measure across itself — and compare it with the exact
#    gradient from linear algebra,
# 4. measure how the error of one-sided and symmetric EP shrinks with the nudge
#    strength β.
#
# Run it as a script (`python tutorials/01_first_circuit.py`) or as a notebook
# (`jupytext --to notebook tutorials/01_first_circuit.py`).

# %%
import os
import sys
import time
from pathlib import Path

import matplotlib

# Small-size mode (used by the test suite): fewer points, no windows.
SMALL = os.environ.get("EPHYS_EQPROP_TUTORIAL_SMALL", "") not in ("", "0")
HEADLESS = (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
            and not os.environ.get("WAYLAND_DISPLAY") and "ipykernel" not in sys.modules)
if SMALL or HEADLESS:
    matplotlib.use("Agg")
import brian2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from brian2 import ms, nF, uS, volt  # noqa: E402

import ephys_eqprop as eq  # noqa: E402

INTERACTIVE = matplotlib.get_backend().lower() != "agg"
OUT = Path(os.environ.get("EPHYS_EQPROP_TUTORIAL_OUT", "tutorial_figures"))
OUT.mkdir(parents=True, exist_ok=True)
T_START = time.time()


def save(fig, name):
    """Save a figure as PNG into OUT; show it only on an interactive backend."""
    path = OUT / name
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"saved figure: {path}")
    if INTERACTIVE:
        plt.show()
    else:
        plt.close(fig)


print(f"brian2 {brian2.__version__}, ephys_eqprop {eq.__version__}, small mode: {SMALL}")

# %% [markdown]
# ## 1. Describe the circuit
#
# A `Circuit` is only a description. Every node here has a capacitor `C` and a leak
# conductance `g_leak` to ground. Connections are dense: every input drives every hidden
# node through its own resistor, and every hidden node every output node. The
# conductances are given as `(n_pre, n_post)` arrays in siemens.
#
# We pick `C = 10 nF`: with a total conductance of a few tens of µS at each node, the
# nodes charge with time constants `C / G` of a few hundred microseconds — comfortably
# resolved by the default time step of 10 µs.

# %%
rng = np.random.default_rng(1)
node = eq.models.CapacitorNode(C=10 * nF, g_leak=1 * uS)

circuit = eq.Circuit()
circuit.add_input("x", 3)
circuit.add_nodes("h", 5, node)
circuit.add_nodes("y", 2, node)
circuit.connect("x", "h", eq.models.Resistor(), g=rng.uniform(1, 10, (3, 5)) * uS)
circuit.connect("h", "y", eq.models.Resistor(), g=rng.uniform(1, 10, (5, 2)) * uS)
circuit.set_output("y")

net = circuit.build()  # batch=1, target="numpy", dt=0.01*ms by default
print(net)

# %% [markdown]
# ## 2. These are plain Brian2 objects
#
# `net.groups` holds one `NeuronGroup` per node group and per input, `net.synapses` one
# `Synapses` object per connection, and `net.network` is the `brian2.Network` holding
# them all. Nothing is hidden: you can read the equations, change variables and add your
# own monitors.

# %%
h_group = net.groups["h"]
syn = net.synapses["x->h"]
print(type(h_group), type(syn), type(net.network))
assert isinstance(h_group, brian2.NeuronGroup) and isinstance(syn, brian2.Synapses)
print("node equations of group 'h':")
print(h_group.equations)
print("synapse equations of 'x->h':")
print(syn.equations)
print("conductances of 'x->h' (as stored in Brian2):", syn.g[:5], "...")

# %% [markdown]
# A node obeys `C_eff dv/dt = I_tot`. The variable `relax` switches between two
# modes. With `relax = 0`, `C_eff = C`: the physical circuit. With `relax = 1` each
# node's capacitance is made proportional to its total conductance, so that the circuit
# slides to the *same* fixed point in far fewer time steps; the gradient estimators use
# this mode, because only the fixed point matters to them.
#
# Here we want the physics, so we switch relaxation off, apply the input voltages (a step
# at `t = 0`: all nodes start at 0 V) and record the node voltages with our own
# `StateMonitor`.
#
# How long must we wait? With the inputs held fixed, the node voltages obey
# `C dv/dt = −G_node v + (input currents)`, where `G_node` is the nodal conductance
# matrix (each node's total conductance on the diagonal, minus the conductance between
# two nodes off the diagonal). Its smallest eigenvalue `λ_min` sets the slowest time
# constant `C / λ_min` — longer than any single node's `C / G`, because the outputs reach
# the sources only through the hidden nodes.

# %%
params = net.get_params()
G1, G2 = params["x->h"] / uS, params["h->y"] / uS  # plain arrays in µS
g_leak = node.g_leak / uS
G_node = np.block([  # nodal conductance matrix in µS, nodes ordered h[0..4], y[0..1]
    [np.diag(g_leak + G1.sum(axis=0) + G2.sum(axis=1)), -G2],
    [-G2.T, np.diag(g_leak + G2.sum(axis=0))],
])
tau_slow = node.C / (np.linalg.eigvalsh(G_node)[0] * uS)
duration = np.ceil(8 * tau_slow / ms) * ms
print(f"slowest time constant {tau_slow / ms:.2f} ms; we run for {duration / ms:g} ms")

x = np.array([[0.6, -0.4, 0.9]]) * volt  # one sample, three input voltages
y = np.array([[0.1, -0.1]]) * volt  # its target output voltages

net.set_relax(False)
net.set_inputs(x)
net.set_state(None)  # all node voltages 0 V
mon_h = brian2.StateMonitor(net.groups["h"], "v", record=True)
mon_y = brian2.StateMonitor(net.groups["y"], "v", record=True)
net.network.add(mon_h, mon_y)
net.run(duration)
# The monitors have done their job; remove them so that the estimators below do not
# record thousands of relaxation steps.
net.network.remove(mon_h, mon_y)

# The exact fixed point, from Kirchhoff's current law solved with linear algebra.
v_fixed = eq.SteadyState(net).solve(x)[0] * volt
offsets = circuit.node_offsets()
v_fixed_h = v_fixed[offsets["h"]:offsets["h"] + 5]
v_fixed_y = v_fixed[offsets["y"]:offsets["y"] + 2]
dev = max(np.max(np.abs(mon_h.v[:, -1] - v_fixed_h)), np.max(np.abs(mon_y.v[:, -1] - v_fixed_y)))
print(f"after {duration / ms:g} ms the physical circuit is within {dev / volt:.1e} V "
      "of the exact fixed point")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
for ax, mon, vf, label in ((axes[0], mon_h, v_fixed_h, "h"), (axes[1], mon_y, v_fixed_y, "y")):
    for k in range(len(vf)):
        line, = ax.plot(mon.t / ms, mon.v[k] / volt, label=f"{label}[{k}]")
        ax.axhline(vf[k] / volt, color=line.get_color(), ls=":", lw=1)
    ax.set_xlabel("time (ms)")
    ax.set_title(f"{'hidden' if label == 'h' else 'output'} nodes ({label})")
    ax.legend(fontsize=8, ncol=2, loc="lower right")
axes[0].set_ylabel("node voltage v (V)")
fig.suptitle("RC charging after a step of the input voltages "
             "(dotted: exact fixed point)")
fig.tight_layout()
save(fig, "01_rc_transient.png")

# %% [markdown]
# ## 3. The physics behind equilibrium propagation
#
# **Co-content.** A resistor carrying current `i = g Δv` between two nodes contributes
# the *co-content* `½ g Δv²` (half the power it dissipates). The sum `E(v)` of these
# terms over all resistors (leaks included) is stationary at the circuit's fixed point:
# `∂E/∂v = 0` at every node is Kirchhoff's current law. Its dependence on a single
# conductance is simple and local: `∂E/∂g = ½ Δv²`, the squared voltage drop across that
# very resistor.
#
# **Loss as a power.** We measure the error of the outputs with a cost in watts,
# `c = ½ g_n Σ_k (v_k − y_k)²` (`losses.MSE(g_nudge=g_n)`): the power a conductance
# `g_n` would dissipate between each output and a source at its target voltage.
#
# **Nudging.** Injecting the current `i_k = −β ∂c/∂v_k = β g_n (y_k − v_k)` into each
# output node pulls the outputs slightly toward their targets; the circuit then settles
# at a stationary point of `E + β c`. Differentiating that fixed point with respect to β
# gives the EP identity
#
# `dL/dg = d/dβ [ ∂E/∂g (v_β) ] at β = 0`,
#
# so the gradient of the loss with respect to *each* conductance is the change of
# `½ Δv²` across that resistor between a free run and a nudged run, divided by β:
#
# * one-sided EP: `(½Δv²(β) − ½Δv²(0)) / β`, error O(β),
# * symmetric EP: `(½Δv²(β) − ½Δv²(−β)) / 2β`, error O(β²).
#
# No resistor needs to know anything beyond its own two terminals. Units: watt per
# siemens = V².
#
# `ExactSteadyState` computes the same gradient without any simulation, by
# implicit differentiation of the fixed point (one linear solve): our reference.

# %%
loss = eq.losses.MSE(g_nudge=1 * uS)
beta = 1e-3

exact = eq.ExactSteadyState().gradient(net, x, y, loss)
symmetric = eq.SymmetricEP(beta=beta).gradient(net, x, y, loss)
one_sided = eq.EP(beta=beta).gradient(net, x, y, loss)


def flat(grads):
    """All gradients of a dict as one array, in V² (same order for every dict)."""
    return np.concatenate([np.asarray(grads[k] / volt**2).ravel() for k in exact])


def rel_error(est):
    """Largest deviation from the exact gradient, relative to its largest entry."""
    e = flat(exact)
    return float(np.max(np.abs(flat(est) - e)) / np.max(np.abs(e)))


print("exact dL/dg for 'h->y':")
print(exact["h->y"])
print(f"symmetric EP (beta={beta:g}): max relative error {rel_error(symmetric):.2e}")
print(f"one-sided EP (beta={beta:g}): max relative error {rel_error(one_sided):.2e}")

# %% [markdown]
# ### The estimate by hand, from node voltages only
#
# To see that nothing but local voltage drops is involved, recompute the symmetric
# estimate for the connection `h → y` from the node voltages at the end of the two nudged
# phases. The estimator keeps the settled states of its last call in `.info.phases`.

# %%
est = eq.SymmetricEP(beta=beta)
est.gradient(net, x, y, loss)
pos, neg = est.info.phases["nudged"].state, est.info.phases["nudged_neg"].state


def half_dv2(state):
    """½ (v_h[i] - v_y[j])² for every resistor of 'h->y', shape (5, 2), V²."""
    return 0.5 * (state["h"][:, None] - state["y"][None, :]) ** 2


by_hand = (half_dv2(pos) - half_dv2(neg)) / (2 * beta)
diff = np.max(np.abs(by_hand - np.asarray(exact["h->y"] / volt**2)))
print(f"by hand vs exact for 'h->y': max |difference| {diff:.1e} V² "
      f"(largest entry {np.max(np.abs(exact['h->y'] / volt**2)):.1e} V²)")

# %% [markdown]
# ## 4. How the error depends on β
#
# A larger nudge gives a larger, easier-to-measure signal in a real circuit, but a more
# biased estimate. On a log-log plot the error of one-sided EP falls with slope ≈ 1, that
# of symmetric EP with slope ≈ 2. (At very small β the symmetric estimate would
# eventually meet the floor set by how precisely each phase is settled.)

# %%
betas = np.logspace(-2.5, -0.5, 4) if SMALL else np.logspace(-3, 0, 10)
errors = {"one-sided EP": [], "symmetric EP": []}
for b in betas:
    errors["one-sided EP"].append(rel_error(eq.EP(beta=b).gradient(net, x, y, loss)))
    errors["symmetric EP"].append(rel_error(eq.SymmetricEP(beta=b).gradient(net, x, y, loss)))

fig, ax = plt.subplots(figsize=(5.5, 4.2))
for (name, err), marker in zip(errors.items(), ("o", "s"), strict=True):
    slope, icpt = np.polyfit(np.log10(betas), np.log10(err), 1)
    print(f"{name}: fitted log-log slope {slope:.2f}")
    ax.loglog(betas, err, marker, label=f"{name} (slope {slope:.2f})")
    ax.loglog(betas, 10 ** (icpt + slope * np.log10(betas)), color="0.6", lw=0.8,
              label="least-squares fit" if marker == "s" else None)
ax.set_xlabel("nudge strength β (dimensionless)")
ax.set_ylabel("max |EP − exact| / max |exact|  (dimensionless)")
ax.set_title("Bias of the EP estimates")
ax.legend()
ax.grid(True, which="both", alpha=0.3)
fig.tight_layout()
save(fig, "01_error_vs_beta.png")

# %% [markdown]
# ## 5. Estimate against exact, synapse by synapse
#
# At β = 10⁻³ both estimates lie on the diagonal of a scatter plot; the difference
# between them only shows on a logarithmic scale (right panel), where symmetric EP is
# several orders of magnitude closer to the exact value for every synapse.

# %%
e = flat(exact)
lim = 1.1 * np.max(np.abs(e))
fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.6))
ax.plot([-lim, lim], [-lim, lim], color="0.7", lw=1, label="estimate = exact")
ax.scatter(e, flat(one_sided), s=40, marker="x", color="C1",
           label=f"one-sided EP (rel. err {rel_error(one_sided):.1e})")
ax.scatter(e, flat(symmetric), s=14, color="C0",
           label=f"symmetric EP (rel. err {rel_error(symmetric):.1e})")
ax.set_xlim(-lim, lim)
ax.set_ylim(-lim, lim)
ax.set_xlabel("exact dL/dg (V²)")
ax.set_ylabel(f"EP estimate of dL/dg (V²), β = {beta:g}")
ax.set_title(f"{e.size} synapses: EP vs exact gradient")
ax.legend(loc="upper left", fontsize=8)
ax2.semilogy(np.abs(e), np.abs(flat(one_sided) - e), "x", color="C1", label="one-sided EP")
ax2.semilogy(np.abs(e), np.abs(flat(symmetric) - e), "o", ms=4, color="C0",
             label="symmetric EP")
ax2.set_xlabel("|exact dL/dg| (V²)")
ax2.set_ylabel(f"|estimate − exact| (V²), β = {beta:g}")
ax2.set_title("Error per synapse")
ax2.legend(fontsize=8)
ax2.grid(True, which="major", alpha=0.3)
fig.tight_layout()
save(fig, "01_ep_vs_exact.png")

# %% [markdown]
# ## What next
#
# * The circuit is a `brian2.Network`: add your own equations, monitors or
#   `network_operation`s.
# * Tutorial 2 adds diodes to the hidden nodes — a nonlinearity — and trains the
#   conductances on a real data set with these gradients.

# %%
print(f"tutorial 1 finished in {time.time() - T_START:.1f} s")
