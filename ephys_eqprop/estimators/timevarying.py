"""The time-varying family: runs of the physical circuit through input waveforms.

Estimators of this family take :class:`~ephys_eqprop.TimeSeries` inputs and
targets and differentiate the integrated loss ``C = Σ_n dt m_n c(z_n, y_n)``
(joule) of the forward-Euler simulation (:mod:`ephys_eqprop.dynamics`).
"""

from __future__ import annotations

from ..errors import CircuitError
from .base import Estimator, check_loss

__all__ = ["TimeVaryingEstimator"]


class TimeVaryingEstimator(Estimator):
    """Base of the time-varying estimators.

    Parameters
    ----------
    params : list of str, optional
        Parameters to estimate (default: all learnable parameters of the network).
    """

    params: list | None = None

    def _names(self, net) -> list:
        names = list(net.params) if self.params is None else list(self.params)
        for n in names:
            if n not in net.params:
                raise CircuitError(f"Unknown parameter {n!r}; learnable parameters are "
                                   f"{sorted(net.params)}.")
        self._check_energy(net, names)
        return names

    def _prepare(self, net, x, y, loss):
        """Check the loss and the output, then the waveforms (see :func:`prepare`)."""
        from ..dynamics import prepare

        check_loss(loss)
        net.circuit._require_output()
        names = self._names(net)
        return names, prepare(net, x, y, loss)
