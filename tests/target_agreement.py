"""Checks that a compiled target gives what the numpy target gives (used per target).

The numpy target is the reference: the same Brian2 objects, stepped from Python with
numpy code. Compiled code (``-O3 -ffast-math``) may reorder floating-point
operations, so the comparisons are relative, to the acceptance bar given by the
caller, not bit for bit.
"""

from __future__ import annotations

import numpy as np
from brian2 import ms

import ephys_eqprop as eq


def dendrite():
    """A 4-compartment dendrite with 2-sample multi-sine inputs and targets (100 steps)."""
    c = eq.datasets.dendrite_circuit(4, seed=0)
    x = eq.datasets.multisine(2, tau_omega=1, dt=0.05 * ms, duration=5 * ms, seed=1)
    y = eq.datasets.multisine(2, tau_omega=1, dt=0.05 * ms, duration=5 * ms, seed=2,
                              n_channels=1)
    return c, x, y


def rel(a: dict, b: dict) -> float:
    """Largest ``max |a - b| / max |a|`` over the entries."""
    assert a.keys() == b.keys()
    return max(float(np.max(abs(np.asarray(a[k]) - np.asarray(b[k]))) /
                     np.max(abs(np.asarray(a[k])))) for k in a)


def time_varying(problem, estimator, target: str, tol: float) -> float:
    """Gradients, output trajectory, loss and final states of ``target`` vs numpy."""
    c, x, y = problem
    loss = eq.losses.MSE()
    nets, grads, infos = {}, {}, {}
    for tgt in ("numpy", target):
        nets[tgt] = c.build(batch=2, dt=0.05 * ms, target=tgt)
        grads[tgt] = estimator.gradient(nets[tgt], x, y, loss)
        infos[tgt] = estimator.info
    err = rel(grads["numpy"], grads[target])
    assert err < tol, err
    z_np, z_tg = infos["numpy"].z, infos[target].z
    assert z_np.shape == z_tg.shape == (100, 2, 1)
    assert np.max(abs(z_np - z_tg)) <= tol * np.max(abs(z_np))
    assert abs(infos["numpy"].loss - infos[target].loss) <= tol * infos["numpy"].loss
    for name in ("h", "y"):
        a = np.asarray(nets["numpy"].voltages(name))
        b = np.asarray(nets[target].voltages(name))
        assert np.max(abs(a - b)) <= tol * np.max(abs(a))
    return err


def hh_network(target: str, tol: float) -> float:
    """Adjoint gradient of an HH network (gates, exprel rates, chemical synapses)."""
    task = eq.datasets.hh_task(n_in=2, n_hidden=3, n_train=2, n_val=1, n_test=1,
                               duration=10 * ms)
    loss = eq.losses.MSE()
    grads = {}
    for tgt in ("numpy", target):
        net = task.student.build(batch=2, dt=task.dt, target=tgt)
        grads[tgt] = eq.Adjoint().gradient(net, task.x_train, task.y_train, loss)
    err = rel(grads["numpy"], grads[target])
    assert err < tol, err
    return err
