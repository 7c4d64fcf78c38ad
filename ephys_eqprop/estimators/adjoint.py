"""The exact gradient of a time-varying circuit by its adjoint circuit."""

from __future__ import annotations

from brian2 import joule

from .base import GradientInfo
from .timevarying import TimeVaryingEstimator

__all__ = ["Adjoint"]


class Adjoint(TimeVaryingEstimator):
    """The exact gradient of a time-varying circuit by its adjoint (``docs/physics.md``, §5).

    One forward run records the free trajectory; the adjoint equations (the
    transposed Jacobian of the circuit's Brian2 equations over every state, derived
    with sympy) run backwards over it, driven by ``-∂c/∂v`` at the outputs; every
    element integrates a product of local quantities. The result is the exact
    gradient of the simulated (forward-Euler) loss, for any element: nonlinear
    ones, inductors, directed synapses, node elements with states (ion channels),
    for connection and per-node parameters alike.

    Parameters
    ----------
    params : list of str, optional
        Parameters to return (default: all; the cost is the same).

    Notes
    -----
    Cost: one forward and one backward run. Memory: the recorded trajectory,
    ``N × (nodes + states) × batch`` floats; see :attr:`info`.
    """

    def __init__(self, *, params=None):
        self.params = None if params is None else list(params)

    def gradient(self, net, x, y, loss) -> dict:
        """Exact ``dC/dθ`` (joule per parameter unit); see :class:`LagrangianEP`."""
        from ..adjoint import AdjointCircuit
        from ..dynamics import loss_terms, n_samples, simulate

        names, prob = self._prepare(net, x, y, loss)
        adj = getattr(net, "_adjoint", None)
        if adj is None:
            with net._target():
                adj = net._adjoint = AdjointCircuit(net)
        traj = simulate(net, prob, loss=loss, record=True, label="forward", estimator="Adjoint")
        total, dcdv, _ = loss_terms(net, prob, loss, traj.v_out)
        flat = adj.run(traj, dcdv)
        self.info = GradientInfo(total, traj.v_out[:, :n_samples(x)],
                                 {"trajectory_bytes": traj.nbytes, "adjoint": adj})
        return self._to_params(net, {n: flat[n] for n in names}, joule)

    def __repr__(self):
        return "Adjoint()" if self.params is None else f"Adjoint(params={self.params!r})"
