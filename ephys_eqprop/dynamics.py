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

import contextlib
import weakref
from collections.abc import MutableMapping
from dataclasses import dataclass, field

import numpy as np
from brian2 import Quantity, StateMonitor, get_dimensions, second
from brian2.units.fundamentalunits import DIMENSIONLESS

from .elements.base import check_quantity
from .errors import CircuitError
from .standalone import Waveform, hand_over, recording

__all__ = ["TimeSeries", "Trajectory", "DynamicProblem", "is_waveform", "n_samples", "prepare",
           "repeat", "simulate", "take"]


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


class RunObjects:
    """The code runners and recorders that runs add to a Brian2 network: made once.

    Making a Brian2 object costs about half a millisecond (its name is checked against
    those of all live objects, and it logs a description of its clock), as much as a
    short generated run, and every run of the same kind needs the same objects. They
    are made on first use, added to ``network`` inactive (Brian2 does not let an object
    that has run leave a network and come back), and switched on for the runs that
    use them (:meth:`running`). A code runner holds no state between runs; a recorder
    is emptied once its recording has been read (:meth:`read`), so that it holds no
    trajectory between runs.

    Parameters
    ----------
    network : brian2.Network
    """

    def __init__(self, network):
        self.network = network
        self._made = {}  # key -> (object, weak reference to the group it acts on)

    def _get(self, key, group, make):
        # The key names the group; a group that is gone (a loss replaced by another,
        # whose objects are then freed) may leave its name to a new one, so the object
        # made for it is used only while its own group is alive and is that group.
        made = self._made.get(key)
        if made is not None and made[1]() is group:
            return made[0]
        if made is not None:
            self.network.remove(made[0])
        obj = make()
        obj.active = False
        self.network.add(obj)
        self._made[key] = (obj, weakref.ref(group))
        return obj

    def operation(self, group, code: str, *, when: str = "start", order: int = -1,
                  name: str = "operation*"):
        """:func:`operation` ``(group, code, ...)``, the same object every time."""
        return self._get(("operation", group.name, code, when, order), group,
                         lambda: operation(group, code, when=when, order=order, name=name))

    def monitor(self, source, var: str, *, name: str = "rec*"):
        """A ``StateMonitor`` of ``var`` (every index) of ``source``, empty."""
        mon = self._get(("monitor", source.name, var), source,
                        lambda: StateMonitor(source, var, record=True, name=name))
        _empty(mon)  # (a run stopped by an error or Ctrl-C leaves a partial recording)
        return mon

    @staticmethod
    @contextlib.contextmanager
    def running(objects):
        """Switch ``objects`` on for the ``with`` block (and off after it)."""
        for obj in objects:
            obj.active = True
        try:
            yield
        finally:
            for obj in objects:
                obj.active = False

    @staticmethod
    def read(mon, var: str) -> np.ndarray:
        """What ``mon`` recorded of ``var`` in its last run (an array of the caller's,
        shape (steps, recorded)); then ``mon`` is emptied."""
        out = recording(mon, var)
        _empty(mon)
        return out


def _empty(mon) -> None:
    """Drop what a ``StateMonitor`` has recorded (as if it were new)."""
    if int(np.asarray(mon.variables["N"].get_value()).item()):
        mon.resize(0)
        mon.variables["N"].set_value(0)


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
    currents, current_dt : dict
        Current-clamp waveforms (amp) and their sampling intervals, by input name.
    """

    x: np.ndarray
    x_dt: float
    y: np.ndarray | None
    y_dt: float
    n_steps: int
    mask: np.ndarray
    weights: np.ndarray
    #: current-clamp waveforms by input name, shape (batch, n_t, n) (amp)
    currents: dict = field(default_factory=dict)
    #: their sampling intervals (seconds)
    current_dt: dict = field(default_factory=dict)

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


def is_waveform(x) -> bool:
    """Whether inputs are waveforms: a TimeSeries, or a dict of them by input name."""
    if isinstance(x, dict):
        return bool(x) and all(isinstance(v, TimeSeries) for v in x.values())
    return isinstance(x, TimeSeries)


def n_samples(x) -> int:
    """Number of samples of inputs given as a TimeSeries, an array or a dict of those."""
    if isinstance(x, dict):
        counts = {n_samples(v) for v in x.values()}
        if len(counts) != 1:
            raise CircuitError(f"All inputs must have the same number of samples; got {counts}.")
        return counts.pop()
    return len(x)


def take(x, idx):
    """Samples ``idx`` of inputs given as a TimeSeries, an array or a dict of those."""
    if isinstance(x, dict):
        return {k: take(v, idx) for k, v in x.items()}
    return x[idx]


def repeat(x, k: int):
    """Waveforms (a TimeSeries or a dict of them) with their samples repeated ``k`` times."""
    if isinstance(x, dict):
        return {name: repeat(v, k) for name, v in x.items()}
    return TimeSeries(Quantity(np.concatenate([np.asarray(x.values)] * k), dim=x.dim), x.dt)


def _split_series(net, x) -> tuple:
    """``(voltage TimeSeries or None, {current input: TimeSeries})`` from time-varying ``x``."""
    circ = net.circuit
    if isinstance(x, dict):
        for k, v in x.items():
            _as_series(v, f"x[{k!r}]")
        volts, currents = circ.split_inputs(x)
        if volts:
            names = circ.data_inputs
            missing = sorted(set(names) - set(volts))
            if missing:
                raise CircuitError(f"Missing waveforms for inputs {missing}.")
            series = [volts[n] for n in names]
            if len({float(s.dt) for s in series}) != 1:
                raise CircuitError("The voltage inputs' waveforms must share one sampling "
                                   "interval.")
            dims = {s.dim for s in series}
            if len(dims) != 1:
                raise TypeError("Voltage input waveforms must all be in volt.")
            vals = np.concatenate([np.asarray(s.values) for s in series], axis=2)
            volts = TimeSeries(Quantity(vals, dim=series[0].dim), series[0].dt)
        else:
            volts = None
        return volts, currents
    x = _as_series(x, "x")
    volts, currents = circ.split_inputs(x)
    return volts, currents


def prepare(net, x, y=None, loss=None) -> DynamicProblem:
    """Check and pad the inputs, targets and loss window of a time-varying run.

    Parameters
    ----------
    net : CircuitNetwork
    x : TimeSeries, or dict of str to TimeSeries
        Input waveforms: voltages for the voltage inputs (one TimeSeries whose
        channels are the data inputs in the order they were added, or one per input
        by name), currents (amp) for the current inputs, one channel per node.
    y : TimeSeries, optional
        Targets, same samples and duration as ``x``.
    loss : Loss, optional

    Returns
    -------
    DynamicProblem
    """
    from brian2 import amp, have_same_dimensions

    dt = float(net.dt)
    circ = net.circuit
    volts, currents = _split_series(net, x)
    series = ([volts] if volts is not None else []) + list(currents.values())
    if not series:
        raise CircuitError("x has no waveforms; the circuit's data inputs are "
                           f"{circ.data_inputs + circ.data_currents}.")
    counts = {s.n_samples for s in series}
    if len(counts) != 1:
        raise CircuitError(f"All input waveforms must have the same number of samples; got "
                           f"{sorted(counts)}.")
    S = counts.pop()
    if S > net.batch:
        raise CircuitError(f"x has {S} samples but the network was built with batch="
                           f"{net.batch}; build with a larger batch or split the data.")
    lengths = {s.n_steps * _steps_per_sample(s, dt, "x") for s in series}
    if len(lengths) != 1:
        raise CircuitError("All input waveforms must cover the same time; got durations of "
                           f"{sorted(n * dt for n in lengths)} s.")
    n_steps = lengths.pop()
    if volts is not None:
        x = volts
        Tx = x.n_steps
        flat = x.values.reshape((S * Tx, x.n_channels))
        names = circ.data_inputs
        n_data = sum(circ.inputs[n].n for n in names)
        if x.n_channels != n_data:
            raise CircuitError(f"x has {x.n_channels} channels but the circuit's data inputs "
                               f"{names} take {n_data} voltages.")
        if len(names) > 1:  # channels in the order the inputs were added
            parts, off = {}, 0
            for n in names:
                parts[n] = flat[:, off:off + circ.inputs[n].n]
                off += circ.inputs[n].n
            flat = parts
        src = circ.source_values(flat).reshape(S, Tx, -1)
        x_dt = float(x.dt)
    else:
        # fixed sources only (or none): one sample covering the whole run
        src = (circ.source_values({}, n_samples=S) if circ.inputs
               else np.zeros((S, 0))).reshape(S, 1, -1)
        x_dt = n_steps * dt
    src = np.concatenate([src, np.repeat(src[:1], net.batch - S, 0)])
    waves, wave_dt = {}, {}
    for name, ts in currents.items():
        spec = circ.currents[name]
        if not have_same_dimensions(Quantity(1.0, dim=ts.dim), amp):
            raise TypeError(f"x[{name!r}] must be currents (amp), e.g. values*nA; got "
                            f"dimensions {ts.dim or 'dimensionless'}.")
        if ts.n_channels != spec.n:
            raise CircuitError(f"x[{name!r}] has {ts.n_channels} channels but node group "
                               f"{spec.target!r} has {spec.n} nodes (one current per node).")
        arr = np.asarray(ts.values, dtype=float)
        waves[name] = np.concatenate([arr, np.repeat(arr[:1], net.batch - S, 0)])
        wave_dt[name] = float(ts.dt)
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
                f"x lasts {n_steps * dt * second} but y lasts {y.duration} "
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
    return DynamicProblem(src, x_dt, y_arr, y_dt, n_steps, mask, w, waves, wave_dt)


class Recordings(MutableMapping):
    """Recorded arrays by key, shape (N + 1, size): the N recorded steps, then the state
    at the end of the run.

    A run adds each recording as its two parts (:meth:`add`); the whole array is made
    on first access and kept. :meth:`steps` gives the N recorded steps as they came
    (for a generated run, a read-only memory map of the program's result file, which
    the adjoint program then reads as it is), without that copy.
    """

    def __init__(self):
        self._items: dict = {}

    def add(self, key, steps: np.ndarray, final: np.ndarray) -> None:
        """Add the recording of ``key``: ``steps`` (N, size) and ``final`` (size,)."""
        self._items[key] = (steps, final)

    def steps(self, key) -> np.ndarray:
        """The N recorded steps of ``key`` (shape (N, size); may be read-only)."""
        item = self._items[key]
        return item[0] if isinstance(item, tuple) else item[:-1]

    def final(self, key) -> np.ndarray:
        """The state of ``key`` at the end of the run (shape (size,))."""
        item = self._items[key]
        return item[1] if isinstance(item, tuple) else item[-1]

    def __getitem__(self, key) -> np.ndarray:
        item = self._items[key]
        if isinstance(item, tuple):
            item = self._items[key] = np.concatenate([item[0], np.asarray(item[1])[None]])
        return item

    def __setitem__(self, key, value) -> None:
        self._items[key] = np.asarray(value)

    def __delitem__(self, key) -> None:
        del self._items[key]

    def __contains__(self, key) -> bool:  # (Mapping's would make the whole array)
        return key in self._items

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        """Memory held by the recordings (bytes)."""
        return sum(sum(a.nbytes for a in item) if isinstance(item, tuple) else item.nbytes
                   for item in self._items.values())


@dataclass
class Trajectory:
    """What a time-varying run recorded.

    Attributes
    ----------
    v : Recordings of str to numpy.ndarray, shape (N + 1, size)
        Voltages of each node group and input (Brian2 index order ``b * n + k``)
        at ``t_0 .. t_N`` (volt).
    states : Recordings of (str, str) to numpy.ndarray, shape (N + 1, n_syn * batch)
        Branch states by (connection, state name).
    node_states : Recordings of (str, str) to numpy.ndarray, shape (N + 1, n * batch)
        Node-element states by (node group, state variable).
    integrals : dict of str to numpy.ndarray, shape (batch, size)
        Time integrals of the local quantities (Lagrangian EP) by parameter name,
        if accumulated.
    v_out : numpy.ndarray, shape (N, batch, n_out)
        Output voltages at ``t_0 .. t_{N-1}``.
    """

    v: Recordings = field(default_factory=Recordings)
    states: Recordings = field(default_factory=Recordings)
    node_states: Recordings = field(default_factory=Recordings)
    integrals: dict = field(default_factory=dict)
    v_out: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        """Memory held by the recorded voltages and states."""
        return self.v.nbytes + self.states.nbytes + self.node_states.nbytes


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


def _stable_dt(net, group: str, state: str) -> float | None:
    """A time step at which forward Euler is stable for a node-element state: ``1/r`` with
    ``r = max -∂(ds/dt)/∂s`` over node voltages from 30 mV below to 120 mV above the
    model's ``v0`` (a neuron's range from hyperpolarisation to the peak of a spike), half
    Euler's limit ``2/r``; ``None`` if it cannot be computed."""
    from .expressions import differentiate, numpy_function

    model = net.circuit.nodes[group].model
    try:
        var, rhs = next((v, r) for v, r, _, _ in model.state_equations() if v.name == state)
        learn = [v.name for v in model.learnable_variables()]
        consts = {k: v for k, v in model.constants().items() if k not in learn}
        args = ["v", *learn, *(v.name for v in model.state_variables())]
        rate = numpy_function(f"-({differentiate(rhs, var.name, 'state derivative')})", args,
                              consts)
        grp = net.groups[group]
        v = float(model.v0) + np.linspace(-0.03, 0.12, 301)
        values = [float(np.asarray(grp.variables[n].get_value()).ravel()[0]) for n in learn]
        inits = model.state_init_functions()
        states = [np.clip(inits[s.name](v, *values), 0, None) for s in model.state_variables()]
        r = float(np.nanmax(rate(v, *values, *states)))
    except Exception:  # a suggestion only: no dt rather than a wrong one
        return None
    return 1.0 / r if np.isfinite(r) and r > 0 else None


def _check_state_bounds(name: str, values: np.ndarray, bounds, dt: float,
                        suggestion: float | None = None, recorded: bool = True) -> None:
    """Raise if a recorded state (or its final value) left its declared interval."""
    if bounds is None and np.all(np.isfinite(values)):
        return
    lo, hi = (-np.inf, np.inf) if bounds is None else (float(bounds[0]), float(bounds[1]))
    span = hi - lo if np.isfinite(hi - lo) else 1.0
    tol = 1e-9 * span
    if values.size:
        # two passes over a whole trajectory (NaN propagates into min and max, and
        # infinities fail the comparison); where each bad value is, only if there is one
        low, high = float(np.min(values)), float(np.max(values))
        if np.isfinite(low) and np.isfinite(high) and lo - tol <= low and high <= hi + tol:
            return
    bad = ~np.isfinite(values) | (values < lo - tol) | (values > hi + tol)
    if np.any(bad):
        step = int(np.argmax(np.any(bad.reshape(len(values), -1), axis=1)))
        got = values.reshape(len(values), -1)[step]
        got = got[~np.isfinite(got) | (got < lo - tol) | (got > hi + tol)][0]
        if suggestion is not None and suggestion < dt:
            hint = (f"its fastest rate allows forward Euler up to about {2 * suggestion:.3g} s;"
                    f" use dt <= {suggestion:.3g} s")
        else:
            hint = f"e.g. dt = {dt / 4:.3g} s"
        when = (f"at step {step} (t = {step * dt:.4g} s; value {got:.4g})" if recorded else
                f"by the end of the run (value {got:.4g})")
        raise FloatingPointError(
            f"State {name!r} left its interval [{lo:g}, {hi:g}] {when}: the time step "
            f"dt = {dt:.3g} s is too large for the fastest rate of the circuit. Reduce dt "
            f"({hint}).")


def simulate(net, prob: DynamicProblem, *, loss=None, beta: float = 0.0, record: bool = False,
             accumulate: bool = False, label: str = "run", estimator: str = "") -> Trajectory:
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
    label, estimator : str
        Which run of which estimator this is, for attached synaptic monitors
        (:class:`~ephys_eqprop.SynapticMonitor`), which make the run record everything.

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
    made = net.run_objects
    added = []
    # inputs (their values at t = 0 set first: branch states may start from them)
    off = 0
    for name, spec in circ.inputs.items():
        cols = prob.x[:, :, off:off + spec.size]  # (B, Tx, size)
        off += spec.size
        net.groups[name].variables["v"].set_value(cols[:, 0].ravel())
        arr = np.transpose(cols, (1, 0, 2)).reshape(cols.shape[1], -1)
        key = f"ta_x_{name}"
        ns[key] = Waveform(arr, prob.x_dt, f"{key}*")
        grp = net.groups[name]
        added.append(made.operation(grp, f"v = {key}(t - t_start, i)*volt",
                                    name=f"drive_{name}*"))
    for name, wave in prob.currents.items():  # current clamps
        spec = circ.currents[name]
        key = f"ta_i_{name}"
        arr = np.transpose(wave, (1, 0, 2)).reshape(wave.shape[1], -1)
        ns[key] = Waveform(arr, prob.current_dt[name], f"{key}*")
        added.append(made.operation(net.groups[spec.target],
                                    f"{spec.variable} = {key}(t - t_start, i)*amp",
                                    name=f"drive_{name}*"))
    net.reset_state()
    # loss: targets, window and nudge strength
    if loss is not None:
        net.attach_loss(loss)
        R = net._loss_objects[0]
        loss.set_beta(net, beta)
        if prob.y is not None:
            arr = np.transpose(prob.y, (1, 0, 2)).reshape(prob.y.shape[1], -1)
            ns["ta_y"] = Waveform(arr, prob.y_dt, "ta_y*")
            unit = "" if loss._y_unit == "1" else f"*{loss._y_unit}"
            ns["ta_m"] = Waveform(prob.mask, dt, "ta_m*")
            added.append(made.operation(R, "m = ta_m(t - t_start)\n"
                                           f"y = ta_y(t - t_start, i){unit}",
                                        name="drive_targets*"))
    elif beta != 0:
        raise ValueError("A nudge (beta != 0) needs a loss.")
    # recording
    monitors = {}
    monitored = bool(getattr(net, "synaptic_monitors", None))
    if record or monitored:
        for name in list(circ.inputs) + list(circ.nodes):
            monitors[name] = made.monitor(net.groups[name], "v")
        for name, conn in circ.connections.items():
            for st in conn.element.states:
                monitors[("branch", name, st.name)] = made.monitor(net.synapses[name],
                                                                   st.name)
        for name, spec in circ.nodes.items():
            for var in spec.model.state_variables():
                monitors[("node", name, var.name)] = made.monitor(net.groups[name], var.name)
    elif circ.output is not None:
        monitors[circ.output] = made.monitor(net.groups[circ.output], "v")
    for mon in monitors.values():  # read once below: a generated run need not copy them in
        hand_over(mon)
    added.extend(monitors.values())
    local_params = net.local_parameters() if accumulate else []
    for pname in local_params:
        spec = net.params[pname]
        owner = net.synapses[spec.owner] if spec.kind == "connection" else net.groups[spec.owner]
        owner.variables[f"int_dE_d{spec.variable}"].get_value()[:] = 0.0
        added.append(made.operation(owner, f"int_dE_d{spec.variable} += dt*dE_d{spec.variable}",
                                    order=0, name="accumulate*"))
    net.own(*added)
    try:
        with made.running(added):
            net.run(N * dt * second, namespace=ns)
    finally:
        if loss is not None:
            loss.set_beta(net, 0.0)
            net._loss_objects[0].variables["m"].set_value(1.0)
    traj = Trajectory()
    for key, mon in monitors.items():
        if isinstance(key, tuple):
            kind, owner, st = key
            obj = net.synapses[owner] if kind == "branch" else net.groups[owner]
            where = traj.states if kind == "branch" else traj.node_states
            where.add((owner, st), made.read(mon, st), np.array(obj.variables[st].get_value()))
        else:
            traj.v.add(key, made.read(mon, "v"),
                       np.array(net.groups[key].variables["v"].get_value()))
    _check_states(net, traj, dt)
    _check_not_diverged(net, dt)
    if circ.output is not None and circ.output in traj.v:
        n_out = circ.nodes[circ.output].n
        traj.v_out = np.array(traj.v.steps(circ.output)).reshape(N, net.batch, n_out)
    for pname in local_params:
        spec = net.params[pname]
        owner = net.synapses[spec.owner] if spec.kind == "connection" else net.groups[spec.owner]
        vals = np.array(owner.variables[f"int_dE_d{spec.variable}"].get_value())
        traj.integrals[pname] = vals.reshape(net.batch, -1)
    if monitored:
        from .monitors import record_forward

        record_forward(net, traj, N, label, estimator)
    return traj


def _check_states(net, traj: Trajectory, dt: float) -> None:
    """Declared state bounds over the recorded run (or the final state if not recorded)."""
    for name, spec in net.circuit.nodes.items():
        for var, _, _, bounds in spec.model.state_equations():
            for rec, recorded in _to_check(traj.node_states, (name, var.name),
                                           net.groups[name].variables[var.name]):
                try:
                    _check_state_bounds(f"{name}.{var.name}", rec, bounds, dt,
                                        recorded=recorded)
                except FloatingPointError:
                    _check_state_bounds(f"{name}.{var.name}", rec, bounds, dt,
                                        _stable_dt(net, name, var.name), recorded)
    for name, conn in net.circuit.connections.items():
        for st in conn.element.states:
            for rec, recorded in _to_check(traj.states, (name, st.name),
                                           net.synapses[name].variables[st.name]):
                _check_state_bounds(f"{name}.{st.name}", rec, st.bounds, dt,
                                    recorded=recorded)


def _to_check(recordings: Recordings, key, variable) -> list:
    """(values, recorded) to check: the recorded steps and the final state, if ``key``
    was recorded; else the current value of ``variable`` only."""
    if key in recordings:
        return [(recordings.steps(key), True), (recordings.final(key)[None], False)]
    return [(np.asarray(variable.get_value())[None], False)]


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
