"""Node models: capacitor nodes and diode neurons."""

from brian2 import farad, mV, nA, nF, uS, volt

from ephys_eqprop.elements import NodeModel, check_quantity

from .diode import Diode

__all__ = ["CapacitorNode", "DiodeNeuron", "NonlinearCapacitorNode"]


def CapacitorNode(C=1 * nF, g_leak=1 * uS, shunts=(), *, v0=None, learn=()) -> NodeModel:
    """A linear node: capacitor ``C`` and leak ``g_leak`` to ground.

    Parameters
    ----------
    C : Quantity, farad
        Node capacitance.
    g_leak : Quantity, siemens
        Leak conductance to ground.
    shunts : sequence of ShuntElement
        Extra elements to ground or to a bias source.
    v0 : Quantity, volt, optional
        Initial voltage of time-varying runs (default 0 V).
    learn : sequence of str
        ``("g_leak",)`` makes the leak learnable per node (``"<group>.g_leak"``).
    """
    return NodeModel(C=C, g_leak=g_leak, shunts=tuple(shunts), v0=v0, learn=learn)


def DiodeNeuron(C=1 * nF, g_leak=1 * uS, V_low=-0.2 * volt, V_high=0.2 * volt,
                I_s=1 * nA, V_T=50 * mV) -> NodeModel:
    """A capacitor node with two diodes to bias sources (Kendall et al. 2020).

    One diode conducts when the node rises above ``V_high``, the other when it
    falls below ``V_low``: a soft clipping, sigmoid-like transfer.

    Parameters
    ----------
    C : Quantity, farad
    g_leak : Quantity, siemens
    V_low, V_high : Quantity, volt
        Bias source voltages, ``V_low < V_high``.
    I_s : Quantity, amp
        Diode saturation current.
    V_T : Quantity, volt
        Diode ``n kT/q``.
    """
    V_low = check_quantity("V_low", V_low, volt, allow_array=False)
    V_high = check_quantity("V_high", V_high, volt, allow_array=False)
    if not V_low < V_high:
        raise ValueError(f"DiodeNeuron needs V_low < V_high; got V_low={V_low}, V_high={V_high}.")
    return NodeModel(C=C, g_leak=g_leak, shunts=(
        Diode(direction="to_bias", I_s=I_s, V_T=V_T, V_bias=V_high),
        Diode(direction="from_bias", I_s=I_s, V_T=V_T, V_bias=V_low),
    ))


def NonlinearCapacitorNode(charge: str = "C0*v + C1*V_s*tanh(v/V_s)", *, g_leak=1 * uS,
                           shunts=(), **charge_params) -> NodeModel:
    """A node whose capacitor holds a nonlinear charge ``q = Q(v)``.

    Parameters
    ----------
    charge : str
        ``Q(v)`` as a Brian2 expression in ``v`` (coulomb). The default is a
        capacitor whose extra charge saturates: ``C0 v + C1 V_s tanh(v/V_s)``,
        capacitance ``C0 + C1 / cosh²(v/V_s)`` between ``C0`` and ``C0 + C1``.
    g_leak : Quantity, siemens
    shunts : sequence of ShuntElement
    **charge_params : Quantity
        Values of the names used in ``charge`` (defaults for the default law:
        ``C0 = 0.5 nF``, ``C1 = 0.5 nF``, ``V_s = 0.2 V``).

    Notes
    -----
    The node integrates ``dv/dt = I / Q'(v)``; ``Q'`` is derived with sympy and
    must stay positive over the voltages the circuit visits.
    """
    if charge == "C0*v + C1*V_s*tanh(v/V_s)":
        for k, val in (("C0", 0.5 * nF), ("C1", 0.5 * nF), ("V_s", 0.2 * volt)):
            charge_params.setdefault(k, val)
    model = NodeModel(C=1 * nF, g_leak=g_leak, shunts=tuple(shunts), charge=charge,
                      charge_params=dict(charge_params))
    model.C = float(model.charge_numeric()[1](0.0)) * farad  # small-signal C at v = 0
    return model
