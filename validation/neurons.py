"""Neurons as circuit nodes, against closed forms and high-accuracy integrations.

Cases (registered in this order):

* ``nagumo_hopf`` — the onset of repetitive firing of the Nagumo inductor neuron
  (:func:`ephys_eqprop.models.NagumoNeuron`): the current at which its rest state
  loses stability, measured from simulated small-signal responses, against the
  closed-form linear stability analysis of the FitzHugh–Nagumo equations;
* ``nagumo_limit_cycle`` — its limit cycle above onset: period and amplitude
  against a high-accuracy scipy integration of the same equations, and a figure
  of the cycle in the phase plane.

The neuron is simulated as plain Brian2 objects built from the package's own
elements (a capacitor node with a cubic conductance and an inductor–resistor–
battery branch to ground), with forward Euler; the tolerances follow from that
scheme's error at the chosen dt.
"""

from __future__ import annotations

import numpy as np
import scipy.integrate
from brian2 import StateMonitor, amp, second, volt
from ephys_eqprop.models import NagumoNeuron, fitzhugh_parameters

import ephys_eqprop as eq

from .dynamic import discrete_eigenvalues
from .framework import case, new_figure

__all__ = ["fitzhugh_hopf", "fitzhugh_rest", "limit_cycle_features", "nagumo_network"]

GROUP = "Neurons as circuit nodes"

#: FitzHugh's parameters of the cases (FitzHugh 1961's a, b and ε)
FHN = {"a": 0.7, "b": 0.8, "epsilon": 0.08}


def fitzhugh_rest(I: float, a: float, b: float) -> float:
    """The fixed point ``x*`` of FitzHugh's equations on the lower branch at current ``I``.

    ``x - x³/3 - (x + a)/b + I = 0`` (with ``w = (x + a)/b``); for ``b < 1`` it has
    one real root, the one returned.
    """
    roots = np.roots([-1 / 3, 0.0, 1 - 1 / b, I - a / b])
    real = roots[np.abs(roots.imag) < 1e-9].real
    return float(real.min())


def fitzhugh_hopf(a: float, b: float, epsilon: float) -> dict:
    """Closed-form Hopf point of FitzHugh's equations ``x' = x - x³/3 - w + I``,
    ``w' = ε (x + a - b w)``.

    The Jacobian at the fixed point is ``[[1 - x², -1], [ε, -ε b]]``; its trace
    vanishes at ``x_H² = 1 - ε b`` (lower branch ``x_H < 0``) while its determinant
    ``ε (1 - b (1 - x²)) = ε (1 - ε b²)`` stays positive: a pair of eigenvalues
    ``± i ω_H``, ``ω_H = √(ε (1 - ε b²))``, crosses the imaginary axis.

    Returns
    -------
    dict
        ``x`` (fixed point), ``I`` (current, FitzHugh units), ``omega`` (angular
        frequency, per unit of FitzHugh time).
    """
    if not epsilon * b < 1:
        raise ValueError(f"A Hopf point needs ε b < 1; got ε={epsilon}, b={b}.")
    x = -np.sqrt(1 - epsilon * b)
    I = x**3 / 3 - x + (x + a) / b
    return {"x": float(x), "I": float(I), "omega": float(np.sqrt(epsilon * (1 - epsilon * b**2)))}


def nagumo_network(batch: int, dt, **fhn):
    """One Nagumo neuron (group ``"n"``) per batch copy, built as Brian2 objects."""
    c = eq.Circuit()
    c.add_nodes("n", 1, NagumoNeuron(**fhn))
    return c.build(batch=batch, dt=dt)


def _run(net, I: np.ndarray, x0: np.ndarray, w0: np.ndarray, duration: float, p: dict,
         stride: int = 1):
    """Run the physical dynamics from ``(x0, w0)`` with constant currents ``I`` (FitzHugh
    units, one per batch copy); return times (s), ``v`` (V) and ``i = phi/L`` (A)."""
    V, Is, L = float(p["V_cubic"]), float(p["I_scale"]), float(p["L_rec"])
    grp = net.groups["n"]
    net.set_relax(False)
    net.reset_state()
    grp.variables["v"].set_value(np.asarray(x0, float) * V)
    grp.variables["phi_rec"].set_value(np.asarray(w0, float) * Is * L)
    grp.I_ext = np.asarray(I, float) * Is * amp
    mon = StateMonitor(grp, ["v", "phi_rec"], record=True, dt=stride * net.dt, name="nagumo*")
    net.network.add(mon)
    net.run(duration * second)
    t = np.asarray(mon.t / second)
    v = np.asarray(mon.v / volt)
    i = np.asarray(mon.phi_rec_) / L
    net.network.remove(mon)
    return t, v, i


def _fitzhugh_ode(p: dict, I_amp: float):
    C, G, V = float(p["C"]), float(p["G_cubic"]), float(p["V_cubic"])
    L, R, E = float(p["L_rec"]), float(p["R_rec"]), float(p["E_rec"])

    def rhs(t, y):
        v, phi = y
        return [(G * (v - v**3 / (3 * V**2)) - phi / L + I_amp) / C, v - E - R * phi / L]

    return rhs


def limit_cycle_features(t, v, skip: float) -> dict:
    """Period (s), peak-to-peak amplitude (V) and crossing times of a periodic ``v(t)``.

    Crossings are the upward passages through the middle of the range after
    ``t = skip`` (linearly interpolated); the period is their mean spacing.
    """
    t, v = np.asarray(t), np.asarray(v)
    keep = t >= skip
    t, v = t[keep], v[keep]
    lo, hi = float(v.min()), float(v.max())
    mid = 0.5 * (lo + hi)
    up = np.flatnonzero((v[:-1] < mid) & (v[1:] >= mid))
    tc = t[up] + (mid - v[up]) / (v[up + 1] - v[up]) * (t[up + 1] - t[up])
    if tc.size < 3:
        raise ValueError("Fewer than three cycles after the transient: run longer.")
    return {"period": float(np.mean(np.diff(tc))), "amplitude": hi - lo, "crossings": tc}


@case("nagumo_hopf", title="Nagumo inductor neuron: onset of repetitive firing (Hopf)",
      group=GROUP)
def nagumo_hopf(ctx):
    """A Nagumo neuron (C = 1 nF, cubic conductance G = 1 µS with V = 0.1 V, an inductor–
    resistor–battery branch to ground with FitzHugh's a = 0.7, b = 0.8, ε = 0.08: L = 12.5
    kH, R = 800 kΩ, E = −70 mV, τ = C/G = 1 ms) is held at its rest state for constant
    currents I from 4 % below to 4 % above the closed-form Hopf current I_H = G V
    (x_H³/3 − x_H + (x_H + a)/b), x_H = −√(1 − εb), nudged by 10⁻⁴ V and simulated in
    Brian2 (all currents as batch copies of one run, forward Euler, dt = τ/500). Prony's
    method on the voltage's small-signal response gives the simulated eigenvalues σ ± iω at
    each current; the simulated onset is where σ(I) crosses zero (a straight-line fit), its
    frequency ω there. Forward Euler moves each eigenvalue λ to log(1 + hλ)/h, which
    shifts the onset by about (h ω²/2)/(dσ/dI): a few 10⁻⁵ of I_H at this dt."""
    p = fitzhugh_parameters(**FHN)
    tau = float(p["tau"])
    hopf = fitzhugh_hopf(**FHN)
    deltas = np.array([-0.04, -0.02, -0.01, 0.01, 0.02, 0.04])
    I = hopf["I"] * (1 + deltas)
    x0 = np.array([fitzhugh_rest(Ik, FHN["a"], FHN["b"]) for Ik in I])
    w0 = (x0 + FHN["a"]) / FHN["b"]
    dt = tau / 500
    periods = 3 if ctx.quick else 6
    duration = periods * 2 * np.pi / hopf["omega"] * tau
    net = nagumo_network(len(I), dt * second, **FHN)
    stride = 10
    t, v, _ = _run(net, I, x0 + 1e-3, w0, duration, p, stride=stride)
    V = float(p["V_cubic"])
    sigma, omega = [], []
    for k in range(len(I)):
        lam = discrete_eigenvalues(v[k] - x0[k] * V, stride * dt)
        sigma.append(float(np.max(lam.real)) * tau)
        omega.append(float(np.max(np.abs(lam.imag))) * tau)
    sigma, omega = np.array(sigma), np.array(omega)
    slope, intercept = np.polyfit(I, sigma, 1)
    I_sim = -intercept / slope
    omega_sim = float(np.interp(I_sim, I, omega))
    err_I = abs(I_sim - hopf["I"]) / hopf["I"]
    err_w = abs(omega_sim - hopf["omega"]) / hopf["omega"]
    predicted_shift = (dt / tau) * hopf["omega"] ** 2 / 2 / abs(slope) / hopf["I"]

    fig, (a1, a2) = new_figure(1, 2, figsize=(10, 3.9))
    Is = float(p["I_scale"])
    a1.plot(I * Is * 1e9, sigma, "o", color="C0", label="simulated σ (Prony)")
    xs = np.linspace(I[0], I[-1], 50)
    a1.plot(xs * Is * 1e9, slope * xs + intercept, color="C0", lw=1, label="straight-line fit")
    a1.axhline(0, color="0.6", lw=0.8)
    a1.axvline(hopf["I"] * Is * 1e9, color="C3", ls="--",
               label=f"closed form I_H = {hopf['I'] * Is * 1e9:.3f} nA")
    a1.set_xlabel("injected current I (nA)")
    a1.set_ylabel("growth rate σ τ")
    a1.legend(fontsize=8)
    a1.set_title(f"onset: simulated {I_sim * Is * 1e9:.4f} nA (rel. error {err_I:.1e})")
    k_near = int(np.argmin(np.abs(deltas - 0.01)))
    a2.plot(t / tau, (v[k_near] - x0[k_near] * V) * 1e3, color="C0", lw=0.8,
            label=f"I = I_H (1 {deltas[k_near]:+.0%}): grows")
    k_low = int(np.argmin(np.abs(deltas + 0.01)))
    a2.plot(t / tau, (v[k_low] - x0[k_low] * V) * 1e3, color="C1", lw=0.8,
            label=f"I = I_H (1 {deltas[k_low]:+.0%}): decays")
    a2.set_xlabel("t / τ")
    a2.set_ylabel("v − v_rest (mV)")
    a2.legend(fontsize=8)
    ctx.save_figure(fig, "onset", "Growth rate of small oscillations around rest against the "
                    "injected current (left), and two of the responses (right).")
    yield ctx.at_most("onset current, relative error", err_I, 0.01,
                      note="the issue's 1 %; forward Euler's own shift of the onset at dt = "
                           f"τ/500 is predicted at {predicted_shift:.1e}")
    yield ctx.at_most("frequency at onset, relative error", err_w, 0.01,
                      note="1 %, as the onset current; Euler changes ω by O(h ω²)")


@case("nagumo_limit_cycle", title="Nagumo inductor neuron: limit cycle against scipy",
      group=GROUP)
def nagumo_limit_cycle(ctx):
    """The same neuron driven at I = 0.5 G V (above onset) from rest fires repetitively. Its
    limit cycle, simulated in Brian2 with forward Euler (dt = τ/1000; τ/400 in the quick
    run), is compared with a scipy integration of the same two equations (DOP853,
    rtol = atol = 1e-12 in SI units): the period (mean spacing of upward crossings of
    mid-range) and the peak-to-peak voltage amplitude over the cycles after a transient of
    60 τ. Forward Euler's error in the period is first order in dt; the figure shows the
    cycle in the phase plane (v, i) with both nullclines."""
    p = fitzhugh_parameters(**FHN)
    tau = float(p["tau"])
    I_fhn = 0.5
    dt = tau / (400 if ctx.quick else 1000)
    duration = (200 if ctx.quick else 300) * tau
    skip = 60 * tau
    x_rest = fitzhugh_rest(0.0, FHN["a"], FHN["b"])
    w_rest = (x_rest + FHN["a"]) / FHN["b"]
    net = nagumo_network(1, dt * second, **FHN)
    t, v, i = _run(net, np.array([I_fhn]), np.array([x_rest]), np.array([w_rest]), duration, p)
    sim = limit_cycle_features(t, v[0], skip)
    V, Is, L = float(p["V_cubic"]), float(p["I_scale"]), float(p["L_rec"])
    sol = scipy.integrate.solve_ivp(_fitzhugh_ode(p, I_fhn * Is), (0.0, duration),
                                    [x_rest * V, w_rest * Is * L], method="DOP853",
                                    rtol=1e-12, atol=1e-12, dense_output=True)
    ts = np.linspace(0.0, duration, int(round(duration / (tau / 200))) + 1)
    ys = sol.sol(ts)
    ref = limit_cycle_features(ts, ys[0], skip)
    err_T = abs(sim["period"] - ref["period"]) / ref["period"]
    err_A = abs(sim["amplitude"] - ref["amplitude"]) / ref["amplitude"]

    fig, (a1, a2) = new_figure(1, 2, figsize=(10.4, 4.0))
    vv = np.linspace(-2.3 * V, 2.3 * V, 300)
    G, R, E = float(p["G_cubic"]), float(p["R_rec"]), float(p["E_rec"])
    a1.plot(vv * 1e3, (G * (vv - vv**3 / (3 * V**2)) + I_fhn * Is) * 1e9, color="0.6", lw=1,
            label="dv/dt = 0")
    a1.plot(vv * 1e3, (vv - E) / R * 1e9, color="0.6", lw=1, ls="--", label="di/dt = 0")
    late = t >= skip
    a1.plot(ys[0][ts >= skip] * 1e3, ys[1][ts >= skip] / L * 1e9, color="C3", lw=2.5, alpha=0.5,
            label="scipy (DOP853)")
    a1.plot(v[0][late] * 1e3, i[0][late] * 1e9, color="C0", lw=0.8, label="Brian2 (Euler)")
    a1.set_xlabel("v (mV)")
    a1.set_ylabel("branch current i = φ/L (nA)")
    a1.set_ylim(-1.5 * Is * 1e9, 2.5 * Is * 1e9)
    a1.legend(fontsize=8)
    a1.set_title("limit cycle in the phase plane")
    a2.plot(ts / tau, ys[0] * 1e3, color="C3", lw=2.5, alpha=0.5, label="scipy")
    a2.plot(t / tau, v[0] * 1e3, color="C0", lw=0.8, label="Brian2")
    a2.set_xlabel("t / τ")
    a2.set_ylabel("v (mV)")
    a2.set_title(f"period {sim['period'] / tau:.3f} τ (scipy {ref['period'] / tau:.3f} τ)")
    a2.legend(fontsize=8)
    ctx.save_figure(fig, "phase_plane", "Limit cycle of the Nagumo neuron at I = 0.5 G V: "
                    "phase plane with nullclines (left) and voltage trace (right).")
    h_rel = dt / tau
    yield ctx.at_most("period, relative error", err_T, 0.01,
                      note=f"the issue's 1 %; first-order Euler at dt = {h_rel:g} τ")
    yield ctx.at_most("amplitude, relative error", err_A, 0.01,
                      note=f"the issue's 1 %; first-order Euler at dt = {h_rel:g} τ")
