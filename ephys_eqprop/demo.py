"""The built-in demonstration: check EP against the exact gradient, then train on Iris."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from brian2 import nS, uS, volt

__all__ = ["gradient_check", "plot_gradient_scatter", "plot_history", "run_demo", "run_hh_demo"]


def gradient_check(net, x, y, loss, *, beta: float = 1e-3) -> dict:
    """Symmetric and one-sided EP against the exact steady-state gradient.

    Returns
    -------
    dict
        ``exact``, ``symmetric``, ``one_sided``: flat arrays of all gradients (V²);
        ``rel_err_*``: max |estimate - exact| / max |exact|; ``cos_*``: cosine similarity.
    """
    from .estimators import EP, ExactSteadyState, SymmetricEP

    exact = ExactSteadyState().gradient(net, x, y, loss)
    flat = {"exact": np.concatenate([np.asarray(v).ravel() for v in exact.values()])}
    for key, est in (("symmetric", SymmetricEP(beta=beta)), ("one_sided", EP(beta=beta))):
        g = est.gradient(net, x, y, loss)
        flat[key] = np.concatenate([np.asarray(g[k]).ravel() for k in exact])
    out = dict(flat)
    e = flat["exact"]
    for key in ("symmetric", "one_sided"):
        d = flat[key]
        out[f"rel_err_{key}"] = float(np.max(np.abs(d - e)) / np.max(np.abs(e)))
        out[f"cos_{key}"] = float(d @ e / (np.linalg.norm(d) * np.linalg.norm(e)))
    return out


def plot_gradient_scatter(check: dict, path, *, beta: float) -> None:
    """Scatter of estimated against exact per-synapse gradients."""
    import matplotlib.pyplot as plt

    e = check["exact"]
    fig, ax = plt.subplots(figsize=(5, 5))
    lim = 1.05 * np.max(np.abs(e))
    ax.plot([-lim, lim], [-lim, lim], color="0.7", lw=1, label="estimate = exact")
    ax.scatter(e, check["one_sided"], s=12, marker="x", color="C1",
               label=f"EP one-sided (rel. err {check['rel_err_one_sided']:.1e})")
    ax.scatter(e, check["symmetric"], s=10, color="C0",
               label=f"EP symmetric (rel. err {check['rel_err_symmetric']:.1e})")
    ax.set_xlabel("exact dL/dg (V²), implicit differentiation")
    ax.set_ylabel(f"EP estimate dL/dg (V²), β = {beta:g}")
    ax.set_title("Per-synapse gradients: EP vs exact")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_history(history, path, *, title: str) -> None:
    """Loss and accuracy per epoch (train and validation)."""
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    ep = history.epoch
    a1.plot(ep, np.asarray(history.train_loss) * 1e9, "o-", label="train")
    if history.val_loss:
        a1.plot(ep, np.asarray(history.val_loss) * 1e9, "s-", label="test")
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss (nW)")
    a1.legend()
    a2.plot(ep, 100 * np.asarray(history.train_accuracy), "o-", label="train")
    if history.val_accuracy:
        a2.plot(ep, 100 * np.asarray(history.val_accuracy), "s-", label="test")
    a2.set_xlabel("epoch")
    a2.set_ylabel("accuracy (%)")
    a2.set_ylim(0, 102)
    a2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_demo(out="ephys_eqprop_demo", *, epochs: int = 12, target: str = "numpy",
             hidden: int = 8, seed: int = 0, quick: bool = False) -> dict:
    """Train a layered diode–resistor circuit on Iris with symmetric EP.

    Prints the gradient check against the exact reference and the accuracy,
    and writes ``gradient_check.png`` and ``training.png`` into ``out``.

    Returns
    -------
    dict
        The measured figures (gradient errors, test accuracy, seconds).
    """
    import matplotlib

    import ephys_eqprop as eq
    from ephys_eqprop import datasets

    matplotlib.use("Agg")  # the demo writes files; it never opens windows
    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = datasets.iris(seed=seed)
    if quick:
        epochs = min(epochs, 2)
    batch = 16
    circuit = eq.layered(data.n_features, [hidden], data.n_classes, bias=1 * volt,
                         g_init=20 * uS, rng=seed)
    net = circuit.build(batch=batch, target=target)
    loss = eq.losses.CrossEntropy(g_nudge=20 * uS, v_scale=0.1 * volt)
    n_syn = sum(np.asarray(v).size for v in net.get_params().values())
    print(f"circuit: {data.n_features} inputs (doubled) + bias -> {hidden} diode neurons -> "
          f"{data.n_classes} differential outputs; {n_syn} learnable conductances")

    beta_check = 1e-3
    check = gradient_check(net, data.X_train[:batch], data.y_train[:batch], loss, beta=beta_check)
    print(f"gradient check on {batch} samples, beta={beta_check:g}, against the exact "
          "steady-state gradient (implicit differentiation):")
    print(f"  symmetric EP: max relative error {check['rel_err_symmetric']:.2e}, "
          f"cosine {check['cos_symmetric']:.8f}")
    print(f"  one-sided EP: max relative error {check['rel_err_one_sided']:.2e}, "
          f"cosine {check['cos_one_sided']:.8f}")
    plot_gradient_scatter(check, out / "gradient_check.png", beta=beta_check)

    beta_train = 0.2
    trainer = eq.Trainer(
        net, eq.SymmetricEP(beta=beta_train, settle=eq.Settle(tol=1e-6 * volt)), loss,
        eq.Adam(lr=0.2 * uS), seed=seed)
    print(f"training {epochs} epochs with symmetric EP (beta={beta_train:g}), Adam, "
          f"batch {batch}, on Iris ({len(data.y_train)} train / {len(data.y_test)} test)")
    hist = trainer.fit(data.X_train, data.y_train, epochs=epochs,
                       validation=(data.X_test, data.y_test))
    plot_history(hist, out / "training.png",
                 title="Iris, layered diode-resistor circuit trained with symmetric EP")
    acc = hist.val_accuracy[-1]
    seconds = time.time() - t0
    print(f"test accuracy {100 * acc:.1f} % after {epochs} epochs; total {seconds:.0f} s")
    print(f"figures: {out / 'gradient_check.png'}, {out / 'training.png'}")
    return {"rel_err_symmetric": check["rel_err_symmetric"],
            "rel_err_one_sided": check["rel_err_one_sided"],
            "test_accuracy": acc, "seconds": seconds}


def run_hh_demo(out="ephys_eqprop_demo", *, epochs: int = 12, seed: int = 0,
                quick: bool = False) -> dict:
    """Train a small Hodgkin–Huxley network to follow a teacher's output trace.

    The network of :func:`ephys_eqprop.datasets.hh_task` (3 input neurons driven by
    current clamps, 3 hidden neurons with gap junctions, 1 output neuron; chemical
    synapses; every neuron spiking) learns its synapses, gap junctions and channel
    conductances with the adjoint gradient. Prints the gradient check against central
    finite differences and the loss reduction on held-out waveforms, and writes
    ``hh_gradient_check.png`` and ``hh_training.png`` into ``out``.

    Returns
    -------
    dict
        The measured figures.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from brian2 import ms

    import ephys_eqprop as eq
    from ephys_eqprop.dynamics import prepare, simulate

    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if quick:
        epochs = min(epochs, 2)
    task = eq.datasets.hh_task(n_in=3, n_hidden=3, n_train=8, n_val=2, n_test=4,
                               duration=(15 if quick else 25) * ms, seed=seed)
    net = task.student.build(batch=task.x_train.n_samples, dt=task.dt)
    n_par = sum(int(np.size(v)) for v in net.get_params().values())
    print(f"network: 3 input neurons (current clamps) -> 3 hidden (gap junctions) -> 1 output, "
          f"Hodgkin-Huxley (NEURON's hh set); {n_par} learnable parameters "
          f"(chemical synapses, gap junctions, g_Na, g_K, g_L)")
    loss = eq.losses.MSE(g_nudge=10 * nS, window=task.window)
    x, y = task.x_train[:2], task.y_train[:2]
    check_net = task.student.build(batch=2, dt=task.dt)
    exact = eq.Adjoint().gradient(check_net, x, y, loss)
    fd = eq.FiniteDifference(eps=1e-4).gradient(check_net, x, y, loss)
    e = np.concatenate([np.asarray(exact[k]).ravel() for k in fd])
    f = np.concatenate([np.asarray(fd[k]).ravel() for k in fd])
    # per kind of parameter (units differ): the largest relative error over the kinds
    rel = max(float(np.max(np.abs(np.asarray(exact[k]) - np.asarray(fd[k]))) /
                    max(float(np.max(np.abs(np.asarray(fd[k])))), 1e-300)) for k in fd)
    print(f"gradient check on 2 waveforms: Adjoint against central finite differences, "
          f"max relative error {rel:.2e} (worst kind of parameter)")
    fig, ax = plt.subplots(figsize=(5, 5))
    for k in fd:
        scale = max(float(np.max(np.abs(np.asarray(fd[k])))), 1e-300)
        ax.plot(np.asarray(fd[k]).ravel() / scale, np.asarray(exact[k]).ravel() / scale, "o",
                ms=4, label=k)
    ax.plot([-1, 1], [-1, 1], color="0.6", lw=1)
    ax.set_xlabel("finite differences (scaled per kind)")
    ax.set_ylabel("Adjoint (same scale)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "hh_gradient_check.png", dpi=120)
    plt.close(fig)
    opt = eq.Adam(lr={"*.g_Na": 0.5 * uS, "*.g_K": 0.15 * uS, "*.g_L": 1.5 * nS,
                      "*": 0.5 * nS}, decay=0.95)
    trainer = eq.Trainer(net, eq.Adjoint(), loss, opt, seed=seed, progress=True)
    before = trainer.evaluate(task.x_test, task.y_test)["loss"]
    hist = trainer.fit(task.x_train, task.y_train, epochs=epochs)
    after = trainer.evaluate(task.x_test, task.y_test)["loss"]
    print(f"held-out loss {before:.3e} J -> {after:.3e} J after {epochs} epochs "
          f"(factor {before / after:.1f})")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    a1.plot(np.arange(1, epochs + 1), hist.train_loss, "o-")
    a1.set_yscale("log")
    a1.set_xlabel("epoch")
    a1.set_ylabel("train loss (J)")
    xs, ys = task.x_test[:1], task.y_test[:1]
    start = task.student.build(batch=1, dt=task.dt)
    end = task.student.build(batch=1, dt=task.dt)
    end.set_params(net.get_params())
    t = np.arange(ys.n_steps) * float(task.dt) * 1e3
    a2.plot(t, np.asarray(ys.values)[0, :, 0] * 1e3, color="k", lw=2, alpha=0.35,
            label="teacher")
    a2.plot(t, simulate(start, prepare(start, xs)).v_out[:, 0, 0] * 1e3, lw=0.8,
            label="student before")
    a2.plot(t, simulate(end, prepare(end, xs)).v_out[:, 0, 0] * 1e3, lw=0.8,
            label="student after")
    a2.set_xlabel("t (ms)")
    a2.set_ylabel("output neuron v (mV)")
    a2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "hh_training.png", dpi=120)
    plt.close(fig)
    seconds = time.time() - t0
    print(f"total {seconds:.0f} s; figures: {out / 'hh_gradient_check.png'}, "
          f"{out / 'hh_training.png'}")
    return {"gradient_rel_err": rel, "loss_before": before, "loss_after": after,
            "seconds": seconds, "cosine": float(e @ f / (np.linalg.norm(e) * np.linalg.norm(f)))}
