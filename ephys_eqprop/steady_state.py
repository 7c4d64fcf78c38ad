"""Exact steady states and gradients of static circuits, by linear algebra.

This is the independent reference the Brian2 simulations and the EP estimators
are checked against: Kirchhoff's current law ``r(v) = 0`` — every element's
current, the constant currents ``I_ext`` set on node groups, the sources — is
solved with Newton's method (dense linear algebra, vectorised over the batch; a
set of nodes no branch joins to each other, such as a hidden layer, is divided out
before the rest is factorised), and the gradient of the loss at the fixed point
follows from the implicit-function theorem::

    Hᵀ λ = ∂c/∂v,       dL/dθ = λ · ∂r/∂θ,       H = -∂r/∂v

with ``H`` the circuit's small-signal conductance matrix at the fixed point (for
a reciprocal circuit the Hessian of its total co-content). Currents and their
derivatives come from the elements' declared expressions (sympy), evaluated with
numpy; nothing is simulated.
"""

from __future__ import annotations

import numpy as np
from brian2 import Quantity, get_dimensions, watt

from .circuit import Circuit
from .errors import CircuitError
from .expressions import differentiate, numpy_function

__all__ = ["SteadyState", "exact_gradient"]


def _second_derivative_zero(expr: str, variables) -> bool:
    """Whether ``expr`` is affine in every one of ``variables`` jointly (no curvature)."""
    for a in variables:
        da = differentiate(expr, a, "current")
        for b in variables:
            if differentiate(da, b, "current") != "0":
                return False
    return True


class _NodeGroupTerms:
    """Numpy functions of one node group's element current, its derivatives, its parameters."""

    def __init__(self, name, spec, values: dict, I_ext: np.ndarray | None):
        model = spec.model
        self.name, self.n = name, spec.n
        for el in model.shunts:
            if el.dynamic:
                raise CircuitError(
                    f"Node group {name!r} has a {type(el).__name__} with states; the exact "
                    "steady-state reference covers static circuits only.")
        self.learn = [v.name for v in model.learnable_variables() if v.name != "g_leak"]
        funs = model.__dict__.get("_steady_state_functions")
        if funs is None:  # sympy and lambdify once per node model
            args = ["v", "g_leak", *self.learn]
            consts = {k: v for k, v in model.constants().items() if k not in args}
            current = model.element_current()
            what = f"current of node group {name!r}"
            funs = {
                "i": numpy_function(current, args, consts, what=what),
                "di_dv": numpy_function(differentiate(current, "v", what), args, consts,
                                        what=what),
                "di_dp": {p: numpy_function(differentiate(current, p, what), args, consts,
                                            what=what) for p in ["g_leak", *self.learn]},
                "linear": _second_derivative_zero(current, ["v"]),
            }
            model.__dict__["_steady_state_functions"] = funs
        self.i, self.di_dv, self.di_dp = funs["i"], funs["di_dv"], funs["di_dp"]
        self.linear = funs["linear"]
        g_leak = values.get(f"{name}.g_leak", spec.values.get("g_leak", model.g_leak))
        self.values = {"g_leak": np.broadcast_to(np.asarray(g_leak, float), (spec.n,))}
        for p in self.learn:
            self.values[p] = np.asarray(values.get(f"{name}.{p}", spec.values[p]), float)
        self.I_ext = I_ext

    def args(self, v):
        return (v, *(self.values[p] for p in ["g_leak", *self.learn]))


class _BranchTerms:
    """Numpy functions of one connection's current and its derivatives."""

    def __init__(self, conn, theta: np.ndarray):
        el = conn.element
        if el.dynamic:
            raise CircuitError(
                f"Connection {conn.name!r} ({type(el).__name__}) has states of its own; the "
                "exact steady-state reference covers static circuits only.")
        self.conn, self.theta = conn, theta
        funs = el.__dict__.get("_steady_state_functions")
        if funs is None:  # sympy and lambdify once per element
            consts = {k: float(np.asarray(v)) for k, v in el.values.items()}
            args = ["v_pre", "v_post", el.learnable]
            what = f"current of {type(el).__name__}"
            funs = {
                "i": numpy_function(el.current, args, consts, what=what),
                "d": {a: numpy_function(differentiate(el.current, a, what), args, consts,
                                        what=what) for a in args},
                "linear": _second_derivative_zero(el.current, ["v_pre", "v_post"]),
            }
            el.__dict__["_steady_state_functions"] = funs
        self.i, self.d, self.linear = funs["i"], funs["d"], funs["linear"]
        self.directed = el.directed


class SteadyState:
    """Steady-state solver for a static circuit of any stateless elements.

    Parameters
    ----------
    circuit : Circuit or CircuitNetwork
        The circuit (a built network gives its current parameters and the constant
        currents ``I_ext`` set on its node groups).
    params : dict, optional
        Parameter values by name (default: those of ``circuit``).
    """

    def __init__(self, circuit, params: dict | None = None):
        net = None
        if not isinstance(circuit, Circuit):
            net, circuit = circuit, circuit.circuit
        self.circuit = circuit
        if params is None:
            if net is not None:
                params = net.get_params()
            else:
                params = {n: c.values for n, c in circuit.connections.items()}
                for g, spec in circuit.nodes.items():
                    params.update({f"{g}.{k}": v for k, v in spec.values.items()})
        self.offsets = circuit.node_offsets()
        self.N = sum(s.n for s in circuit.nodes.values())
        self.in_offsets, off = {}, 0
        for name, spec in circuit.inputs.items():
            self.in_offsets[name] = off
            off += spec.size
        self.M = off
        self.batch = None if net is None else net.batch
        self.groups = []
        for name, spec in circuit.nodes.items():
            I_ext = None
            if net is not None:
                I_ext = np.asarray(net.groups[name].variables["I_ext"].get_value(),
                                   dtype=float).reshape(net.batch, spec.n)
            self.groups.append(_NodeGroupTerms(name, spec, params, I_ext))
        self.branches = []
        self.flat = {}
        for name, conn in circuit.connections.items():
            vals = np.asarray(params[name], dtype=float)
            # dense parameters come as (n_pre, n_post) from a network, flat from a Circuit
            g = vals[conn.i, conn.j] if conn.dense and vals.ndim == 2 else vals.ravel()
            self.flat[name] = g
            self.branches.append(_BranchTerms(conn, g))
        self.linear = all(t.linear for t in self.groups) and all(t.linear for t in self.branches)
        out = circuit.output
        self.out_idx = (self.offsets[out] + np.arange(circuit.nodes[out].n)) if out else None
        # the plan depends on the circuit's structure only, which a built network fixes
        self._plan_owner = net if net is not None else self

    # ------------------------------------------------------------------ linear solves
    def _elimination_plan(self):
        """``(E, R, ...)``: node indices solved first (E) and by a Schur complement (R).

        The tuple also holds the index grids of the E×R, R×E and R×R blocks.

        E is a set of nodes no branch joins to each other, so that the Jacobian's E×E
        block is diagonal for every voltage (node elements couple a node to itself only);
        output nodes stay in R, where a nudge couples them. Found greedily, nodes of few
        branches first or of most first, whichever finds more; ``None`` when E would be
        too small to pay for the bookkeeping.
        """
        owner = self._plan_owner.__dict__
        if owner.get("_block_plan") is None:
            neighbours = [set() for _ in range(self.N)]
            for conn in self.circuit.connections.values():
                if conn.pre in self.circuit.inputs:
                    continue
                for a, b in zip(self.offsets[conn.pre] + conn.i,
                                self.offsets[conn.post] + conn.j, strict=True):
                    if a != b:
                        neighbours[a].add(b)
                        neighbours[b].add(a)
            banned = set() if self.out_idx is None else set(self.out_idx.tolist())
            best = np.zeros(self.N, bool)
            for sign in (1, -1):  # greedy, by fewest and by most branches; keep the larger
                chosen = np.zeros(self.N, bool)
                for n in sorted(range(self.N), key=lambda k: sign * len(neighbours[k])):
                    if n not in banned and not any(chosen[m] for m in neighbours[n]):
                        chosen[n] = True
                if chosen.sum() > best.sum():
                    best = chosen
            E, R = np.flatnonzero(best), np.flatnonzero(~best)
            plan = False
            if E.size >= max(8, self.N // 4):
                plan = (E, R, np.ix_(E, R), np.ix_(R, E), np.ix_(R, R))
            owner["_block_plan"] = plan
        return owner["_block_plan"] or None

    def _solve(self, J: np.ndarray, r: np.ndarray, transpose: bool = False) -> np.ndarray:
        """``x`` with ``J x = r`` (or ``Jᵀ x = r``), batched: J (B, N, N), r (B, N).

        With an elimination plan, the diagonal E block is divided out and only the
        Schur complement on R is factorised (for a layered network, the size of its
        output layer instead of all its nodes).
        """
        if transpose:
            J = np.transpose(J, (0, 2, 1))
        plan = self._elimination_plan()
        if plan is not None:
            E, R, ER, RE, RR = plan
            d = J[:, E, E]
            if np.all(d != 0) and np.all(np.isfinite(d)):
                J_RE = J[:, RE[0], RE[1]]
                W = J[:, ER[0], ER[1]] / d[:, :, None]  # D⁻¹ J_ER
                u = r[:, E] / d  # D⁻¹ r_E
                S = J[:, RR[0], RR[1]] - J_RE @ W
                x = np.empty_like(r)
                x[:, R] = np.linalg.solve(S, (r[:, R] - (J_RE @ u[:, :, None])[:, :, 0])
                                          [:, :, None])[:, :, 0]
                x[:, E] = u - (W @ x[:, R][:, :, None])[:, :, 0]
                return x
        return np.linalg.solve(J, r[:, :, None])[:, :, 0]

    # ------------------------------------------------------------------ pieces
    def input_vector(self, x) -> np.ndarray:
        """Source voltages (B, M) in volt from ``x`` as given to ``gradient``."""
        return self._inputs(x)[0]

    def _inputs(self, x):
        """Source voltages (B, M) and injected clamp currents (B, N) from ``x``."""
        circ = self.circuit
        xs, currents, B = circ.input_values(x)
        inj = np.zeros((B, self.N))
        for name, arr in currents.items():
            spec = circ.currents[name]
            inj[:, self.offsets[spec.target] + np.arange(spec.n)] += arr
        return xs, inj

    def _targets(self, y, loss, n_samples: int) -> np.ndarray:
        """Targets prepared by ``loss``, checked to give one target per sample."""
        yv = loss.prepare_targets(y, self.circuit.n_outputs)
        if yv.shape[0] != n_samples:
            raise CircuitError(
                f"x has {n_samples} samples but y has {yv.shape[0]}; give one target per sample."
            )
        return yv

    def _I_ext(self, terms, B):
        if terms.I_ext is None:
            return 0.0
        # batch copy b of the network holds sample b (fillers repeat sample 0)
        return terms.I_ext[:B] if B <= terms.I_ext.shape[0] else terms.I_ext[:1]

    def _terminals(self, conn, v, xs):
        post = v[:, self.offsets[conn.post] + conn.j]
        if conn.pre in self.circuit.inputs:
            return xs[:, self.in_offsets[conn.pre] + conn.i], post, None
        a = self.offsets[conn.pre] + conn.i
        return v[:, a], post, a

    def residual(self, v: np.ndarray, xs: np.ndarray, *, jacobian: bool = True,
                 injected: np.ndarray | None = None):
        """Net current into every node ``r(v)`` (B, N) and ``∂r/∂v`` (B, N, N).

        ``injected``: currents of the current inputs into each node (B, N), amp.
        """
        B = v.shape[0]
        r = np.zeros_like(v) if injected is None else np.array(injected, dtype=float)
        J = np.zeros((B, self.N, self.N)) if jacobian else None
        for t in self.groups:
            idx = self.offsets[t.name] + np.arange(t.n)
            args = t.args(v[:, idx])
            r[:, idx] += t.i(*args) + self._I_ext(t, B)
            if jacobian:
                J[:, idx, idx] += t.di_dv(*args)
        # branches whose current is affine in their terminal voltages (resistors) add
        # c + A v + S x, with matrices assembled once
        c0, A, S = self._affine_branches()
        r += c0 + v @ A.T + xs @ S.T
        if jacobian:
            J += A
        self._add_branches([t for t in self.branches if not t.linear], v, xs, r, J)
        return r, J

    def _affine_branches(self):
        """``(c, A, S)``: the affine branches' current ``c + A v + S x`` into every node."""
        if getattr(self, "_affine", None) is None:
            lin = [t for t in self.branches if t.linear]
            v0, x0 = np.zeros((1, self.N)), np.zeros((1, self.M))
            c0 = np.zeros((1, self.N))
            A = np.zeros((1, self.N, self.N))
            self._add_branches(lin, v0, x0, c0, A)
            S = np.zeros((self.N, self.M))
            for t in lin:  # the sources' columns: ∂I/∂v_pre of branches from inputs
                conn = t.conn
                if conn.pre not in self.circuit.inputs:
                    continue
                v_pre, v_post, _ = self._terminals(conn, v0, x0)
                d_pre = np.broadcast_to(t.d["v_pre"](v_pre, v_post, t.theta),
                                        (1, conn.i.size))[0]
                np.add.at(S, (self.offsets[conn.post] + conn.j,
                              self.in_offsets[conn.pre] + conn.i), d_pre)
            self._affine = (c0[0], A[0], S)
        return self._affine

    def _add_branches(self, branches, v, xs, r, J) -> None:
        """Add the currents (into ``r``) and Jacobians (into ``J``, if given) of branches."""
        B = v.shape[0]
        for t in branches:
            conn = t.conn
            v_pre, v_post, a = self._terminals(conn, v, xs)
            b = self.offsets[conn.post] + conn.j
            cur = np.broadcast_to(t.i(v_pre, v_post, t.theta), (B, b.size))
            np.add.at(r, (slice(None), b), cur)
            if a is not None and not t.directed:
                np.add.at(r, (slice(None), a), -cur)
            if J is None:
                continue
            d_pre = np.broadcast_to(t.d["v_pre"](v_pre, v_post, t.theta), (B, b.size))
            d_post = np.broadcast_to(t.d["v_post"](v_pre, v_post, t.theta), (B, b.size))
            rows = np.arange(B)[:, None]
            np.add.at(J, (rows, b[None, :], b[None, :]), d_post)
            if a is not None:
                np.add.at(J, (rows, b[None, :], a[None, :]), d_pre)
                if not t.directed:
                    np.add.at(J, (rows, a[None, :], a[None, :]), -d_pre)
                    np.add.at(J, (rows, a[None, :], b[None, :]), -d_post)

    def conductance_matrix(self, v=None, xs=None) -> np.ndarray:
        """The small-signal conductance matrix ``H = -∂r/∂v`` (N, N), siemens as floats.

        At node voltages ``v`` (shape (N,), default 0 V) and source voltages ``xs``
        (shape (M,), default 0 V); for a linear circuit it is the same everywhere.
        """
        v = np.zeros((1, self.N)) if v is None else np.asarray(v, dtype=float).reshape(1, -1)
        xs = np.zeros((1, self.M)) if xs is None else np.asarray(xs, dtype=float).reshape(1, -1)
        return -self.residual(v, xs)[1][0]

    @property
    def A(self) -> np.ndarray:
        """The conductance matrix of a linear circuit (see :meth:`conductance_matrix`)."""
        if not self.linear:
            raise ValueError("The circuit has nonlinear elements: its conductance matrix "
                             "depends on the voltages; use conductance_matrix(v, xs).")
        return self.conductance_matrix()

    # ------------------------------------------------------------------ solving
    def solve(self, x, *, beta: float = 0.0, loss=None, y=None, tol: float = 1e-13,
              max_iter: int = 100) -> np.ndarray:
        """Node voltages (B, N) in volt at the (nudged) fixed point.

        Solves ``r(v) - β ∂c/∂v = 0`` with Newton's method (steps limited to 0.5 V
        when an element is nonlinear).
        """
        xs, inj = self._inputs(x)
        yv = self._targets(y, loss, xs.shape[0]) if beta else None
        v, _, _, converged = self.newton(xs, inj, beta=beta, loss=loss, yv=yv, tol=tol,
                                         max_iter=max_iter)
        if not converged:
            raise RuntimeError("Newton iteration for the steady state did not converge.")
        return v

    def newton(self, xs, inj, *, beta: float = 0.0, loss=None, yv=None, v0=None,
               tol: float = 1e-13, max_iter: int = 100):
        """Newton's method on ``r(v) - β ∂c/∂v = 0`` from ``v0`` (default 0 V).

        Parameters
        ----------
        xs : numpy.ndarray, shape (B, M)
            Source voltages (volt).
        inj : numpy.ndarray, shape (B, N)
            Injected clamp currents (amp).
        yv : numpy.ndarray, optional
            Prepared targets (one row per batch row), needed for ``beta != 0``.

        Returns
        -------
        v : numpy.ndarray, shape (B, N)
        iterations : int
        last_step : float
            Largest voltage change of the last iteration (volt).
        converged : bool
            Whether the last step was below ``tol``.
        """
        B = xs.shape[0]
        diff = self.circuit.differential
        v = np.zeros((B, self.N)) if v0 is None else np.array(v0, dtype=float)
        last = np.inf
        for k in range(1, max_iter + 1):
            r, J = self.residual(v, xs, injected=inj)
            if beta:
                z = loss.readout(v[:, self.out_idx], diff)
                r[:, self.out_idx] -= beta * loss.readout_transpose(loss.grad(z, yv), diff)
                J[np.ix_(range(B), self.out_idx, self.out_idx)] -= beta * self._loss_hess(
                    loss, z, yv)
            step = self._solve(-J, r)
            if not self.linear:  # damp Newton steps on exponential elements
                scale = np.minimum(1.0, 0.5 / np.maximum(np.abs(step).max(axis=1, keepdims=True),
                                                         1e-300))
                step = scale * step
            v = v + step
            last = float(np.max(np.abs(step))) if step.size else 0.0
            if not np.isfinite(last):
                break
            if last < tol:
                return v, k, last, True
        return v, max_iter, last, False

    def _loss_hess(self, loss, z, y):
        """Hessian of the cost w.r.t. the output node voltages, (B, n_out, n_out)."""
        B, K = z.shape
        eps = 1e-7
        # central differences of the gradient, all 2K shifted copies of the batch at once
        shift = eps * np.eye(K)
        zs = np.concatenate([z[None] + shift[:, None], z[None] - shift[:, None]])
        g = loss.grad(zs.reshape(2 * K * B, K), np.tile(y, (2 * K,) + (1,) * (y.ndim - 1)))
        g = g.reshape(2, K, B, K)
        Hz = np.transpose((g[0] - g[1]) / (2 * eps), (1, 2, 0))  # (B, i, k) = ∂g_i/∂z_k
        if not self.circuit.differential:
            return Hz
        # z = D v with D = [I, -I]: the Hessian in v is Dᵀ Hz D = [[Hz, -Hz], [-Hz, Hz]]
        return np.concatenate([np.concatenate([Hz, -Hz], axis=2),
                               np.concatenate([-Hz, Hz], axis=2)], axis=1)

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
            By parameter name, shaped like the parameters, in loss units per
            parameter unit.
        """
        self.circuit._require_output()
        v = self.solve(x)
        xs, inj = self._inputs(x)
        B = v.shape[0]
        diff = self.circuit.differential
        yv = self._targets(y, loss, B)
        z = loss.readout(v[:, self.out_idx], diff)
        dc = np.zeros_like(v)
        dc[:, self.out_idx] = loss.readout_transpose(loss.grad(z, yv), diff)
        _, J = self.residual(v, xs, injected=inj)
        H = -J
        lam = self._solve(H, dc, transpose=True) / B
        flat = {}
        for t in self.branches:
            conn = t.conn
            v_pre, v_post, a = self._terminals(conn, v, xs)
            b = self.offsets[conn.post] + conn.j
            dtheta = t.d[conn.element.learnable](v_pre, v_post, t.theta)
            lam_a = 0.0 if (a is None or t.directed) else lam[:, a]
            flat[conn.name] = np.sum((lam[:, b] - lam_a) * dtheta, axis=0)
        for t in self.groups:
            idx = self.offsets[t.name] + np.arange(t.n)
            args = t.args(v[:, idx])
            spec = self.circuit.nodes[t.name]
            for var in spec.model.learnable_variables():
                flat[f"{t.name}.{var.name}"] = np.sum(lam[:, idx] * t.di_dp[var.name](*args),
                                                      axis=0)
        out = {}
        for name, spec in self.circuit.parameters().items():
            g = flat[name]
            if spec.kind == "connection" and self.circuit.connections[name].dense:
                conn = self.circuit.connections[name]
                full = np.zeros(conn.shape)
                full[conn.i, conn.j] = g
                g = full
            out[name] = Quantity(g, dim=get_dimensions((1.0 * watt) / spec.unit))
        return out


def exact_gradient(net, x, y, loss) -> dict:
    """Exact gradient of the mean loss of a static circuit (see :class:`SteadyState`)."""
    if net.circuit.output is None:
        raise CircuitError("The circuit has no output; call set_output first.")
    return SteadyState(net).gradient(x, y, loss)
