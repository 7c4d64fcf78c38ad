"""Costs on output voltages and the nudge currents they inject.

A loss reads ``K`` output values ``z`` per sample: the output node voltages, or
the differences of differential pairs ``z_k = v_k - v_{K+k}``. Its per-sample
cost ``c(z, y)`` is a power (watt), so that nudging with strength β (dimensionless)
injects the current ``i = -β ∂c/∂v`` (amp) into each output node (``docs/physics.md``, §2).
"""

from __future__ import annotations

import numpy as np
from brian2 import NeuronGroup, Quantity, Synapses, get_dimensions, second, siemens, uS, volt
from brian2.units.fundamentalunits import have_same_dimensions

from .elements.base import check_quantity

__all__ = ["Loss", "MSE", "CrossEntropy"]


class Loss:
    """Base class of losses: numpy cost and gradient, Brian2 nudge machinery.

    For time-varying inputs the loss is ``C = ∫ m(t) c(z(t), y(t)) dt`` (joule),
    with ``m`` the window set by ``window`` (all of the run by default).
    """

    g_nudge: Quantity
    #: the window of a time-varying loss: None, ``(t_start, t_end)`` or weights per step
    window = None
    #: capability: targets may be integer class labels (one per sample or time step)
    integer_targets: bool = False

    def _set_window(self, window):
        if window is None:
            self.window = None
            return
        if isinstance(window, tuple):
            if len(window) != 2:
                raise ValueError(f"window must be (t_start, t_end); got {window!r}.")
            t0 = check_quantity("window[0]", window[0], second, allow_array=False)
            t1 = check_quantity("window[1]", window[1], second, allow_array=False)
            if not 0 <= float(t0) < float(t1):
                raise ValueError(f"window must satisfy 0 <= t_start < t_end; got {window!r}.")
            self.window = (t0, t1)
            return
        arr = np.asarray(window, dtype=float)
        if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError("window must be None, (t_start, t_end) with units, or a 1-D array "
                             "of non-negative weights, one per time step of the run; got "
                             f"{window!r}.")
        self.window = arr

    def mask(self, n_steps: int, dt: float) -> np.ndarray:
        """Weights ``m_n`` of the ``n_steps`` time steps (length ``dt`` seconds) of a run.

        Raises
        ------
        ValueError
            If the window does not lie inside the run, or its length differs.
        """
        if self.window is None:
            return np.ones(n_steps)
        if isinstance(self.window, tuple):
            t0, t1 = (float(t) for t in self.window)
            T = n_steps * dt
            if t1 > T * (1 + 1e-9):
                raise ValueError(
                    f"The loss window ({t0:g} s, {t1:g} s) ends after the run, which lasts "
                    f"{T:g} s ({n_steps} steps of {dt:g} s).")
            t = np.arange(n_steps) * dt
            m = ((t >= t0 - 1e-9 * dt) & (t < t1 - 1e-9 * dt)).astype(float)
            if not m.any():
                raise ValueError(f"The loss window ({t0:g} s, {t1:g} s) contains no time step "
                                 f"of length {dt:g} s.")
            return m
        if self.window.size != n_steps:
            raise ValueError(f"The loss window has {self.window.size} weights but the run has "
                             f"{n_steps} time steps.")
        return self.window.copy()

    # -------------------------------------------------------------- numpy side
    @staticmethod
    def readout(v_out: np.ndarray, differential: bool) -> np.ndarray:
        """Output values ``z`` (B, K) from output node voltages ``v_out`` (B, n_out)."""
        if differential:
            K = v_out.shape[1] // 2
            return v_out[:, :K] - v_out[:, K:]
        return v_out

    @staticmethod
    def readout_transpose(dz: np.ndarray, differential: bool) -> np.ndarray:
        """Map ``∂c/∂z`` (B, K) to ``∂c/∂v_out`` (B, n_out)."""
        return np.concatenate([dz, -dz], axis=1) if differential else dz

    def prepare_targets(self, y, K: int) -> np.ndarray:
        """Check targets and return them as a float array (B, K) in SI units."""
        raise NotImplementedError

    def cost(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per-sample cost (watt), ``z`` (B, K) volt, ``y`` from :meth:`prepare_targets`."""
        raise NotImplementedError

    def grad(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``∂c/∂z`` (B, K) in amp."""
        raise NotImplementedError

    # -------------------------------------------------------------- Brian2 side
    #: Brian2 expression of ∂c/∂z in the readout group (uses ``z``, ``y``, ``g_n``)
    _dcdz: str = ""
    _y_unit: str = "volt"

    def make_objects(self, net) -> list:
        """Brian2 objects computing the nudge current of ``net``'s output group."""
        circ = net.circuit
        out = net.groups[circ.output]
        B, K, diff = net.batch, circ.n_outputs, circ.differential
        n_out = circ.nodes[circ.output].n
        R = NeuronGroup(K * B, "\n".join([
            "z : volt",
            f"y : {self._y_unit}",
            "Zs : 1",
            "m : 1 (shared)",
            "g_n : siemens (shared)",
            "V_s : volt (shared)",
            f"dcdz = {self._dcdz} : amp",
        ]), dt=net.dt, name="readout*")
        R.g_n = self.g_nudge
        R.m = 1  # loss window weight (time-varying runs write it every step)
        R.V_s = getattr(self, "v_scale", 1 * volt)
        b = np.repeat(np.arange(B), K)
        k = np.tile(np.arange(K), B)
        # output nodes -> readout values (z = v+ - v- or z = v)
        s_in = Synapses(out, R, "w : 1\nz_post = w*v_pre : volt (summed)", dt=net.dt,
                        name="readout_in*")
        i_plus = b * n_out + k
        if diff:
            i_minus = b * n_out + K + k
            s_in.connect(i=np.concatenate([i_plus, i_minus]), j=np.tile(b * K + k, 2))
            s_in.w = np.concatenate([np.ones(K * B), -np.ones(K * B)])
        else:
            s_in.connect(i=i_plus, j=b * K + k)
            s_in.w = 1
        objs = [R, s_in]
        if self._needs_normaliser:
            s_norm = Synapses(R, R, "V_norm : volt (shared)\n"
                                    "Zs_post = exp(z_pre/V_norm) : 1 (summed)",
                              dt=net.dt, name="readout_norm*")
            pre = np.repeat(np.arange(K * B), K)
            post = (pre // K) * K + np.tile(np.arange(K), K * B)
            s_norm.connect(i=pre, j=post)
            s_norm.V_norm = self.v_scale
            objs.append(s_norm)
        # readout -> nudge current into the output nodes
        s_out = Synapses(R, out, "w : 1\nbeta : 1 (shared)\n"
                                 "I_nudge_post = -beta*w*m_pre*dcdz_pre : amp (summed)",
                         dt=net.dt, name="readout_out*")
        if diff:
            s_out.connect(i=np.tile(b * K + k, 2), j=np.concatenate([i_plus, i_minus]))
            s_out.w = np.concatenate([np.ones(K * B), -np.ones(K * B)])
        else:
            s_out.connect(i=b * K + k, j=i_plus)
            s_out.w = 1
        s_out.beta = 0
        objs.append(s_out)
        self._objects = {"readout": R, "out": s_out}
        return objs

    _needs_normaliser = False

    @staticmethod
    def set_beta(net, beta: float) -> None:
        """Set the nudge strength β of ``net``'s attached loss."""
        net._loss_objects[-1].variables["beta"].set_value(float(beta))

    @staticmethod
    def set_targets(net, y_full: np.ndarray) -> None:
        """Write prepared targets (batch, K) into ``net``'s readout group."""
        net._loss_objects[0].variables["y"].set_value(np.asarray(y_full, float).ravel())


class MSE(Loss):
    """Mean squared error ``c = ½ g_nudge Σ_k (z_k - y_k)²`` (watt).

    Parameters
    ----------
    g_nudge : Quantity, siemens
        Nudge conductance: the cost is the power of a conductance ``g_nudge``
        between each output and a source at its target voltage; with strength β
        the nudge current is ``β g_nudge (y_k - z_k)``.
    window : None, (t_start, t_end) or array, optional
        For time-varying runs: where the cost is integrated (see :class:`Loss`).
    """

    _dcdz = "g_n*(z - y)"
    _y_unit = "volt"

    def __init__(self, g_nudge: Quantity = 1 * uS, *, window=None):
        self._set_window(window)
        self.g_nudge = check_quantity("g_nudge", g_nudge, siemens, nonnegative=True,
                                      allow_array=False)
        if float(self.g_nudge) <= 0:
            raise ValueError(f"g_nudge must be positive; got {g_nudge}.")

    def prepare_targets(self, y, K: int) -> np.ndarray:
        if not have_same_dimensions(y, volt):
            raise TypeError(
                "MSE targets y must be voltages (volt), e.g. y*volt; got dimensions "
                f"{get_dimensions(y) or 'dimensionless'}."
            )
        arr = np.asarray(y, dtype=float)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != K:
            raise ValueError(f"MSE targets y must have shape (n_samples, {K}); got {np.shape(y)}.")
        if not np.all(np.isfinite(arr)):
            raise ValueError("MSE targets y contain NaN or infinite values; give finite voltages.")
        return arr

    def cost(self, z, y):
        return 0.5 * float(self.g_nudge) * np.sum((z - y) ** 2, axis=1)

    def grad(self, z, y):
        return float(self.g_nudge) * (z - y)

    def __repr__(self):
        return f"MSE(g_nudge={self.g_nudge!r})"


class CrossEntropy(Loss):
    """Softmax cross-entropy on output values, ``c = g_nudge V_s² · CE(softmax(z/V_s), y)``.

    Parameters
    ----------
    g_nudge : Quantity, siemens
        Scale of the cost as a power.
    v_scale : Quantity, volt
        Voltage ``V_s`` that divides the outputs into logits.
    window : None, (t_start, t_end) or array, optional
        For time-varying runs: where the cost is integrated (see :class:`Loss`).

    Notes
    -----
    ``∂c/∂z_k = g_nudge V_s (p_k - y_k)``. In Brian2 the softmax normaliser of
    each sample is a summed variable over its ``K`` readout values.
    """

    _dcdz = "g_n*V_s*(exp(z/V_s)/Zs - y)"
    _y_unit = "1"
    _needs_normaliser = True
    integer_targets = True

    def __init__(self, g_nudge: Quantity = 1 * uS, v_scale: Quantity = 0.1 * volt, *,
                 window=None):
        self._set_window(window)
        self.g_nudge = check_quantity("g_nudge", g_nudge, siemens, nonnegative=True,
                                      allow_array=False)
        self.v_scale = check_quantity("v_scale", v_scale, volt, nonnegative=True,
                                      allow_array=False)
        if float(self.g_nudge) <= 0 or float(self.v_scale) <= 0:
            raise ValueError("g_nudge and v_scale must be positive; got "
                             f"{g_nudge} and {v_scale}.")

    def prepare_targets(self, y, K: int) -> np.ndarray:
        if isinstance(y, Quantity) and not have_same_dimensions(y, 1):
            raise TypeError("CrossEntropy targets are class labels or one-hot rows, without units.")
        arr = np.asarray(y)
        if arr.ndim == 1:
            if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() >= K:
                raise ValueError(
                    f"CrossEntropy labels must be integers in [0, {K}); got {arr[:10]}..."
                )
            return np.eye(K)[arr]
        if arr.ndim != 2 or arr.shape[1] != K:
            raise ValueError(
                f"CrossEntropy targets must be labels (n_samples,) or one-hot (n_samples, {K}); "
                f"got shape {arr.shape}."
            )
        arr = arr.astype(float)
        if not np.all(np.isfinite(arr)):
            raise ValueError("CrossEntropy targets y contain NaN or infinite values.")
        return arr

    def _logp(self, z):
        s = z / float(self.v_scale)
        s = s - s.max(axis=1, keepdims=True)
        return s - np.log(np.exp(s).sum(axis=1, keepdims=True))

    def cost(self, z, y):
        return -float(self.g_nudge) * float(self.v_scale) ** 2 * np.sum(y * self._logp(z), axis=1)

    def grad(self, z, y):
        return float(self.g_nudge) * float(self.v_scale) * (np.exp(self._logp(z)) - y)

    def __repr__(self):
        return f"CrossEntropy(g_nudge={self.g_nudge!r}, v_scale={self.v_scale!r})"
