"""The exact gradient of a time-varying circuit: ephys_eqprop's Adjoint against JAX BPTT.

The same circuit, the same equations, the same time grid on both sides, in one run on
this machine. A layered diode–RC circuit: two multi-sine voltage inputs
(:func:`ephys_eqprop.datasets.multisine`, 0.5 V peak), N hidden diode neurons
(:func:`ephys_eqprop.models.DiodeNeuron`: 1 nF, 1 µS leak, Shockley diodes of 1 nA and
50 mV to bias sources at ±0.2 V), two capacitor outputs
(:func:`ephys_eqprop.models.CapacitorNode`: 1 nF, 1 µS), resistor synapses input→hidden
(uniform in [0, 2] × 10 µS/√2) and hidden→output (uniform in [0, 2] × 10 µS/N, so that
an output's total conductance, and forward Euler's stability limit, do not grow with
N), and an MSE loss (``eq.losses.MSE``, g_nudge = 1 µS) of the output voltages against
two multi-sine targets (0.1 V peak). dt = 10 µs, T steps from a zero state.

What ephys_eqprop builds (``net.groups[...].equations``, ``net.synapses[...]``: run with
``--show-equations``) is forward Euler of (in SI units, all nodes stepping from the
values at the start of the step)::

    C dv_h/dt = -g_leak v_h - I_s (exp((v_h - V_high)/V_T) - 1) + I_s (exp((V_low - v_h)/V_T) - 1)
                + Σ_i g_xh[i, h] (x_i - v_h) + Σ_k g_hy[h, k] (v_k - v_h)
    C dv_k/dt = -g_leak v_k + Σ_h g_hy[h, k] (v_h - v_k)

with the inputs and targets of step n read at t_n = n dt, and the loss that
``eq.Adjoint`` differentiates (``eq.dynamics.loss_terms``) is the left Riemann sum
``L = Σ_b w_b Σ_n dt m_n ½ g_nudge Σ_k (v_k(t_n) - y_k(t_n))²`` (one sample, w = 1, no
window, m = 1). The JAX side writes that step by hand as the body of a
``jax.lax.scan`` over the T steps, float64 (``jax_enable_x64``) — the synaptic sums as
matrix products, ``x @ g_xh - v_h * Σ_i g_xh[i]`` (the same sums reassociated; twice as
fast at N = 1000 as summing ``g (x - v)`` term by term) — and takes
``jax.jit(jax.grad(L))`` with respect to both conductance matrices: backpropagation
through time, which stores every step's residuals. Ours: ``eq.Adjoint().gradient`` — one
recorded forward run and one backward run of the adjoint circuit, as Brian2 objects on
each code-generation target (``Circuit.build(target=...)``: ``numpy``, ``cython``,
``cpp_standalone``). Both are the exact gradient of the same discrete loss, so they
must agree to rounding.

Printed per (simulator, N, T), each measurement in a fresh process (``multiprocessing``
spawn):

* the median wall time per gradient over ``--repeats`` calls, after a first call
  reported separately: JAX's traces and compiles (XLA); cython's and cpp_standalone's
  compile — Brian2's cython extensions, and the two cpp_standalone programs (forward,
  adjoint) that ephys_eqprop compiles once per run structure (sizes, T) — into a cache
  directory that is fresh for each run of this script unless ``--cache-dir`` names one.
  For these two targets the first call runs in a process of its own, and the timed
  process starts from the compiled cache (its own first call is shown in brackets): in
  a process that has just compiled with Cython, the ``gc.collect()`` that Brian2 makes
  at the start of every run takes several times longer, and so does a short gradient;
* for cpp_standalone, how much of a gradient's time the generated programs themselves
  take (from the line of arguments sent to a program kept running to its answer: its
  run, start-up and end included); the rest is Python: writing the programs' inputs
  (values; the recorded trajectory reaches the adjoint program as the file the forward
  program wrote) to files, reading their results, preparing the runs;
* the peak resident memory of the process (``ru_maxrss``; for cpp_standalone plus that
  of the generated programs, measured with GNU ``time`` in one more call);
* the agreement with JAX: ``‖g - g_JAX‖₂ / ‖g_JAX‖₂`` per parameter group, the loss,
  and the largest difference of the trajectories (outputs at every step; for T ≤ 10⁴
  also the first 8 hidden nodes) relative to their largest value.

Measurements whose time (first call plus repeats, extrapolated linearly in T from the
same simulator at the same N) would exceed ``--max-seconds`` run fewer repeats or are
skipped, and so are those whose extrapolated memory would exceed 80 % of the
available memory; every skip is printed with its reason.

Usage (the optional ``bench`` extra installs JAX)::

    python benchmarks/adjoint_vs_jax.py --quick     # N = 10, 100; T = 1000 (a smoke run)
    python benchmarks/adjoint_vs_jax.py             # N = 10, 100, 1000; T = 1e3, 1e4, 1e5
    python benchmarks/adjoint_vs_jax.py --targets numpy cython cpp_standalone \\
        --sizes 100 --steps 1000 10000 --json out.json --figure out.png
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import queue as queue_mod
import resource
import shutil
import statistics
import sys
import tempfile
import time
import traceback

import numpy as np

DT = 1e-5  # s
N_IN, N_OUT = 2, 2
C_NODE, G_LEAK = 1e-9, 1e-6  # F, S (hidden and output nodes)
I_S, V_T, V_LOW, V_HIGH = 1e-9, 0.05, -0.2, 0.2  # A, V, V, V (DiodeNeuron's defaults)
G_IN, G_OUT = 10e-6, 10e-6  # S: input→hidden scale / √N_IN, hidden→output scale / N
G_NUDGE = 1e-6  # S
PEAK_X, PEAK_Y, TAU, TAU_OMEGA = 0.5, 0.1, 1e-3, 1.0  # V, V, s, 1
N_HIDDEN_CHECK = 8  # hidden nodes whose trajectories are compared
HIDDEN_CHECK_MAX_STEPS = 10_000
PARAMS = ("x->h", "h->y")
#: targets whose first call compiles (timed first in a process of its own)
COMPILED = ("cython", "cpp_standalone")
#: environment variable naming the Cython cache of the measurement processes
CYTHON_CACHE_ENV = "ADJOINT_VS_JAX_CYTHON_CACHE"


def conductances(n: int, seed: int = 0) -> dict:
    """The synaptic conductances (siemens, plain arrays) by connection name."""
    rng = np.random.default_rng(seed)
    return {"x->h": rng.uniform(0, 2, (N_IN, n)) * G_IN / np.sqrt(N_IN),
            "h->y": rng.uniform(0, 2, (n, N_OUT)) * G_OUT / n}


def waveforms(steps: int) -> tuple:
    """Inputs (steps, N_IN) and targets (steps, N_OUT), volt, as plain arrays."""
    from brian2 import second, volt

    import ephys_eqprop as eq

    kw = {"tau_omega": TAU_OMEGA, "dt": DT * second, "duration": steps * DT * second,
          "tau": TAU * second}
    x = eq.datasets.multisine(1, seed=0, n_channels=N_IN, peak=PEAK_X * volt, **kw)
    y = eq.datasets.multisine(1, seed=1, n_channels=N_OUT, peak=PEAK_Y * volt, **kw)
    return np.asarray(x.values)[0], np.asarray(y.values)[0]


def _peak_rss_mb() -> dict:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": own, "peak_rss_children_mb": children}


def _cpu_s() -> float:
    """CPU time (user + system) of this process, its finished children and the
    generated programs kept running (which are not finished children)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    serving = 0.0
    if "ephys_eqprop.standalone" in sys.modules:  # (not imported for JAX's measurements)
        serving = sys.modules["ephys_eqprop.standalone"].serving_cpu_seconds() or 0.0
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime + serving


def _timings(call, repeats: int, probe=None) -> tuple:
    """First call, then ``repeats`` timed calls of ``call()``; returns times and result.

    ``probe()``, if given, is read after every timed call: a dict of further times of
    that call, whose medians are returned too.
    """
    t0 = time.perf_counter()
    result = call()
    out = {"first_call_s": time.perf_counter() - t0}
    times, probes = [], []
    cpu0 = _cpu_s()
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - t0)
        if probe is not None:
            probes.append(probe())
    if times:
        out.update(gradient_s=statistics.median(times), gradient_all_s=times,
                   cpu_per_wall=(_cpu_s() - cpu0) / sum(times))
    for key in probes[0] if probes else ():
        out[key] = statistics.median(p[key] for p in probes)
    return out, result


def _binary_seconds() -> dict:
    """Time the generated programs of this process spent in their last execution.

    Reads the wall time of ``./main`` that each compiled program keeps
    (``seconds``) through ephys_eqprop's table of programs, a private detail of
    :mod:`ephys_eqprop.standalone`: one gradient executes each of its two programs
    (forward, adjoint) once.
    """
    from ephys_eqprop import standalone

    programs = getattr(standalone, "_PROGRAMS", {})
    return {"binary_s": sum(p.seconds for p in programs.values())}


def _program_peak_rss_mb(call) -> float | None:
    """Peak resident memory (MB) of the generated programs during one more ``call()``.

    Brian2 starts ``./main`` with ``prefs.devices.cpp_standalone.run_cmd_unix``; for this
    one call it is wrapped in GNU ``time``, which reports the program's ``ru_maxrss``
    (the ``ru_maxrss`` of this process's children would include this process's own
    memory, inherited at the fork).
    """
    from brian2 import prefs

    gnu_time = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time")
                                        else None)
    if gnu_time is None:
        return None
    fd, report = tempfile.mkstemp(suffix=".maxrss")
    os.close(fd)
    old = prefs.devices.cpp_standalone.run_cmd_unix
    prefs.devices.cpp_standalone.run_cmd_unix = [gnu_time, "-a", "-o", report, "-f", "%M",
                                                 "./main"]
    try:
        call()
        with open(report) as f:
            values = [float(line) for line in f if line.strip().isdigit()]
    except (OSError, ValueError):
        values = []
    finally:
        prefs.devices.cpp_standalone.run_cmd_unix = old
        os.remove(report)
    return max(values) / 1024 if values else None


# ---------------------------------------------------------------------- ours
def build_network(n: int, target: str, show: bool = False):
    """The circuit as an ephys_eqprop network on ``target`` (batch 1, dt = DT)."""
    from brian2 import amp, farad, second, siemens, volt

    import ephys_eqprop as eq

    g = conductances(n)
    c = eq.Circuit()
    c.add_input("x", N_IN)
    c.add_nodes("h", n, eq.models.DiodeNeuron(
        C=C_NODE * farad, g_leak=G_LEAK * siemens, V_low=V_LOW * volt, V_high=V_HIGH * volt,
        I_s=I_S * amp, V_T=V_T * volt))
    c.add_nodes("y", N_OUT, eq.models.CapacitorNode(C=C_NODE * farad, g_leak=G_LEAK * siemens))
    for name in PARAMS:
        pre, post = name.split("->")
        c.connect(pre, post, eq.models.Resistor(), g=g[name] * siemens)
    c.set_output("y")
    net = c.build(batch=1, dt=DT * second, target=target)
    if show:
        for name, grp in net.groups.items():
            print(f"--- group {name!r} ({grp.name}, state update in slot "
                  f"{grp.state_updater.when!r}):\n{grp.equations}")
        for name, syn in net.synapses.items():
            summed = "".join(f"{k} = {u.expression} (summed)\n"
                             for k, u in syn.summed_updaters.items())
            print(f"--- connection {name!r} ({syn.name}):\n{syn.equations}\n{summed}", end="")
    return net


def ours(n: int, steps: int, repeats: int, target: str, x_arr, y_arr, out_path: str | None,
         compile_only: bool = False) -> dict:
    """Time ``eq.Adjoint().gradient`` on ``target``; save gradients and trajectories.

    ``compile_only``: time the first call, then make one more (on the cython target the
    second call still compiles: its ``TimedArray`` objects get other names while the
    first call's are alive), and return.
    """
    from brian2 import prefs, second, siemens, volt

    import ephys_eqprop as eq
    from ephys_eqprop.dynamics import prepare, simulate

    if target == "cython" and os.environ.get(CYTHON_CACHE_ENV):
        # (not for numpy: Brian2 compiles a Cython helper for it too, once per cache)
        prefs.codegen.runtime.cython.cache_dir = os.environ[CYTHON_CACHE_ENV]
    net = build_network(n, target)
    x = eq.TimeSeries(x_arr[None] * volt, dt=DT * second)
    y = eq.TimeSeries(y_arr[None] * volt, dt=DT * second)
    loss = eq.losses.MSE(g_nudge=G_NUDGE * siemens)
    est = eq.Adjoint()
    standalone = target == "cpp_standalone"

    def call():
        return est.gradient(net, x, y, loss)

    if compile_only:
        out, _ = _timings(call, 0)
        t0 = time.perf_counter()
        call()
        out["second_call_s"] = time.perf_counter() - t0
        out.update(_peak_rss_mb())
        return out
    out, grads = _timings(call, repeats, _binary_seconds if standalone else None)
    out.update(_peak_rss_mb())  # before the calls below
    if standalone and repeats:
        out["program_peak_rss_mb"] = _program_peak_rss_mb(call)
    out.update(simulator=f"ephys_eqprop Adjoint ({target})", target=target, n=n, steps=steps,
               loss=float(est.info.loss), trajectory_mb=est.info.phases["trajectory_bytes"] / 1e6)
    if out_path is not None:
        arrays = {f"grad {k}": np.asarray(grads[k]) for k in PARAMS}
        arrays["v_out"] = np.asarray(est.info.z)[:, 0, :]
        if steps <= HIDDEN_CHECK_MAX_STEPS:
            traj = simulate(net, prepare(net, x, y, loss), loss=loss, record=True)
            arrays["v_hidden"] = traj.v["h"][:steps, :N_HIDDEN_CHECK]
        np.savez(out_path, **arrays)
    return out


# ---------------------------------------------------------------------- JAX
def jax_bptt(n: int, steps: int, repeats: int, x_arr, y_arr, out_path: str | None) -> dict:
    """Time ``jax.grad`` of the same loss through ``jax.lax.scan`` of the same Euler steps."""
    from jax import config

    config.update("jax_enable_x64", True)
    config.update("jax_platform_name", "cpu")
    import jax
    import jax.numpy as jnp

    xs, ys = jnp.asarray(x_arr), jnp.asarray(y_arr)
    mask, weight = jnp.ones(steps), 1.0  # loss window m_n and sample weight w_b

    def step(params, carry, inputs):
        """One forward-Euler step from (v_h, v_y) at t_n; returns the state at t_{n+1}."""
        g_xh, g_hy = params["x->h"], params["h->y"]
        v_h, v_y = carry
        x, y, m = inputs
        diodes = -I_S * (jnp.exp((v_h - V_HIGH) / V_T) - 1) + I_S * (jnp.exp((V_LOW - v_h) / V_T)
                                                                      - 1)
        # Σ_i g_xh[i, h] (x_i - v_h) and Σ_k g_hy[h, k] (v_k - v_h), as matrix products
        i_h = (-G_LEAK * v_h + diodes + (x @ g_xh - v_h * jnp.sum(g_xh, axis=0))
               + (g_hy @ v_y - v_h * jnp.sum(g_hy, axis=1)))
        i_y = -G_LEAK * v_y + (v_h @ g_hy - v_y * jnp.sum(g_hy, axis=0))
        cost = DT * m * 0.5 * G_NUDGE * jnp.sum((v_y - y) ** 2)
        new = (v_h + DT * i_h / C_NODE, v_y + DT * i_y / C_NODE)
        return new, (cost, v_h[:N_HIDDEN_CHECK], v_y)

    def run(params):
        zero = (jnp.zeros(n), jnp.zeros(N_OUT))
        _, (costs, v_h, v_y) = jax.lax.scan(lambda c, i: step(params, c, i), zero,
                                            (xs, ys, mask))
        return weight * jnp.sum(costs), (v_h, v_y)

    params = {k: jnp.asarray(v) for k, v in conductances(n).items()}
    grad = jax.jit(jax.grad(lambda p: run(p)[0]))

    def call():
        return jax.block_until_ready(grad(params))

    out, g = _timings(call, repeats)
    out.update(_peak_rss_mb())  # before the trajectory run below
    loss, (v_h, v_y) = jax.jit(run)(params)
    out.update(simulator=f"JAX {jax.__version__} BPTT (lax.scan)", target="jax", n=n,
               steps=steps, loss=float(loss))
    if out_path is not None:
        np.savez(out_path, v_out=np.asarray(v_y), v_hidden=np.asarray(v_h),
                 **{f"grad {k}": np.asarray(g[k]) for k in PARAMS})
    return out


# ---------------------------------------------------------------------- processes
def _child(fn, args, queue):
    try:
        queue.put(json.dumps(fn(*args)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which goes on
        queue.put(json.dumps({"error": f"{type(exc).__name__}: {exc}",
                              "traceback": traceback.format_exc()}))


def measure(fn, *args) -> dict:
    """Run one measurement in a fresh process (its own peak memory); return its dict."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    while True:
        try:
            result = json.loads(queue.get(timeout=1.0))
            break
        except queue_mod.Empty:
            if not proc.is_alive():
                try:
                    result = json.loads(queue.get(timeout=5.0))
                except queue_mod.Empty:
                    result = {"error": f"the process died (exit code {proc.exitcode}; out "
                                       "of memory?)"}
                break
    proc.join()
    return result


def _mem_available_mb() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) / 1024
    except OSError:
        pass
    return float("inf")


def plan(done: list, key: str, n: int, steps: int, repeats: int, budget: float) -> tuple:
    """``(repeats to run, reason)`` for a measurement, from earlier ones of ``key`` at ``n``.

    Time is extrapolated linearly in T from the longest earlier run at the same N (the
    first calls' overhead kept: two processes for cython and cpp_standalone), memory
    linearly through the last two (or proportionally to T from one). ``repeats`` 0 means
    skip.
    """
    prior = sorted((r for r in done if r.get("key") == key and r["n"] == n
                    and r["steps"] < steps and "gradient_s" in r), key=lambda r: r["steps"])
    if not prior:
        return repeats, ""
    last = prior[-1]
    scale = steps / last["steps"]
    t_grad = last["gradient_s"] * scale
    processes = 2 if key in COMPILED else 1
    # the first calls' overhead (code generation, compilation, JIT) does not grow with T
    firsts = [last["first_call_s"]]
    if processes > 1:
        firsts.append(last.get("first_call_cached_s", last["first_call_s"]))
    t_first = sum(max(f - last["gradient_s"], 0.0) + t_grad for f in firsts)
    # the compile process's second call, the memory call, the trajectory check
    extra = 2 * (processes > 1) + 0.5 * (steps <= HIDDEN_CHECK_MAX_STEPS)
    t_first += extra * t_grad
    rss = [r["peak_rss_mb"] + (r.get("program_peak_rss_mb") or 0.0) for r in prior]
    if len(prior) >= 2:
        slope = (rss[-1] - rss[-2]) / (prior[-1]["steps"] - prior[-2]["steps"])
        mem = rss[-1] + slope * (steps - last["steps"])
    else:
        mem = rss[-1] * scale
    avail = _mem_available_mb()
    if mem > 0.8 * avail:
        return 0, (f"estimated peak memory {mem:.0f} MB (from T = {last['steps']}) exceeds 80 % "
                   f"of the available {avail:.0f} MB")
    fit = math.floor((budget - t_first) / t_grad) if t_grad > 0 else repeats
    if fit >= repeats:
        return repeats, ""
    est = (f"first calls and checks ~{t_first:.0f} s + ~{t_grad:.0f} s per gradient (from "
           f"T = {last['steps']})")
    if fit < 1:
        return 0, f"estimated {est} exceeds --max-seconds {budget:g} with one repeat"
    return fit, f"repeats reduced to {fit} to fit --max-seconds {budget:g}: {est}"


def _rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _max_rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def compare(res: dict, path: str, ref: dict, ref_path: str) -> None:
    """Agreement of a measurement's saved gradients and trajectories with JAX's."""
    mine, theirs = np.load(path), np.load(ref_path)
    for k in PARAMS:
        res[f"grad_rel_diff {k}"] = _rel(mine[f"grad {k}"], theirs[f"grad {k}"])
        res[f"grad_max_rel_diff {k}"] = _max_rel(mine[f"grad {k}"], theirs[f"grad {k}"])
    res["v_out_rel_diff"] = _max_rel(mine["v_out"], theirs["v_out"])
    if "v_hidden" in mine.files:
        res["v_hidden_rel_diff"] = _max_rel(mine["v_hidden"],
                                            theirs["v_hidden"][:, :mine["v_hidden"].shape[1]])
    res["loss_rel_diff"] = abs(res["loss"] - ref["loss"]) / abs(ref["loss"])


def _fmt(x, spec):
    return "—" if x is None else format(x, spec)


def table(results: list) -> str:
    lines = ["| N | T | simulator | gradient (s) | × JAX | in C++ program (s) | first call (s) | "
             "CPU/wall | peak RSS (MB) | rel. diff x->h | rel. diff h->y | rel. diff loss | "
             "rel. diff trajectory |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    jax_time = {(r["n"], r["steps"]): r.get("gradient_s") for r in results if r["key"] == "jax"}
    for r in results:
        head = f"| {r['n']} | {r['steps']} | {r['label']} |"
        if "gradient_s" not in r:
            why = r.get("skipped") or r.get("error", "failed")
            lines.append(f"{head} skipped: {why} |" + " |" * 10)
            continue
        ratio = None
        if jax_time.get((r["n"], r["steps"])):
            ratio = r["gradient_s"] / jax_time[(r["n"], r["steps"])]
        first = f"{r['first_call_s']:.2f}"
        if "first_call_cached_s" in r:
            first += f" ({r['first_call_cached_s']:.2f})"
        rss = f"{r['peak_rss_mb']:.0f}"
        if r.get("program_peak_rss_mb") is not None:
            rss += f" + {r['program_peak_rss_mb']:.0f}"
        traj = max(r.get("v_out_rel_diff", 0.0), r.get("v_hidden_rel_diff", 0.0)) \
            if "v_out_rel_diff" in r else None
        lines.append(f"{head} {r['gradient_s']:.4g} | {_fmt(ratio, '.3g')} | "
                     f"{_fmt(r.get('binary_s'), '.4g')} | {first} | "
                     f"{r['cpu_per_wall']:.2f} | {rss} | "
                     f"{_fmt(r.get('grad_rel_diff x->h'), '.1e')} | "
                     f"{_fmt(r.get('grad_rel_diff h->y'), '.1e')} | "
                     f"{_fmt(r.get('loss_rel_diff'), '.1e')} | {_fmt(traj, '.1e')} |")
    return "\n".join(lines)


def figure(results: list, path: str, sizes: list, steps: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_n, ax_t) = plt.subplots(1, 2, figsize=(11, 4.2))
    t_min = min(steps)
    n_mid = 100 if 100 in sizes else sorted(sizes)[len(sizes) // 2]
    labels = list(dict.fromkeys(r["label"] for r in results))
    for label in labels:
        ok = [r for r in results if r["label"] == label and "gradient_s" in r]
        by_n = sorted((r["n"], r["gradient_s"]) for r in ok if r["steps"] == t_min)
        by_t = sorted((r["steps"], r["gradient_s"]) for r in ok if r["n"] == n_mid)
        style = {"marker": "o", "ls": "--" if label.startswith("JAX") else "-"}
        if by_n:
            ax_n.plot(*zip(*by_n, strict=True), label=label, **style)
        if by_t:
            ax_t.plot(*zip(*by_t, strict=True), label=label, **style)
    ax_n.set(xscale="log", yscale="log", xlabel="hidden nodes N",
             ylabel="wall time per gradient (s)", title=f"T = {t_min} steps")
    ax_t.set(xscale="log", yscale="log", xlabel="time steps T",
             ylabel="wall time per gradient (s)", title=f"N = {n_mid} hidden nodes")
    for ax in (ax_n, ax_t):
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=8)
    fig.suptitle("Exact gradient of a diode–RC circuit: ephys_eqprop Adjoint vs JAX BPTT "
                 f"(dt = {DT * 1e6:g} µs, float64, {os.cpu_count()} cores)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _git_state() -> dict:
    """The repository's commit and modified files (the code that was measured)."""
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True,
                               text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": commit, "modified": dirty}


def _steps(s: str) -> int:
    return int(float(s))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000],
                        help="hidden nodes N (default 10 100 1000)")
    parser.add_argument("--steps", type=_steps, nargs="+", default=[1000, 10_000, 100_000],
                        help="time steps T (default 1e3 1e4 1e5)")
    parser.add_argument("--targets", nargs="+", default=["numpy", "cpp_standalone"],
                        choices=["numpy", "cython", "cpp_standalone"],
                        help="Brian2 targets of ours (default numpy and cpp_standalone; cython "
                             "compiles its extensions for minutes on its first use)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after the first")
    parser.add_argument("--quick", action="store_true", help="N = 10, 100; T = 1000 only")
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="time budget of one measurement (first call + repeats), "
                             "extrapolated from shorter runs (default 300)")
    parser.add_argument("--cache-dir", default=None,
                        help="where the cython extensions and cpp_standalone programs are "
                             "cached (default: a fresh temporary directory, removed at the "
                             "end, so that first calls compile)")
    parser.add_argument("--show-equations", action="store_true",
                        help="print the Brian2 equations of the circuit and exit")
    parser.add_argument("--json", metavar="PATH", help="save the results as JSON")
    parser.add_argument("--figure", metavar="PATH", help="save a figure (PNG, PDF, ...)")
    args = parser.parse_args(argv)
    if args.show_equations:
        build_network(3, "numpy", show=True)
        return 0
    if args.quick:
        args.sizes, args.steps = [10, 100], [1000]
    sizes, steps_list = sorted(set(args.sizes)), sorted(set(args.steps))
    t_start = time.perf_counter()
    own_cache = args.cache_dir is None
    cache = tempfile.mkdtemp(prefix="adjoint_vs_jax_cache_") if own_cache else args.cache_dir
    # inherited by the measurement processes
    os.environ["EPHYS_EQPROP_CACHE"] = cache
    os.environ[CYTHON_CACHE_ENV] = os.path.join(cache, "cython")
    git = _git_state()
    scratch = tempfile.mkdtemp(prefix="adjoint_vs_jax_")
    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"dt = {DT * 1e6:g} µs; N = {sizes}; T = {steps_list}; targets {args.targets}; "
          f"{args.repeats} repeats; program caches (cython, cpp_standalone) in {cache}")
    results = []
    try:
        for n in sizes:
            for steps in steps_list:
                x_arr, y_arr = waveforms(steps)
                ref, ref_path = None, os.path.join(scratch, f"jax_{n}_{steps}.npz")
                for key in ["jax", *args.targets]:
                    label = "JAX BPTT" if key == "jax" else f"ephys_eqprop ({key})"
                    reps, why = plan(results, key, n, steps, args.repeats, args.max_seconds)
                    tag = f"{label}, N = {n}, T = {steps}"
                    if why:
                        print(f"  {tag}: {'skipped, ' if reps == 0 else ''}{why}")
                    if reps == 0:
                        results.append({"key": key, "label": label, "n": n, "steps": steps,
                                        "skipped": why})
                        continue
                    path = os.path.join(scratch, f"{key}_{n}_{steps}.npz")
                    t0 = time.perf_counter()
                    if key == "jax":
                        res = measure(jax_bptt, n, steps, reps, x_arr, y_arr, path)
                    else:
                        cold = None
                        if key in COMPILED:  # compile in a process of its own
                            cold = measure(ours, n, steps, 0, key, x_arr, y_arr, None, True)
                        res = measure(ours, n, steps, reps, key, x_arr, y_arr, path)
                        if cold is not None and "error" not in cold and "error" not in res:
                            res["first_call_cached_s"] = res["first_call_s"]
                            res["first_call_s"] = cold["first_call_s"]
                            res["compile_process_second_call_s"] = cold["second_call_s"]
                            res["compile_process_peak_rss_mb"] = cold["peak_rss_mb"]
                            res["compile_process_peak_rss_children_mb"] = \
                                cold["peak_rss_children_mb"]
                    res.update(key=key, label=label, n=n, steps=steps, repeats=reps,
                               measurement_wall_s=time.perf_counter() - t0)
                    if "error" in res:
                        print(f"  {tag}: failed: {res['error']}")
                        print(res.get("traceback", ""))
                        results.append(res)
                        continue
                    if key == "jax":
                        ref = res
                    elif ref is not None:
                        compare(res, path, ref, ref_path)
                    results.append(res)
                    diffs = ", ".join(f"{k} {res[f'grad_rel_diff {k}']:.1e}" for k in PARAMS
                                      if f"grad_rel_diff {k}" in res)
                    print(f"  {tag}: {res['gradient_s']:.4g} s per gradient (first call "
                          f"{res['first_call_s']:.2f} s), peak RSS {res['peak_rss_mb']:.0f} MB"
                          + (f"; gradient vs JAX: {diffs}" if diffs else ""), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if own_cache:
            shutil.rmtree(cache, ignore_errors=True)
    wall = time.perf_counter() - t_start
    print()
    print(table(results))
    print()
    print("gradient (s): median wall time per gradient after the first call; × JAX: that "
          "time over JAX's; in C++ program: of that time, the wall time of the generated "
          "programs (./main, forward and adjoint), the rest is Python: writing their inputs "
          "to files, reading their results, preparing the run; first call: code generation, "
          "compilation or JIT plus one gradient (cython, cpp_standalone: in a process of its "
          "own, compiling into an empty cache unless --cache-dir holds the programs; in "
          "brackets the timed process's first call, from the compiled programs); CPU/wall: "
          "CPU time (process and children) per wall time during the timed calls; peak RSS: "
          "the measuring process (cpp_standalone: + the generated programs' peak, measured "
          "with GNU time in one more call); rel. diff: ‖g - g_JAX‖₂/‖g_JAX‖₂ per parameter "
          "group, |L - L_JAX|/L_JAX, and max |v - v_JAX| / max |v_JAX| over the outputs at "
          f"every step (and the first {N_HIDDEN_CHECK} hidden nodes for "
          f"T ≤ {HIDDEN_CHECK_MAX_STEPS}).")
    print(f"total wall time {wall:.0f} s")
    if args.json:
        meta = {"machine": platform.node(), "cores": os.cpu_count(), "dt_s": DT,
                "argv": vars(args), "wall_s": wall, "git": git}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
        print(f"saved {args.json}")
    if args.figure:
        figure(results, args.figure, sizes, steps_list)
        print(f"saved {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
