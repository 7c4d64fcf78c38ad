"""The element contract, run over every element kind of the catalogue.

For each entry of ``element_catalogue.ALL_ELEMENTS``:

* units — every parameter default, current, state derivative, initial value and
  co-content has the dimensions its declaration says;
* derivatives — sympy's derivatives of every expression with respect to every
  name (terminal voltages, states, parameters) agree with central finite
  differences of the same expression evaluated with numpy;
* gradients — on a small circuit holding the element, ``Adjoint`` agrees with
  central ``FiniteDifference`` (time-varying runs), and for elements without
  states ``ExactSteadyState`` agrees with static finite differences and
  ``SymmetricEP`` with ``ExactSteadyState`` where the element has an energy term;
* SPICE — the exported netlist, run by ngspice, reproduces the Brian2 transient
  (and the operating point of the exact steady-state solver for static circuits),
  or the export refuses with a clear error;
* checkpoints — a Trainer checkpoint restores every parameter exactly into a fresh
  network.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from brian2 import StateMonitor, get_dimensions, second, uS, us, volt, watt
from dynamic_circuits import compare
from element_catalogue import ALL_ELEMENTS, DT, element_of, holder, is_dynamic, waveforms
from helpers import assert_quantity_close

import ephys_eqprop as eq
from ephys_eqprop.elements import BranchElement
from ephys_eqprop.expressions import differentiate, expression_dimensions, numpy_function
from ephys_eqprop.netlist import NetlistError, group_voltages, run_ngspice, to_spice

needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None,
                                   reason="ngspice is not installed (apt-get install -y ngspice)")


def test_the_catalogue_lists_every_model():
    """Every element class and node-model factory of ``eq.models`` is in the catalogue."""
    from ephys_eqprop import models

    listed = {e.name for e in ALL_ELEMENTS}
    shipped = {n for n in models.__all__ if n[0].isupper() and not n.isupper()}
    assert shipped <= listed, f"missing from ALL_ELEMENTS: {sorted(shipped - listed)}"


# ---------------------------------------------------------------------- units
@pytest.mark.parametrize("entry", ALL_ELEMENTS, ids=str)
def test_units(entry):
    from brian2 import amp

    for el in element_of(entry):
        for p in el.parameters:
            assert get_dimensions(p.default) is get_dimensions(p.unit), p.name
        el.check_expression(el.current, amp, "current")
        for st in el.states:
            el.check_expression(st.rhs, st.quantity / second, f"d{st.name}/dt")
            if st.init is not None:
                el.check_expression(st.init, st.quantity, f"initial {st.name}")
        energy = el.energy_expr()
        if energy is not None:
            el.check_expression(energy, watt, "co-content")
            names = [el.learnable] if isinstance(el, BranchElement) else list(el.learned)
            for name in names:
                local = el.local_expr(name)
                dims = expression_dimensions(local, el.example_values(), "local quantity")
                unit = el.example_values()[name]
                assert dims is get_dimensions(watt / unit), (name, dims)


# ---------------------------------------------------------------------- derivatives
def _point(el, rng):
    """SI values of every name of an element near its declared values."""
    vals = {t: rng.uniform(-0.2, 0.2) for t in el.terminals}
    for k, v in el.values.items():
        vals[k] = float(np.asarray(v)) * rng.uniform(0.8, 1.2)
    if isinstance(el, BranchElement):
        vals[el.learnable] = 1.0 * float(np.asarray(el.example_values()[el.learnable]))
    for st in el.states:
        if st.bounds is not None:
            vals[st.name] = rng.uniform(0.1, 0.9) * (st.bounds[1] - st.bounds[0]) + st.bounds[0]
            continue
        # the state a millisecond of its own derivative builds up
        args = {**vals, st.name: 0.0}
        f = numpy_function(st.rhs, list(args), {})
        vals[st.name] = float(f(*args.values())) * 1e-3 * rng.uniform(0.5, 1.5)
    return vals


@pytest.mark.parametrize("entry", ALL_ELEMENTS, ids=str)
def test_sympy_derivatives_match_central_differences(entry):
    """Tolerance 1e-6 of the derivative's natural scale: central differences with a
    relative step of 1e-5 have a truncation error ~1e-10 and rounding ~1e-11 relative."""
    rng = np.random.default_rng(3)
    for el in element_of(entry):
        point = _point(el, rng)
        names = list(point)
        exprs = {"current": el.current, **{f"d{s.name}/dt": s.rhs for s in el.states}}
        for what, expr in exprs.items():
            f = numpy_function(expr, names, {})
            f0 = float(f(*point.values()))
            for var in names:
                d = differentiate(expr, var, what)
                analytic = float(numpy_function(d, names, {})(*point.values()))
                x = point[var]
                h = 1e-5 * max(abs(x), 1e-30)
                hi, lo = dict(point), dict(point)
                hi[var], lo[var] = x + h, x - h
                fd = (float(f(*hi.values())) - float(f(*lo.values()))) / (2 * h)
                scale = abs(analytic) + abs(f0) / max(abs(x), 1e-30)
                assert abs(analytic - fd) <= 1e-6 * scale + 1e-300, (el, what, var, analytic, fd)


# ---------------------------------------------------------------------- gradients
@pytest.mark.parametrize("entry", ALL_ELEMENTS, ids=str)
def test_adjoint_matches_finite_differences(entry):
    """Both differentiate the same forward-Euler loss: they agree to the O(eps²) of the
    central differences (eps = 1e-5: ~1e-7 relative on a spiking Hodgkin–Huxley neuron,
    where eps = 1e-4 leaves 2e-5; rounding stays below 1e-9); bar cosine ≥ 0.9999, 1e-5."""
    c = holder(entry)
    net = c.build(batch=2, dt=DT)
    x, y = waveforms(entry)
    loss = eq.losses.MSE(g_nudge=1 * uS)
    adj = eq.Adjoint().gradient(net, x, y, loss)
    fd = eq.FiniteDifference(eps=1e-5).gradient(net, x, y, loss)
    assert set(adj) == set(net.params) == set(fd)
    cos, rel = compare(adj, fd)
    worst = max(compare({k: adj[k]}, {k: fd[k]})[1] for k in adj)
    print(f"{entry.name}: cos {cos:.12f}, rel {rel:.2e}, worst parameter {worst:.2e}")
    assert cos >= 0.9999 and rel <= 1e-5
    assert worst <= 1e-4, "every parameter, not only the largest gradients"


@pytest.mark.parametrize("entry", [e for e in ALL_ELEMENTS if not is_dynamic(holder(e))],
                         ids=str)
def test_static_references_agree(entry):
    """The implicit-function gradient against static central differences (settled to
    1e-13 V: ~1e-7 relative), and symmetric EP against it where every parameter has an
    energy term (O(β²) = 1e-6 at β = 1e-3)."""
    c = holder(entry)
    net = c.build(batch=2)
    rng = np.random.default_rng(5)
    x = (entry.offset + rng.uniform(-1, 1, (2, 2)) * entry.amplitude) * volt
    y = rng.uniform(-0.05, 0.05, (2, 2)) * volt
    loss = eq.losses.MSE()
    exact = eq.ExactSteadyState().gradient(net, x, y, loss)
    fd = eq.FiniteDifference(eps=1e-4, settle=eq.Settle(tol=1e-13 * volt, max_steps=200_000)
                             ).gradient(net, x, y, loss)
    assert compare(exact, fd)[1] <= 1e-5
    if set(net.local_parameters()) == set(net.params):
        ep = eq.SymmetricEP(beta=1e-3).gradient(net, x, y, loss)
        assert compare(ep, exact)[1] <= 1e-5
    else:
        with pytest.raises(eq.CircuitError, match="equilibrium propagation does not apply"):
            eq.SymmetricEP().gradient(net, x, y, loss)


# ---------------------------------------------------------------------- SPICE
def _brian_transient(net, x, steps):
    net.set_relax(False)
    net.set_inputs(x)
    net.reset_state()
    mons = {g: StateMonitor(net.groups[g], "v", record=True) for g in net.circuit.nodes}
    net.network.add(*mons.values())
    try:
        net.run(steps * net.dt)
    finally:
        net.network.remove(*mons.values())
    t = np.asarray(next(iter(mons.values())).t / second)
    return t, {g: np.asarray(m.v / volt).T for g, m in mons.items()}


@needs_ngspice
@pytest.mark.parametrize("entry", ALL_ELEMENTS, ids=str)
def test_spice_export_runs_in_ngspice_and_matches(entry):
    """A 1 ms transient from the network's initial state with constant inputs: Brian2 at
    dt = 0.5 µs (forward Euler; its error ~ dt/(2eτ) ≈ 5e-4 of the range for the fastest
    node, τ ≈ 0.2 ms) against ngspice (trapezoidal, reltol 1e-9): 3e-3 of the range (1e-2
    for spiking neurons, whose upstrokes turn a µs of timing into mV). For
    circuits without states also the operating point against the exact solver (1e-9 V;
    diodes as the exact Shockley law, since SPICE's diode model bends the reverse-bias
    exponential into a cubic and is off by up to ~5 % of I_s there)."""
    c = holder(entry)
    x = (entry.offset + np.array([[0.8, -0.6]]) * entry.amplitude) * volt
    try:
        text = to_spice(c, x, analysis=("tran", 2 * us, 1000 * us))
    except NetlistError as ex:  # a refusal must say what cannot be written
        assert "cannot" in str(ex) or "do not have" in str(ex)
        return
    net = c.build(batch=1, dt=0.5 * us)
    t, v = _brian_transient(net, x, 2000)
    times, waves = run_ngspice(text)
    ts = np.r_[0.0, np.asarray(times)]
    worst = 0.0
    for g, spec in c.nodes.items():
        sp = np.vstack([v[g][:1], np.asarray(group_voltages(waves, g, spec.n))])
        on_grid = np.stack([np.interp(t, ts, sp[:, k]) for k in range(spec.n)], axis=1)
        span = float(np.ptp(v[g])) + 1e-3
        worst = max(worst, float(np.max(np.abs(on_grid - v[g]))) / span)
    print(f"{entry.name}: transient, max |Brian2 - ngspice| / range = {worst:.2e}")
    assert worst <= entry.spice_tol
    if not is_dynamic(c):
        res = run_ngspice(to_spice(c, x, diode="B"))
        exact = eq.SteadyState(c).solve(x)[0]
        spice = np.concatenate([np.asarray(group_voltages(res, g, s.n))
                                for g, s in c.nodes.items()])
        print(f"{entry.name}: operating point, max |ngspice - exact| = "
              f"{np.max(np.abs(spice - exact)):.2e} V")
        assert np.max(np.abs(spice - exact)) <= 1e-9


# ---------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("entry", ALL_ELEMENTS, ids=str)
def test_checkpoint_round_trip(entry, tmp_path):
    """New parameter values saved by a Trainer come back bit for bit in a fresh network."""
    c = holder(entry)
    net = c.build(batch=1, dt=DT)
    rng = np.random.default_rng(7)
    new = {}
    for name, val in net.get_params().items():
        factor = rng.uniform(0.7, 1.3, np.shape(val))
        new[name] = val * factor if net.params[name].sign != "signed" else val * factor + \
            0.1 * np.max(np.abs(val)) * rng.standard_normal(np.shape(val))
    net.set_params(new)
    opt = eq.Adam(lr=1 * uS)  # save and load only: no step is taken
    tr = eq.Trainer(net, eq.Adjoint(), eq.losses.MSE(), opt, checkpoint=tmp_path / "c.npz",
                    progress=False)
    tr.save()
    fresh = c.build(batch=1, dt=DT)
    eq.Trainer(fresh, eq.Adjoint(), eq.losses.MSE(), opt, checkpoint=tmp_path / "c.npz",
               progress=False).load()
    got = fresh.get_params()
    for name, val in net.get_params().items():
        assert_quantity_close(got[name], val, rtol=0, reason="saved and loaded as float64")
