"""Gradient estimators against independent references.

References, none of which shares code with the estimator under test:

* a hand-derived gradient of a one-node circuit;
* plain numpy linear algebra for random linear layered networks, differentiated by
  the complex-step method (written here, not taken from ``SteadyState``);
* central finite differences of ``SteadyState(...).loss`` with perturbed parameters
  (for diode networks, where the implicit-function formula is itself under test);
* ``eq.FiniteDifference``: central differences of simulated free phases.
"""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import Quantity, get_dimensions, siemens, uS, volt
from helpers import assert_quantity_close

import ephys_eqprop as eq

GRAD_UNIT = volt**2  # W/S: a power cost differentiated by a conductance


# ---------------------------------------------------------------- references
def linear_loss(Gs, g_leak, x, y, g_nudge):
    """Mean MSE loss of a layered linear network, by nodal analysis (complex-safe).

    Gs : list of (n_l, n_{l+1}) conductances (S); the first layer is the input sources.
    Nodes of layer l >= 1 get a leak ``g_leak``; the last layer is the output.
    """
    sizes = [G.shape[1] for G in Gs]
    offs = np.concatenate([[0], np.cumsum(sizes)])
    N = offs[-1]
    A = np.zeros((N, N), dtype=np.result_type(*Gs, float))
    A[np.diag_indices(N)] += g_leak
    rhs = np.zeros((x.shape[0], N), dtype=A.dtype)
    for layer, G in enumerate(Gs):
        post = slice(offs[layer], offs[layer + 1])
        A[post, post] += np.diag(G.sum(axis=0))
        if layer == 0:
            rhs[:, post] += x @ G  # currents from the ideal sources
        else:
            pre = slice(offs[layer - 1], offs[layer])
            A[pre, pre] += np.diag(G.sum(axis=1))
            A[pre, post] -= G
            A[post, pre] -= G.T
    v = np.linalg.solve(A, rhs.T).T
    z = v[:, offs[-2]:]
    return np.mean(0.5 * g_nudge * np.sum((z - y) ** 2, axis=1))


def complex_step_gradient(Gs, g_leak, x, y, g_nudge, h=1e-30):
    """dL/dG for every conductance, by the complex-step method (exact to round-off)."""
    grads = []
    for k, G in enumerate(Gs):
        dG = np.zeros(G.shape)
        for idx in np.ndindex(G.shape):
            pert = [g.astype(complex) for g in Gs]
            pert[k][idx] += 1j * h
            dG[idx] = linear_loss(pert, g_leak, x, y, g_nudge).imag / h
        grads.append(dG)
    return grads


def fd_of_steady_state_loss(net, x, y, loss, rel_step=1e-5):
    """Central differences of the numpy steady-state loss in each conductance."""
    params = net.get_params()
    out = {}
    for name, val in params.items():
        base = np.asarray(val, dtype=float)
        grad = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            h = rel_step * max(abs(base[idx]), np.mean(np.abs(base)))
            losses = []
            for sign in (1, -1):
                p = dict(params)
                pert = base.copy()
                pert[idx] += sign * h
                p[name] = pert * siemens
                losses.append(eq.SteadyState(net, params=p).loss(x, y, loss))
            grad[idx] = (losses[0] - losses[1]) / (2 * h)
        out[name] = grad * GRAD_UNIT
    return out


def relative_error(actual, desired):
    """max |a - d| / max |d| over all connections (the figure quoted in the report)."""
    num = max(np.max(np.abs(np.asarray(actual[k]) - np.asarray(desired[k]))) for k in desired)
    den = max(np.max(np.abs(np.asarray(desired[k]))) for k in desired)
    return num / den


# ---------------------------------------------------------------- fixtures
@pytest.fixture
def deep_linear(rng, make_linear):
    """inputs(3) -> h1(4) -> h2(3) -> y(2): three layers of nodes, random conductances."""
    Gs = [rng.uniform(1, 10, s) * 1e-6 for s in [(3, 4), (4, 3), (3, 2)]]
    circuit = make_linear([G * siemens for G in Gs])
    x = rng.uniform(-1, 1, (3, 3))
    y = rng.uniform(-0.1, 0.1, (3, 2))
    return circuit, Gs, x, y


@pytest.fixture
def diode_problem(rng):
    """A diode network from eq.layered, driven hard enough for the diodes to matter."""
    circuit = eq.layered(3, [4], 2, rng=11)
    x = rng.uniform(-3, 3, (3, 3)) * volt
    y = rng.uniform(-0.2, 0.2, (3, 2)) * volt
    return circuit, x, y


# ---------------------------------------------------------------- analytic
@pytest.mark.parametrize("estimator", [eq.EP(beta=1e-4), eq.SymmetricEP(beta=1e-3)],
                         ids=["EP", "SymmetricEP"])
def test_one_node_gradient_by_hand(estimator):
    """v = g x/(g + g_l), L = ½ g_n (v - y)²  =>  dL/dg = g_n (v - y) x g_l / (g + g_l)²."""
    g, gl, gn, x, y = 3e-6, 1e-6, 1e-6, 0.5, 0.1
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("v", 1, eq.models.CapacitorNode(g_leak=gl * siemens))
    c.connect("x", "v", eq.models.Resistor(), g=np.array([[g]]) * siemens)
    c.set_output("v")
    v = g * x / (g + gl)
    expected = gn * (v - y) * x * gl / (g + gl) ** 2
    grads = estimator.gradient(c.build(), np.array([[x]]) * volt, np.array([[y]]) * volt,
                               eq.losses.MSE(g_nudge=gn * siemens))
    assert_quantity_close(grads["x->v"], [[expected]] * GRAD_UNIT, rtol=1e-4,
                          reason="one-sided bias O(β) at β=1e-4 (measured 2.5e-6), symmetric "
                                 "O(β²) at β=1e-3 (measured 8e-8): 1e-4 bounds both with margin")


# ---------------------------------------------------------------- linear networks
def test_complex_step_reference_agrees_with_exact_steady_state(deep_linear):
    """The two numpy references (complex step here, implicit function in the library)."""
    circuit, Gs, x, y = deep_linear
    net = circuit.build(batch=3)
    ref = complex_step_gradient(Gs, 1e-6, x, y, 1e-6)
    ref = dict(zip(circuit.connections, (r * GRAD_UNIT for r in ref), strict=True))
    exact = eq.ExactSteadyState().gradient(net, x * volt, y * volt, eq.losses.MSE(g_nudge=1 * uS))
    assert_quantity_close(exact, ref, rtol=1e-10,
                          reason="both are double-precision linear algebra on a well-"
                                 "conditioned 9-node system; complex step has no cancellation")


def test_symmetric_ep_matches_linear_algebra_on_deep_linear_network(deep_linear):
    """Acceptance: symmetric EP vs the exact gradient, >= 3 node layers, error <= 1e-5."""
    circuit, Gs, x, y = deep_linear
    net = circuit.build(batch=3)
    ref = complex_step_gradient(Gs, 1e-6, x, y, 1e-6)
    ref = dict(zip(circuit.connections, (r * GRAD_UNIT for r in ref), strict=True))
    est = eq.SymmetricEP(beta=1e-3)
    grads = est.gradient(net, x * volt, y * volt, eq.losses.MSE(g_nudge=1 * uS))
    err = assert_quantity_close(grads, ref, rtol=1e-5,
                                reason="the acceptance figure; for a linear circuit the "
                                       "symmetric estimate has no β² bias, measured ~1e-8 "
                                       "(settling noise)")
    print(f"symmetric EP vs linear algebra, linear 3-4-3-2 network: {err:.2e}")


# ---------------------------------------------------------------- diode networks
def test_diodes_change_the_gradient(diode_problem):
    """Premise of the diode tests: the nonlinearity matters at these inputs."""
    circuit, x, y = diode_problem
    linear = eq.layered(3, [4], 2, rng=11, neuron=eq.models.CapacitorNode())
    loss = eq.losses.MSE()
    g_diode = eq.ExactSteadyState().gradient(circuit.build(batch=3), x, y, loss)
    g_linear = eq.ExactSteadyState().gradient(linear.build(batch=3), x, y, loss)
    assert relative_error(g_linear, g_diode) > 0.1


def test_exact_steady_state_matches_finite_differences_on_diode_network(diode_problem):
    circuit, x, y = diode_problem
    net = circuit.build(batch=3)
    loss = eq.losses.MSE()
    fd = fd_of_steady_state_loss(net, x, y, loss)
    exact = eq.ExactSteadyState().gradient(net, x, y, loss)
    assert_quantity_close(exact, fd, rtol=1e-6,
                          reason="central differences with 1e-5 relative steps: truncation "
                                 "~1e-10, Newton residual 1e-13 V / step ~1e-8 relative")


@pytest.mark.parametrize(("estimator", "rtol"), [(eq.EP(beta=1e-3), 1e-3),
                                                 (eq.SymmetricEP(beta=1e-3), 1e-5)],
                         ids=["EP", "SymmetricEP"])
def test_ep_matches_exact_gradient_on_diode_network(diode_problem, estimator, rtol):
    """Acceptance: <= 1e-3 at small β on a diode network."""
    circuit, x, y = diode_problem
    net = circuit.build(batch=3)
    loss = eq.losses.MSE()
    grads = estimator.gradient(net, x, y, loss)
    exact = eq.ExactSteadyState().gradient(net, x, y, loss)
    err = assert_quantity_close(
        grads, exact, rtol=rtol,
        reason="one-sided: bias O(β), measured 1.3e-4 at β=1e-3, bound 1e-3 (acceptance); "
               "symmetric: bias O(β²), measured ~2e-8, bound 1e-5 leaves room for settling")
    print(f"{type(estimator).__name__} vs exact, diode network, beta=1e-3: {err:.2e}")


def test_error_slopes_in_beta(diode_problem):
    """Acceptance: log-log slopes of the error vs β: 1 (one-sided) and 2 (symmetric)."""
    circuit, x, y = diode_problem
    net = circuit.build(batch=3)
    loss = eq.losses.MSE()
    exact = eq.ExactSteadyState().gradient(net, x, y, loss)
    # Keep β above ~1e-4: below, settling noise (not the β² bias) dominates the
    # symmetric error and the slope flattens.
    betas = np.array([1e-1, 3e-2, 1e-2, 3e-3, 1e-3])
    one = [relative_error(eq.EP(beta=b).gradient(net, x, y, loss), exact) for b in betas]
    sym = [relative_error(eq.SymmetricEP(beta=b).gradient(net, x, y, loss), exact)
           for b in betas]
    slope_one = np.polyfit(np.log(betas), np.log(one), 1)[0]
    slope_sym = np.polyfit(np.log(betas), np.log(sym), 1)[0]
    print(f"one-sided errors {np.array(one)}, slope {slope_one:.4f}")
    print(f"symmetric errors {np.array(sym)}, slope {slope_sym:.4f}")
    assert 0.9 <= slope_one <= 1.1, slope_one
    assert 1.8 <= slope_sym <= 2.2, slope_sym
    assert all(s < o for s, o in zip(sym, one, strict=True))  # symmetric beats one-sided at every β


def test_simulated_finite_differences_match_exact_gradient(rng):
    """eq.FiniteDifference (Brian2 free phases) vs the implicit-function gradient."""
    circuit = eq.layered(2, [2], 1, rng=5)  # 4x2 + 2x2 = 12 conductances, 24 free phases
    net = circuit.build(batch=2)
    x = rng.uniform(-3, 3, (2, 2)) * volt
    y = rng.uniform(-0.1, 0.1, (2, 1)) * volt
    loss = eq.losses.MSE()
    fd = eq.FiniteDifference(eps=1e-4).gradient(net, x, y, loss)
    exact = eq.ExactSteadyState().gradient(net, x, y, loss)
    assert_quantity_close(fd, exact, rtol=1e-4,
                          reason="FD truncation O(eps²) ~1e-8; each loss carries settle noise "
                                 "~g_n Δz 1e-11 V, divided by the step: ~1e-6 relative")
    assert_quantity_close(net.get_params(), circuit.build().get_params(), rtol=0,
                          reason="FiniteDifference restores the conductances it perturbed")


# ---------------------------------------------------------------- both losses
@pytest.mark.parametrize("differential", [False, True], ids=["plain", "differential"])
@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
def test_symmetric_ep_for_each_loss_and_readout(loss_name, differential, rng):
    circuit = eq.layered(3, [4], 3, rng=2, differential_outputs=differential)
    net = circuit.build(batch=3)
    x = rng.uniform(-3, 3, (3, 3)) * volt
    if loss_name == "mse":
        loss, y = eq.losses.MSE(), rng.uniform(-0.1, 0.1, (3, 3)) * volt
    else:
        loss, y = eq.losses.CrossEntropy(v_scale=0.05 * volt), rng.integers(0, 3, 3)
    grads = eq.SymmetricEP(beta=1e-3).gradient(net, x, y, loss)
    exact = eq.ExactSteadyState().gradient(net, x, y, loss)
    err = assert_quantity_close(grads, exact, rtol=1e-5,
                                reason="symmetric bias O(β²) at β=1e-3 plus settling noise, "
                                       "measured <= ~1e-7")
    print(f"{loss_name} {'differential' if differential else 'plain'}: {err:.2e}")
    if loss_name == "cross_entropy":
        fd = fd_of_steady_state_loss(net, x, y, loss)
        assert_quantity_close(exact, fd, rtol=1e-6,
                              reason="central differences with 1e-5 relative steps")


# ---------------------------------------------------------------- targets
@pytest.mark.cython
def test_numpy_and_cython_targets_give_the_same_gradient(diode_problem):
    """Acceptance: the same gradient to 1e-9 relative on Brian2's numpy and cython targets."""
    from brian2.codegen.runtime.cython_rt import CythonCodeObject

    if not CythonCodeObject.is_available():
        pytest.skip("Brian2's cython target needs a working C compiler; none was found")
    circuit, x, y = diode_problem
    loss = eq.losses.MSE()
    g_np = eq.SymmetricEP(beta=1e-3).gradient(circuit.build(batch=3, target="numpy"), x, y, loss)
    g_cy = eq.SymmetricEP(beta=1e-3).gradient(circuit.build(batch=3, target="cython"), x, y,
                                              loss)
    err = assert_quantity_close(g_cy, g_np, rtol=1e-9,
                                reason="same equations, same step count; only the order of "
                                       "floating-point operations differs (measured ~1e-11)")
    print(f"numpy vs cython: {err:.2e}")


# ---------------------------------------------------------------- Newton phases
@pytest.mark.parametrize("cls", [eq.EP, eq.SymmetricEP])
def test_newton_phases_reach_the_relaxed_fixed_points(diode_problem, cls):
    """Settle(method="newton") solves the same fixed points as relaxation: the same
    estimate to the relaxation's settle tolerance, in a few iterations per phase."""
    circuit, x, y = diode_problem
    loss = eq.losses.MSE()
    relaxed = cls(beta=1e-3, settle=eq.Settle(tol=1e-13 * volt))
    newton = cls(beta=1e-3, settle=eq.Settle(method="newton"))
    g_r = relaxed.gradient(circuit.build(batch=3), x, y, loss)
    net = circuit.build(batch=3)
    g_n = newton.gradient(net, x, y, loss)
    err = assert_quantity_close(g_n, g_r, rtol=1e-8,
                                reason="relaxation stops within 1e-13 V per check interval "
                                       "of the fixed point, and the nudge divides that by β "
                                       "(measured 1e-10)")
    print(f"{cls.__name__}: Newton vs relaxation {err:.1e}")
    for name, phase in newton.info.phases.items():
        assert phase.report.converged and phase.report.steps <= 10, name
    # the Brian2 objects are left at the last phase's fixed point
    v = eq.SteadyState(net).solve(x, beta=-1e-3 if cls is eq.SymmetricEP else 1e-3,
                                  loss=loss, y=y)
    assert np.max(abs(np.asarray(net.voltages("y"))[:3].ravel() -
                      v[:, -circuit.nodes["y"].n:].ravel())) < 1e-12


def test_newton_phases_train_like_relaxed_phases(rng):
    """A two-batch epoch (one phase program, inputs and targets changing between
    batches) ends with the same conductances either way."""
    circuit = eq.layered(3, [4], 2, rng=11)
    x = rng.uniform(-3, 3, (6, 3)) * volt
    y = rng.uniform(-0.2, 0.2, (6, 2)) * volt
    params = []
    for method, tol in (("relax", 1e-13 * volt), ("newton", 1e-11 * volt)):
        net = circuit.build(batch=3)
        est = eq.SymmetricEP(beta=1e-2, settle=eq.Settle(method=method, tol=tol))
        tr = eq.Trainer(net, est, eq.losses.MSE(), eq.Adam(lr=0.1 * siemens * 1e-6),
                        progress=False, seed=1)
        tr.fit(x, y, epochs=2, batch_size=3)
        params.append(net.get_params())
    assert_quantity_close(params[1], params[0], rtol=1e-7,
                          reason="the same updates from gradients equal to ~1e-8")


def test_settle_method_must_be_known():
    with pytest.raises(ValueError, match=r"Settle\(method=...\) must be 'relax' or 'newton'"):
        eq.Settle(method="jacobi")


# ---------------------------------------------------------------- info and report
def test_gradient_info_and_settle_report(diode_problem):
    circuit, x, y = diode_problem
    net = circuit.build(batch=3)
    loss = eq.losses.MSE()
    est = eq.SymmetricEP(beta=1e-3)
    grads = est.gradient(net, x, y, loss)
    assert set(est.info.phases) == {"free", "nudged", "nudged_neg"}
    report = est.info.phases["free"].report
    assert isinstance(report, eq.SettleReport)
    assert report.converged is True
    assert 0 < report.steps < eq.Settle().max_steps
    assert report.max_dv < float(eq.Settle().tol)
    assert est.info.z.shape == (3, 2)
    assert_quantity_close(est.info.loss * volt**2 * siemens,
                          eq.SteadyState(net).loss(x, y, loss) * volt**2 * siemens, rtol=1e-7,
                          reason="Brian2 outputs are within ~1e-10 V of the numpy fixed point")
    for name, g in grads.items():
        assert get_dimensions(g) is get_dimensions(GRAD_UNIT)
        assert isinstance(g, Quantity) and g.shape == net.get_params()[name].shape


def test_step_cap_warns_and_reports_not_converged(diode_problem):
    circuit, x, y = diode_problem
    net = circuit.build(batch=3)
    est = eq.EP(beta=1e-3, settle=eq.Settle(max_steps=3, check_every=1))
    with pytest.warns(eq.SettleWarning, match="did not settle"):
        est.gradient(net, x, y, eq.losses.MSE())
    report = est.info.phases["free"].report
    assert report.converged is False
    assert report.steps == 3


def test_exact_gradient_function_equals_estimator(diode_problem):
    circuit, x, y = diode_problem
    net = circuit.build(batch=3)
    loss = eq.losses.MSE()
    assert_quantity_close(eq.exact_gradient(net, x, y, loss),
                          eq.ExactSteadyState().gradient(net, x, y, loss), rtol=0,
                          reason="the same computation reached by two names")


def test_descending_the_ep_gradient_lowers_the_loss(diode_problem):
    """Sign check in the units users see: θ ← θ - η dL/dθ reduces the loss."""
    circuit, x, y = diode_problem
    net = circuit.build(batch=3)
    loss = eq.losses.MSE()
    grads = eq.SymmetricEP(beta=1e-3).gradient(net, x, y, loss)
    params = net.get_params()
    before = eq.SteadyState(net).loss(x, y, loss)
    scale = max(float(np.max(np.abs(np.asarray(g)))) for g in grads.values())
    eta = 1e-7 / scale  # moves the largest conductance by 0.1 µS
    stepped = {k: np.clip(params[k] - eta * siemens / volt**2 * grads[k], 0 * siemens,
                          np.inf * siemens)
               for k in params}
    after = eq.SteadyState(net, params=stepped).loss(x, y, loss)
    assert after < before


def test_steady_state_accepts_a_circuit_description():
    """A Circuit (flat stored values) and its built network give the same fixed point."""
    circuit = eq.layered(3, [4], 2, bias=1 * volt, rng=0)
    x = np.full((2, 3), 0.5) * volt
    v_circ = eq.SteadyState(circuit).solve(x)
    v_net = eq.SteadyState(circuit.build(batch=2)).solve(x)
    # same linear algebra on the same numbers: agreement to rounding
    np.testing.assert_allclose(v_circ, v_net, rtol=0, atol=1e-15)


def test_exact_reference_includes_constant_currents_set_on_node_groups(make_linear,
                                                                         random_conductances):
    """I_ext written into a node group is part of the circuit: the exact gradient and
    symmetric EP agree with it (they differed by 4 % when the reference ignored it)."""
    net = make_linear(random_conductances([2, 3, 2])).build(batch=2)
    net.groups["h1"].I_ext = np.array([0.3, -0.2, 0.1, 0.3, -0.2, 0.1]) * uS * volt
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (2, 2)) * volt
    y = rng.uniform(-0.1, 0.1, (2, 2)) * volt
    loss = eq.losses.MSE()
    exact = eq.ExactSteadyState().gradient(net, x, y, loss)
    ep = eq.SymmetricEP(beta=1e-3).gradient(net, x, y, loss)
    assert_quantity_close(ep, exact, rtol=1e-6, reason="linear circuit, O(beta^2) ~ 1e-8")
    net.groups["h1"].I_ext = 0 * uS * volt
    without = eq.ExactSteadyState().gradient(net, x, y, loss)
    assert max(float(np.max(np.abs(np.asarray(exact[k]) - np.asarray(without[k]))))
               for k in exact) > 1e-3 * max(float(np.max(np.abs(np.asarray(v))))
                                             for v in exact.values())


@pytest.mark.parametrize("hidden", [[12], [6, 10]])
def test_block_elimination_solves_like_dense_linear_algebra(hidden):
    """Newton steps and the adjoint solve divide out a set of nodes no branch joins (a
    hidden layer) and factorise only the rest; checked against LAPACK's dense solve of
    the same nudged Jacobian (both orientations), to round-off (1e-11 relative)."""
    circuit = eq.layered(4, hidden, 3, g_init=20 * uS, bias=1 * volt, rng=3)
    net = circuit.build(batch=5)
    ss = eq.SteadyState(net)
    E, R = ss._elimination_plan()[:2]
    assert E.size >= max(hidden) and not set(ss.out_idx) & set(E)
    # no branch joins two eliminated nodes: their block of the Jacobian is diagonal
    rng = np.random.default_rng(0)
    xs = rng.uniform(-1, 1, (5, ss.M))
    v = rng.uniform(-0.3, 0.3, (5, ss.N))
    _, J = ss.residual(v, xs)
    block = J[:, E][:, :, E]
    assert np.all(block == block * np.eye(E.size))
    # a nudge couples the (differential) outputs to each other
    loss = eq.losses.CrossEntropy()
    z = loss.readout(v[:, ss.out_idx], True)
    J[np.ix_(range(5), ss.out_idx, ss.out_idx)] -= 0.3 * ss._loss_hess(
        loss, z, loss.prepare_targets(np.array([0, 1, 2, 1, 0]), 3))
    r = rng.normal(size=(5, ss.N))
    for transpose in (False, True):
        M = np.transpose(J, (0, 2, 1)) if transpose else J
        dense = np.linalg.solve(M, r[:, :, None])[:, :, 0]
        np.testing.assert_allclose(ss._solve(J, r, transpose=transpose), dense, rtol=1e-11,
                                   atol=1e-11 * np.abs(dense).max())



@pytest.mark.parametrize("estimator", [eq.ExactSteadyState(),
                                       eq.SymmetricEP(beta=1e-3, settle=eq.Settle(
                                           tol=1e-12 * volt, method="newton"))],
                         ids=["exact", "SymmetricEP-newton"])
def test_wide_layer_solved_by_elimination_matches_complex_step(rng, make_linear, estimator):
    """A hidden layer wide enough to be divided out of every solve (12 of 14 nodes):
    the solves' gradients against the complex-step reference above, which shares no
    code with them (1e-9: linear circuit, no β² bias; Newton to 1e-12 V)."""
    Gs = [rng.uniform(1, 10, s) * 1e-6 for s in [(3, 12), (12, 2)]]
    circuit = make_linear([G * siemens for G in Gs])
    net = circuit.build(batch=3)
    assert eq.SteadyState(net)._elimination_plan()[0].size == 12
    x = rng.uniform(-1, 1, (3, 3))
    y = rng.uniform(-0.1, 0.1, (3, 2))
    ref = complex_step_gradient(Gs, 1e-6, x, y, 1e-6)
    ref = dict(zip(circuit.connections, (r * GRAD_UNIT for r in ref), strict=True))
    grads = estimator.gradient(net, x * volt, y * volt, eq.losses.MSE(g_nudge=1 * uS))
    assert_quantity_close(grads, ref, rtol=1e-9, reason="linear circuit, round-off only")
