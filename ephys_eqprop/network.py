"""A built circuit: plain Brian2 objects plus the bookkeeping to run phases on them."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
from brian2 import (
    Network,
    NeuronGroup,
    Quantity,
    Synapses,
    get_dimensions,
    prefs,
    second,
    siemens,
    volt,
)
from brian2.units.fundamentalunits import have_same_dimensions

from .dynamics import RunObjects
from .elements.base import check_sign
from .errors import CircuitError, StaticPhaseWarning
from .expressions import numpy_function, unit_string
from .interrupts import brian2_run, stop_requested
from .standalone import run_network

__all__ = ["CircuitNetwork"]

def _is_monitor(obj) -> bool:
    """Capability of a user's Brian2 object: it only records (a static phase keeps it)."""
    from brian2 import EventMonitor, PopulationRateMonitor, StateMonitor

    return isinstance(obj, (StateMonitor, EventMonitor, PopulationRateMonitor))


def _unit_str(q) -> str:
    """The Brian2 unit string of a quantity's dimensions (``1`` if dimensionless)."""
    return unit_string(q)


class CircuitNetwork:
    """A circuit built as Brian2 objects, with ``batch`` copies side by side.

    Attributes
    ----------
    network : brian2.Network
        The Brian2 network holding every object below.
    groups : dict of str to brian2.NeuronGroup
        One group per node group and per input, each of size ``n * batch``
        (sample ``b``, node ``k`` at index ``b * n + k``). Node voltages are ``v``;
        the node elements' states and parameters are variables of the same group
        (``m``, ``g_Na``, ...).
    synapses : dict of str to brian2.Synapses
        One object per connection, keyed by connection name. The learnable
        parameter (``g``) is stored per synapse and kept equal across the batch
        copies; the local quantity is the subexpression ``dE_dg``.
    params : dict of str to ParameterSpec
        Every learnable parameter by public name (connections, then per-node
        parameters ``"<group>.<variable>"``).
    batch : int
    dt : Quantity
    circuit : Circuit
        The description it was built from.

    Notes
    -----
    Node equations (per node)::

        C_eff dv/dt = I_tot
        I_tot = -g_leak v + Σ node-element currents + Σ synapse currents + I_nudge + I_ext
        C_eff = relax (G_tot + G_elements) tau_relax + (1 - relax) C

    plus one equation per node-element state. With ``relax = 0`` this is the
    physical circuit. Static phases use ``relax = 1``: every node's capacitance is
    made proportional to its total conductance, so that one Euler step of length
    ``dt`` is one damped Jacobi (Newton for the node elements) sweep of Kirchhoff's
    current law — same fixed point, fewest steps (``docs/physics.md``, §3).
    """

    def __init__(self, circuit, *, batch: int, target: str, dt: Quantity,
                 method: str = "euler", scheme: str = "euler", threads: int = 0):
        self.circuit = circuit
        self.scheme = scheme
        self.batch = batch
        self.target = target
        #: runs execute as generated C++ (``target="cpp_standalone"``; see
        #: :mod:`ephys_eqprop.standalone`); the objects themselves live on the runtime
        #: device, with numpy code for what runs there
        self.standalone = target == "cpp_standalone"
        self.runtime_target = "numpy" if self.standalone else target
        self.threads = threads
        self._fallbacks: set = set()
        self.dt = dt
        self.method = method
        self.params = circuit.parameters()
        self.groups: dict[str, NeuronGroup] = {}
        self.synapses: dict[str, Synapses] = {}
        self.loss = None
        self._loss_objects: list = []
        self._syn_index: dict = {}
        self._incident: dict[str, list] = {name: [] for name in circuit.nodes}
        for conn in circuit.connections.values():
            self._incident[conn.post].append((conn, "in"))
            if conn.pre in circuit.nodes and not conn.element.directed:
                self._incident[conn.pre].append((conn, "out"))
        self._local_funs: dict = {}
        #: attached synaptic monitors (see :class:`~ephys_eqprop.SynapticMonitor`)
        self.synaptic_monitors: list = []
        objects = []
        with self._target():  # Synapses.connect generates code for the current target
            for name, spec in circuit.inputs.items():
                grp = NeuronGroup(spec.size * batch, "v : volt", dt=dt, name=f"input_{name}*")
                self.groups[name] = grp
                objects.append(grp)
            for name, spec in circuit.nodes.items():
                grp = self._make_node_group(name, spec)
                self.groups[name] = grp
                objects.append(grp)
            for conn in circuit.connections.values():
                syn = self._make_synapses(conn)
                self.synapses[conn.name] = syn
                objects.append(syn)
        self.network = Network(*objects)
        self._own_ids = {id(o) for o in objects}
        #: the code runners and recorders time-varying runs add (made once, reused)
        self.run_objects = RunObjects(self.network)
        self._update_G_tot()
        self.reset_state()

    # ------------------------------------------------------------------ construction
    def _make_node_group(self, name, spec):
        model = spec.model
        syn_vars = [f"I{conn.ident}_{side}" for conn, side in self._incident[name]]
        clamps = [c for c in self.circuit.currents.values() if c.target == name]
        syn_vars += [c.variable for c in clamps]
        if model.dynamic:
            # node elements with states: only time-varying runs apply (static phases refuse
            # them), so no relaxation terms are evaluated at every step
            relaxation = ["C_eff = C_v : farad"]
        else:
            relaxation = ["C_eff = relax*G_relax*tau_relax + (1 - relax)*C_v : farad",
                          f"G_relax = G_tot + {model.element_conductance()} : siemens"]
        eqs = [
            "dv/dt = I_tot/C_eff : volt",
            *relaxation,
            f"C_v = {model.capacitance_expr()} : farad",
            "I_tot = " + " + ".join([model.element_current(), *syn_vars, "I_nudge", "I_ext"])
            + " : amp",
            "C : farad",
            "g_leak : siemens",
            "G_tot : siemens",
            "I_ext : amp",
            "I_nudge : amp",
            "relax : 1 (shared)",
            "tau_relax : second (shared)",
        ]
        eqs += [f"{v} : amp" for v in syn_vars]
        for var, rhs, _, _ in model.state_equations():
            eqs.append(f"d{var.name}/dt = {rhs} : {_unit_str(var.unit)}")
        for var in model.learnable_variables():
            if var.name != "g_leak":
                eqs.append(f"{var.name} : {_unit_str(var.unit)}")
            local = model.local_expr(var.name)
            if local is not None:
                dims = self._local_dims(local, model)
                eqs.append(f"dE_d{var.name} = {local} : {_unit_str(dims)}")
                eqs.append(f"int_dE_d{var.name} : {_unit_str(Quantity(1.0, dim=dims) * second)}")
        for var in model.constant_variables():
            eqs.append(f"{var.name} : {_unit_str(var.unit)} (shared, constant)")
        eqs += [f"q_{pname} : {_unit_str(val)} (shared, constant)"
                for pname, val in model.charge_params.items()]
        grp = NeuronGroup(spec.n * self.batch, "\n".join(eqs), method=self.method, dt=self.dt,
                          name=f"nodes_{name}*")
        grp.C = model.C
        grp.g_leak = model.g_leak
        for var in model.constant_variables():
            setattr(grp, var.name, model.value(var))
        for var in model.learnable_variables():
            grp.variables[var.name].set_value(np.tile(spec.values[var.name], self.batch))
        for pname, val in model.charge_params.items():
            setattr(grp, "q_" + pname, val)
        for c in clamps:
            if c.value is not None:
                grp.variables[c.variable].set_value(np.tile(c.value, self.batch))
        grp.tau_relax = self.dt / 0.9
        if self.scheme == "euler":
            # every node and branch state steps from the values at the start of the
            # step: branch states (groups slot) before node voltages (after_groups)
            grp.state_updater.when = "after_groups"
        return grp

    @staticmethod
    def _local_dims(expr, model):
        from brian2 import volt

        from .expressions import expression_dimensions

        values = {"v": 1 * volt, "g_leak": 1 * siemens, "C": model.C}
        for var in model.variables:
            values[var.name] = var.unit
        return expression_dimensions(expr, values, f"local quantity {expr!r}")

    def _batch_indices(self, conn):
        B = self.batch
        n_pre, n_post = self.circuit._size(conn.pre, "pre"), self.circuit._size(conn.post, "post")
        offs = np.arange(B)[:, None]
        i = (offs * n_pre + conn.i[None, :]).ravel()
        j = (offs * n_post + conn.j[None, :]).ravel()
        return i, j

    def _make_synapses(self, conn):
        el = conn.element
        p = el.learnable
        cur = el.param_expr(el.current)
        eqs = [
            f"{p} : {_unit_str(conn.values)}",
            f"I{conn.ident}_in_post = {cur} : amp (summed)",
        ]
        local = el.local_expr()
        if local is not None:
            dims = el.local_dimensions()
            eqs.append(f"dE_d{p} = {el.param_expr(local)} : {_unit_str(Quantity(1.0, dim=dims))}")
            # time integral of the local quantity, accumulated during time-varying runs
            eqs.append(f"int_dE_d{p} : {_unit_str(Quantity(1.0, dim=dims) * second)}")
        if conn.pre in self.circuit.nodes and not el.directed:
            eqs.append(f"I{conn.ident}_out_pre = -({cur}) : amp (summed)")
        for st in el.states:
            eqs.append(f"d{st.name}/dt = {el.param_expr(st.rhs)} : {_unit_str(st.quantity)} "
                       "(clock-driven)")
        for par in el.parameters:
            eqs.append(f"p_{par.name} : {_unit_str(el.values[par.name])} (shared, constant)")
        pre, post = self.groups[conn.pre], self.groups[conn.post]
        syn = Synapses(pre, post, "\n".join(eqs), dt=self.dt, method=self.method,
                       name=f"syn_{conn.ident}*")
        i, j = self._batch_indices(conn)
        syn.connect(i=i, j=j)
        self._syn_index[conn.name] = (i, j)
        syn.variables[p].set_value(np.tile(np.asarray(conn.values, dtype=float), self.batch))
        for par in el.parameters:
            setattr(syn, "p_" + par.name, el.values[par.name])
        if el.states and self.scheme == "symplectic":
            # branch states step with the node voltages already updated
            syn.state_updater.when = "after_groups"
        return syn

    # ------------------------------------------------------------------ parameters
    def param_variable(self, name: str):
        """The Brian2 variable holding parameter ``name`` for every batch copy."""
        spec = self.params[name]
        owner = self.synapses[spec.owner] if spec.kind == "connection" else self.groups[spec.owner]
        return owner.variables[spec.variable]

    def param_size(self, name: str) -> int:
        """Number of entries of parameter ``name`` per batch copy."""
        spec = self.params[name]
        if spec.kind == "connection":
            return self.circuit.connections[name].i.size
        return spec.shape[0]

    def _flat_param(self, name) -> np.ndarray:
        """The flat values (SI) of parameter ``name`` (those of batch copy 0)."""
        return np.array(self.param_variable(name).get_value()[: self.param_size(name)])

    def write_param_copies(self, name: str, values: np.ndarray) -> None:
        """Write parameter ``name`` per batch copy: ``values`` shape ``(batch, size)``, SI.

        For references that perturb batch copies differently (finite differences);
        :meth:`set_params` keeps the copies equal.
        """
        values = np.asarray(values, dtype=float)
        if values.shape != (self.batch, self.param_size(name)):
            raise ValueError(f"values for {name!r} must have shape "
                             f"({self.batch}, {self.param_size(name)}); got {values.shape}.")
        self.param_variable(name).set_value(values.ravel())
        self._update_G_tot()

    def get_params(self) -> dict:
        """Current values of every learnable parameter.

        Returns
        -------
        dict of str to Quantity
            Keyed by public name (see :attr:`params`); shape ``(n_pre, n_post)``
            for dense connections, ``(n_syn,)`` for sparse ones, ``(n,)`` for
            per-node parameters.
        """
        out = {}
        for name, spec in self.params.items():
            flat = self._flat_param(name)
            if spec.kind == "connection" and self.circuit.connections[name].dense:
                conn = self.circuit.connections[name]
                vals = np.zeros(conn.shape)
                vals[conn.i, conn.j] = flat
            else:
                vals = flat
            out[name] = Quantity(vals, dim=get_dimensions(spec.unit))
        return out

    def _check_param(self, name, vals) -> np.ndarray:
        """Units, sign and shape of new values for parameter ``name``; flat SI array."""
        from .elements.base import check_quantity

        if name not in self.params:
            raise CircuitError(f"Unknown connection {name!r} (or node parameter); learnable "
                               f"parameters are {sorted(self.params)}.")
        spec = self.params[name]
        if spec.kind == "connection":
            q = self.circuit.connections[name].element.check_values(f"params[{name!r}]", vals)
        else:
            q = check_quantity(f"params[{name!r}]", vals, spec.unit)
            check_sign(f"params[{name!r}]", q, spec.sign)
        if np.shape(q) != spec.shape:
            raise CircuitError(f"params[{name!r}] must have shape {spec.shape}; got "
                               f"{np.shape(q)}.")
        arr = np.asarray(q, dtype=float)
        if spec.kind == "connection" and self.circuit.connections[name].dense:
            conn = self.circuit.connections[name]
            return arr[conn.i, conn.j]
        return arr

    def set_params(self, params: dict) -> None:
        """Write learnable parameters by public name.

        Parameters
        ----------
        params : dict of str to Quantity
            Values shaped like those of :meth:`get_params`. Missing names keep
            their values.
        """
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict {{parameter name: values}}; got "
                            f"{type(params).__name__}.")
        checked = {name: self._check_param(name, vals) for name, vals in params.items()}
        if checked:
            current = {n: self._flat_param(n) for n in self.params}
            current.update(checked)
            self.circuit.check_ground(current)
        for name, flat in checked.items():
            self.param_variable(name).set_value(np.tile(flat, self.batch))
        self._update_G_tot()

    def _update_G_tot(self) -> None:
        """Total static conductance at each node (for the relaxation capacitances)."""
        for name, spec in self.circuit.nodes.items():
            gl = self.groups[name].variables["g_leak"].get_value()
            G = np.asarray(gl, dtype=float).reshape(self.batch, spec.n).copy()
            for conn, side in self._incident[name]:
                if not have_same_dimensions(conn.values, siemens):
                    continue
                allv = self.synapses[conn.name].variables[conn.element.learnable].get_value()
                flat = np.abs(np.asarray(allv, dtype=float)).reshape(self.batch, -1)
                idx = conn.j if side == "in" else conn.i
                for b in range(self.batch):
                    G[b] += np.bincount(idx, weights=flat[b], minlength=spec.n)
            G = np.where(G > 0, G, 1e-30)
            self.groups[name].variables["G_tot"].set_value(G.ravel())

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict:
        """Copies of the node voltages (volt, as plain arrays), keyed by group."""
        return {n: np.array(self.groups[n].variables["v"].get_value())
                for n in self.circuit.nodes}

    def set_state(self, state: dict | None) -> None:
        """Set node voltages from :meth:`get_state` (``None``: each model's ``v0``)."""
        for n, spec in self.circuit.nodes.items():
            var = self.groups[n].variables["v"]
            if state is None:
                var.set_value(np.full(var.size, float(spec.model.v0)))
            else:
                var.set_value(state[n])

    def reset_state(self) -> None:
        """The initial state of a time-varying run: every node at its model's ``v0``,
        every state at its declared initial value (0 if none) at those voltages."""
        self.set_state(None)
        for name, spec in self.circuit.nodes.items():
            grp = self.groups[name]
            funs = spec.model.state_init_functions()
            if not funs:
                continue
            v = np.asarray(grp.variables["v"].get_value())
            learn = {var.name: np.asarray(grp.variables[var.name].get_value())
                     for var in spec.model.learnable_variables()}
            for sname, fun in funs.items():
                vals = fun(v, *learn.values())
                grp.variables[sname].set_value(np.broadcast_to(vals, v.shape).astype(float))
        for name, conn in self.circuit.connections.items():
            el = conn.element
            if not el.states:
                continue
            syn = self.synapses[name]
            i, j = self._syn_index[name]
            v_pre = np.asarray(self.groups[conn.pre].variables["v"].get_value())[i]
            v_post = np.asarray(self.groups[conn.post].variables["v"].get_value())[j]
            theta = np.asarray(syn.variables[el.learnable].get_value())
            consts = {k: float(np.asarray(v)) for k, v in el.values.items()}
            for st in el.states:
                expr = "0" if st.init is None else st.init
                fun = numpy_function(expr, ["v_pre", "v_post", el.learnable], consts,
                                     what=f"initial value of state {st.name!r} of {el!r}")
                syn.variables[st.name].set_value(
                    np.broadcast_to(fun(v_pre, v_post, theta), i.shape).astype(float))

    def voltages(self, name: str) -> Quantity:
        """Node voltages of a group, shape ``(batch, n)``."""
        if name not in self.groups:
            raise CircuitError(f"Unknown group {name!r}; groups are {sorted(self.groups)}.")
        arr = np.array(self.groups[name].variables["v"].get_value())
        return Quantity(arr.reshape(self.batch, -1), dim=volt.dim)

    def set_inputs(self, x) -> np.ndarray:
        """Set the input sources (and current clamps) for a batch.

        Parameters
        ----------
        x : Quantity, shape (n_samples, n_in), volt; or dict by input name
            Voltage inputs in volt, current inputs (``Circuit.add_current_input``) in
            amp, ``n_samples <= batch``; missing rows are filled with copies of the
            first sample (weight 0).

        Returns
        -------
        numpy.ndarray
            Weights per batch copy: ``1/n_samples`` for real samples, 0 for fillers.
        """
        circ = self.circuit
        src, currents, n_samples = circ.input_values(x)
        if n_samples > self.batch:
            raise CircuitError(
                f"x has {n_samples} samples but the network was built with "
                f"batch={self.batch}; build with a larger batch or split the data."
            )
        pad = self.batch - n_samples
        if circ.inputs:
            full = np.concatenate([src, np.repeat(src[:1], pad, 0)])
            off = 0
            for name, spec in circ.inputs.items():
                self.groups[name].variables["v"].set_value(full[:, off:off + spec.size].ravel())
                off += spec.size
        for name, arr in currents.items():
            spec = circ.currents[name]
            full = np.concatenate([arr, np.repeat(arr[:1], pad, 0)])
            self.groups[spec.target].variables[spec.variable].set_value(full.ravel())
        w = np.zeros(self.batch)
        w[:n_samples] = 1.0 / n_samples
        return w

    # ------------------------------------------------------------------ running
    @contextlib.contextmanager
    def _target(self):
        # (item access: attribute access renders the preference's documentation, 30 µs)
        old = prefs["codegen.target"]
        prefs["codegen.target"] = self.runtime_target
        try:
            yield
        finally:
            prefs["codegen.target"] = old

    def own(self, *objects) -> None:
        """Mark Brian2 objects as the package's own (added for a run or a loss)."""
        self._own_ids.update(id(o) for o in objects)

    def user_objects(self) -> list:
        """Objects a user added to :attr:`network` (not created by the package)."""
        return [o for o in self.network.objects if id(o) not in self._own_ids]

    @contextlib.contextmanager
    def static_objects_only(self):
        """Pause the user's own objects (but monitors) for a static phase, with a warning.

        A static phase relaxes the circuit to a fixed point of Kirchhoff's law;
        anything else that drives it (a ``PoissonGroup`` feeding ``I_ext``, a
        network operation) would move that fixed point and make the gradient
        meaningless. Monitors only read, and keep recording.
        """
        paused = [o for o in self.user_objects() if not _is_monitor(o) and o.active]
        if paused:
            warnings.warn(
                "Static phases run the circuit only: paused the objects added to "
                f"net.network {sorted(o.name for o in paused)} (they would drive the circuit "
                "during relaxation and move its fixed point); monitors keep recording. "
                "Time-varying runs (Adjoint, LagrangianEP) run them.",
                StaticPhaseWarning, stacklevel=3)
        for o in paused:
            o.active = False
        try:
            yield
        finally:
            for o in paused:
                o.active = True

    def run(self, duration: Quantity, namespace: dict | None = None) -> None:
        """Run the Brian2 network for ``duration`` with this network's code target.

        ``namespace`` holds external names (e.g. ``TimedArray`` objects) that
        objects added for this run refer to.

        Raises
        ------
        KeyboardInterrupt
            If the run was stopped by Ctrl-C (Brian2 stops a run at the end of
            the current step on the first Ctrl-C; the run's results are incomplete).
        """
        with self._target(), brian2_run():
            run_network(self.network, duration, dict(namespace or {}),
                        standalone=self.standalone, what="A run of this network",
                        threads=self.threads, warned=self._fallbacks)
        stopped = stop_requested()
        if Network._globally_stopped or stopped:
            Network._globally_stopped = False
            raise KeyboardInterrupt("the simulation was stopped (Ctrl-C)")

    def set_relax(self, relax: bool, tau_relax: float | None = None) -> None:
        """Switch between static relaxation (``True``) and physical dynamics.

        ``tau_relax`` (seconds, plain float) sets the relaxation time constant
        ``dt/damping``. Values are written in place, so this works during a run.
        """
        for n in self.circuit.nodes:
            var = self.groups[n].variables
            var["relax"].set_value(1.0 if relax else 0.0)
            if tau_relax is not None:
                var["tau_relax"].set_value(tau_relax)

    # ------------------------------------------------------------------ loss
    def attach_loss(self, loss) -> None:
        """Add the Brian2 objects computing ``loss``'s nudge current (once per loss)."""
        if self.loss is loss:
            return
        self.circuit._require_output()
        for obj in self._loss_objects:
            self.network.remove(obj)
        self.groups[self.circuit.output].I_nudge = 0 * volt * siemens
        with self._target():  # (the loss's synapses generate code as they connect)
            self._loss_objects = loss.make_objects(self)
        self.own(*self._loss_objects)
        self.network.add(*self._loss_objects)
        self.loss = loss

    def local_parameters(self) -> list[str]:
        """Capability: the parameters that have a local quantity ∂E/∂θ (an energy term)."""
        out = []
        for name, spec in self.params.items():
            if spec.kind == "connection":
                if self.circuit.connections[name].element.has_energy:
                    out.append(name)
            elif self.circuit.nodes[spec.owner].model.has_energy(spec.variable):
                out.append(name)
        return out

    def _node_local_function(self, name):
        """``(f, learnable names)``: numpy local quantity of a node parameter."""
        if name not in self._local_funs:
            spec = self.params[name]
            model = self.circuit.nodes[spec.owner].model
            learn = [v.name for v in model.learnable_variables()]
            consts = {k: v for k, v in model.constants().items() if k not in learn}
            fun = numpy_function(model.local_expr(spec.variable), ["v", *learn], consts,
                                 what=f"local quantity of {name!r}")
            self._local_funs[name] = (fun, learn)
        return self._local_funs[name]

    def local_quantities(self) -> dict:
        """Per-parameter local quantity ∂E/∂θ, shape ``(batch, size)``, plain SI arrays.

        Evaluates each element's local expression (the ``dE_d<θ>`` subexpression of
        its Synapses or node group) from the voltages at its own terminals. Only
        parameters with an energy term are included.
        """
        out = {}
        for name in self.local_parameters():
            spec = self.params[name]
            if spec.kind == "connection":
                conn = self.circuit.connections[name]
                pre = self.groups[conn.pre].variables["v"].get_value()
                post = self.groups[conn.post].variables["v"].get_value()
                i, j = self._syn_index[name]
                theta = self.synapses[name].variables[conn.element.learnable].get_value()
                vals = conn.element.local_numpy(pre[i], post[j], theta)
                out[name] = np.broadcast_to(vals, i.shape).reshape(self.batch, -1)
            else:
                fun, learn = self._node_local_function(name)
                grp = self.groups[spec.owner]
                v = np.asarray(grp.variables["v"].get_value())
                args = [np.asarray(grp.variables[n].get_value()) for n in learn]
                out[name] = np.broadcast_to(fun(v, *args), v.shape).reshape(self.batch, -1)
        return out

    def __repr__(self) -> str:
        return (f"CircuitNetwork(groups={sorted(self.groups)}, connections="
                f"{sorted(self.synapses)}, batch={self.batch}, target={self.target!r})")
