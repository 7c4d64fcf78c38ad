"""Small built-in data sets as input voltages and class labels (no downloads).

XOR is generated; Iris and the 8×8 digits come with scikit-learn (an optional
dependency: ``pip install scikit-learn``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from brian2 import Quantity, volt

__all__ = ["Dataset", "xor", "iris", "digits", "stratified_split"]


@dataclass
class Dataset:
    """Train and test splits: inputs in volt, integer class labels.

    Attributes
    ----------
    X_train, X_test : Quantity, shape (n, n_features), volt
    y_train, y_test : numpy.ndarray of int, shape (n,)
    n_classes : int
    name : str
    """

    X_train: Quantity
    y_train: np.ndarray
    X_test: Quantity
    y_test: np.ndarray
    n_classes: int
    name: str

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]


def xor(amplitude: Quantity = 1 * volt) -> Dataset:
    """The four XOR patterns at ``±amplitude``; train and test sets are the same four."""
    X = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=float) * amplitude
    y = np.array([0, 1, 1, 0])
    return Dataset(X, y, X.copy(), y.copy(), 2, "xor")


def _sklearn(name):
    try:
        import sklearn.datasets as skd
    except ImportError as ex:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"The {name} data set ships with scikit-learn, an optional dependency; install it "
            "with `pip install scikit-learn` (or `pip install ephys-eqprop[test]`)."
        ) from ex
    return skd


def stratified_split(X, y, test_fraction: float, seed: int):
    """Stratified split: the same fraction of every class goes to the second part.

    Returns
    -------
    tuple
        ``(X_first, y_first, X_second, y_second)``; the first part is shuffled.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1); got {test_fraction}.")
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test[idx[: int(round(test_fraction * len(idx)))]] = True
    tr, te = np.flatnonzero(~test), np.flatnonzero(test)
    rng.shuffle(tr)
    return X[tr], y[tr], X[te], y[te]


def iris(*, test_fraction: float = 0.3, seed: int = 0, amplitude: Quantity = 1 * volt) -> Dataset:
    """Fisher's Iris: 4 features standardised (train statistics) and scaled to ``amplitude``."""
    skd = _sklearn("Iris")
    d = skd.load_iris()
    Xtr, ytr, Xte, yte = stratified_split(d.data.astype(float), d.target, test_fraction, seed)
    mu, sd = Xtr.mean(0), Xtr.std(0)
    scale = float(amplitude) / 2.0
    return Dataset((Xtr - mu) / sd * scale * volt, ytr, (Xte - mu) / sd * scale * volt, yte,
                   3, "iris")


def digits(*, test_fraction: float = 0.3, seed: int = 0,
           amplitude: Quantity = 1 * volt) -> Dataset:
    """scikit-learn's 8×8 handwritten digits: 64 pixel intensities 0..16 mapped to
    0..``amplitude``."""
    skd = _sklearn("digits")
    d = skd.load_digits()
    Xtr, ytr, Xte, yte = stratified_split(d.data.astype(float) / 16.0, d.target,
                                          test_fraction, seed)
    a = float(amplitude)
    return Dataset(Xtr * a * volt, ytr, Xte * a * volt, yte, 10, "digits")
