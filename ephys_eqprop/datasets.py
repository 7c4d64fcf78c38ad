"""Small built-in data sets (no downloads).

Static classification: input voltages and class labels. XOR is generated; Iris and
the 8×8 digits come with scikit-learn (a dependency of the package).

Waveforms: :func:`multisine` draws random multi-sine input voltages (or currents) as a
:class:`~ephys_eqprop.TimeSeries`, and :func:`dendrite_circuit` builds a passive
compartmental dendrite (inputs → a chain of RC compartments → a soma), the teacher
and student of the model-reduction task of tutorial 3 and
``benchmarks/train_waveforms.py``. :func:`hh_network` builds a small network of
Hodgkin–Huxley neurons, and :func:`hh_task` a teacher–student task on it (tutorial 5,
``ephys-eqprop demo hh``, ``benchmarks/train_hh.py``).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np
from brian2 import Quantity, mV, nF, second, uS, volt

from .circuit import Circuit
from .dynamics import TimeSeries
from .elements.base import check_quantity

__all__ = ["Dataset", "WaveformTask", "xor", "iris", "digits", "stratified_split", "multisine",
           "dendrite_circuit", "hh_network", "hh_task"]


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


#: Stream tags: the same integer seed gives independent random streams to the
#: waveforms and to the conductances of the built-in circuits.
_STREAM_MULTISINE, _STREAM_DENDRITE, _STREAM_HH_TOPOLOGY, _STREAM_HH_PARAMS = 1, 2, 3, 4


def _count(name: str, value, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``; a clear error otherwise."""
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer; got {value!r}.") from None
    if n < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {n}.")
    return n


def _positive(name: str, value, unit) -> None:
    """A positive scalar quantity with the dimensions of ``unit``, else a clear error."""
    check_quantity(name, value, unit, allow_array=False)
    if not float(value) > 0:
        raise ValueError(f"{name} must be positive; got {value}.")


def _rng(seed, stream: int) -> np.random.Generator:
    """Generator of one stream of ``seed`` (independent of the other streams)."""
    return np.random.default_rng([_count("seed", seed, 0), stream])


def multisine(n_samples: int, *, tau_omega: float, dt: Quantity, duration: Quantity,
              seed: int, tau: Quantity = 1e-3 * second, n_channels: int = 2,
              n_components: int = 3, peak: Quantity = 50 * mV,
              offset: Quantity | None = None) -> TimeSeries:
    """Random multi-sine waveforms (voltages, or currents) in a band around ``tau_omega / tau``.

    Each channel of each sample sums ``n_components`` sines with angular frequencies
    log-uniform in ``[tau_omega/2, 2 tau_omega] / tau``, phases uniform in [0, 2π) and
    amplitudes uniform in [0.5, 1]; each sample is then scaled so that its largest
    absolute value (over time and channels) is ``peak``.

    Parameters
    ----------
    n_samples : int
        Number of waveforms.
    tau_omega : float
        Band centre as the dimensionless product τω.
    dt, duration : Quantity, second
        Sampling step and length; ``round(duration / dt)`` samples per waveform.
    seed : int
        Seed of the frequencies, phases and amplitudes (a non-negative integer). The
        stream is independent of :func:`dendrite_circuit`'s for the same seed.
    tau : Quantity, second
        The time constant that ``tau_omega`` refers to.
    n_channels : int
        Input channels per sample (each its own multi-sine).
    n_components : int
        Sines per channel.
    peak : Quantity, volt or amp
        Largest absolute value of each sample, positive: voltages for voltage inputs,
        currents for current inputs (``Circuit.add_current_input``).
    offset : Quantity, optional
        A constant added to every value (in the units of ``peak``; default 0): the mean
        current of a current clamp.

    Returns
    -------
    TimeSeries
        Shape ``(n_samples, n_steps, n_channels)``, in the units of ``peak``, time step
        ``dt``.

    Raises
    ------
    TypeError
        A quantity without the right unit, or a count that is not an integer.
    ValueError
        Non-positive ``dt``, ``duration``, ``tau``, ``tau_omega`` or ``peak``, counts
        below 1, fewer than 2 steps, or a band whose highest frequency is not sampled
        at least 4 times per period (ω_max dt ≥ π/2).
    """
    from brian2 import amp, have_same_dimensions

    unit = amp if have_same_dimensions(peak, amp) else volt
    for name, q, u in (("dt", dt, second), ("duration", duration, second),
                       ("tau", tau, second), ("peak", peak, unit)):
        _positive(name, q, u)
    if offset is not None:
        check_quantity("offset", offset, unit, allow_array=False)
    check_quantity("tau_omega", tau_omega, 1, allow_array=False)
    tau_omega = float(tau_omega)
    if not tau_omega > 0:
        raise ValueError(f"tau_omega must be positive; got {tau_omega!r}.")
    n_samples = _count("n_samples", n_samples, 1)
    n_channels = _count("n_channels", n_channels, 1)
    n_components = _count("n_components", n_components, 1)
    n_steps = int(round(float(duration / dt)))
    if n_steps < 2:
        raise ValueError(f"duration {duration} holds fewer than 2 steps of {dt}.")
    w_max_dt = 2 * tau_omega / float(tau) * float(dt)
    if w_max_dt >= np.pi / 2:
        raise ValueError(
            f"dt = {dt} samples the band's highest angular frequency 2*tau_omega/tau "
            f"fewer than 4 times per period (omega_max*dt = {w_max_dt:.2f} >= pi/2): "
            "reduce dt or tau_omega.")
    rng = _rng(seed, _STREAM_MULTISINE)
    t = np.arange(n_steps) * float(dt)
    x = np.zeros((n_samples, n_steps, n_channels))
    for s in range(n_samples):
        for ch in range(n_channels):
            omega = tau_omega / float(tau) * np.exp(
                rng.uniform(np.log(0.5), np.log(2), n_components))
            phase = rng.uniform(0, 2 * np.pi, n_components)
            amp = rng.uniform(0.5, 1, n_components)
            x[s, :, ch] = amp @ np.sin(omega[:, None] * t + phase[:, None])
        x[s] *= float(peak) / np.max(np.abs(x[s]))
    if offset is not None:
        x += float(offset)
    return TimeSeries(x * unit, dt=dt)


def dendrite_circuit(n_compartments: int, *, seed: int, n_inputs: int = 2,
                     C: Quantity = 1 * nF, g_leak: Quantity = 1 * uS) -> Circuit:
    """A passive dendrite: input sites → a chain of RC compartments → a soma.

    Inputs ``x`` (ideal voltage sources: voltage-clamped synaptic sites) drive every
    compartment ``h`` through synaptic conductances ``x->h`` (uniform in 0.5–2 µS);
    neighbouring compartments are joined by axial conductances ``h->h`` (0.2–1 µS),
    and each compartment is coupled to the soma ``y`` (the output) through ``h->y``
    (0.5–2 µS). Every compartment and the soma is a membrane capacitance ``C`` with a
    leak ``g_leak`` to rest (the ground). ``(n_inputs + 2) n - 1`` conductances in all.

    Parameters
    ----------
    n_compartments : int
        Number of dendritic compartments, at least 2.
    seed : int
        Seed of the conductances (a non-negative integer). The stream is independent
        of :func:`multisine`'s for the same seed.
    n_inputs : int
        Number of input sites, at least 1.
    C : Quantity, farad
        Membrane capacitance of every compartment and of the soma, positive.
    g_leak : Quantity, siemens
        Leak conductance of every compartment and of the soma, positive (without a
        leak the membrane time constant is infinite and a constant input never
        settles).

    Returns
    -------
    Circuit
        Not yet built: call ``.build(batch=..., dt=...)``.

    Raises
    ------
    TypeError
        A count that is not an integer, or ``C`` / ``g_leak`` without their units.
    ValueError
        ``n_compartments`` below 2, ``n_inputs`` below 1, non-positive ``C`` or
        ``g_leak``.
    """
    from . import models  # models import elements that import this package's helpers

    n = _count("n_compartments", n_compartments, 2)
    n_inputs = _count("n_inputs", n_inputs, 1)
    _positive("C", C, nF)
    _positive("g_leak", g_leak, uS)
    rng = _rng(seed, _STREAM_DENDRITE)
    node = models.CapacitorNode(C=C, g_leak=g_leak)
    c = Circuit()
    c.add_input("x", n_inputs)
    c.add_nodes("h", n, node)
    c.add_nodes("y", 1, node)
    c.connect("x", "h", models.Resistor(), g=rng.uniform(0.5, 2, (n_inputs, n)) * uS)
    c.connect("h", "h", models.Resistor(), g=rng.uniform(0.2, 1, n - 1) * uS,
              i=list(range(n - 1)), j=list(range(1, n)))
    c.connect("h", "y", models.Resistor(), g=rng.uniform(0.5, 2, (n, 1)) * uS)
    c.set_output("y")
    return c


def hh_network(n_in: int = 3, n_hidden: int = 6, n_out: int = 1, *, seed: int,
               params_seed: int | None = None, spread: float = 0.2,
               gap_pairs: int | None = None, inhibitory: float = 0.3,
               area=None, learn_inputs: bool = True,
               celsius: float | None = None) -> Circuit:
    """A small network of Hodgkin–Huxley neurons: inputs → hidden → output.

    * ``"in"``: ``n_in`` neurons, each driven by its own current clamp (input ``"I"``,
      amp, one channel per input neuron);
    * ``"hid"``: ``n_hidden`` neurons with chemical synapses from every input neuron
      (``"in->hid"``, excitatory) and ``gap_pairs`` gap junctions among them
      (``"gap"``, resistors);
    * ``"out"``: ``n_out`` neurons with excitatory (``"hid->out"``) and inhibitory
      (``"hid-|out"``) chemical synapses from the hidden neurons (a fraction
      ``inhibitory`` of the pairs inhibitory), the circuit's output.

    Every neuron is an :func:`~ephys_eqprop.models.HHNeuron` (NEURON's ``hh`` set) whose
    ``g_Na``, ``g_K`` and ``g_L`` are learnable per neuron; every synapse and gap junction
    is learnable.

    Parameters
    ----------
    n_in, n_hidden, n_out : int
    seed : int
        Seed of the topology (which pairs are gap-coupled or inhibitory).
    params_seed : int, optional
        Seed of the parameters (default ``seed``): synaptic and gap conductances, and
        each neuron's channel conductances, spread by ``± spread`` (relative) around
        the squid-axon values. A teacher and a student share ``seed`` and differ in
        ``params_seed``.
    spread : float
        Relative spread of the channel conductances, in [0, 1).
    gap_pairs : int, optional
        Gap junctions among the hidden neurons (default ``n_hidden // 2``).
    inhibitory : float
        Fraction of hidden → output pairs that are inhibitory, in [0, 1].
    area : Quantity, metre², optional
        Membrane area of every neuron (default 20,000 µm²).
    learn_inputs : bool
        Whether the input neurons' channel conductances are learnable too.
    celsius : float, optional
        Temperature of every neuron's gate rates (default 6.3 °C; see
        :func:`~ephys_eqprop.models.HHNeuron`). A very low one (-60 °C: rates × 7e-4)
        all but freezes the gates.

    Returns
    -------
    Circuit
    """
    from brian2 import nS, siemens, umetre

    from . import models

    n_in = _count("n_in", n_in, 1)
    n_hidden = _count("n_hidden", n_hidden, 1)
    n_out = _count("n_out", n_out, 1)
    if not 0 <= spread < 1:
        raise ValueError(f"spread must lie in [0, 1); got {spread!r}.")
    if not 0 <= inhibitory <= 1:
        raise ValueError(f"inhibitory must lie in [0, 1]; got {inhibitory!r}.")
    topo = _rng(seed, _STREAM_HH_TOPOLOGY)
    par = _rng(seed if params_seed is None else params_seed, _STREAM_HH_PARAMS)
    area = 20000 * umetre**2 if area is None else area
    c = Circuit()

    def neurons(name, n, learn=("g_Na", "g_K", "g_L")):
        model = models.HHNeuron("hh", area=area, learn=learn, celsius=celsius)
        base = {var.name: float(np.asarray(model.value(var)))
                for var in model.learnable_variables()}
        values = {k: v * par.uniform(1 - spread, 1 + spread, n) * siemens
                  for k, v in base.items()}
        c.add_nodes(name, n, model, values=values)

    neurons("in", n_in, ("g_Na", "g_K", "g_L") if learn_inputs else ())
    neurons("hid", n_hidden)
    neurons("out", n_out)
    c.add_current_input("I", "in")
    c.connect("in", "hid", models.ChemicalSynapse("excitatory"),
              g=par.uniform(10, 30, (n_in, n_hidden)) * nS)
    pairs = [(a, b) for a in range(n_hidden) for b in range(a + 1, n_hidden)]
    n_gap = n_hidden // 2 if gap_pairs is None else _count("gap_pairs", gap_pairs, 0)
    if n_gap and pairs:
        pick = topo.choice(len(pairs), size=min(n_gap, len(pairs)), replace=False)
        c.connect("hid", "hid", models.Resistor(), name="gap",
                  g=par.uniform(5, 15, pick.size) * nS,
                  i=[pairs[k][0] for k in pick], j=[pairs[k][1] for k in pick])
    inh = topo.random((n_hidden, n_out)) < inhibitory
    if (~inh).any():
        ii, jj = np.nonzero(~inh)
        c.connect("hid", "out", models.ChemicalSynapse("excitatory"), name="hid->out",
                  g=par.uniform(10, 30, ii.size) * nS, i=ii, j=jj)
    if inh.any():
        ii, jj = np.nonzero(inh)
        c.connect("hid", "out", models.ChemicalSynapse("inhibitory"), name="hid-|out",
                  g=par.uniform(10, 30, ii.size) * nS, i=ii, j=jj)
    c.set_output("out")
    return c


@dataclass
class WaveformTask:
    """A teacher–student task on waveforms: circuits and train, validation and test data.

    Attributes
    ----------
    teacher, student : Circuit
        The same topology with different parameters; the teacher made the targets.
    x_train, y_train, x_val, y_val, x_test, y_test : TimeSeries
        Inputs and the teacher's output voltages.
    dt : Quantity
        The simulation time step the targets were made with.
    window : tuple of Quantity
        The loss window (the start-up transient left out).
    """

    teacher: Circuit
    student: Circuit
    x_train: TimeSeries
    y_train: TimeSeries
    x_val: TimeSeries
    y_val: TimeSeries
    x_test: TimeSeries
    y_test: TimeSeries
    dt: Quantity
    window: tuple


def _perturb(circuit: Circuit, rng: np.random.Generator, sigma: float) -> None:
    """Multiply every learnable value of a description by ``exp(σ z)``, ``z`` standard normal."""
    for conn in circuit.connections.values():
        vals = np.asarray(conn.values, dtype=float)
        conn.values = Quantity(vals * np.exp(sigma * rng.standard_normal(vals.shape)),
                               dim=conn.values.dim)
    for spec in circuit.nodes.values():
        for k, vals in spec.values.items():
            spec.values[k] = vals * np.exp(sigma * rng.standard_normal(vals.shape))


def hh_task(*, n_in: int = 3, n_hidden: int = 6, n_train: int = 8, n_val: int = 4,
            n_test: int = 4, duration: Quantity = 40e-3 * second,
            dt: Quantity = 0.025e-3 * second, seed: int = 0,
            mismatch: float = 0.25) -> WaveformTask:
    """A Hodgkin–Huxley network learns to make its output neuron follow a teacher's.

    The teacher is an :func:`hh_network` whose input neurons relay their currents (their
    channels are not learned); the student has its topology and hidden parameters that
    differ from the teacher's: every synapse, gap junction and hidden or output channel
    conductance multiplied by ``exp(mismatch · z)``, ``z`` standard normal (by default a
    spread of about 25 %). The inputs are multi-sine currents into the input neurons
    (2 ± 1.5 nA, periods around 20 ms, independent draws for the three splits); the
    targets are the teacher's output voltage traces. The loss window leaves out the
    first 5 ms.

    Returns
    -------
    WaveformTask
    """
    from brian2 import nA, volt

    from .dynamics import prepare, simulate

    _positive("duration", duration, second)
    _positive("dt", dt, second)
    teacher = hh_network(n_in, n_hidden, 1, seed=seed, params_seed=seed + 1000,
                         learn_inputs=False)
    student = hh_network(n_in, n_hidden, 1, seed=seed, params_seed=seed + 1000,
                         learn_inputs=False)
    if not 0 <= mismatch < 2:
        raise ValueError(f"mismatch must lie in [0, 2); got {mismatch!r}.")
    _perturb(student, _rng(seed, _STREAM_HH_PARAMS + 10), mismatch)
    splits = {}
    for k, (name, n) in enumerate((("train", n_train), ("val", n_val), ("test", n_test))):
        x = multisine(_count(f"n_{name}", n, 1), tau_omega=3.0, tau=10e-3 * second, dt=dt,
                      duration=duration, seed=seed * 10 + k, n_channels=n_in,
                      peak=1.5 * nA, offset=2.0 * nA)
        net = teacher.build(batch=x.n_samples, dt=dt)
        v = simulate(net, prepare(net, x)).v_out
        splits[name] = (x, TimeSeries(np.transpose(v, (1, 0, 2)) * volt, dt=dt))
    return WaveformTask(teacher, student, *splits["train"], *splits["val"], *splits["test"],
                        dt, (5e-3 * second, duration))
