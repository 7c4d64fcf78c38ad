"""Free and nudged runs of a static circuit, from the same state."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from brian2 import Quantity, second, volt

from .elements.base import check_quantity

__all__ = ["Settle", "SettleReport", "PhaseResult", "SettleWarning", "run_static_phase"]


class SettleWarning(RuntimeWarning):
    """A phase stopped at its step cap before meeting its settle tolerance."""


@dataclass(frozen=True, kw_only=True)
class Settle:
    """When a static phase counts as settled.

    Parameters
    ----------
    tol : Quantity, volt
        Stop when no node voltage changes by more than ``tol`` over one check
        interval (``check_every`` steps), i.e. ``max |dv/dt| < tol / (check_every dt)``.
    check_every : int
        Steps between two checks.
    max_steps : int
        Cap on the number of steps; the phase then stops and reports that it did
        not converge (and warns).
    damping : float
        Relaxation factor ρ in (0, 1]: each step moves every node ``ρ`` of the way
        to the voltage that satisfies its own current law (damped Jacobi / Newton).
    """

    tol: Quantity = field(default_factory=lambda: 1e-11 * volt)
    check_every: int = 20
    max_steps: int = 20000
    damping: float = 0.9

    def __post_init__(self):
        check_quantity("Settle(tol=...)", self.tol, volt, nonnegative=True, allow_array=False)
        if float(self.tol) <= 0:
            raise ValueError(f"Settle(tol=...) must be positive; got {self.tol}.")
        for name in ("check_every", "max_steps"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
                raise ValueError(f"Settle({name}=...) must be a positive integer; got {val!r}.")
        if not 0 < self.damping <= 1:
            raise ValueError(f"Settle(damping=...) must lie in (0, 1]; got {self.damping}.")


@dataclass
class SettleReport:
    """How a phase ended.

    Attributes
    ----------
    converged : bool
        Whether the tolerance was met (otherwise the step cap stopped it).
    steps : int
        Steps run.
    max_dv : float
        Largest change of a node voltage over the last check interval (volt).
    max_dvdt : float
        ``max_dv`` divided by the interval's simulated time (volt/second).
    """

    converged: bool
    steps: int
    max_dv: float
    max_dvdt: float

    def __str__(self) -> str:
        why = "tolerance met" if self.converged else "step cap reached"
        return (f"settled after {self.steps} steps ({why}; max |dv| over last check "
                f"{self.max_dv:.2e} V, max |dv/dt| {self.max_dvdt:.2e} V/s)")


@dataclass
class PhaseResult:
    """State and local quantities at the end of a static phase."""

    state: dict
    local: dict
    v_out: np.ndarray
    report: SettleReport
    extra: dict = field(default_factory=dict)


class _SettleMonitor:
    """A Brian2 network operation that stops a run once the node voltages settle."""

    def __init__(self, net):
        from brian2 import NetworkOperation

        self.net = net
        self.active = False
        self.tol = 0.0
        self.prev = None
        self.max_dv = np.inf
        self.converged = False
        self.op = None
        self._NetworkOperation = NetworkOperation

    def install(self, check_every: int):
        if self.op is not None and self.check_every == check_every:
            return
        if self.op is not None:
            self.net.network.remove(self.op)
        self.check_every = check_every
        self.op = self._NetworkOperation(self._check, dt=self.net.dt, when="end",
                                         name="settle_check*")
        self.net.network.add(self.op)

    def _state(self):
        return np.concatenate([self.net.groups[n].variables["v"].get_value()
                               for n in self.net.circuit.nodes])

    def reset(self, tol: float):
        self.tol, self.prev, self.max_dv, self.converged = tol, self._state(), np.inf, False
        self.active = True
        self.count = 0

    def _check(self):
        if not self.active:
            return
        self.count += 1
        if self.count % self.check_every:
            return
        cur = self._state()
        self.max_dv = float(np.max(np.abs(cur - self.prev))) if cur.size else 0.0
        self.prev = cur.copy()
        if not np.isfinite(self.max_dv):
            self.net.network.stop()
        elif self.max_dv < self.tol:
            self.converged = True
            self.net.network.stop()


def _settle(net, settle: Settle) -> SettleReport:
    mon = getattr(net, "_settle_monitor", None)
    if mon is None:
        mon = net._settle_monitor = _SettleMonitor(net)
    mon.install(settle.check_every)
    dt = float(net.dt)
    period = settle.check_every * dt
    mon.reset(float(settle.tol))
    t0 = float(net.network.t)
    try:
        net.run(settle.max_steps * dt * second)
    finally:
        mon.active = False
    steps = int(round((float(net.network.t) - t0) / dt))
    if not np.isfinite(mon.max_dv) and steps > settle.check_every:
        raise FloatingPointError(
            "Node voltages became NaN or infinite during a static phase. Lower "
            "Settle(damping=...) or check element parameters (diode V_T, I_s)."
        )
    report = SettleReport(mon.converged, steps, mon.max_dv, mon.max_dv / period)
    if not mon.converged:
        warnings.warn(f"Static phase did not settle: {report}. Raise Settle(max_steps=...) or "
                      "loosen Settle(tol=...).", SettleWarning, stacklevel=3)
    return report


def run_static_phase(net, beta: float, settle: Settle, start: dict | None) -> PhaseResult:
    """Run one static phase of ``net`` (inputs, targets and loss already set).

    Parameters
    ----------
    net : CircuitNetwork
    beta : float
        Nudge strength (0 for the free phase).
    settle : Settle
    start : dict or None
        Starting node voltages (from a previous phase's ``state``), ``None`` for zero.

    Returns
    -------
    PhaseResult
    """
    net.set_relax(True)
    for n in net.circuit.nodes:
        net.groups[n].tau_relax = net.dt / settle.damping
    if net.loss is not None:
        net.loss.set_beta(net, beta)
    net.set_state(start)
    report = _settle(net, settle)
    v_out = np.asarray(net.voltages(net.circuit.output)) if net.circuit.output else None
    return PhaseResult(net.get_state(), net.local_quantities(), v_out, report)
