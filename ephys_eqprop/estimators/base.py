"""What every estimator shares: the ``gradient`` call, checks, results by parameter name.

Estimators come in two families, each with its own base:
:class:`~ephys_eqprop.estimators.static.StaticEstimator` (phases that settle to
fixed points) and :class:`~ephys_eqprop.estimators.timevarying.TimeVaryingEstimator`
(runs through input waveforms). All return a dict of gradients of the loss by
public parameter name (``net.params``), shaped like ``net.get_params()``, in loss
units per parameter unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from brian2 import Quantity, get_dimensions, watt

from ..errors import CircuitError

__all__ = ["Estimator", "GradientInfo", "check_beta", "check_loss"]


@dataclass
class GradientInfo:
    """What an estimator saw while computing its last gradient.

    Attributes
    ----------
    loss : float
        Mean loss of the free run: watt at a fixed point, joule for a
        time-varying run.
    z : numpy.ndarray
        Free-run output values (volt): shape (n_samples, K) static, (N, n_samples,
        n_out) time-varying.
    phases : dict
        What was run ("free", "nudged", "nudged_neg", ...) and what it recorded.
    """

    loss: float
    z: np.ndarray
    phases: dict = field(default_factory=dict)


def check_beta(beta) -> float:
    """A finite, non-zero, dimensionless nudge strength as a float."""
    if isinstance(beta, Quantity) and get_dimensions(beta) is not get_dimensions(1):
        raise TypeError(f"beta is dimensionless; got {beta!r}.")
    try:
        b = float(beta)
    except (TypeError, ValueError) as ex:
        raise TypeError(f"beta must be a number; got {beta!r}.") from ex
    if not np.isfinite(b) or b == 0:
        raise ValueError(
            f"beta must be a finite, non-zero number (the nudge strength; e.g. beta=1e-3); "
            f"got {beta!r}. With beta = 0 the nudged phase equals the free phase and the "
            "estimate is 0/0."
        )
    return b


def check_loss(loss) -> None:
    """Refuse anything that is not a :class:`~ephys_eqprop.losses.Loss`."""
    from ..losses import Loss

    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be an ephys_eqprop.losses.Loss such as "
                        f"losses.MSE(g_nudge=1*uS); got {type(loss).__name__}.")


class Estimator:
    """Base of every estimator.

    Subclasses implement :meth:`gradient` (through a family base) and may declare
    the capability :attr:`needs_energy`: the estimator reads each parameter's
    local quantity ∂E/∂θ, so it applies only to elements with an energy term.
    """

    #: capability: the estimator needs every estimated parameter to have an energy term
    needs_energy: bool = False
    #: information about the last call to :meth:`gradient`
    info: GradientInfo | None = None

    def gradient(self, net, x, y, loss) -> dict:  # pragma: no cover - overridden
        raise NotImplementedError

    def _check_energy(self, net, names) -> None:
        """Refuse parameters without a local quantity if :attr:`needs_energy`."""
        if not self.needs_energy:
            return
        have = set(net.local_parameters())
        for name in names:
            if name in have:
                continue
            spec = net.params[name]
            if spec.kind == "connection":
                el = net.circuit.connections[name].element
                what = f"connection {name!r} ({type(el).__name__}, parameter {el.learnable!r})"
                why = ("a directed element with no energy term" if el.directed else
                       "an element with no energy term")
            else:
                what = f"node parameter {name!r}"
                why = "a parameter of an element with no energy term"
            raise CircuitError(
                f"{type(self).__name__} needs each parameter's local quantity ∂E/∂θ, but "
                f"{what} belongs to {why}, so equilibrium propagation does not apply to it. "
                "Train it with Adjoint(), which is exact for every element"
                + (", or leave it out with params=[...]." if hasattr(self, "params") else "."))

    @staticmethod
    def _to_params(net, flat_grads: dict, loss_unit=watt) -> dict:
        """Flat per-parameter gradients (SI) as Quantities shaped like ``net.get_params()``."""
        out = {}
        for name, spec in net.params.items():
            if name not in flat_grads:
                continue
            g = np.asarray(flat_grads[name], dtype=float)
            if spec.kind == "connection" and net.circuit.connections[name].dense:
                conn = net.circuit.connections[name]
                full = np.zeros(conn.shape)
                full[conn.i, conn.j] = g
                g = full
            unit = (1.0 * loss_unit) / spec.unit
            out[name] = Quantity(g, dim=get_dimensions(unit))
        return out
