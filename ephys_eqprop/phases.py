"""Free and nudged runs of a static circuit, from the same state."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from brian2 import Quantity, volt

from . import interrupts as _interrupts
from .elements.base import check_quantity

__all__ = ["Settle", "SettleReport", "PhaseRequest", "PhaseResult", "SettleWarning",
           "run_program", "run_static_phase"]


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
    method : {"relax", "newton"}
        How a phase reaches its fixed point. ``"relax"``: the Brian2 objects step the
        circuit's relaxation dynamics until it settles (the physical picture: the
        circuit finds its own fixed point). ``"newton"``: Newton–Raphson on Kirchhoff's
        current law for every node at once, as SPICE finds an operating point
        (``.op``), in numpy; ``tol`` then bounds the last Newton step, ``max_steps`` the
        iterations (``check_every`` and ``damping`` are not used). The same fixed point
        in a few iterations instead of hundreds of steps; the estimators' formulas, and
        their bias in β, are unchanged. The Brian2 objects are left at each phase's
        fixed point, but do not run (monitors see no relaxation).
    """

    tol: Quantity = field(default_factory=lambda: 1e-11 * volt)
    check_every: int = 20
    max_steps: int = 20000
    damping: float = 0.9
    method: str = "relax"

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
        if self.method not in ("relax", "newton"):
            raise ValueError(f"Settle(method=...) must be 'relax' or 'newton'; got "
                             f"{self.method!r}.")


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
    """State and local quantities at the end of a static phase.

    ``local`` is empty when the phase's request said ``local=False``.
    """

    state: dict
    local: dict
    v_out: np.ndarray
    report: SettleReport
    extra: dict = field(default_factory=dict)


@dataclass
class PhaseRequest:
    """What a phase program asks for next: settle with nudge ``beta`` from ``start``.

    ``local``: whether the result should carry the local quantities (an estimator that
    does not use a phase's saves their evaluation, one per parameter and sample).
    """

    beta: float
    start: dict | None
    settle: Settle
    local: bool = True


#: step budget of one phase program (Brian2 warns about runs beyond 2**40 steps)
_MAX_STEPS = 2**32


class _PhaseDriver:
    """Runs phase programs inside one Brian2 run.

    A *phase program* is a generator that yields :class:`PhaseRequest` objects and
    receives the :class:`PhaseResult` of each; between phases it may change
    inputs, targets and parameters (in place). A Brian2 network operation checks
    the settle criterion every ``check_every`` steps; when a phase ends it hands
    the result to the program and sets up the next phase, without leaving the
    run. One run per program instead of one per phase saves Brian2's per-run
    set-up cost, which dominates small circuits.
    """

    def __init__(self, net):
        from brian2 import NetworkOperation

        self.net = net
        self.program = None
        self.op = NetworkOperation(self._step, dt=net.dt, when="end", name="phase_driver*")
        net.own(self.op)
        net.network.add(self.op)

    def _state(self):
        return np.concatenate([self.net.groups[n].variables["v"].get_value()
                               for n in self.net.circuit.nodes])

    def _begin(self, req: PhaseRequest):
        if not isinstance(req, PhaseRequest):
            raise TypeError(f"A phase program must yield PhaseRequest objects; got {req!r}.")
        net = self.net
        net.set_relax(True, tau_relax=float(net.dt) / req.settle.damping)
        if net.loss is not None:
            net.loss.set_beta(net, req.beta)
        net.set_state(req.start)
        self.req, self.count, self.prev = req, 0, self._state()
        if net.synaptic_monitors:
            from .monitors import close_static, record_static

            close_static(net)
            self.label = "free" if req.beta == 0 else f"nudged (β={req.beta:+g})"
            record_static(net, self.label, 0, net.local_quantities())

    def _finish(self, converged: bool, max_dv: float) -> PhaseResult:
        net, settle = self.net, self.req.settle
        period = settle.check_every * float(net.dt)
        report = SettleReport(converged, self.count, max_dv, max_dv / period)
        if not converged:
            warnings.warn(f"Static phase did not settle: {report}. Raise Settle(max_steps=...) "
                          "or loosen Settle(tol=...).", SettleWarning, stacklevel=2)
        v_out = np.asarray(net.voltages(net.circuit.output)) if net.circuit.output else None
        local = net.local_quantities() if self.req.local else {}
        return PhaseResult(net.get_state(), local, v_out, report)

    def _advance(self, result):
        try:
            req = self.program.send(result)
        except StopIteration as stop:
            self.value, self.program = stop.value, None
            self.net.network.stop()
            return
        self._begin(req)

    def _step(self):
        if self.program is None:
            return
        if _interrupts._state["requested"]:  # Ctrl-C: stop at the end of this step
            self.net.network.stop()
            return
        try:
            self.count += 1
            settle = self.req.settle
            if self.count % settle.check_every and self.count < settle.max_steps:
                return
            result = self._check()
            if result is not None:
                self._advance(result)
        except BaseException as ex:  # handed back to run_program, raised there
            self.error, self.program = ex, None
            self.net.network.stop()

    def _check(self) -> PhaseResult | None:
        """The settle check after ``self.count`` steps: the phase's result if it ended."""
        settle = self.req.settle
        cur = self._state()
        max_dv = float(np.max(np.abs(cur - self.prev))) if cur.size else 0.0
        self.prev = cur
        if self.net.synaptic_monitors:
            from .monitors import record_static

            record_static(self.net, self.label, self.count, self.net.local_quantities())
        if not np.isfinite(max_dv):
            raise FloatingPointError(
                "Node voltages became NaN or infinite during a static phase. Lower "
                "Settle(damping=...) or check element parameters (diode V_T, I_s)."
            )
        converged = max_dv < float(settle.tol) and self.count % settle.check_every == 0
        if converged or self.count >= settle.max_steps:
            return self._finish(converged, max_dv)
        return None

    def run(self, program, req):
        self.error, self.value = None, None
        self.program = program
        self._begin(req)
        try:
            with self.net.static_objects_only():
                self.net.run(_MAX_STEPS * self.net.dt)
            if self.program is not None and self.error is None:
                raise RuntimeError(f"A phase program ran {_MAX_STEPS} steps without finishing.")
        finally:
            self.program = None
        if self.error is not None:
            raise self.error
        return self.value


class _ChunkedDriver(_PhaseDriver):
    """Runs phase programs as Brian2 runs of ``check_every`` steps, checking in between.

    For networks whose runs execute as generated programs (``cpp_standalone``), which
    cannot call back into Python at every step: each stretch between two settle
    checks is one run (one program, compiled once for all phases, batches and
    epochs: only values change between its runs), and the check between them is the
    one :class:`_PhaseDriver` makes, at the same steps, so both drivers end every
    phase at the same step with the same state.
    """

    def __init__(self, net):
        self.net = net
        self.program = None

    def run(self, program, req):
        net = self.net
        with net.static_objects_only():
            while True:
                self._begin(req)
                settle = req.settle
                result = None
                while result is None:
                    chunk = min(settle.check_every, settle.max_steps - self.count)
                    net.run(chunk * net.dt)  # raises KeyboardInterrupt after a Ctrl-C
                    self.count += chunk
                    result = self._check()
                try:
                    req = program.send(result)
                except StopIteration as stop:
                    return stop.value


class _NewtonDriver:
    """Runs phase programs by solving each phase's fixed point with Newton's method.

    At every phase the network's inputs, current clamps, constant currents, targets and
    parameters are read from its Brian2 objects (a program may change them between
    phases, as a training epoch does); each phase's solution is written back into the
    node groups, so that local quantities, ``get_state`` and the user's view are those
    of the settled circuit.
    """

    def __init__(self, net):
        self.net = net

    def _sources(self, ss):
        net, circ, B = self.net, self.net.circuit, self.net.batch
        xs = np.zeros((B, 0))
        if circ.inputs:
            xs = np.concatenate(
                [np.asarray(net.groups[n].variables["v"].get_value()).reshape(B, spec.size)
                 for n, spec in circ.inputs.items()], axis=1)
        inj = np.zeros((B, ss.N))
        for spec in circ.currents.values():
            vals = np.asarray(net.groups[spec.target].variables[spec.variable].get_value())
            inj[:, ss.offsets[spec.target] + np.arange(spec.n)] += vals.reshape(B, spec.n)
        return xs, inj

    def _phase(self, req: PhaseRequest) -> PhaseResult:
        from .steady_state import SteadyState

        if not isinstance(req, PhaseRequest):
            raise TypeError(f"A phase program must yield PhaseRequest objects; got {req!r}.")
        net, settle = self.net, req.settle
        ss = SteadyState(net)
        xs, inj = self._sources(ss)
        yv = None
        if req.beta:
            yv = np.asarray(net._loss_objects[0].variables["y"].get_value()).reshape(
                net.batch, -1)
        net.set_state(req.start)  # the starting point: a previous phase's, or each v0
        v0 = np.concatenate([v.reshape(net.batch, -1) for v in net.get_state().values()],
                            axis=1)
        v, iters, last, converged = ss.newton(
            xs, inj, beta=req.beta, loss=net.loss, yv=yv, v0=v0, tol=float(settle.tol),
            max_iter=settle.max_steps)
        if not np.isfinite(last):
            raise FloatingPointError(
                "Node voltages became NaN or infinite in a Newton phase; check element "
                "parameters (diode V_T, I_s) or use Settle(method='relax').")
        net.set_state({n: v[:, off:off + spec.n].ravel()
                       for (n, spec), off in zip(net.circuit.nodes.items(),
                                                 ss.offsets.values(), strict=True)})
        report = SettleReport(converged, iters, last, last / float(net.dt))
        if not converged:
            warnings.warn(f"Newton phase did not converge: {report}. Raise "
                          "Settle(max_steps=...) or loosen Settle(tol=...).", SettleWarning,
                          stacklevel=3)
        v_out = np.asarray(net.voltages(net.circuit.output)) if net.circuit.output else None
        if net.synaptic_monitors:
            from .monitors import close_static, record_static

            close_static(net)
            label = "free" if req.beta == 0 else f"nudged (β={req.beta:+g})"
            record_static(net, label, iters, net.local_quantities())
        local = net.local_quantities() if req.local else {}
        return PhaseResult(net.get_state(), local, v_out, report)

    def run(self, program, req):
        try:
            while True:
                req = program.send(self._phase(req))
        except StopIteration as stop:
            return stop.value


def run_program(net, program):
    """Run a phase program (a generator of :class:`PhaseRequest`).

    Phases relax the Brian2 objects inside one Brian2 run (on ``cpp_standalone``: one
    run, a generated program, per ``check_every`` steps), or, if the program's first
    request says ``Settle(method="newton")``, are solved by Newton's method.

    Returns
    -------
    object
        The program's return value.
    """
    try:
        first = next(program)
    except StopIteration as stop:
        return stop.value
    if isinstance(first, PhaseRequest) and first.settle.method == "newton":
        return _NewtonDriver(net).run(program, first)
    if net.standalone:  # generated programs: no Python between steps
        return _ChunkedDriver(net).run(program, first)
    drv = getattr(net, "_phase_driver", None)
    if drv is None:
        drv = net._phase_driver = _PhaseDriver(net)
    return drv.run(program, first)


def run_static_phase(net, beta: float, settle: Settle, start: dict | None) -> PhaseResult:
    """Run one static phase of ``net`` (inputs, targets and loss already set).

    Parameters
    ----------
    net : CircuitNetwork
    beta : float
        Nudge strength (0 for the free phase).
    settle : Settle
    start : dict or None
        Starting node voltages (from a previous phase's ``state``), ``None`` for each
        node model's ``v0`` (0 V unless set).

    Returns
    -------
    PhaseResult
    """

    def one():
        return (yield PhaseRequest(beta, start, settle))

    return run_program(net, one())
