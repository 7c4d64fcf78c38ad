"""Learning: optimizers on conductances, bounds, and a Trainer with checkpoints.

Learning is gradient descent on the circuit's physical parameters,
``θ ← clip(θ - step(dL/dθ), θ_min, θ_max)``, with the gradient from any estimator
(EP, SymmetricEP, ...). Conductances never go negative.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from brian2 import Quantity, get_dimensions, siemens

from .elements.base import check_quantity
from .phases import PhaseRequest, run_program

__all__ = ["Bounds", "Optimizer", "SGD", "Momentum", "Adam", "Trainer", "History"]


@dataclass(frozen=True, kw_only=True)
class Bounds:
    """Bounds on the learnable conductances.

    Parameters
    ----------
    g_min : Quantity, siemens
        Lower bound, at least 0 (default 0 S).
    g_max : Quantity, siemens or None
        Upper bound (default: none).
    """

    g_min: Quantity = field(default_factory=lambda: 0 * siemens)
    g_max: Quantity | None = None

    def __post_init__(self):
        check_quantity("Bounds(g_min=...)", self.g_min, siemens, nonnegative=True,
                       allow_array=False)
        if self.g_max is not None:
            check_quantity("Bounds(g_max=...)", self.g_max, siemens, nonnegative=True,
                           allow_array=False)
            if float(self.g_max) <= float(self.g_min):
                raise ValueError(f"Bounds needs g_max > g_min; got g_min={self.g_min}, "
                                 f"g_max={self.g_max}.")

    def clip(self, values: np.ndarray) -> np.ndarray:
        hi = np.inf if self.g_max is None else float(self.g_max)
        return np.clip(values, float(self.g_min), hi)


class Optimizer:
    """Base optimizer: turns gradients into parameter updates, keeps bounds.

    Parameters
    ----------
    lr : Quantity or float
        Learning rate. For :class:`SGD` and :class:`Momentum` its units are
        parameter units per gradient unit (S/V² for a conductance and a power
        loss); for :class:`Adam`, parameter units (siemens): the size of a step.
    bounds : Bounds, optional
        Default ``Bounds()`` (conductances ≥ 0).
    """

    def __init__(self, lr, *, bounds: Bounds | None = None):
        if isinstance(lr, bool) or not isinstance(lr, (int, float, Quantity, np.floating)):
            raise TypeError(f"lr must be a number or a Brian2 quantity; got {lr!r}.")
        if not float(lr) > 0:
            raise ValueError(f"lr must be positive; got {lr!r}.")
        self.lr = lr
        self.bounds = Bounds() if bounds is None else bounds
        self.state: dict[str, np.ndarray] = {}
        self.t = 0

    def _direction(self, name: str, grad: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check_lr(self, params: dict, grads: dict, step_units_are_params: bool) -> None:
        """A plain-number ``lr`` is taken in SI units; a Quantity must have the right ones."""
        if not isinstance(self.lr, Quantity):
            return
        for name, p in params.items():
            want = Quantity(1.0, dim=get_dimensions(p))
            if not step_units_are_params:
                want = want / Quantity(1.0, dim=get_dimensions(grads[name]))
            if get_dimensions(self.lr) is not get_dimensions(want):
                raise TypeError(
                    f"{type(self).__name__}(lr=...) must have dimensions "
                    f"{get_dimensions(want)} for parameter {name!r}; got {self.lr!r}."
                )

    _lr_in_param_units = False

    def step(self, params: dict, grads: dict) -> dict:
        """New parameter values after one step.

        Parameters
        ----------
        params : dict of str to Quantity
            Current values (from ``net.get_params()``).
        grads : dict of str to Quantity
            ``dL/dθ`` by the same names.

        Returns
        -------
        dict of str to Quantity
        """
        missing = set(params) - set(grads)
        if missing:
            raise KeyError(f"No gradient for parameters {sorted(missing)}.")
        self._check_lr(params, grads, self._lr_in_param_units)
        self.t += 1
        lr = float(self.lr)
        out = {}
        for name, p in params.items():
            g = np.asarray(grads[name], dtype=float)
            if not np.all(np.isfinite(g)):
                raise FloatingPointError(f"The gradient of {name!r} has NaN or infinite entries.")
            new = np.asarray(p, dtype=float) - lr * self._direction(name, g)
            out[name] = Quantity(self.bounds.clip(new), dim=get_dimensions(p))
        return out

    def state_dict(self) -> dict:
        """Arrays and counters to checkpoint."""
        return {"t": self.t, **{f"state/{k}": v for k, v in self.state.items()}}

    def load_state_dict(self, d: dict) -> None:
        self.t = int(d.get("t", 0))
        self.state = {k[len("state/"):]: np.array(v) for k, v in d.items()
                      if k.startswith("state/")}

    def __repr__(self):
        return f"{type(self).__name__}(lr={self.lr!r}, bounds={self.bounds!r})"


class SGD(Optimizer):
    """Plain gradient descent ``θ ← θ - lr·g``."""

    def _direction(self, name, grad):
        return grad


class Momentum(Optimizer):
    """Heavy-ball momentum ``u ← μ u + g``, ``θ ← θ - lr·u``.

    Parameters
    ----------
    lr : Quantity or float
    momentum : float
        μ in [0, 1).
    bounds : Bounds, optional
    """

    def __init__(self, lr, momentum: float = 0.9, *, bounds: Bounds | None = None):
        super().__init__(lr, bounds=bounds)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1); got {momentum}.")
        self.momentum = float(momentum)

    def _direction(self, name, grad):
        u = self.state.get(name, np.zeros_like(grad))
        u = self.momentum * u + grad
        self.state[name] = u
        return u


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) on conductances; ``lr`` in parameter units (siemens).

    Parameters
    ----------
    lr : Quantity, siemens
        Step size.
    beta1, beta2 : float
        Decay rates of the first and second moment estimates.
    eps : float
        Regulariser of the second moment, relative to the gradient scale.
    bounds : Bounds, optional
    """

    _lr_in_param_units = True

    def __init__(self, lr, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, *,
                 bounds: Bounds | None = None):
        super().__init__(lr, bounds=bounds)
        for nm, val in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= val < 1:
                raise ValueError(f"{nm} must lie in [0, 1); got {val}.")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def _direction(self, name, grad):
        m = self.beta1 * self.state.get(f"{name}/m", np.zeros_like(grad)) + \
            (1 - self.beta1) * grad
        v = self.beta2 * self.state.get(f"{name}/v", np.zeros_like(grad)) + \
            (1 - self.beta2) * grad ** 2
        self.state[f"{name}/m"], self.state[f"{name}/v"] = m, v
        mhat = m / (1 - self.beta1 ** self.t)
        vhat = v / (1 - self.beta2 ** self.t)
        scale = np.sqrt(vhat)
        floor = self.eps * max(float(np.max(scale)), 1e-300)
        return mhat / (scale + floor)


@dataclass
class History:
    """Per-epoch records of a training run (lists, one entry per epoch)."""

    epoch: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    train_accuracy: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    seconds: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls(**{k: list(v) for k, v in d.items()})


def accuracy(z: np.ndarray, y_prepared: np.ndarray) -> float:
    """Fraction of samples classified right.

    ``K > 1``: ``argmax z == argmax y``. ``K == 1``: ``sign z == sign y``.
    """
    if z.shape[1] == 1:
        return float(np.mean(np.sign(z[:, 0]) == np.sign(y_prepared[:, 0])))
    return float(np.mean(np.argmax(z, axis=1) == np.argmax(y_prepared, axis=1)))


class Trainer:
    """Mini-batch training of a circuit's conductances with a local gradient estimator.

    Parameters
    ----------
    net : CircuitNetwork
        Built with ``batch`` equal to the mini-batch size.
    estimator : Estimator
        e.g. ``SymmetricEP(beta=0.05)``.
    loss : Loss
    optimizer : Optimizer
    checkpoint : str or Path, optional
        File (``.npz``) written after every epoch and when training is
        interrupted (Ctrl-C): conductances, optimizer state, epoch, position in
        the epoch, shuffling RNG state and history. ``fit(..., resume=True)``
        continues from it.
    seed : int
        Seed of the shuffling RNG.
    progress : bool
        Print one line per epoch (and a live bar on a terminal).
    """

    def __init__(self, net, estimator, loss, optimizer: Optimizer, *, checkpoint=None,
                 seed: int = 0, progress: bool = True):
        self.net, self.estimator, self.loss, self.optimizer = net, estimator, loss, optimizer
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.rng = np.random.default_rng(seed)
        self.progress = progress
        self.history = History()
        self.epoch = 0
        self._perm = None
        self._pos = 0
        self._run_loss, self._run_acc, self._run_n = 0.0, 0.0, 0

    # ------------------------------------------------------------------ evaluation
    def predict(self, X) -> np.ndarray:
        """Free-phase output values ``z`` (n_samples, K), volt as plain floats."""
        net, B, n = self.net, self.net.batch, len(X)

        def program():
            out = []
            for s in range(0, n, B):
                net.set_inputs(X[s:s + B])
                res = yield PhaseRequest(0.0, None, self.estimator.settle)
                z = self.loss.readout(res.v_out, net.circuit.differential)
                out.append(z[: min(B, n - s)])
            return np.concatenate(out)

        return run_program(net, program())

    def evaluate(self, X, Y) -> dict:
        """Mean loss and accuracy on a data set (free phases only).

        Static data: loss in watt and classification accuracy. Waveforms
        (:class:`~ephys_eqprop.TimeSeries`): the integrated loss in joule (mean
        over samples), accuracy NaN.
        """
        if self.net.loss is not self.loss:
            self.net.attach_loss(self.loss)
        if self._dynamic(X):
            from .dynamics import loss_terms, prepare, simulate

            total, B = 0.0, self.net.batch
            for s in range(0, len(X), B):
                sl = slice(s, min(s + B, len(X)))
                prob = prepare(self.net, X[sl], Y[sl], self.loss)
                traj = simulate(self.net, prob, loss=self.loss)
                total += loss_terms(self.net, prob, self.loss, traj.v_out)[0] * (sl.stop - s)
            return {"loss": total / len(X), "accuracy": float("nan")}
        z = self.predict(X)
        y = self.loss.prepare_targets(Y, self.net.circuit.n_outputs)
        return {"loss": float(np.mean(self.loss.cost(z, y))), "accuracy": accuracy(z, y)}

    # ------------------------------------------------------------------ checkpoints
    def save(self, path=None) -> Path:
        """Write a checkpoint (``.npz``, no pickles) and return its path."""
        path = Path(path) if path is not None else self.checkpoint
        if path is None:
            raise ValueError("No checkpoint path: pass path= or Trainer(checkpoint=...).")
        arrays = {f"param/{k}": np.asarray(v, dtype=float)
                  for k, v in self.net.get_params().items()}
        opt = self.optimizer.state_dict()
        arrays.update({f"opt/{k}": np.asarray(v) for k, v in opt.items() if k != "t"})
        if self._perm is not None:
            arrays["perm"] = self._perm
        meta = {"epoch": self.epoch, "pos": self._pos, "opt_t": opt["t"],
                "running": [self._run_loss, self._run_acc, self._run_n],
                "rng": self.rng.bit_generator.state, "history": self.history.to_dict(),
                "optimizer": repr(self.optimizer)}
        arrays["meta"] = np.array(json.dumps(meta))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        return path

    def load(self, path=None) -> None:
        """Restore conductances, optimizer state, epoch, RNG and history."""
        path = Path(path) if path is not None else self.checkpoint
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            params = self.net.get_params()
            new = {}
            for k in params:
                key = f"param/{k}"
                if key not in f:
                    raise ValueError(f"Checkpoint {path} has no values for connection {k!r}; "
                                     "was it written for another circuit?")
                new[k] = Quantity(f[key], dim=get_dimensions(params[k]))
            self.net.set_params(new)
            opt = {k[len("opt/"):]: f[k] for k in f.files if k.startswith("opt/")}
            opt["t"] = meta["opt_t"]
            self.optimizer.load_state_dict(opt)
            self._perm = np.array(f["perm"]) if "perm" in f.files else None
        self.epoch, self._pos = meta["epoch"], meta["pos"]
        self._run_loss, self._run_acc, self._run_n = meta["running"]
        self.rng.bit_generator.state = meta["rng"]
        self.history = History.from_dict(meta["history"])

    # ------------------------------------------------------------------ training
    def _bar(self, done, total, loss, t0):
        if not (self.progress and sys.stderr.isatty()):
            return
        width = 30
        fill = int(width * done / max(total, 1))
        sys.stderr.write(f"\r  epoch {self.epoch + 1} [{'#' * fill}{'.' * (width - fill)}] "
                         f"{done}/{total} loss {loss:.3e} {time.time() - t0:.0f}s")
        sys.stderr.flush()

    def _epoch_program(self, X, Y, B, n, t0):
        """Phase program of the rest of an epoch: gradient and update per mini-batch."""
        est, net, loss = self.estimator, self.net, self.loss
        while self._pos < n:
            idx = self._perm[self._pos:self._pos + B]
            w, y_full = est._setup(net, X[idx], Y[idx], loss)
            flat = yield from est.program(net, w, y_full, loss)
            grads = est._to_params(net, flat)
            info = est.info
            k = len(idx)
            self._run_loss += info.loss * k
            self._run_acc += accuracy(info.z, y_full[:k]) * k
            self._run_n += k
            net.set_params(self.optimizer.step(net.get_params(), grads))
            self._pos += k
            self._bar(self._pos, n, self._run_loss / self._run_n, t0)

    @staticmethod
    def _dynamic(X) -> bool:
        from .dynamics import TimeSeries

        return isinstance(X, TimeSeries)

    def _dynamic_epoch(self, X, Y, B, n, t0):
        """The rest of an epoch of waveform data: one estimator call per mini-batch.

        Estimators that estimate a subset of the parameters (``LagrangianEP(params=)``)
        update only that subset.
        """
        est, net, loss = self.estimator, self.net, self.loss
        while self._pos < n:
            idx = self._perm[self._pos:self._pos + B]
            grads = est.gradient(net, X[idx], Y[idx], loss)
            k = len(idx)
            self._run_loss += est.info.loss * k
            self._run_acc += float("nan")
            self._run_n += k
            params = net.get_params()
            net.set_params(self.optimizer.step({n_: params[n_] for n_ in grads}, grads))
            self._pos += k
            self._bar(self._pos, n, self._run_loss / self._run_n, t0)

    def fit(self, X, Y, *, epochs: int, batch_size: int | None = None, validation=None,
            shuffle: bool = True, resume: bool = False) -> History:
        """Train for ``epochs`` epochs (in total, counting resumed ones).

        Parameters
        ----------
        X : Quantity, shape (n_samples, n_in), volt; or TimeSeries
            Static inputs, or input waveforms for time-varying estimators
            (``Adjoint``, ``LagrangianEP``, ``FiniteDifference``).
        Y : targets as the loss expects (volt for MSE, labels for cross-entropy),
            a TimeSeries for waveform inputs
        epochs : int
        batch_size : int, optional
            At most ``net.batch`` (default ``net.batch``).
        validation : tuple (X_val, Y_val), optional
            Evaluated after every epoch.
        shuffle : bool
        resume : bool
            Continue from the checkpoint file if it exists.

        Returns
        -------
        History
        """
        B = self.net.batch if batch_size is None else batch_size
        if not 1 <= B <= self.net.batch:
            raise ValueError(f"batch_size must lie in [1, net.batch={self.net.batch}]; got {B}.")
        n = len(X)
        if len(Y) != n:
            raise ValueError(f"X has {n} samples but Y has {len(Y)}.")
        if resume and self.checkpoint is not None and self.checkpoint.exists():
            self.load()
            if self.progress:
                print(f"resumed from {self.checkpoint} at epoch {self.epoch}, "
                      f"sample {self._pos}", flush=True)
        self.net.attach_loss(self.loss)
        try:
            while self.epoch < epochs:
                t0 = time.time()
                if self._perm is None or self._pos == 0:
                    self._perm = self.rng.permutation(n) if shuffle else np.arange(n)
                    self._pos = 0
                    self._run_loss, self._run_acc, self._run_n = 0.0, 0.0, 0
                if self._dynamic(X):
                    self._dynamic_epoch(X, Y, B, n, t0)
                else:
                    run_program(self.net, self._epoch_program(X, Y, B, n, t0))
                self.epoch += 1
                self._pos = 0
                h = self.history
                h.epoch.append(self.epoch)
                h.train_loss.append(self._run_loss / max(self._run_n, 1))
                h.train_accuracy.append(self._run_acc / max(self._run_n, 1))
                if validation is not None:
                    ev = self.evaluate(*validation)
                    h.val_loss.append(ev["loss"])
                    h.val_accuracy.append(ev["accuracy"])
                h.seconds.append(time.time() - t0)
                if self.checkpoint is not None:
                    self.save()
                if self.progress:
                    if sys.stderr.isatty():
                        sys.stderr.write("\r" + " " * 70 + "\r")
                    u = "J" if self._dynamic(X) else "W"
                    acc = "" if self._dynamic(X) else f", train acc {h.train_accuracy[-1]:.3f}"
                    val = ""
                    if validation is not None:
                        val = f", val loss {h.val_loss[-1]:.3e} {u}"
                        if not self._dynamic(X):
                            val += f", val acc {h.val_accuracy[-1]:.3f}"
                    print(f"epoch {self.epoch}/{epochs}: train loss {h.train_loss[-1]:.3e} {u}"
                          f"{acc}{val} ({h.seconds[-1]:.1f} s)", flush=True)
        except KeyboardInterrupt:
            if self.checkpoint is not None:
                self.save()
                print(f"\ninterrupted: state saved to {self.checkpoint}; "
                      "fit(..., resume=True) continues", flush=True)
            raise
        return self.history
