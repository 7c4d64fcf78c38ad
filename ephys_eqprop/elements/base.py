"""Base classes for circuit elements.

Every element of a circuit is one of three kinds:

* a **node model** (:class:`NodeModel`): the capacitor at a node, its leak to
  ground and any number of shunt elements;
* a **shunt element** (:class:`ShuntElement`): a two-terminal element between a
  node and ground or a fixed bias source (diode to a bias, current source);
* a **branch element** (:class:`BranchElement`): a two-terminal element between
  two nodes, usually a synapse with a learnable parameter (a resistor).

Each element is described by Brian2 expression strings with units. The element
states its current (into the node, or from ``pre`` to ``post``) and, for learnable
branch elements, its *local quantity* ∂E/∂θ: the derivative of its co-content
with respect to its parameter, which the element could measure itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import sympy
from brian2 import Quantity, get_dimensions, have_same_dimensions
from brian2.parsing.sympytools import str_to_sympy, sympy_to_str
from brian2.units.fundamentalunits import DIMENSIONLESS, Unit
from brian2.utils.stringtools import word_substitute

__all__ = ["Parameter", "State", "ShuntElement", "BranchElement", "NodeModel", "check_quantity",
           "differentiate"]

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _unit_name(unit) -> str:
    """The importable name of a Brian2 unit (``henry`` rather than its symbol ``H``)."""
    if not isinstance(unit, Unit):
        return "1"
    from brian2.units import allunits

    for name in (getattr(unit, "name", None), str(unit)):
        if name and isinstance(getattr(allunits, name, None), Unit):
            return name
    return str(unit)


def check_quantity(name: str, value, unit, *, nonnegative: bool = False, allow_array: bool = True):
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

    Raises
    ------
    TypeError
        If the dimensions do not match (the message shows what was received and
        how to attach the unit).
    ValueError
        If ``nonnegative`` and an entry is negative, or if an array was given
        where a scalar is needed.
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
        raise TypeError(
            f"{name} must have units of {expected or 'dimensionless'} (e.g. "
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
    return q


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
    """

    name: str
    unit: object
    default: Quantity


@dataclass(frozen=True)
class State:
    """A state variable of a branch element, integrated along the branch.

    Parameters
    ----------
    name : str
        Name used in the element's expressions (e.g. ``phi``).
    unit : Unit
        Brian2 unit of the state (e.g. ``weber`` for an inductor's flux).
    rhs : str
        Its time derivative, a Brian2 expression in ``v_pre``, ``v_post``, the
        element's states and parameters (e.g. ``v_pre - v_post`` for a flux).
    """

    name: str
    unit: object
    rhs: str


def differentiate(expr: str, var: str, what: str = "expression") -> str:
    """∂expr/∂var as a Brian2 expression string, derived with sympy.

    Raises
    ------
    ValueError
        If the expression cannot be parsed or differentiated (the message names
        ``what``).
    """
    try:
        sym = str_to_sympy(expr)
        target = [s for s in sym.free_symbols if s.name == var]
        if not target:
            return "0"
        deriv = sympy.diff(sym, target[0])
        if deriv.has(sympy.Derivative) or deriv.has(sympy.Subs):
            raise ValueError(f"sympy left an unevaluated derivative: {deriv}")
        deriv = sympy.simplify(deriv)
    except Exception as ex:  # sympy raises many kinds of errors
        raise ValueError(
            f"Cannot differentiate the {what} {expr!r} with respect to {var!r} with sympy: "
            f"{ex}. Write it with functions sympy knows (exp, log, tanh, sqrt, ...)."
        ) from ex
    return "0" if deriv == 0 else sympy_to_str(deriv)


def expression_dimensions(expr: str, values: dict, what: str):
    """Physical dimensions of a Brian2 expression given example values of its names.

    Raises
    ------
    ValueError
        If the expression cannot be parsed or its units are inconsistent.
    """
    from brian2.core.functions import DEFAULT_FUNCTIONS
    from brian2.core.variables import Constant
    from brian2.parsing.expressions import parse_expression_dimensions

    variables = dict(DEFAULT_FUNCTIONS)
    for n, val in values.items():
        variables[n] = Constant(n, float(np.asarray(val)), dimensions=get_dimensions(val))
    try:
        return parse_expression_dimensions(expr, variables)
    except Exception as ex:
        raise ValueError(f"{what}: cannot check its units: {ex}") from ex


class _ExpressionElement:
    """Shared machinery: parameters, their values, renaming for code generation."""

    #: parameters of the element kind (override in subclasses)
    parameters: tuple[Parameter, ...] = ()

    def __init__(self, **values):
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
            self.values[p.name] = check_quantity(
                f"{type(self).__name__}({p.name}=...)", val, p.unit, allow_array=False
            )
        self.validate()

    def validate(self) -> None:
        """Check parameter values; subclasses raise ``ValueError`` on bad values."""

    @staticmethod
    def _rename(expr: str, mapping: dict[str, str]) -> str:
        return word_substitute(expr, mapping)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"{type(self).__name__}({args})"


class ShuntElement(_ExpressionElement):
    """A two-terminal element between a node and ground (or a fixed bias source).

    Subclasses set :attr:`parameters` and :attr:`current`, a Brian2 expression of
    the node voltage ``v`` and the parameters giving the current **into** the node
    (amp). Its small-signal conductance −∂i/∂v is derived with sympy.

    The co-content of the element is ``F(v) = -∫ i dv``; a static circuit settles at
    a stationary point of the sum of all co-contents.
    """

    #: current into the node, a Brian2 expression in ``v`` and the parameters (amp)
    current: str = "0*amp"

    def current_expr(self, prefix: str) -> str:
        """The current into the node with parameters renamed to ``prefix + name``."""
        return self._rename(self.current, {p.name: prefix + p.name for p in self.parameters})

    def conductance_expr(self, prefix: str) -> str:
        """Small-signal conductance −∂i/∂v (siemens), with renamed parameters."""
        sym = str_to_sympy(self.current_expr(prefix))
        v = [s for s in sym.free_symbols if s.name == "v"]
        if not v:
            return "0*siemens"
        deriv = sympy.simplify(-sympy.diff(sym, v[0]))
        if deriv == 0:
            return "0*siemens"
        return sympy_to_str(deriv)

    def numeric(self):
        """Numpy functions ``(i(v), g(v))`` in SI units for the exact reference."""
        sym = str_to_sympy(self.current)
        vs = sympy.Symbol("v", real=True)
        subs = {}
        for s in sym.free_symbols:
            if s.name == "v":
                subs[s] = vs
            else:
                subs[s] = float(np.asarray(self.values[s.name]))
        expr = sym.subs(subs)
        di = sympy.diff(expr, vs)
        f_i = sympy.lambdify(vs, expr, "numpy")
        f_g = sympy.lambdify(vs, -di, "numpy")

        def i_fun(v):
            return np.broadcast_to(f_i(v), np.shape(v)).astype(float)

        def g_fun(v):
            return np.broadcast_to(f_g(v), np.shape(v)).astype(float)

        return i_fun, g_fun


class BranchElement(_ExpressionElement):
    """A two-terminal element between two nodes (``pre`` and ``post``).

    Subclasses set :attr:`parameters`, :attr:`learnable` (the name of the learnable
    parameter, stored per synapse), :attr:`current` (current from ``pre`` to
    ``post`` as a Brian2 expression in ``v_pre``, ``v_post`` and the parameters) and
    :attr:`local` (the local quantity ∂E/∂θ for the learnable parameter, a Brian2
    expression; for a conductance ``0.5*(v_pre - v_post)**2``).
    """

    learnable: str = "g"
    learnable_unit: object = None
    current: str = "0*amp"
    #: local quantity ∂E/∂θ (``None``: the element has no energy term for θ)
    local: str | None = "0*volt**2"
    #: unit of the local quantity ∂E/∂θ
    local_unit: object = None
    #: whether the element has an energy term (equilibrium propagation applies)
    reciprocal: bool = True
    #: whether the learnable parameter is kept non-negative
    nonnegative: bool = True
    #: state variables integrated along the branch (e.g. an inductor's flux)
    states: tuple = ()
    #: directed elements inject their current into ``post`` only (no current leaves
    #: ``pre``): a voltage-controlled current source
    directed: bool = False
    #: whether the element conducts at DC (gives its nodes a path to ground)
    dc_path: bool = True

    @property
    def dynamic(self) -> bool:
        """Whether the element has states of its own (needs time-varying runs)."""
        return bool(self.states)

    def param_expr(self, expr: str, prefix: str = "p_") -> str:
        """``expr`` with the fixed parameters renamed to ``prefix + name``."""
        return self._rename(expr, {p.name: prefix + p.name for p in self.parameters})

    def local_numpy(self, v_pre: np.ndarray, v_post: np.ndarray, theta: np.ndarray):
        """Evaluate :attr:`local` with numpy (SI floats) from terminal voltages."""
        fun = getattr(self, "_local_fun", None)
        if fun is None:
            names = ("v_pre", "v_post", self.learnable)
            args = [sympy.Symbol(n, real=True) for n in names]
            subs = {}
            for sym in str_to_sympy(self.local).free_symbols:
                subs[sym] = (args[names.index(sym.name)] if sym.name in names
                             else float(np.asarray(self.values[sym.name])))
            fun = sympy.lambdify(args, str_to_sympy(self.local).subs(subs), "numpy")
            self._local_fun = fun
        return fun(v_pre, v_post, theta)

    def check_values(self, name: str, values) -> Quantity:
        """Check per-synapse values of the learnable parameter."""
        return check_quantity(name, values, self.learnable_unit, nonnegative=self.nonnegative)


@dataclass
class NodeModel:
    """A circuit node: a capacitor to ground, a leak conductance, shunt elements.

    Parameters
    ----------
    C : Quantity, farad
        Node capacitance (the dynamics of time-varying circuits; irrelevant to
        the fixed point of a static circuit). For a nonlinear capacitor, the
        small-signal capacitance at ``v = 0``.
    g_leak : Quantity, siemens
        Leak conductance to ground. Every node needs a path to ground, through the
        leak or through its connections.
    shunts : tuple of ShuntElement
        Further elements between the node and ground or a bias source.
    charge : str, optional
        A nonlinear capacitor: its charge ``q = Q(v)`` as a Brian2 expression in
        ``v`` and the names of ``charge_params`` (coulomb). The node integrates
        ``dv/dt = I / Q'(v)`` with ``Q'`` derived by sympy; ``Q'`` must stay positive.
    charge_params : dict of str to Quantity
        Parameters of ``charge``.
    """

    C: Quantity
    g_leak: Quantity
    shunts: tuple = field(default_factory=tuple)
    charge: str | None = None
    charge_params: dict = field(default_factory=dict)

    def __post_init__(self):
        from brian2 import farad, siemens

        self.C = check_quantity("C", self.C, farad, nonnegative=True, allow_array=False)
        if float(self.C) <= 0:
            raise ValueError(f"C must be positive; got {self.C!r}.")
        self.g_leak = check_quantity("g_leak", self.g_leak, siemens, nonnegative=True,
                                     allow_array=False)
        self.shunts = tuple(self.shunts)
        for k, s in enumerate(self.shunts):
            if not isinstance(s, ShuntElement):
                raise TypeError(f"shunts[{k}] must be a ShuntElement; got {type(s).__name__}.")
        if self.charge is not None:
            self._check_charge()

    def _check_charge(self):
        if not isinstance(self.charge, str):
            raise TypeError(f"charge must be a Brian2 expression string in v; got "
                            f"{type(self.charge).__name__}.")
        for name, val in self.charge_params.items():
            if not (isinstance(name, str) and _NAME_RE.match(name)) or name == "v":
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
        fq, fc = self.charge_numeric()
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
        return word_substitute(expr, {n: "q_" + n for n in self.charge_params})

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
        vs = sympy.Symbol("v", real=True)
        sym = str_to_sympy(self.charge)
        subs = {s: (vs if s.name == "v" else float(np.asarray(self.charge_params[s.name])))
                for s in sym.free_symbols}
        expr = sym.subs(subs)
        fq = sympy.lambdify(vs, expr, "numpy")
        fc = sympy.lambdify(vs, sympy.diff(expr, vs), "numpy")
        return (lambda v: np.broadcast_to(fq(v), np.shape(v)).astype(float),
                lambda v: np.broadcast_to(fc(v), np.shape(v)).astype(float))

    def shunt_prefixes(self):
        """Yield ``(prefix, shunt)`` with a unique parameter prefix per shunt."""
        for k, s in enumerate(self.shunts):
            yield f"sh{k}_", s


def valid_name(name: str) -> bool:
    """Whether ``name`` can be used as a node-group or connection name."""
    return isinstance(name, str) and bool(_NAME_RE.match(name))
