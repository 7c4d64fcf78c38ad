"""Conductance-based chemical synapses between neurons: directed, with a gating state."""

from __future__ import annotations

from brian2 import ms, mV, siemens, volt

from ephys_eqprop.elements import BranchElement, Parameter, State

__all__ = ["ChemicalSynapse"]

#: reversal potentials and decay times by kind (Brian2's COBAHH example: E_e = 0 mV,
#: τ_e = 5 ms; E_i = -80 mV, τ_i = 10 ms)
KINDS = {"excitatory": {"E_syn": 0 * mV, "tau_s": 5 * ms},
         "inhibitory": {"E_syn": -80 * mV, "tau_s": 10 * ms}}


class ChemicalSynapse(BranchElement):
    """A chemical synapse: current ``g s (E_syn - v_post)`` into the post node only.

    The gate ``s`` (the fraction of open postsynaptic receptors) follows the transmitter
    released by the presynaptic neuron, a sigmoid of its voltage (Destexhe, Mainen &
    Sejnowski 1994):

        ds/dt = alpha_s T(v_pre) (1 - s) - s / tau_s,
        T(v_pre) = 1 / (1 + exp(-(v_pre - V_th) / Delta)),

    and starts at its steady state at the initial voltages. ``g`` (siemens, ≥ 0) is the
    learnable maximal conductance of each synapse, given per synapse to
    :meth:`Circuit.connect`.

    Parameters
    ----------
    kind : {"excitatory", "inhibitory"}
        Sets the defaults of ``E_syn`` and ``tau_s`` (0 mV, 5 ms; -80 mV, 10 ms).
    E_syn : Quantity, volt
        Reversal potential.
    alpha_s : Quantity, 1/second
        Opening rate at full transmitter release (default 2/ms).
    tau_s : Quantity, second
        Closing time constant.
    V_th : Quantity, volt
        Presynaptic voltage of half release (default -20 mV).
    Delta : Quantity, volt
        Width of the release sigmoid (default 2 mV).

    Notes
    -----
    Directed (the current depends on the presynaptic voltage only through ``s``, and
    nothing flows out of the presynaptic neuron): there is no energy term, so
    equilibrium propagation does not apply; the adjoint estimator trains it exactly
    (its adjoint is the same synapse with pre and post swapped). Forward Euler is
    stable for the gate while ``dt < 2/(alpha_s + 1/tau_s)`` (0.9 ms at the defaults).
    """

    learnable = "g"
    learnable_unit = siemens
    directed = True
    reciprocal = False
    current = "g*s*(E_syn - v_post)"
    spice_words = ("chemical synapses (B sources, gate on a 1 F node)", "conductance")

    def __init__(self, kind: str = "excitatory", **values):
        if kind not in KINDS:
            raise ValueError(f"ChemicalSynapse(kind=...) must be one of {sorted(KINDS)}; got "
                             f"{kind!r}.")
        self.kind = kind
        d = KINDS[kind]
        self.parameters = (
            Parameter("E_syn", volt, d["E_syn"]),
            Parameter("alpha_s", 1 / ms, 2 / ms, sign="positive"),
            Parameter("tau_s", ms, d["tau_s"], sign="positive"),
            Parameter("V_th", volt, -20 * mV),
            Parameter("Delta", volt, 2 * mV, sign="positive"),
        )
        release = "1/(1 + exp(-(v_pre - V_th)/Delta))"
        self.states = (State(
            "s", 1, f"alpha_s*{release}*(1 - s) - s/tau_s",
            init=f"alpha_s*{release}/(alpha_s*{release} + 1/tau_s)", bounds=(0, 1)),)
        super().__init__(**values)

    def _repr_args(self):
        return f"kind={self.kind!r}, " + super()._repr_args()
