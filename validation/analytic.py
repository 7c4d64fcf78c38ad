"""Analytic circuits: each simulated with the package's elements and compared with its
closed form.

Cases (registered in this order):

* ``rc_charge_discharge`` — an RC node charging and discharging, whole waveform;
* ``rc_convergence_order`` — error against dt for each Brian2 integration method;
* ``resistive_divider``, ``r2r_ladder``, ``wheatstone_bridge`` — steady states;
* ``superposition`` and ``reciprocity`` — random linear networks;
* ``diode_resistor`` — a diode fed through a resistor, against the Lambert W solution.

The closed forms are public functions (with Brian2 units) so that they can be
reused and checked on their own.
"""

from __future__ import annotations

import numpy as np
import scipy.special
from brian2 import Quantity, amp, check_units, nF, second, siemens, uA, uS, us, volt

import ephys_eqprop as eq

from .framework import case, new_figure
from .simulate import fit_loglog_slope, relative_error, settle, transient

__all__ = [
    "diode_resistor_voltage",
    "euler_rc_error_bound",
    "r2r_ladder_output",
    "random_linear_circuit",
    "rc_response",
    "wheatstone_voltages",
]

GROUP = "Analytic circuits"

#: Steady-state tolerance of the issue's acceptance criteria (relative to the largest
#: node voltage). The settled Brian2 voltages are much closer than this (see
#: ``simulate.STEADY_SETTLE``); the margin absorbs nothing but the settling criterion.
STEADY_RTOL = 1e-6
STEADY_NOTE = ("steady-state target 1e-6 relative; the static phase stops when no node "
               "moves by more than 1e-13 V per check interval, so the settled state is "
               "far closer than this")


# ---------------------------------------------------------------------- closed forms
@check_units(t=second, tau=second, v_inf=volt, v0=volt, result=volt)
def rc_response(t, tau, v_inf, v0):
    """Voltage of a linear RC node after a step: ``v_inf + (v0 - v_inf) exp(-t/tau)``.

    Parameters
    ----------
    t : Quantity, shape (n_t,), second
        Times after the step.
    tau : Quantity, second
        Time constant ``C / (g + g_leak)``.
    v_inf : Quantity, volt
        Final value ``g x / (g + g_leak)``.
    v0 : Quantity, volt
        Initial value.

    Returns
    -------
    Quantity, shape (n_t,), volt
    """
    return v_inf + (v0 - v_inf) * np.exp(-np.asarray(t / tau))


def euler_rc_error_bound(dt, tau) -> float:
    """Leading-order maximum global error of forward Euler on ``dv/dt = -(v - v_inf)/tau``.

    Euler gives ``v_n - v_inf = (1 - h/tau)^n (v0 - v_inf)`` with ``h = dt``; since
    ``(1 - a)^n = exp(-n a - n a²/2 - ...)``, its distance to the exact solution is
    ``|v0 - v_inf| (h/2tau) (t/tau) exp(-t/tau) (1 + O(h/tau))``, largest at ``t = tau``::

        max_t |v_n - v(t_n)| / |v0 - v_inf|  =  h / (2 e tau)

    Parameters
    ----------
    dt, tau : Quantity, second

    Returns
    -------
    float
        The bound, relative to the step height ``|v0 - v_inf|``.
    """
    return float(dt / tau) / (2 * np.e)


@check_units(x=volt, result=volt)
def r2r_ladder_output(x):
    """Output of an unloaded N-section R-2R ladder driven by sources ``x``.

    Section ``k`` (``k = 0`` at the terminated end, which has a 2R resistor to
    ground) connects source ``x_k`` through 2R to ladder node ``k``; nodes ``k`` and
    ``k + 1`` are joined by R. Looking left from any node, the ladder is R with a
    Thevenin source that halves at each section, so the last node sits at::

        v_out = Σ_k x_k / 2^(N - k)

    Parameters
    ----------
    x : Quantity, shape (..., N), volt

    Returns
    -------
    Quantity, shape (...), volt
    """
    x = np.asarray(x / volt, dtype=float)
    N = x.shape[-1]
    return (x @ (2.0 ** (np.arange(N) - N))) * volt


@check_units(V_s=volt, G1=siemens, G2=siemens, G3=siemens, G4=siemens, G5=siemens)
def wheatstone_voltages(V_s, G1, G2, G3, G4, G5) -> tuple[Quantity, Quantity]:
    """Node voltages of a Wheatstone bridge with a load across it.

    Source ``V_s`` feeds node A through ``G1`` and node B through ``G3``; A goes to
    ground through ``G2``, B through ``G4``; ``G5`` joins A and B. By Thevenin,
    the open-circuit bridge voltage ``V_th = V_s (R2/(R1+R2) - R4/(R3+R4))`` and its
    resistance ``R_th = R1||R2 + R3||R4`` drive the load current
    ``I5 = V_th / (R_th + R5)``, so ``V_A = V_s R2/(R1+R2) - I5 R1||R2`` and
    ``V_B = V_s R4/(R3+R4) + I5 R3||R4``.

    Parameters
    ----------
    V_s : Quantity, volt
    G1, G2, G3, G4, G5 : Quantity, siemens

    Returns
    -------
    tuple (V_A, V_B) of Quantity, volt
    """
    R1, R2, R3, R4, R5 = (1 / G for G in (G1, G2, G3, G4, G5))
    p12, p34 = R1 * R2 / (R1 + R2), R3 * R4 / (R3 + R4)
    V_th = V_s * (R2 / (R1 + R2) - R4 / (R3 + R4))
    I5 = V_th / (p12 + p34 + R5)
    return V_s * R2 / (R1 + R2) - I5 * p12, V_s * R4 / (R3 + R4) + I5 * p34


@check_units(x=volt, G=siemens, g_leak=siemens, I_s=amp, V_T=volt, V_bias=volt, result=volt)
def diode_resistor_voltage(x, G, g_leak, I_s, V_T, V_bias):
    """Voltage of a node fed from ``x`` through ``G``, with a leak and a diode to a bias.

    Kirchhoff's law at the node, with the diode's anode at the node and its cathode
    at ``V_bias`` (Shockley law)::

        G (x - v) - g_leak v = I_s (exp((v - V_bias)/V_T) - 1)

    With ``u = v - V_bias``, ``G_t = G + g_leak`` and
    ``a = (G x - G_t V_bias + I_s) / G_t`` this is ``G_t (a - u) = I_s exp(u/V_T)``,
    whose solution is ``u = a - V_T W(I_s exp(a/V_T) / (G_t V_T))`` with ``W`` the
    principal branch of the Lambert W function (``W e^W = z``).

    Parameters
    ----------
    x : Quantity, shape (n,), volt
        Source voltages.
    G, g_leak : Quantity, siemens
        Series conductance and leak to ground.
    I_s : Quantity, amp
        Diode saturation current.
    V_T : Quantity, volt
        Diode ``n kT/q``.
    V_bias : Quantity, volt
        Cathode (bias source) voltage.

    Returns
    -------
    Quantity, shape (n,), volt
    """
    G_t = float(G + g_leak)
    a = (float(G) * np.asarray(x / volt) - G_t * float(V_bias) + float(I_s)) / G_t
    V_T = float(V_T)
    z = float(I_s) / (G_t * V_T) * np.exp(a / V_T)
    w = np.real(scipy.special.lambertw(z, 0))
    return (a - V_T * w + float(V_bias)) * volt


# ---------------------------------------------------------------------- RC circuit
def _rc_circuit(C, g, g_leak, batch, dt, method="euler"):
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("n", 1, eq.models.CapacitorNode(C=C, g_leak=g_leak))
    c.connect("x", "n", eq.models.Resistor(), g=np.full((1, 1), float(g)) * siemens)
    return c.build(batch=batch, dt=dt, method=method)


#: The RC node of both RC cases: tau = C/(g + g_leak) = 1 ms, V_inf = 0.8 x.
RC = {"C": 1 * nF, "g": 0.8 * uS, "g_leak": 0.2 * uS}


def _rc_tau():
    return RC["C"] / (RC["g"] + RC["g_leak"])


@case("rc_charge_discharge", title="RC charge and discharge", group=GROUP)
def rc_charge_discharge(ctx):
    """A capacitor node (1 nF, leak 0.2 µS) fed from a voltage source through a 0.8 µS
    `Resistor` (τ = 1 ms), simulated with the physical dynamics (forward Euler,
    dt = τ/2500) for 6τ: charging from 0 V with the source stepped to 1 V, and
    discharging from 1 V with the source at 0 V (two batch copies of one network).
    Both waveforms are compared at every recorded step with
    v(t) = V∞ + (v0 − V∞) e^{−t/τ}.

    Error measure: max over the waveform of |v_sim − v_exact|, divided by the largest
    |v_exact|. Tolerance: the leading-order global error of forward Euler, h/(2eτ)
    (see `euler_rc_error_bound`), plus 5 % for the O((h/τ)²) terms, capped at the target
    of 1e-4 (dt is chosen so that the bound stays below it).
    """
    tau = _rc_tau()
    dt = tau / 2500
    T = 6 * tau
    net = _rc_circuit(RC["C"], RC["g"], RC["g_leak"], batch=2, dt=dt)
    x = np.array([[1.0], [0.0]]) * volt
    v0 = np.array([0.0, 1.0])
    t, v = transient(net, x, {"n": v0}, T)
    v = v["n"][:, :, 0]
    v_inf = float(RC["g"] / (RC["g"] + RC["g_leak"])) * np.asarray(x)[:, 0]
    bound = euler_rc_error_bound(dt, tau)
    tol = min(1.05 * bound, 1e-4)
    note = (f"forward Euler bound h/(2eτ) = {bound:.2e} at dt = τ/2500, + 5 % for "
            "higher-order terms; never above the target 1e-4")
    labels = ("charge", "discharge")
    exact = np.stack([np.asarray(rc_response(t * second, tau, v_inf[k] * volt, v0[k] * volt))
                      for k in range(2)], axis=1)
    results = []
    for k, label in enumerate(labels):
        err = relative_error(v[:, k], exact[:, k])
        results.append(ctx.at_most(f"max relative error over the waveform, {label}", err, tol,
                                   note=note))

    fig, (a1, a2) = new_figure(2, 1, sharex=True, figsize=(6.4, 5.6))
    tn = t / float(tau)
    step = max(1, len(t) // 40)
    for k, (label, color) in enumerate(zip(labels, ("C0", "C1"), strict=True)):
        a1.plot(tn, exact[:, k], color=color, lw=1.5, label=f"closed form, {label}")
        a1.plot(tn[::step], v[::step, k], "o", ms=3.5, mfc="none", color=color,
                label=f"Brian2, {label}")
        a2.plot(tn, (v[:, k] - exact[:, k]) / np.max(np.abs(exact[:, k])), color=color,
                label=label)
    h = float(dt / tau)
    pred = h / 2 * tn * np.exp(-tn)
    a2.plot(tn, pred, "k--", lw=1,
            label=r"Euler, leading order: $\pm\frac{h}{2\tau}\,\frac{t}{\tau}\,e^{-t/\tau}$")
    a2.plot(tn, -pred, "k--", lw=1)
    a1.set_ylabel("node voltage v (V)")
    a1.set_title(f"RC node, τ = {float(tau) * 1e3:g} ms, dt = τ/{round(1 / h)}")
    a1.legend(fontsize=8, ncol=2)
    a2.set_xlabel("time t / τ (τ = 1 ms)")
    a2.set_ylabel("(v_sim − v_exact) / max|v_exact|")
    a2.legend(fontsize=8)
    ctx.save_figure(fig, "waveforms", "RC charge and discharge: Brian2 against the closed "
                    "form, and the error against the leading-order Euler error.")
    return results


@case("rc_convergence_order", title="Convergence order of the time integration", group=GROUP)
def rc_convergence_order(ctx):
    """The RC charging case of `rc_charge_discharge` at several dt, for each Brian2
    integration method a `Circuit.build(method=...)` can take: `euler` (the package's
    default, used by every physical run here), and `rk2` and `exponential_euler` for
    comparison. The order is the slope of a least-squares fit of log(error) against
    log(dt).

    Brian2 evaluates a summed variable (the synapse currents into a node) once per step
    and holds it during the step, so across coupled groups every method is first order:
    even an exact integrator of the node's own leak (`exponential_euler`) leaves the
    error of the frozen synapse current, h²·g(g+g_leak)/(2C²) per step, against
    h²·(g+g_leak)²/(2C²) for Euler. Predicted constants: h/(2eτ) for Euler and
    g/(g+g_leak)·h/(2eτ) for the other two. Tolerance on each slope: 1 ± 0.05
    (the next term of the error is O(h²), below 1 % of the first over this range).
    """
    tau = _rc_tau()
    ratios = [100, 200, 400, 800] if ctx.quick else [100, 200, 400, 800, 1600, 3200]
    methods = ["euler", "rk2", "exponential_euler"]
    g_frac = float(RC["g"] / (RC["g"] + RC["g_leak"]))
    constants = {"euler": 1 / (2 * np.e), "rk2": g_frac / (2 * np.e),
                 "exponential_euler": g_frac / (2 * np.e)}
    errors = {m: [] for m in methods}
    for method in methods:
        for r in ratios:
            dt = tau / r
            net = _rc_circuit(RC["C"], RC["g"], RC["g_leak"], batch=1, dt=dt, method=method)
            t, v = transient(net, np.array([[1.0]]) * volt, None, 6 * tau)
            exact = np.asarray(rc_response(t * second, tau, g_frac * volt, 0 * volt))
            errors[method].append(relative_error(v["n"][:, 0, 0], exact))
    h = 1.0 / np.array(ratios)
    results = []
    fig, ax = new_figure(figsize=(6.4, 4.6))
    markers = {"euler": "o", "rk2": "s", "exponential_euler": "^"}
    for k, method in enumerate(methods):
        p, _ = fit_loglog_slope(h, errors[method])
        results.append(ctx.within(f"order (log-log slope), {method}", p, 0.95, 1.05,
                                  note="first order expected (summed variables are held "
                                       "over a step); ± 0.05 for O(h²) terms"))
        ax.loglog(h, errors[method], markers[method], color=f"C{k}", ms=6, mfc="none",
                  label=f"{method}: fitted slope {p:.3f}")
        ax.loglog(h, constants[method] * h, ("-", "--", ":")[k], color=f"C{k}", lw=1.2,
                  label=f"{method}: predicted {constants[method]:.3f}·dt/τ")
    ax.set_xlabel("time step dt / τ (τ = 1 ms)")
    ax.set_ylabel("max relative error over the waveform")
    ax.set_title("RC charging: error against time step")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ctx.save_figure(fig, "order", "Error of the RC charging waveform against dt, per "
                    "integration method, with fitted slopes and the predicted first-order "
                    "constants.")
    return results


# ---------------------------------------------------------------------- steady states
@case("resistive_divider", title="Resistive dividers", group=GROUP)
def resistive_divider(ctx):
    """Independent voltage dividers in one circuit: node k is fed from its own source
    x_k through G1_k and tied to a 0 V source ("ground") through G2_k (both `Resistor`
    synapses, no leak), with conductances drawn log-uniformly over three decades
    (0.1–100 µS). The Brian2 static phase, settled, is compared with
    v_k = x_k G1_k / (G1_k + G2_k).
    """
    rng = ctx.rng()
    n = 8 if ctx.quick else 32
    G1 = 10 ** rng.uniform(-7, -4, n)
    G2 = 10 ** rng.uniform(-7, -4, n)
    x = rng.uniform(-1, 1, n)
    c = eq.Circuit()
    c.add_input("x", n)
    c.add_input("gnd", 1, value=0 * volt)
    c.add_nodes("n", n, eq.models.CapacitorNode(g_leak=0 * siemens))
    c.connect("x", "n", eq.models.Resistor(), g=G1 * siemens, i=np.arange(n), j=np.arange(n))
    c.connect("gnd", "n", eq.models.Resistor(), g=G2 * siemens, i=np.zeros(n, int),
              j=np.arange(n))
    net = c.build()
    v = settle(net, {"x": x[None, :] * volt})["n"][0]
    exact = x * G1 / (G1 + G2)
    err = relative_error(v, exact)
    return [ctx.at_most(f"max relative error, {n} dividers", err, STEADY_RTOL,
                        note=STEADY_NOTE)]


@case("r2r_ladder", title="R-2R ladder", group=GROUP)
def r2r_ladder(ctx):
    """An unloaded N-section R-2R ladder (R = 1/(10 µS)) whose 2R legs are driven by
    random source voltages (an R-2R digital-to-analogue converter with analogue inputs),
    terminated by 2R to a 0 V source. The settled output node is compared with
    v_out = Σ_k x_k / 2^(N−k) (`r2r_ladder_output`), for several input vectors at once
    (batch copies). N = 6 (quick) or 12.
    """
    rng = ctx.rng()
    N = 6 if ctx.quick else 12
    n_samples = 4
    G = 10e-6
    c = eq.Circuit()
    c.add_input("x", N)
    c.add_input("gnd", 1, value=0 * volt)
    c.add_nodes("n", N, eq.models.CapacitorNode(g_leak=0 * siemens))
    c.connect("x", "n", eq.models.Resistor(), g=np.full(N, G / 2) * siemens, i=np.arange(N),
              j=np.arange(N))
    c.connect("gnd", "n", eq.models.Resistor(), g=np.array([G / 2]) * siemens, i=[0], j=[0])
    c.connect("n", "n", eq.models.Resistor(), g=np.full(N - 1, G) * siemens,
              i=np.arange(N - 1), j=np.arange(1, N))
    x = rng.uniform(-1, 1, (n_samples, N))
    x[0] = 1.0  # all bits set: v_out = 1 - 2^-N
    net = c.build(batch=n_samples)
    v = settle(net, {"x": x * volt})["n"][:, -1]
    exact = np.asarray(r2r_ladder_output(x * volt))
    err = relative_error(v, exact)
    return [ctx.at_most(f"max relative error of v_out, N = {N}, {n_samples} input vectors", err,
                        STEADY_RTOL, note=STEADY_NOTE)]


@case("wheatstone_bridge", title="Wheatstone bridge", group=GROUP)
def wheatstone_bridge(ctx):
    """Two Wheatstone bridges with a 20 µS load across each, side by side in one circuit
    and fed by the same 1 V source: a balanced one (R1/R2 = R3/R4, so no current flows
    through the load) and an unbalanced one with random arms. The settled node voltages
    are compared with the Thevenin closed form (`wheatstone_voltages`); for the balanced
    bridge the figure is |V_A − V_B| / V_s, exactly zero in theory.
    """
    rng = ctx.rng()
    V_s = 1.0
    balanced = [4e-6, 6e-6, 8e-6, 12e-6, 20e-6]  # G1/G2 = G3/G4
    unbalanced = list(rng.uniform(2e-6, 20e-6, 4)) + [20e-6]
    c = eq.Circuit()
    c.add_input("s", 1)
    c.add_input("gnd", 1, value=0 * volt)
    c.add_nodes("n", 4, eq.models.CapacitorNode(g_leak=0 * siemens))  # A0 B0 A1 B1
    gs = [balanced, unbalanced]
    c.connect("s", "n", eq.models.Resistor(), i=[0] * 4, j=[0, 1, 2, 3],
              g=np.array([g[k] for g in gs for k in (0, 2)]) * siemens)
    c.connect("gnd", "n", eq.models.Resistor(), i=[0] * 4, j=[0, 1, 2, 3],
              g=np.array([g[k] for g in gs for k in (1, 3)]) * siemens)
    c.connect("n", "n", eq.models.Resistor(), i=[0, 2], j=[1, 3],
              g=np.array([g[4] for g in gs]) * siemens)
    net = c.build()
    v = settle(net, {"s": [[V_s]] * volt})["n"][0]
    exact = np.concatenate([np.asarray(wheatstone_voltages(V_s * volt, *(np.array(g) * siemens)))
                            for g in gs])
    err_all = float(np.max(np.abs(v - exact))) / V_s
    imbalance = abs(v[0] - v[1]) / V_s
    return [
        ctx.at_most("max |v − v_exact| / V_s, both bridges", err_all, STEADY_RTOL,
                    note=STEADY_NOTE),
        ctx.at_most("balanced bridge |V_A − V_B| / V_s (exact: 0)", imbalance, STEADY_RTOL,
                    note=STEADY_NOTE),
    ]


# ---------------------------------------------------------------------- linear networks
def random_linear_circuit(rng: np.random.Generator, n_nodes: int, n_inputs: int, *,
                          p_edge: float = 0.3, g_leak=0.5 * uS) -> eq.Circuit:
    """A random linear resistive network: inputs ``x`` and one recurrent node group ``n``.

    Each input connects to each node with probability 1/2; consecutive nodes are joined
    (a chain, so the nodes form one component) and every other pair with probability
    ``p_edge``; conductances uniform in [1, 10] µS; every node has a
    1 nF capacitor and a leak ``g_leak``.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_nodes, n_inputs : int
    p_edge : float
        Probability of a resistor between two nodes.
    g_leak : Quantity, siemens

    Returns
    -------
    Circuit
        Connections ``"x->n"`` (dense, zero entries open) and ``"n->n"`` (sparse, i < j).
    """
    c = eq.Circuit()
    c.add_input("x", n_inputs)
    c.add_nodes("n", n_nodes, eq.models.CapacitorNode(C=1 * nF, g_leak=g_leak))
    G_in = rng.uniform(1, 10, (n_inputs, n_nodes)) * (rng.random((n_inputs, n_nodes)) < 0.5)
    c.connect("x", "n", eq.models.Resistor(), g=G_in * uS)
    edges = np.triu(rng.random((n_nodes, n_nodes)) < p_edge, 1)
    edges |= np.eye(n_nodes, k=1, dtype=bool)  # a chain through all nodes: one component
    i, j = np.nonzero(edges)
    c.connect("n", "n", eq.models.Resistor(), g=rng.uniform(1, 10, i.size) * uS, i=i, j=j)
    return c


@case("superposition", title="Superposition on random linear networks", group=GROUP)
def superposition(ctx):
    """A random linear network (`random_linear_circuit`: 16 or 40 nodes, 4 inputs) driven
    by two random input vectors x1 and x2, by x1 + x2 and by −2.5 x1 (four batch copies of
    one network). Additivity: v(x1 + x2) = v(x1) + v(x2); homogeneity:
    v(−2.5 x1) = −2.5 v(x1). Checked on the settled steady state and on the physical
    transient from 0 V (forward Euler is itself a linear map, so there superposition holds
    up to rounding).
    """
    rng = ctx.rng()
    n = 16 if ctx.quick else 40
    c = random_linear_circuit(rng, n, 4)
    x1, x2 = rng.uniform(-1, 1, (2, 4))
    x = np.stack([x1, x2, x1 + x2, -2.5 * x1]) * volt

    def residual(v):  # v: (..., 4, n)
        add = np.max(np.abs(v[..., 2, :] - v[..., 0, :] - v[..., 1, :])) / np.max(
            np.abs(v[..., 2, :]))
        hom = np.max(np.abs(v[..., 3, :] + 2.5 * v[..., 0, :])) / np.max(np.abs(v[..., 3, :]))
        return max(float(add), float(hom))

    v_dc = settle(c.build(batch=4), x)["n"]
    _, v_tr = transient(c.build(batch=4, dt=0.05 * us), x, None, 50 * us)
    return [
        ctx.at_most(f"steady state: max superposition residual / max|v|, {n} nodes",
                    residual(v_dc), STEADY_RTOL, note=STEADY_NOTE),
        ctx.at_most("transient (1000 Euler steps): max superposition residual / max|v|",
                    residual(v_tr["n"]), 1e-12,
                    note="Euler steps are linear maps: only rounding (~1e-16 per operation, "
                         "accumulated over 1000 steps) remains"),
    ]


@case("reciprocity", title="Reciprocity and Tellegen's theorem on random linear networks",
      group=GROUP)
def reciprocity(ctx):
    """A random linear network (16 or 40 nodes) with its input sources at 0 V. Batch copy k
    injects 1 µA into node k (the node's external current `I_ext`); settled, copy k gives
    column k of the transfer-resistance matrix Z[m, k] = v_m / I. A reciprocal network has
    Z = Zᵀ: injecting at a and reading at b equals injecting at b and reading at a.

    Tellegen's theorem is checked on its own: for two excitations p ≠ q of the same
    network, Σ_branches v_b(p) i_b(q) = 0 over every branch (resistors between nodes and to
    the grounded sources, leaks, the current source), with the branch voltages and currents
    computed from the Brian2 node voltages by each element's law; the figure is this sum
    over Σ |v_b(p) i_b(q)|, largest over all pairs.
    """
    rng = ctx.rng()
    n = 16 if ctx.quick else 40
    I0 = 1 * uA
    c = random_linear_circuit(rng, n, 3)
    net = c.build(batch=n)
    net.groups["n"].I_ext = np.eye(n).ravel() * I0
    v = settle(net, np.zeros((n, 3)) * volt)["n"]  # v[k, m]: node m when injecting at k
    Z = v.T / float(I0)
    asym = float(np.max(np.abs(Z - Z.T)) / np.max(np.abs(Z)))

    # Tellegen: branch voltages (in the direction of the current) and currents
    params = net.get_params()
    G_in = np.asarray(params["x->n"])  # sources at 0 V: node -> ground branches
    conn = c.connections["n->n"]
    g_nn = np.asarray(params["n->n"])
    g_leak = float(c.nodes["n"].model.g_leak)
    inj = np.eye(n) * float(I0)

    def branches(k):
        vk = v[k]
        dv = vk[conn.i] - vk[conn.j]
        to_src = np.repeat(vk[None, :], G_in.shape[0], 0)
        volts = np.concatenate([dv, to_src.ravel(), vk, vk])
        amps = np.concatenate([g_nn * dv, (G_in * to_src).ravel(), g_leak * vk, -inj[k]])
        return volts, amps

    worst = 0.0
    pairs = [(p, q) for p in range(n) for q in range(n) if p != q]
    for p, q in pairs:
        vp, _ = branches(p)
        _, iq = branches(q)
        scale = float(np.abs(vp) @ np.abs(iq))  # > 0: the nodes form one component
        worst = max(worst, abs(float(vp @ iq)) / scale if scale > 0 else np.inf)
    return [
        ctx.at_most(f"max |Z − Zᵀ| / max|Z|, {n} nodes", asym, STEADY_RTOL, note=STEADY_NOTE),
        ctx.at_most(f"Tellegen sum / Σ|v i|, worst of {len(pairs)} pairs", worst, STEADY_RTOL,
                    note=STEADY_NOTE),
    ]


# ---------------------------------------------------------------------- diode
@case("diode_resistor", title="Diode–resistor steady state (Lambert W)", group=GROUP)
def diode_resistor(ctx):
    """A node fed from a source x through a 10 µS `Resistor`, with a 0.1 µS leak and a
    Shockley `Diode` (I_s = 1 nA, V_T = 50 mV) from the node to a 0.2 V bias, settled for
    a sweep of x from −1 V to 1 V (one batch copy per value), from reverse bias through
    the knee to strong conduction. Compared with the closed form of
    `diode_resistor_voltage` (Lambert W, scipy.special.lambertw).
    """
    n = 21 if ctx.quick else 81
    params = {"G": 10 * uS, "g_leak": 0.1 * uS, "I_s": 1e-9 * amp, "V_T": 0.05 * volt,
              "V_bias": 0.2 * volt}
    c = eq.Circuit()
    c.add_input("x", 1)
    c.add_nodes("n", 1, eq.models.CapacitorNode(g_leak=params["g_leak"], shunts=[
        eq.models.Diode(direction="to_bias", I_s=params["I_s"], V_T=params["V_T"],
                        V_bias=params["V_bias"])]))
    c.connect("x", "n", eq.models.Resistor(), g=np.full((1, 1), float(params["G"])) * siemens)
    xs = np.linspace(-1, 1, n)
    net = c.build(batch=n)
    v = settle(net, xs[:, None] * volt)["n"][:, 0]
    exact = np.asarray(diode_resistor_voltage(xs * volt, **params))
    err = relative_error(v, exact)

    fig, (a1, a2) = new_figure(1, 2, figsize=(9.6, 3.9))
    xf = np.linspace(-1, 1, 400)
    a1.plot(xf, np.asarray(diode_resistor_voltage(xf * volt, **params)), color="C0",
            label="closed form (Lambert W)")
    a1.plot(xs, v, "o", ms=4, mfc="none", color="C1", label="Brian2, settled")
    a1.axhline(float(params["V_bias"]), color="0.6", ls=":", lw=1, label="diode bias 0.2 V")
    a1.set_xlabel("source voltage x (V)")
    a1.set_ylabel("node voltage v (V)")
    a1.set_title("Diode–resistor node")
    a1.legend(fontsize=8)
    diff = np.abs(v - exact)
    nz = diff > 0
    a2.semilogy(xs[nz], diff[nz], "o", ms=4, color="C1", label="Brian2 − closed form")
    a2.set_xlim(-1.05, 1.05)
    a2.set_xlabel("source voltage x (V)")
    a2.set_ylabel("|v_sim − v_exact| (V)")
    a2.set_title(f"Error (max relative {err:.1e})")
    a2.legend(fontsize=8, title=f"{np.count_nonzero(~nz)} of {n} values equal exactly "
                                "(not drawn)", title_fontsize=8)
    a2.grid(True, which="both", alpha=0.3)
    ctx.save_figure(fig, "sweep", "Diode fed through a resistor: settled Brian2 voltages "
                    "against the Lambert W closed form, and the absolute error.")
    return [ctx.at_most(f"max relative error over {n} source voltages", err, STEADY_RTOL,
                        note=STEADY_NOTE)]

