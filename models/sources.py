"""Sources attached to nodes."""

from brian2 import amp

from ephys_eqprop.elements import Parameter, ShuntElement

__all__ = ["CurrentSource"]


class CurrentSource(ShuntElement):
    """An ideal current source injecting ``I`` (amp) into a node.

    Its energy term is ``-I v``. Ideal voltage sources are the circuit inputs:
    see :meth:`ephys_eqprop.Circuit.add_input`.
    """

    parameters = (Parameter("I", amp, 0 * amp),)
    current = "I"
