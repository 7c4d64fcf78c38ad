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
from brian2 import Quantity, get_dimensions, joule, watt

from .circuit import CircuitError
from .phases import PhaseRequest, Settle, run_program

__all__ = ["Estimator", "EP", "SymmetricEP", "FiniteDifference", "ExactSteadyState",
           "LagrangianEP", "Adjoint",
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


def _check_static(net, x, loss, who: str) -> None:
    """Refuse time-varying data and dynamic elements in a static estimator."""
    from .dynamics import TimeSeries

    if isinstance(x, TimeSeries):
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
        if conn.element.local is None and who in ("EP", "SymmetricEP"):
            raise CircuitError(
                f"Connection {conn.name!r} ({type(conn.element).__name__}) has no energy term, "
                "so equilibrium propagation does not apply to it; use Adjoint.")


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
        _check_static(net, x, loss, type(self).__name__)
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
    def _to_params(net, flat_grads: dict, loss_unit=watt) -> dict:
        out = {}
        for name, conn in net.circuit.connections.items():
            if name not in flat_grads:
                continue
            g = flat_grads[name]
            if conn.dense:
                full = np.zeros(conn.shape)
                full[conn.i, conn.j] = g
                g = full
            unit = (1.0 * loss_unit) / Quantity(1.0, dim=get_dimensions(conn.values))
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

    def gradient(self, net, x, y, loss) -> dict:
        """Central differences of the loss: static (fixed point) or time-varying.

        For a :class:`~ephys_eqprop.dynamics.TimeSeries` ``x`` the loss is the
        integrated cost of a forward run, and all ``2 P`` perturbed runs are
        simulated side by side as batch copies of one Brian2 run (chunked to at
        most ``max_copies`` copies), with a network built for the purpose.
        """
        from .dynamics import TimeSeries

        if isinstance(x, TimeSeries):
            return self._dynamic_gradient(net, x, y, loss)
        return super().gradient(net, x, y, loss)

    #: largest number of circuit copies per run of the time-varying finite differences
    max_copies = 256

    def _dynamic_gradient(self, net, x, y, loss):
        from .dynamics import TimeSeries, loss_terms, prepare, simulate

        _check_loss(loss)
        circ = net.circuit
        circ._require_output()
        base = {n: net._flat_param(n) for n in circ.connections}
        entries = [(n, s) for n in circ.connections for s in range(base[n].size)]
        S = x.n_samples
        prepare(net, x, y, loss)  # checks against the user's network
        chunk = max(1, min(2 * len(entries), self.max_copies // S))
        fd = circ.build(batch=S * chunk, target=net.target, dt=net.dt, method=net.method,
                        scheme=net.scheme)
        reps = TimeSeries(Quantity(np.concatenate([np.asarray(x.values)] * chunk), dim=x.dim),
                          x.dt)
        yreps = TimeSeries(Quantity(np.concatenate([np.asarray(y.values)] * chunk), dim=y.dim),
                           y.dt)
        prob = prepare(fd, reps, yreps, loss)
        jobs = [(e, sign) for e in entries for sign in (+1, -1)]
        results = {}
        steps = {}
        for n, s in entries:
            scale = max(float(np.mean(np.abs(base[n]))), 1e-30)
            steps[(n, s)] = self.eps * max(abs(base[n][s]), scale)
        for start in range(0, len(jobs), chunk):
            part = jobs[start:start + chunk]
            for n, conn in circ.connections.items():
                vals = np.tile(base[n], S * chunk).reshape(S * chunk, -1)
                for c, ((pn, ps), sign) in enumerate(part):
                    if pn == n:
                        vals[c * S:(c + 1) * S, ps] += sign * steps[(pn, ps)]
                fd.synapses[n].variables[conn.element.learnable].set_value(vals.ravel())
            traj = simulate(fd, prob, loss=loss)
            _, _, per_sample = loss_terms(fd, prob, loss, traj.v_out)
            for c, job in enumerate(part):
                results[job] = float(np.mean(per_sample[c * S:(c + 1) * S]))
        flat = {n: np.zeros(base[n].size) for n in circ.connections}
        for n, s in entries:
            flat[n][s] = (results[((n, s), 1)] - results[((n, s), -1)]) / (2 * steps[(n, s)])
        prob0 = prepare(net, x, y, loss)
        ref = simulate(net, prob0, loss=loss)
        total, _, _ = loss_terms(net, prob0, loss, ref.v_out)
        self.info = GradientInfo(total, ref.v_out[:, :S])
        return self._to_params(net, flat, joule)

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


# ---------------------------------------------------------------------- time-varying
def _check_loss(loss):
    from .losses import Loss

    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be an ephys_eqprop.losses.Loss such as "
                        f"losses.MSE(g_nudge=1*uS); got {type(loss).__name__}.")


class LagrangianEP(Estimator):
    """Lagrangian EP for time-varying circuits (Kendall 2021; DESIGN §3.1).

    A free run and a nudged run (nudge current ``-β m(t) ∂c/∂v`` into the outputs)
    go forward in time from the same (zero) state; every synapse accumulates the
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
        Connections to estimate (default: all). Elements without a local
        quantity (directed synapses, inductances) cannot be estimated.

    Notes
    -----
    Exact only in the quasi-static limit (inputs slow against the circuit's
    time constants); elsewhere it is **biased**, because the nudge acts forward
    in time while the sensitivity of the loss propagates backward (Pourcel et
    al. 2025). The bias is measured, not hidden: see the bias map of the
    validation suite. Use :class:`Adjoint` for the exact gradient.
    """

    def __init__(self, beta: float = 1e-2, *, symmetric: bool = True, params=None):
        self.beta = _check_beta(beta)
        self.symmetric = bool(symmetric)
        self.params = None if params is None else list(params)

    def _names(self, net):
        names = list(net.circuit.connections) if self.params is None else self.params
        for n in names:
            if n not in net.circuit.connections:
                raise CircuitError(f"Unknown connection {n!r}; connections are "
                                   f"{sorted(net.circuit.connections)}.")
            el = net.circuit.connections[n].element
            if not el.reciprocal:
                raise CircuitError(
                    f"Connection {n!r} is a {type(el).__name__}: a directed element with no "
                    "energy term, so Lagrangian EP does not apply to it. Train it with "
                    "Adjoint(), which is exact for directed synapses.")
            if el.local is None:
                raise CircuitError(
                    f"Connection {n!r} ({type(el).__name__}, parameter {el.learnable!r}) has "
                    "no local co-content quantity for Lagrangian EP. Leave it out with "
                    "params=[...] or use Adjoint().")
        return names

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
        from .dynamics import loss_terms, prepare, simulate

        _check_loss(loss)
        net.circuit._require_output()
        names = self._names(net)
        prob = prepare(net, x, y, loss)
        b = self.beta
        free = simulate(net, prob, loss=loss, accumulate=True)
        pos = simulate(net, prob, loss=loss, beta=b, accumulate=True)
        if self.symmetric:
            neg = simulate(net, prob, loss=loss, beta=-b, accumulate=True)
            flat = {n: prob.weights @ (pos.integrals[n] - neg.integrals[n]) / (2 * b)
                    for n in names}
        else:
            flat = {n: prob.weights @ (pos.integrals[n] - free.integrals[n]) / b
                    for n in names}
        total, _, _ = loss_terms(net, prob, loss, free.v_out)
        self.info = GradientInfo(total, free.v_out[:, :x.n_samples])
        return self._to_params(net, flat, joule)

    def __repr__(self):
        return (f"LagrangianEP(beta={self.beta!r}, symmetric={self.symmetric!r}"
                + ("" if self.params is None else f", params={self.params!r}") + ")")


class Adjoint(Estimator):
    """The exact gradient of a time-varying circuit by its adjoint circuit (DESIGN §3.2).

    One forward run records the free trajectory; the adjoint equations (the
    transposed Jacobian of the circuit's Brian2 equations, derived with sympy)
    run backwards over it, driven by ``-∂c/∂v`` at the outputs; every synapse
    integrates a product of local quantities. The result is the exact gradient
    of the simulated (forward-Euler) loss, for any element: nonlinear ones,
    inductors, and directed synapses.

    Notes
    -----
    Cost: one forward and one backward run. Memory: the recorded trajectory,
    ``N × (nodes + branch states) × batch`` floats; see :attr:`info`.
    """

    def gradient(self, net, x, y, loss) -> dict:
        """Exact ``dC/dθ`` (joule per parameter unit); see :class:`LagrangianEP`."""
        from .adjoint import AdjointCircuit
        from .dynamics import loss_terms, prepare, simulate

        _check_loss(loss)
        net.circuit._require_output()
        adj = getattr(net, "_adjoint", None)
        if adj is None:
            with net._target():
                adj = net._adjoint = AdjointCircuit(net)
        prob = prepare(net, x, y, loss)
        traj = simulate(net, prob, loss=loss, record=True)
        total, dcdv, _ = loss_terms(net, prob, loss, traj.v_out)
        flat = adj.run(traj, dcdv)
        nbytes = sum(a.nbytes for a in traj.v.values()) + sum(
            a.nbytes for a in traj.states.values())
        self.info = GradientInfo(total, traj.v_out[:, :x.n_samples],
                                 {"trajectory_bytes": nbytes, "adjoint": adj})
        return self._to_params(net, flat, joule)

    def __repr__(self):
        return "Adjoint()"
