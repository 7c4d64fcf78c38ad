"""Choosing the code-generation target the Brian2 way (ephys_eqprop.targets)."""

import brian2
import numpy as np
import pytest
from brian2 import ms, uS

import ephys_eqprop as eq


def small():
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("h", 2, eq.models.CapacitorNode(g_leak=1 * uS))
    c.connect("x", "h", eq.models.Resistor(), g=np.full((1, 2), 2.0) * uS)
    c.set_output("h")
    return c


@pytest.mark.parametrize("pref, expected", [("auto", "numpy"), ("numpy", "numpy")])
def test_build_follows_brian2_preferences(pref, expected):
    brian2.prefs.codegen.target = pref
    assert small().build().target == expected


@pytest.mark.cython
def test_build_follows_a_cython_preference():
    """The network then switches Brian2 to cython for its own runs (net._target); that
    runs on cython give numpy's gradients is tests/test_estimators.py's target test."""
    if not eq.targets.cython_available():
        pytest.skip("Brian2's cython target needs a working C compiler; none was found")
    brian2.prefs.codegen.target = "cython"
    net = small().build(dt=0.01 * ms)
    assert net.target == "cython"
    with net._target():
        assert brian2.prefs.codegen.target == "cython"


def test_an_explicit_target_wins_over_the_preference():
    brian2.prefs.codegen.target = "cython"
    assert small().build(target="numpy").target == "numpy"


def test_objects_made_for_a_loss_generate_code_for_the_networks_target(monkeypatch):
    """The loss's Brian2 objects are made at the first gradient, not at build(); their
    synapses generate code as they connect, which must be for the network's target,
    not for whatever Brian2's preference says then (with "cython" there, a numpy
    network's first gradient used to compile Cython extensions)."""
    from brian2.codegen.runtime.cython_rt import CythonCodeObject

    made = []
    monkeypatch.setattr(CythonCodeObject, "compile_block",
                        lambda self, block: made.append(self.name))
    net = small().build(dt=0.01 * ms, target="numpy")
    brian2.prefs.codegen.target = "cython"
    x, y = np.array([[0.1]]) * brian2.volt, np.array([[0.05, 0.02]]) * brian2.volt
    eq.SymmetricEP(beta=0.1).gradient(net, x, y, eq.losses.MSE())
    assert made == []
    assert brian2.prefs.codegen.target == "cython"  # (the user's preference, restored)


def test_standalone_device_is_refused_in_the_packages_words():
    brian2.set_device("cpp_standalone", build_on_run=False)
    try:
        with pytest.raises(eq.CircuitError, match=r"runtime device.*CPPStandaloneDevice.*"
                                                  r"set_device\('cpp_standalone'\).*"
                                                  r"set_device\('runtime'\)"):
            small().build()
    finally:
        brian2.set_device("runtime")
        brian2.device.reinit()


def test_cpp_standalone_without_a_compiler_says_what_to_install(monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(eq.CircuitError, match=r"'cpp_standalone' needs a C\+\+ compiler and make"
                                              r".*apt-get install g\+\+ make.*'numpy'"):
        small().build(target="cpp_standalone")


def test_cpp_standalone_network_keeps_runtime_objects():
    """Its objects are plain runtime Brian2 objects: readable before any run."""
    if not eq.targets.cpp_standalone_available():
        pytest.skip("target 'cpp_standalone' needs g++ and make")
    net = small().build(target="cpp_standalone")
    assert net.target == "cpp_standalone" and net.standalone
    assert np.asarray(net.groups["h"].v).shape == (2,)
    from brian2.devices.device import RuntimeDevice

    assert isinstance(brian2.get_device(), RuntimeDevice)


def test_a_code_object_class_as_preference_is_refused_clearly():
    from brian2.codegen.runtime.numpy_rt import NumpyCodeObject

    brian2.prefs.codegen.target = NumpyCodeObject
    with pytest.raises(eq.CircuitError, match=r"code-object class \(NumpyCodeObject\)"):
        small().build()
