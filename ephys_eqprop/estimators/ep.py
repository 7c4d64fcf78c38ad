"""Equilibrium propagation on static circuits: one-sided and symmetric."""

from __future__ import annotations

from ..phases import PhaseRequest, Settle
from .base import GradientInfo, check_beta
from .static import StaticEstimator

__all__ = ["EP", "SymmetricEP"]


class EP(StaticEstimator):
    """One-sided equilibrium propagation: ``(∂E/∂θ(v_β) - ∂E/∂θ(v_0)) / β``.

    Parameters
    ----------
    beta : float
        Nudge strength (dimensionless, non-zero). Bias is O(β).
    settle : Settle
        Settling criterion of each phase.
    """

    needs_energy = True

    def __init__(self, beta: float = 1e-3, *, settle: Settle | None = None):
        self.beta = check_beta(beta)
        self.settle = Settle() if settle is None else settle

    def _nudged(self, beta, free):
        return (yield PhaseRequest(beta, free.state, self.settle))

    def program(self, net, w, y_full, loss):
        free = yield from self._free(net, w, y_full, loss)
        nudged = yield from self._nudged(self.beta, free)
        flat = {n: w @ (nudged.local[n] - free.local[n]) / self.beta for n in free.local}
        self.info = GradientInfo(free.extra["loss"], free.extra["z"],
                                 {"free": free, "nudged": nudged})
        return flat

    def __repr__(self):
        return f"{type(self).__name__}(beta={self.beta!r}, settle={self.settle!r})"


class SymmetricEP(EP):
    """Symmetric equilibrium propagation: ``(∂E/∂θ(v_β) - ∂E/∂θ(v_-β)) / 2β``.

    Bias O(β²) (Laborieux et al. 2021); three phases.
    """

    def program(self, net, w, y_full, loss):
        # the free phase's local quantities cancel out of the symmetric difference
        free = yield from self._free(net, w, y_full, loss, local=False)
        pos = yield from self._nudged(self.beta, free)
        neg = yield from self._nudged(-self.beta, free)
        flat = {n: w @ (pos.local[n] - neg.local[n]) / (2 * self.beta) for n in pos.local}
        self.info = GradientInfo(free.extra["loss"], free.extra["z"],
                                 {"free": free, "nudged": pos, "nudged_neg": neg})
        return flat
