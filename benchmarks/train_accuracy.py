"""Test accuracy of diode–resistor circuits trained with equilibrium propagation, next to backprop.

For each data set (XOR, Iris, scikit-learn's 8×8 digits) this script

1. builds the layered circuit of ``eq.layered`` (doubled inputs ``±x``, a ``±bias``
   source pair, hidden layers of diode neurons, differential output pairs), trains its
   conductances with symmetric equilibrium propagation (``eq.SymmetricEP``, every phase
   simulated in Brian2) through ``eq.Trainer``;
2. trains a software network of the same layer sizes (``n_in -> hidden -> n_classes``,
   tanh hidden units, softmax cross-entropy, Adam; ``_baseline.py``, numpy only) by
   backpropagation, on the same inputs, split, batch size and number of epochs;
3. prints a table (data set, circuit size, EP and backprop test accuracy, epochs, wall
   time) and, with ``--out DIR``, writes ``train_accuracy.json`` and a learning-curve
   figure ``train_accuracy.png``.

Honesty rules
-------------
* Train/test splits are those of :mod:`ephys_eqprop.datasets` (stratified, seed 0, 30 %
  test). XOR has only its four patterns: train and test are the same four.
* The reported figure is the accuracy **after the last epoch**, not the best epoch. The
  test accuracy is recorded after every epoch only to draw the learning curves.
* Hyperparameters (``CONFIGS`` below) were chosen without the test set. Digits: on a
  validation split, 20 % of the *training* set (stratified, seed 1) held out, training
  on the remaining 80 % (``--validation``). Iris: by 5-fold cross-validation inside the
  training set (``--cv 5``; its 21-sample hold-out is too small to rank settings).
  Both options report held-out accuracy in place of the test accuracy. XOR has no
  held-out data (its test set *is* its four training patterns), so its settings were
  chosen on those patterns, checked over seeds 0-4. A first, wider exploration used a
  numpy Newton solver of the same nudged fixed points (``eq.SteadyState.solve`` with
  ``beta``), which agrees with the Brian2 EP gradients to ~1e-11 relative, on the
  same validation splits. The backprop baseline's Adam step size was chosen the same
  way; its epochs and batch size equal the circuit's.
* What mattered: diodes with a sharp knee (``I_s = 1 µA``, ``V_T = 25 mV``; the
  ``DiodeNeuron`` defaults, 1 nA and 50 mV, leave the hidden nodes almost linear at
  these conductances, and XOR is then not learned), a ``±1 V`` bias pair, and Adam
  steps of ~1 µS. Accuracy was flat in hidden size (32, 64, 128 on digits; 0, 10, 20
  on Iris) and in epochs once trained.
* Symmetric EP with a large nudge (β = 0.2, or 0.5) is used. On these circuits EP
  matches the exact gradient as β → 0 (tests/test_estimators.py); a finite β estimates
  the gradient of a slightly smoothed loss (a regularised variant), reported in the
  table's JSON as ``beta``.

Usage::

    python benchmarks/train_accuracy.py --dataset all --out results/
    python benchmarks/train_accuracy.py --dataset digits --epochs 20
    python benchmarks/train_accuracy.py --dataset iris --validation   # tuning protocol
    python benchmarks/train_accuracy.py --quick                       # smoke test, ~1 min

Wall times are measured on this machine, in this process, for training only (the
circuit's Brian2 code generation and compilation, ~20 s on first use and cached
afterwards, is reported separately as ``build_seconds``). The per-epoch evaluation of
the test set (free phases only) is included in the EP wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from brian2 import BrianLogger, Quantity, mV, nA, uS, volt

import ephys_eqprop as eq
import ephys_eqprop.datasets as eqdata

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _baseline import train_mlp  # noqa: E402

__all__ = ["Config", "CONFIGS", "run_dataset", "main"]


@dataclass(frozen=True, kw_only=True)
class Config:
    """Hyperparameters of one data set's circuit and of its training.

    Attributes
    ----------
    hidden : tuple of int
        Hidden layer sizes.
    epochs : int
        Training epochs (both EP and backprop).
    batch : int
        Mini-batch size (both), and the number of circuit copies per Brian2 run.
    g_init : Quantity, siemens
        Scale of the initial conductances (``eq.layered``).
    bias : Quantity, volt
        Voltage of the ``±bias`` source pair.
    I_s, V_T, V_high : Quantity
        Diode saturation current, ``n kT/q`` and knee voltage of the hidden
        ``DiodeNeuron``s (``V_low = -V_high``).
    g_nudge, v_scale : Quantity
        ``CrossEntropy`` cost scale and logit voltage.
    beta : float
        Nudge strength of ``SymmetricEP``.
    lr : Quantity, siemens
        Adam step on the conductances.
    lr_decay : float
        Learning rate multiplied by ``lr_decay`` after every epoch.
    tol : Quantity, volt
        ``Settle(tol=...)`` of every phase.
    bp_lr : float
        Adam step of the backprop baseline.
    """

    hidden: tuple = ()
    epochs: int = 10
    batch: int = 16
    g_init: Quantity = field(default_factory=lambda: 20 * uS)
    bias: Quantity = field(default_factory=lambda: 1 * volt)
    I_s: Quantity = field(default_factory=lambda: 1000 * nA)
    V_T: Quantity = field(default_factory=lambda: 25 * mV)
    V_high: Quantity = field(default_factory=lambda: 0.2 * volt)
    g_nudge: Quantity = field(default_factory=lambda: 20 * uS)
    v_scale: Quantity = field(default_factory=lambda: 0.1 * volt)
    beta: float = 0.2
    lr: Quantity = field(default_factory=lambda: 1 * uS)
    lr_decay: float = 1.0
    tol: Quantity = field(default_factory=lambda: 1e-6 * volt)
    bp_lr: float = 1e-2

    def describe(self) -> dict:
        """JSON-friendly values (SI floats)."""
        return {k: (float(v) if isinstance(v, Quantity) else v) for k, v in asdict(self).items()}


#: Chosen on a validation split of the training set (see the module docstring).
CONFIGS = {
    "xor": Config(hidden=(4,), epochs=150, batch=4, lr=1 * uS, bp_lr=3e-2),
    "iris": Config(hidden=(10,), epochs=40, batch=16, lr=1 * uS, bp_lr=1e-2),
    "digits": Config(hidden=(64,), epochs=30, batch=64, lr=1 * uS, bp_lr=1e-2),
}


def load(name: str, *, validation: bool = False, fold: tuple | None = None, quick: bool = False):
    """Train and evaluation sets.

    The evaluation set is the test set, unless ``validation`` (a stratified 20 %
    hold-out of the training set) or ``fold=(k, n_folds)`` (fold ``k`` of a stratified
    ``n_folds``-fold partition of the training set). XOR always uses its four patterns.
    """
    d = {"xor": eqdata.xor, "iris": eqdata.iris, "digits": eqdata.digits}[name]()
    X, y, Xe, ye = d.X_train, d.y_train, d.X_test, d.y_test
    if name != "xor" and fold is not None:
        X, y, Xe, ye = _fold(X, y, fold[0], fold[1], seed=1)
    elif name != "xor" and validation:
        X, y, Xe, ye = eqdata.stratified_split(X, y, 0.2, 1)
    if quick:
        X, y, Xe, ye = X[:64], y[:64], Xe[:64], ye[:64]
    return X, y, Xe, ye, d.n_classes


def _fold(X, y, k: int, n_folds: int, *, seed: int):
    """Fold ``k`` of a stratified ``n_folds``-fold partition as the evaluation set."""
    rng = np.random.default_rng(seed)
    which = np.zeros(len(y), dtype=int)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        which[idx] = np.arange(len(idx)) % n_folds
    tr, va = np.flatnonzero(which != k), np.flatnonzero(which == k)
    return X[tr], y[tr], X[va], y[va]


def build_circuit(cfg: Config, n_in: int, n_classes: int, seed: int):
    neuron = eq.models.DiodeNeuron(I_s=cfg.I_s, V_T=cfg.V_T, V_low=-cfg.V_high,
                                   V_high=cfg.V_high)
    return eq.layered(n_in, list(cfg.hidden), n_classes, neuron=neuron, g_init=cfg.g_init,
                      bias=cfg.bias, rng=seed)


def run_dataset(name: str, cfg: Config, *, validation: bool = False, fold: tuple | None = None,
                quick: bool = False, seed: int = 0, target: str = "cython",
                progress: bool = True, settle: str = "relax") -> dict:
    """Train the circuit with EP and the software network with backprop; return results."""
    X, y, Xe, ye, K = load(name, validation=validation, fold=fold, quick=quick)
    n_in = X.shape[1]
    sizes = [n_in, *cfg.hidden, K]

    # ---- circuit, equilibrium propagation in Brian2
    circuit = build_circuit(cfg, n_in, K, seed)
    n_cond = int(sum(c.i.size for c in circuit.connections.values()))
    t0 = time.perf_counter()
    net = circuit.build(batch=cfg.batch, target=target)
    loss = eq.losses.CrossEntropy(g_nudge=cfg.g_nudge, v_scale=cfg.v_scale)
    est = eq.SymmetricEP(beta=cfg.beta, settle=eq.Settle(tol=cfg.tol, method=settle))
    opt = eq.Adam(lr=cfg.lr)
    trainer = eq.Trainer(net, est, loss, opt, seed=seed, progress=progress)
    trainer.evaluate(Xe[: cfg.batch], ye[: cfg.batch])  # code generation and compilation
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if cfg.lr_decay == 1:
        trainer.fit(X, y, epochs=cfg.epochs, validation=(Xe, ye))
    else:  # step the learning rate once per epoch
        for ep in range(1, cfg.epochs + 1):
            opt.lr = cfg.lr * cfg.lr_decay ** (ep - 1)
            trainer.fit(X, y, epochs=ep, validation=(Xe, ye))
    ep_s = time.perf_counter() - t0
    h = trainer.history

    # ---- software network, backprop
    t0 = time.perf_counter()
    _, bh = train_mlp(np.asarray(X), y, sizes, epochs=cfg.epochs, batch_size=cfg.batch,
                      lr=cfg.bp_lr, seed=seed, validation=(np.asarray(Xe), ye))
    bp_s = time.perf_counter() - t0

    return {
        "dataset": name,
        "evaluated_on": ("test" if name == "xor" else f"fold {fold[0]}" if fold is not None
                         else "validation" if validation else "test"),
        "quick": quick,
        "n_train": len(X),
        "n_eval": len(Xe),
        "layers": sizes,
        "circuit": {"nodes": int(sum(s.n for s in circuit.nodes.values())),
                    "sources": int(sum(s.size for s in circuit.inputs.values())),
                    "conductances": n_cond},
        "config": cfg.describe(),
        "estimator": repr(est),
        "ep": {"accuracy": h.val_accuracy[-1], "train_accuracy": h.train_accuracy,
               "eval_accuracy": h.val_accuracy, "train_loss": h.train_loss,
               "seconds": ep_s, "build_seconds": build_s},
        "backprop": {"accuracy": bh.val_accuracy[-1], "train_accuracy": bh.train_accuracy,
                     "eval_accuracy": bh.val_accuracy, "n_params": int(
                         sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))),
                     "seconds": bp_s},
        "epochs": cfg.epochs,
    }


def cross_validate(name: str, cfg: Config, n_folds: int, **kw) -> dict:
    """Mean over the folds of a stratified ``n_folds``-fold partition of the training set."""
    if name == "xor":
        return run_dataset(name, cfg, **kw)
    folds = [run_dataset(name, cfg, fold=(k, n_folds), **kw) for k in range(n_folds)]
    out = dict(folds[0], evaluated_on=f"{n_folds}-fold", n_train=None,
               n_eval=sum(f["n_eval"] for f in folds), folds=folds)
    for side in ("ep", "backprop"):
        # accuracy over all held-out samples (folds differ in size by at most one per class)
        w = np.array([f["n_eval"] for f in folds], float)
        curves = np.array([f[side]["eval_accuracy"] for f in folds])
        out[side] = dict(folds[0][side], accuracy=float(w @ curves[:, -1] / w.sum()),
                         eval_accuracy=list(w @ curves / w.sum()),
                         train_accuracy=list(np.mean([f[side]["train_accuracy"] for f in folds],
                                                     axis=0)),
                         seconds=sum(f[side]["seconds"] for f in folds))
    return out


def table(results: list) -> str:
    head = (f"{'dataset':8} {'layers (conductances)':24} {'on':>10} {'EP (SymmetricEP)':>17} "
            f"{'backprop':>9} {'epochs':>6} {'EP time':>8} {'BP time':>8}")
    lines = [head, "-" * len(head)]
    for r in results:
        size = "-".join(str(s) for s in r["layers"]) + f" ({r['circuit']['conductances']} G)"
        lines.append(
            f"{r['dataset']:8} {size:24} {r['evaluated_on']:>10} "
            f"{100 * r['ep']['accuracy']:16.1f}% {100 * r['backprop']['accuracy']:8.1f}% "
            f"{r['epochs']:6d} {r['ep']['seconds']:7.0f}s {r['backprop']['seconds']:7.1f}s")
    return "\n".join(lines)


def figure(results: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.4), squeeze=False)
    for ax, r in zip(axes[0], results, strict=True):
        ep = np.arange(1, r["epochs"] + 1)
        what = r["evaluated_on"]
        ax.plot(ep, r["ep"]["eval_accuracy"], "C0-", label=f"EP, {what}")
        ax.plot(ep, r["ep"]["train_accuracy"], "C0:", label="EP, train (running)")
        ax.plot(ep, r["backprop"]["eval_accuracy"], "C1-", label=f"backprop, {what}")
        ax.plot(ep, r["backprop"]["train_accuracy"], "C1:", label="backprop, train (running)")
        ax.set_title(f"{r['dataset']}: " + "-".join(str(s) for s in r["layers"]))
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=["xor", "iris", "digits", "all"], default="all")
    ap.add_argument("--epochs", type=int, default=None,
                    help="override the number of epochs of every data set")
    ap.add_argument("--quick", action="store_true",
                    help="tiny smoke run: 2 epochs, at most 64 training and 64 test samples")
    ap.add_argument("--validation", action="store_true",
                    help="tuning protocol: hold out 20%% of the training set and report "
                         "accuracy on it instead of the test set")
    ap.add_argument("--cv", type=int, default=0, metavar="K",
                    help="tuning protocol: K-fold cross-validation inside the training set "
                         "(mean held-out accuracy; the test set is not touched)")
    ap.add_argument("--out", type=Path, default=None,
                    help="directory for train_accuracy.json and train_accuracy.png")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", choices=["cython", "numpy"], default="cython")
    ap.add_argument("--settle", choices=["relax", "newton"], default="relax",
                    help="how phases reach their fixed points (Settle(method=...))")
    ap.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    args = ap.parse_args(argv)
    # The phase driver runs each epoch as one long Brian2 run that it stops itself;
    # Brian2's warning about the nominal end time of such a run is not informative.
    BrianLogger.suppress_name("many_timesteps")

    names = ["xor", "iris", "digits"] if args.dataset == "all" else [args.dataset]
    results = []
    for name in names:
        cfg = CONFIGS[name]
        if args.epochs is not None:
            cfg = replace(cfg, epochs=args.epochs)
        if args.quick:
            cfg = replace(cfg, epochs=2)
        print(f"== {name}: hidden {list(cfg.hidden)}, {cfg.epochs} epochs", flush=True)
        kw = dict(quick=args.quick, seed=args.seed, target=args.target, progress=not args.quiet,
                  settle=args.settle)
        if args.cv:
            results.append(cross_validate(name, cfg, args.cv, **kw))
        else:
            results.append(run_dataset(name, cfg, validation=args.validation, **kw))
        print(table(results[-1:]), flush=True)
    print()
    print(table(results))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "train_accuracy.json").write_text(json.dumps(
            {"command": " ".join(sys.argv), "results": results}, indent=1))
        figure(results, args.out / "train_accuracy.png")
        print(f"wrote {args.out / 'train_accuracy.json'} and {args.out / 'train_accuracy.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
