"""Cost of one exact time-varying gradient: Adjoint against a forward run, Lagrangian EP and FD.

docs/physics.md, §5: the adjoint estimator costs one forward run that records the free
trajectory and one backward run of the adjoint circuit over it; its memory is the
recorded trajectory, ``(N + 1) × (nodes + inputs + branch states) × batch`` floats.
Lagrangian EP costs 2 (one-sided) or 3 (symmetric) forward runs and O(P) memory;
central finite differences cost 2P perturbed runs, simulated here as batch copies of
one Brian2 run (at most ``FiniteDifference.max_copies`` copies per run).

This script measures, on random RC networks (``random_dynamic_circuit`` of the
validation suite) of a few sizes and run lengths, in one run on this machine: the
wall time of one gradient (best of ``--repeats`` calls, after a warm-up call that
generates the code); the trajectory the adjoint records; the peak of Python/numpy
allocations during a call (tracemalloc, in separate calls, since tracing slows the
run); and the rise of the process's peak resident memory during the timed calls
(Linux ``VmHWM``, reset before each call). Ratios are against one forward run
(``simulate`` without recording, loss attached). The time step keeps forward Euler
stable on the larger networks (see :func:`problem`).

Usage::

    python benchmarks/adjoint_cost.py            # 10, 40, 100 nodes; 200 and 2000 steps
                                                 # (~25 min: FD on 100 nodes dominates)
    python benchmarks/adjoint_cost.py --quick    # 10 and 40 nodes; 200 and 1000 steps (~2 min)
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

import brian2
import numpy as np
from brian2 import uS
from ephys_eqprop.validation import bias_map

import ephys_eqprop as eq
from ephys_eqprop.dynamics import prepare, simulate

compare_gradients = bias_map.compare_gradients
random_dynamic_circuit = bias_map.random_dynamic_circuit
sinusoids = bias_map.sinusoids
TAU, C_NODE = bias_map.TAU, bias_map.C_NODE

#: (inputs, hidden, outputs): 10, 40 and 100 capacitor nodes
SIZES = {10: (2, 8, 2), 40: (4, 34, 6), 100: (8, 88, 12)}
TAU_OMEGA = 1.0  # input frequency; the run length is given in steps


def _proc_kb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return float(line.split()[1])
    return float("nan")


def _reset_peak_rss() -> bool:
    """Reset the process's peak resident set size (Linux >= 4.0); False if unavailable."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def timed(fn):
    """Wall time (s) of ``fn()`` and the rise of peak RSS during it (bytes), and its result."""
    gc.collect()
    ok = _reset_peak_rss()
    rss0 = _proc_kb("VmRSS")
    t0 = time.perf_counter()
    out = fn()
    secs = time.perf_counter() - t0
    rss = (_proc_kb("VmHWM") - rss0) * 1024 if ok else float("nan")
    return secs, rss, out


def traced_peak(fn) -> float:
    """Peak of the Python/numpy allocations made during ``fn()`` (bytes, tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return float(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


def max_node_conductance(circ) -> float:
    """Largest total conductance at a node (siemens): leak plus every incident resistor."""
    worst = 0.0
    for name, spec in circ.nodes.items():
        G = np.full(spec.n, float(spec.model.g_leak))
        for conn in circ.connections.values():
            g = np.broadcast_to(np.abs(np.asarray(conn.values, dtype=float)), conn.i.shape)
            if conn.post == name:
                G += np.bincount(conn.j, weights=g, minlength=spec.n)
            if conn.pre == name:
                G += np.bincount(conn.i, weights=g, minlength=spec.n)
        worst = max(worst, float(G.max()))
    return worst


def measure(fn, repeats: int):
    """Best time of ``repeats`` calls (fewer for calls over 10 s), largest rise of peak RSS,
    smallest tracemalloc peak of two further calls (one for calls over 10 s), last result."""
    times, rss = [], []
    for _ in range(repeats):
        secs, r, out = timed(fn)
        times.append(secs)
        rss.append(r)
        if secs > 10:
            break
    traced = min(traced_peak(fn) for _ in range(1 if max(times) > 10 else 2))
    return min(times), max(rss), traced, out


def problem(size: int, steps: int, n_samples: int, target: str):
    """A random RC network of ``size`` nodes, built for sinusoids lasting ``steps`` steps.

    The time step is the finer of period/200 and ``C / (4 G_max)``: forward Euler is
    stable for ``dt < 2 C / λ_max`` and, by Gershgorin, ``λ_max ≤ 2 G_max``; the output
    nodes of the larger networks collect many synapses (``G_max`` ≈ 100 µS at 100 nodes).
    """
    n_in, n_hidden, n_out = SIZES[size]
    rng = np.random.default_rng(size)
    circ = random_dynamic_circuit("rc", rng, n_in=n_in, n_hidden=n_hidden, n_out=n_out)
    per_tau = max(20, int(np.ceil(4 * max_node_conductance(circ) * TAU / float(C_NODE))))
    period = 2 * np.pi / TAU_OMEGA * TAU
    dt = min(TAU / per_tau, period / 200)

    def waves(n):
        return sinusoids(TAU_OMEGA, np.random.default_rng(1), n_samples=n_samples, n_in=n_in,
                         n_out=n_out, periods=n * dt / period, min_duration=0.0,
                         steps_per_tau=per_tau)

    x, y, dt_q = waves(steps)
    net = circ.build(batch=n_samples, dt=dt_q, target=target)
    return net, x, y, waves(20)[:2]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes and short runs only")
    ap.add_argument("--target", default="numpy", choices=["numpy", "cython"])
    ap.add_argument("--samples", type=int, default=2, help="batch copies (samples) per run")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per figure (best kept)")
    args = ap.parse_args(argv)
    brian2.prefs.codegen.target = args.target  # also for synapse creation while building
    sizes, lengths = ([10, 40], [200, 1000]) if args.quick else ([10, 40, 100], [200, 2000])
    loss = eq.losses.MSE(g_nudge=1 * uS)
    estimators = {
        "adjoint": lambda names: eq.Adjoint(),
        "LEP 1-sided": lambda names: eq.LagrangianEP(1e-3, symmetric=False, params=names),
        "LEP sym": lambda names: eq.LagrangianEP(1e-3, symmetric=True, params=names),
        "FD": lambda names: eq.FiniteDifference(eps=1e-4),
    }
    rows = []
    for size in sizes:
        for steps in lengths:
            net, x, y, (xw, yw) = problem(size, steps, args.samples, args.target)
            names = list(net.circuit.connections)
            P = sum(np.size(v) for v in net.get_params().values())

            def forward(x=x, y=y, net=net):
                return simulate(net, prepare(net, x, y, loss), loss=loss)

            simulate(net, prepare(net, xw, yw, loss), loss=loss)  # warm-up
            row = {"nodes": size, "P": P, "steps": steps}
            secs, rss, row["forward_traced"], _ = measure(forward, args.repeats)
            row["forward"] = (secs, rss)
            grads = {}
            for key, make in estimators.items():
                est = make(names)
                est.gradient(net, xw, yw, loss)  # warm-up: code generation, adjoint build
                secs, rss, row[key + "_traced"], g = measure(
                    lambda est=est, net=net, x=x, y=y: est.gradient(net, x, y, loss),
                    args.repeats)
                row[key] = (secs, rss)
                if key == "adjoint":
                    row["trajectory"] = est.info.phases["trajectory_bytes"]
                grads[key] = g
            row["adj_vs_fd"] = compare_gradients(grads["adjoint"], grads["FD"])[1]
            row["lep_vs_adj"] = compare_gradients(grads["LEP sym"], grads["adjoint"])[1]
            rows.append(row)
            print(f"  measured: {size} nodes, {steps} steps", flush=True)

    print(f"\nTime of one gradient (s, best of {args.repeats}, {args.target} target, batch "
          f"{args.samples}, τω = {TAU_OMEGA:g}); ratios to one forward run")
    print(f"{'nodes':>5} {'P':>5} {'steps':>5} {'forward':>8} {'adjoint':>8} {'adj/fwd':>7} "
          f"{'LEP-1':>7} {'LEP-sym':>7} {'sym/fwd':>7} {'FD':>8} {'FD/adj':>7} "
          f"{'adj vs FD':>9}")
    for r in rows:
        f = r["forward"][0]
        print(f"{r['nodes']:>5} {r['P']:>5} {r['steps']:>5} {f:>8.3f} {r['adjoint'][0]:>8.3f} "
              f"{r['adjoint'][0] / f:>7.2f} {r['LEP 1-sided'][0]:>7.3f} {r['LEP sym'][0]:>7.3f} "
              f"{r['LEP sym'][0] / f:>7.2f} {r['FD'][0]:>8.2f} "
              f"{r['FD'][0] / r['adjoint'][0]:>7.1f} {r['adj_vs_fd']:>9.1e}")

    mb = 1e6
    print("\nMemory (MB): adjoint trajectory; peak of numpy/Python allocations during one call "
          "(tracemalloc); rise of peak RSS during the timed call")
    print(f"{'nodes':>5} {'steps':>5} {'traj':>7} | {'tm fwd':>7} {'tm adj':>7} {'adj/fwd':>7} "
          f"{'tm LEPs':>7} {'tm FD':>7} | {'rss fwd':>7} {'rss adj':>7} {'rss LEPs':>8} "
          f"{'rss FD':>7}")
    for r in rows:
        tf, ta = r["forward_traced"], r["adjoint_traced"]
        print(f"{r['nodes']:>5} {r['steps']:>5} {r['trajectory'] / mb:>7.2f} | {tf / mb:>7.2f} "
              f"{ta / mb:>7.2f} {ta / tf:>7.1f} {r['LEP sym_traced'] / mb:>7.2f} "
              f"{r['FD_traced'] / mb:>7.2f} | {r['forward'][1] / mb:>7.2f} "
              f"{r['adjoint'][1] / mb:>7.2f} {r['LEP sym'][1] / mb:>8.2f} {r['FD'][1] / mb:>7.2f}")
    print("\nLEP-1 / LEP-sym: Lagrangian EP one-sided / symmetric (β = 1e-3); 'adj vs FD': "
          "max-norm relative difference of the two gradients (all parameters).")


if __name__ == "__main__":
    main()
