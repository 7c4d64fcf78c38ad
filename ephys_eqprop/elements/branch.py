"""Branch elements: two-terminal elements between two nodes, with a learnable parameter."""

from __future__ import annotations

import numpy as np
import sympy
from brian2 import Quantity, get_dimensions
from brian2.parsing.sympytools import str_to_sympy, sympy_to_str

from ..expressions import antiderivative, expression_dimensions, free_names, numpy_function
from .base import Element, check_quantity, check_sign

__all__ = ["BranchElement"]


class BranchElement(Element):
    """A two-terminal element between two nodes (``pre`` and ``post``): a synapse.

    Subclasses set :attr:`learnable` (the name of the parameter stored per synapse,
    given to :meth:`Circuit.connect`), :attr:`learnable_unit`, :attr:`current`
    (current from ``pre`` to ``post``, a Brian2 expression in ``v_pre``, ``v_post``,
    the states and the parameters), and optionally :attr:`parameters` (constants
    shared by the connection), :attr:`states` (integrated per synapse, e.g. an
    inductor's flux), :attr:`energy` or :attr:`local` (the local quantity ∂E/∂θ of
    the learnable parameter, ``0.5*(v_pre - v_post)**2`` for a conductance).

    The co-content, when not declared, is derived with sympy for a stateless
    element: ``F = ∫ i dΔv`` for a current that depends on the voltages only through
    ``Δv = v_pre - v_post``. Directed elements (:attr:`directed`) have none; an
    element with states has one only if it declares :attr:`energy`.
    """

    terminals = ("v_pre", "v_post")
    #: name of the parameter stored per synapse (learnable)
    learnable: str = "g"
    #: its Brian2 unit
    learnable_unit: object = None
    #: sign of the learnable parameter; ``None``: ``"nonnegative"`` if :attr:`nonnegative`
    #: else ``"signed"``
    learnable_sign: str | None = None
    #: whether the learnable parameter is kept non-negative (see :attr:`learnable_sign`)
    nonnegative: bool = True
    current: str = "0*amp"
    #: the local quantity ∂E/∂θ of the learnable parameter if declared (``None``: derived
    #: from the co-content, or none)
    local: str | None = None
    #: unit of :attr:`local` (derived when not given)
    local_unit: object = None
    #: directed elements inject their current into ``post`` only (no current leaves
    #: ``pre``): a voltage-controlled current source, with no energy term
    directed: bool = False
    #: kept for scripts that read it: whether the element is reciprocal
    reciprocal: bool = True
    #: words of the netlist comment: what the synapses are, what their parameter is
    spice_words: tuple[str, str] = ("branches (B sources)", "parameter")

    # ------------------------------------------------------------------ declarations
    @property
    def sign(self) -> str:
        """Capability: the sign of the learnable parameter (``"nonnegative"``, ``"positive"``,
        ``"signed"``)."""
        if self.learnable_sign is not None:
            return self.learnable_sign
        return "nonnegative" if self.nonnegative else "signed"

    def names(self) -> set[str]:
        return super().names() | {self.learnable}

    def example_values(self) -> dict:
        out = super().example_values()
        out[self.learnable] = Quantity(1.0, dim=get_dimensions(self.learnable_unit))
        return out

    @property
    def conducts_at_dc(self) -> bool:
        """Capability: gives its nodes a DC path (a directed source does not)."""
        if self.dc_path is not None:
            return bool(self.dc_path)
        if self.directed:
            return False
        used = free_names(self.current)
        return bool(used & ({"v_pre", "v_post"} | {s.name for s in self.states}))

    @property
    def open_when_zero(self) -> bool:
        """Capability: a zero learnable parameter switches the current off (an open circuit)."""
        sym = str_to_sympy(self.current)
        theta = [s for s in sym.free_symbols if s.name == self.learnable]
        return bool(theta) and sympy.simplify(sym.subs(theta[0], 0)) == 0

    def check_values(self, name: str, values) -> Quantity:
        """Check per-synapse values of the learnable parameter (units and sign)."""
        q = check_quantity(name, values, self.learnable_unit)
        check_sign(name, q, self.sign)
        return q

    # ------------------------------------------------------------------ energy
    def _derived_energy(self) -> str | None:
        if self.directed or self.states:
            # with states the constant of the integral may depend on them: declare it
            return None
        sym = str_to_sympy(self.current)
        pre = [s for s in sym.free_symbols if s.name == "v_pre"]
        post = [s for s in sym.free_symbols if s.name == "v_post"]
        drop = sympy.Symbol("Delta_v_branch")
        if pre:
            sym = sym.subs(pre[0], (post[0] if post else sympy.Symbol("v_post")) + drop)
            if any(s.name == "v_post" for s in sym.free_symbols):
                return None  # not a function of the voltage drop alone: not reciprocal
        elif post:
            return None  # depends on v_post alone: not reciprocal
        else:
            sym = sym * 1  # a constant current: co-content i·Δv
        F = antiderivative(sympy_to_str(sym), "Delta_v_branch")
        if F is None:
            return None
        return self._rename(F, {"Delta_v_branch": "(v_pre - v_post)"})

    def local_expr(self, name: str | None = None) -> str | None:
        """The local quantity ∂E/∂θ of parameter ``name`` (default: the learnable one)."""
        name = self.learnable if name is None else name
        if name == self.learnable and self.local is not None:
            return self.local
        return super().local_expr(name)

    @property
    def has_energy(self) -> bool:
        return self.local_expr() is not None

    def local_dimensions(self):
        """Dimensions of the learnable parameter's local quantity."""
        if self.local_unit is not None:
            return get_dimensions(self.local_unit)
        expr = self.local_expr()
        return expression_dimensions(expr, self.example_values(),
                                     f"local quantity of {type(self).__name__}")

    # ------------------------------------------------------------------ expressions
    def param_expr(self, expr: str, prefix: str = "p_") -> str:
        """``expr`` with the fixed parameters renamed to ``prefix + name``."""
        return self._rename(expr, {p.name: prefix + p.name for p in self.parameters})

    def local_numpy(self, v_pre: np.ndarray, v_post: np.ndarray, theta: np.ndarray):
        """Evaluate the local quantity with numpy (SI floats) from terminal voltages."""
        fun = self.__dict__.get("_local_fun")
        if fun is None:
            consts = {k: float(np.asarray(v)) for k, v in self.values.items()}
            fun = numpy_function(self.local_expr(), ["v_pre", "v_post", self.learnable], consts,
                                 what=f"local quantity of {type(self).__name__}")
            self.__dict__["_local_fun"] = fun
        return fun(v_pre, v_post, theta)

    # ------------------------------------------------------------------ SPICE
    def spice(self, ctx, a: str, b: str, theta: float, state0: dict | None, label: str) -> None:
        """Write one synapse between nodes ``a`` (pre) and ``b`` (post) into a netlist.

        The generic form: a behavioural ``B`` current source from ``a`` to ``b`` (from
        ground into ``b`` for a directed element), each state the voltage of an
        internal node holding a 1 F capacitor (see :meth:`ShuntElement.spice`).
        Subclasses with a native SPICE element override this.
        """
        names = {k: float(np.asarray(v)) for k, v in self.values.items()}
        names.update({self.learnable: float(theta), "v_pre": f"V({a})", "v_post": f"V({b})"})
        what = f"{type(self).__name__} {label}"
        self._spice_states(ctx, names, state0, label, what)
        src = "0" if self.directed else a
        ctx.add(f"B_{label} {src} {b} I={ctx.expression(self.current, names, what)}")

    def _repr_args(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.values.items())
