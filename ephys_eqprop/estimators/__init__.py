"""Gradient estimators, in two families with one base each.

All share ``.gradient(net, x, y, loss)`` and return a dict of gradients of the
mean loss over the samples, by parameter name, shaped like the parameters, in
loss units per parameter unit (W/S = V² for a static power cost and a
conductance; J/S for an integrated cost).

Static circuits (fixed points; :class:`StaticEstimator`):

* :class:`EP` — one-sided equilibrium propagation, bias O(β);
* :class:`SymmetricEP` — ±β nudges, bias O(β²) (Laborieux et al. 2021);
* :class:`ExactSteadyState` — implicit differentiation of the fixed point with
  numpy (no Brian2 run): the linear-algebra reference.

Time-varying circuits (waveforms; :class:`TimeVaryingEstimator`):

* :class:`LagrangianEP` — the seed's estimator, local in space and time, exact
  only in the quasi-static limit;
* :class:`Adjoint` — the exact gradient through the adjoint circuit.

Both families: :class:`FiniteDifference` — central differences of the simulated
loss, the simulation-based reference.
"""

from .adjoint import Adjoint
from .base import Estimator, GradientInfo
from .ep import EP, SymmetricEP
from .exact import ExactSteadyState
from .finite_difference import FiniteDifference
from .lagrangian import LagrangianEP
from .static import StaticEstimator
from .timevarying import TimeVaryingEstimator

__all__ = ["EP", "Adjoint", "Estimator", "ExactSteadyState", "FiniteDifference",
           "GradientInfo", "LagrangianEP", "StaticEstimator", "SymmetricEP",
           "TimeVaryingEstimator"]
