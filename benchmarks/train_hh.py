"""A Hodgkin–Huxley network learns a teacher's output trace: Adjoint and LagrangianEP.

The task (``eq.datasets.hh_task``): 3 input neurons driven by multi-sine current clamps
(2 ± 1.5 nA), 5 hidden neurons with excitatory chemical synapses from every input and
gap junctions among them, 1 output neuron with excitatory and inhibitory chemical
synapses from the hidden ones — every neuron NEURON's squid-axon ``hh`` set, every
neuron spiking. A *teacher* of this layout made the targets: its output neuron's
voltage trace (40 ms, loss window from 5 ms, MSE with a 10 nS nudge conductance). The
*student* has the teacher's topology and different hidden parameters: every synapse,
gap junction and channel conductance of the hidden and output neurons off by a random
factor (about ±25 %).

Trained from the same initial student, with the same data, shuffling seed and
optimizer (Adam, per-kind step sizes, decay 0.95 per step, full-batch gradients):

* ``Adjoint``, all parameters (chemical synapses, gap junctions, g_Na, g_K, g_L);
* ``Adjoint`` restricted to the parameters Lagrangian EP can estimate (gap junctions
  and channel conductances: chemical synapses are directed, with no energy term);
* ``LagrangianEP(beta=1e-3)``, symmetric, on those parameters.

Honesty rules: train, validation and test inputs are independent draws; the step-size
scale (0.5, 1 or 2 times the base rates) is chosen on the validation set with the
adjoint, then used for all three; the figures are after the last epoch; Lagrangian EP's
cosine to the exact gradient (on the same parameters, at the current student) is
measured at the start and every few epochs, as it is.

Usage::

    python benchmarks/train_hh.py                     # ~40 min on 2 cores (numpy target)
    python benchmarks/train_hh.py --figure docs/figures/train_hh.png
    python benchmarks/train_hh.py --quick             # a smoke run, ~2 min
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from brian2 import ms, nS, uS

import ephys_eqprop as eq

__all__ = ["base_rates", "lep_parameters", "main", "train"]


def base_rates(scale: float = 1.0) -> dict:
    """Adam step sizes per kind of parameter (about 2 % of their typical values)."""
    return {"*.g_Na": scale * 0.5 * uS, "*.g_K": scale * 0.15 * uS, "*.g_L": scale * 1.5 * nS,
            "*": scale * 0.5 * nS}


def lep_parameters(net) -> list:
    """The parameters with a local quantity (gap junctions, channel conductances)."""
    return net.local_parameters()


def _cosine(a: dict, b: dict) -> float:
    va = np.concatenate([np.asarray(a[k]).ravel() for k in b])
    vb = np.concatenate([np.asarray(b[k]).ravel() for k in b])
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))


def train(task, estimator, *, scale: float, epochs: int, loss, cosine_every: int = 0,
          validation: bool = False, log=print) -> dict:
    """Train a fresh student; return its curves, final parameters and timings."""
    net = task.student.build(batch=task.x_train.n_samples, dt=task.dt)
    opt = eq.Adam(lr=base_rates(scale), decay=0.95)
    trainer = eq.Trainer(net, estimator, loss, opt, seed=0, progress=False)
    held_x, held_y = (task.x_val, task.y_val) if validation else (task.x_test, task.y_test)
    curve = [trainer.evaluate(held_x, held_y)["loss"]]
    train_curve, cosines, seconds = [], [], []
    names = lep_parameters(net)
    for epoch in range(1, epochs + 1):
        if cosine_every and (epoch - 1) % cosine_every == 0:
            exact = eq.Adjoint(params=names).gradient(net, task.x_train, task.y_train, loss)
            lep = eq.LagrangianEP(beta=1e-3, params=names).gradient(
                net, task.x_train, task.y_train, loss)
            cosines.append((epoch - 1, _cosine(lep, exact)))
        t0 = time.perf_counter()
        hist = trainer.fit(task.x_train, task.y_train, epochs=epoch)
        seconds.append(time.perf_counter() - t0)
        train_curve.append(hist.train_loss[-1])
        curve.append(trainer.evaluate(held_x, held_y)["loss"])
        log(f"  epoch {epoch}/{epochs}: {'validation' if validation else 'test'} loss "
            f"{curve[-1]:.3e} J ({seconds[-1]:.1f} s)")
    return {"held_out": curve, "train": train_curve, "cosines": cosines, "net": net,
            "seconds_per_epoch": float(np.median(seconds))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--figure", type=Path, default=None, help="write the figure here")
    args = parser.parse_args(argv)
    t_start = time.time()
    if args.quick:
        task = eq.datasets.hh_task(n_in=3, n_hidden=3, n_train=4, n_val=2, n_test=2,
                                   duration=20 * ms)
        epochs, scales, cosine_every = 3, [1.0], 2
    else:
        task = eq.datasets.hh_task(n_in=3, n_hidden=5, n_train=16, n_val=8, n_test=8,
                                   duration=40 * ms)
        epochs, scales, cosine_every = args.epochs, [0.5, 1.0, 2.0], 5
    loss = eq.losses.MSE(g_nudge=10 * nS, window=task.window)
    print(f"task: {task.x_train.n_samples} train / {task.x_val.n_samples} validation / "
          f"{task.x_test.n_samples} test waveforms of {float(task.x_train.duration) * 1e3:g} ms, "
          f"dt {float(task.dt) * 1e3:g} ms; {len(task.student.nodes)} neuron groups, "
          f"{sum(int(np.prod(s.shape)) for s in task.student.parameters().values())} parameters")
    # the step-size scale, on validation data, with the exact gradient
    if len(scales) > 1:
        sel_epochs = max(3, epochs // 4)
        scores = {}
        for sc in scales:
            print(f"validation: scale {sc:g}")
            r = train(task, eq.Adjoint(), scale=sc, epochs=sel_epochs, loss=loss,
                      validation=True)
            scores[sc] = r["held_out"][-1]
        scale = min(scores, key=scores.get)
        print("validation losses after {} epochs: {}; chosen scale {:g}".format(
            sel_epochs, ", ".join(f"{k:g}: {v:.3e} J" for k, v in scores.items()), scale))
    else:
        scale = scales[0]
    probe = task.student.build(batch=1, dt=task.dt)
    names = lep_parameters(probe)
    runs = {}
    for label, est, cos in (("Adjoint, all parameters", eq.Adjoint(), 0),
                            ("Adjoint, LagrangianEP's parameters", eq.Adjoint(params=names), 0),
                            ("LagrangianEP (β = 1e-3), its parameters",
                             eq.LagrangianEP(beta=1e-3, params=names), cosine_every)):
        print(label)
        runs[label] = train(task, est, scale=scale, epochs=epochs, loss=loss, cosine_every=cos)
    print()
    print("| estimator | test loss before | after | factor | s per epoch | LagrangianEP "
          "cosine to the exact gradient |")
    print("|---|---|---|---|---|---|")
    for label, r in runs.items():
        c = r["held_out"]
        cos = ", ".join(f"{v:.3f} (epoch {e})" for e, v in r["cosines"]) or "—"
        print(f"| {label} | {c[0]:.3e} J | {c[-1]:.3e} J | {c[0] / c[-1]:.1f} | "
              f"{r['seconds_per_epoch']:.1f} | {cos} |")
    if args.figure is not None:
        _figure(task, runs, loss, args.figure)
        print(f"figure: {args.figure}")
    print(f"total {time.time() - t_start:.0f} s")
    return 0


def _figure(task, runs, loss, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ephys_eqprop.dynamics import prepare, simulate

    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(15, 4))
    for label, r in runs.items():
        a1.plot(np.arange(len(r["held_out"])), r["held_out"], "o-", ms=3, label=label)
    a1.set_yscale("log")
    a1.set_xlabel("epoch")
    a1.set_ylabel("test loss (J)")
    a1.legend(fontsize=7)
    lep = next(r for lab, r in runs.items() if lab.startswith("LagrangianEP"))
    if lep["cosines"]:
        e, c = zip(*lep["cosines"], strict=True)
        a2.plot(e, c, "s-", color="C2")
    a2.axhline(0, color="0.6", lw=0.8)
    a2.set_ylim(-1.05, 1.05)
    a2.set_xlabel("epoch")
    a2.set_ylabel("cosine(LagrangianEP, exact)")
    a2.set_title("Lagrangian EP's direction during its training", fontsize=9)
    x, y = task.x_test[:1], task.y_test[:1]
    t = np.arange(y.n_steps) * float(task.dt) * 1e3
    a3.plot(t, np.asarray(y.values)[0, :, 0] * 1e3, color="k", lw=2, alpha=0.35, label="teacher")
    start = task.student.build(batch=1, dt=task.dt)
    v0 = simulate(start, prepare(start, x)).v_out[:, 0, 0]
    a3.plot(t, v0 * 1e3, color="0.5", lw=0.8, label="student before")
    for label, r in runs.items():
        net = task.student.build(batch=1, dt=task.dt)
        net.set_params(r["net"].get_params())
        v = simulate(net, prepare(net, x)).v_out[:, 0, 0]
        a3.plot(t, v * 1e3, lw=0.8, label=label.split(",")[0] + (" (all)" if "all" in label
                                                                else ""))
    a3.set_xlabel("t (ms)")
    a3.set_ylabel("output neuron v (mV)")
    a3.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
