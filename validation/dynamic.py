"""Analytic circuits with inductors and nonlinear capacitors, against their closed forms.

Cases (registered in this order):

* ``rl_branch`` — a series-RL branch energised and de-energised, whole waveform;
* ``series_rlc_step`` — series RLC step responses, underdamped, critically damped and
  overdamped: waveform, frequency and decay rates;
* ``lossless_lc`` — an LC oscillator under both integration schemes of
  :meth:`Circuit.build` (``scheme="euler"`` and ``"symplectic"``): frequency and energy;
* ``nonlinear_capacitor_charge`` — two nonlinear capacitors exchanging charge through a
  resistor: charge conservation and the final state;
* ``rlc_convergence_order`` — error of the RLC waveform against dt, both schemes.

Every circuit is built from the package's own elements (`Circuit`, `models.Inductor`,
`models.CapacitorNode`, `models.NonlinearCapacitorNode`, `models.Resistor`) and run as
plain Brian2 objects with the physical dynamics. The package integrates every state
with forward Euler (``scheme="euler"``, the default) or with symplectic Euler (inductor
fluxes step with the already-updated node voltages), so all tolerances below derive from
the leading-order error of these first-order schemes at the chosen dt.

**Leading-order Euler error.** For a linear circuit ``x' = A x + b``, forward Euler gives
``x_n = x∞ + (I + hA)^n (x0 − x∞)`` and ``(I + hA)^n = exp(t A − (t h/2) A² + …)``, so the
global error at ``t = n h`` is ``−(h t / 2) x''(t)`` to leading order: for a node voltage,
``|v_n − v(t_n)| ≈ (h t/2) |v''(t)|`` with ``v''`` from the closed form itself
(`euler_error_envelope`). Each continuous eigenvalue ``λ`` becomes ``log(1 + hλ)/h`` in the
simulation: the frequency and decay-rate shifts quoted below.

The closed forms are public functions with Brian2 units so that they can be reused and
checked on their own.
"""

from __future__ import annotations

import numpy as np
import scipy.integrate
import scipy.optimize
from brian2 import (
    StateMonitor,
    amp,
    check_units,
    farad,
    nF,
    ohm,
    second,
    siemens,
    volt,
)
from brian2.units.allunits import henry, mhenry

import ephys_eqprop as eq

from .analytic import euler_rc_error_bound
from .framework import case, new_figure
from .simulate import fit_loglog_slope, relative_error

__all__ = [
    "discrete_eigenvalues",
    "euler_error_envelope",
    "rl_current",
    "run_transient",
    "series_rlc_step",
    "zero_crossing_frequency",
]

GROUP = "Analytic circuits: inductors and nonlinear capacitors"

#: The LC tank of the RLC and LC cases: C = 1 nF, L = 10 mH, ω0 = 1/√(LC) = 3.162e5 rad/s
#: (f0 = 50.3 kHz), characteristic impedance √(L/C) = 3162 Ω.
TANK = {"C": 1 * nF, "L": 10 * mhenry}
#: Damping ratios ζ = (R/2)√(C/L) of the three series RLC circuits.
DAMPING = {"underdamped": 0.25, "critically damped": 1.0, "overdamped": 2.0}


# ---------------------------------------------------------------------- closed forms
@check_units(t=second, L=henry, R=ohm, V=volt, i0=amp)
def rl_current(t, L, R, V, i0):
    """Current of a series RL branch driven by a constant voltage ``V``.

    ``L di/dt = V − R i`` gives ``i(t) = V/R + (i0 − V/R) exp(−t R/L)``.

    Parameters
    ----------
    t : Quantity, shape (n_t,), second
    L : Quantity, henry
    R : Quantity, ohm
    V : Quantity, volt
        Voltage across the branch.
    i0 : Quantity, amp
        Initial current.

    Returns
    -------
    Quantity, shape (n_t,), amp
    """
    i_inf = V / R
    return i_inf + (i0 - i_inf) * np.exp(-np.asarray(t * R / L))


@check_units(t=second, R=ohm, L=henry, C=farad, V0=volt)
def series_rlc_step(t, R, L, C, V0):
    """Capacitor voltage and current of a series RLC circuit after a voltage step.

    A source steps from 0 to ``V0`` at ``t = 0`` and drives ``R``, ``L`` and ``C`` in
    series, all states starting at zero: ``L i' = V0 − v − R i``, ``C v' = i``. With
    ``α = R/2L`` and ``ω0 = 1/√(LC)``:

    * underdamped (α < ω0), ``ωd = √(ω0² − α²)``:
      ``v = V0 [1 − e^{−αt} (cos ωd t + (α/ωd) sin ωd t)]``,
      ``i = (V0 / (L ωd)) e^{−αt} sin ωd t``;
    * critically damped (α = ω0, to a relative 1e-9): ``v = V0 [1 − (1 + αt) e^{−αt}]``,
      ``i = C V0 α² t e^{−αt}``;
    * overdamped (α > ω0), ``s1,2 = −α ± √(α² − ω0²)``:
      ``v = V0 [1 + (s2 e^{s1 t} − s1 e^{s2 t}) / (s1 − s2)]``,
      ``i = C V0 s1 s2 (e^{s1 t} − e^{s2 t}) / (s1 − s2)``.

    Parameters
    ----------
    t : Quantity, shape (n_t,), second
    R : Quantity, ohm
    L : Quantity, henry
    C : Quantity, farad
    V0 : Quantity, volt

    Returns
    -------
    tuple (v, i)
        ``v`` (Quantity, shape (n_t,), volt) and ``i`` (Quantity, shape (n_t,), amp).
    """
    t = np.asarray(t / second, dtype=float)
    R, L, C, V0 = float(R), float(L), float(C), float(V0)
    a = R / (2 * L)
    w0 = 1 / np.sqrt(L * C)
    if abs(a - w0) <= 1e-9 * w0:
        v = V0 * (1 - (1 + a * t) * np.exp(-a * t))
        i = C * V0 * a ** 2 * t * np.exp(-a * t)
    elif a < w0:
        wd = np.sqrt(w0 ** 2 - a ** 2)
        e = np.exp(-a * t)
        v = V0 * (1 - e * (np.cos(wd * t) + a / wd * np.sin(wd * t)))
        i = V0 / (L * wd) * e * np.sin(wd * t)
    else:
        root = np.sqrt(a ** 2 - w0 ** 2)
        s1, s2 = -a + root, -a - root
        v = V0 * (1 + (s2 * np.exp(s1 * t) - s1 * np.exp(s2 * t)) / (s1 - s2))
        i = C * V0 * s1 * s2 * (np.exp(s1 * t) - np.exp(s2 * t)) / (s1 - s2)
    return v * volt, i * volt / ohm


def euler_error_envelope(t, d2v, h: float) -> np.ndarray:
    """Leading-order global error of forward Euler on a linear circuit: ``(h t/2) |v''(t)|``.

    Parameters
    ----------
    t : array_like, shape (n_t,), seconds
    d2v : array_like, shape (n_t,)
        Second time derivative of the exact waveform (its unit per second²).
    h : float
        Time step (seconds).

    Returns
    -------
    numpy.ndarray, shape (n_t,)
        In the unit of the waveform.
    """
    return 0.5 * h * np.asarray(t) * np.abs(np.asarray(d2v))


def discrete_eigenvalues(u, h: float) -> np.ndarray:
    """The two rates of a sampled second-order linear response (Prony's method).

    Any sampled response ``u_n`` of a linear system with two modes obeys the two-term
    recurrence ``u_{n+1} = a u_n + b u_{n−1}``, whose characteristic roots ``z`` are the
    per-sample multipliers of the modes. ``a`` and ``b`` are fitted by least squares to
    the whole record, and the rates are ``log(z)/h``: for a damped oscillation
    ``−α ± iω``, for an overdamped response two real rates. For a forward-Euler run the
    recurrence holds exactly, so the fit recovers the simulated rates to rounding.

    Parameters
    ----------
    u : array_like, shape (n,)
        Deviation from the final value, sampled every ``h`` seconds.
    h : float
        Sampling interval (seconds).

    Returns
    -------
    numpy.ndarray of complex, shape (2,)
        Rates in 1/s, ordered by increasing imaginary part, then real part.
    """
    u = np.asarray(u, dtype=float)
    A = np.stack([u[1:-1], u[:-2]], axis=1)
    (a, b), *_ = np.linalg.lstsq(A, u[2:], rcond=None)
    z = np.roots([1.0, -a, -b]).astype(complex)
    lam = np.log(z) / h
    return np.array(sorted(lam, key=lambda c: (round(c.imag, 6), c.real)))


def zero_crossing_frequency(t, u) -> float:
    """Angular frequency of an oscillation from its zero crossings.

    Crossing times are located by linear interpolation between samples and fitted by a
    straight line against their count; successive crossings are half a period apart
    (also for an exponentially growing or decaying oscillation).

    Parameters
    ----------
    t : array_like, shape (n,), seconds
    u : array_like, shape (n,)

    Returns
    -------
    float
        ω in rad/s.
    """
    t = np.asarray(t, dtype=float)
    u = np.asarray(u, dtype=float)
    k = np.flatnonzero(np.signbit(u[:-1]) != np.signbit(u[1:]))
    tc = t[k] - u[k] * (t[k + 1] - t[k]) / (u[k + 1] - u[k])
    if tc.size < 3:
        raise ValueError(f"Need at least 3 zero crossings to measure a frequency; got {tc.size}.")
    slope = np.polyfit(np.arange(tc.size), tc, 1)[0]
    return float(np.pi / slope)


# ---------------------------------------------------------------------- running
def run_transient(net, duration, *, x=None, v0: dict | None = None,
                  states0: dict | None = None, every: int = 1, record_states: bool = True):
    """Run the physical dynamics of a freshly built network, recording voltages and states.

    Parameters
    ----------
    net : CircuitNetwork
        A freshly built network (Brian2 ``StateMonitor`` objects are added to it).
    duration : Quantity, second
        A whole number of steps, and of ``every`` steps.
    x : Quantity, shape (batch, n_in), volt, optional
        Source voltages, held during the run (circuits without data inputs: ``None``).
    v0 : dict of str to array, volt, optional
        Initial node voltages by group (flat, ``batch * n``); default zero.
    states0 : dict of (str, str) to array, optional
        Initial branch states by (connection, state name), flat over
        ``batch * n_syn`` in SI units (an inductor's flux in weber); default zero.
    every : int
        Record every ``every``-th step.
    record_states : bool
        Record the branch states too (else ``states`` is empty).

    Returns
    -------
    t : numpy.ndarray, shape (n_t,), seconds
        ``0, every·dt, ..., duration`` (the final state is appended).
    v : dict of str to numpy.ndarray, shape (n_t, batch, n), volt
        Node voltages by group.
    states : dict of (str, str) to numpy.ndarray, shape (n_t, batch, n_syn)
        Branch states by (connection, state name), SI units.
    """
    dt = float(net.dt)
    n_steps = int(round(float(duration) / dt))
    if n_steps % every:
        raise ValueError(f"duration ({n_steps} steps) must be a multiple of every={every}.")
    net.set_relax(False)
    if x is not None:
        net.set_inputs(x)
    net.set_state(v0)
    rec_dt = every * net.dt
    monitors = {}
    for g in net.circuit.nodes:
        monitors[g] = StateMonitor(net.groups[g], "v", record=True, dt=rec_dt)
    for name, conn in net.circuit.connections.items():
        for st in conn.element.states:
            var = net.synapses[name].variables[st.name]
            init = np.zeros(var.size) if not states0 else states0.get((name, st.name), 0.0)
            var.set_value(np.broadcast_to(np.asarray(init, dtype=float), (var.size,)).copy())
            if record_states:
                monitors[(name, st.name)] = StateMonitor(net.synapses[name], st.name,
                                                         record=True, dt=rec_dt)
    net.network.add(*monitors.values())
    net.run(n_steps * dt * second)
    B = net.batch
    t = np.arange(n_steps // every + 1) * every * dt
    v, states = {}, {}
    for key, mon in monitors.items():
        if isinstance(key, tuple):
            rec = np.asarray(getattr(mon, key[1] + "_")).T
            final = np.asarray(net.synapses[key[0]].variables[key[1]].get_value())
            states[key] = np.vstack([rec, final[None]]).reshape(len(t), B, -1)
        else:
            rec = np.asarray(mon.v_).T
            final = np.asarray(net.groups[key].variables["v"].get_value())
            v[key] = np.vstack([rec, final[None]]).reshape(len(t), B, -1)
    return t, v, states


def _tank():
    C, L = float(TANK["C"]), float(TANK["L"])
    return C, L, 1 / np.sqrt(L * C)


def _resistance(zeta: float) -> float:
    C, L, _ = _tank()
    return 2 * zeta * np.sqrt(L / C)


def _rlc_network(R: float, dt: float, scheme: str = "euler"):
    """Source ``x`` → ``Inductor(R)`` → capacitor node ``n`` (no leak): a series RLC."""
    C, L, _ = _tank()
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("n", 1, eq.models.CapacitorNode(C=C * farad, g_leak=0 * siemens))
    c.connect("x", "n", eq.models.Inductor(R=R * ohm), values=np.full((1, 1), L) * henry)
    return c.build(dt=dt * second, scheme=scheme)


def _rlc_d2v(v, dv, R, V0):
    """v'' of the series RLC from the circuit equation ``LC v'' = V0 − v − RC v'``."""
    C, L, _ = _tank()
    return (V0 - v - R * C * dv) / (L * C)


def _rlc_run(zeta: float, steps_per_period: int, periods: float, scheme: str = "euler",
             every: int = 1):
    """Simulate the step response; return t, v_sim, v_exact, dv_exact, h."""
    C, L, w0 = _tank()
    R = _resistance(zeta)
    h = 2 * np.pi / w0 / steps_per_period
    n = int(round(periods * steps_per_period / every)) * every
    net = _rlc_network(R, h, scheme)
    t, v, _ = run_transient(net, n * h * second, x=np.array([[1.0]]) * volt, every=every)
    v_ex, i_ex = series_rlc_step(t * second, R * ohm, L * henry, C * farad, 1 * volt)
    return t, v["n"][:, 0, 0], np.asarray(v_ex), np.asarray(i_ex) / C, h, R


# ---------------------------------------------------------------------- RL
@case("rl_branch", title="RL branch: energising and de-energising", group=GROUP)
def rl_branch(ctx):
    """An `Inductor(R=1 kΩ)` branch with L = 10 mH (τ = L/R = 10 µs) from each of a doubled
    input pair (sources +x and −x) into one capacitor node (1 nF, no leak). The two
    branches are mirror images, so their currents cancel at the node at every step and the
    node stays at exactly 0 V: a virtual ground by symmetry. Each branch is then an exact
    series RL driven by ±x, whatever the node capacitance, with the closed form
    i(t) = x/R + (i0 − x/R) e^{−t/τ} (`rl_current`). Two batch copies: energising from
    i0 = 0 with x = 1 V, and de-energising from i0 = 1 mA (the initial flux L·i0) with
    x = 0 V. Forward Euler, dt = τ/2500, for 6τ; the branch current is the recorded flux
    divided by L.

    Error measure: max over the waveform of |i_sim − i_exact| / max |i_exact|. Tolerance:
    the leading-order forward Euler error h/(2eτ) of a first-order decay (the same
    derivation as the RC case, `euler_rc_error_bound`), + 5 %, capped at the target 1e-4.
    The virtual ground is checked on its own: the two branch fluxes are exact negatives in
    floating point (IEEE negation is exact and both branches perform the same operations),
    so the node voltage must stay 0 to rounding.
    """
    L, R = 10e-3, 1e3
    tau = L / R
    dt = tau / 2500
    c = eq.Circuit()
    c.add_input("x", 1, doubled=True)
    c.add_nodes("n", 1, eq.models.CapacitorNode(C=1 * nF, g_leak=0 * siemens))
    c.connect("x", "n", eq.models.Inductor(R=R * ohm), values=np.full((2, 1), L) * henry)
    net = c.build(batch=2, dt=dt * second)
    x = np.array([[1.0], [0.0]])
    i0 = np.array([0.0, 1.0 / R])
    # per batch copy: (branch from +x, branch from −x)
    phi0 = np.concatenate([[L * i0[b], -L * i0[b]] for b in range(2)])
    t, v, st = run_transient(net, 6 * tau * second, x=x * volt, states0={("x->n", "phi"): phi0},
                             every=5)
    i_sim = st[("x->n", "phi")][:, :, 0] / L  # branch from +x, (n_t, batch)
    bound = euler_rc_error_bound(dt * second, tau * second)
    tol = min(1.05 * bound, 1e-4)
    note = (f"forward Euler bound h/(2eτ) = {bound:.2e} at dt = τ/2500, + 5 % for "
            "higher-order terms; never above the target 1e-4")
    labels = ("energising", "de-energising")
    exact = np.stack([np.asarray(rl_current(t * second, L * henry, R * ohm, x[b, 0] * volt,
                                            i0[b] * volt / ohm)) for b in range(2)], axis=1)
    results = [ctx.at_most(f"max relative error of the current, {lab}",
                           relative_error(i_sim[:, b], exact[:, b]), tol, note=note)
               for b, lab in enumerate(labels)]
    v_max = float(np.max(np.abs(v["n"])))
    results.append(ctx.at_most("max |v| of the virtual-ground node", v_max, 1e-12, unit="V",
                               note="mirror-image branches cancel exactly in floating point; "
                                    "1e-12 V leaves room for rounding only"))

    fig, (a1, a2) = new_figure(2, 1, sharex=True, figsize=(6.4, 5.6))
    tn = t / tau
    step = max(1, len(t) // 40)
    for b, (lab, color) in enumerate(zip(labels, ("C0", "C1"), strict=True)):
        a1.plot(tn, exact[:, b] * 1e3, color=color, lw=1.5, label=f"closed form, {lab}")
        a1.plot(tn[::step], i_sim[::step, b] * 1e3, "o", ms=3.5, mfc="none", color=color,
                label=f"Brian2, {lab}")
        a2.plot(tn, (i_sim[:, b] - exact[:, b]) / np.max(np.abs(exact[:, b])), color=color,
                label=lab)
    h = dt / tau
    pred = h / 2 * tn * np.exp(-tn)
    a2.plot(tn, pred, "k--", lw=1,
            label=r"Euler, leading order: $\pm\frac{h}{2\tau}\,\frac{t}{\tau}\,e^{-t/\tau}$")
    a2.plot(tn, -pred, "k--", lw=1)
    a1.set_ylabel("branch current i (mA)")
    a1.set_title(f"Series RL branch, L = 10 mH, R = 1 kΩ, τ = 10 µs, dt = τ/{round(1 / h)}")
    a1.legend(fontsize=8, ncol=2)
    a2.set_xlabel("time t / τ (τ = 10 µs)")
    a2.set_ylabel("(i_sim − i_exact) / max|i_exact|")
    a2.legend(fontsize=8)
    ctx.save_figure(fig, "waveforms", "Series RL branch (virtual-ground node): Brian2 "
                    "against the closed form, and the error against the leading-order Euler "
                    "error.")
    return results


# ---------------------------------------------------------------------- series RLC
#: Steps per period 2π/ω0 and run length (periods) of each RLC circuit: dt is chosen so
#: that the leading-order Euler error of the waveform, h·max_t|t v''(t)/2| / max|v|, is
#: about 0.9e-4 (error constants 0.508, 0.155 and 0.053 per unit of h·ω0).
RLC_STEPS = {"underdamped": (36000, 2.5), "critically damped": (12000, 2.0),
             "overdamped": (4000, 5.0)}


def _rates_text(lam: np.ndarray) -> str:
    return ", ".join(f"{z.real:.6g}{z.imag:+.6g}j" for z in lam)


@case("series_rlc_step", title="Series RLC step responses", group=GROUP)
def series_rlc_step_case(ctx):
    """A 1 V step source drives `Inductor(R)` (L = 10 mH) into a 1 nF `CapacitorNode` with
    no leak: a series RLC (ω0 = 1/√(LC) = 3.162e5 rad/s), with R = 2ζ√(L/C) for ζ = 0.25
    (underdamped), 1 (critically damped) and 2 (overdamped), each its own network with its
    own dt (forward Euler, `scheme="euler"`). The capacitor voltage is compared at every
    recorded step with the closed form of `series_rlc_step`.

    Waveform tolerance: the leading-order Euler error h·max_t |t v''(t)|/2 relative to
    max|v| (`euler_error_envelope`, v'' from the closed form), + 5 %, capped at the target
    1e-4; dt is chosen so that this bound is about 0.9e-4.

    Frequency and decay rates are extracted from the simulated waveform by Prony's method
    (`discrete_eigenvalues`: a least-squares fit of the two-term recurrence that every
    sampled second-order response obeys) and compared with ωd = √(1/LC − (R/2L)²),
    α = R/2L and, overdamped, s1,2 = −α ± √(α² − 1/LC). Forward Euler moves each
    eigenvalue λ to log(1 + hλ)/h; the tolerance on each relative error is that predicted
    shift + 20 %. A second figure per circuit compares the extracted eigenvalues with
    log(1 + hλ)/h itself (tolerance 1e-6 of |λ|: only the fit's rounding remains), which
    shows that Brian2 runs exactly the forward-Euler scheme.
    """
    C, L, w0 = _tank()
    results, runs = [], {}
    for label, zeta in DAMPING.items():
        spp, periods = RLC_STEPS[label]
        t, v, v_ex, dv_ex, h, R = _rlc_run(zeta, spp, periods, every=10)
        d2v = _rlc_d2v(v_ex, dv_ex, R, 1.0)
        env = euler_error_envelope(t, d2v, h)
        pred = float(np.max(env) / np.max(np.abs(v_ex)))
        err = relative_error(v, v_ex)
        runs[label] = (t, v, v_ex, -0.5 * h * t * d2v, h, zeta)  # signed: −(h t/2) v''
        results.append(ctx.at_most(
            f"{label} (ζ = {zeta:g}): max relative error over the waveform", err,
            min(1.05 * pred, 1e-4),
            note=f"leading-order Euler error {pred:.2e} at dt = T0/{spp} (h·ω0 = "
                 f"{h * w0:.2e}), + 5 %, capped at 1e-4"))
        # rates: continuous closed form, Euler's discrete image, and the simulation
        a = R / (2 * L)
        lam = np.array(np.roots([1.0, 2 * a, w0 ** 2]), dtype=complex)
        lam = np.array(sorted(lam, key=lambda z: (round(z.imag, 6), z.real)))
        lam_euler = np.log(1 + h * lam) / h
        sim = discrete_eigenvalues(v - 1.0, t[1] - t[0])
        if label == "critically damped":
            # a double root: rounding in the fit splits it by ~sqrt(eps); its mean is sharp
            fit_err = float(abs(np.mean(sim) - np.mean(lam_euler)) / np.max(np.abs(lam)))
        else:
            fit_err = float(np.max(np.abs(sim - lam_euler)) / np.max(np.abs(lam)))
        if label == "underdamped":
            pairs = [("frequency ωd", sim[1].imag, lam[1].imag, lam_euler[1].imag),
                     ("decay rate α", -sim[1].real, a, -lam_euler[1].real)]
        elif label == "critically damped":
            pairs = [("decay rate α", -np.mean(sim.real), a, -np.mean(lam_euler.real))]
        else:
            pairs = [("slow rate −s1", -sim.real.max(), -lam.real.max(),
                      -lam_euler.real.max()),
                     ("fast rate −s2", -sim.real.min(), -lam.real.min(),
                      -lam_euler.real.min())]
        for name, got, want, disc in pairs:
            unit = "rad/s" if name.startswith("frequency") else "1/s"
            shift = abs(disc - want) / abs(want)
            results.append(ctx.at_most(
                f"{label}: {name}, relative error vs closed form",
                abs(got - want) / abs(want), 1.2 * shift + 1e-9,
                note=f"simulated {got:.7g} {unit}, closed form {want:.7g} {unit}; Euler moves λ to "
                     f"log(1 + hλ)/h: predicted relative shift {shift:.2e}, + 20 %"))
        results.append(ctx.at_most(
            f"{label}: extracted eigenvalues vs Euler's log(1 + hλ)/h, / |λ|", fit_err, 1e-6,
            note=f"forward Euler is a linear recurrence: the Prony fit recovers its "
                 f"eigenvalues (here {_rates_text(sim)} 1/s) up to rounding"
                 + ("; for the double root, their mean (rounding splits the pair by "
                    "~√eps)" if label == "critically damped" else "")))

    fig, axes = new_figure(2, 1, sharex=True, figsize=(6.8, 6.2))
    a1, a2 = axes
    for k, (label, (t, v, v_ex, lead, _h, zeta)) in enumerate(runs.items()):
        color = f"C{k}"
        tn = t * w0
        sel = tn <= 15.7
        step = max(1, int(np.count_nonzero(sel)) // 45)
        a1.plot(tn[sel], v_ex[sel], color=color, lw=1.5, label=f"closed form, ζ = {zeta:g}")
        a1.plot(tn[sel][::step], v[sel][::step], "o", ms=3, mfc="none", color=color,
                label=f"Brian2, {label}")
        scale = np.max(np.abs(v_ex))
        a2.plot(tn[sel], (v[sel] - v_ex[sel]) / scale, color=color, lw=1.2, label=label)
        a2.plot(tn[sel], lead[sel] / scale, "--", color="k", lw=0.8)
    a2.plot([], [], "k--", lw=0.9, label="−(h t/2) v''(t): Euler, leading order")
    a1.axhline(1.0, color="0.6", ls=":", lw=1)
    a1.set_ylabel("capacitor voltage v (V)")
    a1.set_title("Series RLC, 1 V step: L = 10 mH, C = 1 nF, R = 2ζ√(L/C)")
    a1.legend(fontsize=7, ncol=2)
    a2.set_xlabel("ω0 t (ω0 = 1/√(LC) = 3.16e5 rad/s)")
    a2.set_ylabel("(v_sim − v_exact) / max|v_exact|")
    a2.legend(fontsize=7)
    a2.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ctx.save_figure(fig, "waveforms", "Series RLC step responses (underdamped, critically "
                    "damped, overdamped): Brian2 against the closed forms, and the error "
                    "against the leading-order Euler error (dashed).")
    return results


# ---------------------------------------------------------------------- lossless LC
#: Steps per period and periods of the lossless LC case: h·ω0 = 2π/1250 = 5.0e-3.
LC_STEPS, LC_PERIODS = 1250, 8


def _lc_run(scheme: str, steps_per_period: int = LC_STEPS, periods: int = LC_PERIODS):
    """An LC tank started at v0 = 1 V, zero flux; returns t, v, phi, h."""
    C, L, w0 = _tank()
    h = 2 * np.pi / w0 / steps_per_period
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("n", 1, eq.models.CapacitorNode(C=C * farad, g_leak=0 * siemens))
    c.connect("x", "n", eq.models.Inductor(), values=np.full((1, 1), L) * henry)
    net = c.build(dt=h * second, scheme=scheme)
    t, v, st = run_transient(net, steps_per_period * periods * h * second,
                             x=np.array([[0.0]]) * volt, v0={"n": np.array([1.0])})
    return t, v["n"][:, 0, 0], st[("x->n", "phi")][:, 0, 0], h


@case("lossless_lc", title="Lossless LC: frequency and energy under both schemes", group=GROUP)
def lossless_lc(ctx):
    """An ideal `Inductor` (L = 10 mH, no series resistance) from a 0 V source into a 1 nF
    `CapacitorNode` with no leak, started at v0 = 1 V with zero flux: v(t) = cos(ω0 t),
    ω0 = 1/√(LC) = 3.162e5 rad/s, energy E = ½Cv² + ½φ²/L constant. Simulated for 8
    periods at h·ω0 = 2π/1250 = 5.0e-3 with both schemes of `Circuit.build`.

    Frequency: from the zero crossings of v (`zero_crossing_frequency`), against ω0. The
    schemes' own frequency errors are second order: forward Euler turns by atan(hω0) per
    step (relative error −(hω0)²/3 = −8.4e-6), symplectic Euler by 2 arcsin(hω0/2)
    (+(hω0)²/24 = 1.05e-6); tolerance: that predicted error + 20 %.

    Energy, `scheme="euler"`: the Euler step multiplies the energy by exactly
    1 + (ω0 h)² (in the coordinates (√C v, φ/√L) it is a rotation times √(1 + (ω0 h)²)),
    so E_n/E_0 = (1 + (ω0 h)²)^n: checked at every step to 1e-10 (rounding over 10 000
    steps), and the growth over the run is reported. `scheme="symplectic"`: the energy
    oscillates within ±ω0 h/2 (the scheme conserves exactly the tilted quadratic form
    E + (h/2L) v φ instead, checked to 1e-10); the drift — the change of the mean energy
    from the first period to the last — must vanish to rounding (1e-9).
    """
    C, L, w0 = _tank()
    results, runs = [], {}
    for scheme in ("euler", "symplectic"):
        t, v, phi, h = _lc_run(scheme)
        runs[scheme] = (t, v, phi, h)
        x = w0 * h
        w_pred = (np.arctan(x) if scheme == "euler" else 2 * np.arcsin(x / 2)) / h
        shift = abs(w_pred - w0) / w0
        w_sim = zero_crossing_frequency(t, v)
        results.append(ctx.at_most(
            f"{scheme}: frequency, relative error vs 1/√(LC)", abs(w_sim - w0) / w0,
            1.2 * shift,
            note=f"simulated {w_sim:.8g} rad/s, 1/√(LC) = {w0:.8g} rad/s; the scheme's own "
                 f"frequency error at hω0 = {x:.2e} is {shift:.2e}, + 20 %"))
        E = 0.5 * C * v ** 2 + 0.5 * phi ** 2 / L
        E0 = E[0]
        n = np.arange(len(t))
        if scheme == "euler":
            law = (1 + x ** 2) ** n
            dev = float(np.max(np.abs(E / E0 / law - 1)))
            results.append(ctx.at_most(
                "euler: max |E_n / (E_0 (1 + (ω0 h)²)^n) − 1|", dev, 1e-10,
                note="the Euler step multiplies E by exactly 1 + (ω0 h)²; only rounding "
                     f"remains (~1e-16 per step over {len(t) - 1} steps)"))
            results.append(ctx.within(
                f"euler: energy growth E_N/E_0 over {LC_PERIODS} periods", E[-1] / E0,
                law[-1] * (1 - 1e-9), law[-1] * (1 + 1e-9),
                note=f"(1 + (ω0 h)²)^N = {law[-1]:.6f} for N = {n[-1]} steps: Euler is not "
                     "energy-conserving, it gains (ω0 h)² per step; ± 1e-9 for rounding"))
        else:
            band = float(np.max(np.abs(E / E0 - 1)))
            results.append(ctx.at_most(
                "symplectic: max |E_n/E_0 − 1| (bounded oscillation)", band, 1.02 * x / 2,
                note=f"symplectic Euler keeps E within ±ω0 h/2 = {x / 2:.2e} of E_0 "
                     "(its conserved form differs from E by (h/2L) v φ), + 2 %"))
            Ht = E + h / (2 * L) * v * phi
            results.append(ctx.at_most(
                "symplectic: max |H̃_n/H̃_0 − 1|, H̃ = E + (h/2L) v φ",
                float(np.max(np.abs(Ht / Ht[0] - 1))), 1e-10,
                note="the scheme conserves H̃ exactly; only rounding remains"))
            k = LC_STEPS
            drift = abs(float(np.mean(E[-k - 1:-1]) - np.mean(E[:k]))) / E0
            results.append(ctx.at_most(
                "symplectic: energy drift, mean over the last period − first, / E_0", drift,
                1e-9, note=f"no secular drift: both means equal E_0 up to O((ω0 h)²) terms "
                           f"that are the same every period; 1e-9 for rounding over "
                           f"{len(t) - 1} steps"))

    fig, (a1, a2) = new_figure(2, 1, sharex=True, figsize=(6.8, 6.0))
    T0 = 2 * np.pi / w0
    for k, (scheme, (t, v, phi, _h)) in enumerate(runs.items()):
        E = 0.5 * C * v ** 2 + 0.5 * phi ** 2 / L
        a1.plot(t / T0, v, color=f"C{k}", lw=1.2, label=f"Brian2, scheme={scheme!r}")
        a2.plot(t / T0, E / E[0] - 1, color=f"C{k}", lw=1.2,
                label=f"E/E₀ − 1, scheme={scheme!r}")
    t, v, phi, h = runs["euler"]
    a1.plot(t / T0, np.cos(w0 * t), "k--", lw=0.8, label="closed form cos(ω0 t)")
    x = w0 * h
    a2.plot(t / T0, (1 + x ** 2) ** np.arange(len(t)) - 1, "k--", lw=0.8,
            label="(1 + (ω0 h)²)ⁿ − 1")
    a2.axhline(x / 2, color="C1", ls=":", lw=0.8, label="±ω0 h/2")
    a2.axhline(-x / 2, color="C1", ls=":", lw=0.8)
    a1.set_ylabel("capacitor voltage v (V)")
    a1.set_title(f"Lossless LC, L = 10 mH, C = 1 nF, h·ω0 = {x:.1e}")
    a1.set_ylim(-1.3, 1.75)
    a1.legend(fontsize=7, loc="upper center", ncol=3)
    a2.set_xlabel("time t / T0 (T0 = 2π√(LC) = 19.9 µs)")
    a2.set_ylabel("relative energy change E/E₀ − 1")
    a2.set_yscale("symlog", linthresh=1e-3)
    a2.set_ylim(-0.2, 0.6)
    a2.legend(fontsize=7, loc="lower center", ncol=2)
    ctx.save_figure(fig, "energy", "Lossless LC oscillator: waveforms and energy drift under "
                    "forward Euler (grows by (1 + (ω0 h)²) per step) and symplectic Euler "
                    "(bounded within ±ω0 h/2).")
    return results


# ---------------------------------------------------------------------- nonlinear capacitors
#: The two nonlinear capacitors: Q(v) = C0 v + C1 V_s tanh(v/V_s).
NONLINEAR_CAPS = ({"C0": 0.5 * nF, "C1": 0.5 * nF, "V_s": 0.2 * volt},
                  {"C0": 0.3 * nF, "C1": 1.2 * nF, "V_s": 0.5 * volt})
#: Their leaks: the nodes' only path to ground (Circuit.check_ground needs one).
TINY_LEAK = 1e-15 * siemens


def _charge_circuit(dt: float):
    c = eq.Circuit()
    for name, params in zip(("a", "b"), NONLINEAR_CAPS, strict=True):
        c.add_nodes(name, 1, eq.models.NonlinearCapacitorNode(g_leak=TINY_LEAK, **params))
    c.connect("a", "b", eq.models.Resistor(), g=np.full((1, 1), 1e-6) * siemens)
    return c, c.build(dt=dt * second)


@case("nonlinear_capacitor_charge", title="Nonlinear capacitors: charge conservation",
      group=GROUP)
def nonlinear_capacitor_charge(ctx):
    """Two `NonlinearCapacitorNode` nodes with Q(v) = C0 v + C1 V_s tanh(v/V_s)
    (a: C0 = C1 = 0.5 nF, V_s = 0.2 V; b: C0 = 0.3 nF, C1 = 1.2 nF, V_s = 0.5 V) joined by a
    1 µS `Resistor`, no sources, starting at v_a = 1 V, v_b = 0 V. Every node needs a path
    to ground (`Circuit.check_ground`), so each has a 1 fS leak (a 1 PΩ resistor); the
    charge it removes is integrated from the recorded voltages and added back (it is below
    1e-8 of the charge moved). The total charge Q_a(v_a) + Q_b(v_b) must stay constant, and
    the final common voltage v* must solve Q_a(v*) + Q_b(v*) = Q_total (brentq).

    The nodes integrate dv/dt = I/Q'(v) with forward Euler (dt = 0.2 µs, about τ/1900, in
    quick mode, 0.1 µs in the full run; for 8 ms ≈ 20τ), which conserves charge only to
    first order: each step changes the charge by ½Q''(v)(Δv)² more than the current
    delivers, a drift of (h/2)∫ Σ Q''(v) v'² dt over the run. That predicted drift, evaluated on a
    high-accuracy reference solution (scipy DOP853, rtol 1e-12) of the same equations, sets
    the tolerances: max |Q_total(t) − Q_total(0)| within 1.1× the predicted maximum (in
    units of the charge moved through the resistor), the measured end drift within ±5 % of
    the prediction, the order of the drift (run again at 2 dt) 1 ± 0.05, and |v_end − v*|
    within 1.1× the voltage the predicted drift implies.
    """
    funcs = []
    for params in NONLINEAR_CAPS:
        m = eq.models.NonlinearCapacitorNode(**params)
        Q, dQ = m.charge_numeric()
        C1, Vs = float(params["C1"]), float(params["V_s"])

        def d2Q(v, C1=C1, Vs=Vs):
            return -2 * C1 / Vs * np.tanh(v / Vs) / np.cosh(v / Vs) ** 2

        funcs.append((Q, dQ, d2Q))
    g, g_leak = 1e-6, float(TINY_LEAK)
    v0 = np.array([1.0, 0.0])
    Q_tot = sum(float(f[0](v)) for f, v in zip(funcs, v0, strict=True))
    v_star = scipy.optimize.brentq(lambda v: float(funcs[0][0](v) + funcs[1][0](v)) - Q_tot,
                                   -2, 2, xtol=1e-15)
    moved = float(funcs[0][0](v0[0]) - funcs[0][0](v_star))
    T = 8e-3

    def rhs(t, y):
        i_ab = g * (y[0] - y[1])
        return [(-i_ab - g_leak * y[0]) / funcs[0][1](y[0]),
                (i_ab - g_leak * y[1]) / funcs[1][1](y[1])]

    def run(dt, every):
        c, net = _charge_circuit(dt)
        t, v, _ = run_transient(net, T * second, v0={"a": v0[:1], "b": v0[1:]}, every=every)
        va, vb = v["a"][:, 0, 0], v["b"][:, 0, 0]
        # leak charge, left Riemann sum per step (the recorded grid is every 10th step)
        q_leak = g_leak * np.concatenate([[0.0], np.cumsum((va[:-1] + vb[:-1]) * (t[1] - t[0]))])
        q = funcs[0][0](va) + funcs[1][0](vb) + q_leak
        return t, va, vb, q - Q_tot

    dt = 0.2e-6 if ctx.quick else 0.1e-6
    every = 10 if ctx.quick else 20
    t, va, vb, dq = run(dt, every)
    _, _, _, dq2 = run(2 * dt, every // 2)
    ref = scipy.integrate.solve_ivp(rhs, (0, T), v0, method="DOP853", t_eval=t, rtol=1e-12,
                                    atol=1e-15, dense_output=True)
    # predicted leading-order drift (h/2) ∫ Σ Q''(v) v'² dt on a fine grid of the reference
    tf = np.linspace(0, T, 200_001)
    yf = ref.sol(tf)
    dy = np.array(rhs(0, yf))
    integrand = sum(funcs[k][2](yf[k]) * dy[k] ** 2 for k in range(2))
    D = 0.5 * dt * scipy.integrate.cumulative_trapezoid(integrand, tf, initial=0)
    D_on_grid = np.interp(t, tf, D)
    max_pred = float(np.max(np.abs(D_on_grid))) / moved
    max_meas = float(np.max(np.abs(dq))) / moved
    ratio = float(dq[-1] / D[-1])
    order = float(np.log2(dq2[-1] / dq[-1]))
    Csum = float(funcs[0][1](v_star) + funcs[1][1](v_star))
    dv_pred = abs(float(D[-1])) / Csum
    v_end = 0.5 * (va[-1] + vb[-1])
    results = [
        ctx.at_most("max |Q_total(t) − Q_total(0)| / charge moved", max_meas, 1.1 * max_pred,
                    note=f"forward Euler on dv/dt = I/Q'(v): predicted drift "
                         f"(h/2)∫ΣQ''v'²dt peaks at {max_pred:.2e} of the {moved * 1e9:.4f} nC "
                         "moved, + 10 %"),
        ctx.within("end drift / predicted leading-order drift", ratio, 0.95, 1.05,
                   note="the drift is Euler's leading-order term and nothing else; ± 5 % for "
                        "the O(h) relative correction and the reference's quadrature"),
        ctx.within("order of the charge drift (log2 of drift(2h)/drift(h))", order, 0.95, 1.05,
                   note="first-order scheme: the drift halves with dt; ± 0.05 for O(h²) terms"),
        ctx.at_most("|v_end − v*| / |v*|, v* solving Q_a(v*) + Q_b(v*) = Q_total",
                    abs(v_end - v_star) / abs(v_star), 1.1 * dv_pred / abs(v_star) + 1e-9,
                    note=f"v* = {v_star:.9f} V; the predicted end drift "
                         f"{abs(float(D[-1])):.2e} C over Q_a' + Q_b' = {Csum * 1e9:.3f} nF "
                         f"shifts v_end by {dv_pred:.2e} V, + 10 %; the nodes differ by "
                         f"{abs(va[-1] - vb[-1]):.1e} V at the end"),
    ]

    fig, (a1, a2) = new_figure(2, 1, sharex=True, figsize=(6.8, 6.0))
    tm = t * 1e3
    step = max(1, len(t) // 50)
    for k, (name, vv) in enumerate((("a", va), ("b", vb))):
        a1.plot(tm, ref.y[k], color=f"C{k}", lw=1.5, label=f"reference (DOP853), node {name}")
        a1.plot(tm[::step], vv[::step], "o", ms=3, mfc="none", color=f"C{k}",
                label=f"Brian2, node {name}")
    a1.axhline(v_star, color="0.5", ls=":", lw=1, label=f"v* from Q_a + Q_b = Q_total "
                                                         f"({v_star:.4f} V)")
    a1.set_ylabel("node voltage (V)")
    a1.set_title("Two nonlinear capacitors exchanging charge through 1 µS")
    a1.legend(fontsize=7)
    a2.plot(tm, dq / moved, color="C2", lw=1.5, label=f"Brian2, dt = {dt * 1e6:g} µs")
    a2.plot(tm, D_on_grid / moved, "k--", lw=1, label="predicted (h/2)∫ΣQ''(v)v'²dt")
    a2.plot(tm, dq2 / moved, color="C3", lw=1.2, label=f"Brian2, dt = {2 * dt * 1e6:g} µs")
    a2.set_xlabel("time (ms)")
    a2.set_ylabel("(Q_total(t) − Q_total(0)) / charge moved")
    a2.legend(fontsize=7)
    a2.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ctx.save_figure(fig, "charge", "Nonlinear capacitors: node voltages against a "
                    "high-accuracy reference, and the total charge drift against the "
                    "leading-order forward Euler prediction.")
    return results


# ---------------------------------------------------------------------- convergence order
@case("rlc_convergence_order", title="Convergence order of the RLC integration", group=GROUP)
def rlc_convergence_order(ctx):
    """The underdamped series RLC of `series_rlc_step` (ζ = 0.25) over 2 periods at several
    dt, with both schemes of `Circuit.build` (`"euler"`: every state from the start of the
    step; `"symplectic"`: the inductor flux steps with the updated node voltage). Error: max
    relative error of the capacitor voltage over the waveform against the closed form. The
    order is the slope of a least-squares fit of log(error) against log(dt).

    Both schemes are first order on a damped circuit. Predicted for forward Euler: the
    leading-order error h·max_t |t v''(t)|/2 / max|v| (0.508 h·ω0). Tolerance on each slope:
    1 ± 0.05 (over h·ω0 = 0.0025 … 0.02 the next term is below 2 % of the first).
    """
    C, L, w0 = _tank()
    spps = [314, 628, 1257, 2513] if ctx.quick else [314, 628, 1257, 2513, 5027, 10053]
    zeta = DAMPING["underdamped"]
    errors = {"euler": [], "symplectic": []}
    hs = []
    pred = []
    for spp in spps:
        for scheme in errors:
            t, v, v_ex, dv_ex, h, R = _rlc_run(zeta, spp, 2, scheme=scheme)
            errors[scheme].append(relative_error(v, v_ex))
        hs.append(h * w0)
        env = euler_error_envelope(t, _rlc_d2v(v_ex, dv_ex, R, 1.0), h)
        pred.append(float(np.max(env) / np.max(np.abs(v_ex))))
    hs = np.array(hs)
    results = []
    fig, ax = new_figure(figsize=(6.4, 4.6))
    for k, (scheme, errs) in enumerate(errors.items()):
        p, c = fit_loglog_slope(hs, errs)
        results.append(ctx.within(f"order (log-log slope), scheme={scheme!r}", p, 0.95, 1.05,
                                  note="first-order schemes; ± 0.05 for O(h²) terms"))
        ax.loglog(hs, errs, "os"[k], color=f"C{k}", ms=6, mfc="none",
                  label=f"scheme={scheme!r}: fitted slope {p:.3f}")
    ax.loglog(hs, pred, "-", color="C0", lw=1.2,
              label="forward Euler, leading order: h·max|t v''/2| / max|v|")
    ax.set_xlabel("time step h·ω0 (ω0 = 1/√(LC) = 3.16e5 rad/s)")
    ax.set_ylabel("max relative error over the waveform")
    ax.set_title("Underdamped series RLC (ζ = 0.25): error against time step")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ctx.save_figure(fig, "order", "Error of the underdamped RLC waveform against dt for both "
                    "integration schemes, with fitted slopes and the predicted forward-Euler "
                    "error.")
    return results
