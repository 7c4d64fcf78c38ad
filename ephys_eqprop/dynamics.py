"""Time-varying runs: input and target waveforms, trajectories, integrated losses.

A time-varying run drives the circuit's inputs with waveforms (Brian2
``TimedArray`` objects, one column per source and batch copy), integrates the
physical dynamics (``relax = 0``) from a zero state, and records what the
estimators need: node voltages and branch states (for the adjoint), the output
voltages (for the loss), or only the per-synapse time integrals of the local
quantities (for Lagrangian EP, memory O(P)).

Time grid: the run has ``N = duration / dt`` steps; step ``n`` starts at
``t_n = n dt`` from the state ``x_n``, with inputs ``x(t_n)`` and targets
``y(t_n)``. The loss is the left Riemann sum ``C = Σ_n dt m_n c(z_n, y_n)``
(joule), ``m_n`` the loss window; it is the quantity every estimator
differentiates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from brian2 import Quantity, StateMonitor, TimedArray, get_dimensions, second
from brian2.units.fundamentalunits import DIMENSIONLESS

from .elements.base import check_quantity
from .errors import CircuitError

__all__ = ["TimeSeries", "Trajectory", "DynamicProblem", "prepare", "simulate"]


class TimeSeries:
    """Waveforms sampled on a regular time grid, one per sample of a batch.

    Parameters
    ----------
    values : Quantity or array_like, shape (n_samples, n_steps, n_channels)
        Value of each channel during ``[k dt, (k + 1) dt)`` (held constant over
        the interval, as a Brian2 ``TimedArray``). Inputs are voltages; targets
        have the units the loss expects (volt for MSE). A 2-D array
        ``(n_steps, n_channels)`` is one sample.
    dt : Quantity, second
        Sampling interval; a whole multiple of the simulation time step.

    Examples
    --------
    >>> from brian2 import ms, volt
    >>> t = np.arange(200) * 0.05 * ms
    >>> x = TimeSeries(np.sin(2 * np.pi * t / (5 * ms))[None, :, None] * volt, dt=0.05 * ms)
    >>> x.n_samples, x.n_steps, x.n_channels
    (1, 200, 1)
    """

    def __init__(self, values, dt):
        self.dt = check_quantity("TimeSeries(dt=...)", dt, second, allow_array=False)
        if float(self.dt) <= 0:
            raise ValueError(f"TimeSeries(dt=...) must be positive; got {dt}.")
        arr = np.asarray(values)
        if arr.ndim == 2:
            arr = arr[None]
            values = values[None] if isinstance(values, Quantity) else arr
        if arr.ndim != 3:
            raise ValueError("TimeSeries values must have shape (n_samples, n_steps, n_channels); "
                             f"got {np.shape(values)}.")
        if arr.shape[1] == 0:
            raise ValueError("TimeSeries values have no time steps.")
        if np.issubdtype(arr.dtype, np.number) and not np.all(np.isfinite(arr)):
            raise ValueError("TimeSeries values contain NaN or infinite entries.")
        self.values = values
        self.dim = get_dimensions(values) if isinstance(values, Quantity) else DIMENSIONLESS

    @property
    def n_samples(self) -> int:
        return int(np.shape(self.values)[0])

    @property
    def n_steps(self) -> int:
        return int(np.shape(self.values)[1])

    @property
    def n_channels(self) -> int:
        return int(np.shape(self.values)[2])

    @property
    def duration(self) -> Quantity:
        """``n_steps * dt``."""
        return self.n_steps * self.dt

    def __len__(self) -> int:
        return self.n_samples

    def __getitem__(self, idx) -> TimeSeries:
        """Select samples (first axis), keeping the time grid."""
        vals = self.values[idx]
        if np.ndim(vals) == 2:
            vals = vals[None]
        return TimeSeries(vals, self.dt)

    def __repr__(self) -> str:
        return (f"TimeSeries(n_samples={self.n_samples}, n_steps={self.n_steps}, "
                f"n_channels={self.n_channels}, dt={self.dt!r})")


def operation(group, code: str, *, when: str = "start", order: int = -1,
              name: str = "operation*"):
    """A Brian2 code runner on ``group`` for one run, not kept by the group.

    Unlike ``group.run_regularly``, the runner is not added to the group's
    contained objects: removing it from the network removes it for good. The
    default slot (``start``, order -1) writes the waveforms of step ``n`` before
    monitors and accumulators (order 0) read the state.
    """
    from brian2.groups.group import CodeRunner

    return CodeRunner(group, "stateupdate", code=code, when=when, order=order, name=name,
                      clock=group.clock)


def _steps_per_sample(series: TimeSeries, dt: float, what: str) -> int:
    ratio = float(series.dt) / dt
    k = int(round(ratio))
    if k < 1 or abs(ratio - k) > 1e-9 * max(ratio, 1):
        raise CircuitError(
            f"{what} is sampled every {series.dt} but the network's time step is {dt * second}; "
            "the sampling interval must be a whole multiple of the time step.")
    return k


@dataclass
class DynamicProblem:
    """Inputs, targets and loss window of a time-varying run, checked and padded.

    Attributes
    ----------
    x : numpy.ndarray, shape (batch, n_x, n_src)
        Source voltages (volt) of every batch copy (fillers repeat sample 0),
        including fixed bias sources.
    x_dt : float
        Sampling interval of ``x`` (seconds).
    y : numpy.ndarray, shape (batch, n_y, K) or None
        Prepared targets.
    y_dt : float
    n_steps : int
        Simulation steps ``N``.
    mask : numpy.ndarray, shape (N,)
        Loss window weights.
    weights : numpy.ndarray, shape (batch,)
        ``1/n_samples`` for real samples, 0 for fillers.
    """

    x: np.ndarray
    x_dt: float
    y: np.ndarray | None
    y_dt: float
    n_steps: int
    mask: np.ndarray
    weights: np.ndarray

    def y_at_steps(self, dt: float) -> np.ndarray:
        """Targets at each simulation step, shape (N, batch, K)."""
        k = int(round(self.y_dt / dt))
        idx = np.minimum(np.arange(self.n_steps) // k, self.y.shape[1] - 1)
        return np.transpose(self.y[:, idx], (1, 0, 2))


def _as_series(x, what):
    if not isinstance(x, TimeSeries):
        raise TypeError(f"{what} must be an ephys_eqprop.TimeSeries for a time-varying run; "
                        f"got {type(x).__name__}.")
    return x


def prepare(net, x, y=None, loss=None) -> DynamicProblem:
    """Check and pad the inputs, targets and loss window of a time-varying run.

    Parameters
    ----------
    net : CircuitNetwork
    x : TimeSeries
        Input waveforms, ``n_channels`` = the circuit's data inputs.
    y : TimeSeries, optional
        Targets, same samples and duration as ``x``.
    loss : Loss, optional

    Returns
    -------
    DynamicProblem
    """
    dt = float(net.dt)
    x = _as_series(x, "x")
    kx = _steps_per_sample(x, dt, "x")
    S, Tx = x.n_samples, x.n_steps
    if S > net.batch:
        raise CircuitError(f"x has {S} samples but the network was built with batch="
                           f"{net.batch}; build with a larger batch or split the data.")
    flat = x.values.reshape((S * Tx, x.n_channels))
    names = net.circuit.data_inputs
    n_data = sum(net.circuit.inputs[n].n for n in names)
    if x.n_channels != n_data:
        raise CircuitError(f"x has {x.n_channels} channels but the circuit's data inputs "
                           f"{names} take {n_data} voltages.")
    if len(names) > 1:  # channels in the order the inputs were added
        parts, off = {}, 0
        for n in names:
            parts[n] = flat[:, off:off + net.circuit.inputs[n].n]
            off += net.circuit.inputs[n].n
        flat = parts
    src = net.circuit.source_values(flat).reshape(S, Tx, -1)
    src = np.concatenate([src, np.repeat(src[:1], net.batch - S, 0)])
    n_steps = Tx * kx
    w = np.zeros(net.batch)
    w[:S] = 1.0 / S
    y_arr, y_dt, mask = None, dt, np.ones(n_steps)
    if y is not None:
        if loss is None:
            raise TypeError("Targets need a loss.")
        y = _as_series(y, "y")
        ky = _steps_per_sample(y, dt, "y")
        if y.n_samples != S:
            raise CircuitError(f"x has {S} samples but y has {y.n_samples}; give one target "
                               "waveform per input waveform.")
        if y.n_steps * ky != n_steps:
            raise CircuitError(
                f"x lasts {x.duration} ({Tx} samples of {x.dt}) but y lasts {y.duration} "
                f"({y.n_steps} samples of {y.dt}); inputs and targets must cover the same "
                "time.")
        K = net.circuit.n_outputs
        vals = y.values
        flat_y = vals.reshape((S * y.n_steps,) + tuple(np.shape(vals)[2:]))
        if np.ndim(flat_y) == 2 and np.shape(flat_y)[1] == 1 and K != 1 and \
                loss.integer_targets:
            flat_y = np.asarray(flat_y)[:, 0].astype(int)
        prepared = loss.prepare_targets(flat_y, K).reshape(S, y.n_steps, K)
        y_arr = np.concatenate([prepared, np.repeat(prepared[:1], net.batch - S, 0)])
        y_dt = float(y.dt)
    if loss is not None:
        mask = loss.mask(n_steps, dt)
    return DynamicProblem(src, float(x.dt), y_arr, y_dt, n_steps, mask, w)


@dataclass
class Trajectory:
    """What a time-varying run recorded.

    Attributes
    ----------
    v : dict of str to numpy.ndarray, shape (N + 1, size)
        Voltages of each node group and input (Brian2 index order ``b * n + k``)
        at ``t_0 .. t_N`` (volt).
    states : dict of (str, str) to numpy.ndarray, shape (N + 1, n_syn * batch)
        Branch states by (connection, state name).
    node_states : dict of (str, str) to numpy.ndarray, shape (N + 1, n * batch)
        Node-element states by (node group, state variable).
    integrals : dict of str to numpy.ndarray, shape (batch, size)
        Time integrals of the local quantities (Lagrangian EP) by parameter name,
        if accumulated.
    v_out : numpy.ndarray, shape (N, batch, n_out)
        Output voltages at ``t_0 .. t_{N-1}``.
    """

    v: dict = field(default_factory=dict)
    states: dict = field(default_factory=dict)
    node_states: dict = field(default_factory=dict)
    integrals: dict = field(default_factory=dict)
    v_out: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        """Memory held by the recorded voltages and states."""
        return sum(a.nbytes for d in (self.v, self.states, self.node_states) for a in d.values())


#: No circuit of this package holds node voltages of a megavolt: beyond it a run has
#: diverged (forward Euler's growth factor per step exceeds 1).
_V_DIVERGED = 1e6


def _check_not_diverged(net, dt: float) -> None:
    """Raise a clear error if a run's node voltages blew up (unstable time step), or a
    state left the interval it is declared to stay in (a gate outside [0, 1]).

    A diverging run grows until its end (or overflows to inf / NaN), so the final
    voltages tell.
    """
    final = np.concatenate([np.asarray(net.groups[name].variables["v"].get_value())
                            for name in net.circuit.nodes])
    worst = float(np.max(np.abs(final))) if np.all(np.isfinite(final)) else np.inf
    if worst > _V_DIVERGED:
        raise FloatingPointError(
            f"The simulation diverged: node voltages reached {worst:.3g} V. Forward Euler "
            "is stable only while dt stays below twice the fastest time constant of the "
            f"circuit (at a node, about C / its total conductance); dt = {dt:.3g} s. "
            "Reduce dt, or bound the conductances (eq.Bounds) so that C / g_total "
            "stays above dt / 2.")


def _check_state_bounds(name: str, values: np.ndarray, bounds, dt: float) -> None:
    """Raise if a recorded state left its declared interval (or is not finite)."""
    if bounds is None and np.all(np.isfinite(values)):
        return
    lo, hi = (-np.inf, np.inf) if bounds is None else (float(bounds[0]), float(bounds[1]))
    span = hi - lo if np.isfinite(hi - lo) else 1.0
    tol = 1e-9 * span
    bad = ~np.isfinite(values) | (values < lo - tol) | (values > hi + tol)
    if np.any(bad):
        step = int(np.argmax(np.any(bad.reshape(len(values), -1), axis=1)))
        got = values.reshape(len(values), -1)[step]
        got = got[~np.isfinite(got) | (got < lo - tol) | (got > hi + tol)][0]
        raise FloatingPointError(
            f"State {name!r} left its interval [{lo:g}, {hi:g}] at step {step} (t = "
            f"{step * dt:.4g} s; value {got:.4g}): the time step dt = {dt:.3g} s is too large "
            f"for the fastest rate of the circuit. Reduce dt (e.g. to {dt / 4:.3g} s).")


def simulate(net, prob: DynamicProblem, *, loss=None, beta: float = 0.0, record: bool = False,
             accumulate: bool = False) -> Trajectory:
    """Run the physical circuit through the waveforms of ``prob`` from a zero state.

    Parameters
    ----------
    net : CircuitNetwork
    prob : DynamicProblem
    loss : Loss, optional
        Needed for a nudge (``beta != 0``).
    beta : float
        Nudge strength: the current ``-β m(t) ∂c/∂v`` flows into the outputs.
    record : bool
        Record every node voltage and branch state (for the adjoint).
    accumulate : bool
        Accumulate ``∫ ∂E/∂θ dt`` in every synapse that has a local quantity.

    Returns
    -------
    Trajectory

    Raises
    ------
    FloatingPointError
        If node voltages diverge (beyond a megavolt, or not finite): the time step is
        outside forward Euler's stable range for the circuit's conductances.
    """
    circ = net.circuit
    dt = float(net.dt)
    N = prob.n_steps
    net.set_relax(False)
    t0 = float(net.network.t)
    ns = {"t_start": t0 * second}
    added = []
    # inputs (their values at t = 0 set first: branch states may start from them)
    off = 0
    for name, spec in circ.inputs.items():
        cols = prob.x[:, :, off:off + spec.size]  # (B, Tx, size)
        off += spec.size
        net.groups[name].variables["v"].set_value(cols[:, 0].ravel())
        arr = np.transpose(cols, (1, 0, 2)).reshape(cols.shape[1], -1)
        key = f"ta_x_{name}"
        ns[key] = TimedArray(arr * 1.0, dt=prob.x_dt * second, name=f"{key}*")
        grp = net.groups[name]
        added.append(operation(grp, f"v = {key}(t - t_start, i)*volt", when="start",
                                       name=f"drive_{name}*"))
    net.reset_state()
    # loss: targets, window and nudge strength
    if loss is not None:
        net.attach_loss(loss)
        R = net._loss_objects[0]
        loss.set_beta(net, beta)
        if prob.y is not None:
            arr = np.transpose(prob.y, (1, 0, 2)).reshape(prob.y.shape[1], -1)
            ns["ta_y"] = TimedArray(arr, dt=prob.y_dt * second, name="ta_y*")
            unit = "" if loss._y_unit == "1" else f"*{loss._y_unit}"
            ns["ta_m"] = TimedArray(prob.mask, dt=dt * second, name="ta_m*")
            added.append(operation(R, "m = ta_m(t - t_start)\n"
                                         f"y = ta_y(t - t_start, i){unit}", when="start",
                                         name="drive_targets*"))
    elif beta != 0:
        raise ValueError("A nudge (beta != 0) needs a loss.")
    # recording
    monitors = {}
    if record:
        for name in list(circ.inputs) + list(circ.nodes):
            monitors[name] = StateMonitor(net.groups[name], "v", record=True, name="rec*")
        for name, conn in circ.connections.items():
            for st in conn.element.states:
                monitors[("branch", name, st.name)] = StateMonitor(
                    net.synapses[name], st.name, record=True, name="rec*")
        for name, spec in circ.nodes.items():
            for var in spec.model.state_variables():
                monitors[("node", name, var.name)] = StateMonitor(
                    net.groups[name], var.name, record=True, name="rec*")
    elif circ.output is not None:
        monitors[circ.output] = StateMonitor(net.groups[circ.output], "v", record=True,
                                             name="rec*")
    added.extend(monitors.values())
    local_params = net.local_parameters() if accumulate else []
    for pname in local_params:
        spec = net.params[pname]
        owner = net.synapses[spec.owner] if spec.kind == "connection" else net.groups[spec.owner]
        owner.variables[f"int_dE_d{spec.variable}"].get_value()[:] = 0.0
        added.append(operation(owner, f"int_dE_d{spec.variable} += dt*dE_d{spec.variable}",
                               order=0, name="accumulate*"))
    net.own(*added)
    net.network.add(*added)
    try:
        net.run(N * dt * second, namespace=ns)
    finally:
        net.network.remove(*added)
        if loss is not None:
            loss.set_beta(net, 0.0)
            net._loss_objects[0].variables["m"].set_value(1.0)
    traj = Trajectory()
    for key, mon in monitors.items():
        if isinstance(key, tuple):
            kind, owner, st = key
            obj = net.synapses[owner] if kind == "branch" else net.groups[owner]
            rec = np.asarray(getattr(mon, st + "_"))
            final = np.asarray(obj.variables[st].get_value())
            full = np.concatenate([rec.T, final[None]])
            if kind == "branch":
                traj.states[(owner, st)] = full
            else:
                traj.node_states[(owner, st)] = full
        else:
            rec = np.asarray(mon.v_)
            final = np.asarray(net.groups[key].variables["v"].get_value())
            traj.v[key] = np.concatenate([rec.T, final[None]])
    _check_states(net, traj, dt)
    _check_not_diverged(net, dt)
    if circ.output is not None and circ.output in traj.v:
        n_out = circ.nodes[circ.output].n
        traj.v_out = traj.v[circ.output][:N].reshape(N, net.batch, n_out)
    for pname in local_params:
        spec = net.params[pname]
        owner = net.synapses[spec.owner] if spec.kind == "connection" else net.groups[spec.owner]
        vals = np.array(owner.variables[f"int_dE_d{spec.variable}"].get_value())
        traj.integrals[pname] = vals.reshape(net.batch, -1)
    return traj


def _check_states(net, traj: Trajectory, dt: float) -> None:
    """Declared state bounds over the recorded run (or the final state if not recorded)."""
    for name, spec in net.circuit.nodes.items():
        for var, _, _, bounds in spec.model.state_equations():
            rec = traj.node_states.get((name, var.name))
            if rec is None:
                rec = np.asarray(net.groups[name].variables[var.name].get_value())[None]
            _check_state_bounds(f"{name}.{var.name}", rec, bounds, dt)
    for name, conn in net.circuit.connections.items():
        for st in conn.element.states:
            rec = traj.states.get((name, st.name))
            if rec is None:
                rec = np.asarray(net.synapses[name].variables[st.name].get_value())[None]
            _check_state_bounds(f"{name}.{st.name}", rec, st.bounds, dt)


def loss_terms(net, prob: DynamicProblem, loss, v_out: np.ndarray):
    """Per-step cost and its gradient from recorded output voltages.

    Parameters
    ----------
    v_out : numpy.ndarray, shape (N, batch, n_out)

    Returns
    -------
    total : float
        ``C = Σ_b w_b Σ_n dt m_n c(z_{b,n}, y_{b,n})`` (joule).
    dcdv : numpy.ndarray, shape (N, batch, n_out)
        ``w_b m_n ∂c/∂v`` (amp): the adjoint's driving current per step.
    per_sample : numpy.ndarray, shape (batch,)
        ``Σ_n dt m_n c`` per batch copy (joule).
    """
    if prob.y is None:
        raise ValueError("A loss needs targets y.")
    dt = float(net.dt)
    N, B, n_out = v_out.shape
    diff = net.circuit.differential
    y = prob.y_at_steps(dt).reshape(N * B, -1)
    z = loss.readout(v_out.reshape(N * B, n_out), diff)
    c = loss.cost(z, y).reshape(N, B)
    g = loss.readout_transpose(loss.grad(z, y), diff).reshape(N, B, n_out)
    per_sample = dt * (prob.mask @ c)
    total = float(prob.weights @ per_sample)
    dcdv = g * prob.mask[:, None, None] * prob.weights[None, :, None]
    return total, dcdv, per_sample
