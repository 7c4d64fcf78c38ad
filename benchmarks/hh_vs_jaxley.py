"""Hodgkin–Huxley networks in ephys_eqprop and in Jaxley, side by side in one run.

The same network in both: N single-compartment neurons with the squid-axon channels of
NEURON's ``hh`` mechanism (6.3 °C), a membrane area of 20,000 µm² (in Jaxley a cylinder
of radius 39.9 µm and length 79.8 µm), all-to-all chemical synapses (N² of them,
autapses included) with the kinetics of :class:`ephys_eqprop.models.ChemicalSynapse`
(``ds/dt = α T(v_pre)(1 - s) - s/τ``, excitatory, written for Jaxley below as a
``jaxley.synapses.Synapse`` subclass), and a 10 µA/cm² step current into the first half
of the neurons from 5 ms; 100 ms at dt = 0.025 ms (4,000 steps).

Both simulators integrate differently — ours: forward Euler of every state (the scheme
its adjoint differentiates); Jaxley: implicit Euler for the voltage, exponential Euler
for the gates — so their traces and gradients need not be equal. Printed per N:

* the forward traces against each other (spike counts, mean |Δv|), and for the isolated
  neurons (synapses off) against NEURON (Crank–Nicolson, same dt), where NEURON can
  express the network;
* each simulator's gradient of an MSE loss on all voltages (w.r.t. every synaptic
  conductance and every g_Na, g_K, g_L) against its own central finite difference along
  a random direction (``(L(θ + εd) - L(θ - εd))/2ε`` against ``∇L · d``, ε = 1e-5
  relative): a directional check that works at 10,000 parameters;
* time per forward run and per gradient (median of repeats, first call — compilation or
  JIT — separately), and peak memory (resident set size of a fresh process per
  measurement).

Usage (the optional ``bench`` extra: ``pip install ".[bench]"`` installs JAX and Jaxley)::

    python benchmarks/hh_vs_jaxley.py              # N = 10 and 100
    python benchmarks/hh_vs_jaxley.py --sizes 10 --steps 1000   # a quick look
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import time

import numpy as np

AREA_UM2 = 20000.0
DT_MS = 0.025
STIM_UA_CM2 = 10.0
SYN = {"alpha": 2.0, "tau": 5.0, "v_th": -20.0, "delta": 2.0, "e_syn": 0.0}  # /ms, ms, mV


def conductances(n: int, seed: int = 0) -> dict:
    """The synaptic (µS, shape (n, n)) and channel (S/cm², shape (n,)) parameters."""
    rng = np.random.default_rng(seed)
    return {"g_syn": rng.uniform(0.1, 1.0, (n, n)) * 1e-3 / n * 10,  # µS: 0.1-1 nS × 10/n
            "g_Na": 0.12 * rng.uniform(0.9, 1.1, n), "g_K": 0.036 * rng.uniform(0.9, 1.1, n),
            "g_L": 0.0003 * rng.uniform(0.9, 1.1, n)}


def stimulus(n: int, steps: int) -> np.ndarray:
    """Step currents (nA), shape (n, steps): the first half of the neurons from 5 ms."""
    amp_nA = STIM_UA_CM2 * 1e-6 * AREA_UM2 * 1e-8 * 1e9
    out = np.zeros((n, steps))
    out[: max(1, n // 2), int(round(5.0 / DT_MS)):] = amp_nA
    return out


# ---------------------------------------------------------------------- ours
def ours(n: int, steps: int, repeats: int, seed: int = 0, target: str = "numpy") -> dict:
    from brian2 import amp, ms, siemens, umetre, volt

    import ephys_eqprop as eq
    from ephys_eqprop.dynamics import prepare, simulate

    p = conductances(n, seed)
    area_cm2 = AREA_UM2 * 1e-8
    c = eq.Circuit()
    c.add_nodes("cells", n, eq.models.HHNeuron("hh", area=AREA_UM2 * umetre**2),
                values={"g_Na": p["g_Na"] * area_cm2 * siemens,
                        "g_K": p["g_K"] * area_cm2 * siemens,
                        "g_L": p["g_L"] * area_cm2 * siemens})
    c.add_current_input("I", "cells")
    c.connect("cells", "cells", eq.models.ChemicalSynapse(
        "excitatory", alpha_s=SYN["alpha"] / ms, tau_s=SYN["tau"] * ms,
        V_th=SYN["v_th"] * 1e-3 * volt, Delta=SYN["delta"] * 1e-3 * volt),
        g=p["g_syn"] * 1e-6 * siemens, allow_self=True, name="syn")
    c.set_output("cells")
    dt = DT_MS * ms
    net = c.build(batch=1, dt=dt, target=target)
    x = eq.TimeSeries(stimulus(n, steps).T[None] * 1e-9 * amp, dt=dt)
    y = eq.TimeSeries(np.full((1, steps, n), -0.065) * volt, dt=dt)
    loss = eq.losses.MSE(g_nudge=1e-9 * siemens)
    prob = prepare(net, x, y, loss)
    out = {"simulator": f"ephys_eqprop ({target})", "n": n, "steps": steps}
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        traj = simulate(net, prob, loss=loss, record=True)
        times.append(time.perf_counter() - t0)
    out["forward_first_s"], out["forward_s"] = times[0], statistics.median(times[1:])
    out["v"] = traj.v["cells"][:steps, :n].T.tolist()  # (n, steps), volt
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        grads = eq.Adjoint().gradient(net, x, y, loss)
        times.append(time.perf_counter() - t0)
    out["gradient_first_s"], out["gradient_s"] = times[0], statistics.median(times[1:])
    # directional finite difference
    rng = np.random.default_rng(1)
    base = net.get_params()
    direction = {k: rng.standard_normal(np.shape(v)) * np.abs(np.asarray(v)) for k, v in
                 base.items()}
    eps = 1e-5
    lin = sum(float(np.sum(np.asarray(grads[k]) * direction[k])) for k in base)

    def loss_at(sign):
        net.set_params({k: base[k] + sign * eps * direction[k] * _unit(base[k]) for k in base})
        total, _, _ = eq.dynamics.loss_terms(net, prob, loss,
                                             simulate(net, prob, loss=loss).v_out)
        return total

    fd = (loss_at(+1) - loss_at(-1)) / (2 * eps)
    net.set_params(base)
    out["directional_rel_err"] = abs(fd - lin) / abs(fd)
    out["n_params"] = int(sum(np.size(v) for v in base.values()))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _unit(q):
    """One unit of a Quantity's dimensions (to scale a plain direction)."""
    from brian2 import Quantity

    return Quantity(1.0, dim=q.dim)


# ---------------------------------------------------------------------- Jaxley
def jaxley_run(n: int, steps: int, repeats: int, seed: int = 0) -> dict:
    from jax import config

    config.update("jax_enable_x64", True)
    config.update("jax_platform_name", "cpu")
    import jax
    import jax.numpy as jnp
    import jaxley as jx
    from jaxley.channels import HH
    from jaxley.connect import fully_connect
    from jaxley.synapses.synapse import Synapse

    class TransmitterSynapse(Synapse):
        """ephys_eqprop's ChemicalSynapse kinetics, for Jaxley (µS, mV, ms)."""

        def __init__(self, name=None):
            super().__init__(name)
            pre = self._name
            self.synapse_params = {f"{pre}_gS": 1e-4, f"{pre}_e_syn": SYN["e_syn"]}
            self.synapse_states = {f"{pre}_s": 0.0}

        def update_states(self, states, delta_t, pre_voltage, post_voltage, params):
            pre = self._name
            release = 1.0 / (1.0 + jnp.exp(-(pre_voltage - SYN["v_th"]) / SYN["delta"]))
            s = states[f"{pre}_s"]
            ds = SYN["alpha"] * release * (1 - s) - s / SYN["tau"]
            return {f"{pre}_s": s + delta_t * ds}

        def compute_current(self, states, pre_voltage, post_voltage, params):
            pre = self._name
            return params[f"{pre}_gS"] * states[f"{pre}_s"] * (post_voltage -
                                                               params[f"{pre}_e_syn"])

    p = conductances(n, seed)
    radius = float(np.sqrt(AREA_UM2 / (4 * np.pi)))
    comp = jx.Compartment()
    cell = jx.Cell(jx.Branch(comp, ncomp=1), parents=[-1])
    net = jx.Network([cell for _ in range(n)])
    net.set("radius", radius)
    net.set("length", 2 * radius)
    net.insert(HH())
    fully_connect(net.cell("all"), net.cell("all"), TransmitterSynapse())
    # every edge's conductance from the dense (n_pre, n_post) array, by its cells
    edges = net.edges
    cell_of = net.nodes["global_cell_index"].to_numpy()
    pre = cell_of[edges["pre_index"].to_numpy()]
    post = cell_of[edges["post_index"].to_numpy()]
    net.edges.loc[:, "TransmitterSynapse_gS"] = p["g_syn"][pre, post]
    for k in range(n):
        net.cell(k).set("HH_gNa", float(p["g_Na"][k]))
        net.cell(k).set("HH_gK", float(p["g_K"][k]))
        net.cell(k).set("HH_gLeak", float(p["g_L"][k]))
    net.set("v", -65.0)
    net.init_states()
    stim = stimulus(n, steps)
    for k in range(n):
        net.cell(k).branch(0).comp(0).stimulate(jnp.asarray(stim[k]))
        net.cell(k).branch(0).comp(0).record(verbose=False)
    net.TransmitterSynapse.edge("all").make_trainable("TransmitterSynapse_gS")
    for name in ("HH_gNa", "HH_gK", "HH_gLeak"):
        net.cell("all").make_trainable(name)
    params = net.get_parameters()
    t_max = (steps - 1) * DT_MS

    def simulate(prm):
        return jx.integrate(net, params=prm, delta_t=DT_MS, t_max=t_max)

    def loss(prm):
        v = simulate(prm)
        return 0.5 * jnp.sum((v - (-65.0)) ** 2) * DT_MS

    fwd = jax.jit(simulate)
    grad = jax.jit(jax.grad(loss))
    out = {"simulator": f"Jaxley {jx.__version__ if hasattr(jx, '__version__') else ''}",
           "n": n, "steps": steps}
    t0 = time.perf_counter()
    v = np.asarray(fwd(params).block_until_ready())
    out["forward_first_s"] = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fwd(params).block_until_ready()
        times.append(time.perf_counter() - t0)
    out["forward_s"] = statistics.median(times)
    out["v"] = (v[:, :steps] * 1e-3).tolist()
    t0 = time.perf_counter()
    g = grad(params)
    jax.tree_util.tree_map(lambda a: a.block_until_ready(), g)
    out["gradient_first_s"] = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        g = grad(params)
        jax.tree_util.tree_map(lambda a: a.block_until_ready(), g)
        times.append(time.perf_counter() - t0)
    out["gradient_s"] = statistics.median(times)
    rng = np.random.default_rng(1)
    direction = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.standard_normal(a.shape)) *
                                       jnp.abs(a), params)
    eps = 1e-5
    lin = float(sum(jnp.sum(a * b) for a, b in zip(jax.tree_util.tree_leaves(g),
                                                   jax.tree_util.tree_leaves(direction),
                                                   strict=True)))
    jloss = jax.jit(loss)
    plus = jax.tree_util.tree_map(lambda a, d: a + eps * d, params, direction)
    minus = jax.tree_util.tree_map(lambda a, d: a - eps * d, params, direction)
    fd = (float(jloss(plus)) - float(jloss(minus))) / (2 * eps)
    out["directional_rel_err"] = abs(fd - lin) / abs(fd)
    out["n_params"] = int(sum(np.size(a) for a in jax.tree_util.tree_leaves(params)))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def isolated_vs_neuron(n: int, steps: int) -> dict:
    """The same neurons without synapses, ours against NEURON (Crank–Nicolson, same dt)."""
    from brian2 import amp, ms, umetre
    from ephys_eqprop.validation.neuron_reference import neuron_hh_cells
    from ephys_eqprop.validation.neurons import compare_traces

    import ephys_eqprop as eq
    from ephys_eqprop.dynamics import prepare, simulate

    stim = stimulus(n, steps) * 1e-9
    t, v = neuron_hh_cells(AREA_UM2 * 1e-12, stim, DT_MS * 1e-3, method="crank_nicolson")
    c = eq.Circuit()
    c.add_nodes("cells", n, eq.models.HHNeuron("hh", area=AREA_UM2 * umetre**2))
    c.add_current_input("I", "cells")
    c.set_output("cells")
    net = c.build(batch=1, dt=DT_MS * ms)
    x = eq.TimeSeries(stim.T[None] * amp, dt=DT_MS * ms)
    ours_v = simulate(net, prepare(net, x), record=True).v["cells"]
    tt = np.arange(steps + 1) * DT_MS * 1e-3
    res = [compare_traces(tt, ours_v[:, k], t, v[:, k]) for k in range(n)]
    return {"shift_ms": max(r["shift"] for r in res) * 1e3,
            "mae_mV": max(r["mae"] for r in res) * 1e3,
            "spikes": [r["spikes"] for r in res], "spikes_neuron": [r["spikes_ref"] for r in res]}


def _child(fn, args, queue):
    queue.put(json.dumps(fn(*args)))


def measure(fn, *args) -> dict:
    """Run one measurement in a fresh process (its own peak memory); return its dict."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    result = json.loads(queue.get())
    proc.join()
    return result


def _spikes(v):
    v = np.asarray(v)
    return np.sum((v[:, :-1] < 0) & (v[:, 1:] >= 0), axis=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--targets", nargs="+", default=["numpy", "cpp_standalone"],
                        choices=["numpy", "cython", "cpp_standalone"],
                        help="Brian2 targets of ours to measure (default numpy and cpp_standalone)")
    args = parser.parse_args(argv)
    rows = []
    for n in args.sizes:
        reps = args.repeats if n <= 10 else 1
        mine = [measure(ours, n, args.steps, reps, 0, t) for t in args.targets]
        a = mine[0]
        b = measure(jaxley_run, n, args.steps, reps)
        va, vb = np.asarray(a["v"]), np.asarray(b["v"])
        k = min(va.shape[1], vb.shape[1])
        trace_mae = float(np.mean(np.abs(va[:, :k] - vb[:, :k]))) * 1e3
        sa, sb = _spikes(va[:, :k]), _spikes(vb[:, :k])
        print(f"N = {n}: {a['n_params']} parameters; spikes per neuron ours {sa.mean():.1f}, "
              f"Jaxley {sb.mean():.1f}; mean |Δv| ours vs Jaxley {trace_mae:.2f} mV")
        for other in mine[1:]:
            diff = np.max(np.abs(np.asarray(other["v"]) - va)) * 1e3
            print(f"  {other['simulator']} vs {a['simulator']}: max |Δv| {diff:.1e} mV")
        rows.append((n, mine, b, trace_mae))
    iso = measure(isolated_vs_neuron, 2, args.steps)
    print(f"isolated neurons (synapses off) against NEURON's hh, Crank–Nicolson at the same "
          f"dt: spikes {iso['spikes']} vs {iso['spikes_neuron']}, max spike-time difference "
          f"{iso['shift_ms']:.3f} ms, mean |Δv| {iso['mae_mV']:.3f} mV")
    print()
    print("| N cells | synapses | simulator | forward (s) | first forward (s) | gradient (s) | "
          "first gradient (s) | directional FD rel. error | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, mine, b, _ in rows:
        for r in (*mine, b):
            print(f"| {n} | {n * n} | {r['simulator']} | {r['forward_s']:.3f} | "
                  f"{r['forward_first_s']:.2f} | {r['gradient_s']:.3f} | "
                  f"{r['gradient_first_s']:.2f} | {r['directional_rel_err']:.1e} | "
                  f"{r['peak_rss_mb']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
