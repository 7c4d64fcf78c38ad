"""The exact gradient of a static circuit by implicit differentiation (numpy, no run)."""

from __future__ import annotations

import numpy as np

from .base import GradientInfo, check_loss
from .static import StaticEstimator, check_static

__all__ = ["ExactSteadyState"]


class ExactSteadyState(StaticEstimator):
    """Exact gradient by implicit differentiation of the fixed point (numpy, no Brian2 run).

    See :class:`ephys_eqprop.steady_state.SteadyState`: Newton's method on
    Kirchhoff's current law with every element's current and its sympy
    derivatives, constant currents ``I_ext`` set on the node groups included.
    """

    def gradient(self, net, x, y, loss) -> dict:
        from ..steady_state import SteadyState

        check_loss(loss)
        net.circuit._require_output()
        check_static(net, x, loss, type(self).__name__)
        ss = SteadyState(net)
        grads = ss.gradient(x, y, loss)
        v = ss.solve(x)
        z = loss.readout(v[:, ss.out_idx], net.circuit.differential)
        yv = loss.prepare_targets(y, net.circuit.n_outputs)
        self.info = GradientInfo(float(np.mean(loss.cost(z, yv))), z)
        return grads

    def __repr__(self):
        return "ExactSteadyState()"
