"""Bad input fails early with an error that names the argument and the fix.

Every case raises a CircuitError, ValueError or TypeError from ephys_eqprop
itself, never an exception from inside Brian2 or numpy.
"""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import ms, mV, nA, nF, uS, volt

import ephys_eqprop as eq
from ephys_eqprop.losses import MSE, CrossEntropy

R = eq.models.Resistor


def small(output=True):
    """x(2) -> h(3) -> y(2), linear."""
    c = eq.Circuit()
    c.add_input("x", 2)
    c.add_nodes("h", 3, eq.models.CapacitorNode())
    c.add_nodes("y", 2, eq.models.CapacitorNode())
    c.connect("x", "h", R(), g=np.ones((2, 3)) * uS)
    c.connect("h", "y", R(), g=np.ones((3, 2)) * uS)
    if output:
        c.set_output("y")
    return c


@pytest.fixture
def net():
    return small().build(batch=2)


X = np.full((2, 2), 0.5) * volt
Y = np.zeros((2, 2)) * volt


def test_error_classes():
    assert issubclass(eq.CircuitError, ValueError)


# ---------------------------------------------------------------- unknown names
def test_connect_unknown_pre():
    c = small()
    with pytest.raises(eq.CircuitError, match=r"Unknown pre group 'q'.*add_input or add_nodes"):
        c.connect("q", "h", R(), g=np.ones((2, 3)) * uS)


def test_connect_unknown_post():
    c = small()
    with pytest.raises(eq.CircuitError, match=r"Unknown post group 'q'.*known inputs"):
        c.connect("x", "q", R(), g=np.ones((2, 3)) * uS)


def test_connect_onto_an_input():
    c = small()
    with pytest.raises(eq.CircuitError, match=r"post='x' is an input.*Swap pre and post"):
        c.connect("h", "x", R(), g=np.ones((3, 2)) * uS)


def test_set_output_unknown():
    c = small(output=False)
    with pytest.raises(eq.CircuitError, match=r"Unknown output group 'q'.*\['h', 'y'\]"):
        c.set_output("q")


def test_set_output_on_an_input():
    c = small(output=False)
    with pytest.raises(eq.CircuitError, match=r"Unknown output group 'x'"):
        c.set_output("x")


def test_set_params_unknown_connection(net):
    with pytest.raises(eq.CircuitError, match=r"Unknown connection 'x->y'.*\['h->y', 'x->h'\]"):
        net.set_params({"x->y": np.ones((2, 2)) * uS})


def test_voltages_unknown_group(net):
    with pytest.raises(eq.CircuitError, match=r"Unknown group 'z'; groups are"):
        net.voltages("z")


def test_unknown_input_name_in_x(net):
    with pytest.raises(eq.CircuitError,
                       match=r"Unknown input\(s\) \['u'\]; data inputs are \['x'\]"):
        eq.EP().gradient(net, {"u": X}, Y, MSE())


def _two_input_net():
    c = eq.Circuit()
    c.add_input("a", 1)
    c.add_input("b", 1)
    c.add_nodes("y", 1, eq.models.CapacitorNode())
    c.connect("a", "y", R(), g=np.ones((1, 1)) * uS)
    c.connect("b", "y", R(), g=np.ones((1, 1)) * uS)
    c.set_output("y")
    net = c.build()
    return net


def test_missing_input_in_x():
    net = _two_input_net()
    with pytest.raises(eq.CircuitError, match=r"Missing values for inputs \['b'\]"):
        eq.EP().gradient(net, {"a": np.ones((1, 1)) * volt}, np.ones((1, 1)) * volt, MSE())


def test_several_inputs_need_a_dict():
    net = _two_input_net()
    with pytest.raises(eq.CircuitError, match=r"data inputs.*pass x as a dict"):
        eq.EP().gradient(net, np.ones((1, 1)) * volt, np.ones((1, 1)) * volt, MSE())


# ---------------------------------------------------------------- shapes
def test_g_wrong_shape():
    c = small()
    with pytest.raises(eq.CircuitError,
                       match=r"g for 'x->y' must have shape.*\(2, 2\); got \(3, 3\)"):
        c.connect("x", "y", R(), g=np.ones((3, 3)) * uS)


def test_sparse_indices_out_of_range():
    c = small()
    with pytest.raises(eq.CircuitError, match=r"i must lie in \[0, 2\)"):
        c.connect("x", "y", R(), g=np.ones(2) * uS, i=[0, 5], j=[0, 1])


def test_sparse_needs_both_indices():
    c = small()
    with pytest.raises(eq.CircuitError, match=r"need both i= and j="):
        c.connect("x", "y", R(), g=np.ones(2) * uS, i=[0, 1])


def test_connect_without_g():
    c = small()
    with pytest.raises(eq.CircuitError, match=r"needs g=.*shape \(2, 2\)"):
        c.connect("x", "y", R())


@pytest.mark.parametrize("shape", [(2, 3), (2, 2, 1), (3,)])
def test_x_wrong_shape(net, shape):
    with pytest.raises(eq.CircuitError, match=r"x\['x'\] must have shape \(n_samples, 2\)"):
        eq.EP().gradient(net, np.ones(shape) * volt, Y, MSE())


def test_x_wrong_shape_in_exact_reference(net):
    with pytest.raises(eq.CircuitError, match=r"x\['x'\] must have shape \(n_samples, 2\)"):
        eq.ExactSteadyState().gradient(net, np.ones((2, 3)) * volt, Y, MSE())


def test_x_without_samples(net):
    with pytest.raises(eq.CircuitError, match=r"x\['x'\] has no samples"):
        eq.EP().gradient(net, np.zeros((0, 2)) * volt, np.zeros((0, 2)) * volt, MSE())


def test_y_wrong_shape(net):
    with pytest.raises(ValueError, match=r"MSE targets y must have shape \(n_samples, 2\)"):
        eq.EP().gradient(net, X, np.ones((2, 3)) * volt, MSE())


def test_y_sample_count(net):
    with pytest.raises(eq.CircuitError, match=r"x has 2 samples but y has 1"):
        eq.EP().gradient(net, X, np.ones((1, 2)) * volt, MSE())


def test_y_sample_count_in_exact_reference(net):
    with pytest.raises(eq.CircuitError, match=r"x has 2 samples but y has 1"):
        eq.ExactSteadyState().gradient(net, X, np.ones((1, 2)) * volt, MSE())


def test_set_params_wrong_shape(net):
    with pytest.raises(eq.CircuitError, match=r"params\['x->h'\] must have shape \(2, 3\)"):
        net.set_params({"x->h": np.ones((3, 2)) * uS})


def test_set_params_not_a_dict(net):
    with pytest.raises(TypeError, match=r"params must be a dict"):
        net.set_params([np.ones((2, 3)) * uS])


def test_cross_entropy_label_out_of_range(net):
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 2\)"):
        eq.EP().gradient(net, X, np.array([0, 2]), CrossEntropy())


def test_cross_entropy_wrong_shape(net):
    with pytest.raises(ValueError, match=r"labels \(n_samples,\) or one-hot \(n_samples, 2\)"):
        eq.EP().gradient(net, X, np.ones((2, 3)), CrossEntropy())


def test_differential_output_needs_even_size():
    c = eq.Circuit()
    c.add_nodes("y", 3, eq.models.CapacitorNode())
    with pytest.raises(eq.CircuitError, match=r"even number of nodes; 'y' has 3"):
        c.set_output("y", differential=True)


# ---------------------------------------------------------------- units
def test_g_without_units():
    c = small()
    with pytest.raises(TypeError, match=r"(?s)^g must have units.*g=1\*siemens.*"
                                        r"dimensionless.*brian2 import siemens"):
        c.connect("x", "y", R(), g=np.ones((2, 2)))


def test_g_in_wrong_units():
    c = small()
    with pytest.raises(TypeError, match=r"(?s)^g must have units.*got .*volt"):
        c.connect("x", "y", R(), g=np.ones((2, 2)) * volt)


def test_set_params_without_units(net):
    with pytest.raises(TypeError, match=r"params\['x->h'\] must have units"):
        net.set_params({"x->h": np.ones((2, 3))})


def test_x_without_volt(net):
    with pytest.raises(TypeError, match=r"x\['x'\] must be voltages \(volt\), e.g. x\*volt"):
        eq.EP().gradient(net, np.ones((2, 2)), Y, MSE())


def test_x_without_volt_in_exact_reference(net):
    with pytest.raises(TypeError, match=r"x\['x'\] must be voltages \(volt\)"):
        eq.ExactSteadyState().gradient(net, np.ones((2, 2)), Y, MSE())


def test_mse_y_without_volt(net):
    with pytest.raises(TypeError, match=r"MSE targets y must be voltages \(volt\), e.g. y\*volt"):
        eq.EP().gradient(net, X, np.zeros((2, 2)), MSE())


def test_cross_entropy_y_with_units(net):
    with pytest.raises(TypeError, match=r"CrossEntropy targets are class labels.*without units"):
        eq.EP().gradient(net, X, np.zeros(2) * volt, CrossEntropy())


@pytest.mark.parametrize(("kwargs", "arg"), [({"C": 1.0}, "C"), ({"g_leak": 1e-6}, "g_leak"),
                                              ({"C": 1 * uS}, "C"), ({"g_leak": 1 * nF}, "g_leak")])
def test_node_model_units(kwargs, arg):
    with pytest.raises(TypeError, match=rf"^{arg} must have units"):
        eq.models.CapacitorNode(**kwargs)


@pytest.mark.parametrize("kwargs", [{"V_low": -0.2}, {"V_high": 0.2}])
def test_diode_neuron_bias_units(kwargs):
    (arg,) = kwargs
    with pytest.raises(TypeError, match=rf"^{arg} must have units"):
        eq.models.DiodeNeuron(**kwargs)


def test_diode_parameter_units():
    with pytest.raises(TypeError, match=r"Diode\(I_s=\.\.\.\) must have units"):
        eq.models.Diode(I_s=1e-9)


def test_loss_parameter_units():
    with pytest.raises(TypeError, match=r"^g_nudge must have units"):
        MSE(g_nudge=1e-6)


def test_dt_units():
    c = small()
    with pytest.raises(TypeError, match=r"^dt must have units"):
        c.build(dt=1e-5)


# ---------------------------------------------------------------- values
def test_negative_conductance_in_connect():
    c = small()
    with pytest.raises(ValueError, match=r"^g must be non-negative"):
        c.connect("x", "y", R(), g=-np.ones((2, 2)) * uS)


def test_negative_conductance_in_set_params(net):
    with pytest.raises(ValueError, match=r"params\['x->h'\] must be non-negative"):
        net.set_params({"x->h": -np.ones((2, 3)) * uS})


def test_nan_conductance():
    c = small()
    with pytest.raises(ValueError, match=r"^g must be finite"):
        c.connect("x", "y", R(), g=np.full((2, 2), np.nan) * uS)


def test_nan_input(net):
    with pytest.raises(eq.CircuitError, match=r"x\['x'\] contains NaN"):
        eq.EP().gradient(net, np.full((2, 2), np.nan) * volt, Y, MSE())


def test_nan_target(net):
    with pytest.raises(ValueError, match=r"MSE targets y contain NaN"):
        eq.EP().gradient(net, X, np.full((2, 2), np.nan) * volt, MSE())


@pytest.mark.parametrize("cls", [eq.EP, eq.SymmetricEP])
@pytest.mark.parametrize("beta", [0, 0.0, float("nan")])
def test_beta_must_be_nonzero_and_finite(cls, beta):
    with pytest.raises(ValueError, match=r"beta must be a finite, non-zero number.*beta=1e-3"):
        cls(beta=beta)


def test_beta_with_units():
    with pytest.raises(TypeError, match=r"beta is dimensionless"):
        eq.SymmetricEP(beta=1e-3 * volt)


def test_capacitance_must_be_positive():
    with pytest.raises(ValueError, match=r"^C must be positive"):
        eq.models.CapacitorNode(C=0 * nF)


def test_negative_leak():
    with pytest.raises(ValueError, match=r"^g_leak must be non-negative"):
        eq.models.CapacitorNode(g_leak=-1 * uS)


def test_diode_neuron_bias_order():
    with pytest.raises(ValueError, match=r"V_low < V_high"):
        eq.models.DiodeNeuron(V_low=0.2 * volt, V_high=-0.2 * volt)


def test_diode_unknown_parameter():
    with pytest.raises(TypeError,
                       match=r"Diode has no parameter 'I_sat'.*\['I_s', 'V_T', 'V_bias'\]"):
        eq.models.Diode(I_sat=1 * nA)


def test_diode_direction():
    with pytest.raises(ValueError, match=r"direction must be 'to_bias' or 'from_bias'"):
        eq.models.Diode(direction="forward", V_T=25 * mV)


def test_settle_options():
    with pytest.raises(ValueError, match=r"Settle\(max_steps=\.\.\.\) must be a positive integer"):
        eq.Settle(max_steps=0)


# ---------------------------------------------------------------- circuit structure
def test_gradient_before_set_output():
    net = small(output=False).build(batch=2)
    with pytest.raises(eq.CircuitError, match=r"no output; call circuit.set_output"):
        eq.SymmetricEP().gradient(net, X, Y, MSE())


def test_exact_gradient_before_set_output():
    net = small(output=False).build(batch=2)
    with pytest.raises(eq.CircuitError, match=r"no output.*set_output"):
        eq.ExactSteadyState().gradient(net, X, Y, MSE())


def test_floating_node_groups():
    """Two node groups without leak, connected only to each other: no path to ground."""
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("a", 2, eq.models.CapacitorNode(g_leak=0 * uS))
    c.add_nodes("b", 2, eq.models.CapacitorNode(g_leak=0 * uS))
    c.connect("a", "b", R(), g=np.ones((2, 2)) * uS)
    with pytest.raises(eq.CircuitError, match=r"group 'a' have no path to ground.*g_leak > 0"):
        c.build()


def test_set_params_that_float_a_node():
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("a", 1, eq.models.CapacitorNode(g_leak=0 * uS))
    c.connect("x", "a", R(), g=np.ones((1, 1)) * uS)
    net = c.build()
    with pytest.raises(eq.CircuitError, match=r"no path to ground"):
        net.set_params({"x->a": np.zeros((1, 1)) * uS})


def test_batch_too_small(net):
    with pytest.raises(eq.CircuitError, match=r"x has 3 samples but .* batch=2.*larger batch"):
        eq.EP().gradient(net, np.ones((3, 2)) * volt, np.ones((3, 2)) * volt, MSE())


@pytest.mark.parametrize("batch", [0, -1, 2.5, True])
def test_batch_must_be_positive_integer(batch):
    with pytest.raises(eq.CircuitError, match=r"batch must be a positive integer"):
        small().build(batch=batch)


def test_unknown_target():
    with pytest.raises(eq.CircuitError,
                       match=r"target must be 'numpy', 'cython' or 'cpp_standalone'"):
        small().build(target="weave", dt=0.01 * ms)


@pytest.mark.parametrize("name", ["1h", "h 1", "h-1", "", "_h"])
def test_invalid_node_names(name):
    c = eq.Circuit()
    with pytest.raises(eq.CircuitError, match=r"Node group name must start with a letter"):
        c.add_nodes(name, 2, eq.models.CapacitorNode())


def test_invalid_input_name():
    c = eq.Circuit()
    with pytest.raises(eq.CircuitError, match=r"Input name must start with a letter"):
        c.add_input("x->y", 2)


def test_duplicate_group_name():
    c = small()
    with pytest.raises(eq.CircuitError, match=r"name 'h' is already used"):
        c.add_input("h", 2)


def test_duplicate_connection_name():
    c = small()
    with pytest.raises(eq.CircuitError, match=r"'x->h' already exists; pass name="):
        c.connect("x", "h", R(), g=np.ones((2, 3)) * uS)


def test_empty_connection_name():
    c = small()
    with pytest.raises(eq.CircuitError, match=r"name must be a non-empty string"):
        c.connect("x", "y", R(), g=np.ones((2, 2)) * uS, name="")


@pytest.mark.parametrize("n", [0, -2, 1.5, "3"])
def test_group_size(n):
    with pytest.raises(eq.CircuitError, match=r"n must be a positive integer"):
        eq.Circuit().add_nodes("h", n, eq.models.CapacitorNode())


def test_dense_self_connection():
    c = small()
    with pytest.raises(eq.CircuitError, match=r"connect nodes to themselves; use sparse i= and j="):
        c.connect("h", "h", R(), g=np.ones((3, 3)) * uS)


def test_sparse_self_connection():
    c = small()
    with pytest.raises(eq.CircuitError, match=r"cannot be connected to itself"):
        c.connect("h", "h", R(), g=np.ones(2) * uS, i=[0, 1], j=[2, 1])


def test_model_of_the_wrong_kind():
    with pytest.raises(eq.CircuitError, match=r"model must be a NodeModel"):
        eq.Circuit().add_nodes("h", 2, R())


def test_element_of_the_wrong_kind():
    c = small()
    with pytest.raises(eq.CircuitError, match=r"element must be a BranchElement"):
        c.connect("x", "y", eq.models.CapacitorNode(), g=np.ones((2, 2)) * uS)


def test_loss_of_the_wrong_kind(net):
    with pytest.raises(TypeError, match=r"loss must be an ephys_eqprop.losses.Loss"):
        eq.EP().gradient(net, X, Y, "mse")
