"""A built circuit: plain Brian2 objects plus the bookkeeping to run phases on them."""

from __future__ import annotations

import contextlib
import gc

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
from brian2.units.fundamentalunits import DIMENSIONLESS, have_same_dimensions

from .circuit import Circuit, CircuitError

__all__ = ["CircuitNetwork"]


def _unit_str(q) -> str:
    """The Brian2 unit string of a quantity's dimensions (``1`` if dimensionless)."""
    dim = get_dimensions(q)
    return "1" if dim is DIMENSIONLESS else repr(dim)


class CircuitNetwork:
    """A circuit built as Brian2 objects, with ``batch`` copies side by side.

    Attributes
    ----------
    network : brian2.Network
        The Brian2 network holding every object below.
    groups : dict of str to brian2.NeuronGroup
        One group per node group and per input, each of size ``n * batch``
        (sample ``b``, node ``k`` at index ``b * n + k``). Node voltages are ``v``.
    synapses : dict of str to brian2.Synapses
        One object per connection, keyed by connection name. The learnable
        parameter (``g``) is stored per synapse and kept equal across the batch
        copies; the local quantity is the subexpression ``dE_dg``.
    batch : int
    dt : Quantity
    circuit : Circuit
        The description it was built from.

    Notes
    -----
    Node equations (per node)::

        C_eff dv/dt = I_tot
        I_tot = -g_leak v + Σ shunt currents + Σ synapse currents + I_nudge + I_ext
        C_eff = relax (G_tot + G_shunt) tau_relax + (1 - relax) C

    With ``relax = 0`` this is the physical circuit. Static phases use
    ``relax = 1``: every node's capacitance is made proportional to its total
    conductance, so that one Euler step of length ``dt`` is one damped Jacobi
    (Newton for the shunts) sweep of Kirchhoff's current law — same fixed point,
    fewest steps (DESIGN §7).
    """

    def __init__(self, circuit: Circuit, *, batch: int, target: str, dt: Quantity,
                 method: str = "euler", scheme: str = "euler"):
        self.circuit = circuit
        self.scheme = scheme
        self.batch = batch
        self.target = target
        self.dt = dt
        self.method = method
        self.groups: dict[str, NeuronGroup] = {}
        self.synapses: dict[str, Synapses] = {}
        self.loss = None
        self._loss_objects: list = []
        self._syn_index: dict = {}
        self._incident: dict[str, list] = {name: [] for name in circuit.nodes}
        for conn in circuit.connections.values():
            self._incident[conn.post].append((conn, "in"))
            if conn.pre in circuit.nodes:
                self._incident[conn.pre].append((conn, "out"))
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
        self._update_G_tot()

    # ------------------------------------------------------------------ construction
    def _make_node_group(self, name, spec):
        model = spec.model
        currents, conductances, params = ["-g_leak*v"], ["g_leak"], []
        for prefix, shunt in model.shunt_prefixes():
            currents.append(f"({shunt.current_expr(prefix)})")
            conductances.append(f"({shunt.conductance_expr(prefix)})")
            for p in shunt.parameters:
                params.append((prefix + p.name, shunt.values[p.name]))
        syn_vars = []
        for conn, side in self._incident[name]:
            syn_vars.append(f"I{conn.ident}_{side}")
        eqs = [
            "dv/dt = I_tot/C_eff : volt",
            "C_eff = relax*G_relax*tau_relax + (1 - relax)*C_v : farad",
            f"C_v = {model.capacitance_expr()} : farad",
            "G_relax = G_tot + " + " + ".join(conductances[1:] or ["0*siemens"]) + " : siemens",
            "I_tot = " + " + ".join(currents + syn_vars + ["I_nudge", "I_ext"]) + " : amp",
            "C : farad",
            "g_leak : siemens",
            "G_tot : siemens",
            "I_ext : amp",
            "I_nudge : amp",
            "relax : 1 (shared)",
            "tau_relax : second (shared)",
        ]
        eqs += [f"{v} : amp" for v in syn_vars]
        eqs += [f"{pname} : {_unit_str(val)}" for pname, val in params]
        eqs += [f"q_{pname} : {_unit_str(val)} (shared, constant)"
                for pname, val in model.charge_params.items()]
        grp = NeuronGroup(spec.n * self.batch, "\n".join(eqs), method=self.method, dt=self.dt,
                          name=f"nodes_{name}*")
        grp.C = model.C
        grp.g_leak = model.g_leak
        for pname, val in params:
            setattr(grp, pname, val)
        for pname, val in model.charge_params.items():
            setattr(grp, "q_" + pname, val)
        grp.tau_relax = self.dt / 0.9
        if self.scheme == "euler":
            # every node and branch state steps from the values at the start of the
            # step: branch states (groups slot) before node voltages (after_groups)
            grp.state_updater.when = "after_groups"
        return grp

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
        if el.local is not None:
            eqs.append(f"dE_d{p} = {el.param_expr(el.local)} : {_unit_str(1 * el.local_unit)}")
            # time integral of the local quantity, accumulated during time-varying runs
            eqs.append(f"int_dE_d{p} : {_unit_str(1 * el.local_unit * second)}")
        if conn.pre in self.circuit.nodes and not el.directed:
            eqs.append(f"I{conn.ident}_out_pre = -({cur}) : amp (summed)")
        for st in el.states:
            eqs.append(f"d{st.name}/dt = {el.param_expr(st.rhs)} : {_unit_str(1 * st.unit)} "
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
    def get_params(self) -> dict:
        """Current values of every connection's learnable parameter.

        Returns
        -------
        dict of str to Quantity
            Keyed by connection name; shape ``(n_pre, n_post)`` for dense
            connections, ``(n_syn,)`` for sparse ones.
        """
        out = {}
        for name, conn in self.circuit.connections.items():
            flat = self._flat_param(name)
            vals = np.zeros(conn.shape) if conn.dense else flat
            if conn.dense:
                vals[conn.i, conn.j] = flat
            out[name] = Quantity(vals, dim=get_dimensions(conn.values))
        return out

    def _flat_param(self, name) -> np.ndarray:
        conn = self.circuit.connections[name]
        syn = self.synapses[name]
        allv = syn.variables[conn.element.learnable].get_value()
        return np.array(allv[: conn.i.size])

    def set_params(self, params: dict) -> None:
        """Write learnable parameters by connection name.

        Parameters
        ----------
        params : dict of str to Quantity
            Values shaped like those of :meth:`get_params`. Missing names keep
            their values.
        """
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict {{connection name: values}}; got "
                            f"{type(params).__name__}.")
        checked = {}
        for name, vals in params.items():
            if name not in self.circuit.connections:
                raise CircuitError(
                    f"Unknown connection {name!r}; connections are "
                    f"{sorted(self.circuit.connections)}."
                )
            conn = self.circuit.connections[name]
            q = conn.element.check_values(f"params[{name!r}]", vals)
            expected = conn.shape if conn.dense else (conn.i.size,)
            if np.shape(q) != expected:
                raise CircuitError(
                    f"params[{name!r}] must have shape {expected}; got {np.shape(q)}."
                )
            arr = np.asarray(q, dtype=float)
            checked[name] = arr[conn.i, conn.j] if conn.dense else arr
        if checked:
            current = {n: self._flat_param(n) for n in self.circuit.connections}
            current.update(checked)
            self.circuit.check_ground(current)
        for name, flat in checked.items():
            conn = self.circuit.connections[name]
            self.synapses[name].variables[conn.element.learnable].set_value(
                np.tile(flat, self.batch))
        self._update_G_tot()

    def _update_G_tot(self) -> None:
        """Total static conductance at each node (for the relaxation capacitances)."""
        for name, spec in self.circuit.nodes.items():
            G = np.full(spec.n, float(spec.model.g_leak))
            for conn, side in self._incident[name]:
                if not have_same_dimensions(conn.values, siemens):
                    continue
                flat = np.abs(self._flat_param(conn.name))
                idx = conn.j if side == "in" else conn.i
                G += np.bincount(idx, weights=flat, minlength=spec.n)
            G = np.where(G > 0, G, 1e-30)
            self.groups[name].variables["G_tot"].set_value(np.tile(G, self.batch))

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict:
        """Copies of the node voltages (volt, as plain arrays), keyed by group."""
        return {n: np.array(self.groups[n].variables["v"].get_value())
                for n in self.circuit.nodes}

    def set_state(self, state: dict | None) -> None:
        """Set node voltages from :meth:`get_state` (``None``: all zero)."""
        for n in self.circuit.nodes:
            var = self.groups[n].variables["v"]
            var.set_value(np.zeros(var.size) if state is None else state[n])

    def voltages(self, name: str) -> Quantity:
        """Node voltages of a group, shape ``(batch, n)``."""
        if name not in self.groups:
            raise CircuitError(f"Unknown group {name!r}; groups are {sorted(self.groups)}.")
        arr = np.array(self.groups[name].variables["v"].get_value())
        return Quantity(arr.reshape(self.batch, -1), dim=volt.dim)

    def set_inputs(self, x) -> np.ndarray:
        """Set the input sources for a batch.

        Parameters
        ----------
        x : Quantity, shape (n_samples, n_in), volt; or dict of such by input name
            ``n_samples <= batch``; missing rows are filled with copies of the
            first sample (see :meth:`sample_weights`).

        Returns
        -------
        numpy.ndarray
            Weights per batch copy: ``1/n_samples`` for real samples, 0 for fillers.
        """
        src = self.circuit.source_values(x)
        n_samples = src.shape[0]
        if n_samples > self.batch:
            raise CircuitError(
                f"x has {n_samples} samples but the network was built with "
                f"batch={self.batch}; build with a larger batch or split the data."
            )
        full = np.concatenate([src, np.repeat(src[:1], self.batch - n_samples, 0)])
        off = 0
        for name, spec in self.circuit.inputs.items():
            self.groups[name].variables["v"].set_value(full[:, off:off + spec.size].ravel())
            off += spec.size
        w = np.zeros(self.batch)
        w[:n_samples] = 1.0 / n_samples
        return w

    # ------------------------------------------------------------------ running
    @contextlib.contextmanager
    def _target(self):
        old = prefs.codegen.target
        prefs.codegen.target = self.target
        try:
            yield
        finally:
            prefs.codegen.target = old

    def run(self, duration: Quantity, namespace: dict | None = None) -> None:
        """Run the Brian2 network for ``duration`` with this network's code target.

        ``namespace`` holds external names (e.g. ``TimedArray`` objects) that
        objects added for this run refer to.
        """
        # Brian2 calls gc.collect() at the start of every run; freezing the objects
        # that already exist keeps that scan short for the many short runs of training.
        gc.freeze()
        try:
            with self._target():
                self.network.run(duration, namespace=dict(namespace or {}))
        finally:
            gc.unfreeze()

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
        self._loss_objects = loss.make_objects(self)
        self.network.add(*self._loss_objects)
        self.loss = loss

    def local_quantities(self) -> dict:
        """Per-synapse local quantity ∂E/∂θ, shape ``(batch, n_syn)``, plain SI arrays.

        Evaluates each element's local expression (the ``dE_d<θ>`` subexpression of
        its Synapses) from the voltages at its own two terminals.
        """
        out = {}
        for name, conn in self.circuit.connections.items():
            pre = self.groups[conn.pre].variables["v"].get_value()
            post = self.groups[conn.post].variables["v"].get_value()
            i, j = self._syn_index[name]
            theta = self.synapses[name].variables[conn.element.learnable].get_value()
            vals = conn.element.local_numpy(pre[i], post[j], theta)
            out[name] = np.broadcast_to(vals, i.shape).reshape(self.batch, -1)
        return out

    def __repr__(self) -> str:
        return (f"CircuitNetwork(groups={sorted(self.groups)}, connections="
                f"{sorted(self.synapses)}, batch={self.batch}, target={self.target!r})")
