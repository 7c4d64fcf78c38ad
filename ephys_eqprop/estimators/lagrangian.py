"""The seed's estimator: Lagrangian equilibrium propagation in time (Kendall 2021)."""

from __future__ import annotations

from brian2 import joule

from .base import GradientInfo, check_beta
from .timevarying import TimeVaryingEstimator

__all__ = ["LagrangianEP"]


class LagrangianEP(TimeVaryingEstimator):
    """Lagrangian EP for time-varying circuits (Kendall 2021; ``docs/physics.md``, §5).

    A free run and a nudged run (nudge current ``-β m(t) ∂c/∂v`` into the outputs)
    go forward in time from the same initial state; every element accumulates the
    time integral of its local quantity, ``∫ ∂E/∂θ dt`` (``∫ ½ Δv² dt`` for a
    conductance), and the estimate is the difference over β. Local in space and
    time.

    Parameters
    ----------
    beta : float
        Nudge strength (dimensionless, non-zero).
    symmetric : bool
        Use runs nudged with ``+β`` and ``-β`` (three runs) instead of free and
        ``+β``.
    params : list of str, optional
        Parameters to estimate (default: all). Elements without a local quantity
        (directed synapses, inductances) cannot be estimated.

    Notes
    -----
    Exact only in the quasi-static limit (inputs slow against the circuit's
    time constants); elsewhere it is **biased**, because the nudge acts forward
    in time while the sensitivity of the loss propagates backward (Pourcel et
    al. 2025). The bias is measured, not hidden: see the bias map of the
    validation suite. Use :class:`Adjoint` for the exact gradient.
    """

    needs_energy = True

    def __init__(self, beta: float = 1e-2, *, symmetric: bool = True, params=None):
        self.beta = check_beta(beta)
        self.symmetric = bool(symmetric)
        self.params = None if params is None else list(params)

    def gradient(self, net, x, y, loss) -> dict:
        """Estimate ``dC/dθ`` (joule per parameter unit) for time-varying ``x``, ``y``.

        Parameters
        ----------
        net : CircuitNetwork
        x, y : TimeSeries
            Input and target waveforms (same samples and duration).
        loss : Loss
            Its ``window`` chooses where the cost is integrated (and nudged).

        Returns
        -------
        dict of str to Quantity
        """
        from ..dynamics import loss_terms, n_samples, simulate

        names, prob = self._prepare(net, x, y, loss)
        b = self.beta
        who = "LagrangianEP"
        free = simulate(net, prob, loss=loss, accumulate=True, label="free", estimator=who)
        pos = simulate(net, prob, loss=loss, beta=b, accumulate=True,
                       label=f"nudged (β={b:+g})", estimator=who)
        runs = {"free": free, "nudged": pos}
        if self.symmetric:
            neg = simulate(net, prob, loss=loss, beta=-b, accumulate=True,
                           label=f"nudged (β={-b:+g})", estimator=who)
            runs["nudged_neg"] = neg
            flat = {n: prob.weights @ (pos.integrals[n] - neg.integrals[n]) / (2 * b)
                    for n in names}
        else:
            flat = {n: prob.weights @ (pos.integrals[n] - free.integrals[n]) / b
                    for n in names}
        total, _, _ = loss_terms(net, prob, loss, free.v_out)
        # what each run accumulated: ∫ ∂F/∂θ dt per synapse and batch copy (SI)
        phases = {k: {"beta": {"free": 0.0, "nudged": b, "nudged_neg": -b}[k],
                      "integrals": {n: r.integrals[n] for n in names}}
                  for k, r in runs.items()}
        self.info = GradientInfo(total, free.v_out[:, :n_samples(x)], phases)
        return self._to_params(net, flat, joule)

    def __repr__(self):
        return (f"LagrangianEP(beta={self.beta!r}, symmetric={self.symmetric!r}"
                + ("" if self.params is None else f", params={self.params!r}") + ")")
