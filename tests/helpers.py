"""The test suite's helpers: its one tolerance check, and the CI guard."""

from __future__ import annotations

import os

import numpy as np
import pytest
from brian2 import get_dimensions, have_same_dimensions

__all__ = ["assert_quantity_close", "only_under_ci"]


def only_under_ci() -> None:
    """Skip the calling test unless CI is set (``.ci/run`` sets ``CI=true``).

    For guards that fail in CI where other tests would silently skip (a missing
    compiler, simulator or reference).
    """
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        pytest.skip("not running under CI (CI is not set)")


def assert_quantity_close(actual, desired, *, rtol: float, atol=0, reason: str) -> float:
    """Assert that ``actual`` matches ``desired``: dimensions first, then values.

    Parameters
    ----------
    actual, desired : Quantity, array_like, or dict of str to those
        Values to compare. Dicts (e.g. gradients by connection name) must have
        the same keys; every entry is compared and the error is taken over all
        entries together.
    rtol : float
        Relative tolerance, see below.
    atol : Quantity or 0
        Absolute tolerance, with the dimensions of ``desired``.
    reason : str
        Why this tolerance: where the remaining error comes from. Required, shown
        in the failure message.

    Returns
    -------
    float
        The measured relative error ``max|a - d| / max|d|`` (``inf`` if ``desired``
        is all zero), so that a test can report it.

    Notes
    -----
    **What is measured.** The check is norm-wise, not element-wise::

        max_k |a_k - d_k|  <=  atol + rtol * max_k |d_k|

    over all entries ``k`` (in SI units). A relative error per element would blow
    up on entries that are zero or nearly so (a conductance whose gradient
    vanishes), which says nothing about the quality of the estimate; relative to
    the largest entry, the figure is the one quoted for gradient estimators
    ("relative error 4e-8").
    """
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("assert_quantity_close needs reason=: say why this tolerance.")
    if isinstance(desired, dict) or isinstance(actual, dict):
        if not (isinstance(desired, dict) and isinstance(actual, dict)):
            raise AssertionError(f"one value is a dict and the other is not ({reason})")
        if set(actual) != set(desired):
            raise AssertionError(
                f"keys differ: actual {sorted(actual)}, desired {sorted(desired)} ({reason})"
            )
        pairs = [(actual[k], desired[k], k) for k in sorted(desired)]
    else:
        pairs = [(actual, desired, None)]
    a_parts, d_parts = [], []
    for a, d, key in pairs:
        where = "" if key is None else f"[{key!r}]"
        if not have_same_dimensions(a, d):
            raise AssertionError(
                f"dimensions differ{where}: actual {get_dimensions(a)!r}, desired "
                f"{get_dimensions(d)!r} ({reason})"
            )
        if float(np.asarray(atol)) != 0 and not have_same_dimensions(atol, d):
            raise AssertionError(
                f"atol {atol!r} does not have the dimensions of desired{where} "
                f"{get_dimensions(d)!r}"
            )
        if np.shape(a) != np.shape(d):
            raise AssertionError(
                f"shapes differ{where}: actual {np.shape(a)}, desired {np.shape(d)} ({reason})"
            )
        a_parts.append(np.asarray(a, dtype=float).ravel())
        d_parts.append(np.asarray(d, dtype=float).ravel())
    a_all, d_all = np.concatenate(a_parts), np.concatenate(d_parts)
    err = float(np.max(np.abs(a_all - d_all))) if a_all.size else 0.0
    scale = float(np.max(np.abs(d_all))) if d_all.size else 0.0
    tol = float(np.asarray(atol)) + rtol * scale
    rel = err / scale if scale > 0 else (0.0 if err == 0 else np.inf)
    if not err <= tol:  # also fails on NaN
        raise AssertionError(
            f"values differ: max|a-d| = {err:.3e}, max|d| = {scale:.3e}, relative error "
            f"{rel:.3e} > rtol {rtol:.1e} (atol {float(np.asarray(atol)):.1e}). "
            f"Tolerance reason: {reason}"
        )
    return rel
