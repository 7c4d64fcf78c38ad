"""SPICE netlist export and an ngspice runner, for validation against an external simulator.

:func:`to_spice` writes a :class:`~ephys_eqprop.Circuit` (its initial parameters)
or a built :class:`~ephys_eqprop.CircuitNetwork` (its current parameters) as a
SPICE netlist for one sample; :func:`run_ngspice` runs a netlist with ngspice in
batch mode and returns the node voltages.

Mapping (``docs/physics.md``, §1)
---------------------------------
Every element writes itself (its ``spice`` method, in its own file); the kinds
give a generic form that any element declared by expressions can use, and
elements with a native SPICE element override it:

=====================================  ==============================================
circuit                                SPICE
=====================================  ==============================================
node ``k`` of group ``h``              node ``h_k`` (ground is ``0``)
input source ``k`` of group ``x``      node ``x_k`` driven by ``V`` to ground
capacitor ``C`` of a node model        ``C`` to ground (``IC=`` for transients)
leak ``g_leak`` of a node model        ``R`` to ground, ``R = 1/g_leak``
node element (generic)                 ``B`` current source from ground into the
                                       node, ``I = i(V(node), states)``
branch element (generic)               ``B`` current source from ``pre`` to ``post``
                                       (from ground into ``post`` if directed)
a state ``s`` of an element (generic)  an internal node whose voltage is ``s``: a
                                       1 F capacitor (``IC=`` its initial value)
                                       charged by a ``B`` source ``I = ds/dt``
``Resistor`` synapse ``g``             ``R`` between its nodes, ``R = 1/g``
``Diode`` shunt (Shockley)             ``D`` to a bias node held by a ``V`` source;
                                       ``.model D(IS=I_s N=V_T/(kT/q))``
``CurrentSource`` shunt ``I``          ``I`` from ground into the node
nonlinear capacitor ``q = Q(v)``       charge-defined capacitor (see below)
``Inductor`` ``L`` with series ``R``   ``L`` (``IC=`` its current ``φ/L``) to an
                                       internal node, then ``R`` (omitted if 0)
=====================================  ==============================================

A zero conductance (or transconductance) of an element whose current it scales is
an open circuit: the element is omitted (and counted in a comment). What cannot
be written raises :class:`NetlistError`: expressions using functions ngspice's
behavioural sources lack, names SPICE cannot take.

Nonlinear capacitors
--------------------
A node with ``q = Q(v)`` is written in charge form, the way ngspice expands its own
``C ... Q='expr'`` capacitors, but with an initial condition (ngspice ignores ``IC=``
and ``.ic`` on its ``Q=`` capacitors): a ``B`` source drives the current
``Q(V(n))/C_ref`` through a 1 H inductor from an internal node ``n_q`` to ground, so
that ``V(n_q) = d(Q/C_ref)/dt``, and a ``G`` source draws ``C_ref V(n_q) = dQ/dt``
from the node. ``C_ref`` is the node's small-signal capacitance at 0 V (it only
scales the internal quantities to order one); the inductor's ``IC=`` is
``Q(v0)/C_ref`` and a ``.ic V(n)=v0`` line sets the node, so that ngspice starts
consistently from the network's state. At DC the inductor is a short and the
capacitor draws no current. Behavioural expressions are written with ngspice's
functions; integer powers are expanded into products (ngspice's ``**``, ``^`` and
``pow`` take the absolute value of a negative base).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import sympy
from brian2 import Quantity, kelvin, second, volt

from .circuit import Circuit
from .elements.base import check_quantity

__all__ = [
    "BOLTZMANN",
    "DEFAULT_OPTIONS",
    "ELEMENTARY_CHARGE",
    "NetlistError",
    "NgspiceError",
    "SpiceWriter",
    "group_voltages",
    "run_ngspice",
    "spice_expression",
    "to_spice",
]

#: Boltzmann constant (J/K), exact SI value (CODATA 2018); ngspice 39 uses the same.
BOLTZMANN = 1.380649e-23
#: Elementary charge (C), exact SI value (CODATA 2018); ngspice 39 uses the same.
ELEMENTARY_CHARGE = 1.602176634e-19

#: Solver options written to every netlist unless overridden. ngspice's defaults
#: (reltol=1e-3, vntol=1e-6 V, abstol=1e-12 A) would limit agreement with the
#: exact solution to about a microvolt; ``gmin`` (default 1e-12 S, added across
#: every diode junction) is lowered so that it does not act as an extra leak.
DEFAULT_OPTIONS = {"reltol": 1e-9, "vntol": 1e-12, "abstol": 1e-15, "gmin": 1e-18}

_SPICE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class NetlistError(ValueError):
    """A circuit (or a request) that cannot be written as a SPICE netlist."""


class NgspiceError(RuntimeError):
    """ngspice is missing, failed, or produced no results."""


def _num(value: float) -> str:
    """A float in SPICE syntax with full double precision (no unit suffixes)."""
    value = float(value)
    if not math.isfinite(value):
        raise NetlistError(f"SPICE values must be finite; got {value!r}.")
    return repr(value)


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _SPICE_NAME.match(name):
        raise NetlistError(
            f"{what} name {name!r} cannot be a SPICE node name: use a letter followed by "
            "letters, digits and underscores. Rename it in the Circuit."
        )


#: Brian2/sympy function names and their ngspice equivalents in behavioural expressions.
_SPICE_FUNCTIONS = {
    "exp": "exp", "log": "ln", "sqrt": "sqrt", "Abs": "abs", "abs": "abs", "sign": "sgn",
    "sin": "sin", "cos": "cos", "tan": "tan", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh",
    "asin": "asin", "acos": "acos", "atan": "atan", "asinh": "asinh", "acosh": "acosh",
    "atanh": "atanh", "floor": "floor", "ceiling": "ceil", "ceil": "ceil",
}


def spice_expression(expr: str, names: dict, what: str) -> str:
    """A Brian2 expression as an ngspice behavioural (``B`` source) expression.

    Parameters
    ----------
    expr : str
        The Brian2 expression (SI units: Brian2 unit names such as ``volt`` or ``mV``
        become their SI values).
    names : dict of str to str or float
        Replacement of each name: SPICE text (e.g. ``"V(h_0)"``) or a number (SI).
    what : str
        What the expression belongs to, for error messages.

    Returns
    -------
    str
        The expression, without spaces; integer powers expanded into products.

    Raises
    ------
    NetlistError
        If the expression uses a name that is neither in ``names`` nor a Brian2 unit,
        or a function ngspice does not have.
    """
    from brian2.core.namespace import DEFAULT_UNITS
    from brian2.parsing.sympytools import str_to_sympy

    try:
        sym = str_to_sympy(expr)
    except Exception as ex:
        raise NetlistError(f"{what}: cannot parse {expr!r}: {ex}") from ex
    # exprel stays a function through the substitution of numbers (see below)
    from brian2.core.functions import exprel as brian_exprel

    sym = sym.replace(brian_exprel, sympy.Function("exprel"))
    # numbers (parameters, units) in first, so that sympy folds the constants
    numeric = {}
    for s in sym.free_symbols:
        val = names.get(s.name, DEFAULT_UNITS.get(s.name) if s.name not in names else None)
        if val is not None and not isinstance(val, str):
            numeric[s] = sympy.Float(float(val))
    sym = sym.subs(numeric)

    def name_text(name):
        if name in names:
            val = names[name]
        elif name in DEFAULT_UNITS:
            val = float(DEFAULT_UNITS[name])
        else:
            raise NetlistError(f"{what}: the expression {expr!r} uses {name!r}, which is "
                               "neither a parameter of the element nor a Brian2 unit.")
        if isinstance(val, str):
            return val
        text = _num(val)
        return f"({text})" if val < 0 else text

    def out(e) -> str:
        if e.is_Symbol:
            return name_text(e.name)
        if e.is_Number or e.is_NumberSymbol:
            val = float(e)
            return f"({_num(val)})" if val < 0 else _num(val)
        if e.is_Add:
            return "(" + "+".join(out(a) for a in e.args) + ")"
        if e.is_Mul:
            return "(" + "*".join(out(a) for a in e.args) + ")"
        if e.is_Pow:
            base, ex = e.args
            if base == sympy.E:
                return f"exp({out(ex)})"
            if ex.is_Integer:
                n = int(ex)
                if n == 0:
                    return "1"
                body = "(" + "*".join([out(base)] * abs(n)) + ")"
                return body if n > 0 else f"(1/{body})"
            if ex == sympy.Rational(1, 2):
                return f"sqrt({out(base)})"
            if ex == sympy.Rational(-1, 2):
                return f"(1/sqrt({out(base)}))"
            return f"pow({out(base)},{out(ex)})"
        if isinstance(e, (sympy.Min, sympy.Max)):
            fn = "min" if isinstance(e, sympy.Min) else "max"
            args = [out(a) for a in e.args]
            text = args[0]
            for a in args[1:]:
                text = f"{fn}({text},{a})"
            return text
        if isinstance(e, sympy.Function) or e.is_Function:
            fname = type(e).__name__
            if fname == "exprel" and len(e.args) == 1:
                # (e^x - 1)/x with its limit 1 + x/2 near 0: ngspice's ternary operator
                a = out(e.args[0])
                return f"((abs({a})<1e-6)?(1+({a})/2):((exp({a})-1)/({a})))"
            if fname in _SPICE_FUNCTIONS and len(e.args) == 1:
                return f"{_SPICE_FUNCTIONS[fname]}({out(e.args[0])})"
            raise NetlistError(f"{what}: the expression {expr!r} uses the function "
                               f"{fname!r}, which ngspice behavioural sources do not have; "
                               f"SPICE knows {sorted(set(_SPICE_FUNCTIONS.values()))}.")
        raise NetlistError(f"{what}: cannot write {e!r} (in {expr!r}) as an ngspice "
                           "expression.")

    return out(sym)


def _analysis_line(analysis) -> tuple[str, bool]:
    """The analysis dot command and whether it is a transient."""
    if analysis == "op":
        return ".op", False
    if isinstance(analysis, tuple) and len(analysis) == 3 and analysis[0] == "tran":
        tstep = check_quantity("analysis tstep", analysis[1], second, allow_array=False)
        tstop = check_quantity("analysis tstop", analysis[2], second, allow_array=False)
        if not 0 < float(tstep) < float(tstop):
            raise NetlistError(
                f"A transient needs 0 < tstep < tstop; got tstep={tstep}, tstop={tstop}."
            )
        # tstep is also the maximum internal step; "uic": start from the IC= values
        # (the network's node voltages) instead of a DC operating point.
        return (f".tran {_num(float(tstep))} {_num(float(tstop))} 0 {_num(float(tstep))} uic",
                True)
    raise NetlistError(
        f"analysis must be 'op' or ('tran', tstep, tstop) with times in seconds; got "
        f"{analysis!r}."
    )


def _current_values(circuit, net, x, sample: int) -> dict:
    """Currents (amp) of the current inputs for one sample, by input name."""
    if x is not None:
        _, currents = circuit.split_inputs(x)
        return {k: v[sample] for k, v in circuit.current_values(currents).items()}
    out = {}
    for name, spec in circuit.currents.items():
        if net is not None:
            arr = np.asarray(net.groups[spec.target].variables[spec.variable].get_value())
            out[name] = arr.reshape(net.batch, -1)[sample]
        elif spec.value is not None:
            out[name] = spec.value
        else:
            raise NetlistError(f"The circuit has the current input {name!r}: pass x= (amp) to "
                               "give its currents, or a built network whose inputs are set.")
    return out


def _source_values(circuit, net, x, sample: int) -> np.ndarray:
    """Source voltages (volt) of one sample, in the order of the circuit's inputs."""
    if not circuit.inputs:
        return np.zeros(0)
    if x is not None:
        volts, _ = circuit.split_inputs(x)
        src = circuit.source_values(volts if volts is not None else {})
        if not 0 <= sample < src.shape[0]:
            raise NetlistError(f"sample={sample} is out of range for x with {src.shape[0]} "
                               "sample(s).")
        return src[sample]
    if net is not None:
        parts = [np.asarray(net.groups[name].variables["v"].get_value()).reshape(net.batch, -1)
                 [sample] for name in circuit.inputs]
        return np.concatenate(parts) if parts else np.zeros(0)
    if circuit.data_inputs:
        raise NetlistError(
            f"The circuit has data inputs {circuit.data_inputs}: pass x= (volt) to give "
            "the source voltages, or pass a built network whose inputs are set."
        )
    parts = [np.concatenate([s.value, -s.value]) if s.doubled else s.value
             for s in circuit.inputs.values()]
    return np.concatenate(parts) if parts else np.zeros(0)


def to_spice(net_or_circuit, x=None, *, sample: int = 0, analysis="op",
             title: str = "ephys_eqprop circuit", temperature: Quantity = 300.15 * kelvin,
             options: dict | None = None, diode: str = "D") -> str:
    """Write a circuit as a SPICE netlist (one sample), ready for ngspice.

    Parameters
    ----------
    net_or_circuit : CircuitNetwork or Circuit
        A built network (its current parameters from ``get_params()``, its input
        voltages and, for a transient, its node voltages and inductor currents
        ``φ/L`` as initial conditions) or a circuit description (its initial
        parameters, every state starting at 0).
    x : Quantity, shape (n_samples, n_in), volt; or dict of such by input name, optional
        Data input values. Default: the network's current inputs; required for a
        :class:`Circuit` with data inputs.
    sample : int
        Which sample of ``x`` (or batch copy of the network) to write.
    analysis : "op" or tuple ("tran", tstep, tstop)
        DC operating point, or a transient from the initial conditions (``uic``)
        with output step and maximum internal step ``tstep`` up to ``tstop``
        (both Quantity, second).
    title : str
        The netlist's title line (one line).
    temperature : Quantity, kelvin
        Circuit temperature, written as ``.options temp=... tnom=...`` (Celsius).
        Diode emission coefficients are ``N = V_T / (k T / q)`` at this
        temperature, so the exported diodes have exactly the model's ``V_T``.
    options : dict, optional
        SPICE ``.options`` overriding :data:`DEFAULT_OPTIONS`.
    diode : {"D", "B"}
        How diodes are written. ``"D"``: SPICE diode elements with a ``.model``
        (portable). Note that SPICE diode models replace the exponential by a
        cubic approximation below ``-3 N kT/q`` (reverse bias; ngspice
        ``dioload.c``), which differs from the Shockley law by up to about 5 %
        of ``I_s``. ``"B"``: ngspice behavioural current sources with the exact
        Shockley law ``I = I_s (exp(V/V_T) - 1)``.

    Returns
    -------
    str
        The netlist, ending with ``.end``.

    Raises
    ------
    NetlistError
        For expressions ngspice cannot evaluate (a function its behavioural
        sources lack), names SPICE cannot take (or that collide, SPICE being
        case-insensitive), or a malformed request.

    Examples
    --------
    >>> import ephys_eqprop as eq
    >>> from brian2 import volt
    >>> c = eq.layered(2, [3], 1, rng=0)
    >>> text = to_spice(c, [[0.5, -0.2]] * volt)
    """
    if isinstance(net_or_circuit, Circuit):
        net, circuit = None, net_or_circuit
        # a Circuit keeps each connection's values flat, one per (i, j) pair
        flat = {n: np.asarray(c.values, dtype=float).ravel()
                for n, c in circuit.connections.items()}
    elif isinstance(getattr(net_or_circuit, "circuit", None), Circuit):
        net, circuit = net_or_circuit, net_or_circuit.circuit
        params = net.get_params()
        flat = {}
        for n, c in circuit.connections.items():
            vals = np.asarray(params[n], dtype=float)
            flat[n] = vals[c.i, c.j] if c.dense else vals.ravel()
    else:
        raise NetlistError(
            f"to_spice needs a Circuit or a built CircuitNetwork; got "
            f"{type(net_or_circuit).__name__}."
        )
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or sample < 0:
        raise NetlistError(f"sample must be a non-negative integer; got {sample!r}.")
    if net is not None and sample >= net.batch:
        raise NetlistError(f"sample={sample} is out of range: the network has batch={net.batch}.")
    if not isinstance(title, str) or "\n" in title or "\r" in title:
        raise NetlistError(f"title must be a single line of text; got {title!r}.")
    temperature = check_quantity("temperature", temperature, kelvin, allow_array=False)
    if float(temperature) <= 0:
        raise NetlistError(f"temperature must be positive (kelvin); got {temperature}.")
    opts = dict(DEFAULT_OPTIONS)
    opts.update(options or {})
    for key in opts:
        if not isinstance(key, str) or not _SPICE_NAME.match(key):
            raise NetlistError(f"options keys must be SPICE option names; got {key!r}.")
    analysis_line, transient = _analysis_line(analysis)
    if diode not in ("D", "B"):
        raise NetlistError(f"diode must be 'D' (diode elements) or 'B' (behavioural sources "
                           f"with the exact Shockley law); got {diode!r}.")

    # ---- names: SPICE node names are case-insensitive
    taken: dict[str, str] = {}
    for gname in list(circuit.inputs) + list(circuit.nodes):
        _check_name(gname, "Group")
        low = gname.lower()
        if low in taken:
            raise NetlistError(
                f"Groups {taken[low]!r} and {gname!r} differ only in case; SPICE node names "
                "are case-insensitive. Rename one of them."
            )
        taken[low] = gname

    def node(group: str, k: int) -> str:
        return f"{group}_{k}"

    used = {node(g, k).lower() for g, s in circuit.inputs.items() for k in range(s.size)}
    used |= {node(g, k).lower() for g, s in circuit.nodes.items() for k in range(s.n)}
    kT_q = BOLTZMANN * float(temperature) / ELEMENTARY_CHARGE
    ctx = SpiceWriter(transient=transient, diode=diode, kT_q=kT_q, used=used)
    t_celsius = float(temperature) - 273.15
    head = [
        title,
        f"* exported by ephys_eqprop.netlist.to_spice; temperature {float(temperature):.2f} K "
        f"({t_celsius:.2f} C), kT/q = {kT_q!r} V",
        f".options temp={_num(t_celsius)} tnom={_num(t_celsius)} "
        + " ".join(f"{k}={_num(v) if not isinstance(v, str) else v}" for k, v in opts.items()),
    ]

    # ---- inputs: ideal voltage sources
    src = _source_values(circuit, net, x, int(sample))
    ctx.add("* inputs: ideal voltage sources to ground")
    off = 0
    for gname, spec in circuit.inputs.items():
        kind = "fixed bias" if spec.value is not None else "data"
        ctx.add(f"* input {gname!r} ({kind}{', doubled (x, -x)' if spec.doubled else ''})")
        for k in range(spec.size):
            ctx.add(f"V_{node(gname, k)} {node(gname, k)} 0 DC {_num(src[off + k])}")
        off += spec.size
    for cname, amps in _current_values(circuit, net, x, int(sample)).items():
        spec = circuit.currents[cname]
        ctx.add(f"* current input {cname!r} into node group {spec.target!r}")
        for k in range(spec.n):
            ctx.add(f"I_{cname}_{k} 0 {node(spec.target, k)} DC {_num(amps[k])}")

    # ---- nodes: capacitor, leak, node elements (each element writes itself)
    for gname, spec in circuit.nodes.items():
        model = spec.model
        values, v_init, states = _node_values(circuit, net, gname, int(sample), transient)
        if model.nonlinear:
            ctx.add(f"* node group {gname!r}: {spec.n} nodes, charge Q(v) = {model.charge} with "
                    f"{model.charge_params} (charge form, C_ref = {float(model.C)!r} F), "
                    f"g_leak = {float(model.g_leak)!r} S")
        else:
            ctx.add(f"* node group {gname!r}: {spec.n} nodes, C = {float(model.C)!r} F, "
                    f"g_leak = {float(model.g_leak)!r} S")
        for k in range(spec.n):
            n = node(gname, k)
            try:
                model.spice(ctx, n, {key: val[k] for key, val in values.items()}, v_init[k],
                            None if states is None else
                            {key: val[k] for key, val in states.items()}, n)
            except NetlistError as ex:
                raise NetlistError(f"Node group {gname!r}: {ex}") from ex
    ctx.flush_shared()

    # ---- connections: each synapse writes itself; a zero parameter that switches the
    # element off is an open circuit (omitted)
    for name, conn in circuit.connections.items():
        el, g = conn.element, flat[name]
        st = None
        if net is not None and transient and el.states:
            st = {s.name: np.asarray(net.synapses[name].variables[s.name].get_value())
                  .reshape(net.batch, -1)[sample] for s in el.states}
        elif transient and el.states:
            st = _branch_initial_states(circuit, conn, src, g)
        live = np.flatnonzero(g != 0) if el.open_when_zero else np.arange(g.size)
        what, zero = el.spice_words
        ctx.add(f"* connection {name!r}: {live.size} {what}"
                + (f", {g.size - live.size} zero {zero}(s) omitted (open circuit)"
                   if live.size < g.size else "")
                + (el.spice_note() if hasattr(el, "spice_note") else ""))
        for s in live:
            a = node(conn.pre, int(conn.i[s]))
            b = node(conn.post, int(conn.j[s]))
            try:
                el.spice(ctx, a, b, float(g[s]), None if st is None else
                         {k: v[s] for k, v in st.items()}, f"{conn.ident}_{s}")
            except NetlistError as ex:
                raise NetlistError(f"Connection {name!r}: {ex}") from ex
    lines = head + ctx.lines
    if ctx.ic_lines:
        lines.append("* initial voltages of the charge-form (nonlinear) capacitor nodes")
        lines.append(".ic " + " ".join(ctx.ic_lines))
    lines.append(analysis_line)
    lines.append(".end")
    return "\n".join(lines) + "\n"


def _branch_initial_states(circuit, conn, src: np.ndarray, theta: np.ndarray) -> dict:
    """A description's branch states at the start: their ``init`` at the initial voltages
    (node models' ``v0``, inputs at their source voltages)."""
    from .expressions import numpy_function

    def voltages(group):
        if group in circuit.inputs:
            off = 0
            for name, spec in circuit.inputs.items():
                if name == group:
                    return src[off:off + spec.size]
                off += spec.size
        spec = circuit.nodes[group]
        return np.full(spec.n, float(spec.model.v0))

    el = conn.element
    consts = {k: float(np.asarray(v)) for k, v in el.values.items()}
    v_pre, v_post = voltages(conn.pre)[conn.i], voltages(conn.post)[conn.j]
    out = {}
    for st in el.states:
        f = numpy_function("0" if st.init is None else st.init,
                           ["v_pre", "v_post", el.learnable], consts)
        out[st.name] = np.broadcast_to(f(v_pre, v_post, theta), theta.shape)
    return out


def _node_values(circuit, net, gname: str, sample: int, transient: bool):
    """Per-node values (SI) of a group's parameters, initial voltages and states, one sample.

    From a built network: its current values (and, for a transient, its state);
    from a description: the declared values, states at their initial values.
    """
    spec = circuit.nodes[gname]
    model, n = spec.model, spec.n
    values = {"g_leak": np.full(n, float(model.g_leak))}
    for var in model.constant_variables():
        values[var.name] = np.full(n, float(np.asarray(model.value(var))))
    for var in model.learnable_variables():
        values[var.name] = np.asarray(spec.values[var.name], dtype=float)
    v_init = np.full(n, float(model.v0))
    states = None
    if net is not None:
        grp = net.groups[gname]

        def per_node(key):
            arr = np.asarray(grp.variables[key].get_value(), dtype=float)
            return np.full(n, float(arr[0])) if arr.size == 1 else \
                arr.reshape(net.batch, n)[sample]

        for key in values:
            values[key] = per_node(key)
        if transient:
            v_init = per_node("v")
            states = {var.name: per_node(var.name) for var in model.state_variables()}
    elif transient and model.state_variables():
        learn = [values[v.name] for v in model.learnable_variables()]
        states = {k: np.broadcast_to(f(v_init, *learn), (n,))
                  for k, f in model.state_init_functions().items()}
    return values, v_init, states


class SpiceWriter:
    """What an element's ``spice`` method writes into: netlist lines and shared pieces.

    Elements call :meth:`add` for their lines, :meth:`expression` to turn a Brian2
    expression into an ngspice one, :meth:`fresh` for internal node names,
    :meth:`state_node` for a state held on a 1 F capacitor, and
    :meth:`bias_node` / :meth:`diode_model` for sources and models shared by
    many elements (written once, after the nodes).

    Attributes
    ----------
    transient : bool
        Whether the analysis is a transient (elements then write initial conditions).
    diode : {"D", "B"}
        How diodes are to be written (see :func:`to_spice`).
    kT_q : float
        Thermal voltage at the netlist's temperature (volt).
    """

    def __init__(self, *, transient: bool, diode: str, kT_q: float, used: set):
        self.transient, self.diode, self.kT_q = transient, diode, kT_q
        self.lines: list[str] = []
        self.ic_lines: list[str] = []
        self._used = set(used)
        self._bias: dict[float, str] = {}
        self._bias_lines: list[str] = []
        self._models: dict[tuple, str] = {}

    def add(self, line: str) -> None:
        """Append one netlist line."""
        self.lines.append(line)

    @staticmethod
    def number(value: float) -> str:
        """A float in SPICE syntax with full double precision."""
        return _num(value)

    def expression(self, expr: str, names: dict, what: str) -> str:
        """A Brian2 expression as an ngspice behavioural expression (:func:`spice_expression`)."""
        return spice_expression(expr, names, what)

    def fresh(self, base: str) -> str:
        """A node name starting with ``base`` that no other node has."""
        name = base
        while name.lower() in self._used:
            name += "_"
        self._used.add(name.lower())
        return name

    def state_node(self, base: str, init: float) -> str:
        """An internal node holding a state as its voltage: a 1 F capacitor to ground."""
        name = self.fresh(base)
        self.add(f"C_{name} {name} 0 1" + (f" IC={_num(init)}" if self.transient else ""))
        return name

    @staticmethod
    def refuse(message: str) -> NetlistError:
        """The error an element raises for what it cannot write."""
        return NetlistError(message)

    def initial_voltage(self, node: str, value: float) -> None:
        """Add ``V(node)=value`` to the ``.ic`` line."""
        self.ic_lines.append(f"V({node})={_num(value)}")

    def bias_node(self, voltage: float) -> str:
        """A node held at ``voltage`` by one shared source (ground for 0 V)."""
        voltage = float(voltage)
        if voltage == 0.0:
            return "0"
        if voltage not in self._bias:
            name = self._bias[voltage] = self.fresh(f"vbias{len(self._bias)}")
            self._bias_lines.append(f"V_{name} {name} 0 DC {_num(voltage)}")
        return self._bias[voltage]

    def diode_model(self, I_s: float, V_T: float) -> str:
        """The name of a shared ``.model ... D(IS= N=)`` with the exact ``V_T``."""
        key = (float(I_s), float(V_T))
        if key not in self._models:
            self._models[key] = f"dmod{len(self._models)}"
        return self._models[key]

    def flush_shared(self) -> None:
        """Write the shared bias sources and models collected so far."""
        if self._bias_lines:
            self.add("* bias sources and batteries")
            self.lines += self._bias_lines
            self._bias_lines = []
        if self._models:
            self.add(f"* Shockley diodes: N = V_T / (kT/q), kT/q = {self.kT_q!r} V")
            for (I_s, V_T), mname in self._models.items():
                self.add(f".model {mname} D(IS={_num(I_s)} N={_num(V_T / self.kT_q)})")
            self._models_written = dict(self._models)


# ---------------------------------------------------------------------- running ngspice
def _parse_raw(text: str) -> list[dict]:
    """Parse an ngspice ASCII raw file into plots ``{"name", "vars", "data"}``."""
    plots = []
    lines = text.splitlines()
    k = 0
    while k < len(lines):
        if not lines[k].startswith("Title:"):
            k += 1
            continue
        header = {}
        while not lines[k].startswith("Variables:"):
            key, _, val = lines[k].partition(":")
            header[key.strip()] = val.strip()
            k += 1
        if "complex" in header.get("Flags", ""):
            raise NgspiceError("Complex-valued ngspice output (AC analysis) is not supported.")
        n_vars, n_pts = int(header["No. Variables"]), int(header["No. Points"])
        names = [lines[k + 1 + m].split()[1] for m in range(n_vars)]
        k += 1 + n_vars
        if not lines[k].startswith("Values:"):
            raise NgspiceError(f"Unexpected line in the ngspice raw file: {lines[k]!r}.")
        k += 1
        tokens = []
        while len(tokens) < n_pts * (n_vars + 1) and k < len(lines):
            tokens.extend(lines[k].split())
            k += 1
        data = np.array(tokens[: n_pts * (n_vars + 1)], dtype=float).reshape(n_pts, n_vars + 1)
        plots.append({"name": header.get("Plotname", ""), "vars": names, "data": data[:, 1:]})
    return plots


def _voltages(plot: dict) -> tuple[np.ndarray | None, dict]:
    times, out = None, {}
    for m, name in enumerate(plot["vars"]):
        low = name.lower()
        if low == "time":
            times = plot["data"][:, m]
        elif low.startswith("v(") and low.endswith(")"):
            out[low[2:-1]] = plot["data"][:, m]
    return times, out


def run_ngspice(netlist: str, *, timeout: float = 120.0):
    """Run a netlist with ngspice in batch mode and return its node voltages.

    Parameters
    ----------
    netlist : str
        A netlist with one analysis (``.op`` or ``.tran``), e.g. from :func:`to_spice`.
    timeout : float
        Seconds before ngspice is stopped.

    Returns
    -------
    dict of str to Quantity, volt
        For a DC operating point: node name (lower case, as ngspice reports it)
        to its voltage.
    tuple (times, waveforms)
        For a transient: ``times`` (Quantity, shape (n_t,), second, the simulator's
        own time points, not evenly spaced) and a dict of node name to
        Quantity, shape (n_t,), volt.

    Raises
    ------
    NgspiceError
        If ngspice is not installed, fails, or writes no results.
    """
    exe = shutil.which("ngspice")
    if exe is None:
        raise NgspiceError(
            "ngspice is not installed (not found on PATH). Install it, e.g. "
            "`apt-get install -y ngspice` on Debian/Ubuntu."
        )
    with tempfile.TemporaryDirectory(prefix="ephys_eqprop_spice_") as tmp:
        cir, raw = os.path.join(tmp, "circuit.cir"), os.path.join(tmp, "out.raw")
        with open(cir, "w") as fh:
            fh.write(netlist)
        env = dict(os.environ, SPICE_ASCIIRAWFILE="1")
        try:
            proc = subprocess.run([exe, "-b", "-r", raw, cir], cwd=tmp, env=env,
                                  capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as ex:
            raise NgspiceError(f"ngspice did not finish within {timeout} s.") from ex
        log = (proc.stdout + proc.stderr).strip()
        errors = [ln for ln in log.splitlines() if ln.lower().lstrip().startswith("error")
                  or "timestep too small" in ln.lower()
                  or "simulation(s) aborted" in ln.lower()]
        if proc.returncode != 0 or errors or not os.path.exists(raw):
            tail = "\n".join(log.splitlines()[-15:])
            raise NgspiceError(
                f"ngspice failed (exit code {proc.returncode}); its output ends with:\n{tail}"
            )
        with open(raw) as fh:
            try:
                plots = _parse_raw(fh.read())
            except (IndexError, ValueError, KeyError) as ex:
                raise NgspiceError(f"Cannot read ngspice's raw output ({ex}); its log ends "
                                   "with:\n" + "\n".join(log.splitlines()[-15:])) from ex
    if len(plots) != 1:
        raise NgspiceError(
            f"Expected one analysis in the ngspice output; got {len(plots)} "
            f"({[p['name'] for p in plots]}). Give the netlist a single .op or .tran."
        )
    times, wave = _voltages(plots[0])
    if times is None:
        return {n: Quantity(float(v[0]), dim=volt.dim) for n, v in wave.items()}
    return (Quantity(times, dim=second.dim),
            {n: Quantity(v, dim=volt.dim) for n, v in wave.items()})


def group_voltages(result, name: str, n: int) -> Quantity:
    """The voltages of node group ``name`` (``n`` nodes) from a :func:`run_ngspice` result.

    Parameters
    ----------
    result : dict or tuple
        What :func:`run_ngspice` returned.
    name : str
        Node group (or input) name in the circuit.
    n : int
        Number of nodes (sources) in the group.

    Returns
    -------
    Quantity, volt
        Shape ``(n,)`` for an operating point, ``(n_t, n)`` for a transient.
    """
    wave = result[1] if isinstance(result, tuple) else result
    keys = [f"{name}_{k}".lower() for k in range(n)]
    missing = [k for k in keys if k not in wave]
    if missing:
        raise KeyError(f"Nodes {missing[:5]} are not in the ngspice results.")
    arr = np.stack([np.asarray(wave[k], dtype=float) for k in keys], axis=-1)
    return Quantity(arr, dim=volt.dim)
