"""A software multilayer perceptron trained by backpropagation, in numpy only.

The reference network of ``train_accuracy.py``: the same layer sizes as the
circuit (``n_in -> hidden... -> n_classes``), a saturating hidden nonlinearity
(``tanh``, or ``hardtanh``, the clipping the diode neurons approximate), softmax
cross-entropy and Adam. No autodiff library: the backward pass is written out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["MLP", "MLPHistory", "train_mlp"]

_ACTIVATIONS = {
    "tanh": (np.tanh, lambda a, h: 1.0 - h ** 2),
    "hardtanh": (lambda a: np.clip(a, -1.0, 1.0),
                 lambda a, h: ((a > -1.0) & (a < 1.0)).astype(float)),
}


class MLP:
    """A fully connected network with softmax outputs.

    Parameters
    ----------
    sizes : sequence of int
        Layer sizes ``[n_in, h1, ..., n_classes]``.
    activation : {"tanh", "hardtanh"}
        Hidden-unit nonlinearity.
    rng : numpy.random.Generator or int, optional
        Source of the Glorot-uniform initial weights (biases start at 0).
    """

    def __init__(self, sizes, *, activation: str = "tanh", rng=None):
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must list at least two positive layer sizes; got {sizes}.")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}; "
                             f"got {activation!r}.")
        rng = np.random.default_rng(rng)
        self.sizes, self.activation = sizes, activation
        self.params: list[np.ndarray] = []
        for n_a, n_b in zip(sizes[:-1], sizes[1:], strict=True):
            lim = np.sqrt(6.0 / (n_a + n_b))
            self.params += [rng.uniform(-lim, lim, (n_a, n_b)), np.zeros(n_b)]

    @property
    def n_params(self) -> int:
        return int(sum(p.size for p in self.params))

    def _forward(self, X):
        f, _ = _ACTIVATIONS[self.activation]
        pre, post = [], [X]
        h = X
        n_layers = len(self.params) // 2
        for k in range(n_layers):
            a = h @ self.params[2 * k] + self.params[2 * k + 1]
            pre.append(a)
            h = f(a) if k < n_layers - 1 else a
            post.append(h)
        return pre, post

    def logits(self, X: np.ndarray) -> np.ndarray:
        """Output logits, shape (n_samples, n_classes)."""
        return self._forward(np.asarray(X, float))[1][-1]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted class labels, shape (n_samples,)."""
        return np.argmax(self.logits(X), axis=1)

    def accuracy(self, X: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(X) == np.asarray(y)))

    def loss_and_grads(self, X: np.ndarray, y: np.ndarray):
        """Mean cross-entropy and its gradient with respect to every parameter."""
        _, df = _ACTIVATIONS[self.activation]
        pre, post = self._forward(np.asarray(X, float))
        z = post[-1] - post[-1].max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        n = len(y)
        onehot = np.eye(self.sizes[-1])[y]
        loss = -float(np.sum(onehot * logp)) / n
        delta = (np.exp(logp) - onehot) / n
        grads = [None] * len(self.params)
        for k in range(len(self.params) // 2 - 1, -1, -1):
            grads[2 * k] = post[k].T @ delta
            grads[2 * k + 1] = delta.sum(axis=0)
            if k > 0:
                delta = (delta @ self.params[2 * k].T) * df(pre[k - 1], post[k])
        return loss, grads


class _Adam:
    def __init__(self, params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.b1, self.b2, self.eps, self.t = lr, beta1, beta2, eps, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, params, grads):
        self.t += 1
        for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g ** 2
            mhat = m / (1 - self.b1 ** self.t)
            vhat = v / (1 - self.b2 ** self.t)
            p -= self.lr * mhat / (np.sqrt(vhat) + self.eps)


@dataclass
class MLPHistory:
    """Per-epoch records of :func:`train_mlp` (lists, one entry per epoch)."""

    epoch: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    train_accuracy: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    seconds: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in self.__dict__.items()}


def train_mlp(X: np.ndarray, y: np.ndarray, sizes, *, epochs: int, batch_size: int,
              lr: float = 1e-2, activation: str = "tanh", seed: int = 0,
              validation=None) -> tuple[MLP, MLPHistory]:
    """Train an :class:`MLP` with mini-batch Adam on softmax cross-entropy.

    Parameters
    ----------
    X : numpy.ndarray, shape (n_samples, n_in)
        Inputs (the same values as the circuit's input voltages, in volt, as floats).
    y : numpy.ndarray of int, shape (n_samples,)
    sizes : sequence of int
        ``[n_in, h1, ..., n_classes]``.
    epochs, batch_size : int
    lr : float
        Adam step size.
    activation : {"tanh", "hardtanh"}
    seed : int
        Seeds the initial weights and the shuffling.
    validation : tuple (X_val, y_val), optional
        Accuracy recorded after every epoch (never used to choose anything here).

    Returns
    -------
    (MLP, MLPHistory)
    """
    X, y = np.asarray(X, float), np.asarray(y, int)
    rng = np.random.default_rng(seed)
    model = MLP(sizes, activation=activation, rng=rng)
    opt = _Adam(model.params, lr)
    hist = MLPHistory()
    for ep in range(1, epochs + 1):
        t0 = time.time()
        perm = rng.permutation(len(X))
        tot_loss = tot_acc = 0.0
        for s in range(0, len(X), batch_size):
            idx = perm[s:s + batch_size]
            acc = float(np.sum(model.predict(X[idx]) == y[idx]))
            loss, grads = model.loss_and_grads(X[idx], y[idx])
            opt.step(model.params, grads)
            tot_loss += loss * len(idx)
            tot_acc += acc
        hist.epoch.append(ep)
        hist.train_loss.append(tot_loss / len(X))
        hist.train_accuracy.append(tot_acc / len(X))
        if validation is not None:
            hist.val_accuracy.append(model.accuracy(*validation))
        hist.seconds.append(time.time() - t0)
    return model, hist
