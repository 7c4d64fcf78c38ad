"""Cross-checks against ngspice, an independent circuit simulator.

Each circuit is exported with :func:`ephys_eqprop.netlist.to_spice`, run with
:func:`ephys_eqprop.netlist.run_ngspice` in batch mode, and compared with the Brian2
simulation of the same built network. When ngspice is not installed the cases are
reported as skipped ("ngspice not found").

Cases: ``ngspice_dc`` (random diode–resistor networks, DC operating points),
``ngspice_transient`` (random RC networks, step responses) and ``ngspice_rlc_transient``
(random RLC networks with series-RL inductor branches, step responses).
"""

from __future__ import annotations

import numpy as np
import scipy.interpolate
from brian2 import kohm, mV, nA, nF, second, uS, volt
from brian2.units.allunits import henry

import ephys_eqprop as eq
from ephys_eqprop.netlist import group_voltages, run_ngspice, to_spice

from .analytic import euler_rc_error_bound
from .dynamic import run_transient
from .framework import case, new_figure
from .simulate import settle, transient

__all__ = ["linear_rlc_system", "random_diode_network", "random_rc_network",
           "random_rlc_network"]

GROUP = "ngspice cross-check"

#: DC tolerance of the issue's acceptance criteria. What remains: ngspice's Newton
#: tolerance (reltol=1e-9, vntol=1e-12 V, written by to_spice), Brian2's settling
#: (1e-13 V per check interval) and, with SPICE "D" elements, the cubic approximation of
#: the Shockley law in reverse bias below -3 V_T (ngspice dioload.c: up to ~5 % of I_s,
#: i.e. up to 0.1 nA for the 2 nA diodes of the "mixed" networks, into nodes of tens of
#: µS: measured up to a few 1e-7 V). With the exact law ("B" sources) only the solvers'
#: tolerances remain (measured ~1e-15 V).
DC_ATOL = 1e-6
DC_NOTE = {
    "D": "DC target 1e-6 V; SPICE diode elements replace the Shockley law by a cubic below "
         "-3 V_T (reverse bias), off by up to ~5 % of I_s: a few 1e-7 V at most here",
    "B": "DC target 1e-6 V; with the exact Shockley law only the solvers' tolerances remain "
         "(ngspice reltol 1e-9, vntol 1e-12 V; Brian2 settled to 1e-13 V per check)",
}
#: Transient tolerance (fraction of the signal range) of the acceptance criteria. Forward
#: Euler at dt = tau_min/500 contributes at most about dt/(2 e tau_min) = 3.7e-4 of each
#: mode's amplitude (see validation.analytic.euler_rc_error_bound); ngspice's trapezoidal
#: rule (reltol 1e-9, steps <= SPICE_STEP dt) and the cubic interpolation of its output onto
#: Brian2's grid add far less (measured: 1e-7 V against ngspice run with steps <= dt).
TRAN_RTOL = 1e-3
#: Brian2's time step as a fraction of the network's fastest time constant.
STEPS_PER_TAU_MIN = 500
#: ngspice's output and maximum internal step, in units of Brian2's dt. ngspice's cost grows
#: with the number of steps (about 0.7 ms per step for 64 nodes at reltol 1e-9).
SPICE_STEP = 5


def random_diode_network(rng: np.random.Generator, kind: str) -> tuple[eq.Circuit, np.ndarray]:
    """A random diode–resistor network with at least 20 nodes, and an input vector.

    Parameters
    ----------
    rng : numpy.random.Generator
    kind : {"layered", "conducting", "mixed"}
        ``"layered"``: 8 doubled inputs and a ±1 V bias pair -> 16 diode neurons
        (biases ±0.2 V) -> 8 output nodes, inputs in ±1 V. ``"conducting"``: the same
        with diode biases ±0.05 V and inputs in ±2 V, so that diodes are forward biased
        far beyond the knee. ``"mixed"``: sparse recurrent resistors among 14 nodes with
        diodes to ground and current sources, 8 nodes with diodes from a -0.1 V bias.

    Returns
    -------
    tuple (Circuit, numpy.ndarray of shape (1, n_in), volt)
    """
    if kind in ("layered", "conducting"):
        conducting = kind == "conducting"
        neuron = (eq.models.DiodeNeuron(V_low=-0.05 * volt, V_high=0.05 * volt) if conducting
                  else eq.models.DiodeNeuron())
        c = eq.layered(8, [16], 4, bias=1 * volt, neuron=neuron, rng=rng)
        x = rng.uniform(-2 if conducting else -1, 2 if conducting else 1, (1, 8))
        return c, x
    if kind != "mixed":
        raise ValueError(f"kind must be 'layered', 'conducting' or 'mixed'; got {kind!r}.")
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
    return c, rng.uniform(-1, 1, (1, 4))


def random_rc_network(rng: np.random.Generator, n_hidden: int = 12,
                      n_out: int = 10) -> eq.Circuit:
    """A random RC network: 3 inputs -> ``n_hidden`` nodes (sparse recurrent) -> ``n_out``.

    Hidden nodes have 1 nF and a 1 µS leak, output nodes 2 nF and 0.5 µS; conductances
    are uniform in [1, 10] µS (input and recurrent) and [0, 10] µS (hidden to output).
    """
    c = eq.Circuit()
    c.add_input("x", 3)
    c.add_nodes("a", n_hidden, eq.models.CapacitorNode(C=1 * nF, g_leak=1 * uS))
    c.add_nodes("b", n_out, eq.models.CapacitorNode(C=2 * nF, g_leak=0.5 * uS))
    c.connect("x", "a", eq.models.Resistor(), g=rng.uniform(1, 10, (3, n_hidden)) * uS)
    i, j = np.nonzero(~np.eye(n_hidden, dtype=bool) & (rng.random((n_hidden, n_hidden)) < 0.3))
    c.connect("a", "a", eq.models.Resistor(), g=rng.uniform(1, 10, i.size) * uS, i=i, j=j)
    c.connect("a", "b", eq.models.Resistor(), g=rng.uniform(0, 10, (n_hidden, n_out)) * uS)
    return c


def _all_nodes(values: dict, circuit) -> np.ndarray:
    return np.concatenate([np.asarray(values[g]) for g in circuit.nodes], axis=-1)


def _node_count(circuit) -> int:
    return sum(s.n for s in circuit.nodes.values())


@case("ngspice_dc", title="DC operating points against ngspice", group=GROUP, needs=("ngspice",))
def ngspice_dc(ctx):
    """Random diode–resistor networks with 22–24 nodes (`random_diode_network`: a layered
    diode network in the leakage regime, one driven hard into conduction, and a mixed one
    with sparse recurrent resistors, diodes to ground and to a bias, and current sources),
    settled with the Brian2 static phase and exported with `to_spice` as SPICE diode
    elements ("D", the portable form) and as behavioural sources with the exact Shockley law
    ("B"). The figure is the largest |v_Brian2 − v_ngspice| over all nodes (and over the
    networks of a kind). Quick mode draws one network of each kind, the full run four.
    """
    kinds = ["layered", "conducting", "mixed"]
    n_seeds = 1 if ctx.quick else 4
    rng = ctx.rng()
    rows, results = [], []
    for kind in kinds:
        worst = {"D": 0.0, "B": 0.0}
        for _ in range(n_seeds):
            circuit, x = random_diode_network(rng, kind)
            net = circuit.build()
            brian = _all_nodes({g: v[0] for g, v in settle(net, x * volt).items()}, circuit)
            for diode in ("D", "B"):
                res = run_ngspice(to_spice(net, diode=diode))
                spice = np.concatenate([np.asarray(group_voltages(res, g, s.n))
                                        for g, s in circuit.nodes.items()])
                rows.append((kind, diode, brian, spice))
                worst[diode] = max(worst[diode], float(np.max(np.abs(brian - spice))))
        where = (f"{kind} network ({_node_count(circuit)} nodes)" if n_seeds == 1 else
                 f"{n_seeds} {kind} networks ({_node_count(circuit)} nodes)")
        for diode in ("D", "B"):
            results.append(ctx.at_most(
                f"max |v_Brian2 − v_ngspice|, {where}, {diode} diodes", worst[diode], DC_ATOL,
                unit="V", note=DC_NOTE[diode]))

    fig, (a1, a2) = new_figure(1, 2, figsize=(11.5, 4.4))
    labelled = set()
    for kind, diode, brian, spice in rows:
        color = f"C{kinds.index(kind)}"
        first = (kind, diode) not in labelled
        labelled.add((kind, diode))
        if diode == "D":
            a1.plot(spice, brian, "o", ms=4, mfc="none", color=color,
                    label=f"{kind} ({len(brian)} nodes)" if first else None)
        diff = np.abs(brian - spice)
        order = np.argsort(np.abs(spice))
        a2.semilogy(np.arange(len(diff)), np.maximum(diff[order], 1e-17),
                    "o" if diode == "D" else "x", ms=4, color=color, mfc="none",
                    label=f"{kind}, {diode} diodes" if first else None)
    lim = max(np.max(np.abs(r[2])) for r in rows) * 1.05
    a1.plot([-lim, lim], [-lim, lim], color="0.6", lw=1, label="Brian2 = ngspice")
    a1.set_xlabel("ngspice operating point (V)")
    a1.set_ylabel("Brian2 settled static phase (V)")
    a1.set_title(f"Node voltages ({len(rows) // 2} networks)")
    a1.legend(fontsize=8)
    a2.axhline(DC_ATOL, color="k", ls="--", lw=1, label="tolerance 1e-6 V")
    a2.set_ylim(top=1e-5)
    a2.set_xlabel("node (sorted by |v|)")
    a2.set_ylabel("|v_Brian2 − v_ngspice| (V)")
    a2.set_title("Differences (exact zeros drawn at 1e-17 V)")
    a2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ctx.save_figure(fig, "operating_points", "DC operating points of random diode–resistor "
                    "networks: Brian2 against ngspice, and their differences.")
    return results


@case("ngspice_transient", title="RC transients against ngspice", group=GROUP,
      needs=("ngspice",))
def ngspice_transient(ctx):
    """Random RC networks (`random_rc_network`, 22 nodes; the full run adds ones with
    40 and 64 nodes) start from random node voltages while their input sources step to random
    values at t = 0. Brian2 runs the physical dynamics (forward Euler, dt = τ_min/500 with
    τ_min the fastest time constant of the network); ngspice runs the exported netlist
    (`.tran` with `uic`, trapezoidal rule, output and maximum step 5 dt). ngspice's
    waveforms are interpolated onto Brian2's time grid with cubic splines. The figure is the largest
    difference over all nodes and times, divided by the signal range (largest minus
    smallest voltage of either waveform).
    """
    rng = ctx.rng()
    sizes = [(12, 10)] if ctx.quick else [(12, 10), (24, 16), (40, 24)]
    results, plotted = [], None
    for n_hidden, n_out in sizes:
        c = random_rc_network(rng, n_hidden, n_out)
        x = rng.uniform(-1, 1, (1, 3))
        v0 = {g: rng.uniform(-0.5, 0.5, s.n) for g, s in c.nodes.items()}
        ss = eq.SteadyState(c)  # only for the conductance matrix: the time constants
        caps = np.concatenate([np.full(s.n, float(s.model.C)) for s in c.nodes.values()])
        tau_min = 1.0 / float(np.max(np.real(np.linalg.eigvals(ss.A / caps[:, None]))))
        tau_max = 1.0 / float(np.min(np.real(np.linalg.eigvals(ss.A / caps[:, None]))))
        dt = tau_min / STEPS_PER_TAU_MIN * second
        T = min(5 * tau_max, 400e-6) * second
        net = c.build(dt=dt)
        net.set_inputs(x * volt)
        net.set_state(v0)  # to_spice writes the node voltages as initial conditions
        netlist = to_spice(net, analysis=("tran", SPICE_STEP * dt, T))
        t, v = transient(net, x * volt, v0, T)
        v_brian = np.concatenate([v[g][:, 0, :] for g in c.nodes], axis=1)
        times, waves = run_ngspice(netlist)
        ts = np.r_[0.0, np.asarray(times)]  # the raw file starts after t = 0: add the ICs
        start = np.concatenate([v0[g] for g in c.nodes])
        v_spice = np.vstack([start, np.concatenate(
            [np.asarray(group_voltages(waves, g, s.n)) for g, s in c.nodes.items()], axis=1)])
        ts, keep = np.unique(ts, return_index=True)
        on_grid = scipy.interpolate.CubicSpline(ts, v_spice[keep], axis=0)(t)
        span = float(max(v_brian.max(), v_spice.max()) - min(v_brian.min(), v_spice.min()))
        err = float(np.max(np.abs(on_grid - v_brian))) / span
        n_nodes = v_brian.shape[1]
        bound = euler_rc_error_bound(dt, tau_min * second)
        results.append(ctx.at_most(
            f"max |v_Brian2 − v_ngspice| / range, {n_nodes} nodes, {len(t)} steps", err,
            TRAN_RTOL, note=f"target 1e-3 of the range; forward Euler at dt = "
                            f"τ_min/{STEPS_PER_TAU_MIN} (τ_min = {tau_min * 1e6:.2f} µs) is off "
                            f"by at most dt/(2eτ_min) = {bound:.1e} "
                            "of a mode's amplitude; ngspice and the interpolation add ~1e-7"))
        if plotted is None:
            plotted = (c, t, v_brian, on_grid, span)

    c_plot, t, v_brian, on_grid, span = plotted
    fig, (a1, a2) = new_figure(2, 1, sharex=True, figsize=(6.8, 6.0))
    show = np.linspace(0, v_brian.shape[1] - 1, 5).astype(int)
    names = [f"{g}_{k}" for g, s in c_plot.nodes.items() for k in range(s.n)]
    tm = t * 1e6
    for k, node in enumerate(show):
        a1.plot(tm, v_brian[:, node], color=f"C{k}", lw=1.5, label=f"{names[node]}, Brian2")
        a1.plot(tm, on_grid[:, node], "--", color="k", lw=0.8,
                label="ngspice" if k == 0 else None)
        a2.plot(tm, (v_brian[:, node] - on_grid[:, node]) / span, color=f"C{k}", lw=1,
                label=names[node])
    a1.set_ylabel("node voltage (V)")
    a1.set_title(f"Random RC network, {v_brian.shape[1]} nodes: step response")
    a1.legend(fontsize=7, ncol=2)
    a2.set_xlabel("time (µs)")
    a2.set_ylabel("(Brian2 − ngspice) / signal range")
    a2.legend(fontsize=7, ncol=3)
    a2.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ctx.save_figure(fig, "waveforms", "Step response of a random RC network: Brian2 (forward "
                    "Euler) against ngspice, five of its nodes, and their difference "
                    "relative to the signal range.")
    return results


# ---------------------------------------------------------------------- RLC networks
def random_rlc_network(rng: np.random.Generator, n_hidden: int = 12,
                       n_out: int = 10) -> eq.Circuit:
    """A random RLC network: inputs, resistors, node capacitors and series-RL branches.

    3 inputs -> ``n_hidden`` nodes ``a`` (1 nF, 0.5 µS leak) -> ``n_out`` nodes ``b``
    (2 nF, 0.5 µS leak). Resistors (connections ``"x->a"``, ``"a->a"``, ``"a->b"``, sparse,
    1-3 µS) and series-RL inductor branches: ``n_hidden`` between random hidden and output
    nodes (``"a~b"``, L uniform in [5, 20] H, series R = 60 kΩ) and ``n_hidden // 2`` from
    the inputs to hidden nodes (``"x~a"``, same L range, R = 80 kΩ). The branches
    resonate with the node capacitors near 1e4 rad/s with damping ratios of about
    0.3-0.6, and the resistors' time constants are of the same order, so that the
    waveforms ring without a stiff spread of rates.
    """
    c = eq.Circuit()
    c.add_input("x", 3)
    c.add_nodes("a", n_hidden, eq.models.CapacitorNode(C=1 * nF, g_leak=0.5 * uS))
    c.add_nodes("b", n_out, eq.models.CapacitorNode(C=2 * nF, g_leak=0.5 * uS))
    c.connect("x", "a", eq.models.Resistor(), g=rng.uniform(1, 3, n_hidden) * uS,
              i=rng.integers(0, 3, n_hidden), j=np.arange(n_hidden))
    i, j = np.nonzero(np.triu(rng.random((n_hidden, n_hidden)) < 0.15, 1))
    if i.size:
        c.connect("a", "a", eq.models.Resistor(), g=rng.uniform(1, 3, i.size) * uS, i=i, j=j)
    i, j = np.nonzero(rng.random((n_hidden, n_out)) < 0.15)
    if i.size:
        c.connect("a", "b", eq.models.Resistor(), g=rng.uniform(1, 3, i.size) * uS, i=i, j=j)
    i = rng.integers(0, n_hidden, n_hidden)
    j = rng.permutation(np.resize(np.arange(n_out), n_hidden))
    c.connect("a", "b", eq.models.Inductor(R=60 * kohm), values=rng.uniform(5, 20, i.size) * henry,
              i=i, j=j, name="a~b")
    k = n_hidden // 2
    c.connect("x", "a", eq.models.Inductor(R=80 * kohm), values=rng.uniform(5, 20, k) * henry,
              i=rng.integers(0, 3, k), j=rng.choice(n_hidden, k, replace=False), name="x~a")
    return c


def linear_rlc_system(circuit, x) -> tuple[np.ndarray, np.ndarray, list]:
    """The state equations ``s' = A s + b`` of a linear RLC circuit, by nodal analysis.

    Written from the circuit description alone (no package simulation code): the state
    is the node voltages (groups in order) followed by the inductor fluxes (connections in
    order); node ``k`` obeys ``C_k v_k' = −g_leak v_k + Σ resistor currents + Σ inductor
    currents φ/L``, an inductor from ``p`` to ``q`` obeys ``φ' = v_p − v_q − R φ/L``.

    Parameters
    ----------
    circuit : Circuit
        Linear capacitor nodes, `Resistor` and `Inductor` connections only.
    x : array_like, shape (n_sources,), volt
        Source voltages (all inputs in order, as ``Circuit.source_values`` gives them).

    Returns
    -------
    A : numpy.ndarray, shape (n, n), 1/s
    b : numpy.ndarray, shape (n,)
    inductors : list of (connection name, synapse index)
        The order of the flux states.
    """
    offsets = circuit.node_offsets()
    src_off, off = {}, 0
    for name, spec in circuit.inputs.items():
        src_off[name] = off
        off += spec.size
    x = np.asarray(x, dtype=float)
    N = sum(s.n for s in circuit.nodes.values())
    inductors = [(name, s) for name, conn in circuit.connections.items()
                 if isinstance(conn.element, eq.models.Inductor) for s in range(conn.i.size)]
    n = N + len(inductors)
    A, b = np.zeros((n, n)), np.zeros(n)
    caps = np.zeros(N)
    for name, spec in circuit.nodes.items():
        sl = slice(offsets[name], offsets[name] + spec.n)
        caps[sl] = float(spec.model.C)
        A[sl, sl] -= np.eye(spec.n) * float(spec.model.g_leak)

    def terminal(group, k):
        if group in circuit.inputs:
            return None, x[src_off[group] + k]
        return offsets[group] + k, 0.0

    row = N
    for conn in circuit.connections.values():
        vals = np.asarray(conn.values, dtype=float).ravel()
        for s in range(conn.i.size):
            p, xp = terminal(conn.pre, int(conn.i[s]))
            q, _ = terminal(conn.post, int(conn.j[s]))
            if isinstance(conn.element, eq.models.Inductor):
                L, R = vals[s], float(conn.element.values["R"])
                A[q, row] += 1 / L
                A[row, q] -= 1
                A[row, row] -= R / L
                if p is None:
                    b[row] += xp
                else:
                    A[p, row] -= 1 / L
                    A[row, p] += 1
                row += 1
                continue
            g = vals[s]
            A[q, q] -= g
            if p is None:
                b[q] += g * xp
            else:
                A[p, p] -= g
                A[p, q] += g
                A[q, p] += g
    A[:N] /= caps[:, None]
    b[:N] /= caps
    return A, b, inductors


def _exact_linear(A, b, s0, t) -> np.ndarray:
    """``s(t) = s∞ + V exp(Λ t) V⁻¹ (s0 − s∞)`` by eigendecomposition, shape (n_t, n)."""
    s_inf = -np.linalg.solve(A, b)
    lam, V = np.linalg.eig(A)
    c = np.linalg.solve(V, s0 - s_inf)
    return np.real(s_inf[None, :] + (np.exp(np.outer(t, lam)) * c[None, :]) @ V.T)


#: Euler's leading-order error per mode, h|λ|²/(2e|Re λ|) of its amplitude, is held to this
#: fraction of TRAN_RTOL when choosing dt (mode amplitudes may exceed the signal range).
RLC_ERROR_BUDGET = 0.25
#: Longest RLC run (steps; quick, full): about one and two time constants of the slowest
#: mode at the dt above (Brian2 takes ~0.2 ms per step for these networks).
RLC_MAX_STEPS = (20_000, 40_000)


@case("ngspice_rlc_transient", title="RLC transients against ngspice", group=GROUP,
      needs=("ngspice",))
def ngspice_rlc_transient(ctx):
    """Random RLC networks (`random_rlc_network`: 22 nodes with sparse resistors, node
    capacitors and leaks, 12 series-RL inductor branches between hidden and output nodes
    and 6 from the inputs; the full run adds one with 40 nodes and 24 + 12 inductors) start
    from random node voltages and random inductor fluxes while the inputs step to random
    values at t = 0. Brian2 runs the physical dynamics (forward Euler); ngspice runs the
    exported netlist (inductors as `L` with `IC=` their current φ/L and an `R` in series,
    `.tran` with `uic`, trapezoidal rule, output and maximum step 5 dt), interpolated onto
    Brian2's time grid with cubic splines. The figure is the largest difference over all
    nodes and times, divided by the signal range.

    dt: the network's eigenvalues λ (from `linear_rlc_system`, nodal analysis written
    independently of the package) give each mode's leading-order Euler error,
    h |λ|²/(2e |Re λ|) of its amplitude (the RC bound h/(2eτ) generalised to damped
    oscillations); dt makes the largest of these 1/4 of the 1e-3 target. The run lasts
    5/min|Re λ|, capped at 20 000 steps in quick mode and 40 000 in the full run (about one
    and two time constants of the slowest mode). ngspice itself is checked against the exact
    solution of the same linear system (eigendecomposition): tolerance 1e-5 of the range.
    """
    rng = ctx.rng()
    sizes = [(12, 10)] if ctx.quick else [(12, 10), (24, 16)]
    results, plotted = [], None
    for n_hidden, n_out in sizes:
        c = random_rlc_network(rng, n_hidden, n_out)
        x = rng.uniform(-1, 1, (1, 3))
        v0 = {g: rng.uniform(-0.5, 0.5, s.n) for g, s in c.nodes.items()}
        A, b, inductors = linear_rlc_system(c, c.source_values(x * volt)[0])
        lam = np.linalg.eigvals(A)
        worst = float(np.max(np.abs(lam) ** 2 / np.abs(lam.real)))
        dt = RLC_ERROR_BUDGET * TRAN_RTOL * 2 * np.e / worst
        n_steps = int(min(5 / float(np.min(np.abs(lam.real))) / dt,
                          RLC_MAX_STEPS[0 if ctx.quick else 1]))
        n_steps -= n_steps % SPICE_STEP
        T = n_steps * dt
        net = c.build(dt=dt * second)
        states0 = {}
        for name, conn in c.connections.items():
            if isinstance(conn.element, eq.models.Inductor):
                L = np.asarray(conn.values, dtype=float)
                # random initial currents up to 1 V across the branch's series resistance
                i0 = rng.uniform(-1, 1, L.size) / float(conn.element.values["R"])
                states0[(name, "phi")] = L * i0
                net.synapses[name].variables["phi"].set_value(L * i0)
        net.set_inputs(x * volt)
        net.set_state(v0)  # to_spice writes node voltages and inductor currents as ICs
        netlist = to_spice(net, analysis=("tran", SPICE_STEP * dt * second, T * second))
        t, v, _ = _run_linear(net, x, v0, states0, T)
        v_brian = np.concatenate([v[g][:, 0, :] for g in c.nodes], axis=1)
        times, waves = run_ngspice(netlist)
        ts = np.r_[0.0, np.asarray(times)]
        start = np.concatenate([v0[g] for g in c.nodes])
        v_spice = np.vstack([start, np.concatenate(
            [np.asarray(group_voltages(waves, g, s.n)) for g, s in c.nodes.items()], axis=1)])
        ts, keep = np.unique(ts, return_index=True)
        v_spice = v_spice[keep]
        on_grid = scipy.interpolate.CubicSpline(ts, v_spice, axis=0)(t)
        span = float(max(v_brian.max(), v_spice.max()) - min(v_brian.min(), v_spice.min()))
        err = float(np.max(np.abs(on_grid - v_brian))) / span
        N = v_brian.shape[1]
        s0 = np.concatenate([start, np.concatenate(
            [states0[(name, "phi")] for name, conn in c.connections.items()
             if isinstance(conn.element, eq.models.Inductor)])])
        check = ts[:: max(1, len(ts) // 200)]
        exact = _exact_linear(A, b, s0, check)[:, :N]
        idx = np.searchsorted(ts, check)
        spice_err = float(np.max(np.abs(v_spice[idx] - exact))) / span
        zeta = -lam.real / np.abs(lam)
        where = f"{N} nodes, {len(inductors)} inductors"
        results.append(ctx.at_most(
            f"max |v_Brian2 − v_ngspice| / range, {where}, {n_steps} steps", err, TRAN_RTOL,
            note=f"target 1e-3 of the range; dt = {dt * 1e9:.1f} ns makes every mode's "
                 f"leading-order Euler error h|λ|²/(2e|Re λ|) ≤ {RLC_ERROR_BUDGET * TRAN_RTOL:.1e}"
                 f" of its amplitude (|λ| up to {np.max(np.abs(lam)):.3g} 1/s, damping ratios "
                 f"≥ {zeta.min():.2f})"))
        results.append(ctx.at_most(
            f"ngspice vs exact solution (eigendecomposition) / range, {where}", spice_err, 1e-5,
            note="ngspice's trapezoidal rule at reltol 1e-9 with steps ≤ 5 dt: its own error "
                 "is far below Brian2's; 1e-5 of the range"))
        if plotted is None:
            plotted = (c, t, v_brian, on_grid, span)

    c_plot, t, v_brian, on_grid, span = plotted
    fig, (a1, a2) = new_figure(2, 1, sharex=True, figsize=(6.8, 6.0))
    show = np.linspace(0, v_brian.shape[1] - 1, 5).astype(int)
    names = [f"{g}_{k}" for g, s in c_plot.nodes.items() for k in range(s.n)]
    tm = t * 1e3
    for k, node in enumerate(show):
        a1.plot(tm, v_brian[:, node], color=f"C{k}", lw=1.5, label=f"{names[node]}, Brian2")
        a1.plot(tm, on_grid[:, node], "--", color="k", lw=0.8,
                label="ngspice" if k == 0 else None)
        a2.plot(tm, (v_brian[:, node] - on_grid[:, node]) / span, color=f"C{k}", lw=1,
                label=names[node])
    a1.set_ylabel("node voltage (V)")
    a1.set_title(f"Random RLC network, {v_brian.shape[1]} nodes: step response")
    a1.legend(fontsize=7, ncol=2)
    a2.set_xlabel("time (ms)")
    a2.set_ylabel("(Brian2 − ngspice) / signal range")
    a2.legend(fontsize=7, ncol=3)
    a2.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ctx.save_figure(fig, "waveforms", "Step response of a random RLC network (series-RL "
                    "inductor branches): Brian2 (forward Euler) against ngspice, five of its "
                    "nodes, and their difference relative to the signal range.")
    return results


def _run_linear(net, x, v0, states0, T):
    """A physical run recording node voltages, from node voltages and branch states."""
    return run_transient(net, T * second, x=x * volt, v0=v0, states0=states0,
                         every=SPICE_STEP, record_states=False)
