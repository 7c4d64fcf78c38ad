"""Runs on Brian2's cython target against the numpy target (time-varying and HH).

Static circuits on cython: tests/test_estimators.py. The first run of each structure
compiles Cython extensions (minutes with an empty cache), so these tests live in a
file of their own, which a second test worker can take, and the longer ones are slow.
"""

from __future__ import annotations

import pytest
import target_agreement
from helpers import only_under_ci

import ephys_eqprop as eq

TOL = 1e-9  # same equations and step count; compiled code reorders floating-point operations


@pytest.fixture
def cython():
    if not eq.targets.cython_available():
        pytest.skip("Brian2's cython target needs Cython and a working C compiler")


def test_ci_has_cython():
    # .ci/run sets CI=true; there the cython tests must run, not skip.
    only_under_ci()
    assert eq.targets.cython_available(), "CI needs Cython and a C compiler"


# compile times with an empty cache, 2 cores: Adjoint 79 s, LagrangianEP 47 s, HH 95 s;
# the default suite keeps the first (forward and adjoint code), `-m slow` runs all
@pytest.mark.parametrize("estimator", [eq.Adjoint(),
                                       pytest.param(eq.LagrangianEP(beta=1e-2),
                                                    marks=pytest.mark.slow)],
                         ids=["Adjoint", "LagrangianEP"])
def test_time_varying_gradients_and_trajectories_agree_with_numpy(cython, estimator):
    err = target_agreement.time_varying(target_agreement.dendrite(), estimator, "cython",
                                        TOL)
    print(f"{estimator!r}: numpy vs cython {err:.1e}")


@pytest.mark.slow
def test_hh_network_gradient_agrees_with_numpy(cython):
    err = target_agreement.hh_network("cython", TOL)
    print(f"HH Adjoint numpy vs cython {err:.1e}")
