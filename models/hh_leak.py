"""The leak channel of Hodgkin–Huxley neurons: a conductance to its battery."""

from __future__ import annotations

from brian2 import mV, siemens, volt

from ephys_eqprop.elements import Parameter, ShuntElement

__all__ = ["LeakChannel"]


class LeakChannel(ShuntElement):
    """A conductance ``g_L`` in series with a battery ``E_L``: current ``g_L (E_L - v)``.

    Parameters
    ----------
    g_L : Quantity, siemens
        Leak conductance (learnable per neuron).
    E_L : Quantity, volt
        Leak reversal potential.

    Notes
    -----
    Co-content ``½ g_L (v - E_L)²``; local quantity for ``g_L``: ``½ (v - E_L)²``.
    """

    parameters = (
        Parameter("g_L", siemens, 60e-9 * siemens, learnable=True, sign="nonnegative"),
        Parameter("E_L", volt, -54.3 * mV),
    )
    current = "g_L*(E_L - v)"
    energy = "0.5*g_L*(v - E_L)**2"

    def spice(self, ctx, node, values, state0, label):
        """An ``R`` of ``1/g_L`` to a shared battery node at ``E_L``."""
        if values["g_L"] <= 0:
            return
        ctx.add(f"R_{label} {node} {ctx.bias_node(values['E_L'])} "
                f"{ctx.number(1.0 / values['g_L'])}")
