"""The static family: free and nudged phases that settle to fixed points.

A static estimator is a *phase program* (:mod:`ephys_eqprop.phases`): a generator
that asks for phases and computes the gradient from their results, so that every
phase of a gradient — and every mini-batch of an epoch — runs inside one Brian2
run.
"""

from __future__ import annotations

import numpy as np

from ..errors import CircuitError
from ..phases import PhaseRequest, Settle, run_program
from .base import Estimator, check_loss

__all__ = ["StaticEstimator", "check_static"]


def check_static(net, x, loss, who: str) -> None:
    """Refuse time-varying data and elements with states of their own in a static estimator."""
    from ..dynamics import is_waveform

    if is_waveform(x):
        raise TypeError(f"{who} works on static circuits (fixed points); x is a TimeSeries. "
                        "Use LagrangianEP, Adjoint or FiniteDifference for time-varying runs.")
    if getattr(loss, "window", None) is not None:
        raise ValueError("The loss has a time window, which applies to time-varying runs only.")
    for conn in net.circuit.connections.values():
        if conn.element.dynamic:
            raise CircuitError(
                f"Connection {conn.name!r} ({type(conn.element).__name__}) has states of its "
                "own; at a DC fixed point an inductor is a short circuit and static phases do "
                "not apply. Use a time-varying estimator (Adjoint, LagrangianEP).")
    for name, spec in net.circuit.nodes.items():
        for el in spec.model.shunts:
            if el.dynamic:
                raise CircuitError(
                    f"Node group {name!r} has a {type(el).__name__} with states of its own "
                    f"({', '.join(s.name for s in el.states)}); static phases relax node "
                    "voltages only and do not apply. Use a time-varying estimator (Adjoint, "
                    "LagrangianEP) with waveform inputs.")


class StaticEstimator(Estimator):
    """Base of the static estimators: set up a batch, run a phase program, return gradients.

    Subclasses implement :meth:`program`.
    """

    settle: Settle

    def _setup(self, net, x, y, loss):
        check_loss(loss)
        net.circuit._require_output()
        check_static(net, x, loss, type(self).__name__)
        self._check_energy(net, net.params)
        w = net.set_inputs(x)
        n = int(np.count_nonzero(w))
        yv = loss.prepare_targets(y, net.circuit.n_outputs)
        if yv.shape[0] != n:
            raise CircuitError(
                f"x has {n} samples but y has {yv.shape[0]}; give one target per sample."
            )
        y_full = np.concatenate([yv, np.repeat(yv[:1], net.batch - n, 0)])
        net.attach_loss(loss)
        loss.set_targets(net, y_full)
        return w, y_full

    def _free(self, net, w, y_full, loss, local: bool = True):
        """Phase sub-program: the free phase, with the loss and outputs recorded."""
        free = yield PhaseRequest(0.0, None, self.settle, local)
        z = loss.readout(free.v_out, net.circuit.differential)
        c = loss.cost(z, y_full)
        n = int(np.count_nonzero(w))
        free.extra["loss"] = float(np.sum(w * c))
        free.extra["z"] = z[:n]
        return free

    def program(self, net, w, y_full, loss):
        """Phase program computing the flat gradients (inputs and targets already set).

        A generator of :class:`~ephys_eqprop.phases.PhaseRequest` returning a dict of
        flat per-parameter gradients (SI floats); sets :attr:`info`.
        """
        raise NotImplementedError

    def gradient(self, net, x, y, loss) -> dict:
        """Estimate the gradient of the mean loss at the fixed point.

        Parameters
        ----------
        net : CircuitNetwork
        x : Quantity, shape (n_samples, n_in), volt (or dict by input name)
            ``n_samples <= net.batch``.
        y : targets, shape (n_samples, K) volt for MSE, labels (n_samples,) for
            cross-entropy
        loss : Loss

        Returns
        -------
        dict of str to Quantity
            ``dL/dθ`` by parameter name, shaped like ``net.get_params()`` (watt per
            parameter unit: V² for a conductance).
        """
        w, y_full = self._setup(net, x, y, loss)
        return self._to_params(net, run_program(net, self.program(net, w, y_full, loss)))
