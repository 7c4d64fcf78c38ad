"""A training run that the interrupt tests send real SIGINTs to (run as a script).

Usage: ``python interrupt_child.py CHECKPOINT MODE EXIT_FIRST``, MODE ``static`` (symmetric
EP on a small regression, every mini-batch inside one Brian2 run) or ``dynamic``
(Adjoint on waveforms, one Brian2 run per phase). It prints a marker line at points of
the epoch (before and after each update, at validation, at checkpoint writes) so that
the test can aim its signals; after an interrupt it reads the checkpoint back in a
fresh trainer and prints its counters, then resumes in the same process (or exits with
status 3 the first time if EXIT_FIRST is 1, to be resumed by a new process). At the end
it prints the final parameters as hexadecimal floats.
"""

from __future__ import annotations

import json
import signal
import sys
import time

import numpy as np
from brian2 import ms, uS, volt

import ephys_eqprop as eq

# static epochs are short (30 ms per update): enough of them that the test's delayed
# signals still find training to interrupt on a fast machine
EPOCHS = {"static": 8, "dynamic": 5}
BATCH = 2
# validation of these small circuits takes milliseconds, less than a signal aimed at it
# may take to arrive on a loaded machine; a pause after it, still in the "validate"
# stage (the epoch's bookkeeping has not begun), keeps the stage open long enough that
# such a signal lands there whatever the speed of the run
VALIDATE_PAUSE = 0.25  # seconds


def data(mode: str):
    rng = np.random.default_rng(11)
    if mode == "static":
        X = rng.uniform(-1, 1, (8, 2)) * volt
        Y = (0.1 * np.tanh(2 * np.asarray(X) @ np.array([[0.7], [-0.4]]))) * volt
        return (X[:6], Y[:6]), (X[6:], Y[6:])
    c = eq.datasets.dendrite_circuit(3, seed=2)
    x = eq.datasets.multisine(6, tau_omega=1.0, dt=0.05 * ms, duration=3 * ms, seed=4,
                              n_channels=2)
    teacher = c.build(batch=6, dt=0.05 * ms)
    from ephys_eqprop.dynamics import prepare, simulate

    v = simulate(teacher, prepare(teacher, x)).v_out
    y = eq.TimeSeries(np.transpose(v, (1, 0, 2)) * volt, dt=0.05 * ms)
    return (x[:4], y[:4]), (x[4:], y[4:])


def trainer(path: str, mode: str) -> eq.Trainer:
    if mode == "static":
        net = eq.layered(2, [4], 1, rng=0, differential_outputs=False,
                         g_init=10 * uS).build(batch=BATCH)
        est = eq.SymmetricEP(beta=0.05, settle=eq.Settle(tol=1e-9 * volt))
    else:
        net = eq.datasets.dendrite_circuit(3, seed=5).build(batch=BATCH, dt=0.05 * ms)
        est = eq.Adjoint()
    return eq.Trainer(net, est, eq.losses.MSE(g_nudge=1 * uS), eq.Adam(lr=0.2 * uS),
                      checkpoint=path, seed=3, progress=False)


def mark(what: str) -> None:
    print(f"MARK {what}", flush=True)


def instrument(tr: eq.Trainer) -> None:
    """Markers at the points of an epoch the test aims at (wrapping, not changing, them)."""
    update, evaluate, save = tr._update, tr.evaluate, tr.save

    def _update(*args, **kwargs):
        mark("update")
        update(*args, **kwargs)
        mark("updated")

    def _evaluate(*args, **kwargs):
        mark("validate")
        out = evaluate(*args, **kwargs)
        time.sleep(VALIDATE_PAUSE)
        return out

    def _save(*args, **kwargs):
        if sys.exc_info()[0] is None:  # not the save of an interrupt being handled
            mark("save")
        return save(*args, **kwargs)

    tr._update, tr.evaluate, tr.save = _update, _evaluate, _save


def main(path: str, mode: str, exit_first: bool) -> int:
    train, val = data(mode)
    done = False
    while not done:
        try:
            tr = trainer(path, mode)
            instrument(tr)
            tr.fit(*train, epochs=EPOCHS[mode], batch_size=BATCH, validation=val, resume=True)
            done = True
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a late signal: training is over
        except KeyboardInterrupt:
            if done:
                break
            check = trainer(path, mode)
            check.load()
            counters = {"epoch": check.epoch, "pos": check._pos, "stage": check._stage,
                        "t": check.optimizer.t, "epochs_recorded": len(check.history.epoch),
                        "val_recorded": len(check.history.val_loss)}
            print("INTERRUPTED " + json.dumps(counters), flush=True)
            if exit_first:
                return 3
    final = {k: [float(v).hex() for v in np.asarray(p, dtype=float).ravel()]
             for k, p in tr.net.get_params().items()}
    print("DONE " + json.dumps(final), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3] == "1"))
