"""Synaptic monitors: what each element sees in the runs of a gradient, labelled by run.

Each check compares a recorded value with an independent computation: the local
quantity from the settled node voltages (numpy), the estimator's own result from
Brian2's accumulators, the element's expression written out by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import amp, ms, nS, uS, volt

import ephys_eqprop as eq


def small_static():
    rng = np.random.default_rng(0)
    c = eq.Circuit()
    c.add_input("x", 2)
    c.add_nodes("h", 3, eq.models.CapacitorNode())
    c.add_nodes("y", 2, eq.models.CapacitorNode())
    c.connect("x", "h", eq.models.Resistor(), g=rng.uniform(1, 3, (2, 3)) * uS)
    c.connect("h", "y", eq.models.Resistor(), g=rng.uniform(1, 3, (3, 2)) * uS)
    c.set_output("y")
    return c


def test_static_phases_are_recorded_phase_by_phase():
    net = small_static().build(batch=2)
    mon = eq.SynapticMonitor(net, "h->y")
    x = np.array([[0.5, -0.3], [0.2, 0.4]]) * volt
    y = np.zeros((2, 2)) * volt
    est = eq.SymmetricEP(beta=1e-3)
    g = est.gradient(net, x, y, eq.losses.MSE())
    assert mon.runs == ["free", "nudged (β=+0.001)", "nudged (β=-0.001)"]
    free = mon["free"]
    assert free.time_axis == "relaxation" and free.unit == "V²"
    assert free.values.shape[1:] == (2, 6) and free.values.shape[0] > 2
    # the last sample of the free phase is ½ Δv² at its fixed point, from the settled
    # voltages of the phase written out here
    v_h = est.info.phases["free"].state["h"].reshape(2, 3)
    v_y = est.info.phases["free"].state["y"].reshape(2, 2)
    half_dv2 = 0.5 * (v_h[:, :, None] - v_y[:, None, :]) ** 2
    np.testing.assert_allclose(np.asarray(free.values)[-1], half_dv2.reshape(2, 6), rtol=1e-12)
    # and the gradient is the difference of the nudged phases' last samples, weighted
    # 1/2 per sample (the mean over the batch), over 2β
    pos, neg = (np.asarray(mon[r].values)[-1] for r in mon.runs[1:])
    expected = (0.5 * (pos - neg) / 2e-3).sum(axis=0).reshape(3, 2)
    np.testing.assert_allclose(np.asarray(g["h->y"]), expected, rtol=1e-9)


def hh_pair():
    c = eq.Circuit()
    c.add_nodes("soma", 2, eq.models.HHNeuron("hh"))
    c.add_current_input("I", "soma")
    c.connect("soma", "soma", eq.models.Resistor(), g=[30.0] * nS, i=[0], j=[1], name="gap")
    c.connect("soma", "soma", eq.models.ChemicalSynapse(), g=[5.0] * nS, i=[1], j=[0],
              name="syn")
    c.set_output("soma")
    I = np.zeros((1, 800, 2))
    I[0, 100:, 0] = 2e-9
    x = eq.TimeSeries(I * amp, dt=0.01 * ms)
    y = eq.TimeSeries(np.full((1, 800, 2), -0.065) * volt, dt=0.01 * ms)
    return c.build(dt=0.01 * ms), x, y, eq.losses.MSE(g_nudge=10 * nS)


def test_adjoint_integrands_add_up_to_the_gradient():
    """Σ dt × integrand (numpy, from recorded adjoint voltages) = the gradient Brian2
    accumulated in the reverse run, for a gap junction, a chemical synapse and the
    channel conductances: the same sum in two codes, to rounding."""
    net, x, y, loss = hh_pair()
    mons = {k: eq.SynapticMonitor(net, k) for k in ("gap", "syn")}
    node = eq.SynapticMonitor(net, "soma")
    g = eq.Adjoint().gradient(net, x, y, loss)
    for name, mon in mons.items():
        rec = mon["adjoint"]
        assert rec.unit == "V²" and rec.t.shape == (800,)
        total = float(np.sum(np.asarray(rec.values)) * 1e-5)
        assert total == pytest.approx(float(g[name][0]), rel=1e-10)
    rec = node["adjoint [soma.g_Na]"]
    np.testing.assert_allclose(np.asarray(rec.values).sum(axis=(0, 1)) * 1e-5,
                               np.asarray(g["soma.g_Na"]), rtol=1e-10)
    assert "syn" in mons and "forward" not in mons["syn"].runs  # directed: no ½Δv²
    assert mons["gap"]["forward"].unit == "V²"


def test_lagrangian_ep_runs_are_labelled_and_their_integrals_give_the_estimate():
    net, x, y, loss = hh_pair()
    mon = eq.SynapticMonitor(net, "gap")
    est = eq.LagrangianEP(beta=1e-3, params=["gap", "soma.g_Na", "soma.g_K", "soma.g_L"])
    g = est.gradient(net, x, y, loss)
    assert mon.runs == ["free", "nudged (β=+0.001)", "nudged (β=-0.001)"]
    assert set(est.info.phases) == {"free", "nudged", "nudged_neg"}
    pos, neg = mon["nudged (β=+0.001)"], mon["nudged (β=-0.001)"]
    assert pos.integral().has_same_dimensions(volt**2 * ms)
    assert eq.monitors.readable_unit(pos.integral().dim) == "V²·s"
    # the recorded ½ Δv² against the voltages written out by hand in the free run...
    free = np.asarray(mon["free"].values)[:, 0, 0]
    assert np.all(free >= 0) and np.max(free) > 0
    # ...and the estimate from the monitor's integrals (left Riemann sum) equals the
    # estimator's (Brian2's accumulators)
    estimate = float(np.asarray(pos.integral() - neg.integral())[0, 0]) / (2e-3)
    assert estimate == pytest.approx(float(g["gap"][0]), rel=1e-9)
    with pytest.raises(eq.CircuitError, match=r"'syn' \(ChemicalSynapse.*directed element"):
        eq.LagrangianEP().gradient(net, x, y, loss)


def test_monitors_refuse_unknown_targets_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    net, x, y, loss = hh_pair()
    with pytest.raises(eq.CircuitError, match=r"Unknown connection or node parameter 'gab'"):
        eq.SynapticMonitor(net, "gab")
    mon = eq.SynapticMonitor(net, "gap")
    with pytest.raises(KeyError, match="No run 'adjoint' was recorded"):
        mon["adjoint"]
    eq.Adjoint().gradient(net, x, y, loss)
    ax = mon.plot()
    assert len(ax.lines) == 2
    mon.detach()
    eq.Adjoint().gradient(net, x, y, loss)
    assert mon.runs == ["forward", "adjoint"]
