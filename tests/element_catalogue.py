"""One list of every element kind the package ships, for the element contract tests.

A new element gets the whole contract (units, sympy derivatives against finite
differences, Adjoint against FiniteDifference on a circuit holding it, SPICE
export against ngspice, checkpoint round trip) by one line in :data:`ALL_ELEMENTS`.
Each line names the element and a factory for it; branch elements also give the
magnitude of their per-synapse parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from brian2 import Quantity, kohm, ms, nA, nF, uS, volt
from brian2.units.allunits import henry

import ephys_eqprop as eq
from ephys_eqprop import models
from ephys_eqprop.elements import BranchElement, NodeModel, ShuntElement


@dataclass(frozen=True)
class Entry:
    """An element of the catalogue and how to hold it in a small circuit.

    Attributes
    ----------
    name : str
        Test id.
    make : callable
        Returns the element: a BranchElement, a ShuntElement or a NodeModel.
    scale : Quantity, optional
        Typical value of a branch element's per-synapse parameter.
    amplitude : float
        Peak input voltage (volt) of the waveforms that drive the circuit.
    offset : float
        Mean input voltage (volt): where the element works (a neuron near its rest).
    spice_tol : float
        Tolerance of the ngspice transient, relative to the signal range.
    """

    name: str
    make: object
    scale: Quantity | None = None
    amplitude: float = 0.15
    offset: float = 0.0
    spice_tol: float = 3e-3

    def __str__(self):
        return self.name


ALL_ELEMENTS = [
    Entry("Resistor", lambda: models.Resistor(), scale=2 * uS),
    Entry("Inductor", lambda: models.Inductor(R=1 * kohm), scale=1000 * henry),
    Entry("NonlinearInductor", lambda: models.NonlinearInductor(R=1 * kohm), scale=1000 * henry),
    Entry("DirectedSynapse", lambda: models.DirectedSynapse(V_s=0.2 * volt), scale=1 * uS),
    Entry("ChemicalSynapse", lambda: models.ChemicalSynapse("inhibitory", V_th=0 * volt,
                                                           Delta=0.05 * volt), scale=1 * uS),
    Entry("Diode", lambda: models.Diode(V_bias=0.1 * volt, learn=("I_s",))),
    Entry("CurrentSource", lambda: models.CurrentSource(I=20 * nA, learn=("I",))),
    Entry("CubicConductance", lambda: models.CubicConductance(learn=("G_cubic", "V_cubic"))),
    Entry("InductorToGround", lambda: models.InductorToGround(learn=("L_rec", "R_rec", "E_rec"))),
    Entry("CapacitorNode", lambda: models.CapacitorNode(learn=("g_leak",))),
    Entry("NonlinearCapacitorNode", lambda: models.NonlinearCapacitorNode()),
    Entry("DiodeNeuron", lambda: models.DiodeNeuron(I_s=5 * nA)),
    Entry("NagumoNeuron", lambda: models.NagumoNeuron(learn=("G_cubic", "R_rec", "E_rec")),
          amplitude=0.3),
    Entry("LeakChannel", lambda: models.LeakChannel(g_L=0.5 * uS), offset=-0.06),
    Entry("SodiumChannel", lambda: models.SodiumChannel(g_Na=2 * uS), amplitude=0.03,
          offset=-0.06),
    Entry("PotassiumChannel", lambda: models.PotassiumChannel(g_K=2 * uS), amplitude=0.03,
          offset=-0.06),
    # spiking neurons: a time shift of ~1 µs on a 500 mV/ms upstroke is ~4e-3 of the range
    Entry("HHNeuron", lambda: models.HHNeuron("hh"), amplitude=0.03, offset=-0.06,
          spice_tol=1e-2),
    Entry("HHNeuron_traub_miles", lambda: models.HHNeuron("traub_miles"), amplitude=0.03,
          offset=-0.06, spice_tol=1e-2),
]

#: time step and length of the waveform runs of the contract
DT = 0.01 * ms
STEPS = 300


def holder(entry: Entry, seed: int = 0) -> eq.Circuit:
    """A small circuit that holds the element: x(2) -> h(3) -> y(2).

    A branch element connects ``h`` to ``y`` (beside a resistor, so that ``y`` has a DC
    path); a node element sits at every ``h`` node; a node model is the model of ``h``.
    """
    rng = np.random.default_rng(seed)
    el = entry.make()
    c = eq.Circuit()
    c.add_input("x", 2)
    if isinstance(el, NodeModel):
        hidden = el
    elif isinstance(el, ShuntElement):
        hidden = models.CapacitorNode(C=1 * nF, g_leak=1 * uS, shunts=[el])
    else:
        hidden = models.CapacitorNode(C=1 * nF, g_leak=1 * uS)
    c.add_nodes("h", 3, hidden)
    c.add_nodes("y", 2, models.CapacitorNode(C=1 * nF, g_leak=1 * uS))
    c.connect("x", "h", models.Resistor(), g=rng.uniform(1, 3, (2, 3)) * uS)
    c.connect("h", "y", models.Resistor(), g=rng.uniform(1, 3, (3, 2)) * uS)
    if isinstance(el, BranchElement):
        vals = rng.uniform(0.5, 1.5, (3, 2)) * entry.scale
        c.connect("h", "y", el, values=vals, name="h=>y")
    c.set_output("y")
    return c


def element_of(entry: Entry):
    """The elements whose expressions the contract checks (a node model's own elements)."""
    el = entry.make()
    if isinstance(el, NodeModel):
        return list(el.shunts)
    return [el]


def is_dynamic(circuit: eq.Circuit) -> bool:
    """Whether the circuit needs time-varying runs (an element with states)."""
    return any(c.element.dynamic for c in circuit.connections.values()) or any(
        s.model.dynamic for s in circuit.nodes.values())


def waveforms(entry: Entry, n_samples: int = 2, seed: int = 1):
    """Input and target waveforms for the holder circuit (two channels each)."""
    rng = np.random.default_rng(seed)
    t = np.arange(STEPS) * float(DT)
    f = rng.uniform(300, 900, (n_samples, 1, 2))
    phase = rng.uniform(0, 2 * np.pi, (n_samples, 1, 2))
    x = entry.offset + entry.amplitude * np.sin(2 * np.pi * f * t[None, :, None] + phase)
    y = 0.02 * np.cos(2 * np.pi * 500 * t)[None, :, None] * np.ones((n_samples, 1, 2))
    return eq.TimeSeries(x * volt, dt=DT), eq.TimeSeries(y * volt, dt=DT)
