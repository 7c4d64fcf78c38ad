"""The adjoint circuit: exact gradients of time-varying circuits (DESIGN §3.2).

The forward run integrates every state ``x`` (node voltages, branch states such
as inductor fluxes) with forward Euler, ``x_{n+1} = x_n + dt f(x_n, u_n)``
(``scheme="euler"``), and the loss is ``C = Σ_n dt m_n c(x_n)``. Its exact
gradient comes from the adjoint recursion

    a_n = a_{n+1} + dt J_n^T a_{n+1} + dt m_n ∂c/∂x_n,     a_N = 0,
    dC/dθ = Σ_n dt a_{n+1} · ∂f/∂θ (x_n),

which is itself forward Euler, in reversed time, of the adjoint ODE
``dλ/dτ = J^T λ + ∂c/∂x``. This module builds that ODE as Brian2 objects with
the circuit's own topology:

* per node group, an adjoint group with charge-like state ``lam = ∂C/∂v``
  (coulomb) and the *adjoint voltage* ``nu = lam / Q'(v)``;
* per connection, adjoint synapses with one state ``mu_<s> = ∂C/∂s`` per branch
  state and an accumulator of the gradient of the learnable parameter.

Every entry of the Jacobian ``J`` and of ``∂f/∂θ`` is derived with sympy from the
same expression strings that generate the forward Brian2 equations (element
currents, state derivatives, shunt currents, capacitor charges), evaluated on
the recorded free trajectory, which the reverse run reads from ``TimedArray``
objects. For a reciprocal linear circuit the adjoint equations are those of the
circuit itself with its sources off, driven by the current ``-∂c/∂v`` at the
outputs: ``nu`` obeys the node equations of the original circuit, in reversed
time.
"""

from __future__ import annotations

import numpy as np
from brian2 import (
    Network,
    NeuronGroup,
    Quantity,
    Synapses,
    TimedArray,
    get_dimensions,
    joule,
    second,
)
from brian2.units.fundamentalunits import DIMENSIONLESS
from brian2.utils.stringtools import word_substitute

from .circuit import CircuitError
from .dynamics import operation
from .elements.base import differentiate

__all__ = ["AdjointCircuit"]


def _unit_str(q) -> str:
    dim = get_dimensions(q)
    return "1" if dim is DIMENSIONLESS else repr(dim)


def _d(expr: str, var: str, what: str) -> str:
    try:
        return differentiate(expr, var, what)
    except ValueError as ex:
        raise CircuitError(f"Adjoint: {ex}") from ex


def _times(coef: str, factor: str) -> str | None:
    """``(coef)*(factor)``, or None if ``coef`` is zero."""
    return None if coef.strip() == "0" else f"({coef})*({factor})"


class AdjointCircuit:
    """Brian2 objects of the adjoint of a built circuit (one per ``CircuitNetwork``).

    Parameters
    ----------
    net : CircuitNetwork
        Built with ``scheme="euler"`` (the scheme whose exact adjoint this is).
    """

    def __init__(self, net):
        if net.scheme != "euler":
            raise CircuitError(
                "The adjoint estimator differentiates the forward-Euler scheme; build the "
                f"network with scheme='euler' (it has scheme={net.scheme!r}).")
        self.net = net
        circ = net.circuit
        self.groups: dict[str, NeuronGroup] = {}
        self.synapses: dict[str, Synapses] = {}
        self.drives: dict[str, list] = {}
        objects = []
        incident = {name: [] for name in circ.nodes}
        for conn in circ.connections.values():
            incident[conn.post].append(f"S{conn.ident}_in")
            if conn.pre in circ.nodes:
                incident[conn.pre].append(f"S{conn.ident}_out")
        for name, spec in circ.inputs.items():
            grp = NeuronGroup(spec.size * net.batch, "v_f : volt", dt=net.dt,
                              name=f"adj_input_{name}*")
            self.groups[name] = grp
            objects.append(grp)
        for name, spec in circ.nodes.items():
            grp = self._node_group(name, spec, incident[name])
            self.groups[name] = grp
            objects.append(grp)
        for conn in circ.connections.values():
            syn = self._synapses(conn)
            self.synapses[conn.name] = syn
            objects.append(syn)
        self.network = Network(*objects)

    # ------------------------------------------------------------------ construction
    def _node_group(self, name, spec, summed):
        model = spec.model
        net = self.net
        to_f = {"v": "v_f"}
        g_terms, params = ["g_leak"], []
        for prefix, shunt in model.shunt_prefixes():
            try:
                g = shunt.conductance_expr(prefix)
            except Exception as ex:
                raise CircuitError(f"Adjoint: cannot differentiate the current of {shunt!r} "
                                   f"with sympy: {ex}") from ex
            g_terms.append(f"({word_substitute(g, to_f)})")
            for p in shunt.parameters:
                params.append((prefix + p.name, shunt.values[p.name]))
        cap = model.capacitance_expr()
        own = [f"-({' + '.join(g_terms)})*nu"]
        eqs = [
            "dlam/dt = A_own + S_tot + F : coulomb",
            "nu = lam/Cv_f : volt",
            f"Cv_f = {word_substitute(cap, to_f)} : farad",
            "v_f : volt",
            "F : amp",
            "C : farad",
            "g_leak : siemens",
            "S_tot = " + " + ".join(summed + ["0*amp"]) + " : amp",
        ]
        if model.nonlinear:
            dcap = _d(cap, "v", "capacitance Q'(v) of a nonlinear capacitor")
            if dcap != "0":
                own.append(f"-I_f*({word_substitute(dcap, to_f)})*nu/Cv_f")
                eqs.append("I_f : amp")
        eqs.append("A_own = " + " ".join(own) + " : amp")
        eqs += [f"{s} : amp" for s in summed]
        eqs += [f"{p} : {_unit_str(v)}" for p, v in params]
        eqs += [f"q_{p} : {_unit_str(v)} (shared, constant)"
                for p, v in model.charge_params.items()]
        grp = NeuronGroup(spec.n * net.batch, "\n".join(eqs), method="euler", dt=net.dt,
                          name=f"adj_nodes_{name}*")
        grp.C = model.C
        grp.g_leak = model.g_leak
        for p, v in params:
            setattr(grp, p, v)
        for p, v in model.charge_params.items():
            setattr(grp, "q_" + p, v)
        grp.state_updater.when = "after_groups"  # same step order as the forward run
        return grp

    def _synapses(self, conn):
        net, circ = self.net, self.net.circuit
        el = conn.element
        theta = el.learnable
        pre_is_node = conn.pre in circ.nodes
        states = [st.name for st in el.states]
        to_f = {"v_pre": "v_f_pre", "v_post": "v_f_post"}
        to_f.update({s: f"{s}_f" for s in states})
        to_f.update({p.name: "p_" + p.name for p in el.parameters})
        what = f"current of {el!r} (connection {conn.name!r})"

        def deriv(expr, var, kind):
            return word_substitute(_d(expr, var, kind), to_f)

        cur = el.current
        D = "nu_post" if (el.directed or not pre_is_node) else "(nu_post - nu_pre)"

        def combine(var, zero):
            """Σ_k (∂I_k/∂var) ν_k + Σ_j (∂h_j/∂var) μ_j as an expression."""
            terms = [_times(deriv(cur, var, what), D)]
            for st in el.states:
                terms.append(_times(deriv(st.rhs, var, f"derivative of state {st.name!r} of "
                                                       f"{el!r}"), f"mu_{st.name}"))
            terms = [t for t in terms if t is not None]
            return " + ".join(terms) if terms else f"0*{zero}"

        q_theta = Quantity(1.0, dim=get_dimensions(conn.values))
        eqs = [
            f"{theta} : {_unit_str(q_theta)}",
            "k_syn : integer (constant)",
            f"dgrad/dt = {combine(theta, _unit_str(joule / q_theta / second))} : "
            f"{_unit_str(joule / q_theta)} (clock-driven)",
            f"S{conn.ident}_in_post = {combine('v_post', 'amp')} : amp (summed)",
        ]
        if pre_is_node:
            eqs.append(f"S{conn.ident}_out_pre = {combine('v_pre', 'amp')} : amp (summed)")
        for st in el.states:
            q_st = 1.0 * st.unit
            zero = _unit_str(joule / q_st / second)
            eqs.append(f"dmu_{st.name}/dt = {combine(st.name, zero)} : "
                       f"{_unit_str(joule / q_st)} (clock-driven)")
            eqs.append(f"{st.name}_f : {_unit_str(q_st)}")
        for par in el.parameters:
            eqs.append(f"p_{par.name} : {_unit_str(el.values[par.name])} (shared, constant)")
        syn = Synapses(self.groups[conn.pre], self.groups[conn.post], "\n".join(eqs),
                       method="euler", dt=net.dt, name=f"adj_syn_{conn.ident}*")
        i, j = net._syn_index[conn.name]
        syn.connect(i=i, j=j)
        syn.k_syn = np.arange(i.size)
        for par in el.parameters:
            setattr(syn, "p_" + par.name, el.values[par.name])
        return syn

    # ------------------------------------------------------------------ running
    def run(self, traj, dcdv: np.ndarray) -> dict:
        """Run the adjoint backwards over a recorded free trajectory.

        Parameters
        ----------
        traj : Trajectory
            From :func:`ephys_eqprop.dynamics.simulate` with ``record=True``.
        dcdv : numpy.ndarray, shape (N, batch, n_out)
            ``w_b m_n ∂c/∂v`` (amp) at each step.

        Returns
        -------
        dict of str to numpy.ndarray
            Flat per-synapse gradients ``dC/dθ`` (SI), summed over the batch.
        """
        net, circ = self.net, self.net.circuit
        dt = float(net.dt)
        N = dcdv.shape[0]
        t0 = float(self.network.t)
        ns = {"t_start": t0 * second}
        drives = []

        def ta(key, arr):
            ns[key] = TimedArray(np.ascontiguousarray(arr[::-1]), dt=dt * second,
                                 name=f"{key}*")
            return key

        for name in circ.inputs:
            k = ta(f"ta_in_{name}", traj.v[name][:N])
            drives.append(operation(self.groups[name],
                f"v_f = {k}(t - t_start, i)*volt", when="start", name="adj_drive*"))
        for name, spec in circ.nodes.items():
            grp = self.groups[name]
            v = traj.v[name]
            code = [f"v_f = {ta(f'ta_v_{name}', v[:N])}(t - t_start, i)*volt"]
            if "I_f" in grp.variables:
                cap = spec.model.charge_numeric()[1]
                I_f = cap(v[:N]) * (v[1:N + 1] - v[:N]) / dt
                code.append(f"I_f = {ta(f'ta_I_{name}', I_f)}(t - t_start, i)*amp")
            if name == circ.output:
                code.append(f"F = {ta('ta_F', dcdv.reshape(N, -1))}(t - t_start, i)*amp")
            drives.append(operation(grp, "\n".join(code), when="start", name="adj_drive*"))
            grp.variables["lam"].set_value(np.zeros(grp.variables["lam"].size))
        for name, conn in circ.connections.items():
            syn = self.synapses[name]
            theta = conn.element.learnable
            syn.variables[theta].set_value(net.synapses[name].variables[theta].get_value())
            syn.variables["grad"].set_value(np.zeros(syn.variables["grad"].size))
            code = []
            for st in conn.element.states:
                var = syn.variables[f"mu_{st.name}"]
                var.set_value(np.zeros(var.size))
                k = ta(f"ta_s_{conn.ident}_{st.name}", traj.states[(name, st.name)][:N])
                code.append(f"{st.name}_f = {k}(t - t_start, k_syn)*{_unit_str(1.0 * st.unit)}")
            if code:
                drives.append(operation(syn, "\n".join(code), when="start",
                                                name="adj_drive*"))
        self.network.add(*drives)
        try:
            with net._target():
                self.network.run(N * dt * second, namespace=ns)
        finally:
            self.network.remove(*drives)
        out = {}
        for name in circ.connections:
            g = np.asarray(self.synapses[name].variables["grad"].get_value())
            out[name] = g.reshape(net.batch, -1).sum(axis=0)
        self.lam = {n: np.array(self.groups[n].variables["lam"].get_value())
                    for n in circ.nodes}
        return out
