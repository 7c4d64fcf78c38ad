"""Learning: optimizers on physical parameters, bounds, and a Trainer with checkpoints.

Learning is gradient descent on the circuit's parameters,
``θ ← clip(θ - step(dL/dθ), θ_min, θ_max)``, with the gradient from any estimator.
Rates and bounds are set per parameter — by name, by glob pattern or by unit — the
way optimizers elsewhere take parameter groups; each element supplies the default
bounds of its parameters from their declared sign (a conductance stays ≥ 0, a
directed synapse's transconductance may change sign, an inductance must be given
a positive lower bound).
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from brian2 import Quantity, get_dimensions, siemens
from brian2.units.fundamentalunits import Unit

from .dynamics import n_samples, take
from .elements.base import check_quantity
from .interrupts import InterruptGuard
from .phases import PhaseRequest, run_program

__all__ = ["Adam", "Bounds", "History", "Momentum", "Optimizer", "SGD", "Trainer"]


def _dims(q):
    return get_dimensions(q)


class Bounds:
    """Bounds on learnable parameters, with units.

    Parameters
    ----------
    low, high : Quantity, optional
        Lower and upper bound (``None``: the element's default — 0 for a
        non-negative parameter such as a conductance, none for a signed one; a
        positive parameter such as an inductance needs an explicit ``low > 0``).
    g_min, g_max : Quantity, siemens, optional
        The same for conductances (``g_min`` at least 0), as earlier versions
        spelled them.

    Examples
    --------
    >>> from brian2 import uS
    >>> from brian2.units.allunits import henry
    >>> b = Bounds(high=10 * uS)                # conductances in [0, 10 µS]
    >>> L = Bounds(low=0.1 * henry)            # inductances ≥ 0.1 H
    """

    def __init__(self, low=None, high=None, *, g_min=None, g_max=None):
        if g_min is not None or g_max is not None:
            if low is not None or high is not None:
                raise ValueError("Give Bounds(low=, high=) or the conductance spelling "
                                 "Bounds(g_min=, g_max=), not both.")
            if g_min is not None:
                check_quantity("Bounds(g_min=...)", g_min, siemens, nonnegative=True,
                               allow_array=False)
            if g_max is not None:
                check_quantity("Bounds(g_max=...)", g_max, siemens, nonnegative=True,
                               allow_array=False)
            low, high = g_min, g_max
            self._names = ("g_min", "g_max")
        else:
            self._names = ("low", "high")
        for nm, val in zip(self._names, (low, high), strict=True):
            if val is not None and not isinstance(val, Quantity) and not np.isscalar(val):
                raise TypeError(f"Bounds({nm}=...) must be a scalar Quantity; got {val!r}.")
            if val is not None and not np.isfinite(float(np.asarray(val))):
                raise ValueError(f"Bounds({nm}=...) must be finite; got {val!r}.")
        if low is not None and high is not None:
            if _dims(low) is not _dims(high):
                raise TypeError(f"Bounds({self._names[0]}, {self._names[1]}) must have the "
                                f"same units; got {low!r} and {high!r}.")
            if not float(high) > float(low):
                raise ValueError(f"Bounds needs {self._names[1]} > {self._names[0]}; got "
                                 f"{self._names[0]}={low}, {self._names[1]}={high}.")
        self.low, self.high = low, high

    @property
    def g_min(self):
        return self.low

    @property
    def g_max(self):
        return self.high

    def resolve(self, name: str, unit, sign: str) -> tuple[float, float]:
        """``(low, high)`` in SI for parameter ``name`` of dimensions ``unit`` and ``sign``.

        Raises
        ------
        TypeError
            If a bound's units differ from the parameter's.
        ValueError
            If a bound contradicts the sign (a conductance below 0) or a positive
            parameter has no positive lower bound.
        """
        for nm, val in zip(self._names, (self.low, self.high), strict=True):
            if val is not None and _dims(val) is not _dims(unit):
                raise TypeError(f"Bounds({nm}={val!r}) does not have the units of parameter "
                                f"{name!r} ({_dims(unit)}); give that parameter its own bounds, "
                                f"e.g. bounds={{{name!r}: eq.Bounds(...)}}.")
        lo = -np.inf if self.low is None else float(self.low)
        hi = np.inf if self.high is None else float(self.high)
        if sign == "nonnegative":
            if self.low is not None and lo < 0:
                raise ValueError(f"Bounds for {name!r}: {self._names[0]}={self.low} is below 0, "
                                 "but the parameter cannot be negative (a conductance).")
            lo = max(lo, 0.0)
        elif sign == "positive" and not lo > 0:
            raise ValueError(
                f"Parameter {name!r} must stay positive (e.g. an inductance); give it a positive "
                f"lower bound, e.g. bounds={{{name!r}: eq.Bounds(low=...)}} in its units "
                f"({_dims(unit)}).")
        return lo, hi

    def __eq__(self, other):
        return (isinstance(other, Bounds) and repr(self) == repr(other))

    def __hash__(self):
        return hash(repr(self))

    def __repr__(self):
        a, b = self._names
        return f"Bounds({a}={self.low!r}, {b}={self.high!r})"


def _selects(selector, name: str, unit) -> bool:
    """Whether a rate/bounds selector (name, glob pattern or Brian2 unit) picks a parameter."""
    if isinstance(selector, Unit):
        return _dims(selector) is _dims(unit)
    if isinstance(selector, str):
        return name == selector or fnmatch.fnmatchcase(name, selector)
    raise TypeError(f"Selectors of rates and bounds are parameter names, glob patterns "
                    f"('x->*', '*.g_Na') or Brian2 units (siemens); got {selector!r}.")


def _pick(table, name: str, unit, what: str):
    """The value of the first selector of a dict that picks ``name`` (or the lone value)."""
    if not isinstance(table, dict):
        return table
    for selector, value in table.items():
        if _selects(selector, name, unit):
            return value
    return None


class Optimizer:
    """Base optimizer: turns gradients into parameter updates, keeps bounds.

    Parameters
    ----------
    lr : Quantity, or dict of selector to Quantity
        Learning rate(s), with units. For :class:`SGD` and :class:`Momentum` the
        units are parameter units per gradient unit (S/V² for a conductance and a
        static power loss); for :class:`Adam`, parameter units (siemens): the size
        of a step. A single Quantity applies to every parameter whose units it
        fits; a dict gives rates by parameter name, glob pattern (``"x->*"``,
        ``"*.g_Na"``) or Brian2 unit (``siemens``, ``henry``), the first match
        winning.
    bounds : Bounds, or dict of selector to Bounds, optional
        Bounds, likewise by parameter. Parameters without bounds get the default
        of their element: ≥ 0 for a non-negative parameter, none for a signed one.
    decay : float
        Every rate is multiplied by ``decay`` after each step (1: constant rates).

    Raises
    ------
    TypeError
        A rate without units (``lr=0.01``): the units say what a step means.
    """

    #: whether the rate has the parameter's units (Adam) or parameter/gradient units
    _lr_in_param_units = False

    def __init__(self, lr, *, bounds=None, decay: float = 1.0):
        if not (np.isscalar(decay) and 0 < float(decay) <= 1):
            raise ValueError(f"decay must lie in (0, 1]; got {decay!r}.")
        self.decay = float(decay)
        table = lr if isinstance(lr, dict) else {"*": lr}
        if not table:
            raise ValueError("lr must give at least one learning rate.")
        for sel, val in table.items():
            where = "lr" if not isinstance(lr, dict) else f"lr[{sel!r}]"
            if isinstance(val, bool) or not isinstance(val, Quantity):
                example = "Adam(lr=0.1*uS)" if self._lr_in_param_units else \
                    "SGD(lr=1e-7*siemens/volt**2)"
                raise TypeError(
                    f"{type(self).__name__}({where}=...) must carry units (e.g. {example}); got "
                    f"{val!r}. A plain number would be read in SI units, and a step of 0.01 S "
                    "on a µS conductance is a thousandfold jump.")
            if not float(np.asarray(val)) > 0 or np.ndim(val) != 0:
                raise ValueError(f"{where} must be a positive scalar; got {val!r}.")
            if isinstance(lr, dict):
                _selects(sel, "", val)  # validates the selector's type
        if bounds is not None and not isinstance(bounds, (Bounds, dict)):
            raise TypeError(f"bounds must be a Bounds or a dict of them; got {bounds!r}.")
        if isinstance(bounds, dict):
            for sel, val in bounds.items():
                _selects(sel, "", 1 * siemens)
                if not isinstance(val, Bounds):
                    raise TypeError(f"bounds[{sel!r}] must be a Bounds; got {val!r}.")
        self.lr = lr
        self.bounds = bounds
        self.state: dict[str, np.ndarray] = {}
        self.t = 0
        self._resolved: dict = {}

    # ------------------------------------------------------------------ resolution
    def _expected_lr_dims(self, param, grad):
        want = Quantity(1.0, dim=_dims(param))
        if not self._lr_in_param_units:
            want = want / Quantity(1.0, dim=_dims(grad))
        return _dims(want)

    def resolve(self, params: dict, grads: dict, specs: dict | None = None) -> dict:
        """Per parameter: ``(rate, low, high)`` in SI.

        Parameters
        ----------
        params, grads : dict of str to Quantity
        specs : dict of str to ParameterSpec, optional
            The network's :attr:`~ephys_eqprop.CircuitNetwork.params` (their signs give the
            default bounds); without it every parameter counts as signed.
        """
        out = {}
        for name, p in params.items():
            want = self._expected_lr_dims(p, grads[name])
            lr = _pick(self.lr if isinstance(self.lr, dict) else {"*": self.lr}, name, p, "lr")
            if lr is None:
                raise TypeError(f"No learning rate for parameter {name!r} (units "
                                f"{_dims(p)}); add one, e.g. lr={{..., {name!r}: ...}}.")
            if _dims(lr) is not want:
                raise TypeError(
                    f"{type(self).__name__}(lr=...) for parameter {name!r} must have dimensions "
                    f"{want}; got {lr!r}. Parameters of different units need their own rates: "
                    f"lr={{{name!r}: ..., '*': ...}}.")
            sign = "signed" if specs is None else specs[name].sign
            b = _pick(self.bounds, name, p, "bounds") if self.bounds is not None else None
            lo, hi = (b if b is not None else Bounds()).resolve(name, p, sign)
            out[name] = (float(lr), lo, hi)
        return out

    def _direction(self, name: str, grad: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def step(self, params: dict, grads: dict, specs: dict | None = None) -> dict:
        """New parameter values after one step.

        Parameters
        ----------
        params : dict of str to Quantity
            Current values (from ``net.get_params()``).
        grads : dict of str to Quantity
            ``dL/dθ`` by the same names.
        specs : dict of str to ParameterSpec, optional
            ``net.params``: the parameters' signs (default bounds).

        Returns
        -------
        dict of str to Quantity
        """
        missing = set(params) - set(grads)
        if missing:
            raise KeyError(f"No gradient for parameters {sorted(missing)}.")
        resolved = self.resolve(params, grads, specs)
        for name in params:
            g = np.asarray(grads[name], dtype=float)
            if not np.all(np.isfinite(g)):
                raise FloatingPointError(f"The gradient of {name!r} has NaN or infinite entries.")
        self._resolved.update(resolved)
        self.t += 1
        factor = self.decay ** (self.t - 1)
        out = {}
        for name, p in params.items():
            lr, lo, hi = resolved[name]
            lr *= factor
            g = np.asarray(grads[name], dtype=float)
            new = np.asarray(p, dtype=float) - lr * self._direction(name, g)
            out[name] = Quantity(np.clip(new, lo, hi), dim=_dims(p))
        return out

    def state_dict(self) -> dict:
        """Arrays and counters to checkpoint (moments, step count, resolved rates and bounds)."""
        return {"t": self.t, "config": {k: list(v) for k, v in self._resolved.items()},
                **{f"state/{k}": v for k, v in self.state.items()}}

    def load_state_dict(self, d: dict) -> None:
        self.t = int(d.get("t", 0))
        self.state = {k[len("state/"):]: np.array(v) for k, v in d.items()
                      if k.startswith("state/")}
        saved = d.get("config") or {}
        self._saved_config = {k: tuple(v) for k, v in saved.items()}

    def check_config(self, params: dict, grads: dict, specs: dict | None) -> None:
        """Warn if the rates and bounds differ from those a checkpoint was trained with."""
        saved = getattr(self, "_saved_config", None)
        if not saved:
            return
        now = self.resolve(params, grads, specs)
        changed = sorted(k for k in now if k in saved and tuple(saved[k]) != tuple(now[k]))
        if changed:
            warnings.warn(f"Resuming with rates or bounds that differ from the checkpoint's for "
                          f"{changed}; the run will not reproduce an uninterrupted one.",
                          UserWarning, stacklevel=3)
        self._saved_config = None

    def __repr__(self):
        extra = "" if self.decay == 1 else f", decay={self.decay!r}"
        return f"{type(self).__name__}(lr={self.lr!r}, bounds={self.bounds!r}{extra})"


class SGD(Optimizer):
    """Plain gradient descent ``θ ← θ - lr·g``; ``lr`` in parameter per gradient units."""

    def _direction(self, name, grad):
        return grad


class Momentum(Optimizer):
    """Heavy-ball momentum ``u ← μ u + g``, ``θ ← θ - lr·u``.

    Parameters
    ----------
    lr : Quantity or dict
        As for :class:`Optimizer` (parameter per gradient units).
    momentum : float
        μ in [0, 1).
    bounds : Bounds or dict, optional
    """

    def __init__(self, lr, momentum: float = 0.9, *, bounds=None, decay: float = 1.0):
        super().__init__(lr, bounds=bounds, decay=decay)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1); got {momentum}.")
        self.momentum = float(momentum)

    def _direction(self, name, grad):
        u = self.state.get(name, np.zeros_like(grad))
        u = self.momentum * u + grad
        self.state[name] = u
        return u


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015); ``lr`` in parameter units: the size of a step.

    Parameters
    ----------
    lr : Quantity or dict
        Step size per parameter (siemens for a conductance, henry for an
        inductance); see :class:`Optimizer`.
    beta1, beta2 : float
        Decay rates of the first and second moment estimates.
    eps : float
        Regulariser of the second moment, relative to the gradient scale.
    bounds : Bounds or dict, optional
    decay : float
        Multiplies the step size after each step.
    """

    _lr_in_param_units = True

    def __init__(self, lr, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, *,
                 bounds=None, decay: float = 1.0):
        super().__init__(lr, bounds=bounds, decay=decay)
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


#: where an epoch stands: its permutation not drawn yet, training, validating
_STAGES = ("start", "train", "validate")


class Trainer:
    """Mini-batch training of a circuit's parameters with a gradient estimator.

    Parameters
    ----------
    net : CircuitNetwork
        Built with ``batch`` equal to the mini-batch size.
    estimator : Estimator
        e.g. ``SymmetricEP(beta=0.05)`` or ``Adjoint()``.
    loss : Loss
    optimizer : Optimizer
    checkpoint : str or Path, optional
        File (``.npz``) written after every epoch and when training is
        interrupted (Ctrl-C): parameters, optimizer state with its rates and
        bounds, epoch, position in the epoch, shuffling permutation and RNG state,
        history. ``fit(..., resume=True)`` continues from it and ends where an
        uninterrupted run ends, bit for bit.
    seed : int
        Seed of the shuffling RNG.
    progress : bool
        Print one line per epoch (and a live bar on a terminal).

    Notes
    -----
    An interrupt never splits an update: training state changes only in short
    critical sections (an optimizer step with its bookkeeping; the end of an
    epoch) during which Ctrl-C is held (:mod:`ephys_eqprop.interrupts`). A
    gradient being computed when it arrives is discarded and computed again on
    resume.
    """

    def __init__(self, net, estimator, loss, optimizer: Optimizer, *, checkpoint=None,
                 seed: int = 0, progress: bool = True):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an ephys_eqprop Optimizer such as "
                            f"eq.Adam(lr=0.1*uS); got {type(optimizer).__name__}.")
        self.net, self.estimator, self.loss, self.optimizer = net, estimator, loss, optimizer
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.rng = np.random.default_rng(seed)
        self.progress = progress
        self.history = History()
        self.epoch = 0
        self._stage = "start"
        self._perm = None
        self._pos = 0
        self._run_loss, self._run_acc, self._run_n = 0.0, 0.0, 0
        self._guard = InterruptGuard()

    # ------------------------------------------------------------------ evaluation
    def predict(self, X) -> np.ndarray:
        """Free-phase output values ``z`` (n_samples, K), volt as plain floats."""
        net, B, n = self.net, self.net.batch, n_samples(X)

        def program():
            out = []
            for s in range(0, n, B):
                net.set_inputs(take(X, slice(s, s + B)))
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

            total, B, n = 0.0, self.net.batch, n_samples(X)
            for s in range(0, n, B):
                sl = slice(s, min(s + B, n))
                prob = prepare(self.net, take(X, sl), Y[sl], self.loss)
                traj = simulate(self.net, prob, loss=self.loss)
                total += loss_terms(self.net, prob, self.loss, traj.v_out)[0] * (sl.stop - s)
            return {"loss": total / n, "accuracy": float("nan")}
        z = self.predict(X)
        y = self.loss.prepare_targets(Y, self.net.circuit.n_outputs)
        return {"loss": float(np.mean(self.loss.cost(z, y))), "accuracy": accuracy(z, y)}

    # ------------------------------------------------------------------ checkpoints
    def save(self, path=None) -> Path:
        """Write a checkpoint (``.npz``, no pickles) atomically and return its path."""
        path = Path(path) if path is not None else self.checkpoint
        if path is None:
            raise ValueError("No checkpoint path: pass path= or Trainer(checkpoint=...).")
        with self._guard.critical():
            arrays = {f"param/{k}": np.asarray(v, dtype=float)
                      for k, v in self.net.get_params().items()}
            opt = self.optimizer.state_dict()
            arrays.update({f"opt/{k}": np.asarray(v) for k, v in opt.items()
                           if k not in ("t", "config")})
            if self._perm is not None:
                arrays["perm"] = self._perm
            meta = {"epoch": self.epoch, "pos": self._pos, "stage": self._stage,
                    "opt_t": opt["t"], "opt_config": opt["config"],
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
        """Restore parameters, optimizer state, epoch and stage, permutation, RNG and history."""
        path = Path(path) if path is not None else self.checkpoint
        with self._guard.critical(), np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            params = self.net.get_params()
            new = {}
            for k in params:
                key = f"param/{k}"
                if key not in f:
                    raise ValueError(f"Checkpoint {path} has no values for parameter {k!r}; "
                                     "was it written for another circuit?")
                new[k] = Quantity(f[key], dim=get_dimensions(params[k]))
            self.net.set_params(new)
            opt = {k[len("opt/"):]: f[k] for k in f.files if k.startswith("opt/")}
            opt["t"] = meta["opt_t"]
            opt["config"] = meta.get("opt_config", {})
            self.optimizer.load_state_dict(opt)
            self._perm = np.array(f["perm"]) if "perm" in f.files else None
            self.epoch, self._pos = meta["epoch"], meta["pos"]
            self._stage = meta.get("stage", "train" if self._pos else "start")
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

    def _update(self, grads: dict, info, k: int, acc: float) -> None:
        """One optimizer step and its bookkeeping: a critical section."""
        net = self.net
        params = net.get_params()
        params = {n: params[n] for n in grads}
        self.optimizer.check_config(params, grads, net.params)
        self.optimizer.resolve(params, grads, net.params)  # bad rates fail before any change
        with self._guard.critical():
            net.set_params(self.optimizer.step(params, grads, net.params))
            self._run_loss += info.loss * k
            self._run_acc += acc * k
            self._run_n += k
            self._pos += k

    def _epoch_program(self, X, Y, B, n, t0):
        """Phase program of the rest of an epoch: gradient and update per mini-batch."""
        est, net, loss = self.estimator, self.net, self.loss
        while self._pos < n:
            idx = self._perm[self._pos:self._pos + B]
            w, y_full = est._setup(net, take(X, idx), Y[idx], loss)
            flat = yield from est.program(net, w, y_full, loss)
            grads = est._to_params(net, flat)
            k = len(idx)
            self._update(grads, est.info, k, accuracy(est.info.z, y_full[:k]))
            self._bar(self._pos, n, self._run_loss / self._run_n, t0)

    @staticmethod
    def _dynamic(X) -> bool:
        from .dynamics import is_waveform

        return is_waveform(X)

    def _dynamic_epoch(self, X, Y, B, n, t0):
        """The rest of an epoch of waveform data: one estimator call per mini-batch.

        Estimators that estimate a subset of the parameters (``LagrangianEP(params=)``)
        update only that subset.
        """
        est, net, loss = self.estimator, self.net, self.loss
        while self._pos < n:
            idx = self._perm[self._pos:self._pos + B]
            grads = est.gradient(net, take(X, idx), Y[idx], loss)
            self._update(grads, est.info, len(idx), float("nan"))
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

        Raises
        ------
        KeyboardInterrupt
            On Ctrl-C, after saving a consistent checkpoint (if one is set).
        """
        B = self.net.batch if batch_size is None else batch_size
        if not 1 <= B <= self.net.batch:
            raise ValueError(f"batch_size must lie in [1, net.batch={self.net.batch}]; got {B}.")
        n = n_samples(X)
        if len(Y) != n:
            raise ValueError(f"X has {n} samples but Y has {len(Y)}.")
        dynamic = self._dynamic(X)
        with self._guard:
            try:
                if resume and self.checkpoint is not None and self.checkpoint.exists():
                    self.load()
                    if self.progress:
                        print(f"resumed from {self.checkpoint} at epoch {self.epoch}, "
                              f"sample {self._pos} ({self._stage})", flush=True)
                self.net.attach_loss(self.loss)
                while self.epoch < epochs:
                    self._one_epoch(X, Y, B, n, epochs, validation, shuffle, dynamic)
            except KeyboardInterrupt:
                self._guard.seen()
                if self.checkpoint is not None:
                    self.save()
                    print(f"\ninterrupted: state saved to {self.checkpoint}; "
                          "fit(..., resume=True) continues", flush=True)
                raise
        return self.history

    def _one_epoch(self, X, Y, B, n, epochs, validation, shuffle, dynamic):
        t0 = time.time()
        if self._stage == "start":
            with self._guard.critical():
                self._perm = self.rng.permutation(n) if shuffle else np.arange(n)
                self._pos = 0
                self._run_loss, self._run_acc, self._run_n = 0.0, 0.0, 0
                self._stage = "train"
        if self._stage == "train":
            if dynamic:
                self._dynamic_epoch(X, Y, B, n, t0)
            else:
                run_program(self.net, self._epoch_program(X, Y, B, n, t0))
            with self._guard.critical():
                self._stage = "validate"
        ev = self.evaluate(*validation) if validation is not None else None
        h = self.history
        with self._guard.critical():
            h.epoch.append(self.epoch + 1)
            h.train_loss.append(self._run_loss / max(self._run_n, 1))
            h.train_accuracy.append(self._run_acc / max(self._run_n, 1))
            if ev is not None:
                h.val_loss.append(ev["loss"])
                h.val_accuracy.append(ev["accuracy"])
            h.seconds.append(time.time() - t0)
            self.epoch += 1
            self._stage, self._pos, self._perm = "start", 0, None
        if self.checkpoint is not None:
            self.save()
        if self.progress:
            if sys.stderr.isatty():
                sys.stderr.write("\r" + " " * 70 + "\r")
            u = "J" if dynamic else "W"
            acc = "" if dynamic else f", train acc {h.train_accuracy[-1]:.3f}"
            val = ""
            if validation is not None:
                val = f", val loss {h.val_loss[-1]:.3e} {u}"
                if not dynamic:
                    val += f", val acc {h.val_accuracy[-1]:.3f}"
            print(f"epoch {self.epoch}/{epochs}: train loss {h.train_loss[-1]:.3e} {u}"
                  f"{acc}{val} ({h.seconds[-1]:.1f} s)", flush=True)
