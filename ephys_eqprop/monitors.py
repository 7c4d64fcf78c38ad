"""Synaptic monitors: what each element "sees" during the runs of a gradient.

A :class:`SynapticMonitor` attached to a built network records, per synapse (or per
node, for a node group's parameters) and over time, the local quantity each
estimator uses, labelled by the run it came from:

* forward runs of the time-varying estimators (``"free"``, ``"nudged (β=+0.001)"``,
  ``"nudged (β=-0.001)"`` of :class:`~ephys_eqprop.LagrangianEP`; ``"forward"`` of
  :class:`~ephys_eqprop.Adjoint`): the element's local quantity ``∂F/∂θ`` (``½ Δv²``,
  V², for a conductance) at every step;
* the reverse run of :class:`~ephys_eqprop.Adjoint` (``"adjoint"``): the integrand of
  its gradient, ``dC/dθ = Σ_n dt × integrand`` (``(ν_post − ν_pre)(v_pre − v_post)``,
  V², for a conductance), on the forward time axis;
* static phases (``"free"``, ``"nudged (β=...)"``): ``∂F/∂θ`` every check interval
  of the relaxation, against the step number within the phase.

Underneath are plain Brian2 ``StateMonitor`` objects on the node groups (and the
adjoint's node groups) and the elements' own expressions, evaluated at the recorded
terminal voltages and states.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from brian2 import Quantity, get_dimensions, get_unit, second

from .errors import CircuitError

__all__ = ["MonitorRecord", "SynapticMonitor"]


def readable_unit(dim) -> str:
    """A unit as a person would write it (``V²``, ``V²·s``, ``A·s``) for Brian2 dimensions.

    Tries one named unit to a power (V, A, S, F, H, Wb, C, J, W, Ω) times at most a power of
    seconds; falls back to Brian2's own spelling.
    """
    from brian2 import amp, coulomb, farad, joule, ohm, siemens, volt, watt
    from brian2.units.allunits import henry, weber
    from brian2.units.fundamentalunits import DIMENSIONLESS

    if dim is DIMENSIONLESS:
        return "1"
    sup = {1: "", 2: "²", 3: "³", -1: "⁻¹", -2: "⁻²"}
    named = [("V", volt), ("A", amp), ("S", siemens), ("F", farad), ("H", henry),
             ("Wb", weber), ("C", coulomb), ("J", joule), ("W", watt), ("Ω", ohm)]
    for s_pow in (0, 1, -1, 2, -2):
        for name, unit in named:
            for p in (1, 2, -1, -2, 3):
                if get_dimensions(unit**p * second**s_pow) is dim:
                    text = f"{name}{sup[p]}"
                    if s_pow:
                        text += f"·s{sup[s_pow]}"
                    return text
        if s_pow and get_dimensions(second**s_pow) is dim:
            return f"s{sup[s_pow]}"
    return str(get_unit(dim))


@dataclass
class MonitorRecord:
    """One run's recording of a synaptic monitor.

    Attributes
    ----------
    run : str
        Which run: ``"free"``, ``"nudged (β=+0.001)"``, ``"forward"``, ``"adjoint"``.
    estimator : str
        The estimator whose gradient the run belongs to.
    quantity : str
        What is recorded (``"local quantity ∂F/∂g"``, ``"adjoint integrand of dC/dg"``).
    t : Quantity, second, shape (n_t,)
        Time of each sample (forward time; for static phases, step × dt of the
        relaxation within the phase).
    values : Quantity, shape (n_t, batch, n)
        Per time, batch copy and synapse (or node).
    time_axis : {"time", "relaxation"}
        Physical time, or the relaxation of a static phase.
    """

    run: str
    estimator: str
    quantity: str
    t: Quantity
    values: Quantity
    time_axis: str = "time"

    @property
    def unit(self) -> str:
        """The unit of :attr:`values`, written as a person would (``V²``)."""
        return readable_unit(get_dimensions(self.values))

    def integral(self) -> Quantity:
        """``Σ_n dt × values`` over the run (``V²·s`` for a conductance), shape (batch, n)."""
        if self.time_axis != "time" or len(self.t) < 2:
            raise ValueError("Only time-varying runs have a time integral.")
        dt = float(self.t[1] - self.t[0])
        return Quantity(np.sum(np.asarray(self.values), axis=0) * dt,
                        dim=get_dimensions(self.values * second))


@dataclass
class SynapticMonitor:
    """Record what a connection's synapses (or a node group's parameters) see in each run.

    Parameters
    ----------
    net : CircuitNetwork
    target : str
        A connection name (``"x->h"``), a node parameter (``"soma.g_Na"``), or a node
        group (all its learnable parameters).

    Examples
    --------
    >>> mon = eq.SynapticMonitor(net, "gap")                   # doctest: +SKIP
    >>> grads = eq.Adjoint().gradient(net, x, y, loss)         # doctest: +SKIP
    >>> mon["adjoint"].values.shape, mon["adjoint"].unit        # doctest: +SKIP
    ((1500, 1, 1), 'V²')
    """

    net: object
    target: str
    records: list = field(default_factory=list)

    def __post_init__(self):
        net = self.net
        if self.target in net.params:
            self.params = [self.target]
        elif self.target in net.circuit.nodes:
            self.params = [p for p, s in net.params.items()
                           if s.kind == "node" and s.owner == self.target]
            if not self.params:
                raise CircuitError(f"Node group {self.target!r} has no learnable parameters to "
                                   "monitor.")
        else:
            raise CircuitError(
                f"Unknown connection or node parameter {self.target!r}; connections and "
                f"node parameters are {sorted(net.params)}, node groups "
                f"{sorted(net.circuit.nodes)}.")
        net.synaptic_monitors.append(self)

    # ------------------------------------------------------------------ reading
    @property
    def runs(self) -> list[str]:
        """Labels of the recorded runs, in order."""
        return [r.run for r in self.records]

    def __getitem__(self, run: str) -> MonitorRecord:
        """The last record of run ``run`` (or of parameter ``run`` for a group monitor)."""
        for rec in reversed(self.records):
            if rec.run == run:
                return rec
        raise KeyError(f"No run {run!r} was recorded; recorded runs are {self.runs}.")

    def clear(self) -> None:
        """Forget the records (the monitor stays attached)."""
        self.records.clear()

    def detach(self) -> None:
        """Stop recording."""
        if self in self.net.synaptic_monitors:
            self.net.synaptic_monitors.remove(self)

    # ------------------------------------------------------------------ recording
    def _add(self, run, estimator, quantity, t, values_by_param, time_axis="time"):
        for p in self.params:
            if p not in values_by_param:
                continue
            label = run if len(self.params) == 1 else f"{run} [{p}]"
            self.records.append(MonitorRecord(label, estimator, quantity.format(p=p),
                                              t, values_by_param[p], time_axis))

    # ------------------------------------------------------------------ plotting
    def plot(self, ax=None, *, synapse: int = 0, sample: int = 0, runs=None):
        """Plot one synapse's recorded quantity in each run (Matplotlib axes returned).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
        synapse : int
            Which synapse (or node) of the target.
        sample : int
            Which batch copy.
        runs : list of str, optional
            Which runs (default all time-varying ones).
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 3.2))
        chosen = [r for r in self.records if (runs is None and r.time_axis == "time")
                  or (runs is not None and r.run in runs)]
        if not chosen:
            raise ValueError(f"Nothing to plot: recorded runs are {self.runs}.")
        for rec in chosen:
            vals = np.asarray(rec.values)[:, sample, synapse]
            ax.plot(np.asarray(rec.t) * 1e3, vals, label=f"{rec.run}: {rec.quantity}", lw=0.9)
        ax.set_xlabel("t (ms)" if chosen[0].time_axis == "time" else "relaxation time (ms)")
        ax.set_ylabel(f"per synapse ({chosen[0].unit})")
        ax.set_title(f"{self.target}, synapse {synapse}, sample {sample}", fontsize=9)
        ax.legend(fontsize=7)
        return ax


# ---------------------------------------------------------------------- recording hooks
def _branch_function(el, expr: str):
    from .expressions import numpy_function

    consts = {k: float(np.asarray(v)) for k, v in el.values.items()}
    return numpy_function(expr, ["v_pre", "v_post", el.learnable, *(s.name for s in el.states)],
                          consts, what=f"monitored quantity of {type(el).__name__}")


def _node_function(model, expr: str):
    from .expressions import numpy_function

    learn = [v.name for v in model.learnable_variables()]
    states = [v.name for v in model.state_variables()]
    consts = {k: v for k, v in model.constants().items() if k not in learn}
    return numpy_function(expr, ["v", *learn, *states], consts,
                          what="monitored quantity of a node parameter"), learn, states


def record_forward(net, traj, N: int, label: str, estimator: str) -> None:
    """Give every attached monitor the local quantities ∂F/∂θ of a recorded forward run."""
    dt = float(net.dt)
    t = Quantity(np.arange(N) * dt, dim=second.dim)
    for mon in net.synaptic_monitors:
        out = {}
        for p in mon.params:
            spec = net.params[p]
            if spec.kind == "connection":
                conn = net.circuit.connections[p]
                el = conn.element
                local = el.local_expr()
                if local is None:
                    continue
                i, j = net._syn_index[p]
                theta = np.asarray(net.synapses[p].variables[el.learnable].get_value())
                states = [traj.states.steps((p, s.name)) for s in el.states]
                vals = _branch_function(el, local)(traj.v.steps(conn.pre)[:, i],
                                                   traj.v.steps(conn.post)[:, j], theta,
                                                   *states)
                dims = el.local_dimensions()
            else:
                model = net.circuit.nodes[spec.owner].model
                local = model.local_expr(spec.variable)
                if local is None:
                    continue
                fun, learn, states = _node_function(model, local)
                grp = net.groups[spec.owner]
                args = [np.asarray(grp.variables[n].get_value()) for n in learn]
                st = [traj.node_states.steps((spec.owner, s)) for s in states]
                vals = fun(traj.v.steps(spec.owner), *args, *st)
                dims = net._local_dims(local, model)
            arr = np.asarray(vals, dtype=float).reshape(N, net.batch, -1)
            out[p] = Quantity(arr, dim=dims)
        mon._add(label, estimator, "local quantity ∂F/∂θ of {p}", t, out)


def record_static(net, label: str, step: int, local: dict) -> None:
    """Append one sample of a static phase's local quantities to the attached monitors."""
    for mon in net.synaptic_monitors:
        for p in mon.params:
            if p not in local:
                continue
            name = label if len(mon.params) == 1 else f"{label} [{p}]"
            rec = mon.records[-1] if mon.records else None
            if rec is None or rec.run != name or rec.time_axis != "relaxation" or \
                    getattr(rec, "_closed", False):
                rec = MonitorRecord(name, "static phases", f"local quantity ∂F/∂θ of {p}",
                                    Quantity(np.zeros(0), dim=second.dim),
                                    Quantity(np.zeros((0,) + local[p].shape)), "relaxation")
                rec._dims = _static_dims(net, p)
                mon.records.append(rec)
            t = np.r_[np.asarray(rec.t), step * float(net.dt)]
            vals = np.concatenate([np.asarray(rec.values), local[p][None]])
            rec.t = Quantity(t, dim=second.dim)
            rec.values = Quantity(vals, dim=rec._dims)


def close_static(net) -> None:
    """End the static phase being recorded (the next phase starts a new record)."""
    for mon in net.synaptic_monitors:
        if mon.records and mon.records[-1].time_axis == "relaxation":
            mon.records[-1]._closed = True


def _static_dims(net, p):
    spec = net.params[p]
    if spec.kind == "connection":
        return net.circuit.connections[p].element.local_dimensions()
    model = net.circuit.nodes[spec.owner].model
    return net._local_dims(model.local_expr(spec.variable), model)


def record_adjoint(net, values: dict, N: int) -> None:
    """Give every attached monitor the adjoint integrands of its parameters."""
    t = Quantity(np.arange(N) * float(net.dt), dim=second.dim)
    for mon in net.synaptic_monitors:
        mon._add("adjoint", "Adjoint", "adjoint integrand of dC/d{p} (dC/dθ = Σₙ dt · integrand)",
                 t, {p: v for p, v in values.items() if p in mon.params})
