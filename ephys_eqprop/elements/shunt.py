"""Node elements: shunts, ion channels and branches to ground, with states and parameters."""

from __future__ import annotations

import numpy as np
import sympy
from brian2.parsing.sympytools import str_to_sympy, sympy_to_str

from ..expressions import antiderivative, free_names, numpy_function
from .base import Element, valid_name

__all__ = ["ShuntElement"]


class ShuntElement(Element):
    """An element between a node and ground, a battery or a bias source.

    A shunt (a diode to a bias source, a current source), an ion channel (a
    conductance ``g m³h`` in series with its battery, whose gates are states), a
    branch to ground with a state of its own (an inductor and a resistor in
    series). Subclasses declare :attr:`parameters`, :attr:`states` and
    :attr:`current`, a Brian2 expression of the node voltage ``v``, the states and
    the parameters giving the current **into** the node (amp).

    In a node group its names (states, parameters) appear as Brian2 variables
    called ``prefix + name``: a user monitors ``m`` or ``g_Na`` on the
    ``NeuronGroup`` directly. Learnable parameters (:class:`Parameter` with
    ``learnable=True``, or chosen with ``learn=``) are stored per node and
    returned by every estimator as ``"<group>.<prefix><name>"``; the others are
    constants shared by the group.

    The co-content is ``F(v) = -∫ i dv`` at fixed states: a static circuit settles
    at a stationary point of the sum of all co-contents. For a stateless element it
    is derived with sympy unless :attr:`energy` declares it (any integration
    constant cancels). An element with states must declare it (an ion channel:
    ``½ g m³h (v - E)²``, zero where the channel carries no current), because the
    constant of ``-∫ i dv`` may depend on the states, which differ between the
    runs of Lagrangian EP; without it the element has no energy term.

    Parameters
    ----------
    prefix : str, optional
        Prepended to the element's names in the node group (needed when two
        elements of a node model declare the same learnable parameter or state).
    learn : sequence of str, optional
        Which parameters are learnable, overriding the declarations.
    **values : Quantity
        Parameter values.
    """

    terminals = ("v",)
    #: current into the node, a Brian2 expression in ``v``, the states and the parameters (amp)
    current: str = "0*amp"
    #: default prefix of the element's names in a node group
    prefix: str = ""

    def __init__(self, *, prefix: str | None = None, learn=None, **values):
        prefix = type(self).prefix if prefix is None else prefix
        if not isinstance(prefix, str) or (prefix and not valid_name(prefix)):
            raise ValueError(f"prefix must be a string of letters, digits and underscores "
                             f"starting with a letter (e.g. 'k2_'); got {prefix!r}.")
        self.prefix = prefix
        super().__init__(learn=learn, **values)

    # ------------------------------------------------------------------ capabilities
    def _derived_energy(self) -> str | None:
        if self.states:
            # at fixed states -∫ i dv is defined up to a term that may depend on the states,
            # which differ between runs: the element must declare its co-content
            return None
        return antiderivative(f"-({self.current})", "v")

    @property
    def conducts_at_dc(self) -> bool:
        """Capability: gives its node a DC path to ground (a current source does not)."""
        if type(self).dc_path is not None:
            return bool(type(self).dc_path)
        used = free_names(self.current)
        return "v" in used or any(s.name in used for s in self.states)

    # ------------------------------------------------------------------ expressions
    def current_expr(self, prefix: str) -> str:
        """The current into the node with every name renamed to ``prefix + name``."""
        return self._rename(self.current, {n: prefix + n for n in self.names()})

    def conductance_expr(self, prefix: str) -> str:
        """Small-signal conductance −∂i/∂v at fixed states (siemens), names renamed."""
        sym = str_to_sympy(self.current_expr(prefix))
        v = [s for s in sym.free_symbols if s.name == "v"]
        if not v:
            return "0*siemens"
        deriv = sympy.simplify(-sympy.diff(sym, v[0]))
        if deriv == 0:
            return "0*siemens"
        return sympy_to_str(deriv)

    def numeric(self):
        """Numpy functions ``(i(v), g(v))`` in SI units at the element's own values.

        For a stateless element (the exact steady-state reference uses them).
        """
        consts = {k: float(np.asarray(v)) for k, v in self.values.items()}
        f_i = numpy_function(self.current, ["v"], consts, what=f"current of {self!r}")
        f_g = numpy_function(self.conductance_expr(""), ["v"], consts,
                             what=f"conductance of {self!r}")
        return f_i, f_g

    # ------------------------------------------------------------------ SPICE
    def spice(self, ctx, node: str, values: dict, state0: dict | None, label: str) -> None:
        """Write the element at ``node`` into a netlist (see :mod:`ephys_eqprop.netlist`).

        The generic form: behavioural current sources. The current into the node
        is a ``B`` source from ground; each state is the voltage of an internal
        node holding a 1 F capacitor charged by a ``B`` source with the state's
        time derivative (``C dV/dt = I``). Subclasses with a native SPICE element
        override this. ``values`` are the parameter values (SI floats) at this
        node, ``state0`` the initial states (transients), ``label`` a unique name.
        """
        names = {k: float(v) for k, v in values.items()}
        names["v"] = f"V({node})"
        what = f"{type(self).__name__} at node {node}"
        self._spice_states(ctx, names, state0, label, what)
        ctx.add(f"B_{label} 0 {node} I={ctx.expression(self.current, names, what)}")
