"""Losses: numpy cost and gradient, and the nudge currents they inject in Brian2."""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import amp, siemens, uS, volt, watt
from helpers import assert_quantity_close

import ephys_eqprop as eq
from ephys_eqprop.losses import MSE, CrossEntropy, Loss
from ephys_eqprop.phases import run_static_phase

LOSSES = {
    "mse": lambda: MSE(g_nudge=2 * uS),
    "cross_entropy": lambda: CrossEntropy(g_nudge=20 * uS, v_scale=0.05 * volt),
}


def targets(name, rng, n, K):
    """Targets for loss ``name``: voltages for MSE, integer labels for cross-entropy."""
    if name == "mse":
        return rng.uniform(-0.2, 0.2, (n, K)) * volt
    return rng.integers(0, K, n)


def central_difference(f, z, h):
    """∂f/∂z_{bk} of a per-sample function f(z) -> (B,), by central differences."""
    out = np.zeros_like(z)
    for k in range(z.shape[1]):
        dz = np.zeros_like(z)
        dz[:, k] = h
        out[:, k] = (f(z + dz) - f(z - dz)) / (2 * h)
    return out


# ---------------------------------------------------------------- numpy side
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_grad_is_the_derivative_of_cost(name, rng):
    loss = LOSSES[name]()
    B, K = 4, 3
    z = rng.uniform(-0.2, 0.2, (B, K))
    y = loss.prepare_targets(targets(name, rng, B, K), K)
    fd = central_difference(lambda zz: loss.cost(zz, y), z, h=1e-5)
    assert_quantity_close(loss.grad(z, y) * amp, fd * amp, rtol=1e-7,
                          reason="central differences with h = 1e-5 V: truncation O(h^2 c''') "
                                 "~1e-10 relative, round-off ~1e-16 c / h ~1e-11 relative")


def test_mse_cost_and_grad_formulas():
    loss = MSE(g_nudge=4 * uS)
    z = np.array([[0.1, -0.2], [0.0, 0.3]])
    y = np.array([[0.0, 0.0], [0.1, 0.1]])
    assert_quantity_close(loss.cost(z, y) * watt, 0.5 * 4e-6 * np.array([0.05, 0.05]) * watt,
                          rtol=1e-14, reason="closed form, double-precision round-off")
    assert_quantity_close(loss.grad(z, y) * amp, 4e-6 * (z - y) * amp, rtol=1e-14,
                          reason="closed form, double-precision round-off")


def test_cross_entropy_is_scaled_negative_log_softmax():
    g, Vs = 3e-6, 0.1
    loss = CrossEntropy(g_nudge=g * siemens, v_scale=Vs * volt)
    z = np.array([[0.1, -0.05, 0.2]])
    p = np.exp(z / Vs) / np.exp(z / Vs).sum()
    y = loss.prepare_targets(np.array([2]), 3)
    np.testing.assert_array_equal(y, [[0.0, 0.0, 1.0]])
    assert_quantity_close(loss.cost(z, y) * watt, [-g * Vs**2 * np.log(p[0, 2])] * watt,
                          rtol=1e-12, reason="log-sum-exp vs direct softmax, round-off only")
    assert_quantity_close(loss.grad(z, y) * amp, g * Vs * (p - y) * amp, rtol=1e-12,
                          reason="log-sum-exp vs direct softmax, round-off only")


def test_cross_entropy_labels_equal_one_hot():
    loss = CrossEntropy()
    labels = np.array([1, 0, 2])
    np.testing.assert_array_equal(loss.prepare_targets(labels, 3),
                                  loss.prepare_targets(np.eye(3)[labels], 3))


def test_mse_single_sample_target_becomes_a_row():
    y = MSE().prepare_targets(np.array([0.1, 0.2]) * volt, 2)
    assert y.shape == (1, 2)


@pytest.mark.parametrize("differential", [False, True])
def test_readout_transpose_is_the_adjoint_of_readout(differential, rng):
    """<readout(v), dz> = <v, readout_transpose(dz)>: nudge currents are ∂c/∂v exactly."""
    v = rng.normal(size=(3, 4))
    K = 2 if differential else 4
    dz = rng.normal(size=(3, K))
    z = Loss.readout(v, differential)
    assert z.shape == (3, K)
    lhs = np.sum(z * dz)
    rhs = np.sum(v * Loss.readout_transpose(dz, differential))
    assert_quantity_close(lhs, rhs, rtol=1e-13, reason="two sums of 12 products, round-off")
    if differential:
        np.testing.assert_allclose(z, v[:, :2] - v[:, 2:], rtol=0, atol=0)


# ---------------------------------------------------------------- Brian2 side
def one_node_circuit(g=3 * uS, g_leak=1 * uS):
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("v", 1, eq.models.CapacitorNode(g_leak=g_leak))
    c.connect("x", "v", eq.models.Resistor(), g=np.array([[float(g / uS)]]) * uS)
    c.set_output("v")
    return c


def nudged_state(net, x, y, loss, beta):
    """Free and nudged fixed points of ``net`` with inputs ``x``, targets ``y``, ``loss``."""
    net.set_inputs(x)
    net.attach_loss(loss)
    loss.set_targets(net, loss.prepare_targets(y, net.circuit.n_outputs))
    free = run_static_phase(net, 0.0, eq.Settle(), None)
    nudged = run_static_phase(net, beta, eq.Settle(), free.state)
    assert free.report.converged and nudged.report.converged
    return free, nudged


@pytest.mark.parametrize("beta", [0.5, -0.5, 2.0])
def test_mse_nudge_pulls_toward_the_target_by_hand(beta):
    """Nudged KCL at one node: g (x - v) - g_l v + β g_n (y - v) = 0."""
    g, gl, gn, x, y = 3e-6, 1e-6, 2e-6, 0.4, -0.1
    net = one_node_circuit().build()
    loss = MSE(g_nudge=gn * siemens)
    free, nudged = nudged_state(net, np.array([[x]]) * volt, np.array([[y]]) * volt, loss, beta)
    expected = (g * x + beta * gn * y) / (g + gl + beta * gn)
    assert_quantity_close(nudged.v_out * volt, [[expected]] * volt, rtol=1e-8,
                          reason="Settle(tol=1e-11 V) leaves a few 1e-11 V of a 0.1-0.3 V node")
    assert_quantity_close(free.v_out * volt, [[g * x / (g + gl)]] * volt, rtol=1e-8,
                          reason="Settle(tol=1e-11 V) leaves a few 1e-11 V of a 0.3 V node")


@pytest.mark.parametrize("differential", [False, True], ids=["plain", "differential"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_brian2_nudged_fixed_point_matches_numpy(name, differential, rng, make_linear,
                                                 random_conductances):
    """The nudge current built in Brian2 equals -β ∂c/∂v of the numpy loss.

    Compared through the nudged fixed point, against the numpy Newton solver that
    adds ``-β loss.grad`` to Kirchhoff's law, for a nudge large enough to move the
    outputs by a visible fraction.
    """
    n_y = 4 if differential else 3
    K = 2 if differential else 3
    c = make_linear(random_conductances([2, 3, n_y]), differential=differential)
    net = c.build(batch=3)
    loss = LOSSES[name]()
    x = rng.uniform(-1, 1, (3, 2)) * volt
    y = targets(name, rng, 3, K)
    beta = 0.5
    free, nudged = nudged_state(net, x, y, loss, beta)
    ss = eq.SteadyState(net)
    v0 = ss.solve(x)[:, ss.out_idx]
    vb = ss.solve(x, beta=beta, loss=loss, y=y)[:, ss.out_idx]
    shift = np.max(np.abs(vb - v0)) / np.max(np.abs(v0))
    assert shift > 1e-2, "the nudge must move the outputs for this test to mean anything"
    assert_quantity_close(nudged.v_out * volt, vb * volt, rtol=1e-7,
                          reason="Settle(tol=1e-11 V) vs Newton to 1e-13 V; the relaxation "
                                 "of a 3-layer chain leaves up to ~1e-9 V on ~0.1 V outputs")
    assert_quantity_close((nudged.v_out - free.v_out) * volt, (vb - v0) * volt, rtol=1e-6,
                          reason="the shift is >= 1e-2 of the outputs, so the 1e-9 V settle "
                                 "error is <= 1e-7 of it; 1e-6 leaves a margin")
