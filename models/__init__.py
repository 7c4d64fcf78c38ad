"""The element catalogue: short definitions on the element kinds of
:mod:`ephys_eqprop.elements`, with units and defaults."""

from .chemical_synapse import ChemicalSynapse
from .diode import Diode
from .directed import DirectedSynapse
from .hh_leak import LeakChannel
from .hh_neuron import HH_PARAMETER_SETS, HHNeuron
from .hh_potassium import PotassiumChannel
from .hh_sodium import SodiumChannel
from .inductor import Inductor, NonlinearInductor
from .nagumo import CubicConductance, InductorToGround, NagumoNeuron, fitzhugh_parameters
from .nodes import CapacitorNode, DiodeNeuron, NonlinearCapacitorNode
from .resistor import Resistor
from .sources import CurrentSource

__all__ = ["HH_PARAMETER_SETS", "CapacitorNode", "ChemicalSynapse", "CubicConductance",
           "CurrentSource", "Diode", "DiodeNeuron", "DirectedSynapse", "HHNeuron", "Inductor",
           "InductorToGround", "LeakChannel", "NagumoNeuron", "NonlinearCapacitorNode",
           "NonlinearInductor", "PotassiumChannel", "Resistor", "SodiumChannel",
           "fitzhugh_parameters"]
