"""Hodgkin–Huxley neurons as circuit nodes: parameter sets, rates, gradients, bad input.

References: the rate functions of NEURON's ``hh.mod`` written out here with numpy
(its own ``vtrap`` form, not the package's ``exprel`` form); NEURON itself (the
validation cases ``hh_*``, run in their quick mode by tests/test_validation.py);
central finite differences of the simulated loss.
"""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import amp, cm, ms, nA, nS, siemens, uA, ufarad, umetre, uS, volt
from dynamic_circuits import compare
from helpers import only_under_ci

import ephys_eqprop as eq
from ephys_eqprop.dynamics import prepare, simulate
from ephys_eqprop.expressions import differentiate, numpy_function

AREA = 20000 * umetre**2
A_CM2 = 20000e-8  # the same area in cm²


def vtrap(x, y):
    """hh.mod's trap for 0/0: x/(exp(x/y) - 1), its limit y (1 - x/y/2) near 0."""
    x = np.asarray(x, float)
    small = np.abs(x / y) < 1e-6
    return np.where(small, y * (1 - x / y / 2), x / np.where(small, 1.0, np.expm1(x / y)))


def hh_mod_rates(v_mV):
    """α, β of m, h, n from NEURON's hh.mod (1/ms, v in mV, 6.3 °C)."""
    return {
        "m": (0.1 * vtrap(-(v_mV + 40), 10), 4 * np.exp(-(v_mV + 65) / 18)),
        "h": (0.07 * np.exp(-(v_mV + 65) / 20), 1 / (np.exp(-(v_mV + 35) / 10) + 1)),
        "n": (0.01 * vtrap(-(v_mV + 55), 10), 0.125 * np.exp(-(v_mV + 65) / 80)),
    }


def soma(n=1, parameters="hh", gap=None, **kw):
    c = eq.Circuit()
    c.add_nodes("soma", n, eq.models.HHNeuron(parameters, **kw))
    c.add_current_input("I", "soma")
    if gap is not None:
        c.connect("soma", "soma", eq.models.Resistor(), g=[gap] * siemens, i=[0], j=[1],
                  name="gap")
    c.set_output("soma")
    return c


def step(density_uA_cm2, steps, n=1, onset=100, dt=0.01 * ms):
    """Step currents (µA/cm² on the 20,000 µm² soma) into the first of n cells."""
    I = np.zeros((1, steps, n))
    I[0, onset:, 0] = density_uA_cm2 * 1e-6 * A_CM2
    return eq.TimeSeries(I * amp, dt=dt)


# ---------------------------------------------------------------------- the model
def test_parameter_sets_by_name():
    hh = eq.models.HHNeuron("hh")
    assert [type(s).__name__ for s in hh.shunts] == ["LeakChannel", "SodiumChannel",
                                                     "PotassiumChannel"]
    np.testing.assert_allclose(float(hh.C), 1e-6 * A_CM2, rtol=1e-12)  # 1 µF/cm²
    na = hh.shunts[1]
    np.testing.assert_allclose(float(na.values["g_Na"]), 0.12 * A_CM2, rtol=1e-12)
    assert float(hh.v0) == pytest.approx(-0.065)
    tm = eq.models.HHNeuron("traub_miles")
    np.testing.assert_allclose(float(tm.shunts[2].values["g_K"]), 30e-3 * A_CM2, rtol=1e-12)
    assert float(tm.shunts[1].values["VT_Na"]) == pytest.approx(-0.063)
    with pytest.raises(ValueError, match=r"Unknown Hodgkin–Huxley parameter set 'squid'; the "
                                         r"known sets are \['hh', 'traub_miles'\]"):
        eq.models.HHNeuron("squid")


def test_parameters_per_area_or_absolute_give_the_same_neuron():
    per_area = eq.models.HHNeuron("hh", g_Na=0.1 * siemens / cm**2, C_m=2 * ufarad / cm**2)
    absolute = eq.models.HHNeuron("hh", g_Na=0.1 * A_CM2 * siemens, C_m=2 * A_CM2 * ufarad)
    assert float(per_area.shunts[1].values["g_Na"]) == pytest.approx(
        float(absolute.shunts[1].values["g_Na"]), rel=1e-12)
    assert float(per_area.C) == pytest.approx(float(absolute.C), rel=1e-12)


def test_gates_start_at_their_steady_state_and_rates_match_hh_mod():
    net = soma().build(batch=1, dt=0.01 * ms)
    grp = net.groups["soma"]
    r = hh_mod_rates(-65.0)
    for gate in "mhn":
        a, b = r[gate]
        np.testing.assert_allclose(getattr(grp, gate)[:], a / (a + b), rtol=1e-12)
    # the rate expressions against hh.mod's at many voltages, the singular ones included
    v = np.r_[np.linspace(-100, 50, 151), -40.0, -55.0]
    na, k = eq.models.SodiumChannel(), eq.models.PotassiumChannel()
    for ch, gates in ((na, "mh"), (k, "n")):
        consts = {p: float(val) for p, val in ch.values.items()}
        for st in ch.states:
            if st.name not in gates:
                continue
            # ds/dt at s = 0 is α (1/s); at s = 1, -β
            f = numpy_function(st.rhs, ["v", st.name], consts)
            a, b = hh_mod_rates(v)[st.name]
            np.testing.assert_allclose(f(v * 1e-3, 0.0) * 1e-3, a, rtol=1e-9)
            np.testing.assert_allclose(-f(v * 1e-3, 1.0) * 1e-3, b, rtol=1e-9)
            # its derivative, as the adjoint uses it, is finite at the singular voltage
            d = numpy_function(differentiate(st.rhs, "v", "rate"), ["v", st.name], consts)
            assert np.all(np.isfinite(d(v * 1e-3, 0.3)))


def test_temperature_scales_every_rate_by_q10():
    warm = eq.models.HHNeuron("hh", celsius=16.3)
    assert float(warm.shunts[1].values["phi_Na"]) == pytest.approx(3.0)
    assert float(warm.shunts[2].values["phi_K"]) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="no temperature scaling"):
        eq.models.HHNeuron("traub_miles", celsius=36)


def test_a_spike_train_matches_the_rates_written_out_by_hand():
    """20 ms at 10 µA/cm²: our Brian2 run against forward Euler of hh.mod's equations in
    numpy (the same scheme, independent code): equal to 1e-9 of the voltage range."""
    dt, N = 0.01, 2000
    net = soma().build(batch=1, dt=dt * ms)
    traj = simulate(net, prepare(net, step(10.0, N)), record=True)
    v_b = traj.v["soma"][:, 0] * 1e3
    v = -65.0
    g = {gate: a / (a + b) for gate, (a, b) in hh_mod_rates(v).items()}
    C = 1.0  # µF/cm², currents in µA/cm²
    out = [v]
    for n in range(N):
        I = 10.0 if n >= 100 else 0.0
        i_ion = (120 * g["m"] ** 3 * g["h"] * (v - 50) + 36 * g["n"] ** 4 * (v + 77)
                 + 0.3 * (v + 54.3))
        r = hh_mod_rates(v)
        g = {gate: g[gate] + dt * (a * (1 - g[gate]) - b * g[gate])
             for gate, (a, b) in r.items()}
        v = v + dt * (I - i_ion) / C
        out.append(v)
    out = np.array(out)
    assert np.max(np.abs(v_b - out)) <= 1e-9 * np.ptp(out)
    assert np.sum((out[:-1] < 0) & (out[1:] >= 0)) == 2  # two spikes in 20 ms


# ---------------------------------------------------------------------- gradients
@pytest.mark.parametrize("density", [1.0, 10.0], ids=["sub-threshold", "spiking"])
@pytest.mark.parametrize("gap", [None, 30 * nS], ids=["single", "gap pair"])
def test_adjoint_matches_finite_differences_on_hh_neurons(density, gap):
    """Voltage-trace MSE against a teacher with other g_Na, g_K; g_Na, g_K, g_L per neuron
    (and the gap junction). Central differences with a relative step of 1e-4: the spike
    times move by ~µs, the loss stays smooth, the differences' O(ε²) error is ~1e-8
    (measured); the bar is cosine >= 0.999 and 1e-2."""
    n = 1 if gap is None else 2
    x = step(density, 1000, n=n)
    teacher = soma(n, gap=None if gap is None else float(gap)).build(batch=1, dt=0.01 * ms)
    p = teacher.get_params()
    p["soma.g_K"] = p["soma.g_K"] * 1.1
    p["soma.g_Na"] = p["soma.g_Na"] * 0.95
    teacher.set_params(p)
    v = simulate(teacher, prepare(teacher, x)).v_out
    y = eq.TimeSeries(np.transpose(v, (1, 0, 2)) * volt, dt=0.01 * ms)
    net = soma(n, gap=None if gap is None else float(gap)).build(batch=1, dt=0.01 * ms)
    loss = eq.losses.MSE(g_nudge=10 * nS)
    adj = eq.Adjoint().gradient(net, x, y, loss)
    fd = eq.FiniteDifference(eps=1e-4).gradient(net, x, y, loss)
    expected = {"soma.g_Na", "soma.g_K", "soma.g_L"} | ({"gap"} if gap is not None else set())
    assert set(adj) == expected
    cos, rel = compare(adj, fd)
    lep = eq.LagrangianEP(beta=1e-3).gradient(net, x, y, loss)
    cos_lep, rel_lep = compare(lep, adj)
    print(f"density {density}, gap {gap}: adjoint vs FD cos {cos:.10f} rel {rel:.1e}; "
          f"LagrangianEP cos {cos_lep:.3f} rel {rel_lep:.2f}")
    assert cos >= 0.999 and rel <= 1e-2
    assert rel <= 1e-6, "both differentiate the same simulated loss"
    assert all(np.all(np.isfinite(np.asarray(g))) for g in lep.values())


# ---------------------------------------------------------------------- bad input
def test_bad_input_is_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"area must have units of metre \*\* 2"):
        eq.models.HHNeuron("hh", area=20000)
    with pytest.raises(TypeError, match="g_Na must have units"):
        eq.models.HHNeuron("hh", g_Na=0.12)
    with pytest.raises(TypeError, match=r"E_L must have units of volt"):
        eq.models.HHNeuron("hh", E_L=-54 * uA)
    with pytest.raises(ValueError, match="g_K must be non-negative"):
        eq.models.HHNeuron("hh", g_K=-0.036 * siemens / cm**2)
    with pytest.raises(ValueError, match=r"must be non-negative.*cannot be negative"):
        eq.models.SodiumChannel(g_Na=-1 * uS)
    with pytest.raises(TypeError, match=r"has no parameter \['gNa'\]"):
        eq.models.HHNeuron("hh", gNa=0.1 * siemens / cm**2)
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("soma", 1, eq.models.HHNeuron("hh"))
    with pytest.raises(eq.CircuitError, match=r"'x' is an input .*Inject into a node group"):
        c.add_current_input("I", "x")
    with pytest.raises(eq.CircuitError, match=r"element must be a BranchElement"):
        c.connect("x", "soma", eq.models.SodiumChannel(), g=[[1.0]] * uS)
    net = c.build(batch=1)
    with pytest.raises(ValueError, match="must be non-negative"):
        net.set_params({"soma.g_Na": [-1.0] * uS})
    c.add_current_input("I", "soma")
    net = c.build(batch=1, dt=0.01 * ms)
    with pytest.raises(TypeError, match=r"x\['I'\] must be currents \(amp\)"):
        prepare(net, {"x": eq.TimeSeries(np.zeros((1, 10, 1)) * volt, dt=0.01 * ms),
                      "I": eq.TimeSeries(np.zeros((1, 10, 1)) * volt, dt=0.01 * ms)})


def test_a_time_step_too_large_for_the_gates_says_which_dt_works():
    """At 37 °C the rates are ~29 times faster: dt = 0.05 ms is unstable for the gates;
    the error names a dt, and that dt runs."""
    c = soma(celsius=37)
    net = c.build(batch=1, dt=0.05 * ms)
    with pytest.raises(FloatingPointError, match=r"State 'soma\.m' left its interval \[0, 1\]"
                                                 r".*use dt <= ([\d.e-]+) s") as info:
        simulate(net, prepare(net, step(5.0, 400, dt=0.05 * ms, onset=0)))
    import re

    dt = float(re.search(r"use dt <= ([\d.e-]+) s", str(info.value)).group(1))
    net = c.build(batch=1, dt=dt * 1e3 * ms)
    steps = int(2e-3 / dt)
    traj = simulate(net, prepare(net, step(5.0, steps, dt=dt * 1e3 * ms, onset=0)))
    assert np.all(np.isfinite(traj.v_out))


def test_ci_never_skips_the_neuron_comparison():
    # .ci/run installs the test extra (NEURON included) and sets CI=true; the validation
    # cases against NEURON must then run, not skip.
    only_under_ci()
    from ephys_eqprop.validation.neuron_reference import neuron_available

    assert neuron_available(), "CI must install NEURON (pip install neuron, in the test extra)"


# ---------------------------------------------------------------------- networks
def test_adjoint_matches_finite_differences_on_a_spiking_hh_network():
    """Five neurons (2 input, 2 hidden, 1 output): chemical synapses (excitatory and
    inhibitory), a gap junction, g_Na, g_K, g_L of every neuron; every neuron spikes.
    Central differences, relative step 1e-4: agreement ~1e-9 measured (bar 0.999, 1e-2)."""
    c = eq.datasets.hh_network(2, 2, 1, seed=2, inhibitory=0.5)
    dt = 0.01 * ms
    x = eq.datasets.multisine(1, tau_omega=0.5, tau=10 * ms, dt=dt, duration=8 * ms, seed=2,
                              n_channels=2, peak=1.5 * nA, offset=2.0 * nA)
    teacher = eq.datasets.hh_network(2, 2, 1, seed=2, params_seed=9, inhibitory=0.5).build(
        batch=1, dt=dt)
    y = eq.TimeSeries(np.transpose(simulate(teacher, prepare(teacher, x)).v_out, (1, 0, 2))
                      * volt, dt=dt)
    net = c.build(batch=1, dt=dt)
    traj = simulate(net, prepare(net, x), record=True)
    for group in ("in", "hid", "out"):
        v = traj.v[group]
        assert np.all(np.sum((v[:-1] < 0) & (v[1:] >= 0), axis=0) >= 1), group
    loss = eq.losses.MSE(g_nudge=10 * nS)
    adj = eq.Adjoint().gradient(net, x, y, loss)
    fd = eq.FiniteDifference(eps=1e-4).gradient(net, x, y, loss)
    assert {"in->hid", "gap", "hid->out", "hid-|out", "hid.g_Na", "out.g_K"} <= set(adj)
    cos, rel = compare(adj, fd)
    worst = max(compare({k: adj[k]}, {k: fd[k]})[1] for k in adj)
    print(f"5-neuron network, {sum(np.size(v) for v in adj.values())} parameters: cos "
          f"{cos:.10f}, rel {rel:.1e}, worst parameter kind {worst:.1e}")
    assert cos >= 0.999 and rel <= 1e-2 and worst <= 1e-2


def test_chemical_synapses_refuse_inputs_and_self_connections_unless_asked():
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("n", 3, eq.models.HHNeuron("hh"))
    with pytest.raises(eq.CircuitError, match=r"post='x' is an input"):
        c.connect("n", "x", eq.models.ChemicalSynapse(), g=np.ones((3, 1)) * nS)
    with pytest.raises(eq.CircuitError, match=r"would connect nodes to themselves.*allow_self"):
        c.connect("n", "n", eq.models.ChemicalSynapse(), g=np.ones((3, 3)) * nS)
    with pytest.raises(eq.CircuitError, match=r"itself \(i == j\); pass allow_self=True"):
        c.connect("n", "n", eq.models.ChemicalSynapse(), g=[1.0] * nS, i=[1], j=[1])
    with pytest.raises(eq.CircuitError, match=r"Resistor is a two-terminal element"):
        c.connect("n", "n", eq.models.Resistor(), g=[1.0] * nS, i=[1], j=[1], allow_self=True)
    with pytest.raises(ValueError, match=r"kind=\.\.\.\) must be one of \['excitatory', "
                                         r"'inhibitory'\]"):
        eq.models.ChemicalSynapse("modulatory")
    name = c.connect("n", "n", eq.models.ChemicalSynapse("inhibitory"), g=np.ones((3, 3)) * nS,
                     allow_self=True)
    assert c.connections[name].i.size == 9
    syn = c.connections[name].element
    assert float(syn.values["E_syn"]) == pytest.approx(-0.08)
    assert not syn.has_energy and syn.directed


def test_hh_network_passes_its_temperature_to_every_neuron():
    """celsius=-60 scales every gate rate by q10^((-60 - 6.3)/10) = 3^-6.63 ≈ 7e-4."""
    c = eq.datasets.hh_network(2, 2, 1, seed=2, celsius=-60.0)
    for group in ("in", "hid", "out"):
        shunts = {type(s).__name__: s for s in c.nodes[group].model.shunts}
        assert float(shunts["SodiumChannel"].values["phi_Na"]) == pytest.approx(3 ** -6.63)
        assert float(shunts["PotassiumChannel"].values["phi_K"]) == pytest.approx(3 ** -6.63)
