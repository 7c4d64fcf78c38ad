"""Shared fixtures: a clean Brian2 state per test, a seeded random source, small circuits."""

from __future__ import annotations

import gc

import brian2
import numpy as np
import pytest
from brian2 import ms, uS

import ephys_eqprop as eq


def pytest_configure(config):
    """Once per session: silence Brian2's log warning about objects that were never run.

    Networks built only to inspect a description or to provoke an error are never run,
    and Brian2 logs a warning for each of their objects when it is garbage-collected.
    """
    brian2.BrianLogger.suppress_name("unused_brian_object")


def pytest_collection_modifyitems(config, items):
    """Turn an unsettled static phase into a test error everywhere; skip slow tests
    unless ``-m slow`` asks for them.

    A gradient computed from a phase that hit its step cap is meaningless, so a
    comparison must never pass on one silently. Tests that provoke the warning
    on purpose catch it with ``pytest.warns`` (which overrides this filter).
    ``filterwarnings`` is a built-in pytest mark: nothing new is registered.
    """
    for item in items:
        item.add_marker(pytest.mark.filterwarnings("error::ephys_eqprop.phases.SettleWarning"))
    # tests marked slow run only when asked for (pytest -m slow)
    if "slow" not in (config.getoption("markexpr") or ""):
        skip = pytest.mark.skip(reason="slow: run with pytest -m slow")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def brian2_state():
    """Reset Brian2 between tests: runtime device, default preferences, a fresh scope.

    The code-generation target is pinned to ``numpy``: ``CircuitNetwork`` switches
    to its own target for its runs, and a test that wants Cython asks for it with
    ``Circuit.build(target="cython")``.
    """
    # Free the previous test's Brian2 objects first: object names ("nodes_h1", "nodes_h1_1",
    # ...) then do not depend on test order, so compiled Cython code is reused across runs.
    gc.collect()
    brian2.set_device("runtime")
    brian2.prefs.reset_to_defaults()
    brian2.prefs.codegen.target = "numpy"
    brian2.start_scope()
    yield
    brian2.defaultclock.dt = 0.1 * ms
    brian2.prefs.reset_to_defaults()


@pytest.fixture
def rng() -> np.random.Generator:
    """A random source with a fixed seed, so every run sees the same circuits."""
    return np.random.default_rng(20240611)


@pytest.fixture
def make_linear():
    """Factory for a layered *linear* resistive circuit, from explicit conductances.

    ``make_linear(Gs, g_leak=1*uS, differential=False)`` builds inputs ``x``
    (``Gs[0].shape[0]`` sources) -> ``h1`` -> ... -> ``y`` with the conductance
    matrices ``Gs`` (siemens), connection names ``"x->h1"``, ..., ``"hL->y"``.
    """

    def make(Gs, *, g_leak=1 * uS, differential=False):
        node = eq.models.CapacitorNode(g_leak=g_leak)
        c = eq.Circuit()
        c.add_input("x", Gs[0].shape[0])
        names = [f"h{k}" for k in range(1, len(Gs))] + ["y"]
        prev = "x"
        for name, G in zip(names, Gs, strict=True):
            c.add_nodes(name, G.shape[1], node)
            c.connect(prev, name, eq.models.Resistor(), g=G)
            prev = name
        c.set_output("y", differential=differential)
        return c

    return make


@pytest.fixture
def random_conductances(rng):
    """Random conductance matrices (siemens) for layer sizes ``sizes``, uniform in [1, 10] µS."""

    def make(sizes):
        pairs = zip(sizes[:-1], sizes[1:], strict=True)
        return [rng.uniform(1.0, 10.0, (a, b)) * uS for a, b in pairs]

    return make
