"""Shockley diode between a node and a bias source."""

from brian2 import amp, mV, nA, volt

from ephys_eqprop.elements import Parameter, ShuntElement

__all__ = ["Diode"]


class Diode(ShuntElement):
    """A Shockley diode between a node and a fixed bias source ``V_bias``.

    Parameters
    ----------
    I_s : Quantity, amp
        Saturation current.
    V_T : Quantity, volt
        Emission coefficient times thermal voltage, ``n kT/q``.
    V_bias : Quantity, volt
        Voltage of the bias source at the diode's other terminal.
    direction : {"to_bias", "from_bias"}
        ``"to_bias"``: anode at the node, the diode conducts when the node rises
        above ``V_bias`` (current ``I_s (exp((v - V_bias)/V_T) - 1)`` leaves the
        node). ``"from_bias"``: anode at the bias, it conducts when the node falls
        below ``V_bias``.

    Notes
    -----
    Two diodes per neuron with bias sources give the sigmoid-like nonlinearity of
    Kendall et al. (2020); see :class:`~ephys_eqprop.models.DiodeNeuron`.
    """

    parameters = (
        Parameter("I_s", amp, 1 * nA),
        Parameter("V_T", volt, 50 * mV),
        Parameter("V_bias", volt, 0 * volt),
    )

    def __init__(self, *, direction: str = "to_bias", **values):
        if direction == "to_bias":
            self.current = "-I_s*(exp((v - V_bias)/V_T) - 1)"
        elif direction == "from_bias":
            self.current = "I_s*(exp((V_bias - v)/V_T) - 1)"
        else:
            raise ValueError(
                f"direction must be 'to_bias' or 'from_bias'; got {direction!r}."
            )
        self.direction = direction
        super().__init__(**values)

    def validate(self):
        if float(self.values["I_s"]) <= 0 or float(self.values["V_T"]) <= 0:
            raise ValueError(f"Diode needs I_s > 0 and V_T > 0; got {self.values}.")

    def spice(self, ctx, node, values, state0, label):
        """A ``D`` element to a shared bias node (or the exact law as a ``B`` source)."""
        I_s, V_T, V_b = values["I_s"], values["V_T"], values["V_bias"]
        bias = ctx.bias_node(V_b)
        anode, cathode = (node, bias) if self.direction == "to_bias" else (bias, node)
        if ctx.diode == "B":
            # current from anode through the source to cathode
            ctx.add(f"B_{label} {anode} {cathode} I={ctx.number(I_s)}*(exp(V({anode},"
                    f"{cathode})/{ctx.number(V_T)})-1)")
            return
        ctx.add(f"D_{label} {anode} {cathode} {ctx.diode_model(I_s, V_T)}")

    def _repr_args(self):
        return f"direction={self.direction!r}, " + super()._repr_args()
