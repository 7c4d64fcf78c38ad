"""Element kinds: node model, shunt element, branch element."""

from .base import BranchElement, NodeModel, Parameter, ShuntElement, State, check_quantity

__all__ = ["BranchElement", "NodeModel", "Parameter", "ShuntElement", "State",
           "check_quantity"]
