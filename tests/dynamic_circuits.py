"""Random time-varying circuits for the tests, by seed.

Thin wrappers over the validation suite's generators
(:mod:`ephys_eqprop.validation.bias_map`), so that the tests, the bias map and the
benchmarks draw their circuits and waveforms from one piece of code.
"""

from __future__ import annotations

import numpy as np
from brian2 import volt
from ephys_eqprop.validation.bias_map import compare_gradients, random_dynamic_circuit, sinusoids


def random_circuit(kind: str, seed: int = 0, n_in: int = 2, n_hidden: int = 4, n_out: int = 2):
    """A random circuit of the given kind (see ``random_dynamic_circuit``) from ``seed``."""
    return random_dynamic_circuit(kind, np.random.default_rng(seed), n_in=n_in,
                                  n_hidden=n_hidden, n_out=n_out)


def waveforms(tau_omega: float, n_samples: int = 2, n_in: int = 2, n_out: int = 2,
              periods: float = 1.0, steps_per_tau: int = 100, seed: int = 0,
              amplitude=0.5 * volt):
    """Sinusoidal inputs and targets ``(x, y, dt)`` at ``tau_omega / TAU`` (see ``sinusoids``)."""
    return sinusoids(tau_omega, np.random.default_rng(seed + 1000), n_samples=n_samples,
                     n_in=n_in, n_out=n_out, periods=periods, steps_per_tau=steps_per_tau,
                     amplitude=amplitude)


def compare(a: dict, b: dict):
    """Cosine similarity and relative error (max-norm) of ``a`` against ``b``."""
    return compare_gradients(a, b)
