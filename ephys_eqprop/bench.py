"""``ephys-eqprop bench``: speed side by side, in one run on this machine.

Two measurements, each printed as a table (medians of repeats; first calls, which
generate and compile code, reported separately):

* **time-varying gradients**: ``Adjoint`` on each Brian2 target (numpy, and
  cpp_standalone where g++ is found) on a dendrite circuit, with the gradients'
  agreement (:func:`time_varying`); ``benchmarks/adjoint_vs_jax.py`` puts them next to
  JAX BPTT of the same equations (the optional ``bench`` extra);
* **static training throughput**: symmetric EP on the 64-64-10 digits circuit, samples
  per second per target and per way of settling (relaxation in Brian2, Newton's
  method), next to the exact steady-state gradient, with the steps each phase took and
  the estimates' agreement (:func:`static_throughput`).

``benchmarks/adjoint_vs_jax.py`` and ``benchmarks/hh_vs_jaxley.py`` run the full grids
(N up to 1,000 nodes, T up to 1e5 steps; Hodgkin–Huxley networks against Jaxley).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

__all__ = ["digits_circuit", "main", "median_time", "static_throughput", "time_varying"]


def digits_circuit(seed: int = 0):
    """The 64-64-10 diode–resistor circuit of the digits benchmark (9,640 conductances).

    Sharp-kneed diode neurons (``I_s`` 1 µA, ``V_T`` 25 mV, clipping at ±0.2 V), ±1 V
    bias pair, doubled inputs and differential outputs, initial conductances around
    20 µS (``benchmarks/train_accuracy.py`` trains it to 95 % test accuracy).
    """
    from brian2 import mV, nA, uS, volt

    from .circuit import layered
    from .models import DiodeNeuron

    neuron = DiodeNeuron(I_s=1000 * nA, V_T=25 * mV, V_low=-0.2 * volt, V_high=0.2 * volt)
    return layered(64, [64], 10, neuron=neuron, g_init=20 * uS, bias=1 * volt, rng=seed)


def _max_rel(g: dict, ref: dict) -> float:
    """Largest ``max |g - ref| / max |ref|`` over the parameters."""
    return max(float(np.max(np.abs(np.asarray(g[k] - ref[k]))) /
                     np.max(np.abs(np.asarray(ref[k])))) for k in g)


def median_time(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` (seconds)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def static_throughput(*, batch: int = 32, batches: int = 5, repeats: int = 3,
                      targets=("numpy", "cython"), progress=print) -> list[dict]:
    """Samples per second of symmetric EP gradients on the digits circuit.

    Parameters
    ----------
    batch : int
        Mini-batch size (the network's batch).
    batches : int
        Consecutive mini-batches timed together (one repeat).
    repeats : int
        Repeats; the median is reported.
    targets : sequence of str
        Brian2 targets for the relaxation runs (on ``"cpp_standalone"`` one generated
        program per stretch between two settle checks).

    Returns
    -------
    list of dict
        One row per (target, settle method) and one for the exact gradient:
        ``samples_per_s``, ``first_call_s``, ``steps`` per phase, ``rel_to_relax``
        (largest relative difference to the relaxed estimate of the same batch).
    """
    from brian2 import uS, volt

    from .datasets import digits
    from .estimators import ExactSteadyState, SymmetricEP
    from .losses import CrossEntropy
    from .phases import Settle

    data = digits()
    X, y = data.X_train, data.y_train
    circuit = digits_circuit()
    loss = CrossEntropy(g_nudge=20 * uS, v_scale=0.1 * volt)
    n = batch * batches

    def batches_of(est, net):
        def run():
            for s in range(0, n, batch):
                est.gradient(net, X[s:s + batch], y[s:s + batch], loss)
        return run

    rows, reference = [], None
    plans = [(t, "relax") for t in targets] + [("numpy", "newton")]
    for target, method in plans:
        net = circuit.build(batch=batch, target=target)
        est = SymmetricEP(beta=0.2, settle=Settle(tol=1e-6 * volt, method=method))
        t0 = time.perf_counter()
        g = est.gradient(net, X[:batch], y[:batch], loss)
        first = time.perf_counter() - t0
        steps = {k: p.report.steps for k, p in est.info.phases.items()}
        if reference is None:
            reference = g
        rel = _max_rel(g, reference)
        sec = median_time(batches_of(est, net), repeats)
        rows.append({"what": f"SymmetricEP, {method}", "target": target,
                     "samples_per_s": n / sec, "first_call_s": first, "steps": steps,
                     "rel_to_relax": rel})
        progress(f"  {rows[-1]['what']} on {target}: {n / sec:.0f} samples/s, steps per "
                 f"phase {steps}, vs relaxed estimate {rel:.1e}")
    net = circuit.build(batch=batch, target="numpy")
    exact = ExactSteadyState()
    t0 = time.perf_counter()
    exact.gradient(net, X[:batch], y[:batch], loss)
    first = time.perf_counter() - t0
    sec = median_time(batches_of(exact, net), repeats)
    rows.append({"what": "ExactSteadyState (implicit differentiation)", "target": "numpy",
                 "samples_per_s": n / sec, "first_call_s": first, "steps": {},
                 "rel_to_relax": float("nan")})
    progress(f"  exact steady-state gradient: {n / sec:.0f} samples/s")
    return rows


def time_varying(*, n: int = 100, steps: int = 10_000, repeats: int = 3,
                 targets=("numpy", "cpp_standalone"), progress=print) -> list[dict]:
    """Time per ``Adjoint`` gradient on a dendrite circuit, per target.

    ``eq.datasets.dendrite_circuit(n)`` (2 inputs, ``n`` compartments, a soma; about
    4n conductances), one multi-sine sample of ``steps`` steps at dt = 10 µs, MSE loss on
    the soma. Each target's gradient is compared with the first target's.

    Returns
    -------
    list of dict
        ``target``, ``gradient_s`` (median), ``first_call_s`` (code generation and
        compilation included), ``rel_to_first``.
    """
    from brian2 import second, us

    from .datasets import dendrite_circuit, multisine
    from .estimators import Adjoint
    from .losses import MSE

    dt = 10 * us
    duration = steps * dt
    x = multisine(1, tau_omega=1, dt=dt, duration=duration, seed=1, tau=1e-3 * second)
    y = multisine(1, tau_omega=1, dt=dt, duration=duration, seed=2, n_channels=1,
                  tau=1e-3 * second)
    circuit, loss, est = dendrite_circuit(n, seed=0), MSE(), Adjoint()
    rows, reference = [], None
    for target in targets:
        net = circuit.build(batch=1, dt=dt, target=target)
        t0 = time.perf_counter()
        g = est.gradient(net, x, y, loss)
        first = time.perf_counter() - t0
        reference = g if reference is None else reference
        rel = _max_rel(g, reference)
        sec = median_time(lambda net=net: est.gradient(net, x, y, loss), repeats)
        rows.append({"target": target, "gradient_s": sec, "first_call_s": first,
                     "rel_to_first": rel})
        progress(f"  Adjoint on {target}: {sec:.3g} s per gradient (first call "
                 f"{first:.1f} s), vs {targets[0]} {rel:.1e}")
    return rows


def _static_table(rows) -> str:
    lines = ["| estimator | target | samples/s | first call (s) | steps per phase | "
             "vs relaxed estimate |", "|---|---|---|---|---|---|"]
    for r in rows:
        steps = ", ".join(f"{k} {v}" for k, v in r["steps"].items()) or "—"
        rel = "—" if np.isnan(r["rel_to_relax"]) else f"{r['rel_to_relax']:.1e}"
        lines.append(f"| {r['what']} | {r['target']} | {r['samples_per_s']:.0f} | "
                     f"{r['first_call_s']:.2f} | {steps} | {rel} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    """``ephys-eqprop bench``."""
    import argparse

    from brian2 import BrianLogger

    from .targets import cpp_standalone_available, cython_available

    ap = argparse.ArgumentParser(prog="ephys-eqprop bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and batches")
    ap.add_argument("--targets", nargs="+", choices=["numpy", "cython", "cpp_standalone"],
                    default=None, help="Brian2 targets to measure (default: numpy, cython if "
                                       "it compiles here, cpp_standalone if g++ is found)")
    args = ap.parse_args(argv)
    BrianLogger.suppress_name("unused_brian_object")
    targets = args.targets or (["numpy"] + (["cython"] if cython_available() else []) +
                               (["cpp_standalone"] if cpp_standalone_available() else []))
    # cython compiles a long time-varying run's extensions for minutes: only if asked for
    compiled = [t for t in targets if t != "cython" or args.targets]
    n, steps = (20, 2000) if args.quick else (100, 10_000)
    print(f"Adjoint gradient, dendrite circuit of {n} compartments, {steps} steps:")
    rows = time_varying(n=n, steps=steps, repeats=1 if args.quick else 3, targets=compiled)
    print("| target | gradient (s) | first call (s) | vs " + compiled[0] + " |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['target']} | {r['gradient_s']:.3g} | {r['first_call_s']:.1f} | "
              f"{r['rel_to_first']:.1e} |")
    try:
        import jax  # noqa: F401

        print("JAX is installed: python benchmarks/adjoint_vs_jax.py compares these "
              "gradients with JAX BPTT of the same equations (N up to 1,000, T up to 1e5).")
    except ImportError:
        pass
    print("Static symmetric EP, digits 64-64-10, batch 32:")
    rows = static_throughput(batches=2 if args.quick else 5, repeats=1 if args.quick else 3,
                             targets=targets)
    print(_static_table(rows))
    return 0
