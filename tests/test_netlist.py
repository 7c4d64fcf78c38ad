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
from brian2 import StateMonitor, amp, kelvin, ms, mV, nA, nF, siemens, uS, us, volt
from helpers import assert_quantity_close

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
    """A nonlinear synapse with no SPICE element."""

    learnable = "g"
    learnable_unit = siemens
    current = "g*(v_pre - v_post)**3/volt**2"
    local = "0.25*(v_pre - v_post)**4/volt**2"
    local_unit = volt**2


class CubicShunt(ShuntElement):
    """A nonlinear leak with no SPICE element."""

    parameters = (Parameter("k", amp / volt**3, 1e-6 * amp / volt**3),)
    current = "-k*v**3"


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda c: c.connect("x", "y", Cubic(), g=np.ones((1, 2)) * uS),
         r"Connection 'x->y' uses Cubic, which has no SPICE equivalent"),
        (lambda c: c.add_nodes("z", 1, eq.models.CapacitorNode(shunts=[CubicShunt()])),
         r"Node group 'z' has shunt 0, a CubicShunt, which has no SPICE equivalent"),
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
    with pytest.raises(TypeError, match=r"temperature must have units of K"):
        to_spice(c, x, temperature=27)
    with pytest.raises(NetlistError, match=r"needs a Circuit or a built CircuitNetwork"):
        to_spice("R1 a b 1k")


def test_missing_ngspice_is_reported(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(NgspiceError, match=r"ngspice is not installed .*apt-get install"):
        run_ngspice("t\nR1 a 0 1\n.op\n.end\n")


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
