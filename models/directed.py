"""Directed synapses: voltage-controlled current sources."""

from brian2 import siemens, volt

from ephys_eqprop.elements import BranchElement, Parameter
from ephys_eqprop.elements.base import differentiate, expression_dimensions

__all__ = ["DirectedSynapse"]


class DirectedSynapse(BranchElement):
    """A voltage-controlled current source: ``i_post = G s(v_pre)``.

    The current flows into the post node (from ground); nothing flows out of the
    pre node. A chemical-synapse abstraction with a learnable transconductance
    ``G`` (siemens, any sign).

    Parameters
    ----------
    s : str
        The transfer function, a Brian2 expression in ``v_pre`` giving a voltage;
        default a sigmoid-like ``V_s*tanh((v_pre - V_0)/V_s)``.
    V_s, V_0 : Quantity, volt
        Parameters of the default ``s``.

    Notes
    -----
    The element has no energy term: it is not reciprocal, and equilibrium
    propagation does not apply. The adjoint estimator trains it exactly: its
    adjoint is the same source with pre and post swapped (``docs/physics.md``, §5).
    """

    learnable = "G"
    learnable_unit = siemens
    parameters = (Parameter("V_s", volt, 0.1 * volt), Parameter("V_0", volt, 0 * volt))
    reciprocal = False
    directed = True
    nonnegative = False
    spice_words = ("directed synapses (B sources)", "transconductance")

    def __init__(self, s: str = "V_s*tanh((v_pre - V_0)/V_s)", **values):
        self.s = s
        self.current = f"G*({s})"
        super().__init__(**values)
        dims = expression_dimensions(s, {"v_pre": 1 * volt, **self.values},
                                     f"DirectedSynapse s={s!r}")
        if dims is not volt.dim:
            raise TypeError(f"DirectedSynapse s={s!r} must be a voltage; it has dimensions "
                            f"{dims}.")
        if "v_post" in s:
            raise ValueError("DirectedSynapse s may depend on v_pre only (a VCCS senses its "
                             "input terminal).")
        differentiate(s, "v_pre", "DirectedSynapse transfer function s")

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"DirectedSynapse({self.s!r}, {args})"
