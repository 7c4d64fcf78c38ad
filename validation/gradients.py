"""Gradient fidelity: EP estimates from Brian2 against the exact gradient of static circuits.

Case ``ep_gradient_fidelity``: one-sided and symmetric equilibrium propagation
(:class:`ephys_eqprop.EP`, :class:`ephys_eqprop.SymmetricEP`), every phase simulated in
Brian2, against the implicit-differentiation gradient
(:class:`ephys_eqprop.ExactSteadyState`), over a sweep of the nudge strength β; the
exact gradient is itself checked against central finite differences of the
steady-state loss.
"""

from __future__ import annotations

import numpy as np
from brian2 import Quantity, get_dimensions, uS, volt, watt

import ephys_eqprop as eq

from .framework import case, new_figure
from .simulate import STEADY_SETTLE, fit_loglog_slope

__all__ = ["central_difference_gradient", "diode_gradient_network"]

GROUP = "Gradient fidelity"


def diode_gradient_network(rng: np.random.Generator, quick: bool):
    """The diode network, data and loss of the gradient case.

    A layered circuit (`eq.layered`) with doubled inputs, a ±1 V bias pair and diode
    neurons whose bias sources sit at ±0.05 V (one V_T), so that the diodes work in
    their nonlinear range: 4 inputs -> 8 -> 2 differential outputs (quick), or
    6 -> 12 -> 8 -> 3 (full). Inputs uniform in ±1 V, targets in ±0.1 V, MSE loss with a
    1 µS nudge conductance.

    Returns
    -------
    tuple (CircuitNetwork, x, y, loss)
        ``x`` (Quantity, (batch, n_in), volt), ``y`` (Quantity, (batch, n_out), volt).
    """
    neuron = eq.models.DiodeNeuron(V_low=-0.05 * volt, V_high=0.05 * volt)
    n_in, hidden, n_out, batch = (4, [8], 2, 4) if quick else (6, [12, 8], 3, 8)
    c = eq.layered(n_in, hidden, n_out, bias=1 * volt, neuron=neuron, rng=rng)
    net = c.build(batch=batch)
    x = rng.uniform(-1, 1, (batch, n_in)) * volt
    y = rng.uniform(-0.1, 0.1, (batch, n_out)) * volt
    return net, x, y, eq.losses.MSE(g_nudge=1 * uS)


def central_difference_gradient(net, x, y, loss, *, rel_step: float = 1e-4) -> dict:
    """Central finite differences of the exact steady-state loss (numpy, no Brian2 run).

    Each parameter θ is moved by ``± rel_step · max(|θ|, mean |θ| of its connection)``
    and the mean loss at the fixed point is recomputed with
    :class:`ephys_eqprop.SteadyState`.

    Returns
    -------
    dict of str to Quantity
        Shaped like ``net.get_params()``, loss units per parameter unit.
    """
    params = net.get_params()
    out = {}
    for name, conn in net.circuit.connections.items():
        base = np.asarray(params[name], dtype=float)
        grad = np.zeros_like(base)
        idx = list(zip(conn.i, conn.j, strict=True)) if conn.dense else range(base.size)
        scale = float(np.mean(np.abs(base)))
        for k in idx:
            h = rel_step * max(abs(base[k]), scale)
            vals = []
            for sign in (1, -1):
                pert = dict(params)
                arr = base.copy()
                arr[k] += sign * h
                pert[name] = Quantity(arr, dim=get_dimensions(params[name]))
                vals.append(eq.SteadyState(net.circuit, params=pert).loss(x, y, loss))
            grad[k] = (vals[0] - vals[1]) / (2 * h)
        unit = (1.0 * watt) / Quantity(1.0, dim=get_dimensions(params[name]))
        out[name] = Quantity(grad, dim=get_dimensions(unit))
    return out


def _flat(grads: dict, keys) -> np.ndarray:
    return np.concatenate([np.asarray(grads[k], dtype=float).ravel() for k in keys])


def _rel(est: np.ndarray, exact: np.ndarray) -> float:
    return float(np.max(np.abs(est - exact)) / np.max(np.abs(exact)))


@case("ep_gradient_fidelity", title="EP gradients against the exact gradient", group=GROUP)
def ep_gradient_fidelity(ctx):
    """A layered diode–resistor network (`diode_gradient_network`: 4–8–2 neurons in quick
    mode, 6–12–8–3 in the full run) and a batch of samples with an MSE loss. Every phase of
    one-sided EP (`eq.EP`) and symmetric EP (`eq.SymmetricEP`) runs in Brian2 (static
    phases settled to 1e-13 V per check interval), for β from 1 down to 1e-3. The
    reference is the exact gradient of the mean loss by implicit differentiation of the
    fixed point (`eq.ExactSteadyState`, numpy), itself checked first against central finite
    differences of the steady-state loss.

    Error measure: max over all synapses of |estimate − exact| / max |exact|. The bias of
    one-sided EP is O(β) and that of symmetric EP O(β²) (Laborieux et al. 2021), so the
    slopes of log(error) against log(β) must be 1 and 2; the fit is over the whole sweep.
    """
    rng = ctx.rng()
    net, x, y, loss = diode_gradient_network(rng, ctx.quick)
    exact = eq.ExactSteadyState().gradient(net, x, y, loss)
    keys = list(exact)
    e = _flat(exact, keys)
    fd = _flat(central_difference_gradient(net, x, y, loss), keys)
    results = [ctx.at_most(
        f"exact gradient vs central differences, {e.size} conductances", _rel(fd, e), 1e-6,
        note="central differences with step 1e-4 θ: truncation O(1e-8), rounding "
             "O(1e-16/1e-4) relative")]

    betas = np.array([1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001])
    estimators = {"one-sided EP": eq.EP, "symmetric EP": eq.SymmetricEP}
    errors = {k: [] for k in estimators}
    flat = {k: {} for k in estimators}
    for beta in betas:
        for label, cls in estimators.items():
            g = cls(beta=float(beta), settle=STEADY_SETTLE).gradient(net, x, y, loss)
            flat[label][float(beta)] = _flat(g, keys)
            errors[label].append(_rel(flat[label][float(beta)], e))
    slope = {k: fit_loglog_slope(betas, errors[k]) for k in estimators}
    b_min = float(betas[-1])
    results += [
        ctx.within("one-sided EP: log-log slope of error vs β", slope["one-sided EP"][0],
                   0.9, 1.1, note="bias O(β); ± 0.1 for the O(β²) term at β near 1"),
        ctx.within("symmetric EP: log-log slope of error vs β", slope["symmetric EP"][0],
                   1.8, 2.2, note="bias O(β²); ± 0.2 for the O(β⁴) term and the "
                                  "settling floor"),
        ctx.at_most(f"one-sided EP: max relative error at β = {b_min:g}",
                    errors["one-sided EP"][-1], 1e-3,
                    note="O(β) bias with a relative constant ≲ 1 for a nudge conductance "
                         "(1 µS) below the synapses' (~5 µS)"),
        ctx.at_most(f"symmetric EP: max relative error at β = {b_min:g}",
                    errors["symmetric EP"][-1], 1e-6,
                    note="O(β²) bias with a relative constant ≲ 1, plus the settling error"),
    ]
    cos = float(flat["symmetric EP"][b_min] @ e
                / (np.linalg.norm(flat["symmetric EP"][b_min]) * np.linalg.norm(e)))
    results.append(ctx.at_most(f"symmetric EP: 1 − cosine similarity at β = {b_min:g}",
                               1 - cos, 1e-9, note="follows from the 1e-6 error bound "
                                                   "above (1 − cos ≈ ½ relative error²)"))

    fig, ax = new_figure(figsize=(6.4, 4.6))
    for k, (label, marker) in enumerate(zip(estimators, ("o", "s"), strict=True)):
        p, c0 = slope[label]
        ax.loglog(betas, errors[label], marker, color=f"C{k}", mfc="none", ms=7,
                  label=f"{label} (Brian2)")
        ax.loglog(betas, c0 * betas ** p, "-", color=f"C{k}", lw=1,
                  label=f"fit: {c0:.2g}·β^{p:.3f}")
    ax.set_xlabel("nudge strength β (dimensionless)")
    ax.set_ylabel("max |estimate − exact| / max |exact|")
    ax.set_title(f"EP gradient error against β ({e.size} conductances, diode network)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ctx.save_figure(fig, "error_vs_beta", "Relative error of one-sided and symmetric EP "
                    "against the exact gradient over the β sweep, with fitted power laws.")

    shown = (float(betas[0]), b_min)
    fig, axes = new_figure(1, 2, figsize=(10.4, 5.0))
    ms = 1e3  # plot in 10⁻³ V²
    lim = 1.2 * float(np.max(np.abs(e))) * ms
    lin = 10.0 ** np.floor(np.log10(1e-2 * lim))  # linear part of the symlog axes
    decades = 10.0 ** np.arange(np.log10(lin), np.floor(np.log10(lim)) + 1)
    ticks = np.concatenate([-decades[::-1], [0.0], decades])
    for ax, beta in zip(axes, shown, strict=True):
        ax.plot([-lim, lim], [-lim, lim], color="0.6", lw=1, label="estimate = exact")
        ax.plot(e * ms, flat["one-sided EP"][beta] * ms, "x", ms=5, color="C0",
                label=f"one-sided EP (rel. err {_rel(flat['one-sided EP'][beta], e):.1e})")
        ax.plot(e * ms, flat["symmetric EP"][beta] * ms, "o", ms=4, mfc="none", color="C1",
                label=f"symmetric EP (rel. err {_rel(flat['symmetric EP'][beta], e):.1e})")
        ax.set_xscale("symlog", linthresh=lin)
        ax.set_yscale("symlog", linthresh=lin)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.set_aspect("equal")
        ax.set_xlabel("exact dL/dg (10⁻³ V²), implicit differentiation")
        ax.set_ylabel("EP estimate dL/dg (10⁻³ V²)")
        ax.set_title(f"β = {beta:g}  (symmetric log axes, linear within ±{lin:g})")
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(True, alpha=0.3)
    ctx.save_figure(fig, "scatter", "Per-synapse gradients estimated by EP in Brian2 against "
                    "the exact gradient, at the largest and at the smallest β.")
    return results
