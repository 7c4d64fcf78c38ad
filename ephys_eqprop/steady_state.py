"""Exact steady states and gradients of static circuits, by linear algebra.

This is the independent reference the Brian2 simulations and the EP estimators
are checked against: Kirchhoff's current law is solved with Newton's method
(dense linear algebra, vectorised over the batch), and the gradient of the loss
at the fixed point follows from the implicit-function theorem::

    H λ = ∂c/∂v,       dL/dg_ab = -(λ_a - λ_b)(v_a - v_b)

with ``H`` the Hessian of the total co-content at the fixed point (the circuit's
conductance matrix, diode small-signal conductances included).
"""

from __future__ import annotations

import numpy as np
from brian2 import Quantity, get_dimensions

from .circuit import Circuit, CircuitError

__all__ = ["SteadyState", "exact_gradient"]


class SteadyState:
    """Steady-state solver for a static circuit of linear resistors and nonlinear shunts.

    Parameters
    ----------
    circuit : Circuit or CircuitNetwork
        The circuit (its current parameters are taken from a built network).
    params : dict, optional
        Parameter values by connection name (default: those of ``circuit``).
    """

    def __init__(self, circuit, params: dict | None = None):
        from ephys_eqprop.models import Resistor

        net = None
        if not isinstance(circuit, Circuit):
            net, circuit = circuit, circuit.circuit
        self.circuit = circuit
        if params is None:
            params = net.get_params() if net is not None else {
                n: c.values for n, c in circuit.connections.items()}
        self.offsets = circuit.node_offsets()
        self.N = sum(s.n for s in circuit.nodes.values())
        self.in_offsets, off = {}, 0
        for name, spec in circuit.inputs.items():
            self.in_offsets[name] = off
            off += spec.size
        self.M = off
        A = np.zeros((self.N, self.N))
        Bx = np.zeros((self.N, self.M))
        self.flat = {}
        for name, conn in circuit.connections.items():
            if not isinstance(conn.element, Resistor):
                raise NotImplementedError(
                    f"The steady-state reference handles Resistor connections only; "
                    f"{name!r} is a {type(conn.element).__name__}."
                )
            vals = np.asarray(params[name], dtype=float)
            # dense parameters come as (n_pre, n_post) from a network, flat from a Circuit
            g = vals[conn.i, conn.j] if conn.dense and vals.ndim == 2 else vals.ravel()
            self.flat[name] = g
            b = self.offsets[conn.post] + conn.j
            np.add.at(A, (b, b), g)
            if conn.pre in circuit.inputs:
                np.add.at(Bx, (b, self.in_offsets[conn.pre] + conn.i), g)
            else:
                a = self.offsets[conn.pre] + conn.i
                np.add.at(A, (a, a), g)
                np.add.at(A, (a, b), -g)
                np.add.at(A, (b, a), -g)
        self.shunts = []  # (index array, i_fun, g_fun)
        for name, spec in circuit.nodes.items():
            idx = self.offsets[name] + np.arange(spec.n)
            A[idx, idx] += float(spec.model.g_leak)
            for _, sh in spec.model.shunt_prefixes():
                i_fun, g_fun = sh.numeric()
                self.shunts.append((idx, i_fun, g_fun))
        self.A, self.Bx = A, Bx
        out = circuit.output
        self.out_idx = (self.offsets[out] + np.arange(circuit.nodes[out].n)) if out else None

    def input_vector(self, x) -> np.ndarray:
        """Source voltages (B, M) in volt from ``x`` as given to ``gradient``."""
        return self.circuit.source_values(x)

    def _targets(self, y, loss, n_samples: int) -> np.ndarray:
        """Targets prepared by ``loss``, checked to give one target per sample."""
        yv = loss.prepare_targets(y, self.circuit.n_outputs)
        if yv.shape[0] != n_samples:
            raise CircuitError(
                f"x has {n_samples} samples but y has {yv.shape[0]}; give one target per sample."
            )
        return yv

    def _shunt(self, v):
        i = np.zeros_like(v)
        g = np.zeros_like(v)
        for idx, i_fun, g_fun in self.shunts:
            i[:, idx] += i_fun(v[:, idx])
            g[:, idx] += g_fun(v[:, idx])
        return i, g

    def solve(self, x, *, beta: float = 0.0, loss=None, y=None, tol: float = 1e-13,
              max_iter: int = 100) -> np.ndarray:
        """Node voltages (B, N) in volt at the (nudged) fixed point.

        Solves ``b - A v + i_shunt(v) - β ∂c/∂v = 0`` with Newton's method.
        """
        xs = self.input_vector(x)
        b = xs @ self.Bx.T
        v = np.linalg.solve(self.A, b.T).T
        diff = self.circuit.differential
        yv = None
        if beta:
            yv = self._targets(y, loss, len(xs))
        for _ in range(max_iter):
            i_sh, g_sh = self._shunt(v)
            r = b - v @ self.A.T + i_sh
            J = self.A[None, :, :] + g_sh[:, :, None] * np.eye(self.N)[None]
            if beta:
                z = loss.readout(v[:, self.out_idx], diff)
                r[:, self.out_idx] -= beta * loss.readout_transpose(loss.grad(z, yv), diff)
                J[np.ix_(range(len(v)), self.out_idx, self.out_idx)] += beta * self._loss_hess(
                    loss, z, yv)
            step = np.linalg.solve(J, r[:, :, None])[:, :, 0]
            # damp Newton steps on exponential elements
            scale = np.minimum(1.0, 0.5 / np.maximum(np.abs(step).max(axis=1, keepdims=True),
                                                     1e-300))
            v = v + (scale if self.shunts else 1.0) * step
            if np.max(np.abs(step)) < tol:
                break
        else:
            raise RuntimeError("Newton iteration for the steady state did not converge.")
        return v

    def _loss_hess(self, loss, z, y):
        """Hessian of the cost w.r.t. the output node voltages, (B, n_out, n_out)."""
        K = z.shape[1]
        eps = 1e-7
        Hz = np.empty((z.shape[0], K, K))
        for k in range(K):
            dz = np.zeros_like(z)
            dz[:, k] = eps
            Hz[:, :, k] = (loss.grad(z + dz, y) - loss.grad(z - dz, y)) / (2 * eps)
        if not self.circuit.differential:
            return Hz
        D = np.concatenate([np.eye(K), -np.eye(K)], axis=1)
        return np.einsum("ki,bkl,lj->bij", D, Hz, D)

    def loss(self, x, y, loss, weights=None) -> float:
        """Mean loss at the free fixed point (watt)."""
        v = self.solve(x)
        z = loss.readout(v[:, self.out_idx], self.circuit.differential)
        c = loss.cost(z, self._targets(y, loss, len(v)))
        return float(np.average(c, weights=weights))

    def gradient(self, x, y, loss) -> dict:
        """Exact gradient of the mean loss at the free fixed point (implicit function theorem).

        Returns
        -------
        dict of str to Quantity
            Shaped like the parameters, in loss units per parameter unit.
        """
        self.circuit._require_output()
        v = self.solve(x)
        xs = self.input_vector(x)
        B = v.shape[0]
        diff = self.circuit.differential
        yv = self._targets(y, loss, B)
        z = loss.readout(v[:, self.out_idx], diff)
        dc = np.zeros_like(v)
        dc[:, self.out_idx] = loss.readout_transpose(loss.grad(z, yv), diff)
        _, g_sh = self._shunt(v)
        H = self.A[None] + g_sh[:, :, None] * np.eye(self.N)[None]
        lam = np.linalg.solve(H, dc[:, :, None])[:, :, 0] / B
        out = {}
        for name, conn in self.circuit.connections.items():
            b_idx = self.offsets[conn.post] + conn.j
            if conn.pre in self.circuit.inputs:
                va = xs[:, self.in_offsets[conn.pre] + conn.i]
                la = 0.0
            else:
                a_idx = self.offsets[conn.pre] + conn.i
                va, la = v[:, a_idx], lam[:, a_idx]
            g = -np.sum((la - lam[:, b_idx]) * (va - v[:, b_idx]), axis=0)
            unit = (1.0 * _watt()) / Quantity(1.0, dim=get_dimensions(conn.values))
            if conn.dense:
                full = np.zeros(conn.shape)
                full[conn.i, conn.j] = g
                g = full
            out[name] = Quantity(g, dim=get_dimensions(unit))
        return out


def _watt():
    from brian2 import watt

    return watt


def exact_gradient(net, x, y, loss) -> dict:
    """Exact gradient of the mean loss of a static circuit (see :class:`SteadyState`)."""
    if net.circuit.output is None:
        raise CircuitError("The circuit has no output; call set_output first.")
    return SteadyState(net).gradient(x, y, loss)
