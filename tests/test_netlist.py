"""SPICE netlist export, and ngspice as an external reference simulator.

Three independent computations of the same circuits are compared: Brian2 (the static
phase, or the physical dynamics), the exact linear-algebra solver
(:class:`ephys_eqprop.SteadyState`, or a matrix exponential for RC transients), and
ngspice running the exported netlist.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import scipy.linalg
from brian2 import StateMonitor, amp, kelvin, kohm, ms, mV, nA, nF, second, siemens, uS, us, volt
from brian2.units.allunits import henry
from helpers import assert_quantity_close, only_under_ci

import ephys_eqprop as eq
from ephys_eqprop.elements import BranchElement, Parameter, ShuntElement
from ephys_eqprop.netlist import (
    BOLTZMANN,
    ELEMENTARY_CHARGE,
    NetlistError,
    NgspiceError,
    group_voltages,
    run_ngspice,
    to_spice,
)
from ephys_eqprop.phases import run_static_phase

needs_ngspice = pytest.mark.skipif(
    shutil.which("ngspice") is None,
    reason="ngspice is not installed (apt-get install -y ngspice); the cross-check "
           "against an external simulator needs it.",
)


def element_lines(text: str, letter: str) -> list[str]:
    """Element lines of one SPICE kind (R, C, V, I, D, B) of a netlist."""
    return [ln for ln in text.splitlines() if ln.startswith(letter + "_")]


def small_circuit():
    """2 doubled inputs -> 3 diode neurons -> 2 output nodes with a current source."""
    c = eq.Circuit()
    c.add_input("x", 2, doubled=True)
    c.add_input("bias", 1, value=0.5 * volt)
    c.add_nodes("h", 3, eq.models.DiodeNeuron(V_low=-0.2 * volt, V_high=0.3 * volt))
    c.add_nodes("y", 2, eq.models.CapacitorNode(
        C=2 * nF, g_leak=1 * uS, shunts=[eq.models.CurrentSource(I=3 * nA)]))
    G = np.arange(1.0, 13.0).reshape(4, 3) * uS
    G[1, 2] = 0 * uS  # an open circuit: no element
    c.connect("x", "h", eq.models.Resistor(), g=G)
    c.connect("bias", "h", eq.models.Resistor(), g=np.full((1, 3), 2.0) * uS)
    c.connect("h", "y", eq.models.Resistor(), g=np.full((3, 2), 4.0) * uS)
    c.set_output("y")
    return c


# ---------------------------------------------------------------------- netlist text
def test_netlist_elements_and_values():
    c = small_circuit()
    text = to_spice(c, [[0.25, -0.75]] * volt, title="small test")
    assert text.splitlines()[0] == "small test"
    assert text.rstrip().endswith(".end")
    assert ".op" in text.splitlines()
    # sources: 4 inputs (x, -x), 1 bias input, 2 diode bias nodes
    volts = {ln.split()[1]: float(ln.split()[-1]) for ln in element_lines(text, "V")}
    assert len(volts) == 4 + 1 + 2
    assert [volts[f"x_{k}"] for k in range(4)] == [0.25, -0.75, -0.25, 0.75]
    assert volts["bias_0"] == 0.5
    assert sorted(v for k, v in volts.items() if k.startswith("vbias")) == [-0.2, 0.3]
    # one capacitor per node, leak resistors, resistors 1/g, zero g omitted
    caps = element_lines(text, "C")
    assert len(caps) == 5
    assert "C_y_1 y_1 0 2e-09" in caps
    res = element_lines(text, "R")
    leaks = [ln for ln in res if ln.startswith("R_leak_")]
    assert len(leaks) == 5 and all(float(ln.split()[-1]) == 1e6 for ln in leaks)
    synapses = [ln for ln in res if not ln.startswith("R_leak_")]
    assert len(synapses) == (12 - 1) + 3 + 6
    assert not any(ln.split()[1:3] == ["x_1", "h_2"] for ln in synapses)
    line = next(ln for ln in synapses if ln.split()[1:3] == ["x_3", "h_2"])
    assert float(line.split()[-1]) == 1.0 / 12e-6
    assert "1 zero conductance(s) omitted" in text
    # two diodes per hidden node, one model; N = V_T / (kT/q) at 27 C
    diodes = element_lines(text, "D")
    assert len(diodes) == 6
    models = [ln for ln in text.splitlines() if ln.startswith(".model")]
    assert len(models) == 1
    n_emission = float(re.search(r"N=([0-9.e+-]+)", models[0]).group(1))
    assert n_emission == pytest.approx(0.05 / (BOLTZMANN * 300.15 / ELEMENTARY_CHARGE),
                                       rel=1e-15)
    assert "IS=1e-09" in models[0]
    assert re.search(r"\.options temp=27\.0 tnom=27\.0 ", text)
    # "to_bias": anode at the node; "from_bias": anode at the bias node
    h0 = [ln.split()[1:3] for ln in diodes if ln.startswith("D_h_0_")]
    assert h0[0][0] == "h_0" and h0[1][1] == "h_0"
    # the current source injects into the node: from ground (n+) to the node (n-)
    isrc = element_lines(text, "I")
    assert [ln.split()[:4] for ln in isrc] == [["I_y_0_0", "0", "y_0", "DC"],
                                               ["I_y_1_0", "0", "y_1", "DC"]]
    assert all(float(ln.split()[-1]) == pytest.approx(3e-9, rel=1e-15) for ln in isrc)


def test_network_export_uses_current_params_inputs_and_state():
    c = small_circuit()
    net = c.build(batch=2)
    params = net.get_params()
    params["h->y"] = np.full((3, 2), 8.0) * uS
    net.set_params(params)
    net.set_inputs([[0.1, 0.2], [0.3, 0.4]] * volt)
    net.set_state({"h": np.arange(6) * 0.01, "y": np.arange(4) * 0.1})
    text = to_spice(net, sample=1, analysis=("tran", 1 * us, 10 * us))
    hy = [ln for ln in element_lines(text, "R") if ln.split()[2].startswith("y_")]
    assert len(hy) == 6 and all(float(ln.split()[-1]) == 1 / 8e-6 for ln in hy)
    assert "V_x_1 x_1 0 DC 0.4" in text and "V_x_3 x_3 0 DC -0.4" in text
    assert "C_h_2 h_2 0 1e-09 IC=0.05" in text  # batch copy 1, node 2
    tran = next(ln for ln in text.splitlines() if ln.startswith(".tran")).split()
    assert tran[5] == "uic" and np.allclose([float(v) for v in tran[1:5]],
                                            [1e-6, 1e-5, 0, 1e-6], rtol=1e-15, atol=0)
    behavioural = to_spice(net, diode="B", temperature=310 * kelvin)
    assert not element_lines(behavioural, "D") and len(element_lines(behavioural, "B")) == 6
    assert ".options temp=36.85" in behavioural


class Cubic(BranchElement):
    """A nonlinear synapse with no SPICE element of its own: written as a B source."""

    learnable = "g"
    learnable_unit = siemens
    current = "g*(v_pre - v_post)**3/volt**2"
    local = "0.25*(v_pre - v_post)**4/volt**2"
    local_unit = volt**2


class CubicShunt(ShuntElement):
    """A nonlinear leak with no SPICE element of its own: written as a B source."""

    parameters = (Parameter("k", amp / volt**3, 1e-6 * amp / volt**3),)
    current = "-k*v**3"


class Expm1Shunt(ShuntElement):
    """A shunt whose law uses a function ngspice's B sources lack."""

    parameters = (Parameter("I0", amp, 1 * nA),)
    current = "-I0*expm1(v/(0.1*volt))"


def test_elements_without_a_spice_element_are_written_as_behavioural_sources():
    """A cubic branch and a cubic shunt become B sources with the same laws, in SPICE syntax."""
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("y", 2, eq.models.CapacitorNode(shunts=[CubicShunt()]))
    c.connect("x", "y", Cubic(), g=np.ones((1, 2)) * uS)
    text = to_spice(c, [[1.0]] * volt)
    branch = [ln for ln in element_lines(text, "B") if ln.startswith("B_c0_")]
    shunt = [ln for ln in element_lines(text, "B") if ln.startswith("B_y_")]
    assert [ln.split()[1:3] for ln in branch] == [["x_0", "y_0"], ["x_0", "y_1"]]
    assert [ln.split()[1:3] for ln in shunt] == [["0", "y_0"], ["0", "y_1"]]
    for v in (-0.3, 0.2):
        i_branch = eval_spice(branch[0].split("I=", 1)[1], x_0=0.5, y_0=v)
        assert i_branch == pytest.approx(1e-6 * (0.5 - v) ** 3, rel=1e-14)
        assert eval_spice(shunt[0].split("I=", 1)[1], y_0=v) == pytest.approx(-1e-6 * v**3,
                                                                             rel=1e-14)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda c: c.connect("x", "y", eq.models.DirectedSynapse("V_s*expm1(v_pre/V_s)"),
                             g=np.ones((1, 2)) * uS),
         r"Connection 'x->y': .*function 'expm1'"),
        (lambda c: c.add_nodes("z", 1, eq.models.CapacitorNode(shunts=[Expm1Shunt()])),
         r"Node group 'z': .*function 'expm1'"),
        (lambda c: c.add_nodes("Y", 1, eq.models.CapacitorNode()),
         r"Groups 'y' and 'Y' differ only in case"),
    ],
    ids=["branch", "shunt", "case"],
)
def test_circuits_spice_cannot_express(build, match):
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("y", 2, eq.models.CapacitorNode())
    build(c)
    with pytest.raises(NetlistError, match=match):
        to_spice(c, [[1.0]] * volt)


def test_bad_requests():
    c = small_circuit()
    x = [[0.1, 0.2]] * volt
    with pytest.raises(NetlistError, match=r"data inputs \['x'\]: pass x="):
        to_spice(c)
    with pytest.raises(NetlistError, match=r"analysis must be 'op' or \('tran'"):
        to_spice(c, x, analysis="ac")
    with pytest.raises(TypeError, match=r"analysis tstep must have units of s"):
        to_spice(c, x, analysis=("tran", 1e-6, 1 * ms))
    with pytest.raises(NetlistError, match=r"0 < tstep < tstop"):
        to_spice(c, x, analysis=("tran", 1 * ms, 1 * us))
    with pytest.raises(NetlistError, match=r"title must be a single line"):
        to_spice(c, x, title="two\nlines")
    with pytest.raises(NetlistError, match=r"sample=1 is out of range for x with 1"):
        to_spice(c, x, sample=1)
    with pytest.raises(NetlistError, match=r"diode must be 'D'"):
        to_spice(c, x, diode="X")
    with pytest.raises(TypeError, match=r"temperature must have units of kelvin \(K\)"):
        to_spice(c, x, temperature=27)
    with pytest.raises(NetlistError, match=r"needs a Circuit or a built CircuitNetwork"):
        to_spice("R1 a b 1k")


def test_missing_ngspice_is_reported(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(NgspiceError, match=r"ngspice is not installed .*apt-get install"):
        run_ngspice("t\nR1 a 0 1\n.op\n.end\n")


def test_ci_never_skips_the_ngspice_cross_check():
    # .ci/run installs ngspice and sets CI=true (as CI services do).
    # Outside CI the ngspice tests may skip (with their reason); in CI they must run.
    only_under_ci()
    assert shutil.which("ngspice"), "CI must install ngspice (apt-get install -y ngspice)"


@needs_ngspice
def test_ngspice_failure_is_reported():
    with pytest.raises(NgspiceError, match=r"ngspice failed"):
        run_ngspice("broken\nR1 a 0\nQ9 a b\n.op\n.end\n")


# ---------------------------------------------------------------------- DC: three solvers
def static_and_exact(net, x):
    """Brian2 static-phase voltages and the exact steady state, both (N,) in volt."""
    net.set_inputs(x)
    result = run_static_phase(net, 0.0, eq.Settle(tol=1e-12 * volt, max_steps=100000), None)
    assert result.report.converged
    brian = np.concatenate([np.asarray(net.voltages(g))[0] for g in net.circuit.nodes])
    exact = eq.SteadyState(net).solve(x)[0]
    return brian * volt, exact * volt


def spice_dc(net, diode):
    res = run_ngspice(to_spice(net, diode=diode))
    return np.concatenate([np.asarray(group_voltages(res, g, s.n))
                           for g, s in net.circuit.nodes.items()]) * volt


#: SPICE ``D`` elements use a cubic approximation of the Shockley law below
#: -3 N kT/q (ngspice dioload.c), off by up to ~5 % of I_s = 1 nA: a current error of a
#: few pA into nodes with tens of µS gives the measured 6e-8 ... 9e-8 V. With the exact
#: law ("B" sources) the only error left is ngspice's Newton tolerance (reltol=1e-9,
#: vntol=1e-12 V, written by to_spice): measured ~1e-16 V.
DC_ATOL = {"D": 1e-6 * volt, "B": 1e-9 * volt}


@needs_ngspice
@pytest.mark.parametrize("diode", ["D", "B"])
@pytest.mark.parametrize(
    ("seed", "conducting"), [(0, False), (1, False), (2, True)], ids=["s0", "s1", "s2-conducting"]
)
def test_dc_operating_point_matches_ngspice(seed, conducting, diode):
    rng = np.random.default_rng(100 + seed)
    # 12 hidden diode neurons + 8 outputs = 20 nodes; "conducting": narrow bias window and
    # large inputs so that diodes are forward-biased, not only the leakage regime
    neuron = (eq.models.DiodeNeuron(V_low=-0.05 * volt, V_high=0.05 * volt) if conducting
              else eq.models.DiodeNeuron())
    c = eq.layered(6, [12], 4, bias=1 * volt, neuron=neuron, rng=rng)
    x = rng.uniform(-2 if conducting else -1, 2 if conducting else 1, (1, 6)) * volt
    net = c.build()
    brian, exact = static_and_exact(net, x)
    spice = spice_dc(net, diode)
    if conducting:  # some hidden node is > 3 V_T beyond a bias: a diode really conducts
        h = np.asarray(exact)[:12]
        assert np.max(np.abs(h) - 0.05) > 3 * 0.05
    assert_quantity_close(brian, exact, rtol=0, atol=1e-9 * volt,
                          reason="static phase settled to 1e-12 V per check interval")
    assert_quantity_close(spice, exact, rtol=0, atol=DC_ATOL[diode],
                          reason=f"ngspice with {diode} diodes, see DC_ATOL")
    assert_quantity_close(spice, brian, rtol=0, atol=DC_ATOL[diode],
                          reason=f"ngspice with {diode} diodes, see DC_ATOL")


@needs_ngspice
def test_dc_mixed_shunts_and_recurrence_match_ngspice(rng):
    """Sparse recurrent resistors, diodes to ground and to a bias, current sources."""
    c = eq.Circuit()
    c.add_input("x", 4)
    c.add_nodes("a", 14, eq.models.CapacitorNode(g_leak=0.5 * uS, shunts=[
        eq.models.Diode(direction="to_bias", I_s=0.1 * nA, V_T=40 * mV, V_bias=0 * volt),
        eq.models.CurrentSource(I=-0.5 * uS * volt)]))
    c.add_nodes("b", 8, eq.models.CapacitorNode(g_leak=0 * uS, shunts=[
        eq.models.Diode(direction="from_bias", I_s=2 * nA, V_T=60 * mV, V_bias=-0.1 * volt)]))
    c.connect("x", "a", eq.models.Resistor(), g=rng.uniform(0, 10, (4, 14)) * uS)
    i, j = np.nonzero(~np.eye(14, dtype=bool) & (rng.random((14, 14)) < 0.2))
    c.connect("a", "a", eq.models.Resistor(), g=rng.uniform(1, 10, i.size) * uS, i=i, j=j)
    c.connect("a", "b", eq.models.Resistor(), g=rng.uniform(0, 10, (14, 8)) * uS)
    x = rng.uniform(-1, 1, (1, 4)) * volt
    net = c.build()
    brian, exact = static_and_exact(net, x)
    for diode in ("D", "B"):
        spice = spice_dc(net, diode)
        assert_quantity_close(spice, exact, rtol=0, atol=DC_ATOL[diode],
                              reason=f"ngspice with {diode} diodes, see DC_ATOL")
        assert_quantity_close(spice, brian, rtol=0, atol=DC_ATOL[diode],
                              reason=f"ngspice with {diode} diodes, see DC_ATOL")


# ---------------------------------------------------------------------- transient
def random_rc(rng):
    """3 inputs -> 8 nodes (sparse recurrent) -> 6 nodes: a 14-node RC network."""
    c = eq.Circuit()
    c.add_input("x", 3)
    c.add_nodes("a", 8, eq.models.CapacitorNode(C=1 * nF, g_leak=1 * uS))
    c.add_nodes("b", 6, eq.models.CapacitorNode(C=2 * nF, g_leak=0.5 * uS))
    c.connect("x", "a", eq.models.Resistor(), g=rng.uniform(1, 10, (3, 8)) * uS)
    i, j = np.nonzero(~np.eye(8, dtype=bool) & (rng.random((8, 8)) < 0.3))
    c.connect("a", "a", eq.models.Resistor(), g=rng.uniform(1, 10, i.size) * uS, i=i, j=j)
    c.connect("a", "b", eq.models.Resistor(), g=rng.uniform(0, 10, (8, 6)) * uS)
    return c


def brian_step_response(c, x, v0, dt, T):
    """Physical run from node voltages ``v0`` with the inputs stepped to ``x`` at t = 0."""
    net = c.build(dt=dt)
    net.set_relax(False)
    net.set_inputs(x)
    net.set_state(v0)
    mons = {g: StateMonitor(net.groups[g], "v", record=True) for g in c.nodes}
    net.network.add(*mons.values())
    netlist = to_spice(net, analysis=("tran", 0.1 * us, T))
    net.run(T)
    t = np.asarray(mons["a"].t)
    v = np.concatenate([np.asarray(mons[g].v).T for g in c.nodes], axis=1)
    return net, netlist, t, v


@needs_ngspice
@pytest.mark.parametrize("seed", [0, 1])
def test_rc_transient_matches_ngspice(seed):
    rng = np.random.default_rng(200 + seed)
    c = random_rc(rng)
    x = rng.uniform(-1, 1, (1, 3)) * volt
    v0 = {g: rng.uniform(-0.5, 0.5, s.n) for g, s in c.nodes.items()}
    T = 200 * us
    errors = []
    for dt in (40 * us / 1000, 20 * us / 1000):
        net, netlist, t, v_brian = brian_step_response(c, x, v0, dt, T)
        times, waves = run_ngspice(netlist)
        ts = np.r_[0.0, np.asarray(times)]  # the raw file starts after t = 0: add the IC
        start = np.concatenate([v0[g] for g in c.nodes])
        v_spice = np.concatenate([np.asarray(group_voltages(waves, g, s.n))
                                  for g, s in c.nodes.items()], axis=1)
        v_spice = np.vstack([start, v_spice])
        on_grid = np.stack([np.interp(t, ts, v_spice[:, k]) for k in range(v_spice.shape[1])],
                           axis=1)
        signal_range = float(max(v_brian.max(), v_spice.max()) - min(v_brian.min(),
                                                                     v_spice.min()))
        errors.append(float(np.max(np.abs(on_grid - v_brian))) / signal_range)
        # ngspice against the exact solution v(t) = v_inf + exp(-M t) (v0 - v_inf)
        ss = eq.SteadyState(net)
        caps = np.concatenate([np.full(s.n, float(s.model.C)) for s in c.nodes.values()])
        M = ss.A / caps[:, None]
        v_inf = ss.solve(x)[0]
        check = ts[:: max(1, len(ts) // 50)]
        exact = np.stack([v_inf + scipy.linalg.expm(-M * tk) @ (start - v_inf) for tk in check])
        idx = np.searchsorted(ts, check)
        spice_vs_exact = float(np.max(np.abs(v_spice[idx] - exact))) / signal_range
        # ngspice's own error (trapezoidal rule, max step 0.1 µs, reltol 1e-9): tiny
        assert spice_vs_exact < 1e-5, f"ngspice vs matrix exponential: {spice_vs_exact:.2e}"
    tau_min = 1.0 / np.max(np.real(np.linalg.eigvals(M)))
    coarse, fine = errors
    # Brian2 integrates with forward Euler: a global error O(dt/tau_min) that halves with dt.
    # With tau_min of a few µs, dt = 20 ns (dt/tau_min < 1e-2) stays well below 1e-3 of range.
    assert 20e-9 / tau_min < 1e-2
    assert fine <= 1e-3, f"Brian2 vs ngspice: {fine:.2e} of the signal range"
    order = np.log2(coarse / fine)
    assert 0.8 < order < 1.2, f"error ratio {coarse / fine:.2f}: not first order in dt"
    print(f"seed {seed}: transient max |Brian2 - ngspice| / range = {fine:.2e} (dt=20 ns), "
          f"{coarse:.2e} (dt=40 ns); tau_min = {tau_min * 1e6:.2f} us; ngspice vs exact "
          f"{spice_vs_exact:.1e}")


def test_netlist_module_units_at_the_boundary():
    """Values written in SI; a non-second time step is refused before anything is written."""
    c = small_circuit()
    with pytest.raises(TypeError, match=r"analysis tstop must have units of s"):
        to_spice(c, [[0.0, 0.0]] * volt, analysis=("tran", 1 * us, 5 * volt))
    text = to_spice(c, [[0.0, 0.0]] * volt, analysis=("tran", 1 * us, 5 * ms))
    tran = next(ln for ln in text.splitlines() if ln.startswith(".tran")).split()
    assert np.allclose([float(v) for v in tran[1:3]], [1e-6, 5e-3], rtol=1e-15, atol=0)


# ---------------------------------------------------------------------- dynamic elements
def dynamic_circuit():
    """x (2 sources) -> h (2 linear nodes) -> y (1 nonlinear-capacitor node), with series-RL
    inductors x -> y, an ideal inductor h -> y and directed synapses h -> y."""
    c = eq.Circuit()
    c.add_input("x", 2)
    c.add_nodes("h", 2, eq.models.CapacitorNode(C=1 * nF, g_leak=1 * uS))
    c.add_nodes("y", 1, eq.models.NonlinearCapacitorNode(g_leak=2 * uS))
    c.connect("x", "h", eq.models.Resistor(), g=np.full((2, 2), 2.0) * uS)
    c.connect("x", "y", eq.models.Inductor(R=1 * kohm), values=[[1.0], [2.0]] * henry)
    c.connect("h", "y", eq.models.Inductor(), values=[4.0] * henry, i=[1], j=[0], name="h~y")
    c.connect("h", "y", eq.models.DirectedSynapse(V_s=0.2 * volt, V_0=0.05 * volt),
              g=np.array([[1.5], [0.0]]) * uS)
    return c


def test_inductors_export_with_series_resistance_and_initial_currents():
    c = dynamic_circuit()
    text = to_spice(c, [[0.3, -0.4]] * volt)
    inductors = element_lines(text, "L")
    # two series-RL branches through internal nodes, one ideal inductor, one charge integrator
    assert "L_c1_0 x_0 c1_0_m 1.0" in inductors and "L_c1_1 x_1 c1_1_m 2.0" in inductors
    assert "R_c1_0_ser c1_0_m y_0 1000.0" in text and "R_c1_1_ser c1_1_m y_0 1000.0" in text
    assert "L_c2_0 h_1 y_0 4.0" in inductors
    assert not any("IC=" in ln for ln in inductors)  # .op: no initial conditions
    net = c.build(batch=2)
    # fluxes per (batch copy, synapse), flattened; copy 1 carries 1 mA in every branch
    net.synapses["x->y"].variables["phi"].set_value(np.array([0.1, -0.2, 1e-3, 2e-3]))
    net.synapses["h~y"].variables["phi"].set_value(np.array([0.3, 4e-3]))
    net.set_inputs([[0.3, -0.4], [0.1, 0.2]] * volt)
    text = to_spice(net, sample=1, analysis=("tran", 1 * us, 10 * us))
    # IC = phi / L of batch copy 1
    assert "L_c1_0 x_0 c1_0_m 1.0 IC=0.001" in text
    assert "L_c1_1 x_1 c1_1_m 2.0 IC=0.001" in text
    assert "L_c2_0 h_1 y_0 4.0 IC=0.001" in text


def test_nonlinear_capacitor_exports_in_charge_form():
    c = dynamic_circuit()
    text = to_spice(c, [[0.3, -0.4]] * volt)
    assert not any(ln.startswith("C_y_0") for ln in text.splitlines())
    C_ref = float(c.nodes["y"].model.C)  # C0 + C1 = 1 nF at v = 0
    assert C_ref == pytest.approx(1e-9)
    assert f"G_y_0_q y_0 0 y_0_q 0 {C_ref!r}" in text
    assert "L_y_0_q y_0_q 0 1" in element_lines(text, "L")
    b = next(ln for ln in element_lines(text, "B") if ln.startswith("B_y_0_q"))
    assert b.startswith("B_y_0_q 0 y_0_q I=")
    Q, _ = c.nodes["y"].model.charge_numeric()
    for v in (-0.5, 0.1, 0.7):  # the source carries Q(v)/C_ref
        assert eval_spice(b.split("I=", 1)[1], y_0=v) == pytest.approx(float(Q(v)) / C_ref,
                                                                     rel=1e-14)
    assert ".ic" not in text  # only transients start from initial conditions
    net = c.build()
    net.set_inputs([[0.3, -0.4]] * volt)
    net.set_state({"h": np.zeros(2), "y": np.array([0.25])})
    text = to_spice(net, analysis=("tran", 1 * us, 10 * us))
    ic = float(next(ln for ln in element_lines(text, "L") if ln.startswith("L_y_0_q"))
               .split("IC=")[1])
    assert ic == pytest.approx(float(Q(0.25)) / C_ref, rel=1e-15)
    assert ".ic V(y_0)=0.25" in text.splitlines()


def eval_spice(expr: str, **nodes) -> float:
    """Evaluate an ngspice behavioural expression in Python, node voltages by name."""
    for name, val in nodes.items():
        expr = expr.replace(f"V({name})", repr(float(val)))
    namespace = {"ln": np.log, "exp": np.exp, "tanh": np.tanh, "sqrt": np.sqrt,
                 "abs": np.abs}
    return float(eval(expr, {"__builtins__": {}}, namespace))  # our own exporter's output


def test_directed_synapses_export_as_behavioural_sources():
    text = to_spice(dynamic_circuit(), [[0.3, -0.4]] * volt)
    lines = [ln for ln in element_lines(text, "B") if ln.startswith("B_c3_")]
    assert len(lines) == 1  # the zero transconductance is an open circuit
    assert lines[0].startswith("B_c3_0 0 y_0 I=")  # from ground into post
    expr = lines[0].split("I=", 1)[1]
    for v in (-0.3, 0.05, 0.4):
        assert eval_spice(expr, h_0=v) == pytest.approx(1.5e-6 * 0.2 * np.tanh((v - 0.05) / 0.2),
                                                        rel=1e-14, abs=1e-22)
    assert "1 zero transconductance(s) omitted" in text


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("x**3", "(V(a)*V(a)*V(a))"),
        ("x**-2", "(1/(V(a)*V(a)))"),
        ("log(x)", "ln(V(a))"),
        ("sqrt(x)", "sqrt(V(a))"),
        ("abs(x)", "abs(V(a))"),
        ("2*mV*x/volt", "(0.002*V(a))"),
        ("k*x", "((-2.5)*V(a))"),
    ],
)
def test_spice_expression(expr, expected):
    from ephys_eqprop.netlist import spice_expression

    assert spice_expression(expr, {"x": "V(a)", "k": -2.5}, "test") == expected


def test_exprel_is_written_with_its_limit_at_zero():
    """exprel(x) = (e^x - 1)/x has the limit 1 at 0: ngspice's ternary operator keeps it."""
    from ephys_eqprop.netlist import spice_expression

    text = spice_expression("exprel(x)", {"x": "V(a)"}, "test")
    namespace = {"exp": np.exp, "abs": abs}
    assert text.startswith("(") and text.endswith(")") and text.count("?") == 1
    cond, rest = text[1:-1].split("?")
    near, far = rest.split(":")
    as_python = f"({near}) if {cond} else ({far})"  # the ternary, in Python's spelling
    for v in (0.0, 1e-9, -0.3, 2.0):
        value = eval(as_python.replace("V(a)", repr(v)), namespace)  # our exporter's text
        expected = 1.0 if v == 0 else np.expm1(v) / v
        assert value == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("expr", "match"),
    [
        ("expm1(x)", r"uses the function 'expm1', which ngspice behavioural sources do not"),
        ("x*y", r"uses 'y', which is neither a parameter of the element nor a Brian2 unit"),
    ],
)
def test_spice_expression_errors(expr, match):
    from ephys_eqprop.netlist import spice_expression

    with pytest.raises(NetlistError, match=match):
        spice_expression(expr, {"x": "V(a)"}, "test")


def test_nonlinear_inductor_is_written_with_its_flux_as_a_state_node():
    """No SPICE inductor takes i = h(φ): the flux is the voltage of a 1 F node charged by
    dφ/dt = v_pre - v_post - R h(φ), and h(φ) flows as a B source (transients against
    Brian2 are in the element contract tests)."""
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("y", 1, eq.models.CapacitorNode())
    c.connect("x", "y", eq.models.NonlinearInductor(R=1 * kohm), values=[[1.0]] * henry)
    text = to_spice(c, [[1.0]] * volt, analysis=("tran", 1 * us, 10 * us))
    caps = [ln for ln in element_lines(text, "C") if ln.startswith("C_c0_0_phi")]
    assert len(caps) == 1 and caps[0].split()[2:] == ["0", "1", "IC=0.0"]
    node = caps[0].split()[1]
    sources = {ln.split()[0]: ln for ln in element_lines(text, "B")}
    dphi = sources[f"B_{node}"].split("I=", 1)[1]
    cur = sources["B_c0_0"].split("I=", 1)[1]
    phi = 2e-4
    h = phi / 1.0 * (1 + (phi / 1e-3) ** 2)
    assert eval_spice(cur, **{node: phi}) == pytest.approx(h, rel=1e-14)
    assert eval_spice(dphi, x_0=1.0, y_0=0.25, **{node: phi}) == pytest.approx(
        1.0 - 0.25 - 1e3 * h, rel=1e-14)


def dc_solution(x):
    """Node voltages of `dynamic_circuit` at DC by Newton's method on Kirchhoff's law
    (plain numpy: inductors are shorts through their series resistance)."""
    from scipy.optimize import fsolve

    g, gl_h, gl_y, G, Vs, V0 = 2e-6, 1e-6, 2e-6, 1.5e-6, 0.2, 0.05

    def kcl(v):
        h0, h1, y = v
        i_h0 = g * (x[0] - h0) + g * (x[1] - h0) - gl_h * h0
        i_h1 = g * (x[0] - h1) + g * (x[1] - h1) - gl_h * h1
        # y is tied to h1 by the ideal inductor: one supernode, zero voltage across it
        i_super = (i_h1 + (x[0] - y) / 1e3 + (x[1] - y) / 1e3 - gl_y * y
                   + G * Vs * np.tanh((h0 - V0) / Vs))
        return [i_h0, i_super, h1 - y]

    return fsolve(kcl, np.zeros(3), xtol=1e-14)


@needs_ngspice
def test_dynamic_elements_dc_operating_point_matches_kirchhoff():
    x = np.array([0.3, -0.4])
    res = run_ngspice(to_spice(dynamic_circuit(), x[None, :] * volt))
    spice = np.concatenate([np.asarray(group_voltages(res, "h", 2)),
                            np.asarray(group_voltages(res, "y", 1))]) * volt
    assert_quantity_close(spice, dc_solution(x) * volt, rtol=0, atol=1e-9 * volt,
                          reason="ngspice Newton tolerance (reltol 1e-9, vntol 1e-12 V) and "
                                 "fsolve (xtol 1e-14)")


@needs_ngspice
def test_nonlinear_capacitors_start_from_their_initial_charge_in_ngspice():
    """Two nonlinear capacitors exchanging charge: ngspice (charge form with initial
    conditions) against a high-accuracy solution of dv/dt = I/Q'(v)."""
    from ephys_eqprop.validation.dynamic import _charge_circuit
    from scipy.integrate import solve_ivp

    c, net = _charge_circuit(1e-7)
    v0 = np.array([1.0, 0.0])
    net.set_state({"a": v0[:1], "b": v0[1:]})
    times, waves = run_ngspice(to_spice(net, analysis=("tran", 2 * us, 2 * ms)))
    t = np.asarray(times)
    (Qa, dQa), (Qb, dQb) = (c.nodes[g].model.charge_numeric() for g in ("a", "b"))

    def rhs(_, y):
        i = 1e-6 * (y[0] - y[1])
        return [(-i - 1e-15 * y[0]) / dQa(y[0]), (i - 1e-15 * y[1]) / dQb(y[1])]

    ref = solve_ivp(rhs, (0, t[-1]), v0, t_eval=t, method="DOP853", rtol=1e-12, atol=1e-15)
    spice = np.stack([np.asarray(group_voltages(waves, g, 1))[:, 0] for g in ("a", "b")])
    assert_quantity_close(spice * volt, ref.y * volt, rtol=0, atol=1e-6 * volt,
                          reason="ngspice's trapezoidal rule, steps <= 2 us on a ~0.4 ms "
                                 "time constant, reltol 1e-9: measured ~2e-7 V")
    q = Qa(spice[0]) + Qb(spice[1])
    assert np.max(np.abs(q - q[0])) <= 1e-6 * abs(q[0])  # charge conserved by ngspice


@needs_ngspice
def test_rlc_transient_with_initial_currents_matches_the_exact_solution():
    """A small random RLC network from random node voltages and inductor currents: ngspice
    against the exact solution of its state equations, and Brian2 against ngspice."""
    from ephys_eqprop.validation.dynamic import run_transient
    from ephys_eqprop.validation.spice import linear_rlc_system, random_rlc_network

    rng = np.random.default_rng(7)
    c = random_rlc_network(rng, n_hidden=4, n_out=3)
    x = rng.uniform(-1, 1, (1, 3))
    A, b, inductors = linear_rlc_system(c, c.source_values(x * volt)[0])
    dt = 2e-8
    net = c.build(dt=dt * second)
    v0 = {g: rng.uniform(-0.5, 0.5, s.n) for g, s in c.nodes.items()}
    states0 = {}
    for name in ("a~b", "x~a"):
        L = np.asarray(c.connections[name].values, dtype=float)
        states0[(name, "phi")] = L * rng.uniform(-1e-5, 1e-5, L.size)
        net.synapses[name].variables["phi"].set_value(states0[(name, "phi")])
    net.set_inputs(x * volt)
    net.set_state(v0)
    T = 10_000 * dt
    times, waves = run_ngspice(to_spice(net, analysis=("tran", 5 * dt * second, T * second)))
    t_s = np.asarray(times)
    spice = np.concatenate([np.asarray(group_voltages(waves, g, s.n))
                            for g, s in c.nodes.items()], axis=1)
    s0 = np.concatenate([v0["a"], v0["b"], states0[("a~b", "phi")], states0[("x~a", "phi")]])
    lam, V = np.linalg.eig(A)
    s_inf = -np.linalg.solve(A, b)
    coef = np.linalg.solve(V, s0 - s_inf)
    exact = np.real(s_inf + (np.exp(np.outer(t_s, lam)) * coef) @ V.T)[:, :7]
    span = float(np.ptp(exact))
    assert_quantity_close(spice * volt, exact * volt, rtol=0, atol=1e-6 * span * volt,
                          reason="ngspice trapezoidal rule, reltol 1e-9, steps <= 0.1 us")
    t, v, _ = run_transient(net, T * second, x=x * volt, v0=v0, states0=states0, every=5)
    brian = np.concatenate([v[g][:, 0, :] for g in c.nodes], axis=1)
    on_grid = np.stack([np.interp(t, np.r_[0, t_s], np.r_[s0[None, :7], spice][:, k])
                        for k in range(7)], axis=1)
    assert_quantity_close(brian * volt, on_grid * volt, rtol=0, atol=1e-3 * span * volt,
                          reason="forward Euler at dt = 20 ns on modes up to ~2e4 1/s")
