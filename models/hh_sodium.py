"""The fast sodium channel of Hodgkin–Huxley neurons: ``g_Na m³ h (E_Na - v)``."""

from __future__ import annotations

from brian2 import mV, siemens, volt

from ephys_eqprop.elements import Parameter, ShuntElement, State

__all__ = ["SodiumChannel"]

#: Rate functions (1/ms, voltages in the Brian2 expression's own units) by parameter set.
#: ``"hh"``: NEURON's ``hh`` mechanism (Hodgkin & Huxley 1952 with the voltage axis
#: reversed and shifted to rest at -65 mV), at 6.3 °C; ``"traub_miles"``: Traub &
#: Miles (1991) as in Brian2's COBAHH example, threshold parameter ``VT_Na``.
#: Removable singularities are written with ``exprel`` (``x/(e^x - 1) = 1/exprel(x)``).
RATES = {
    "hh": {
        "alpha_m": "1/exprel(-(v + 40*mV)/(10*mV))/ms",
        "beta_m": "4*exp(-(v + 65*mV)/(18*mV))/ms",
        "alpha_h": "0.07*exp(-(v + 65*mV)/(20*mV))/ms",
        "beta_h": "1/(exp(-(v + 35*mV)/(10*mV)) + 1)/ms",
    },
    "traub_miles": {
        "alpha_m": "1.28/exprel((13*mV - v + VT_Na)/(4*mV))/ms",
        "beta_m": "1.4/exprel((v - VT_Na - 40*mV)/(5*mV))/ms",
        "alpha_h": "0.128*exp((17*mV - v + VT_Na)/(18*mV))/ms",
        "beta_h": "4/(1 + exp((40*mV - v + VT_Na)/(5*mV)))/ms",
    },
}


class SodiumChannel(ShuntElement):
    """Fast Na⁺ channel: current ``g_Na m³ h (E_Na - v)`` into the node.

    Gates follow ``dx/dt = phi_Na (α_x(v) (1 - x) - β_x(v) x)`` and start at their
    steady state ``α/(α + β)`` at the initial voltage; ``phi_Na`` is the rate factor
    of the temperature (``q10^((celsius - 6.3)/10)`` for the ``"hh"`` set).

    Parameters
    ----------
    rates : {"hh", "traub_miles"}
        Rate functions (see :data:`RATES`).
    g_Na : Quantity, siemens
        Maximal conductance (learnable per neuron).
    E_Na : Quantity, volt
        Reversal potential.
    phi_Na : float
        Temperature factor of the rates.
    VT_Na : Quantity, volt
        Threshold parameter of the ``"traub_miles"`` rates.

    Notes
    -----
    Its co-content at fixed gates is ``½ g_Na m³ h (v - E_Na)²``, zero when the
    channel carries no current: Lagrangian EP's local quantity for ``g_Na`` is
    ``½ m³ h (v - E_Na)²``.
    """

    def __init__(self, rates: str = "hh", **values):
        if rates not in RATES:
            raise ValueError(f"SodiumChannel(rates=...) must be one of {sorted(RATES)}; got "
                             f"{rates!r}.")
        self.rates = rates
        r = RATES[rates]
        params = [Parameter("g_Na", siemens, 24 * 1e-6 * siemens, learnable=True,
                            sign="nonnegative"),
                  Parameter("E_Na", volt, 50 * mV),
                  Parameter("phi_Na", 1, 1.0, sign="positive")]
        if rates == "traub_miles":
            params.append(Parameter("VT_Na", volt, -63 * mV))
        self.parameters = tuple(params)
        self.states = tuple(State.gate(x, r["alpha_" + x], r["beta_" + x], "phi_Na")
                            for x in ("m", "h"))
        super().__init__(**values)

    current = "g_Na*m**3*h*(E_Na - v)"
    energy = "0.5*g_Na*m**3*h*(v - E_Na)**2"

    def _repr_args(self):
        return f"rates={self.rates!r}, " + super()._repr_args()
