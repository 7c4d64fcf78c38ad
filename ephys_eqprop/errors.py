"""The package's exceptions and warnings, in one module that imports nothing else of it.

Keeping them here lets every module raise them without importing the module that
describes circuits (``circuit.py``) or the one that builds them (``network.py``).
"""

from __future__ import annotations

__all__ = ["CircuitError", "StaticPhaseWarning"]


class CircuitError(ValueError):
    """A circuit description that cannot be built or used as asked."""


class StaticPhaseWarning(UserWarning):
    """Static phases paused objects a user added to the network (they break the fixed point)."""
