"""The documented base of every circuit element: parameters, states, current, co-content.

An element is declared by Brian2 expression strings with units and nothing else:

* :attr:`Element.parameters` — :class:`Parameter` objects (name, unit, default,
  whether it is learnable, its sign);
* :attr:`Element.states` — :class:`State` objects (name, unit, time derivative,
  initial value, the interval it must stay in);
* :attr:`Element.current` — the current the element drives (into its node for a
  node element, from ``pre`` to ``post`` for a branch);
* :attr:`Element.energy` — optionally, its co-content (the energy-like term whose
  derivative with respect to a parameter is the parameter's *local quantity* in
  equilibrium propagation); when it is not given it is derived with sympy where that
  is meaningful (see :meth:`Element.energy_expr`).

Everything else — the Brian2 equations of the forward run, the adjoint (a sympy
Jacobian of these expressions), the local quantities, the exact steady-state
reference, the SPICE form — follows from these declarations in the element kinds
(:mod:`~ephys_eqprop.elements.shunt`, :mod:`~ephys_eqprop.elements.branch`,
:mod:`~ephys_eqprop.elements.node`). Elements state *capabilities* the rest of the
package asks for: :attr:`Element.has_energy`, :attr:`Element.dc_path`,
:attr:`Element.dynamic`, :meth:`Element.spice`, and each parameter's sign.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from brian2 import Quantity, get_dimensions, have_same_dimensions
from brian2.units.fundamentalunits import DIMENSIONLESS, Unit

from ..expressions import (
    antiderivative,
    differentiate,
    expression_dimensions,
    free_names,
    rename,
)

__all__ = ["SIGNS", "Element", "Parameter", "State", "check_quantity", "differentiate",
           "expression_dimensions", "valid_name"]

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

#: the signs a parameter may be declared with
SIGNS = ("nonnegative", "positive", "signed")


def valid_name(name: str) -> bool:
    """Whether ``name`` can be used as a node-group, connection or variable name."""
    return isinstance(name, str) and bool(_NAME_RE.match(name))


def _unit_name(unit) -> str:
    """The importable name of a Brian2 unit (``henry`` rather than its symbol ``H``)."""
    if not isinstance(unit, Unit):
        return "1"
    from brian2.units import allunits

    for name in (getattr(unit, "name", None), str(unit)):
        if name and isinstance(getattr(allunits, name, None), Unit):
            return name
    return repr(get_dimensions(unit))  # e.g. "metre ** 2": Python with Brian2's names


def check_quantity(name: str, value, unit, *, nonnegative: bool = False, allow_array: bool = True,
                   positive: bool = False):
    """Check that ``value`` carries the dimensions of ``unit``; return it as a Quantity.

    Parameters
    ----------
    name : str
        Name of the argument, used in the error message.
    value : Quantity or array_like
        The value received.
    unit : Unit
        A Brian2 unit with the expected dimensions (``1`` for dimensionless).
    nonnegative : bool
        If true, negative entries are refused.
    allow_array : bool
        If false, only scalars are accepted.
    positive : bool
        If true, entries that are not strictly positive are refused.

    Raises
    ------
    TypeError
        If the dimensions do not match (the message shows what was received and
        how to attach the unit).
    ValueError
        If an entry is negative (``nonnegative``) or not positive (``positive``),
        not finite, or if an array was given where a scalar is needed.
    """
    plain = unit is None or isinstance(unit, int)
    expected = DIMENSIONLESS if plain else get_dimensions(unit)
    if not have_same_dimensions(value, unit if not isinstance(unit, int) else 1):
        got = get_dimensions(value)
        if expected is DIMENSIONLESS:
            raise TypeError(f"{name} must be dimensionless (a plain number); got {value!r} "
                            f"with dimensions {got}.")
        unit_name = _unit_name(unit)
        import brian2

        module = "brian2" if hasattr(brian2, unit_name) else "brian2.units.allunits"
        spelled = unit_name if unit_name == str(expected) else f"{unit_name} ({expected})"
        raise TypeError(
            f"{name} must have units of {spelled} (e.g. "
            f"{name}=1*{unit_name}); got {value!r} with dimensions "
            f"{got if got is not DIMENSIONLESS else 'dimensionless (no unit)'}. "
            f"Multiply by a Brian2 unit, e.g. `from {module} import {unit_name}`."
        )
    q = Quantity(value, dim=expected, copy=True) if not isinstance(value, Quantity) else value
    if not allow_array and np.ndim(q) != 0:
        raise ValueError(f"{name} must be a scalar; got an array of shape {np.shape(q)}.")
    arr = np.asarray(q)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got {value!r}.")
    if nonnegative and np.any(arr < 0):
        raise ValueError(f"{name} must be non-negative; got {value!r}. Conductances and "
                         "capacitances of passive elements cannot be negative.")
    if positive and np.any(arr <= 0):
        raise ValueError(f"{name} must be positive; got {value!r}.")
    return q


def check_sign(name: str, values, sign: str) -> None:
    """Raise ``ValueError`` if ``values`` break the declared ``sign`` of a parameter."""
    arr = np.asarray(values, dtype=float)
    if sign == "nonnegative" and np.any(arr < 0):
        raise ValueError(f"{name} must be non-negative; got {values!r}. Conductances of "
                         "passive elements cannot be negative.")
    if sign == "positive" and np.any(arr <= 0):
        raise ValueError(f"{name} must be positive; got {values!r}.")


@dataclass(frozen=True)
class Parameter:
    """A named parameter of an element.

    Parameters
    ----------
    name : str
        Name used in the element's expressions.
    unit : Unit
        Brian2 unit (dimensions) of the parameter.
    default : Quantity
        Default value.
    learnable : bool
        Whether the parameter is learnable by default (stored per node of a node
        group and returned by every estimator; an element instance may change the
        choice with ``learn=``).
    sign : {"signed", "nonnegative", "positive"}
        Values it may take: checked when values are set, and the default bounds
        of learning (a conductance stays ≥ 0).
    """

    name: str
    unit: object
    default: Quantity
    learnable: bool = False
    sign: str = "signed"

    def __post_init__(self):
        if not valid_name(self.name):
            raise ValueError(f"Parameter name {self.name!r} must start with a letter and hold "
                             "only letters, digits and underscores.")
        if self.sign not in SIGNS:
            raise ValueError(f"Parameter {self.name!r}: sign must be one of {SIGNS}; got "
                             f"{self.sign!r}.")


@dataclass(frozen=True)
class State:
    """A state variable of an element, with its own equation.

    Parameters
    ----------
    name : str
        Name used in the element's expressions (``phi``, ``m``).
    unit : Unit
        Brian2 unit of the state (``weber`` for a flux, ``1`` for a gate).
    rhs : str
        Its time derivative, a Brian2 expression in the element's terminal
        voltages (``v`` for a node element, ``v_pre`` and ``v_post`` for a
        branch), its states and its parameters.
    init : str, optional
        Its initial value, a Brian2 expression in the same names evaluated at the
        initial voltages (a gate's steady state at rest: ``m_inf`` written out);
        default 0.
    bounds : tuple of float, optional
        ``(low, high)`` in SI units: the interval the state must stay in (a gate in
        ``[0, 1]``). A run that leaves it stops with an error naming the time step.
    """

    name: str
    unit: object
    rhs: str
    init: str | None = None
    bounds: tuple | None = None

    def __post_init__(self):
        if not valid_name(self.name):
            raise ValueError(f"State name {self.name!r} must start with a letter and hold "
                             "only letters, digits and underscores.")
        if self.bounds is not None:
            lo, hi = self.bounds
            if not float(lo) < float(hi):
                raise ValueError(f"State {self.name!r}: bounds must be (low, high) with "
                                 f"low < high; got {self.bounds!r}.")

    @property
    def quantity(self) -> Quantity:
        """One unit of the state, as a Quantity."""
        return Quantity(1.0, dim=get_dimensions(self.unit))

    @classmethod
    def gate(cls, name: str, alpha: str, beta: str, rate_factor: str | None = None) -> State:
        """A Hodgkin–Huxley gate with opening rate ``alpha`` and closing rate ``beta``.

        ``dx/dt = k (α (1 - x) - β x)`` with ``k`` the ``rate_factor`` (a parameter
        name or expression, e.g. a temperature factor; 1 if omitted), starting at the
        steady state ``α/(α + β)`` at the initial voltage and bounded to ``[0, 1]``.

        Parameters
        ----------
        name : str
            The gate's name (``m``, ``h``, ``n``).
        alpha, beta : str
            Rate expressions (dimension 1/time) in the element's voltages and parameters.
        rate_factor : str, optional
            Dimensionless factor multiplying both rates.

        Examples
        --------
        >>> State.gate("n", "0.1/exprel(-(v + 55*mV)/(10*mV))/ms",
        ...            "0.125*exp(-(v + 65*mV)/(80*mV))/ms").bounds
        (0, 1)
        """
        k = f"{rate_factor}*" if rate_factor else ""
        return cls(name, 1, f"{k}(({alpha})*(1 - {name}) - ({beta})*{name})",
                   init=f"({alpha})/(({alpha}) + ({beta}))", bounds=(0, 1))


class Element:
    """Shared base of node elements (:class:`~ephys_eqprop.elements.ShuntElement`) and
    branch elements (:class:`~ephys_eqprop.elements.BranchElement`).

    Subclasses declare :attr:`parameters`, :attr:`states`, :attr:`current` and
    optionally :attr:`energy`, :attr:`dc_path` and :meth:`validate`.

    Parameters
    ----------
    learn : sequence of str, optional
        Which parameters are learnable, overriding the declaration of each
        :class:`Parameter` (``learn=()`` freezes them all).
    **values : Quantity
        Values of the declared parameters (defaults otherwise).
    """

    #: parameters of the element kind (override in subclasses)
    parameters: tuple[Parameter, ...] = ()
    #: state variables with their own equations (override in subclasses)
    states: tuple[State, ...] = ()
    #: the current the element drives, a Brian2 expression (amp)
    current: str = "0*amp"
    #: its co-content (watt) if given explicitly; see :meth:`energy_expr`
    energy: str | None = None
    #: whether it conducts at DC (gives its nodes a path to ground); ``None``: derived
    dc_path: bool | None = None
    #: names of the terminal voltages the expressions use (set by the element kinds)
    terminals: tuple[str, ...] = ()

    def __init__(self, *, learn=None, **values):
        known = {p.name: p for p in self.parameters}
        for key in values:
            if key not in known:
                raise TypeError(
                    f"{type(self).__name__} has no parameter {key!r}; its parameters are "
                    f"{sorted(known)}."
                )
        self.values: dict[str, Quantity] = {}
        for p in self.parameters:
            val = values.get(p.name, p.default)
            q = check_quantity(f"{type(self).__name__}({p.name}=...)", val, p.unit,
                               allow_array=False)
            check_sign(f"{type(self).__name__}({p.name}=...)", q, p.sign)
            self.values[p.name] = q
        if learn is None:
            chosen = tuple(p.name for p in self.parameters if p.learnable)
        else:
            if isinstance(learn, str):
                learn = (learn,)
            chosen = tuple(learn)
            unknown = [n for n in chosen if n not in known]
            if unknown:
                raise ValueError(f"{type(self).__name__}(learn=...) names {unknown}, which are "
                                 f"not among its parameters {sorted(known)}.")
        #: names of the parameters learned per node (node elements)
        self.learned: tuple[str, ...] = chosen
        self.validate()

    # ------------------------------------------------------------------ declarations
    def validate(self) -> None:
        """Check parameter values; subclasses raise ``ValueError`` on bad values."""

    @property
    def dynamic(self) -> bool:
        """Whether the element has states of its own (it needs time-varying runs)."""
        return bool(self.states)

    def parameter(self, name: str) -> Parameter:
        """The declared :class:`Parameter` called ``name``."""
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def names(self) -> set[str]:
        """Every name the element declares (parameters and states)."""
        return {p.name for p in self.parameters} | {s.name for s in self.states}

    def example_values(self) -> dict:
        """One example value with the right dimensions for every name of the element."""
        from brian2 import volt

        out = {t: 1 * volt for t in self.terminals}
        out.update({s.name: s.quantity for s in self.states})
        out.update(self.values)
        return out

    def check_expression(self, expr: str, unit, what: str) -> None:
        """Raise if ``expr`` uses unknown names or does not have the dimensions of ``unit``."""
        known = self.names() | set(self.terminals)
        from brian2.core.namespace import DEFAULT_UNITS

        unknown = {n for n in free_names(expr) if n not in known and n not in DEFAULT_UNITS}
        if unknown:
            raise ValueError(f"{type(self).__name__} {what} {expr!r} uses {sorted(unknown)}, "
                             f"which are neither its terminals {list(self.terminals)}, states "
                             f"nor parameters.")
        dims = expression_dimensions(expr, self.example_values(), f"{type(self).__name__} "
                                     f"{what} {expr!r}")
        if dims is not get_dimensions(unit):
            raise TypeError(f"{type(self).__name__} {what} {expr!r} must have units of "
                            f"{get_dimensions(unit)}; it has {dims}.")

    # ------------------------------------------------------------------ energy
    def energy_expr(self) -> str | None:
        """The co-content (watt) whose parameter derivatives are the local quantities.

        The declared :attr:`energy` if there is one; otherwise derived with sympy
        by :meth:`_derived_energy` (``None`` where the element has no energy term:
        a directed element, a current set by a state alone such as an inductor's).
        """
        if self.energy is not None:
            return self.energy
        cached = self.__dict__.get("_energy_cache", False)
        if cached is False:
            cached = self._derived_energy()
            self.__dict__["_energy_cache"] = cached
        return cached

    def _derived_energy(self) -> str | None:
        return None

    @property
    def has_energy(self) -> bool:
        """Capability: the element has an energy term (equilibrium propagation applies)."""
        return self.energy_expr() is not None

    def local_expr(self, name: str) -> str | None:
        """The local quantity ∂E/∂θ of parameter ``name`` (``None``: no energy term)."""
        energy = self.energy_expr()
        if energy is None:
            return None
        return differentiate(energy, name, f"co-content of {type(self).__name__}")

    @staticmethod
    def _integrate(expr: str, var: str) -> str | None:
        return antiderivative(expr, var)

    # ------------------------------------------------------------------ SPICE
    def _spice_states(self, ctx, names: dict, state0: dict | None, label: str,
                      what: str) -> None:
        """Write each state as the voltage of an internal node (the generic SPICE form).

        The node holds a 1 F capacitor (``IC=`` the state's initial value) charged by a
        ``B`` source with the state's time derivative, so that ``C dV/dt = I`` is the
        state's equation; ``names`` gets ``V(node)`` for each state.
        """
        aux = {}
        for st in self.states:
            init = 0.0 if state0 is None else float(state0.get(st.name, 0.0))
            aux[st.name] = ctx.state_node(f"{label}_{st.name}", init)
            names[st.name] = f"V({aux[st.name]})"
        for st in self.states:
            rhs = ctx.expression(st.rhs, names, f"{what}, d{st.name}/dt")
            ctx.add(f"B_{aux[st.name]} 0 {aux[st.name]} I={rhs}")

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _rename(expr: str, mapping: dict[str, str]) -> str:
        return rename(expr, mapping)

    def _repr_args(self) -> str:
        args = [f"{k}={v!r}" for k, v in self.values.items()]
        declared = tuple(p.name for p in self.parameters if p.learnable)
        if self.learned != declared:
            args.append(f"learn={self.learned!r}")
        return ", ".join(args)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._repr_args()})"
