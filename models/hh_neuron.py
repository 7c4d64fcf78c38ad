"""Hodgkin–Huxley neurons as circuit nodes: a membrane capacitor with leak, Na and K channels.

A single-compartment neuron is a node: its membrane capacitor ``C_m·area``, and three
node elements, each one file — :class:`~ephys_eqprop.models.LeakChannel`,
:class:`~ephys_eqprop.models.SodiumChannel`, :class:`~ephys_eqprop.models.PotassiumChannel`.
:func:`HHNeuron` assembles them from a named parameter set; a user may assemble
their own (``eq.elements.NodeModel(C=..., g_leak=0*siemens, shunts=[...])``) to swap
or add channels.

Integration and time step
-------------------------
Every state (the voltage and the gates) steps with forward Euler, the scheme the
adjoint estimator differentiates exactly. The gates are stable while ``dt`` stays
below ``2/(φ (α + β))`` at every voltage the neuron visits; for the ``"hh"`` set at
6.3 °C that allows ``dt`` up to ~0.1 ms, but accuracy asks for less: at
``dt = 0.01 ms`` spike times of a 100 ms train are within ~0.02 ms of a converged
solution (the validation suite measures this against NEURON). The rates scale with
``q10^((celsius - 6.3)/10)``; at 37 °C they are ~29 times faster and ``dt`` must
shrink accordingly (a run that leaves a gate's [0, 1] interval stops and says which
``dt`` would work).
"""

from __future__ import annotations

import numpy as np
from brian2 import (
    Quantity,
    cm,
    farad,
    get_dimensions,
    metre,
    msiemens,
    mV,
    siemens,
    ufarad,
    umetre,
    volt,
)

from ephys_eqprop.elements import NodeModel, check_quantity

from .hh_leak import LeakChannel
from .hh_potassium import PotassiumChannel
from .hh_sodium import SodiumChannel

__all__ = ["HH_PARAMETER_SETS", "HHNeuron"]

#: Named parameter sets, per membrane area. ``"hh"``: the 1952 squid axon as NEURON's
#: built-in ``hh`` mechanism uses it (rest at -65 mV, rates at 6.3 °C scaled by
#: ``q10 = 3``); ``"traub_miles"``: the hippocampal cell of Traub & Miles (1991) as in
#: Brian2's COBAHH example (no temperature scaling; ``VT`` shifts the rates).
HH_PARAMETER_SETS = {
    "hh": {
        "C_m": 1 * ufarad / cm**2, "g_Na": 0.12 * siemens / cm**2,
        "g_K": 0.036 * siemens / cm**2, "g_L": 0.0003 * siemens / cm**2,
        "E_Na": 50 * mV, "E_K": -77 * mV, "E_L": -54.3 * mV, "v0": -65 * mV,
        "celsius_ref": 6.3, "q10": 3.0,
    },
    "traub_miles": {
        "C_m": 1 * ufarad / cm**2, "g_Na": 100 * msiemens / cm**2,
        "g_K": 30 * msiemens / cm**2, "g_L": 5e-5 * siemens / cm**2,
        "E_Na": 50 * mV, "E_K": -90 * mV, "E_L": -60 * mV, "VT": -63 * mV,
        "v0": None,  # E_L: alone, the cell has no quiescent rest (see HHNeuron)
    },
}

_AREA = metre**2


def _absolute(name: str, value, area: Quantity, unit) -> Quantity:
    """A conductance or capacitance given per membrane area or absolute, made absolute."""
    if isinstance(value, Quantity) and get_dimensions(value) is get_dimensions(unit / _AREA):
        q = check_quantity(name, value, unit / _AREA, nonnegative=True, allow_array=False)
        return q * area
    return check_quantity(name, value, unit, nonnegative=True, allow_array=False)


def HHNeuron(parameters: str = "hh", *, area: Quantity = 20000 * umetre**2,
             celsius: float | None = None, learn=("g_Na", "g_K", "g_L"), v0=None,
             **overrides) -> NodeModel:
    """A single-compartment Hodgkin–Huxley neuron: a node with leak, Na and K channels.

    Parameters
    ----------
    parameters : {"hh", "traub_miles"}
        The named parameter set (:data:`HH_PARAMETER_SETS`).
    area : Quantity, metre²
        Membrane area (default 20,000 µm², a sphere of 80 µm diameter, as in Brian2's
        COBAHH example); per-area values are multiplied by it.
    celsius : float, optional
        Temperature (°C) for the ``"hh"`` set's rates, ``q10^((celsius - 6.3)/10)``
        (default 6.3, NEURON's default).
    learn : sequence of str
        Which of ``g_Na``, ``g_K``, ``g_L`` are learnable per neuron (default all).
    v0 : Quantity, volt, optional
        Initial voltage (``"hh"``: -65 mV as NEURON's ``finitialize(-65)``;
        ``"traub_miles"``: ``E_L``, as Brian2's COBAHH example starts its cells near it —
        alone, that cell has no quiescent rest: its window sodium current outweighs its
        small leak, and it fires slowly); gates start at their steady state there.
    **overrides : Quantity
        ``C_m`` (F/m² or F), ``g_Na``, ``g_K``, ``g_L`` (S/m² or S), ``E_Na``, ``E_K``,
        ``E_L``, ``VT`` (V).

    Returns
    -------
    NodeModel
        With ``g_leak = 0``: the leak is the :class:`LeakChannel` (to its battery).

    Examples
    --------
    >>> import ephys_eqprop as eq
    >>> model = eq.models.HHNeuron("hh", celsius=6.3)
    >>> [type(s).__name__ for s in model.shunts]
    ['LeakChannel', 'SodiumChannel', 'PotassiumChannel']
    """
    if parameters not in HH_PARAMETER_SETS:
        raise ValueError(f"Unknown Hodgkin–Huxley parameter set {parameters!r}; the known "
                         f"sets are {sorted(HH_PARAMETER_SETS)}.")
    p = dict(HH_PARAMETER_SETS[parameters])
    allowed = {"C_m", "g_Na", "g_K", "g_L", "E_Na", "E_K", "E_L"} | (
        {"VT"} if "VT" in p else set())
    unknown = set(overrides) - allowed
    if unknown:
        raise TypeError(f"HHNeuron({parameters!r}) has no parameter {sorted(unknown)}; its "
                        f"parameters are {sorted(allowed)}.")
    p.update(overrides)
    area = check_quantity("area", area, _AREA, allow_array=False, positive=True)
    learn = (learn,) if isinstance(learn, str) else tuple(learn)
    bad = set(learn) - {"g_Na", "g_K", "g_L"}
    if bad:
        raise ValueError(f"HHNeuron(learn=...) may name g_Na, g_K and g_L; got {sorted(bad)}.")
    C = _absolute("C_m", p["C_m"], area, farad)
    g = {k: _absolute(k, p[k], area, siemens) for k in ("g_Na", "g_K", "g_L")}
    E = {k: check_quantity(k, p[k], volt, allow_array=False) for k in ("E_Na", "E_K", "E_L")}
    if "q10" in p:
        celsius = p["celsius_ref"] if celsius is None else float(celsius)
        if not np.isfinite(celsius):
            raise ValueError(f"celsius must be a finite temperature in °C; got {celsius!r}.")
        phi = p["q10"] ** ((celsius - p["celsius_ref"]) / 10)
        extra = {}
    else:
        if celsius is not None:
            raise ValueError(f"The {parameters!r} set has no temperature scaling; leave "
                             "celsius unset.")
        phi = 1.0
        vt = check_quantity("VT", p["VT"], volt, allow_array=False)
        extra = {"na": {"VT_Na": vt}, "k": {"VT_K": vt}}
    rates = "hh" if "q10" in p else "traub_miles"
    leak = LeakChannel(g_L=g["g_L"], E_L=E["E_L"], learn=[n for n in learn if n == "g_L"])
    na = SodiumChannel(rates, g_Na=g["g_Na"], E_Na=E["E_Na"], phi_Na=phi,
                       learn=[n for n in learn if n == "g_Na"], **extra.get("na", {}))
    k = PotassiumChannel(rates, g_K=g["g_K"], E_K=E["E_K"], phi_K=phi,
                         learn=[n for n in learn if n == "g_K"], **extra.get("k", {}))
    if v0 is None:
        v0 = p["v0"] if p["v0"] is not None else E["E_L"]
    return NodeModel(C=C, g_leak=0 * siemens, shunts=(leak, na, k), v0=v0)

