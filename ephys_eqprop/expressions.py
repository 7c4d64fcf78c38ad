"""Brian2 expression strings as mathematics: derivatives, antiderivatives, units, numpy.

Every element of a circuit is declared by Brian2 expression strings with units
(its current, the right-hand sides of its states, its co-content). The forward
equations, the adjoint, the local quantities of equilibrium propagation, the
exact steady-state reference and the SPICE export all derive from these strings
with the helpers of this module, so that no element needs code of its own
outside its file.

Names in an expression are either *variables* (terminal voltages, states,
parameters) or Brian2 unit names (``volt``, ``mV``, ...), which stand for their
SI values.
"""

from __future__ import annotations

import numpy as np
import sympy
from brian2 import get_dimensions
from brian2.parsing.sympytools import str_to_sympy, sympy_to_str
from brian2.units.fundamentalunits import DIMENSIONLESS

__all__ = [
    "FUNCTIONS",
    "antiderivative",
    "differentiate",
    "expression_dimensions",
    "free_names",
    "is_zero",
    "numpy_function",
    "rename",
    "unit_string",
]


def unit_string(q) -> str:
    """The Brian2 unit string of a quantity's (or a Dimension's) dimensions.

    ``"1"`` if dimensionless, e.g. ``"metre ** 2 * kilogram * second ** -3 * amp ** -2"``
    for an ohm: a string Brian2's equation parser accepts.
    """
    from brian2.units.fundamentalunits import Dimension

    dim = q if isinstance(q, Dimension) else get_dimensions(q)
    return "1" if dim is DIMENSIONLESS else repr(dim)


def _sympy(expr: str, what: str):
    try:
        return str_to_sympy(expr)
    except Exception as ex:  # brian2 raises several kinds of parse errors
        raise ValueError(f"Cannot parse the {what} {expr!r}: {ex}") from ex


def free_names(expr: str) -> set[str]:
    """Names an expression uses (variables, parameters and unit names)."""
    return {s.name for s in _sympy(expr, "expression").free_symbols}


def rename(expr: str, mapping: dict[str, str]) -> str:
    """``expr`` with whole-word names replaced as ``mapping`` says."""
    from brian2.utils.stringtools import word_substitute

    return word_substitute(expr, mapping) if mapping else expr


def is_zero(expr: str | None) -> bool:
    """Whether an expression string is the literal zero (``"0"``, ``"0*amp"``...)."""
    if expr is None:
        return True
    try:
        return bool(str_to_sympy(expr) == 0)
    except Exception:  # not parseable: not a literal zero
        return False


class _dexprel_sympy(sympy.Function):
    """``d/dx exprel(x) = (1 + (x - 1) exprel(x)) / x``, with the limit 1/2 at 0."""

    nargs = 1

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return sympy.Rational(1, 2)
        return None


_dexprel_sympy.__name__ = "dexprel"


def _exprel_with_safe_derivative():
    """Brian2's sympy ``exprel`` whose derivative is ``dexprel`` (no 0/0 at x = 0)."""
    from brian2.core.functions import exprel as brian_exprel

    class exprel_(brian_exprel):
        def fdiff(self, argindex=1):
            return _dexprel_sympy(self.args[0])

    exprel_.__name__ = "exprel"
    return brian_exprel, exprel_


def differentiate(expr: str, var: str, what: str = "expression") -> str:
    """∂expr/∂var as a Brian2 expression string, derived with sympy.

    Returns ``"0"`` if ``expr`` does not depend on ``var``. The derivative of
    ``exprel`` is written as ``dexprel`` (:data:`FUNCTIONS`), which has no
    removable singularity at 0 (the closed form ``(e^x (x - 1) + 1)/x²`` is 0/0 there
    and loses all precision near it).

    Raises
    ------
    ValueError
        If the expression cannot be parsed or differentiated (the message names
        ``what`` and says which functions work).
    """
    try:
        sym = str_to_sympy(expr)
        target = [s for s in sym.free_symbols if s.name == var]
        if not target:
            return "0"
        brian_exprel, safe_exprel = _exprel_with_safe_derivative()
        sym = sym.replace(brian_exprel, safe_exprel)
        deriv = sympy.diff(sym, target[0])
        if deriv.has(sympy.Derivative) or deriv.has(sympy.Subs):
            raise ValueError(f"sympy left an unevaluated derivative: {deriv}")
        # no sympy.simplify: on rate functions it costs seconds per derivative, and the
        # expression is evaluated as generated code anyway
        deriv = deriv.replace(safe_exprel, brian_exprel)
    except Exception as ex:  # sympy raises many kinds of errors
        raise ValueError(
            f"Cannot differentiate the {what} {expr!r} with respect to {var!r} with sympy: "
            f"{ex}. Write it with functions sympy knows (exp, log, tanh, sqrt, exprel, ...)."
        ) from ex
    return "0" if deriv.is_zero or deriv == 0 else sympy_to_str(deriv)


def antiderivative(expr: str, var: str) -> str | None:
    """An antiderivative ``∫ expr d(var)`` as a Brian2 string, or ``None`` if sympy finds none.

    The integration constant is zero; equilibrium propagation only uses
    differences of such integrals between runs, in which any constant cancels.
    """
    try:
        sym = str_to_sympy(expr)
        target = [s for s in sym.free_symbols if s.name == var]
        x = target[0] if target else sympy.Symbol(var)
        result = sympy.integrate(sym, x)
        if result.has(sympy.Integral):
            return None
        result = sympy.simplify(result)
    except Exception:  # no closed form (or sympy gave up): the element has no energy term
        return None
    return sympy_to_str(result)


def expression_dimensions(expr: str, values: dict, what: str):
    """Physical dimensions of a Brian2 expression given example values of its names.

    Parameters
    ----------
    expr : str
    values : dict of str to Quantity
        One example value (any magnitude, the right dimensions) per name used.
    what : str
        What the expression is, for the error message.

    Raises
    ------
    ValueError
        If the expression cannot be parsed or its units are inconsistent.
    """
    from brian2.core.functions import DEFAULT_FUNCTIONS
    from brian2.core.namespace import DEFAULT_UNITS
    from brian2.core.variables import Constant
    from brian2.parsing.expressions import parse_expression_dimensions

    variables = dict(DEFAULT_FUNCTIONS)
    variables.update(FUNCTIONS)
    for n in free_names(expr) - set(values):
        if n in DEFAULT_UNITS:
            unit = DEFAULT_UNITS[n]
            variables[n] = Constant(n, float(np.asarray(unit)), dimensions=get_dimensions(unit))
    for n, val in values.items():
        variables[n] = Constant(n, float(np.asarray(val)), dimensions=get_dimensions(val))
    try:
        return parse_expression_dimensions(expr, variables)
    except Exception as ex:
        raise ValueError(f"{what}: cannot check its units: {ex}") from ex


def _exprel(x):
    """``(exp(x) - 1)/x`` with the limit 1 at 0 and no cancellation near it."""
    x = np.asarray(x, dtype=float)
    small = np.abs(x) < 1e-5
    safe = np.where(small, 1.0, x)
    return np.where(small, 1.0 + x / 2 + x * x / 6, np.expm1(safe) / safe)


def _dexprel(x):
    """``d/dx exprel(x)``: ``(expm1(x) (x - 1) + x)/x²``, its series ``1/2 + x/3 + x²/8 +
    x³/30`` for ``|x| < 1e-3`` (the closed form loses ``ε/|x|`` of relative precision)."""
    x = np.asarray(x, dtype=float)
    small = np.abs(x) < 1e-3
    safe = np.where(small, 1.0, x)
    closed = (np.expm1(safe) * (safe - 1) + safe) / (safe * safe)
    series = 0.5 + x / 3 + x * x / 8 + x**3 / 30
    return np.where(small, series, closed)


def _brian2_dexprel():
    """``dexprel`` as a Brian2 function with numpy, Cython and C++ implementations."""
    from brian2 import implementation
    from brian2.core.functions import Function

    cpp = """
    double dexprel(double x)
    {
        if (fabs(x) < 1e-3)
            return 0.5 + x/3.0 + x*x/8.0 + x*x*x/30.0;
        return (expm1(x)*(x - 1.0) + x)/(x*x);
    }
    """
    cython = """
    from libc.math cimport fabs, expm1
    cdef double dexprel(double x):
        if fabs(x) < 1e-3:
            return 0.5 + x/3.0 + x*x/8.0 + x*x*x/30.0
        return (expm1(x)*(x - 1.0) + x)/(x*x)
    """
    func = Function(_dexprel, arg_units=[1], return_unit=1, arg_types=["float"],
                    return_type="float", sympy_func=_dexprel_sympy)
    implementation("cpp", cpp)(func)
    implementation("cython", cython)(func)
    return func


#: Brian2 functions the package's derived expressions use, for run namespaces
FUNCTIONS = {"dexprel": _brian2_dexprel()}

#: numpy implementations of the Brian2 functions sympy keeps as functions
_NUMPY_FUNCTIONS = {"exprel": _exprel, "dexprel": _dexprel}


def numpy_function(expr: str, args, constants: dict | None = None, *, what: str = "expression"):
    """A numpy function of ``args`` evaluating a Brian2 expression in SI units.

    Parameters
    ----------
    expr : str
        The Brian2 expression.
    args : sequence of str
        Names that become the function's positional arguments (arrays, SI).
    constants : dict of str to float or Quantity, optional
        Values (SI) of further names; Brian2 unit names take their SI values.
    what : str
        What the expression is, for the error message.

    Returns
    -------
    callable
        ``f(*arrays)``, broadcasting; the result is a float array of the
        broadcast shape of its arguments.

    Raises
    ------
    ValueError
        If the expression uses a name that is neither an argument, a constant
        nor a Brian2 unit.
    """
    from brian2.core.namespace import DEFAULT_UNITS

    constants = constants or {}
    sym = _sympy(expr, what)
    # keep exprel a function through the substitution of numbers (sympy's exprel would
    # rewrite itself as (exp(x) - 1)/x, which is 0/0 at x = 0)
    brian_exprel, _ = _exprel_with_safe_derivative()
    sym = sym.replace(brian_exprel, sympy.Function("exprel"))
    syms = [sympy.Symbol(a, real=True) for a in args]
    subs = {}
    for s in sym.free_symbols:
        if s.name in args:
            subs[s] = syms[list(args).index(s.name)]
        elif s.name in constants:
            subs[s] = sympy.Float(float(np.asarray(constants[s.name])))
        elif s.name in DEFAULT_UNITS:
            subs[s] = sympy.Float(float(DEFAULT_UNITS[s.name]))
        else:
            raise ValueError(f"The {what} {expr!r} uses {s.name!r}, which is neither a "
                             f"variable ({sorted(args)}), a parameter nor a Brian2 unit.")
    fun = sympy.lambdify(syms, sym.subs(subs), modules=[_NUMPY_FUNCTIONS, "numpy"])

    def evaluate(*arrays):
        shape = np.broadcast(*arrays).shape if arrays else ()
        out = np.asarray(fun(*arrays), dtype=float)
        # a fresh array of the arguments' shape, never one of the arguments themselves
        if out.shape != shape or any(np.may_share_memory(out, a) for a in arrays):
            out = np.broadcast_to(out, shape).astype(float)
        return out

    return evaluate
