"""Random time-varying circuits shared by the tests, the validation suite and benchmarks."""

from __future__ import annotations

import numpy as np
from brian2 import amp, nF, ohm, second, uS, volt
from brian2.units.allunits import henry, weber

import ephys_eqprop as eq

#: node capacitance and leak: the time constant tau = C / g_leak = 1 ms
C_NODE, G_LEAK = 1 * nF, 1 * uS
TAU = float(C_NODE / G_LEAK)


def random_circuit(kind: str, seed: int = 0, n_in: int = 2, n_hidden: int = 4, n_out: int = 2):
    """A random circuit of the given kind.

    kinds: ``"rc"`` (resistors), ``"rlc"`` (resistors and series-RL inductor
    branches), ``"nonlinear"`` (diode neurons with nonlinear capacitors, and
    nonlinear inductor branches),
    ``"directed"`` (directed synapses from the hidden to the output nodes).
    """
    rng = np.random.default_rng(seed)
    c = eq.Circuit()
    c.add_input("x", n_in)
    if kind == "nonlinear":
        node = eq.elements.NodeModel(
            C=C_NODE, g_leak=G_LEAK,
            shunts=eq.models.DiodeNeuron(I_s=1e-9 * amp, V_low=-0.3 * volt,
                                         V_high=0.3 * volt).shunts,
            charge="C0*v + C1*V_s*tanh(v/V_s)",
            charge_params={"C0": 0.6 * nF, "C1": 0.4 * nF, "V_s": 0.2 * volt})
    else:
        node = eq.models.CapacitorNode(C=C_NODE, g_leak=G_LEAK)
    c.add_nodes("h", n_hidden, node)
    c.add_nodes("y", n_out, eq.models.CapacitorNode(C=C_NODE, g_leak=G_LEAK))
    c.connect("x", "h", eq.models.Resistor(), g=rng.uniform(0.5, 2, (n_in, n_hidden)) * uS)
    pairs = [(a, b) for a in range(n_hidden) for b in range(a + 1, n_hidden)]
    pick = rng.choice(len(pairs), size=min(3, len(pairs)), replace=False)
    c.connect("h", "h", eq.models.Resistor(), g=rng.uniform(0.2, 1, pick.size) * uS,
              i=[pairs[k][0] for k in pick], j=[pairs[k][1] for k in pick])
    if kind == "directed":
        c.connect("h", "y", eq.models.DirectedSynapse(V_s=0.2 * volt),
                  g=rng.uniform(-2, 2, (n_hidden, n_out)) * uS)
    else:
        c.connect("h", "y", eq.models.Resistor(), g=rng.uniform(0.5, 2, (n_hidden, n_out)) * uS)
    if kind in ("rlc", "nonlinear"):
        # resonance near 1/tau with the node capacitance: L = tau² / C
        L = TAU ** 2 / float(C_NODE)
        R = 0.2 * L / TAU * ohm
        # nonlinear: a core that hardens at fluxes of 0.1 V over 1 ms
        ind = (eq.models.Inductor(R=R) if kind == "rlc"
               else eq.models.NonlinearInductor(R=R, Phi_s=1e-4 * weber))
        c.connect("h", "y", ind, values=rng.uniform(0.5, 2, (n_hidden, n_out)) * L * henry,
                  name="h~y")
    c.set_output("y")
    return c


def waveforms(tau_omega: float, n_samples: int = 2, n_in: int = 2, n_out: int = 2,
              periods: float = 1.0, steps_per_tau: int = 100, seed: int = 0,
              amplitude: float = 0.5):
    """Sinusoidal inputs and targets at angular frequency ``tau_omega / TAU``.

    Returns ``(x, y, dt)``: TimeSeries inputs and targets and the time step
    (the finer of ``TAU / steps_per_tau`` and 1/200 of a period). The run lasts
    ``periods`` periods, and at least 3 TAU.
    """
    rng = np.random.default_rng(seed + 1000)
    omega = tau_omega / TAU
    period = 2 * np.pi / omega
    dt = min(TAU / steps_per_tau, period / 200)
    T = max(periods * period, 3 * TAU)
    n = int(round(T / dt))
    t = np.arange(n) * dt
    ph_x = rng.uniform(0, 2 * np.pi, (n_samples, 1, n_in))
    ph_y = rng.uniform(0, 2 * np.pi, (n_samples, 1, n_out))
    x = amplitude * np.sin(omega * t[None, :, None] + ph_x)
    y = 0.2 * amplitude * np.sin(omega * t[None, :, None] + ph_y)
    return (eq.TimeSeries(x * volt, dt=dt * second), eq.TimeSeries(y * volt, dt=dt * second),
            dt * second)


def compare(a: dict, b: dict):
    """Cosine similarity and relative error (max-norm) of two gradient dicts."""
    va = np.concatenate([np.ravel(np.asarray(a[k])) for k in sorted(b)])
    vb = np.concatenate([np.ravel(np.asarray(b[k])) for k in sorted(b)])
    cos = float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))
    rel = float(np.max(np.abs(va - vb)) / np.max(np.abs(vb)))
    return cos, rel
