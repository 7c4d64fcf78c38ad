"""Validation suite: analytic circuits, ngspice cross-checks and gradient fidelity.

Installed as ``ephys_eqprop.validation``; run it with ``ephys-eqprop validate [--quick]``
or :func:`run_validation`. Each case simulates circuits with the package and compares
them with an independent reference, reporting measured figures against stated
tolerances (:class:`CaseResult`). New cases register with the :func:`case` decorator
(see :mod:`ephys_eqprop.validation.framework`).
"""

from . import analytic, dynamic, framework, gradients, neurons, report, simulate, spice
from .framework import REGISTRY, Case, CaseContext, CaseResult, case, registered_cases
from .runner import run_validation

__all__ = [
    "REGISTRY",
    "Case",
    "CaseContext",
    "CaseResult",
    "analytic",
    "case",
    "dynamic",
    "framework",
    "gradients",
    "neurons",
    "registered_cases",
    "report",
    "run_validation",
    "simulate",
    "spice",
]
