"""The built network: plain Brian2 objects, parameters, batches, state, local quantities."""

from __future__ import annotations

import brian2
import numpy as np
import pytest
from brian2 import ms, nF, siemens, uS, volt
from brian2.core.variables import Subexpression
from helpers import assert_quantity_close

import ephys_eqprop as eq
from ephys_eqprop.phases import run_static_phase


@pytest.fixture
def small(make_linear, random_conductances):
    """x(2) -> h1(3) -> y(2), linear, random conductances."""
    return make_linear(random_conductances([2, 3, 2]))


def test_objects_are_plain_brian2(small):
    net = small.build(batch=2)
    assert isinstance(net.network, brian2.Network)
    for name in ("x", "h1", "y"):
        assert isinstance(net.groups[name], brian2.NeuronGroup)
        assert net.groups[name] in net.network.objects
    syn = net.synapses["x->h1"]
    assert isinstance(syn, brian2.Synapses)
    assert "g" in syn.variables
    assert isinstance(syn.variables["dE_dg"], Subexpression)
    assert len(syn) == 2 * 2 * 3  # batch copies x n_pre x n_post
    assert len(net.groups["h1"]) == 2 * 3


def test_user_state_monitor_records_the_rc_transient():
    """A user's StateMonitor on the physical (relax=0) dynamics sees the forward-Euler
    solution of C dv/dt = g (x - v) - g_leak v, computed here by hand."""
    g, gl, C, x, dt = 3e-6, 1e-6, 1e-9, 0.5, 1e-5
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("v", 1, eq.models.CapacitorNode(C=C * 1e9 * nF, g_leak=gl * 1e6 * uS))
    c.connect("x", "v", eq.models.Resistor(), g=np.array([[g * 1e6]]) * uS)
    net = c.build(dt=dt * 1e3 * ms)
    mon = brian2.StateMonitor(net.groups["v"], "v", record=True)
    net.network.add(mon)
    net.set_inputs(np.array([[x]]) * volt)
    net.set_relax(False)
    net.set_state(None)
    net.run(100 * dt * 1e3 * ms)
    tau, v_inf = C / (g + gl), g * x / (g + gl)
    n = np.arange(100)
    euler = v_inf * (1 - (1 - dt / tau) ** n)  # v_{n+1} = v_n + dt (v_inf - v_n) / tau
    assert mon.v.shape == (1, 100)
    assert_quantity_close(mon.v[0], euler * volt, rtol=1e-12,
                          reason="Brian2's euler is the same recursion; only round-off differs")
    assert_quantity_close(net.voltages("v"), [[v_inf * (1 - (1 - dt / tau) ** 100)]] * volt,
                          rtol=1e-12, reason="same recursion, one step after the last record")


def test_params_round_trip_and_batch_copies_share_them(small, rng):
    net = small.build(batch=3)
    params = net.get_params()
    assert set(params) == {"x->h1", "h1->y"}
    new = {k: rng.uniform(0.5, 5.0, np.shape(v)) * uS for k, v in params.items()}
    net.set_params(new)
    assert_quantity_close(net.get_params(), new, rtol=0, reason="stored and read back")
    for name, vals in new.items():
        per_copy = np.asarray(net.synapses[name].g[:]).reshape(3, -1)
        for b in range(3):
            assert_quantity_close(per_copy[b] * siemens, np.asarray(vals).ravel() * siemens,
                                  rtol=0, reason="every batch copy holds the same conductances")


def test_set_params_partial_dict_keeps_other_connections(small):
    net = small.build()
    before = net.get_params()
    net.set_params({"x->h1": 2 * before["x->h1"]})
    after = net.get_params()
    assert_quantity_close(after["h1->y"], before["h1->y"], rtol=0, reason="untouched connection")
    assert_quantity_close(after["x->h1"], 2 * before["x->h1"], rtol=1e-15,
                          reason="doubled and stored")


def test_set_params_reaches_the_simulation(small, rng):
    """After set_params the Brian2 fixed point is that of the new conductances."""
    net = small.build(batch=2)
    new = {k: rng.uniform(0.5, 5.0, np.shape(v)) * uS for k, v in net.get_params().items()}
    net.set_params(new)
    x = rng.uniform(-1, 1, (2, 2)) * volt
    net.set_inputs(x)
    res = run_static_phase(net, 0.0, eq.Settle(), None)
    assert res.report.converged
    expected = eq.SteadyState(small, params=new).solve(x)
    off = small.node_offsets()["y"]
    assert_quantity_close(net.voltages("y"), expected[:, off:off + 2] * volt, rtol=1e-8,
                          reason="Settle(tol=1e-11 V) leaves ~1e-10 V on ~0.1 V outputs")


def test_partial_batch_gives_the_gradient_of_its_samples(rng):
    """2 samples on a batch-4 network = the same 2 samples on a batch-2 network."""
    c = eq.layered(2, [3], 2, rng=3)
    x = rng.uniform(-2, 2, (2, 2)) * volt
    y = rng.uniform(-0.1, 0.1, (2, 2)) * volt
    loss = eq.losses.MSE()
    g4 = eq.SymmetricEP(beta=1e-3).gradient(c.build(batch=4), x, y, loss)
    g2 = eq.SymmetricEP(beta=1e-3).gradient(c.build(batch=2), x, y, loss)
    assert_quantity_close(g4, g2, rtol=1e-12,
                          reason="filler copies repeat sample 0 and get weight 0; the real "
                                 "copies run the same arithmetic, so only round-off may differ")


def test_set_inputs_returns_sample_weights(small):
    net = small.build(batch=4)
    w = net.set_inputs(np.zeros((3, 2)) * volt)
    np.testing.assert_array_equal(w, [1 / 3, 1 / 3, 1 / 3, 0.0])


def test_voltages_shape_and_state_round_trip(small, rng):
    net = small.build(batch=2)
    state = {n: rng.uniform(-0.1, 0.1, 2 * small.nodes[n].n) for n in small.nodes}
    net.set_state(state)
    got = net.get_state()
    for n in small.nodes:
        np.testing.assert_array_equal(got[n], state[n])
    assert net.voltages("h1").shape == (2, 3)
    assert_quantity_close(net.voltages("h1"), state["h1"].reshape(2, 3) * volt, rtol=0,
                          reason="stored and read back")
    net.set_state(None)
    assert np.all(np.asarray(net.voltages("y")) == 0)


def test_local_quantity_is_half_the_squared_voltage_drop(small, rng):
    """Brian2's dE_dg subexpression = ½ (v_pre - v_post)², computed here from voltages."""
    net = small.build(batch=2)
    net.set_inputs(rng.uniform(-1, 1, (2, 2)) * volt)
    net.set_state({n: rng.uniform(-0.5, 0.5, 2 * small.nodes[n].n) for n in small.nodes})
    local = net.local_quantities()
    vx, vh, vy = (np.asarray(net.voltages(n)) for n in ("x", "h1", "y"))
    expected = {
        "x->h1": 0.5 * (vx[:, :, None] - vh[:, None, :]) ** 2,  # (batch, n_pre, n_post)
        "h1->y": 0.5 * (vh[:, :, None] - vy[:, None, :]) ** 2,
    }
    for name, exp in expected.items():
        assert local[name].shape == (2, exp[0].size)
        assert_quantity_close(local[name] * volt**2, exp.reshape(2, -1) * volt**2, rtol=1e-14,
                              reason="the same expression evaluated by Brian2 and numpy")


def test_static_phases_pause_a_users_driving_objects_and_keep_their_monitors(small):
    """A PoissonGroup kicking I_ext through Synapses during static phases would move the
    fixed point (the EP gradient came out 469x off); paused, the gradient is the exact
    one, a warning names the object, and the user's StateMonitor still records."""
    net = small.build(batch=2)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 2)) * volt
    y = rng.uniform(-0.1, 0.1, (2, 2)) * volt
    loss = eq.losses.MSE()
    exact = eq.ExactSteadyState().gradient(net, x, y, loss)
    poisson = brian2.PoissonGroup(4, rates=2000 * brian2.Hz, name="user_poisson")
    kick = brian2.Synapses(poisson, net.groups["h1"], on_pre="I_ext_post += 0.05*nA",
                           name="user_kick")
    kick.connect(p=1.0)
    mon = brian2.StateMonitor(net.groups["y"], "v", record=True, name="user_mon")
    net.network.add(poisson, kick, mon)
    with pytest.warns(eq.StaticPhaseWarning, match=r"paused .*'user_kick', 'user_poisson'"):
        ep = eq.SymmetricEP(beta=1e-3).gradient(net, x, y, loss)
    assert_quantity_close(ep, exact, rtol=1e-5, reason="EP's O(beta^2) bias at beta=1e-3; "
                          "a running PoissonGroup would be orders of magnitude off")
    assert len(mon.t) > 0 and np.all(np.asarray(net.groups["h1"].I_ext) == 0)
    assert poisson.active and kick.active  # restored after the phases
