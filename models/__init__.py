"""The element catalogue: short definitions on the element kinds of
:mod:`ephys_eqprop.elements`, with units and defaults."""

from .diode import Diode
from .directed import DirectedSynapse
from .inductor import Inductor, NonlinearInductor
from .nagumo import CubicConductance, InductorToGround, NagumoNeuron, fitzhugh_parameters
from .nodes import CapacitorNode, DiodeNeuron, NonlinearCapacitorNode
from .resistor import Resistor
from .sources import CurrentSource

__all__ = ["CapacitorNode", "CubicConductance", "CurrentSource", "Diode", "DiodeNeuron",
           "DirectedSynapse", "Inductor", "InductorToGround", "NagumoNeuron",
           "NonlinearCapacitorNode", "NonlinearInductor", "Resistor", "fitzhugh_parameters"]
