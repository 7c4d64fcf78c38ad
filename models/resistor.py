"""Linear resistor synapse with a learnable conductance."""

from brian2 import siemens, volt

from ephys_eqprop.elements import BranchElement

__all__ = ["Resistor"]


class Resistor(BranchElement):
    """A linear resistor between two nodes: ``i = g (v_pre - v_post)``.

    Its co-content is ``½ g Δv²``, so the local quantity for its conductance is
    ``∂E/∂g = ½ Δv²`` (volt²): the only thing a resistor must measure to learn.
    The conductance ``g`` is given per synapse to :meth:`Circuit.connect`.
    """

    learnable = "g"
    learnable_unit = siemens
    current = "g*(v_pre - v_post)"
    local = "0.5*(v_pre - v_post)**2"
    local_unit = volt**2
    spice_words = ("resistors", "conductance")

    def spice(self, ctx, a, b, theta, state0, label):
        """An ``R`` element of ``1/g`` ohm."""
        if theta < 0:
            raise ctx.refuse(f"Resistor {label} has a negative conductance {theta!r} S.")
        ctx.add(f"R_{label} {a} {b} {ctx.number(1.0 / theta)}")
