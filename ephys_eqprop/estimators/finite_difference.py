"""Central finite differences of the simulated loss: the reference of both families."""

from __future__ import annotations

import numpy as np
from brian2 import Quantity, get_dimensions, joule

from ..phases import Settle
from .base import GradientInfo, check_loss
from .static import StaticEstimator

__all__ = ["FiniteDifference"]


def _steps(base: dict, eps: float) -> dict:
    """Step per entry: ``eps·max(|θ|, mean|θ|)`` (a zero parameter still moves)."""
    out = {}
    for name, vals in base.items():
        scale = max(float(np.mean(np.abs(vals))), 1e-30) if vals.size else 1.0
        out[name] = eps * np.maximum(np.abs(vals), scale)
    return out


class FiniteDifference(StaticEstimator):
    """Central finite differences of the loss, simulated in Brian2.

    Parameters
    ----------
    eps : float
        Relative step: each parameter ``θ`` is moved by ``± eps·max(|θ|, mean|θ|)``
        (the mean over its connection or node group).
    settle : Settle
        Settling criterion of static phases; finite differences need tight settling.

    Notes
    -----
    Costs ``2 P`` free runs for ``P`` parameters: a reference for small circuits.
    Static data differentiate the loss at the fixed point; waveform data
    (:class:`~ephys_eqprop.TimeSeries`) the integrated loss of a forward run, with
    all perturbed circuits simulated side by side as batch copies of one Brian2 run.
    """

    #: largest number of circuit copies per run of the time-varying finite differences
    max_copies = 256

    def __init__(self, eps: float = 1e-4, *, settle: Settle | None = None):
        if not (isinstance(eps, (int, float)) and np.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a positive number; got {eps!r}.")
        self.eps = float(eps)
        self.settle = Settle() if settle is None else settle

    def gradient(self, net, x, y, loss) -> dict:
        """Central differences of the loss: static (fixed point) or time-varying."""
        from ..dynamics import is_waveform

        if is_waveform(x):
            return self._dynamic_gradient(net, x, y, loss)
        return super().gradient(net, x, y, loss)

    def _dynamic_gradient(self, net, x, y, loss):
        from ..dynamics import loss_terms, n_samples, prepare, repeat, simulate

        check_loss(loss)
        circ = net.circuit
        circ._require_output()
        base = {n: net._flat_param(n) for n in net.params}
        steps = _steps(base, self.eps)
        entries = [(n, s) for n in net.params for s in range(base[n].size)]
        S = n_samples(x)
        prepare(net, x, y, loss)  # checks against the user's network
        chunk = max(1, min(2 * len(entries), self.max_copies // S))
        fd = circ.build(batch=S * chunk, target=net.target, dt=net.dt, method=net.method,
                        scheme=net.scheme)
        fd.set_params(net.get_params())
        for grp in net.circuit.nodes:  # constant injected currents set by the user
            fd.groups[grp].variables["I_ext"].set_value(
                np.tile(np.asarray(net.groups[grp].variables["I_ext"].get_value())
                        .reshape(net.batch, -1)[0], S * chunk))
        prob = prepare(fd, repeat(x, chunk), repeat(y, chunk), loss)
        jobs = [(e, sign) for e in entries for sign in (+1, -1)]
        results = {}
        for start in range(0, len(jobs), chunk):
            part = jobs[start:start + chunk]
            for n in net.params:
                vals = np.tile(base[n], (S * chunk, 1))
                for c, ((pn, ps), sign) in enumerate(part):
                    if pn == n:
                        vals[c * S:(c + 1) * S, ps] += sign * steps[pn][ps]
                fd.write_param_copies(n, vals)
            traj = simulate(fd, prob, loss=loss)
            _, _, per_sample = loss_terms(fd, prob, loss, traj.v_out)
            for c, job in enumerate(part):
                results[job] = float(np.mean(per_sample[c * S:(c + 1) * S]))
        flat = {n: np.zeros(base[n].size) for n in net.params}
        for n, s in entries:
            flat[n][s] = (results[((n, s), 1)] - results[((n, s), -1)]) / (2 * steps[n][s])
        prob0 = prepare(net, x, y, loss)
        ref = simulate(net, prob0, loss=loss)
        total, _, _ = loss_terms(net, prob0, loss, ref.v_out)
        self.info = GradientInfo(total, ref.v_out[:, :S])
        return self._to_params(net, flat, joule)

    def program(self, net, w, y_full, loss):
        params = net.get_params()
        base = {n: net._flat_param(n) for n in net.params}
        steps = _steps(base, self.eps)
        free = yield from self._free(net, w, y_full, loss)
        flat = {}
        for name in net.params:
            grads = np.zeros(base[name].size)
            for s in range(base[name].size):
                vals = []
                for sign in (+1, -1):
                    pert = base[name].copy()
                    pert[s] += sign * steps[name][s]
                    net.set_params({name: self._shaped(net, name, pert, params[name])})
                    res = yield from self._free(net, w, y_full, loss)
                    vals.append(res.extra["loss"])
                grads[s] = (vals[0] - vals[1]) / (2 * steps[name][s])
            net.set_params({name: params[name]})
            flat[name] = grads
        self.info = GradientInfo(free.extra["loss"], free.extra["z"], {"free": free})
        return flat

    @staticmethod
    def _shaped(net, name, flat, like):
        """Flat values of ``name`` shaped like ``net.get_params()[name]``."""
        spec = net.params[name]
        if spec.kind == "connection" and net.circuit.connections[name].dense:
            conn = net.circuit.connections[name]
            full = np.asarray(like, dtype=float).copy()
            full[conn.i, conn.j] = flat
            flat = full
        return Quantity(flat, dim=get_dimensions(like))

    def __repr__(self):
        return f"FiniteDifference(eps={self.eps!r}, settle={self.settle!r})"
