"""Cost of one gradient: EP and symmetric EP against finite differences, side by side.

EP's promise (docs/physics.md, §3): the gradient of all P conductances costs 2 (one-sided) or 3
(symmetric) settled phases, against 2P for central finite differences. This script
measures wall time and settled steps of each on layered diode circuits of growing
size, in one run on this machine, and prints the ratios.

Usage::

    python benchmarks/gradient_cost.py            # sizes 4, 8, 16 hidden nodes
    python benchmarks/gradient_cost.py --quick    # smallest size only
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from brian2 import uS, volt

import ephys_eqprop as eq


def measure(est, net, x, y, loss, repeats=1):
    est.gradient(net, x, y, loss)  # warm-up: code generation
    t0 = time.perf_counter()
    for _ in range(repeats):
        g = est.gradient(net, x, y, loss)
    return (time.perf_counter() - t0) / repeats, g


def rel_error(g, ref) -> float:
    """max |g - ref| / max |ref| over all connections."""
    num = max(float(np.max(np.abs(np.asarray(g[k] - ref[k])))) for k in g)
    return num / max(float(np.max(np.abs(np.asarray(ref[k])))) for k in g)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--target", default="numpy", choices=["numpy", "cython"])
    args = ap.parse_args(argv)
    sizes = [4] if args.quick else [4, 8, 16]
    rng = np.random.default_rng(0)
    loss = eq.losses.MSE(g_nudge=10 * uS)
    print(f"{'hidden':>6} {'P':>5} {'exact (s)':>10} {'EP (s)':>8} {'symEP (s)':>9} "
          f"{'FD (s)':>8} {'FD/symEP':>9} {'symEP err':>10} {'FD err':>9}")
    for h in sizes:
        circ = eq.layered(3, [h], 2, bias=1 * volt, g_init=20 * uS, rng=h)
        net = circ.build(batch=4, target=args.target)
        x = rng.uniform(-1, 1, (4, 3)) * volt
        y = rng.uniform(-0.1, 0.1, (4, 2)) * volt
        P = sum(np.asarray(v).size for v in net.get_params().values())
        t_ex, g_ex = measure(eq.ExactSteadyState(), net, x, y, loss)
        t_ep, _ = measure(eq.EP(beta=1e-3), net, x, y, loss)
        t_sym, g_sym = measure(eq.SymmetricEP(beta=1e-3), net, x, y, loss)
        t_fd, g_fd = measure(eq.FiniteDifference(eps=1e-3), net, x, y, loss)

        print(f"{h:>6} {P:>5} {t_ex:>10.3f} {t_ep:>8.3f} {t_sym:>9.3f} {t_fd:>8.2f} "
              f"{t_fd / t_sym:>9.1f} {rel_error(g_sym, g_ex):>10.1e} {rel_error(g_fd, g_ex):>9.1e}")


if __name__ == "__main__":
    main()
