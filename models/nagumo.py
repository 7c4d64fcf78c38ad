"""The Nagumo inductor neuron: the circuit behind the FitzHugh–Nagumo model.

Nagumo, Arimoto & Yoshizawa (1962) built FitzHugh's model of excitability from a
capacitor, a tunnel diode (a conductance that is negative around the origin: a
cubic current–voltage law) and, in parallel, a branch to ground of an inductor, a
resistor and a battery. With

    i_cubic = G (v - v³ / (3 V²))            (into the node)
    L di/dt = v - E - R i                    (the branch, current i to ground)

and the scalings ``v = V x``, ``i = G V w``, ``t = τ s`` with ``τ = C/G``, the
node obeys FitzHugh's equations

    dx/ds = x - x³/3 - w + I/(G V),      dw/ds = ε (x + a - b w),

with ``ε = C/(L G²)``, ``a = -E/V`` and ``b = R G``. :func:`NagumoNeuron` builds the
node from these parameters (defaults: FitzHugh's ``a = 0.7``, ``b = 0.8``,
``ε = 0.08``); its two elements are usable on their own.
"""

from __future__ import annotations

import numpy as np
from brian2 import farad, nF, ohm, siemens, uS, volt
from brian2.units.allunits import henry, weber

from ephys_eqprop.elements import NodeModel, Parameter, ShuntElement, State, check_quantity

__all__ = ["CubicConductance", "InductorToGround", "NagumoNeuron", "fitzhugh_parameters"]


class CubicConductance(ShuntElement):
    """A tunnel-diode-like element: current ``G_cubic (v - v³/(3 V_cubic²))`` into the node.

    Its small-signal conductance ``-G_cubic (1 - v²/V_cubic²)`` is negative for
    ``|v| < V_cubic``: the element feeds the node where a resistor would drain it.

    Parameters
    ----------
    G_cubic : Quantity, siemens
        Magnitude of the conductance at 0 V.
    V_cubic : Quantity, volt
        Voltage at which the conductance changes sign.
    """

    parameters = (
        Parameter("G_cubic", siemens, 1 * uS, sign="nonnegative"),
        Parameter("V_cubic", volt, 0.1 * volt, sign="positive"),
    )
    current = "G_cubic*(v - v**3/(3*V_cubic**2))"


class InductorToGround(ShuntElement):
    """An inductor, a resistor and a battery in series from the node to ground.

    State: the inductor's flux ``phi_rec`` (weber), ``dphi_rec/dt = v - E_rec -
    R_rec phi_rec/L_rec``; the branch draws ``i = phi_rec/L_rec`` from the node. It
    starts at its steady state at the initial voltage, ``phi = L (v - E)/R``.

    Parameters
    ----------
    L_rec : Quantity, henry
    R_rec : Quantity, ohm
        Must be positive (the branch's steady state needs it).
    E_rec : Quantity, volt
        The battery, at the ground end of the branch.

    Notes
    -----
    It conducts at DC (through ``R_rec``). Its current is set by its state, not
    by the node voltage, so it has no co-content: Lagrangian EP does not apply to
    its parameters; the adjoint estimator does.
    """

    parameters = (
        Parameter("L_rec", henry, 12500 * henry, sign="positive"),
        Parameter("R_rec", ohm, 800e3 * ohm, sign="positive"),
        Parameter("E_rec", volt, -0.07 * volt),
    )
    states = (State("phi_rec", weber, "v - E_rec - R_rec*phi_rec/L_rec",
                    init="L_rec*(v - E_rec)/R_rec"),)
    current = "-phi_rec/L_rec"
    dc_path = True


def fitzhugh_parameters(C=1 * nF, G=1 * uS, V=0.1 * volt, *, a: float = 0.7, b: float = 0.8,
                        epsilon: float = 0.08) -> dict:
    """Circuit values of a Nagumo neuron from FitzHugh's dimensionless ``a``, ``b``, ``ε``.

    Returns
    -------
    dict
        ``C``, ``G_cubic``, ``V_cubic``, ``L_rec``, ``R_rec``, ``E_rec`` (Quantities) and
        ``tau = C/G`` (second), ``I_scale = G V`` (amp: the current of one unit of
        FitzHugh's ``I``).
    """
    C = check_quantity("C", C, farad, positive=True, allow_array=False)
    G = check_quantity("G", G, siemens, positive=True, allow_array=False)
    V = check_quantity("V", V, volt, positive=True, allow_array=False)
    for name, val in (("a", a), ("b", b), ("epsilon", epsilon)):
        if not (np.isscalar(val) and np.isfinite(val)):
            raise ValueError(f"{name} must be a finite number; got {val!r}.")
    if not (b > 0 and epsilon > 0):
        raise ValueError(f"FitzHugh's b and epsilon must be positive; got b={b}, "
                         f"epsilon={epsilon}.")
    return {"C": C, "G_cubic": G, "V_cubic": V, "L_rec": C / (epsilon * G**2),
            "R_rec": b / G, "E_rec": -a * V, "tau": C / G, "I_scale": G * V}


def _rest(a: float, b: float, I: float = 0.0) -> float:
    """The resting x of FitzHugh's equations: the real root of x - x³/3 - (x + a)/b + I."""
    roots = np.roots([-1 / 3, 0.0, 1 - 1 / b, I - a / b])
    real = roots[np.abs(roots.imag) < 1e-9].real
    return float(real.min())


def NagumoNeuron(C=1 * nF, G=1 * uS, V=0.1 * volt, *, a: float = 0.7, b: float = 0.8,
                 epsilon: float = 0.08, learn=(), v0=None) -> NodeModel:
    """A Nagumo inductor neuron: capacitor, cubic conductance, RL branch with battery.

    Parameters
    ----------
    C : Quantity, farad
        Membrane capacitor.
    G : Quantity, siemens
        Scale of the cubic conductance (``τ = C/G``).
    V : Quantity, volt
        Voltage scale (FitzHugh's ``x = v/V``).
    a, b, epsilon : float
        FitzHugh's parameters (default 0.7, 0.8, 0.08: excitable at rest, repetitive
        firing above the Hopf current).
    learn : sequence of str
        Which of ``G_cubic``, ``V_cubic``, ``L_rec``, ``R_rec``, ``E_rec`` are learnable
        per node (default none).
    v0 : Quantity, volt, optional
        Initial voltage (default the resting voltage, so that a run starts at rest).

    Returns
    -------
    NodeModel
        No leak (``g_leak = 0``: the cubic element and the branch are the node's DC
        paths).
    """
    p = fitzhugh_parameters(C, G, V, a=a, b=b, epsilon=epsilon)
    learn = (learn,) if isinstance(learn, str) else tuple(learn)
    cubic_names = {"G_cubic", "V_cubic"}
    branch_names = {"L_rec", "R_rec", "E_rec"}
    unknown = set(learn) - cubic_names - branch_names
    if unknown:
        raise ValueError(f"NagumoNeuron(learn=...) names {sorted(unknown)}; its parameters are "
                         f"{sorted(cubic_names | branch_names)}.")
    cubic = CubicConductance(G_cubic=p["G_cubic"], V_cubic=p["V_cubic"],
                             learn=[n for n in learn if n in cubic_names])
    branch = InductorToGround(L_rec=p["L_rec"], R_rec=p["R_rec"], E_rec=p["E_rec"],
                              learn=[n for n in learn if n in branch_names])
    if v0 is None:
        v0 = _rest(a, b) * p["V_cubic"]
    return NodeModel(C=p["C"], g_leak=0 * siemens, shunts=(cubic, branch), v0=v0)
