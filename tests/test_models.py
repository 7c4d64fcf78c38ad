"""The element catalogue: formulas, units, and the circuits each model makes."""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import amp, farad, have_same_dimensions, mV, nA, nF, siemens, uS, volt
from helpers import assert_quantity_close

import ephys_eqprop as eq
from ephys_eqprop import models
from ephys_eqprop.elements import BranchElement, NodeModel, ShuntElement
from ephys_eqprop.phases import run_static_phase

SETTLE_RTOL = 1e-8
SETTLE_REASON = (
    "Settle(tol=1e-11 V) leaves the node a few 1e-11 V from its fixed point, < 1e-9 relative "
    "to node voltages of 0.1-1 V"
)


def shockley(v, I_s, V_T, V_bias, direction):
    """Diode current into the node, and its small-signal conductance -di/dv, by hand."""
    if direction == "to_bias":
        e = np.exp((v - V_bias) / V_T)
        return -I_s * (e - 1), I_s / V_T * e
    e = np.exp((V_bias - v) / V_T)
    return I_s * (e - 1), I_s / V_T * e


def single_node(neuron, g=10 * uS):
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("v", 1, neuron)
    c.connect("x", "v", models.Resistor(), g=np.array([[float(g / uS)]]) * uS)
    c.set_output("v")
    return c


def settle(net, x):
    net.set_inputs(x)
    result = run_static_phase(net, 0.0, eq.Settle(), None)
    assert result.report.converged, str(result.report)
    return result


# ---------------------------------------------------------------- resistor
def test_resistor_declares_conductance_and_half_dv_squared():
    r = models.Resistor()
    assert isinstance(r, BranchElement)
    assert r.learnable == "g" and r.learnable_unit is siemens
    assert r.reciprocal and r.nonnegative
    assert r.current.replace(" ", "") == "g*(v_pre-v_post)"
    assert r.local.replace(" ", "") == "0.5*(v_pre-v_post)**2"
    assert have_same_dimensions(r.local_unit, volt**2)


# ---------------------------------------------------------------- diode
@pytest.mark.parametrize("direction", ["to_bias", "from_bias"])
def test_diode_current_and_conductance_match_shockley(direction):
    I_s, V_T, V_bias = 2e-9, 0.04, 0.15
    d = models.Diode(direction=direction, I_s=I_s * amp, V_T=V_T * volt, V_bias=V_bias * volt)
    assert isinstance(d, ShuntElement)
    i_fun, g_fun = d.numeric()
    v = np.linspace(-0.3, 0.5, 17)
    i_ref, g_ref = shockley(v, I_s, V_T, V_bias, direction)
    assert_quantity_close(i_fun(v) * amp, i_ref * amp, rtol=1e-13,
                          reason="same closed form, evaluated by sympy-lambdify vs numpy")
    assert_quantity_close(g_fun(v) * siemens, g_ref * siemens, rtol=1e-13,
                          reason="sympy's derivative vs the hand derivative, same closed form")
    # The Brian2 expression used for the Newton relaxation (G_relax), with its renamed
    # parameters, evaluated here with numpy.
    namespace = {"exp": np.exp, "v": v, "sh0_I_s": I_s, "sh0_V_T": V_T, "sh0_V_bias": V_bias}
    g_brian = eval(d.conductance_expr("sh0_"), namespace)  # the library's own expression string
    assert_quantity_close(g_brian * siemens, g_ref * siemens, rtol=1e-13,
                          reason="sympy's derivative as a Brian2 string vs the hand derivative")


def test_diode_defaults_have_units():
    d = models.Diode()
    assert have_same_dimensions(d.values["I_s"], amp)
    assert have_same_dimensions(d.values["V_T"], volt)
    assert have_same_dimensions(d.values["V_bias"], volt)
    assert_quantity_close(d.values["I_s"], 1 * nA, rtol=0, reason="documented default")
    assert_quantity_close(d.values["V_T"], 50 * mV, rtol=0, reason="documented default")


@pytest.mark.parametrize("cls", [models.Diode, models.CurrentSource])
def test_parameter_defaults_carry_their_declared_units(cls):
    for p in cls.parameters:
        assert have_same_dimensions(p.default, p.unit), p.name


# ---------------------------------------------------------------- node models
def test_capacitor_node_defaults():
    node = models.CapacitorNode()
    assert isinstance(node, NodeModel)
    assert_quantity_close(node.C, 1 * nF, rtol=0, reason="documented default")
    assert_quantity_close(node.g_leak, 1 * uS, rtol=0, reason="documented default")
    assert node.shunts == ()
    assert have_same_dimensions(node.C, farad)


def test_diode_neuron_has_two_diodes_to_its_biases():
    n = models.DiodeNeuron(V_low=-0.3 * volt, V_high=0.25 * volt)
    up, down = n.shunts
    assert up.direction == "to_bias" and down.direction == "from_bias"
    assert_quantity_close(up.values["V_bias"], 0.25 * volt, rtol=0, reason="passed through")
    assert_quantity_close(down.values["V_bias"], -0.3 * volt, rtol=0, reason="passed through")


def test_diode_neuron_is_a_soft_clipper():
    """Monotone transfer, close to linear near 0 V, bounded far outside the bias window."""
    net = single_node(models.DiodeNeuron()).build(batch=5)
    xs = np.array([-5.0, -1.0, 0.05, 1.0, 5.0])
    v = eq.SteadyState(net).solve(xs[:, None] * volt)[:, 0]
    assert np.all(np.diff(v) > 0)
    linear = 10 / 11 * xs  # g x / (g + g_leak) without the diodes
    assert abs(v[2] - linear[2]) < 1e-3 * abs(linear[2])  # diodes off at 45 mV
    # Far out, 5 V (4.5 V without diodes) drives the node only a few V_T beyond the
    # bias (0.2 V): logarithmic compression.
    assert 0.2 < v[4] < 0.2 + 12 * 0.05 and -0.2 - 12 * 0.05 < v[0] < -0.2
    settle(net, xs[:, None] * volt)
    assert_quantity_close(net.voltages("v"), v[:, None] * volt, rtol=SETTLE_RTOL,
                          reason=SETTLE_REASON)


def test_current_source_shifts_the_node():
    """x -- g -- node, leak g_leak, source I into the node: v = (g x + I) / (g + g_leak)."""
    g, gl, I, x = 4e-6, 1e-6, 0.3e-6, 0.5
    node = models.CapacitorNode(g_leak=gl * siemens, shunts=[models.CurrentSource(I=I * amp)])
    net = single_node(node, g=g * siemens).build()
    settle(net, np.array([[x]]) * volt)
    expected = (g * x + I) / (g + gl)
    assert_quantity_close(net.voltages("v"), [[expected]] * volt, rtol=SETTLE_RTOL,
                          reason=SETTLE_REASON)
    assert_quantity_close(eq.SteadyState(net).solve(np.array([[x]]) * volt) * volt,
                          [[expected]] * volt, rtol=1e-12,
                          reason="linear solve in double precision")


def test_models_all_is_the_catalogue():
    assert sorted(models.__all__) == ["CapacitorNode", "ChemicalSynapse", "CubicConductance",
                                      "CurrentSource",
                                      "Diode", "DiodeNeuron", "DirectedSynapse",
                                      "HHNeuron", "HH_PARAMETER_SETS", "Inductor",
                                      "InductorToGround", "LeakChannel", "NagumoNeuron",
                                      "NonlinearCapacitorNode", "NonlinearInductor",
                                      "PotassiumChannel", "Resistor", "SodiumChannel",
                                      "fitzhugh_parameters"]
