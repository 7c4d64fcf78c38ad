"""The adjoint circuit: exact gradients of time-varying circuits (``docs/physics.md``, §5).

The forward run integrates every state ``x`` — node voltages, node-element states
(gates, fluxes of branches to ground), branch states (inductor fluxes) — with
forward Euler, ``x_{n+1} = x_n + dt f(x_n, u_n)`` (``scheme="euler"``), from
``x_0 = x_0(θ)``, and the loss is ``C = Σ_n dt m_n c(x_n)``. Its exact gradient
comes from the adjoint recursion

    a_n = a_{n+1} + dt J_n^T a_{n+1} + dt m_n ∂c/∂x_n,     a_N = 0,
    dC/dθ = Σ_n dt a_{n+1} · ∂f/∂θ (x_n)  +  a_0 · ∂x_0/∂θ,

which is itself forward Euler, in reversed time, of the adjoint ODE
``dλ/dτ = J^T λ + ∂c/∂x``. This module builds that ODE as Brian2 objects with
the circuit's own topology:

* per node group, an adjoint group whose states are ``lam = ∂C/∂v`` (coulomb),
  one ``mu_<s> = ∂C/∂s`` per node-element state, and one accumulator
  ``grad_<p>`` per learnable per-node parameter; its *adjoint voltage*
  ``nu = lam / Q'(v)`` is a state too, set once per step (with the forward values the
  step reads) rather than a subexpression that every branch would divide again;
* per connection, adjoint synapses with one state ``mu_<s>`` per branch state
  and the accumulator ``grad`` of the learnable parameter.

Every entry of ``J`` and of ``∂f/∂θ`` is derived with sympy from the same
expression strings that generate the forward Brian2 equations (element currents,
state derivatives, capacitor charges), and evaluated on the recorded free
trajectory, which the reverse run reads from ``TimedArray`` objects. For a
reciprocal linear circuit the adjoint equations are those of the circuit itself
with its sources off, driven by the current ``-∂c/∂v`` at the outputs: ``nu``
obeys the node equations of the original circuit, in reversed time.
"""

from __future__ import annotations

import numpy as np
from brian2 import (
    Network,
    NeuronGroup,
    Quantity,
    Synapses,
    get_dimensions,
    joule,
    second,
)

from .dynamics import RunObjects
from .errors import CircuitError
from .expressions import FUNCTIONS, differentiate, is_zero, numpy_function, rename, unit_string
from .standalone import Waveform, run_network

__all__ = ["AdjointCircuit"]


def derivative(expr: str, var: str, what: str) -> str:
    """∂expr/∂var (a Brian2 string, ``"0"`` if independent), errors as CircuitError."""
    try:
        return differentiate(expr, var, what)
    except ValueError as ex:
        raise CircuitError(f"Adjoint: {ex}") from ex


def scaled(coefficient: str, factor: str) -> str | None:
    """``(coefficient)*(factor)``, or ``None`` if the coefficient is zero."""
    return None if is_zero(coefficient) else f"({coefficient})*({factor})"


def total(terms, zero_unit: str) -> str:
    """The sum of the non-``None`` terms, or a zero with the right units."""
    terms = [t for t in terms if t is not None]
    return " + ".join(terms) if terms else f"0*{zero_unit}"


def _units(q) -> str:
    return unit_string(q)


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
        #: the integrand of each parameter's gradient (a Brian2 expression in the adjoint
        #: objects' names), for synaptic monitors
        self.integrands: dict[str, str] = {}
        objects = []
        # the adjoint currents each node receives from its branches (summed variables)
        branch_currents = {name: [] for name in circ.nodes}
        for conn in circ.connections.values():
            branch_currents[conn.post].append(f"S{conn.ident}_in")
            if conn.pre in circ.nodes:
                branch_currents[conn.pre].append(f"S{conn.ident}_out")
        for name, spec in circ.inputs.items():
            grp = NeuronGroup(spec.size * net.batch, "v_f : volt", dt=net.dt,
                              name=f"adj_input_{name}*")
            self.groups[name] = grp
            objects.append(grp)
        for name, spec in circ.nodes.items():
            grp = self._node_group(name, spec, branch_currents[name])
            self.groups[name] = grp
            objects.append(grp)
        for conn in circ.connections.values():
            syn = self._synapses(conn)
            self.synapses[conn.name] = syn
            objects.append(syn)
        self.network = Network(*objects)
        #: the code runners that drive the adjoint with the forward trajectory (reused)
        self.run_objects = RunObjects(self.network)

    # ------------------------------------------------------------------ construction
    def _node_group(self, name, spec, branch_currents):
        model, net = spec.model, self.net
        states = model.state_equations()
        forward = {"v": "v_f", **{var.name: f"{var.name}_f" for var, _, _, _ in states}}
        current = model.element_current()
        what = f"current of the elements of node group {name!r}"

        def d(expr, wrt, kind):
            return rename(derivative(expr, wrt, kind), forward)

        def pull(wrt):
            """Σ_k ∂f_k/∂wrt · a_k over this node's own equations (v and its states)."""
            terms = [scaled(d(current, wrt, what), "nu")]
            for var, rhs, _, _ in states:
                terms.append(scaled(d(rhs, wrt, f"derivative of state {var.name!r}"),
                                    f"mu_{var.name}"))
            return terms

        cap = model.capacitance_expr()
        own = pull("v")
        eqs = [
            "nu : volt",
            f"Cv_f = {rename(cap, forward)} : farad",
            "v_f : volt",
            "I_adj_loss : amp",
            "C : farad",
            "g_leak : siemens",
            "I_adj_branches = " + " + ".join(branch_currents + ["0*amp"]) + " : amp",
        ]
        if model.nonlinear:
            dcap = derivative(cap, "v", "capacitance Q'(v) of a nonlinear capacitor")
            if dcap != "0":
                own.append(f"-I_f*({rename(dcap, forward)})*nu/Cv_f")
                eqs.append("I_f : amp")
        eqs.append("A_own = " + total(own, "amp") + " : amp")
        eqs.append("dlam/dt = A_own + I_adj_branches + I_adj_loss : coulomb")
        for var, _, _, _ in states:
            unit = joule / var.unit
            eqs.append(f"dmu_{var.name}/dt = {total(pull(var.name), _units(unit / second))} : "
                       f"{_units(unit)}")
            eqs.append(f"{var.name}_f : {_units(var.unit)}")
        for var in model.learnable_variables():
            unit = joule / var.unit
            integrand = total(pull(var.name), _units(unit / second))
            self.integrands[f"{name}.{var.name}"] = integrand
            eqs.append(f"dgrad_{var.name}/dt = {integrand} : {_units(unit)}")
            if var.name != "g_leak":
                eqs.append(f"{var.name} : {_units(var.unit)}")
        eqs += [f"{s} : amp" for s in branch_currents]
        eqs += [f"{var.name} : {_units(var.unit)} (shared, constant)"
                for var in model.constant_variables()]
        eqs += [f"q_{p} : {_units(v)} (shared, constant)" for p, v in model.charge_params.items()]
        grp = NeuronGroup(spec.n * net.batch, "\n".join(eqs), method="euler", dt=net.dt,
                          name=f"adj_nodes_{name}*")
        grp.C = model.C
        grp.g_leak = model.g_leak
        for var in model.constant_variables():
            setattr(grp, var.name, model.value(var))
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
        forward = {"v_pre": "v_f_pre", "v_post": "v_f_post"}
        forward.update({s: f"{s}_f" for s in states})
        forward.update({p.name: "p_" + p.name for p in el.parameters})
        what = f"current of {el!r} (connection {conn.name!r})"

        def d(expr, wrt, kind):
            return rename(derivative(expr, wrt, kind), forward)

        # the adjoint voltage difference the branch current acts across
        across = "nu_post" if (el.directed or not pre_is_node) else "(nu_post - nu_pre)"

        def pull(wrt, zero):
            """Σ_k (∂I_k/∂wrt) ν_k + Σ_j (∂h_j/∂wrt) μ_j as an expression."""
            terms = [scaled(d(el.current, wrt, what), across)]
            for st in el.states:
                terms.append(scaled(d(st.rhs, wrt, f"derivative of state {st.name!r} of "
                                                   f"{el!r}"), f"mu_{st.name}"))
            return total(terms, zero)

        q_theta = Quantity(1.0, dim=get_dimensions(conn.values))
        integrand = pull(theta, _units(joule / q_theta / second))
        self.integrands[conn.name] = integrand
        eqs = [
            f"{theta} : {_units(q_theta)}",
            "k_syn : integer (constant)",
            f"dgrad/dt = {integrand} : {_units(joule / q_theta)} (clock-driven)",
            f"S{conn.ident}_in_post = {pull('v_post', 'amp')} : amp (summed)",
        ]
        if pre_is_node:
            eqs.append(f"S{conn.ident}_out_pre = {pull('v_pre', 'amp')} : amp (summed)")
        for st in el.states:
            q_st = st.quantity
            zero = _units(joule / q_st / second)
            eqs.append(f"dmu_{st.name}/dt = {pull(st.name, zero)} : "
                       f"{_units(joule / q_st)} (clock-driven)")
            eqs.append(f"{st.name}_f : {_units(q_st)}")
        for par in el.parameters:
            eqs.append(f"p_{par.name} : {_units(el.values[par.name])} (shared, constant)")
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
            Flat gradients ``dC/dθ`` (SI) by parameter name, summed over the batch.
        """
        net, circ = self.net, self.net.circuit
        dt = float(net.dt)
        N = dcdv.shape[0]
        t0 = float(self.network.t)
        # reverse step k reads forward step N - 1 - k: the lookups run backwards through
        # the forward arrays, which are handed over as they are (no reversed copies)
        namespace = {"t_start": t0 * second, "t_last": (N - 1) * dt * second, **FUNCTIONS}
        back = "t_last - (t - t_start)"
        drives = []

        def backwards(key, arr):
            """The name of a TimedArray of ``arr`` (shape (N, size)), read at ``back``."""
            namespace[key] = Waveform(arr, dt, f"{key}*")
            return key

        for name in circ.inputs:
            k = backwards(f"ta_in_{name}", traj.v.steps(name))
            drives.append(self.run_objects.operation(self.groups[name],
                                                     f"v_f = {k}({back}, i)*volt",
                                                     name="adj_drive*"))
        for name, spec in circ.nodes.items():
            grp, fwd = self.groups[name], net.groups[name]
            code = [f"v_f = {backwards(f'ta_v_{name}', traj.v.steps(name))}({back}, i)*volt"]
            for var in spec.model.state_variables():
                k = backwards(f"ta_s_{name}_{var.name}",
                              traj.node_states.steps((name, var.name)))
                code.append(f"{var.name}_f = {k}({back}, i)*{_units(var.unit)}")
                grp.variables[f"mu_{var.name}"].set_value(0.0)
            if "I_f" in grp.variables:
                cap = spec.model.charge_numeric()[1]
                v = traj.v[name]
                I_f = cap(v[:N]) * (v[1:N + 1] - v[:N]) / dt
                code.append(f"I_f = {backwards(f'ta_I_{name}', I_f)}({back}, i)*amp")
            if name == circ.output:
                k = backwards("ta_loss", dcdv.reshape(N, -1))
                code.append(f"I_adj_loss = {k}({back}, i)*amp")
            code.append("nu = lam/Cv_f")  # once per node and step, for every branch
            drives.append(self.run_objects.operation(grp, "\n".join(code), name="adj_drive*"))
            grp.variables["lam"].set_value(0.0)
            grp.variables["g_leak"].set_value(fwd.variables["g_leak"].get_value())
            for var in spec.model.learnable_variables():
                grp.variables[f"grad_{var.name}"].set_value(0.0)
                grp.variables[var.name].set_value(fwd.variables[var.name].get_value())
        for name, conn in circ.connections.items():
            syn = self.synapses[name]
            theta = conn.element.learnable
            syn.variables[theta].set_value(net.synapses[name].variables[theta].get_value())
            syn.variables["grad"].set_value(0.0)
            code = []
            for st in conn.element.states:
                syn.variables[f"mu_{st.name}"].set_value(0.0)
                k = backwards(f"ta_b_{conn.ident}_{st.name}",
                              traj.states.steps((name, st.name)))
                code.append(f"{st.name}_f = {k}({back}, k_syn)*{_units(st.quantity)}")
            if code:
                drives.append(self.run_objects.operation(syn, "\n".join(code),
                                                         name="adj_drive*"))
        recorders = self._recorders() if net.synaptic_monitors else {}
        self.network.add(*recorders.values())
        try:
            with net._target(), self.run_objects.running(drives):
                run_network(self.network, N * dt * second, namespace,
                            standalone=net.standalone, what="The adjoint run",
                            threads=net.threads,
                            warned=net._fallbacks)
        finally:
            self.network.remove(*recorders.values())
        if recorders:
            self._record(traj, recorders, N)
        out = {}
        for pname, spec in net.params.items():
            if spec.kind == "connection":
                g = np.asarray(self.synapses[pname].variables["grad"].get_value())
            else:
                g = np.asarray(self.groups[spec.owner].variables[f"grad_{spec.variable}"]
                               .get_value())
            out[pname] = g.reshape(net.batch, -1).sum(axis=0)
        self._add_initial_state_terms(traj, out)
        self.lam = {n: np.array(self.groups[n].variables["lam"].get_value())
                    for n in circ.nodes}
        return out

    def _recorders(self) -> dict:
        """StateMonitors of the adjoint voltages and states the monitored integrands read."""
        from brian2 import StateMonitor

        circ, rec = self.net.circuit, {}
        for name, spec in circ.nodes.items():
            names = ["nu"] + [f"mu_{v.name}" for v in spec.model.state_variables()]
            rec[("node", name)] = StateMonitor(self.groups[name], names, record=True,
                                               name="adj_rec*")
        for name, conn in circ.connections.items():
            if conn.element.states:
                rec[("branch", name)] = StateMonitor(
                    self.synapses[name], [f"mu_{st.name}" for st in conn.element.states],
                    record=True, name="adj_rec*")
        return rec

    def _record(self, traj, recorders: dict, N: int) -> None:
        """Evaluate each monitored parameter's gradient integrand on the forward time axis."""
        from .monitors import record_adjoint

        net, circ = self.net, self.net.circuit

        def reverse(arr):  # reverse step k holds forward step N - 1 - k
            return np.asarray(arr).T[::-1]

        nu = {n: reverse(recorders[("node", n)].nu_) for n in circ.nodes}
        values = {}
        for pname, spec in net.params.items():
            if not any(pname in m.params for m in net.synaptic_monitors):
                continue
            expr = self.integrands[pname]
            if spec.kind == "connection":
                conn = circ.connections[pname]
                el = conn.element
                i, j = net._syn_index[pname]
                size = i.size
                args = {"v_f_pre": traj.v.steps(conn.pre)[:, i],
                        "v_f_post": traj.v.steps(conn.post)[:, j],
                        "nu_post": nu[conn.post][:, j],
                        "nu_pre": nu[conn.pre][:, i] if conn.pre in nu else np.zeros(1),
                        el.learnable: np.asarray(net.synapses[pname].variables[el.learnable]
                                                 .get_value())}
                for st in el.states:
                    args[f"{st.name}_f"] = traj.states.steps((pname, st.name))
                    args[f"mu_{st.name}"] = reverse(getattr(recorders[("branch", pname)],
                                                            f"mu_{st.name}_"))
                consts = {f"p_{k}": float(np.asarray(v)) for k, v in el.values.items()}
            else:
                model = circ.nodes[spec.owner].model
                grp = net.groups[spec.owner]
                size = circ.nodes[spec.owner].n * net.batch
                args = {"v_f": traj.v.steps(spec.owner), "nu": nu[spec.owner]}
                learn = [v.name for v in model.learnable_variables()]
                for n_ in learn:
                    args[n_] = np.asarray(grp.variables[n_].get_value())
                for v in model.state_variables():
                    args[f"{v.name}_f"] = traj.node_states.steps((spec.owner, v.name))
                    args[f"mu_{v.name}"] = reverse(getattr(recorders[("node", spec.owner)],
                                                           f"mu_{v.name}_"))
                consts = {k: val for k, val in model.constants().items() if k not in learn}
            f = numpy_function(expr, list(args), consts, what=f"adjoint integrand of {pname}")
            vals = np.broadcast_to(f(*args.values()), (N, size))
            dims = get_dimensions(joule / spec.unit / second)
            values[pname] = Quantity(np.asarray(vals, dtype=float).reshape(N, net.batch, -1),
                                     dim=dims)
        record_adjoint(net, values, N)

    def _add_initial_state_terms(self, traj, out: dict) -> None:
        """``a_0 · ∂x_0/∂θ``: states whose initial values depend on learnable parameters."""
        net, circ = self.net, self.net.circuit
        for name, spec in circ.nodes.items():
            model = spec.model
            learn = [v.name for v in model.learnable_variables()]
            if not learn:
                continue
            consts = {k: v for k, v in model.constants().items() if k not in learn}
            grp, fwd = self.groups[name], net.groups[name]
            v0 = traj.v.steps(name)[0]
            args = [np.asarray(fwd.variables[p].get_value()) for p in learn]
            for var, _, init, _ in model.state_equations():
                if init is None:
                    continue
                mu = np.asarray(grp.variables[f"mu_{var.name}"].get_value())
                for p in learn:
                    dinit = derivative(init, p, f"initial value of state {var.name!r}")
                    if dinit == "0":
                        continue
                    f = numpy_function(dinit, ["v", *learn], consts,
                                       what=f"∂{var.name}(0)/∂{p}")
                    term = (mu * f(v0, *args)).reshape(net.batch, -1).sum(axis=0)
                    out[f"{name}.{p}"] = out[f"{name}.{p}"] + term
        for name, conn in circ.connections.items():
            el = conn.element
            theta = el.learnable
            consts = {k: float(np.asarray(v)) for k, v in el.values.items()}
            i, j = net._syn_index[name]
            for st in el.states:
                if st.init is None:
                    continue
                dinit = derivative(st.init, theta, f"initial value of state {st.name!r}")
                if dinit == "0":
                    continue
                f = numpy_function(dinit, ["v_pre", "v_post", theta], consts,
                                   what=f"∂{st.name}(0)/∂{theta}")
                mu = np.asarray(self.synapses[name].variables[f"mu_{st.name}"].get_value())
                g = np.asarray(net.synapses[name].variables[theta].get_value())
                term = mu * f(traj.v.steps(conn.pre)[0][i], traj.v.steps(conn.post)[0][j], g)
                out[name] = out[name] + term.reshape(net.batch, -1).sum(axis=0)
