"""Gradient estimators for static circuits.

All share ``.gradient(net, x, y, loss)`` and return a dict of gradients of the
mean loss over the samples, by connection name, shaped like the parameters, in
loss units per parameter unit (W/S = V² for a power cost and a conductance).

* :class:`EP` — one-sided equilibrium propagation, bias O(β);
* :class:`SymmetricEP` — ±β nudges, bias O(β²) (Laborieux et al. 2021);
* :class:`FiniteDifference` — central differences of the free-phase loss, the
  simulation-based exact reference (2 P free phases for P parameters);
* :class:`ExactSteadyState` — implicit differentiation of the fixed point with
  numpy (no Brian2 run): the linear-algebra reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from brian2 import Quantity, get_dimensions, watt

from .circuit import CircuitError
from .phases import PhaseRequest, Settle, run_program

__all__ = ["Estimator", "EP", "SymmetricEP", "FiniteDifference", "ExactSteadyState",
           "GradientInfo"]


@dataclass
class GradientInfo:
    """What an estimator saw while computing its last gradient.

    Attributes
    ----------
    loss : float
        Mean loss at the free fixed point (watt).
    z : numpy.ndarray, shape (n_samples, K)
        Free-phase output values (volt).
    phases : dict of str to PhaseResult
        The phases that were run ("free", "nudged", "nudged_neg", ...).
    """

    loss: float
    z: np.ndarray
    phases: dict = field(default_factory=dict)


def _check_beta(beta) -> float:
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


class Estimator:
    """Base of the static estimators."""

    settle: Settle
    #: information about the last call to :meth:`gradient`
    info: GradientInfo | None = None

    def _setup(self, net, x, y, loss):
        from .losses import Loss

        if not isinstance(loss, Loss):
            raise TypeError(
                f"loss must be an ephys_eqprop.losses.Loss such as losses.MSE(g_nudge=1*uS); "
                f"got {type(loss).__name__}."
            )
        net.circuit._require_output()
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

    def _free(self, net, w, y_full, loss):
        """Phase sub-program: the free phase, with the loss and outputs recorded."""
        free = yield PhaseRequest(0.0, None, self.settle)
        z = loss.readout(free.v_out, net.circuit.differential)
        c = loss.cost(z, y_full)
        n = int(np.count_nonzero(w))
        free.extra["loss"] = float(np.sum(w * c))
        free.extra["z"] = z[:n]
        return free

    def program(self, net, w, y_full, loss):
        """Phase program computing the flat gradients (inputs and targets already set).

        A generator of :class:`~ephys_eqprop.phases.PhaseRequest` returning a dict of
        flat per-synapse gradients (SI floats); sets :attr:`info`.
        """
        raise NotImplementedError

    @staticmethod
    def _to_params(net, flat_grads: dict) -> dict:
        out = {}
        for name, conn in net.circuit.connections.items():
            g = flat_grads[name]
            if conn.dense:
                full = np.zeros(conn.shape)
                full[conn.i, conn.j] = g
                g = full
            unit = (1.0 * watt) / Quantity(1.0, dim=get_dimensions(conn.values))
            out[name] = Quantity(g, dim=get_dimensions(unit))
        return out

    def gradient(self, net, x, y, loss) -> dict:
        """Estimate the gradient of the mean loss.

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
            ``dL/dθ`` by connection name, shaped like ``net.get_params()``.
        """
        w, y_full = self._setup(net, x, y, loss)
        return self._to_params(net, run_program(net, self.program(net, w, y_full, loss)))


class EP(Estimator):
    """One-sided equilibrium propagation: ``(∂E/∂θ(v_β) - ∂E/∂θ(v_0)) / β``.

    Parameters
    ----------
    beta : float
        Nudge strength (dimensionless, non-zero). Bias is O(β).
    settle : Settle
        Settling criterion of each phase.
    """

    def __init__(self, beta: float = 1e-3, *, settle: Settle | None = None):
        self.beta = _check_beta(beta)
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
        free = yield from self._free(net, w, y_full, loss)
        pos = yield from self._nudged(self.beta, free)
        neg = yield from self._nudged(-self.beta, free)
        flat = {n: w @ (pos.local[n] - neg.local[n]) / (2 * self.beta) for n in free.local}
        self.info = GradientInfo(free.extra["loss"], free.extra["z"],
                                 {"free": free, "nudged": pos, "nudged_neg": neg})
        return flat


class FiniteDifference(Estimator):
    """Central finite differences of the free-phase loss, simulated in Brian2.

    Parameters
    ----------
    eps : float
        Relative step: each parameter ``θ`` is moved by ``± eps·max(|θ|, mean|θ|)``.
    settle : Settle
        Settling criterion; finite differences need tight settling.

    Notes
    -----
    Costs ``2 P`` free phases for ``P`` parameters: a reference for small circuits.
    """

    def __init__(self, eps: float = 1e-4, *, settle: Settle | None = None):
        if not (isinstance(eps, (int, float)) and np.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a positive number; got {eps!r}.")
        self.eps = float(eps)
        self.settle = Settle() if settle is None else settle

    def program(self, net, w, y_full, loss):
        params = net.get_params()
        free = yield from self._free(net, w, y_full, loss)
        flat = {}
        for name, conn in net.circuit.connections.items():
            base = np.asarray(params[name], dtype=float)
            flat_vals = base[conn.i, conn.j] if conn.dense else base
            scale = max(float(np.mean(np.abs(flat_vals))), 1e-30)
            grads = np.zeros(flat_vals.size)
            for s in range(flat_vals.size):
                h = self.eps * max(abs(flat_vals[s]), scale)
                vals = []
                for sign in (+1, -1):
                    pert = flat_vals.copy()
                    pert[s] += sign * h
                    full = base.copy()
                    if conn.dense:
                        full[conn.i, conn.j] = pert
                    else:
                        full = pert
                    net.set_params({name: Quantity(full, dim=get_dimensions(params[name]))})
                    res = yield from self._free(net, w, y_full, loss)
                    vals.append(res.extra["loss"])
                grads[s] = (vals[0] - vals[1]) / (2 * h)
            net.set_params({name: params[name]})
            flat[name] = grads
        self.info = GradientInfo(free.extra["loss"], free.extra["z"], {"free": free})
        return flat

    def __repr__(self):
        return f"FiniteDifference(eps={self.eps!r}, settle={self.settle!r})"


class ExactSteadyState(Estimator):
    """Exact gradient by implicit differentiation of the fixed point (numpy, no Brian2 run).

    See :class:`ephys_eqprop.steady_state.SteadyState`. Resistor connections only.
    """

    def gradient(self, net, x, y, loss) -> dict:
        from .steady_state import SteadyState

        net.circuit._require_output()
        ss = SteadyState(net)
        grads = ss.gradient(x, y, loss)
        v = ss.solve(x)
        z = loss.readout(v[:, ss.out_idx], net.circuit.differential)
        yv = loss.prepare_targets(y, net.circuit.n_outputs)
        self.info = GradientInfo(float(np.mean(loss.cost(z, yv))), z)
        return grads

    def __repr__(self):
        return "ExactSteadyState()"
