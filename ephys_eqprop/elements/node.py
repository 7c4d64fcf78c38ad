"""Node models: the capacitor at a node, its leak, and the node elements attached to it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from brian2 import Quantity, get_dimensions
from brian2.parsing.sympytools import str_to_sympy

from ..expressions import (
    differentiate,
    expression_dimensions,
    free_names,
    is_zero,
    numpy_function,
    rename,
)
from .base import check_quantity, valid_name
from .shunt import ShuntElement

__all__ = ["NodeModel", "NodeVariable", "RESERVED_NAMES"]

#: names the package uses in a node group (elements may not declare them)
RESERVED_NAMES = frozenset({
    "v", "C", "g_leak", "C_eff", "C_v", "G_relax", "G_tot", "I_tot", "I_ext", "I_nudge",
    "relax", "tau_relax", "t", "dt", "i", "N", "xi", "lastspike", "not_refractory",
    "lam", "nu", "v_f", "Cv_f", "I_f", "A_own", "I_adj_branches", "I_adj_loss",
})
#: prefixes and suffixes of names the package generates
_RESERVED_PREFIXES = ("q_", "dE_d", "int_dE_d", "mu_", "grad_", "Ic", "Sc")
_RESERVED_SUFFIXES = ("_f",)


def _reserved(name: str) -> bool:
    return (name in RESERVED_NAMES or name.startswith(_RESERVED_PREFIXES)
            or name.endswith(_RESERVED_SUFFIXES))


@dataclass(frozen=True)
class NodeVariable:
    """A name a node model contributes to its node group.

    Attributes
    ----------
    name : str
        The Brian2 variable's name in the node group.
    local : str
        The name in the element that declares it.
    element : ShuntElement or None
        The declaring element (``None`` for the node model's own ``g_leak``).
    kind : {"state", "learnable", "constant"}
        A state (own equation), a learnable parameter (stored per node), or a
        constant shared by the group.
    unit : Quantity
        One unit of the variable.
    """

    name: str
    local: str
    element: object
    kind: str
    unit: Quantity


@dataclass
class NodeModel:
    """A circuit node: a capacitor to ground, a leak conductance, node elements.

    Parameters
    ----------
    C : Quantity, farad
        Node capacitance (the dynamics of time-varying circuits; irrelevant to
        the fixed point of a static circuit). For a nonlinear capacitor, the
        small-signal capacitance at ``v = 0``.
    g_leak : Quantity, siemens
        Leak conductance to ground (a resistor to 0 V). Every node needs a path to
        ground, through the leak, a node element or its connections.
    shunts : tuple of ShuntElement
        Further elements between the node and ground, a battery or a bias source:
        diodes, current sources, ion channels, branches to ground with states.
    charge : str, optional
        A nonlinear capacitor: its charge ``q = Q(v)`` as a Brian2 expression in
        ``v`` and the names of ``charge_params`` (coulomb). The node integrates
        ``dv/dt = I / Q'(v)`` with ``Q'`` derived by sympy; ``Q'`` must stay positive.
    charge_params : dict of str to Quantity
        Parameters of ``charge``.
    v0 : Quantity, volt
        Initial voltage of time-varying runs (states start at their ``init`` value
        at this voltage); static phases also start their relaxation here.
    learn : sequence of str
        The node model's own learnable parameters: ``("g_leak",)`` learns the leak
        per node (default: none). The elements' learnable parameters are declared
        by the elements.

    Notes
    -----
    In the node group every element name appears as ``prefix + name`` (see
    :class:`ShuntElement`); two elements may not declare the same state or
    learnable parameter (give one a ``prefix``); shared constants of the same name
    are kept apart automatically (``sh<k>_<name>``).
    """

    C: Quantity
    g_leak: Quantity
    shunts: tuple = field(default_factory=tuple)
    charge: str | None = None
    charge_params: dict = field(default_factory=dict)
    v0: Quantity | None = None
    learn: tuple = ()

    def __post_init__(self):
        from brian2 import farad, siemens, volt

        self.C = check_quantity("C", self.C, farad, nonnegative=True, allow_array=False)
        if float(self.C) <= 0:
            raise ValueError(f"C must be positive; got {self.C!r}.")
        self.g_leak = check_quantity("g_leak", self.g_leak, siemens, nonnegative=True,
                                     allow_array=False)
        self.v0 = 0 * volt if self.v0 is None else check_quantity("v0", self.v0, volt,
                                                                   allow_array=False)
        self.shunts = tuple(self.shunts)
        for k, s in enumerate(self.shunts):
            if not isinstance(s, ShuntElement):
                raise TypeError(f"shunts[{k}] must be a ShuntElement; got {type(s).__name__}.")
        self.learn = (self.learn,) if isinstance(self.learn, str) else tuple(self.learn)
        bad = [n for n in self.learn if n != "g_leak"]
        if bad:
            raise ValueError(f"NodeModel(learn=...) may name 'g_leak' only (the elements "
                             f"declare their own learnable parameters); got {bad}.")
        if self.charge is not None:
            self._check_charge()
        self._variables = self._layout()

    # ------------------------------------------------------------------ names
    def _layout(self) -> list[NodeVariable]:
        from brian2 import siemens

        out = []
        if "g_leak" in self.learn:
            out.append(NodeVariable("g_leak", "g_leak", None, "learnable", 1.0 * siemens))
        public: dict[str, str] = {}
        wanted = []
        for k, el in enumerate(self.shunts):
            for st in el.states:
                wanted.append((k, el, st.name, "state", st.quantity))
            for p in el.parameters:
                kind = "learnable" if p.name in el.learned else "constant"
                wanted.append((k, el, p.name, kind, Quantity(1.0, dim=get_dimensions(p.unit))))
        counts: dict[str, int] = {}
        for _, el, local, _, _ in wanted:
            counts[el.prefix + local] = counts.get(el.prefix + local, 0) + 1
        for k, el, local, kind, unit in wanted:
            name = el.prefix + local
            where = f"{type(el).__name__} (shunts[{k}])"
            if kind != "constant":
                if _reserved(name):
                    raise ValueError(f"{where} declares {kind} {name!r}, a name the package "
                                     "uses in node groups; give the element a prefix=, e.g. "
                                     f"{type(el).__name__}(prefix='{type(el).__name__[:2].lower()}_').")
                if name in public:
                    raise ValueError(
                        f"{where} and {public[name]} both declare {name!r} as a state or "
                        "learnable parameter of this node model; give one of them a prefix=, "
                        f"e.g. {type(el).__name__}(prefix='{type(el).__name__[:2].lower()}2_').")
                public[name] = where
            elif counts[name] > 1 or _reserved(name):
                name = f"sh{k}_{name}"
            out.append(NodeVariable(name, local, el, kind, unit))
        names = [v.name for v in out]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"Node model names collide: {sorted(dupes)}; give the elements "
                             "prefix= values.")
        return out

    @property
    def variables(self) -> list[NodeVariable]:
        """Every name the node model contributes to its node group."""
        return list(self._variables)

    def mapping(self, element) -> dict[str, str]:
        """Element-local names → node-group names for one of the node's elements."""
        out = {"v": "v"}
        for var in self._variables:
            if var.element is element:
                out[var.local] = var.name
        return out

    def state_variables(self) -> list[NodeVariable]:
        """The node elements' states, in declaration order."""
        return [v for v in self._variables if v.kind == "state"]

    def learnable_variables(self) -> list[NodeVariable]:
        """The learnable per-node parameters, ``g_leak`` first if learned."""
        return [v for v in self._variables if v.kind == "learnable"]

    def constant_variables(self) -> list[NodeVariable]:
        """The node elements' constants, shared by the group."""
        return [v for v in self._variables if v.kind == "constant"]

    def value(self, var: NodeVariable) -> Quantity:
        """The declared (default) value of a parameter variable."""
        if var.element is None:
            return self.g_leak
        return var.element.values[var.local]

    def sign(self, var: NodeVariable) -> str:
        """Capability: the declared sign of a parameter variable."""
        if var.element is None:
            return "nonnegative"
        return var.element.parameter(var.local).sign

    # ------------------------------------------------------------------ equations
    @property
    def dynamic(self) -> bool:
        """Whether any node element has states (the node needs time-varying runs)."""
        return any(el.dynamic for el in self.shunts)

    def element_current(self) -> str:
        """The current into the node from its leak and elements, in node-group names (amp)."""
        terms = ["-g_leak*v"]
        for el in self.shunts:
            cur = rename(el.current, self.mapping(el))
            if not is_zero(cur):
                terms.append(f"({cur})")
        return " + ".join(terms)

    def element_conductance(self) -> str:
        """Small-signal conductance −∂i/∂v of the node elements at fixed states (siemens).

        Used for the static relaxation (damped Newton steps on the node elements).
        """
        terms = []
        for el in self.shunts:
            cur = rename(el.current, self.mapping(el))
            g = differentiate(f"-({cur})", "v", f"current of {el!r}")
            if g != "0":
                terms.append(f"({g})")
        return " + ".join(terms) if terms else "0*siemens"

    def state_equations(self) -> list[tuple[NodeVariable, str, str | None, tuple | None]]:
        """``(variable, rhs, init, bounds)`` of every node-element state, in group names."""
        out = []
        for var in self.state_variables():
            st = next(s for s in var.element.states if s.name == var.local)
            m = self.mapping(var.element)
            init = None if st.init is None else rename(st.init, m)
            out.append((var, rename(st.rhs, m), init, st.bounds))
        return out

    def energy_terms(self) -> list[str | None]:
        """Co-contents of the leak and of each element, in group names (``None``: none)."""
        out = ["0.5*g_leak*v**2"]
        for el in self.shunts:
            e = el.energy_expr()
            out.append(None if e is None else rename(e, self.mapping(el)))
        return out

    def local_expr(self, name: str) -> str | None:
        """Local quantity ∂E/∂θ of the node-group parameter ``name`` (``None``: no energy).

        ``None`` if an element whose current depends on ``name`` has no co-content.
        """
        elements = [None, *self.shunts]
        total = []
        for el, energy in zip(elements, self.energy_terms(), strict=True):
            current = "-g_leak*v" if el is None else rename(el.current, self.mapping(el))
            uses = name in free_names(current) or (
                el is not None and any(name in free_names(rename(s.rhs, self.mapping(el)))
                                       for s in el.states))
            if not uses:
                continue
            if energy is None:
                return None
            total.append(differentiate(energy, name, f"co-content of {el!r}"))
        terms = [t for t in total if t != "0"]
        return " + ".join(f"({t})" for t in terms) if terms else None

    def has_energy(self, name: str) -> bool:
        """Capability: parameter ``name`` has a local quantity (equilibrium propagation applies)."""
        return self.local_expr(name) is not None

    def conducts_at_dc(self, g_leak=None) -> bool:
        """Capability: the node has a DC path to ground of its own (leak or element)."""
        g = float(np.max(np.asarray(self.g_leak if g_leak is None else g_leak)))
        return g > 0 or any(el.conducts_at_dc for el in self.shunts)

    # ------------------------------------------------------------------ numbers
    def constants(self) -> dict[str, float]:
        """SI values of the group's constants (and the declared learnable values)."""
        out = {v.name: float(np.asarray(self.value(v))) for v in self._variables
               if v.kind != "state"}
        out["g_leak"] = float(self.g_leak)
        return out

    def state_init_functions(self):
        """Numpy functions of the initial states: ``{name: f(v, **params)}``.

        Each takes the initial node voltages and the values of the learnable
        parameters as keyword arrays; constants are bound.
        """
        learn = [v.name for v in self.learnable_variables()]
        consts = {k: val for k, val in self.constants().items() if k not in learn}
        out = {}
        for var, _, init, _ in self.state_equations():
            expr = "0" if init is None else init
            out[var.name] = numpy_function(expr, ["v", *learn], consts,
                                           what=f"initial value of state {var.name!r}")
        return out

    # ------------------------------------------------------------------ nonlinear capacitor
    def _check_charge(self):
        if not isinstance(self.charge, str):
            raise TypeError(f"charge must be a Brian2 expression string in v; got "
                            f"{type(self.charge).__name__}.")
        for name, val in self.charge_params.items():
            if not valid_name(name) or name == "v":
                raise ValueError(f"charge_params has an invalid name {name!r}.")
            if not isinstance(val, Quantity) and not np.isscalar(val):
                raise TypeError(f"charge_params[{name!r}] must be a scalar Quantity.")
        try:
            sym = str_to_sympy(self.charge)
        except Exception as ex:
            raise ValueError(f"Cannot parse charge={self.charge!r}: {ex}") from ex
        names = {s.name for s in sym.free_symbols}
        if "v" not in names:
            raise ValueError(f"charge={self.charge!r} must depend on the node voltage v.")
        unknown = names - {"v"} - set(self.charge_params)
        if unknown:
            raise ValueError(f"charge={self.charge!r} uses {sorted(unknown)}, which are not in "
                             f"charge_params {sorted(self.charge_params)}.")
        differentiate(self.charge, "v", "charge")
        _, fc = self.charge_numeric()
        from brian2 import coulomb, volt

        dims = expression_dimensions(self.charge, {"v": 1 * volt, **self.charge_params},
                                     f"charge={self.charge!r}")
        if dims is not get_dimensions(coulomb):
            raise TypeError(f"charge={self.charge!r} must be a charge (coulomb); it has "
                            f"dimensions {dims}.")
        c0 = float(fc(0.0))
        if not np.isfinite(c0) or c0 <= 0:
            raise ValueError(f"dQ/dv of charge={self.charge!r} at v = 0 is {c0}; a "
                             "capacitor needs a positive capacitance.")

    @property
    def nonlinear(self) -> bool:
        """Whether the capacitor is nonlinear (``charge`` given)."""
        return self.charge is not None

    def _prefixed(self, expr: str) -> str:
        return rename(expr, {n: "q_" + n for n in self.charge_params})

    def capacitance_expr(self) -> str:
        """Small-signal capacitance ``Q'(v)`` (farad), parameters prefixed ``q_``."""
        if self.charge is None:
            return "C"
        return self._prefixed(differentiate(self.charge, "v", "charge"))

    def charge_numeric(self):
        """Numpy functions ``(Q(v), Q'(v))`` in SI units (linear: ``C v`` and ``C``)."""
        if self.charge is None:
            C = float(self.C)
            return (lambda v: C * np.asarray(v, float)), (lambda v: np.full(np.shape(v), C))
        consts = {k: float(np.asarray(v)) for k, v in self.charge_params.items()}
        fq = numpy_function(self.charge, ["v"], consts, what="charge")
        fc = numpy_function(differentiate(self.charge, "v", "charge"), ["v"], consts,
                            what="capacitance")
        return fq, fc

    # ------------------------------------------------------------------ SPICE
    def spice(self, ctx, node: str, values: dict, v_init: float, state0: dict | None,
              label: str) -> None:
        """Write one node (capacitor, leak, elements) into a netlist.

        A linear capacitor is a ``C`` element; a nonlinear one is written in charge
        form (see :mod:`ephys_eqprop.netlist`); the leak is an ``R`` to ground; each
        element writes itself (:meth:`ShuntElement.spice`). ``values`` holds the
        node-group values (SI floats) of this node, ``state0`` the initial states.
        """
        C = float(self.C)
        g_leak = float(values.get("g_leak", float(self.g_leak)))
        if self.nonlinear:
            q_names = {k: float(np.asarray(val)) for k, val in self.charge_params.items()}
            nq = ctx.fresh(f"{node}_q")
            q_expr = ctx.expression(self.charge, {**q_names, "v": f"V({node})"},
                                    f"charge of node {node}")
            ctx.add(f"G_{node}_q {node} 0 {nq} 0 {ctx.number(C)}")
            ic = f" IC={ctx.number(float(self.charge_numeric()[0](v_init)) / C)}" \
                if ctx.transient else ""
            ctx.add(f"L_{node}_q {nq} 0 1{ic}")
            ctx.add(f"B_{node}_q 0 {nq} I={q_expr}/{ctx.number(C)}")
            if ctx.transient:
                ctx.initial_voltage(node, v_init)
        else:
            ctx.add(f"C_{node} {node} 0 {ctx.number(C)}"
                    + (f" IC={ctx.number(v_init)}" if ctx.transient else ""))
        if g_leak > 0:
            ctx.add(f"R_leak_{node} {node} 0 {ctx.number(1.0 / g_leak)}")
        for k, el in enumerate(self.shunts):
            m = self.mapping(el)
            local = {p.name: values[m[p.name]] for p in el.parameters}
            st0 = None if state0 is None else {s.name: state0[m[s.name]] for s in el.states}
            el.spice(ctx, node, local, st0, f"{node}_{k}")
