"""Running circuits for the validation cases: physical transients and settled steady states.

Both go through the package's own machinery only: :meth:`Circuit.build`, the
Brian2 network it returns, and the static phases of :mod:`ephys_eqprop.phases`.
"""

from __future__ import annotations

import numpy as np
from brian2 import Quantity, StateMonitor, second, volt

import ephys_eqprop as eq
from ephys_eqprop.phases import run_static_phase

__all__ = ["STEADY_SETTLE", "fit_loglog_slope", "relative_error", "settle", "transient"]

#: Settling criterion of the steady-state cases: stop when no node moves by more than
#: 1e-13 V over a check interval of 20 steps. The damped Jacobi/Newton relaxation
#: contracts the error geometrically, so the remaining distance to the fixed point is of
#: the order of this change divided by the contraction per interval: far below the
#: 1e-6 relative tolerance of the steady-state cases for node voltages of order 1 V.
STEADY_SETTLE = eq.Settle(tol=1e-13 * volt, max_steps=400_000)


def relative_error(sim, ref) -> float:
    """Norm-wise relative error ``max|sim - ref| / max|ref|`` over all entries.

    Parameters
    ----------
    sim, ref : array_like or Quantity, same shape and dimensions
        Simulated and reference values (a whole waveform, or all node voltages).

    Returns
    -------
    float
        Relative to the largest reference value, so that entries that are zero
        or nearly so (a waveform's start, a balanced bridge) do not blow it up.
    """
    sim = np.asarray(sim, dtype=float)
    ref = np.asarray(ref, dtype=float)
    if sim.shape != ref.shape:
        raise ValueError(f"sim and ref must have the same shape; got {sim.shape} and "
                         f"{ref.shape}.")
    scale = float(np.max(np.abs(ref)))
    err = float(np.max(np.abs(sim - ref)))
    return err / scale if scale > 0 else (0.0 if err == 0 else float("inf"))


def fit_loglog_slope(x, y) -> tuple[float, float]:
    """Least-squares fit ``log y = p log x + log c``.

    Returns
    -------
    tuple (p, c)
        The slope (order) and the prefactor.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    p, logc = np.polyfit(np.log(x), np.log(y), 1)
    return float(p), float(np.exp(logc))


def settle(net, x, *, settle_opts: eq.Settle = STEADY_SETTLE) -> dict:
    """Settle a built network's static phase (no nudge) from zero node voltages.

    Parameters
    ----------
    net : CircuitNetwork
    x : Quantity, shape (n_samples, n_in), volt; or dict by input name
        Input source voltages (one row per batch copy).
    settle_opts : Settle
        Settling criterion.

    Returns
    -------
    dict of str to numpy.ndarray, shape (batch, n), volt
        Settled node voltages by group.

    Raises
    ------
    RuntimeError
        If the phase stopped at its step cap.
    """
    if x is not None:
        net.set_inputs(x)
    res = run_static_phase(net, 0.0, settle_opts, None)
    if not res.report.converged:
        raise RuntimeError(f"The static phase did not settle: {res.report}.")
    return {g: np.asarray(net.voltages(g)) for g in net.circuit.nodes}


def transient(net, x, v0: dict | None, duration: Quantity) -> tuple[np.ndarray, dict]:
    """Run the physical dynamics of a built network from ``v0`` with inputs ``x``.

    Parameters
    ----------
    net : CircuitNetwork
        A freshly built network (a Brian2 ``StateMonitor`` is added to it).
    x : Quantity, shape (n_samples, n_in), volt; or dict by input name
        Source voltages, switched on at ``t = 0`` and held.
    v0 : dict of str to array, volt, or None
        Initial node voltages by group (flat, ``batch * n``), ``None`` for zero.
    duration : Quantity, second

    Returns
    -------
    t : numpy.ndarray, shape (n_t,), second
        Recording times ``t_n = n dt`` (the monitor records at the start of a step).
    v : dict of str to numpy.ndarray, shape (n_t, batch, n), volt
        Node voltages ``v_n`` at ``t_n``, by group.
    """
    net.set_relax(False)
    net.set_inputs(x)
    net.set_state(v0)
    mons = {g: StateMonitor(net.groups[g], "v", record=True) for g in net.circuit.nodes}
    net.network.add(*mons.values())
    net.run(duration)
    t = np.asarray(next(iter(mons.values())).t / second)
    v = {g: np.asarray(m.v / volt).T.reshape(len(t), net.batch, -1) for g, m in mons.items()}
    return t, v
