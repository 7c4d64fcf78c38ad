"""Sources attached to nodes."""

from brian2 import amp

from ephys_eqprop.elements import Parameter, ShuntElement

__all__ = ["CurrentSource"]


class CurrentSource(ShuntElement):
    """An ideal current source injecting ``I`` (amp) into a node.

    Its energy term is ``-I v``. It does not conduct at DC: a node needs another
    path to ground. Ideal voltage sources are the circuit inputs: see
    :meth:`ephys_eqprop.Circuit.add_input`.
    """

    parameters = (Parameter("I", amp, 0 * amp),)
    current = "I"
    dc_path = False

    def spice(self, ctx, node, values, state0, label):
        """An ``I`` source from ground into the node (SPICE: current from n+ to n-)."""
        ctx.add(f"I_{label} 0 {node} DC {ctx.number(values['I'])}")
