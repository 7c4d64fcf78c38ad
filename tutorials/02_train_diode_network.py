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
# # Tutorial 2 — training a diode–resistor network on Iris
#
# A circuit made only of resistors is linear: whatever its conductances, the outputs are
# a weighted sum of the inputs. Kendall et al. (2020) made such circuits learn nonlinear
# tasks by giving each hidden node a pair of **diodes to bias sources**. In this
# tutorial we
#
# 1. build such a network with `eq.layered`,
# 2. check once that symmetric EP still gives the exact gradient with diodes in the
#    circuit,
# 3. train its conductances on Fisher's Iris data with `eq.Trainer`, saving a checkpoint
#    after every epoch and resuming from it in a "new session",
# 4. plot learning curves, the voltages the hidden nodes actually take, and a confusion
#    matrix.
#
# It needs scikit-learn (which ships the Iris data; nothing is downloaded).

# %%
import os
import sys
import time
from pathlib import Path

import matplotlib

# Small-size mode (used by the test suite): fewer epochs, no windows.
SMALL = os.environ.get("EPHYS_EQPROP_TUTORIAL_SMALL", "") not in ("", "0")
HEADLESS = (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
            and not os.environ.get("WAYLAND_DISPLAY") and "ipykernel" not in sys.modules)
if SMALL or HEADLESS:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from brian2 import uS, volt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

import ephys_eqprop as eq  # noqa: E402
from ephys_eqprop import datasets  # noqa: E402
from ephys_eqprop.phases import run_static_phase  # noqa: E402

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


EPOCHS = 6 if SMALL else 20  # in total; half before the "restart", half after
print(f"small mode: {SMALL}; training for {EPOCHS} epochs")

# %% [markdown]
# ## 1. The data as voltages
#
# `datasets.iris()` splits the 150 flowers into a training and a test set (stratified,
# 30 % test), standardises the four measurements with the training statistics and
# expresses them as voltages (±0.5 V per standard deviation). Labels are the integers
# 0, 1, 2.

# %%
SEED = 0
data = datasets.iris(seed=SEED)
CLASS_NAMES = ["setosa", "versicolor", "virginica"]  # scikit-learn's order of the labels
print(f"{len(data.y_train)} training and {len(data.y_test)} test samples, "
      f"{data.n_features} features, {data.n_classes} classes")
print("first training sample:", data.X_train[0], "label", data.y_train[0])

# %% [markdown]
# ## 2. The circuit
#
# `eq.layered(4, [8], 3, bias=1*volt, g_init=20*uS)` builds:
#
# * **doubled inputs** — each feature `x` drives two sources, `x` and `−x`. A
#   conductance cannot be negative, but a resistor from `−x` acts as a negative weight
#   on `x`.
# * a **bias pair** at `+1 V` and `−1 V`, connected to every layer: learnable offsets.
# * **8 hidden diode neurons** (`models.DiodeNeuron`): a capacitor node with a leak, one
#   diode that conducts when the node rises above `V_high = 0.2 V` and one that conducts
#   when it falls below `V_low = −0.2 V`. Together they softly clip the node voltage — a
#   sigmoid-like transfer, made of two exponential I–V curves.
# * **differential outputs** — 6 output nodes read as 3 differences `z_k = v_k − v_{3+k}`,
#   so that an output can be negative as well as positive.
#
# Initial conductances are random, uniform in `[0, 2 g_init / √fan_in]`.
#
# The loss is a softmax cross-entropy on `z / V_s`, scaled by `g_n V_s²` to make it a
# power (`losses.CrossEntropy`); nudging injects `−β ∂c/∂v` into the output nodes, as in
# tutorial 1. The diodes have a co-content too (the integral of their current), so the
# EP estimate for a resistor is still the change of `½ Δv²` across it.

# %%
BATCH = 16
circuit = eq.layered(data.n_features, [8], data.n_classes, bias=1 * volt, g_init=20 * uS,
                     rng=SEED)
net = circuit.build(batch=BATCH)  # 16 copies of the circuit side by side in one Brian2 run
loss = eq.losses.CrossEntropy(g_nudge=20 * uS, v_scale=0.1 * volt)
for name, g in net.get_params().items():
    print(f"  connection {name:8s} shape {str(g.shape):8s} mean g {np.mean(g / uS):5.2f} µS")
n_params = sum(np.size(g) for g in net.get_params().values())
print(f"{n_params} learnable conductances")

# %% [markdown]
# ## 3. Is the EP gradient still right with diodes?
#
# `ExactSteadyState` solves the nonlinear fixed point with Newton's method and
# differentiates it implicitly (the diodes enter through their small-signal
# conductances). Compare symmetric EP with a small β on one mini-batch.

# %%
xb, yb = data.X_train[:BATCH], data.y_train[:BATCH]
exact = eq.ExactSteadyState().gradient(net, xb, yb, loss)
ep = eq.SymmetricEP(beta=1e-3).gradient(net, xb, yb, loss)
e = np.concatenate([np.ravel(exact[k] / volt**2) for k in exact])
a = np.concatenate([np.ravel(ep[k] / volt**2) for k in exact])
rel_err = float(np.max(np.abs(a - e)) / np.max(np.abs(e)))
print(f"gradient check (symmetric EP, beta=0.001, diode network): "
      f"max relative error {rel_err:.2e}")

# %% [markdown]
# For training we use a much larger β = 0.2. The O(β²) bias then grows to a few tenths
# of a percent (0.2 % on this mini-batch with the initial conductances), which does not
# hurt learning, and the larger nudge signal lets each phase stop at a loose settle
# tolerance of 1 µV, which makes the phases short.
#
# ## 4. Training, with a checkpoint
#
# `Trainer` runs, for every mini-batch, the free phase and the two nudged phases of
# symmetric EP, turns the gradient into a step of the Adam optimizer (step size in
# siemens) and writes the new conductances back, keeping them ≥ 0. With
# `checkpoint=...` it writes, after every epoch (and on Ctrl-C), a `.npz` file with the
# conductances, the optimizer state, the position in the epoch, the shuffling RNG and
# the history.

# %%
checkpoint = OUT / "02_iris_checkpoint.npz"
checkpoint.unlink(missing_ok=True)  # start from scratch every time the tutorial runs


def make_trainer(network):
    return eq.Trainer(
        network,
        eq.SymmetricEP(beta=0.2, settle=eq.Settle(tol=1e-6 * volt)),
        loss,
        eq.Adam(lr=0.2 * uS),
        checkpoint=checkpoint,
        seed=SEED,
    )


trainer = make_trainer(net)
first_half = EPOCHS // 2
trainer.fit(data.X_train, data.y_train, epochs=first_half, batch_size=BATCH,
            validation=(data.X_test, data.y_test))
print(f"checkpoint written: {checkpoint.name} ({checkpoint.stat().st_size} bytes)")

# %% [markdown]
# ### Resuming
#
# Suppose the kernel died here. A new session builds the circuit again — its
# conductances are back at their initial values — and calls `fit` with `resume=True`:
# the trainer reloads the checkpoint and continues where training stopped. `epochs` is
# the total count, so the call below trains only the remaining epochs. Because the
# checkpoint also holds the optimizer state and the shuffling RNG, the resumed run
# produces the same numbers as one that was never interrupted.

# %%
net = circuit.build(batch=BATCH)  # a fresh network, initial conductances
trainer = make_trainer(net)
history = trainer.fit(data.X_train, data.y_train, epochs=EPOCHS, batch_size=BATCH,
                      validation=(data.X_test, data.y_test), resume=True)

# %%
ep_ = np.asarray(history.epoch)
fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
a1.plot(ep_, np.asarray(history.train_loss) / 1e-9, "o-", label="train (running mean)")
a1.plot(ep_, np.asarray(history.val_loss) / 1e-9, "s-", label="test")
a1.set_xlabel("epoch")
a1.set_ylabel("cross-entropy loss (nW)")
a2.plot(ep_, 100 * np.asarray(history.train_accuracy), "o-", label="train (running mean)")
a2.plot(ep_, 100 * np.asarray(history.val_accuracy), "s-", label="test")
a2.axhline(100 / data.n_classes, color="0.6", ls=":", label="chance")
a2.set_xlabel("epoch")
a2.set_ylabel("accuracy (%)")
a2.set_ylim(0, 102)
for ax in (a1, a2):
    ax.axvline(first_half + 0.5, color="0.4", ls="--", lw=1, label="resumed from checkpoint")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
fig.suptitle("Iris: diode–resistor circuit trained with symmetric EP (β = 0.2)")
fig.tight_layout()
save(fig, "02_learning_curves.png")

# %% [markdown]
# The training figures are running means over each epoch, measured while the
# conductances were still changing; the test figures are measured after the epoch.
#
# ## 5. Do the diodes do anything?
#
# Settle the trained circuit (free phase, no nudge) on every test flower and look at the
# voltages of the hidden nodes. A good share of them (printed below) lies beyond the
# diode thresholds `±0.2 V`, where a diode conducts and bends the transfer: the trained
# circuit does use its nonlinearity. (The diodes clip softly — an exponential I–V
# curve — so voltages somewhat beyond the thresholds remain possible.)

# %%
settle = eq.Settle(tol=1e-9 * volt)
hidden = []
for s in range(0, len(data.y_test), BATCH):
    n = min(BATCH, len(data.y_test) - s)
    net.set_inputs(data.X_test[s:s + n])
    free = run_static_phase(net, 0.0, settle, None)
    hidden.append(free.state["h1"].reshape(BATCH, -1)[:n])
hidden = np.concatenate(hidden)
outside = float(np.mean(np.abs(hidden) > 0.2))
print(f"hidden-node voltages: {100 * outside:.0f} % lie beyond the diode thresholds ±0.2 V")

fig, ax = plt.subplots(figsize=(6, 3.6))
counts, _, _ = ax.hist(hidden.ravel(), bins=40, color="C2")
ax.set_ylim(0, 1.25 * counts.max())  # room for the legend
ax.yaxis.set_major_locator(MaxNLocator(integer=True))
ax.axvline(-0.2, color="k", ls="--", lw=1, label="diode biases V_low, V_high")
ax.axvline(0.2, color="k", ls="--", lw=1)
ax.set_xlabel("hidden node voltage at the free fixed point (V)")
ax.set_ylabel("count (nodes × test samples)")
ax.set_title("Hidden layer on the test set, after training")
ax.legend(fontsize=8, loc="upper right")
fig.tight_layout()
save(fig, "02_hidden_voltages.png")

# %% [markdown]
# ## 6. Test accuracy and confusion matrix
#
# `Trainer.predict` settles the free phase for each sample and returns the output values
# `z` (volt); the predicted class is the largest one.

# %%
z = trainer.predict(data.X_test)
pred = np.argmax(z, axis=1)
K = data.n_classes
confusion = np.zeros((K, K), dtype=int)
np.add.at(confusion, (data.y_test, pred), 1)
accuracy = float(np.mean(pred == data.y_test))
print(f"test accuracy after {EPOCHS} epochs: {100 * accuracy:.1f} % "
      f"({int(np.sum(pred == data.y_test))}/{len(pred)})")

fig, ax = plt.subplots(figsize=(4.8, 4.2))
im = ax.imshow(confusion, cmap="Blues")
for i in range(K):
    for j in range(K):
        ax.text(j, i, str(confusion[i, j]), ha="center", va="center",
                color="white" if confusion[i, j] > confusion.max() / 2 else "black")
ax.set_xticks(range(K), CLASS_NAMES)
ax.set_yticks(range(K), CLASS_NAMES)
ax.set_xlabel("predicted class")
ax.set_ylabel("true class")
ax.set_title(f"Iris test set: {100 * accuracy:.1f} % correct")
fig.colorbar(im, ax=ax, label="number of test samples")
fig.tight_layout()
save(fig, "02_confusion_matrix.png")

# %% [markdown]
# ## What next
#
# * Try `datasets.digits()` (64 inputs, 10 classes) with a wider hidden layer.
# * Change the neuron: `eq.layered(..., neuron=eq.models.DiodeNeuron(V_low=..., V_high=...))`.
# * Build with `target="cython"` for larger circuits (compiled once, then faster).

# %%
print(f"tutorial 2 finished in {time.time() - T_START:.1f} s")
