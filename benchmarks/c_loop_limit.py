"""The limit: the adjoint gradient of ``adjoint_vs_jax.py``'s circuit as a hand-written C loop.

The same layered diode–RC circuit, equations, loss, dt and steps as
``benchmarks/adjoint_vs_jax.py`` (its constants, conductances and waveforms are
imported from there), written out as one C function: a forward-Euler loop that stores
every node voltage, then the discrete adjoint of that loop run backwards, accumulating
``dL/dg`` for both conductance matrices — the arithmetic the generated programs of
``target="cpp_standalone"`` do, without Brian2's per-object scheduling, monitors, files
or Python. Compiled twice, timed in-process through ``ctypes``, and each checked
against ``eq.Adjoint()`` on the numpy target (the gradients must agree to rounding):
with ``gcc -O3 -march=native`` (scalar ``exp``, as the generated programs called it
before they declared glibc's vector functions) and with ``-ffast-math`` added, under
which glibc lets GCC call its vector ``exp`` where a loop vectorises.

Printed per (N, T, flags): time per gradient, nanoseconds per node-step and per
synapse-step of forward plus adjoint, and the agreement with ``eq.Adjoint``.

Usage::

    python benchmarks/c_loop_limit.py                  # N = 10, 100, 1000; T = 1e4
    python benchmarks/c_loop_limit.py --sizes 100 --steps 1000 10000 100000
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np
from adjoint_vs_jax import (
    C_NODE,
    DT,
    G_LEAK,
    G_NUDGE,
    I_S,
    N_IN,
    N_OUT,
    V_HIGH,
    V_LOW,
    V_T,
    build_network,
    conductances,
    waveforms,
)

SOURCE = r"""
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* v: (T+1) x (H+O) voltages, row per step; x: T x I inputs; y: T x O targets.
   gxh: I x H, ghy: H x O; out: gradients of the same shapes; returns the loss. */
double adjoint(int T, int I, int H, int O, double dt, double C, double gl, double Is,
               double VT, double Vlo, double Vhi, double gn, const double *x, const double *y,
               const double *gxh, const double *ghy, double *v, double *dgxh, double *dghy)
{
    const int N = H + O;
    double loss = 0.0;
    double *lam = calloc(N, sizeof(double)), *nxt = calloc(N, sizeof(double));
    double *dfdv = malloc(N * sizeof(double));
    memset(v, 0, N * sizeof(double));
    for (int n = 0; n < T; n++) {            /* forward Euler, every state from step n */
        const double *vn = v + (size_t)n * N, *xn = x + (size_t)n * I;
        double *vp = v + (size_t)(n + 1) * N;
        for (int k = 0; k < O; k++) {
            double d = vn[H + k] - y[(size_t)n * O + k];
            loss += dt * 0.5 * gn * d * d;
        }
        for (int h = 0; h < H; h++) {        /* the diodes: a loop of its own, which */
            double vh = vn[h];                /* vectorises (exp four at a time) */
            vp[h] = -gl * vh - Is * (exp((vh - Vhi) / VT) - 1.0)
                    + Is * (exp((Vlo - vh) / VT) - 1.0);
        }
        for (int h = 0; h < H; h++) {
            double vh = vn[h], i = vp[h];
            for (int a = 0; a < I; a++) i += gxh[a * H + h] * (xn[a] - vh);
            for (int k = 0; k < O; k++) i += ghy[h * O + k] * (vn[H + k] - vh);
            vp[h] = vh + dt / C * i;
        }
        for (int k = 0; k < O; k++) {
            double vk = vn[H + k], i = -gl * vk;
            for (int h = 0; h < H; h++) i += ghy[h * O + k] * (vn[h] - vk);
            vp[H + k] = vk + dt / C * i;
        }
    }
    memset(dgxh, 0, (size_t)I * H * sizeof(double));
    memset(dghy, 0, (size_t)H * O * sizeof(double));
    for (int n = T - 1; n >= 0; n--) {       /* lam holds dL/dv at step n + 1 */
        const double *vn = v + (size_t)n * N, *xn = x + (size_t)n * I;
        for (int h = 0; h < H; h++) {
            double vh = vn[h];
            dfdv[h] = -gl - Is / VT * exp((vh - Vhi) / VT) - Is / VT * exp((Vlo - vh) / VT);
        }
        for (int h = 0; h < H; h++) {        /* dL/dg += dt/C * lam_post * df/dg */
            double vh = vn[h], s = dt / C * lam[h];
            for (int a = 0; a < I; a++) dgxh[a * H + h] += s * (xn[a] - vh);
            for (int a = 0; a < I; a++) dfdv[h] -= gxh[a * H + h];
            for (int k = 0; k < O; k++) dfdv[h] -= ghy[h * O + k];
        }
        for (int k = 0; k < O; k++) {
            dfdv[H + k] = -gl;
            for (int h = 0; h < H; h++) dfdv[H + k] -= ghy[h * O + k];
        }
        for (int h = 0; h < H; h++) {
            for (int k = 0; k < O; k++) {
                double d = vn[H + k] - vn[h];
                dghy[h * O + k] += dt / C * (lam[h] * d - lam[H + k] * d);
            }
        }
        for (int j = 0; j < N; j++) nxt[j] = lam[j] * (1.0 + dt / C * dfdv[j]);
        for (int h = 0; h < H; h++)          /* the couplings' off-diagonal terms */
            for (int k = 0; k < O; k++) {
                nxt[h] += dt / C * ghy[h * O + k] * lam[H + k];
                nxt[H + k] += dt / C * ghy[h * O + k] * lam[h];
            }
        for (int k = 0; k < O; k++) nxt[H + k] += dt * gn * (vn[H + k] - y[(size_t)n * O + k]);
        double *tmp = lam; lam = nxt; nxt = tmp;
    }
    free(lam); free(nxt); free(dfdv);
    return loss;
}
"""


FLAGS = {"-O3 -march=native": ["-O3", "-march=native"],
         "-O3 -march=native -ffast-math": ["-O3", "-march=native", "-ffast-math"]}


def compile_library(directory: str, flags: list[str], name: str = "adjoint") -> ctypes.CDLL:
    src = os.path.join(directory, f"{name}.c")
    lib = os.path.join(directory, f"{name}.so")
    with open(src, "w") as f:
        f.write(SOURCE)
    subprocess.run(["gcc", *flags, "-fPIC", "-shared", src, "-o", lib, "-lm"], check=True)
    dll = ctypes.CDLL(lib)
    dll.adjoint.restype = ctypes.c_double
    dll.adjoint.argtypes = [ctypes.c_int] * 4 + [ctypes.c_double] * 8 + \
        [np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS")] * 7
    return dll


def c_gradient(dll, n: int, steps: int, x, y) -> tuple:
    g = conductances(n)
    v = np.zeros((steps + 1, n + N_OUT))
    dgxh, dghy = np.zeros((N_IN, n)), np.zeros((n, N_OUT))
    loss = dll.adjoint(steps, N_IN, n, N_OUT, DT, C_NODE, G_LEAK, I_S, V_T, V_LOW, V_HIGH,
                       G_NUDGE, np.ascontiguousarray(x), np.ascontiguousarray(y),
                       np.ascontiguousarray(g["x->h"]), np.ascontiguousarray(g["h->y"]),
                       v, dgxh, dghy)
    return loss, {"x->h": dgxh, "h->y": dghy}


def reference(n: int, steps: int, x, y) -> dict:
    """``eq.Adjoint`` on the numpy target: the check that the loop is the same arithmetic."""
    from brian2 import second, siemens, volt

    import ephys_eqprop as eq

    net = build_network(n, "numpy")
    g = eq.Adjoint().gradient(net, eq.TimeSeries(x[None] * volt, dt=DT * second),
                              eq.TimeSeries(y[None] * volt, dt=DT * second),
                              eq.losses.MSE(g_nudge=G_NUDGE * siemens))
    return {k: np.asarray(v) for k, v in g.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--steps", type=int, nargs="+", default=[10_000])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        dlls = {label: compile_library(tmp, flags, f"adjoint{k}")
                for k, (label, flags) in enumerate(FLAGS.items())}
        print("| N | T | flags | C loop per gradient (s) | ns per node-step | "
              "ns per synapse-step | vs eq.Adjoint (numpy) |")
        print("|---|---|---|---|---|---|---|")
        for n in args.sizes:
            for steps in args.steps:
                x, y = waveforms(steps)
                ref = reference(n, steps, x, y) if steps <= 10_000 else None
                for label, dll in dlls.items():
                    _, grads = c_gradient(dll, n, steps, x, y)
                    check = "—" if ref is None else f"{max(np.linalg.norm(grads[k] - ref[k]) / np.linalg.norm(ref[k]) for k in ref):.1e}"  # noqa: E501
                    times = []
                    for _ in range(args.repeats):
                        t0 = time.perf_counter()
                        c_gradient(dll, n, steps, x, y)
                        times.append(time.perf_counter() - t0)
                    sec = statistics.median(times)
                    nodes, synapses = n + N_OUT, n * (N_IN + N_OUT)
                    print(f"| {n} | {steps} | `{label}` | {sec:.4f} | "
                          f"{sec / steps / nodes * 1e9:.1f} | "
                          f"{sec / steps / synapses * 1e9:.1f} | {check} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
