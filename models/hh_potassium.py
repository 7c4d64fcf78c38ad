"""The delayed-rectifier potassium channel of Hodgkin–Huxley neurons: ``g_K n⁴ (E_K - v)``."""

from __future__ import annotations

from brian2 import mV, siemens, volt

from ephys_eqprop.elements import Parameter, ShuntElement, State

__all__ = ["PotassiumChannel"]

#: Rate functions (1/ms) by parameter set: ``"hh"`` (NEURON's ``hh`` mechanism, 6.3 °C)
#: and ``"traub_miles"`` (Brian2's COBAHH example, threshold parameter ``VT_K``).
RATES = {
    "hh": {
        "alpha_n": "0.1/exprel(-(v + 55*mV)/(10*mV))/ms",
        "beta_n": "0.125*exp(-(v + 65*mV)/(80*mV))/ms",
    },
    "traub_miles": {
        "alpha_n": "0.16/exprel((15*mV - v + VT_K)/(5*mV))/ms",
        "beta_n": "0.5*exp((10*mV - v + VT_K)/(40*mV))/ms",
    },
}


class PotassiumChannel(ShuntElement):
    """Delayed-rectifier K⁺ channel: current ``g_K n⁴ (E_K - v)`` into the node.

    The gate follows ``dn/dt = phi_K (α_n(v) (1 - n) - β_n(v) n)`` and starts at its
    steady state at the initial voltage.

    Parameters
    ----------
    rates : {"hh", "traub_miles"}
        Rate functions (see :data:`RATES`).
    g_K : Quantity, siemens
        Maximal conductance (learnable per neuron).
    E_K : Quantity, volt
        Reversal potential.
    phi_K : float
        Temperature factor of the rates.
    VT_K : Quantity, volt
        Threshold parameter of the ``"traub_miles"`` rates.

    Notes
    -----
    Co-content at fixed gates ``½ g_K n⁴ (v - E_K)²``.
    """

    def __init__(self, rates: str = "hh", **values):
        if rates not in RATES:
            raise ValueError(f"PotassiumChannel(rates=...) must be one of {sorted(RATES)}; "
                             f"got {rates!r}.")
        self.rates = rates
        r = RATES[rates]
        params = [Parameter("g_K", siemens, 7.2e-6 * siemens, learnable=True,
                            sign="nonnegative"),
                  Parameter("E_K", volt, -77 * mV),
                  Parameter("phi_K", 1, 1.0, sign="positive")]
        if rates == "traub_miles":
            params.append(Parameter("VT_K", volt, -63 * mV))
        self.parameters = tuple(params)
        self.states = (State.gate("n", r["alpha_n"], r["beta_n"], "phi_K"),)
        super().__init__(**values)

    current = "g_K*n**4*(E_K - v)"
    energy = "0.5*g_K*n**4*(v - E_K)**2"

    def _repr_args(self):
        return f"rates={self.rates!r}, " + super()._repr_args()
