"""The built-in demonstration: check EP against the exact gradient, then train on Iris."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from brian2 import uS, volt

__all__ = ["gradient_check", "run_demo", "plot_gradient_scatter", "plot_history"]


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
