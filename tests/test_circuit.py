"""Circuit descriptions and their Brian2 builds, checked against hand-derived circuits."""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import ms, mV, nA, nF, uS, volt
from helpers import assert_quantity_close

import ephys_eqprop as eq
from ephys_eqprop.phases import run_static_phase

SETTLE_RTOL = 1e-8
SETTLE_REASON = (
    "Settle(tol=1e-11 V) stops once no voltage moves by 1e-11 V over 20 relaxation steps; "
    "the distance left to the fixed point is a few times that, < 1e-9 of the ~0.1-1 V "
    "node voltages"
)
NEWTON_REASON = "numpy solve / Newton to 1e-13 V in double precision: only round-off remains"


def settle(net, x):
    """Free (un-nudged) static phase of ``net`` with inputs ``x``; returns the PhaseResult."""
    net.set_inputs(x)
    result = run_static_phase(net, 0.0, eq.Settle(), None)
    assert result.report.converged, str(result.report)
    return result


def one_node(g, g_leak, shunts=()):
    """One input source, one resistor ``g``, one node with leak ``g_leak`` (and shunts)."""
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("v", 1, eq.models.CapacitorNode(C=1 * nF, g_leak=g_leak, shunts=shunts))
    c.connect("x", "v", eq.models.Resistor(), g=np.array([[float(g / uS)]]) * uS)
    c.set_output("v")
    return c


# ---------------------------------------------------------------- description
def test_connect_returns_default_and_custom_names():
    c = eq.Circuit()
    c.add_input("x", 2)
    c.add_nodes("h", 3, eq.models.CapacitorNode())
    assert c.connect("x", "h", eq.models.Resistor(), g=np.ones((2, 3)) * uS) == "x->h"
    name = c.connect("x", "h", eq.models.Resistor(), g=np.ones((2, 3)) * uS, name="skip")
    assert name == "skip"
    assert list(c.connections) == ["x->h", "skip"]


def test_doubled_input_and_differential_output_sizes():
    c = eq.Circuit()
    c.add_input("x", 3, doubled=True)
    c.add_nodes("y", 4, eq.models.CapacitorNode())
    c.connect("x", "y", eq.models.Resistor(), g=np.ones((6, 4)) * uS)
    c.set_output("y", differential=True)
    assert c.inputs["x"].size == 6
    assert c.n_outputs == 2
    c.set_output("y")
    assert c.n_outputs == 4


def test_node_offsets_follow_insertion_order():
    c = eq.Circuit()
    c.add_nodes("a", 3, eq.models.CapacitorNode())
    c.add_nodes("b", 2, eq.models.CapacitorNode())
    c.add_nodes("c", 4, eq.models.CapacitorNode())
    assert c.node_offsets() == {"a": 0, "b": 3, "c": 5}


def test_sparse_connection_keeps_its_indices():
    c = eq.Circuit()
    c.add_input("x", 2)
    c.add_nodes("h", 3, eq.models.CapacitorNode())
    c.connect("x", "h", eq.models.Resistor(), g=[1.0, 2.0, 3.0] * uS, i=[0, 1, 1], j=[2, 0, 1])
    conn = c.connections["x->h"]
    assert not conn.dense
    np.testing.assert_array_equal(conn.i, [0, 1, 1])
    np.testing.assert_array_equal(conn.j, [2, 0, 1])
    net = c.build()
    assert_quantity_close(net.get_params()["x->h"], [1.0, 2.0, 3.0] * uS, rtol=0,
                          reason="values are stored and read back, no arithmetic")


def test_floating_node_grounded_through_a_neighbour_is_accepted():
    """A node without leak is fine when a conductive path reaches a leaky node."""
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("a", 1, eq.models.CapacitorNode(g_leak=1 * uS))
    c.add_nodes("b", 1, eq.models.CapacitorNode(g_leak=0 * uS))
    c.connect("a", "b", eq.models.Resistor(), g=np.array([[2.0]]) * uS)
    c.check_ground()  # raises CircuitError if b were floating
    net = c.build()
    # b carries no current, so it sits at a's voltage, which is 0 (no source connected).
    net.set_state({"a": np.array([0.3]), "b": np.array([-0.4])})
    run_static_phase(net, 0.0, eq.Settle(), net.get_state())
    assert_quantity_close(net.voltages("b"), [[0.0]] * volt, rtol=0, atol=1e-10 * volt,
                          reason="both nodes relax to ground; 1e-10 V >> the 1e-11 V settle "
                                 "tolerance times the few steps it takes")


def test_layered_structure():
    c = eq.layered(3, [4, 5], 2, rng=0)
    assert list(c.inputs) == ["x"] and c.inputs["x"].doubled
    assert list(c.nodes) == ["h1", "h2", "y"]
    assert list(c.connections) == ["x->h1", "h1->h2", "h2->y"]
    assert c.connections["x->h1"].shape == (6, 4)
    assert c.connections["h2->y"].shape == (5, 4)
    assert c.output == "y" and c.differential and c.n_outputs == 2
    for spec in (c.nodes["h1"], c.nodes["h2"]):
        assert len(spec.model.shunts) == 2  # DiodeNeuron: two diodes
    assert len(c.nodes["y"].model.shunts) == 0
    # Same seed, same conductances; another seed, other conductances.
    g0 = np.asarray(c.connections["x->h1"].values)
    same_seed = eq.layered(3, [4, 5], 2, rng=0).connections["x->h1"].values
    other_seed = eq.layered(3, [4, 5], 2, rng=1).connections["x->h1"].values
    assert np.array_equal(g0, np.asarray(same_seed))
    assert not np.array_equal(g0, np.asarray(other_seed))


def test_build_options_reach_brian2():
    c = one_node(2 * uS, 1 * uS)
    net = c.build(batch=3, dt=0.02 * ms)
    assert net.batch == 3 and net.target == "numpy"
    assert_quantity_close(net.groups["v"].clock.dt, 0.02 * ms, rtol=1e-12,
                          reason="dt is passed through; Brian2 stores it as a float")
    assert len(net.groups["v"]) == 3
    assert len(net.groups["x"]) == 3


# ---------------------------------------------------------------- analytic circuits
@pytest.mark.parametrize(
    ("g", "g_leak", "x"),
    [(3 * uS, 1 * uS, 0.5 * volt), (1 * uS, 4 * uS, -2.0 * volt), (20 * uS, 0.1 * uS, 0.1 * volt)],
)
def test_one_resistor_one_leaky_node(g, g_leak, x):
    """v = g x / (g + g_leak): Kirchhoff's current law at the node, by hand."""
    net = one_node(g, g_leak).build()
    expected = g * x / (g + g_leak)
    settle(net, np.array([[float(x)]]) * volt)
    assert_quantity_close(net.voltages("v"), [[float(expected)]] * volt, rtol=SETTLE_RTOL,
                          reason=SETTLE_REASON)
    v_numpy = eq.SteadyState(net).solve(np.array([[float(x)]]) * volt)
    assert_quantity_close(v_numpy * volt, [[float(expected)]] * volt, rtol=1e-12,
                          reason=NEWTON_REASON)


def test_voltage_divider():
    """Source V -- g1 -- node -- g2 -- 0 V source, no leak: v = g1 V / (g1 + g2)."""
    g1, g2, V = 3.0, 7.0, 1.5
    c = eq.Circuit()
    c.add_input("src", 2)  # src[0] = V, src[1] = 0 V (ground)
    c.add_nodes("mid", 1, eq.models.CapacitorNode(g_leak=0 * uS))
    c.connect("src", "mid", eq.models.Resistor(), g=np.array([[g1], [g2]]) * uS)
    c.set_output("mid")
    net = c.build(batch=2)
    x = np.array([[V, 0.0], [-V, 0.0]]) * volt
    settle(net, x)
    expected = np.array([[g1 * V / (g1 + g2)], [-g1 * V / (g1 + g2)]]) * volt
    assert_quantity_close(net.voltages("mid"), expected, rtol=SETTLE_RTOL, reason=SETTLE_REASON)


def test_two_node_ladder_matches_hand_solution():
    """x -- ga -- a -- gb -- b, both leaky: solve the 2x2 nodal equations by hand."""
    ga, gb, gl, x = 4e-6, 2e-6, 1e-6, 0.8
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("a", 1, eq.models.CapacitorNode(g_leak=gl * 1e6 * uS))
    c.add_nodes("b", 1, eq.models.CapacitorNode(g_leak=gl * 1e6 * uS))
    c.connect("x", "a", eq.models.Resistor(), g=np.array([[ga]]) * 1e6 * uS)
    c.connect("a", "b", eq.models.Resistor(), g=np.array([[gb]]) * 1e6 * uS)
    c.set_output("b")
    net = c.build()
    settle(net, np.array([[x]]) * volt)
    # b: gb (va - vb) = gl vb  ->  vb = gb va / (gb + gl)
    # a: ga (x - va) = gl va + gb (va - vb)  ->  va (ga + gl + gb - gb^2/(gb + gl)) = ga x
    va = ga * x / (ga + gl + gb - gb**2 / (gb + gl))
    vb = gb * va / (gb + gl)
    assert_quantity_close(net.voltages("a"), [[va]] * volt, rtol=SETTLE_RTOL, reason=SETTLE_REASON)
    assert_quantity_close(net.voltages("b"), [[vb]] * volt, rtol=SETTLE_RTOL, reason=SETTLE_REASON)


def test_doubled_inputs_drive_x_and_minus_x():
    c = eq.Circuit()
    c.add_input("x", 2, doubled=True)
    c.add_nodes("y", 1, eq.models.CapacitorNode())
    c.connect("x", "y", eq.models.Resistor(), g=np.ones((4, 1)) * uS)
    net = c.build(batch=2)
    net.set_inputs(np.array([[0.1, 0.2], [0.3, -0.4]]) * volt)
    assert_quantity_close(net.voltages("x"),
                          np.array([[0.1, 0.2, -0.1, -0.2], [0.3, -0.4, -0.3, 0.4]]) * volt,
                          rtol=0, reason="source voltages are copied, no arithmetic")


def test_diode_node_satisfies_kirchhoff_by_hand():
    """Brian2's fixed point of a diode neuron zeroes the hand-written KCL residual."""
    I_s, V_T, V_hi, V_lo = 1e-9, 0.05, 0.2, -0.2
    neuron = eq.models.DiodeNeuron(V_low=V_lo * volt, V_high=V_hi * volt, I_s=I_s * 1e9 * nA,
                                   V_T=V_T * 1e3 * mV)
    g, gl = 10e-6, 1e-6
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("v", 1, neuron)
    c.connect("x", "v", eq.models.Resistor(), g=np.array([[g]]) * 1e6 * uS)
    c.set_output("v")
    net = c.build(batch=3)
    xs = np.array([-3.0, 0.1, 2.0])
    settle(net, xs[:, None] * volt)
    v = np.asarray(net.voltages("v"))[:, 0]
    residual = (g * (xs - v) - gl * v - I_s * (np.exp((v - V_hi) / V_T) - 1)
                + I_s * (np.exp((V_lo - v) / V_T) - 1))
    # The diodes clip: without them v would be g x / (g + gl) = -2.7, 0.09, 1.8 V.
    assert np.all(np.abs(v) < 0.8)
    total_g = g + gl + I_s / V_T * (np.exp((v - V_hi) / V_T) + np.exp((V_lo - v) / V_T))
    # residual / total conductance = distance to the fixed point (one Newton step), in volt
    assert_quantity_close(residual / total_g * volt, np.zeros(3) * volt, rtol=0,
                          atol=1e-9 * volt,
                          reason="one Newton step from the settled state; 1e-9 V allows for "
                                 "the 1e-11 V settle tolerance amplified by slow relaxation")
    v_numpy = eq.SteadyState(net).solve(xs[:, None] * volt)
    assert_quantity_close(net.voltages("v"), v_numpy * volt, rtol=SETTLE_RTOL,
                          reason=SETTLE_REASON)


def test_a_current_source_is_not_a_path_to_ground():
    """A node fed only by a current source has no defined DC voltage."""
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("v", 1, eq.models.CapacitorNode(
        g_leak=0 * uS, shunts=[eq.models.CurrentSource(I=1 * nA)]))
    with pytest.raises(eq.CircuitError, match=r"no path to ground.*a current source does not"):
        c.build()
    # with a diode to a bias source it has one
    c2 = eq.Circuit()
    c2.add_nodes("v", 1, eq.models.CapacitorNode(
        g_leak=0 * uS, shunts=[eq.models.CurrentSource(I=1 * nA), eq.models.Diode()]))
    c2.build()
