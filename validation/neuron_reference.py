"""NEURON as the reference simulator of Hodgkin–Huxley neurons.

Single cylindrical somata with NEURON's built-in ``hh`` mechanism (exact rate
functions: ``usetable_hh = 0``), current clamps played from vectors, optional gap
junctions through ``LinearMechanism`` (no compiled mechanism needed), fixed time
step, ``cvode`` off. Everything goes in and comes out in SI units.

NEURON's fixed step is backward Euler by default (``secondorder = 0``, first order)
or Crank–Nicolson (``secondorder = 2``); its gates use the exponential ``cnexp``
update on a grid staggered by half a step.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["neuron_available", "neuron_hh_cells", "neuron_version"]

#: NEURON's fixed-step schemes by name
METHODS = {"backward_euler": 0, "crank_nicolson": 2}


def _h():
    os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")
    from neuron import h

    h.load_file("stdrun.hoc")
    return h


def neuron_available() -> bool:
    """Whether the ``neuron`` Python package imports here."""
    try:
        _h()
    except ImportError:
        return False
    return True


def neuron_version() -> str:
    """NEURON's version string (or ``"not installed"``)."""
    try:
        import neuron

        return str(neuron.__version__)
    except ImportError:
        return "not installed"


def neuron_hh_cells(area: float, currents: np.ndarray, dt: float, *, celsius: float = 6.3,
                    v0: float = -0.065, method: str = "backward_euler", gap: float = 0.0,
                    cm: float = 0.01):
    """Simulate independent (or gap-coupled) single-compartment ``hh`` cells in NEURON.

    Parameters
    ----------
    area : float
        Membrane area of each soma (m²); a cylinder with length = diameter.
    currents : numpy.ndarray, shape (n_cells, n_steps)
        Injected current of each cell during each step (A), as an ``IClamp`` whose
        amplitude is played from a vector every ``dt``.
    dt : float
        Time step (s).
    celsius : float
        Temperature (°C).
    v0 : float
        Initial voltage (V) for ``finitialize``; gates start at their steady state.
    method : {"backward_euler", "crank_nicolson"}
        NEURON's fixed-step scheme.
    gap : float
        Conductance (S) of a gap junction between cells 0 and 1 (0: none).
    cm : float
        Specific membrane capacitance (F/m²; 0.01 = 1 µF/cm²).

    Returns
    -------
    t : numpy.ndarray, shape (n_steps + 1,)
        Times (s).
    v : numpy.ndarray, shape (n_steps + 1, n_cells)
        Membrane voltages (V).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}; got {method!r}.")
    h = _h()
    currents = np.atleast_2d(np.asarray(currents, dtype=float))
    n_cells, n_steps = currents.shape
    area_um2 = area * 1e12
    diam = float(np.sqrt(area_um2 / np.pi))
    h.celsius = celsius
    h.usetable_hh = 0
    cells, keep = [], []
    for k in range(n_cells):
        sec = h.Section(name=f"soma_{k}")
        sec.nseg = 1
        sec.L = diam
        sec.diam = diam
        sec.cm = cm * 100.0  # µF/cm²
        sec.insert("hh")
        stim = h.IClamp(sec(0.5))
        stim.delay = 0
        stim.dur = 1e9
        amps = h.Vector(np.r_[currents[k], currents[k, -1]] * 1e9)  # nA
        amps.play(stim._ref_amp, dt * 1e3)
        cells.append(sec)
        keep += [stim, amps]
    if gap:
        if n_cells < 2:
            raise ValueError("A gap junction needs two cells.")
        A_cm2 = area * 1e4
        g_density = gap / A_cm2  # S/cm² in each cell's current balance
        c = h.Matrix(2, 2, 2)
        g = h.Matrix(2, 2)
        g.setval(0, 0, g_density)
        g.setval(0, 1, -g_density)
        g.setval(1, 0, -g_density)
        g.setval(1, 1, g_density)
        y, b = h.Vector(2), h.Vector(2)
        sl = h.SectionList()
        sl.append(sec=cells[0])
        sl.append(sec=cells[1])
        xvec = h.Vector([0.5, 0.5])
        lm = h.LinearMechanism(c, g, y, b, sl, xvec)
        keep += [c, g, y, b, sl, xvec, lm]
    recs = []
    for sec in cells:
        vec = h.Vector()
        vec.record(sec(0.5)._ref_v)
        recs.append(vec)
    t_rec = h.Vector()
    t_rec.record(h._ref_t)
    h.cvode_active(0)
    h.secondorder = METHODS[method]
    h.dt = dt * 1e3
    h.steps_per_ms = 1.0 / h.dt
    h.finitialize(v0 * 1e3)
    h.continuerun(n_steps * dt * 1e3)
    t = np.asarray(t_rec) * 1e-3
    v = np.stack([np.asarray(r) for r in recs], axis=1) * 1e-3
    n = min(len(t), n_steps + 1)
    del keep, cells
    return t[:n], v[:n]
