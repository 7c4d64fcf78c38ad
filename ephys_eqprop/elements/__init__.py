"""Element kinds: the node model, node elements (shunts, channels) and branch elements.

Every element is declared on :class:`Element` (parameters, states, current,
co-content as Brian2 expressions with units); see :mod:`ephys_eqprop.elements.base`
and ``docs/adding_an_element.md``.
"""

from .base import SIGNS, Element, Parameter, State, check_quantity
from .branch import BranchElement
from .node import NodeModel, NodeVariable
from .shunt import ShuntElement

__all__ = ["SIGNS", "BranchElement", "Element", "NodeModel", "NodeVariable", "Parameter",
           "ShuntElement", "State", "check_quantity"]
