"""The element catalogue: short definitions on the element kinds of
:mod:`ephys_eqprop.elements`, with units and defaults."""

from .diode import Diode
from .nodes import CapacitorNode, DiodeNeuron
from .resistor import Resistor
from .sources import CurrentSource

__all__ = ["CapacitorNode", "CurrentSource", "Diode", "DiodeNeuron", "Resistor"]
