"""Runs of a network's Brian2 objects as generated C++ (Brian2's standalone device).

A network built with ``target="cpp_standalone"`` keeps its Brian2 objects on the runtime
device, where they are plain objects a user can read, write and monitor between runs,
as on every other target. What changes is how a run is executed: instead of stepping
the objects from Python, :func:`run_objects` generates a C++ program for the same
objects (same equations, same schedule, same code strings), compiles it once, and for
every later run with the same structure only executes it, handing it the current value
of every variable and every ``TimedArray`` as Brian2's ``run_args`` (the
command-line arguments of ``device.run(run_args=...)``) and copying back into the
runtime objects every monitor's recording and the final values of what the program's
code may change (integrated states, summed-variable targets, variables that code
runners, ``run_regularly`` included, assign: :func:`_written`).

A compiled program is started once per process and then kept running
(:func:`serving`, :class:`_Server`): each execution is a line of arguments on its
input, answered by its exit status, rather than a new process (1 to 2 ms saved per
run, most of a short run). At most :data:`MAX_SERVERS` programs are kept running
(the least recently used one ends); they end with the process, however it ends. Set
:data:`SERVE` to ``False`` to start every execution as a process of its own (as
Brian2 does; a ``run_cmd_unix`` preference of the user's always does). Each program
also keeps its run directory, in which an execution rewrites only the input files
whose values changed, and its runs write only the arrays that Python reads back
(:func:`only_results`; Brian2's programs write every array). Loops over neurons and
synapses call glibc's vector math functions (:data:`VECTOR_MATH`).

The *structure* of a run is everything that is compiled into the program: the objects'
equations, code, sizes, the synapses' indices, schedule, clocks, the shapes of the
``TimedArray`` objects, the namespace's constants and the duration, and Brian2's
compiler preferences and the version of this module (:func:`_compilation`). It is
hashed; the project lives in ``<cache>/<hash>`` (``cache_directory()``), so a second
run, a second network of the same circuit, or a second process does not compile again
(Brian2 rewrites only source files whose text changed, and ``make`` then has nothing
to do). Values (parameters, inputs, targets, β, initial states) are not part of the
structure: changing them never recompiles.

The namespace entry ``t_start`` (:data:`RUN_START`) is the time at which a run starts,
which ``TimedArray`` lookups subtract (``ta(t - t_start, i)``); a generated program's
clock starts at zero on every execution, so the program sees ``t_start = 0 s``.

What cannot be generated runs on the runtime target instead, with a
:class:`StandaloneFallbackWarning` once per reason and network: a user's Python network
operations, groups and synapses with events (threshold, reset, ``on_pre``), and objects
of kinds this module does not know how to recreate. (Static
relaxation phases, whose settle check is Python, run one program per stretch between
two checks: :mod:`ephys_eqprop.phases`.)
"""

from __future__ import annotations

import atexit
import gc
import hashlib
import os
import re
import tempfile
import threading
import warnings
import weakref
from collections import Counter

import numpy as np
from brian2 import (
    NeuronGroup,
    Quantity,
    StateMonitor,
    Synapses,
    TimedArray,
    second,
)
from brian2.core.functions import Function
from brian2.groups.group import CodeRunner
from brian2.units.fundamentalunits import DIMENSIONLESS
from brian2.utils.filelock import FileLock

__all__ = [
    "RUN_START",
    "StandaloneFallbackWarning",
    "Waveform",
    "build_count",
    "cache_directory",
    "hand_over",
    "recording",
    "run_network",
    "run_objects",
    "serving_cpu_seconds",
]

#: Name of the run's start time in a run namespace (zero in a generated program).
RUN_START = "t_start"

_PROGRAMS: dict[str, _Program] = {}
_BUILDS = {"count": 0}


class StandaloneFallbackWarning(RuntimeWarning):
    """A run of a ``cpp_standalone`` network went to the runtime target instead."""


class Waveform:
    """Values that a run's code reads as a ``TimedArray``: ``name(t)`` or ``name(t, i)``.

    A ``TimedArray`` is made only where a run executes on a runtime target
    (:func:`run_network`); a generated program receives the values themselves. Making
    one costs a quarter of a millisecond, and keeps its values in a reference cycle
    (with its own implementations) until the cycle collector runs; a run's waveforms
    are a recorded trajectory, for the adjoint.

    Parameters
    ----------
    values : numpy.ndarray, shape (steps,) or (steps, size)
        Plain values (in the SI unit of ``dim``).
    dt : float
        Time between rows (second).
    name : str
        Name of the ``TimedArray`` on a runtime target (Brian2's ``*`` suffix allowed).
    dim : Dimension, optional
        Dimensions of the values (default: dimensionless).
    """

    __slots__ = ("dim", "dt", "name", "values")

    def __init__(self, values, dt: float, name: str, dim=DIMENSIONLESS):
        self.values = np.ascontiguousarray(values, dtype=float)
        self.dt = float(dt)
        self.name = name
        self.dim = dim

    def timed_array(self) -> TimedArray:
        """The Brian2 ``TimedArray`` of these values."""
        return TimedArray(Quantity(self.values, dim=self.dim), dt=self.dt * second,
                          name=self.name)


def _timed(val) -> bool:
    return isinstance(val, (TimedArray, Waveform))


def runtime_namespace(namespace: dict) -> dict:
    """``namespace`` with every :class:`Waveform` made into a ``TimedArray``."""
    return {k: v.timed_array() if isinstance(v, Waveform) else v for k, v in namespace.items()}


def cache_directory() -> str:
    """Where compiled programs are kept (``$EPHYS_EQPROP_CACHE`` or ``~/.cache``)."""
    root = os.environ.get("EPHYS_EQPROP_CACHE")
    if not root:
        root = os.path.join(os.path.expanduser("~"), ".cache", "ephys_eqprop")
    return os.path.join(root, "cpp_standalone")


def build_count() -> int:
    """How many programs this process has generated and compiled (for tests)."""
    return _BUILDS["count"]


# ---------------------------------------------------------------------- structure
_SUFFIX = re.compile(r"_\d+$")


def _base(name: str) -> str:
    """An object's name without the ``_<n>`` Brian2 appends to make names unique."""
    return _SUFFIX.sub("", name)


def _kind(obj) -> str | None:
    if isinstance(obj, Synapses):
        return "synapses"
    if isinstance(obj, NeuronGroup):
        return "group"
    if isinstance(obj, StateMonitor):
        return "monitor"
    if type(obj) is CodeRunner:
        return "runner"
    return None


def _schedule_key(obj):
    return (obj.when, obj.order)


_EQ_TEXT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _eq_string(obj) -> str:
    """The equations of a group or synapses, summed variables included, as text."""
    text = _EQ_TEXT.get(obj)
    if text is None:  # equations do not change after creation: once per object
        text = _EQ_TEXT[obj] = _eq_text(obj)
    return text


def _eq_text(obj) -> str:
    lines = []
    # by name: Brian2 orders subexpressions by their dependencies itself, and its own
    # order breaks ties by string hashes, which differ from process to process
    for eq in sorted(obj.equations.ordered, key=lambda e: e.varname):
        flags = f" ({', '.join(sorted(eq.flags))})" if eq.flags else ""
        unit = _unit_text(eq)
        if eq.type == "differential equation":
            lines.append(f"d{eq.varname}/dt = {eq.expr} : {unit}{flags}")
        elif eq.type == "subexpression":
            lines.append(f"{eq.varname} = {eq.expr} : {unit}{flags}")
        else:
            lines.append(f"{eq.varname} : {unit}{flags}")
    for name, upd in getattr(obj, "summed_updaters", {}).items():
        lines.append(f"{name} = {upd.expression} : {_dim_text(upd.target_var.dim)} (summed)")
    return "\n".join(lines)


def _dim_text(dim) -> str:
    from .expressions import unit_string

    return unit_string(dim)


def _unit_text(eq) -> str:
    if eq.var_type == "integer":
        return "integer"
    if eq.var_type == "boolean":
        return "boolean"
    return _dim_text(eq.dim)


def _method(obj):
    """The integration method a group or synapses was created with."""
    updater = getattr(obj, "state_updater", None)
    return "euler" if updater is None else updater.method_choice


def _code(runner) -> str:
    code = runner.abstract_code
    return code if isinstance(code, str) else code.get(None, "")


def _regular(obj) -> list:
    """The code runners a user added to an object (``run_regularly`` of a group or
    synapses; other objects contain none)."""
    return [c for c in obj.contained_objects if type(c) is CodeRunner]


def _sub(obj) -> tuple:
    """What of the objects contained in ``obj`` is compiled (its own, and its
    ``run_regularly`` code with the time step)."""
    return tuple((c.name[len(obj.name):], c.when, c.order)
                 + ((_code(c), float(c.clock.dt)) if type(c) is CodeRunner else ())
                 for c in obj.contained_objects)


_CONNECTIVITY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _connectivity(syn) -> str:
    """A hash of the pre- and postsynaptic indices of ``syn``, in synapse order.

    A program creates its synapses from the indices it was built with (files of its
    own): two circuits of the same sizes and equations but other connections are
    other programs. Brian2 only adds synapses (``connect``), so the indices are hashed
    again only when their number changed.
    """
    n = len(syn)
    known = _CONNECTIVITY.get(syn)
    if known is None or known[0] != n:
        h = hashlib.sha256()
        for name in ("_synaptic_pre", "_synaptic_post"):
            h.update(np.ascontiguousarray(syn.variables[name].get_value(),
                                          dtype=np.int64).tobytes())
        known = _CONNECTIVITY[syn] = (n, h.hexdigest()[:16])
    return known[1]


def _describe(obj, index: dict) -> tuple:
    """What of ``obj`` is compiled into a program (``index`` names other objects)."""
    kind = _kind(obj)
    dt = float(obj.clock.dt)
    if kind == "group":
        return (kind, len(obj), _eq_string(obj), _method(obj), dt, obj.when, obj.order,
                _sub(obj))
    if kind == "synapses":
        return (kind, index[obj.source.name], index[obj.target.name], len(obj),
                _connectivity(obj), _eq_string(obj), _method(obj), dt, _sub(obj))
    if kind == "monitor":
        return (kind, index[obj.source.name], tuple(obj.record_variables),
                tuple(np.asarray(obj.record).tolist()), dt, obj.when, obj.order)
    return (kind, index[obj.group.name], _code(obj), dt, obj.when,
            obj.order)


def _namespace_key(namespace: dict) -> tuple:
    items = []
    for key in sorted(namespace):
        val = namespace[key]
        if key == RUN_START:
            items.append((key, "run start"))
        elif _timed(val):
            items.append((key, "TimedArray", val.values.shape, str(val.values.dtype),
                          repr(val.dim), float(val.dt)))
        elif isinstance(val, Function):
            items.append((key, "Function", repr(sorted(val.implementations.keys()))))
        elif isinstance(val, Quantity):  # (its repr looks for the best unit: slow)
            items.append((key, "Quantity", np.asarray(val).tolist(), repr(val.dim)))
        else:
            items.append((key, repr(val)))
    return tuple(items)


def _ordered(objects) -> list:
    """The objects in a deterministic order: by kind, schedule and name without suffix.

    Objects of equal rank keep their order in ``objects``. The rank decides the
    clones' names (``e000_<base>``), which keep Brian2's schedule (by ``when``,
    ``order``, then name) for every pair of objects whose ``when`` and ``order`` differ;
    objects in the same slot touch different variables, so their order does not matter.
    """
    rank = {"group": 0, "synapses": 1, "runner": 2, "monitor": 3}
    bases = {o.name: _base(o.name) for o in objects}
    first = {o.name: (rank[_kind(o)], o.when, o.order, bases[o.name]) for o in objects}
    ties = Counter(first.values())
    # (describing an object costs more than the rest of its key: only for ties)
    return sorted(objects, key=lambda o: (first[o.name], repr(_describe(o, bases))
                                          if ties[first[o.name]] > 1 else ""))


# ---------------------------------------------------------------------- running
def _reason(obj) -> str | None:
    """Why a generated program cannot recreate ``obj`` (``None``: it can)."""
    kind = _kind(obj)
    if kind is None:
        return "Python code, which a standalone program cannot run"
    if (kind == "group" and obj.event_codes) or (kind == "synapses" and obj._pathways):
        return "events (threshold, reset, on_pre), which the generated programs do not run"
    return None


def unsupported(objects) -> list:
    """Objects among ``objects`` that a generated program cannot recreate."""
    return [o for o in objects if o.active and _reason(o) is not None]


def run_objects(objects, duration, namespace: dict, *, threads: int = 0,
                start: float = 0.0) -> bool:
    """Run ``objects`` (runtime Brian2 objects) for ``duration`` as a generated program.

    Parameters
    ----------
    objects : list
        The active objects of a runtime ``Network``: ``NeuronGroup``, ``Synapses``,
        ``StateMonitor``, ``CodeRunner``.
    duration : Quantity
    namespace : dict
        The run namespace (``TimedArray`` objects, functions, constants).
    threads : int
        OpenMP threads of the program (0: none).
    start : float
        The runtime network's time at the start of the run (second): monitors record
        from it, appending to what they hold, as in a runtime run.

    Returns
    -------
    bool
        ``False`` (nothing run) if some object cannot be generated; the caller then
        runs on the runtime target (as :func:`run_network` does).
    """
    objects = [o for o in objects if o.active]
    if unsupported(objects):
        return False
    ordered = _ordered(objects)
    index = {o.name: f"e{k:03d}" for k, o in enumerate(ordered)}
    steps = int(round(float(duration) / float(ordered[0].clock.dt)))
    structure = (tuple(_describe(o, index) for o in ordered), _namespace_key(namespace),
                 steps, threads, _compilation())
    key = hashlib.sha256(repr(structure).encode()).hexdigest()[:20]
    program = _PROGRAMS.get(key)
    if program is None:
        program = _PROGRAMS[key] = _Program(key, ordered, index, namespace, duration,
                                            threads)
    _collect_garbage()
    program.execute(ordered, namespace, start)
    _GARBAGE["bytes"] += _run_bytes(ordered, namespace)
    return True


#: bytes of recordings and input arrays past runs may have left in reference cycles
#: before a run collects them (:func:`_collect_garbage`)
GC_THRESHOLD_BYTES = 128 * 2**20
_GARBAGE = {"bytes": 0}


def _run_bytes(objects, namespace) -> int:
    """What a run's monitors recorded and its ``TimedArray`` objects hold (bytes).

    (:class:`Waveform` values are not in reference cycles: they are not counted.)
    """
    total = sum(v.values.nbytes for v in namespace.values() if isinstance(v, TimedArray))
    for obj in objects:  # (recordings handed over are freed with their reader's arrays)
        if _kind(obj) == "monitor" and obj not in _HANDED:
            total += sum(obj.variables[v].get_value().nbytes for v in obj.record_variables)
    return total


# monitor -> {variable: recording}: monitors whose recordings a run hands over as arrays
_HANDED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def hand_over(monitor) -> None:
    """Let generated runs hand ``monitor``'s recordings over instead of copying them in.

    For the package's own recorders (a forward run's trajectory, read once right after
    the run): the program's arrays are kept as they come (:func:`recording`) and the
    runtime monitor stays empty, which saves a copy of the whole trajectory. Runs on
    a runtime target record into the monitor as usual.
    """
    _HANDED[monitor] = {}


def recording(monitor, var: str) -> np.ndarray:
    """What ``monitor`` recorded of ``var`` in its last run, shape (steps, recorded).

    The array is the caller's (the monitor's own storage is copied). A recording
    handed over is given once, as the program wrote it (a read-only memory map of its
    result file, if large: :func:`_kept`); the monitor keeps no reference to it.
    """
    handed = _HANDED.get(monitor)
    if handed:
        return handed.pop(var)
    return np.array(monitor.variables[var].get_value())


#: result files smaller than this are read into memory; larger ones of recordings
#: handed over stay files, mapped into memory (:func:`_kept`)
KEEP_BYTES = 2**20
# id of a memory map of a kept result file -> (weak reference to the map, the file)
_KEPT: dict = {}


def _kept(path: str, rows: int, dtype, directory: str) -> np.ndarray:
    """The result file ``path`` of a recording handed over, shape (rows, -1).

    A large file is moved to ``directory`` (out of the run's scratch directory, which
    is removed) and mapped into memory read-only; the file is removed when the last
    array that views it is freed. Such an array handed to a later program as a
    ``TimedArray``'s values is given to it as that file (:func:`_file_of`): a
    recorded trajectory goes from the forward program to the adjoint program without
    being read, copied or written by Python. (Windows cannot remove a mapped file:
    files are read there.)
    """
    size = os.path.getsize(path)
    if size < KEEP_BYTES or os.name == "nt" or rows == 0:
        return np.fromfile(path, dtype=dtype).reshape(rows, -1)
    fd, kept = tempfile.mkstemp(prefix=f"ephys_eqprop_p{os.getpid()}_", suffix=".dat",
                                dir=directory)
    os.close(fd)
    try:
        os.replace(path, kept)
        columns = size // rows // np.dtype(dtype).itemsize
        mm = np.memmap(kept, dtype=dtype, mode="r", shape=(rows, columns))
    except BaseException:
        _remove(kept)
        raise
    _KEPT[id(mm)] = (weakref.ref(mm), kept)
    back = path if RECORD_IN_PLACE and size <= REUSE_BYTES else None
    weakref.finalize(mm, _remove, kept, id(mm), back)
    return mm


#: a kept result file (:func:`_kept`) of at most this many bytes goes back, once its
#: last array is freed, to where its program writes it, so that the next run of the
#: program writes over its pages (:data:`RECORD_HEADER`) rather than have the system
#: allocate and clear new ones: at N = 1000, T = 10³ in ``benchmarks/adjoint_vs_jax.py``
#: an 8 MB trajectory, whose new pages cost the forward program a third of its time.
#: The file then holds its memory between runs (in the program's run directory,
#: removed with it); larger files are removed.
REUSE_BYTES = 2**28


def _remove(path: str, key: int | None = None, back: str | None = None) -> None:
    """Remove the file ``path`` (of :data:`_KEPT` entry ``key``), or put it back at
    ``back`` if nothing is there: a link made only if no file of that name exists, so
    that a program that has begun writing its file there keeps it."""
    _KEPT.pop(key, None)
    if back is not None:
        try:
            os.link(path, back)
        except OSError:
            pass
    try:
        os.remove(path)
    except OSError:
        pass


def _file_of(arr: np.ndarray) -> str | None:
    """The kept result file whose whole contents ``arr`` is (:func:`_kept`), if any."""
    base = arr
    while True:
        entry = _KEPT.get(id(base))
        if entry is not None and entry[0]() is base:
            break
        base = base.base
        if not isinstance(base, np.ndarray):
            return None
    if (arr.dtype == base.dtype and arr.nbytes == base.nbytes and arr.flags.c_contiguous
            and arr.__array_interface__["data"][0] == base.__array_interface__["data"][0]):
        return entry[1]
    return None


def _collect_garbage() -> None:
    """Collect reference cycles once past runs may have left enough memory in them.

    Brian2 objects sit in reference cycles, so monitors and ``TimedArray`` objects made
    for one run (a user's; the package's own runs reuse theirs and pass
    :class:`Waveform` values) outlive it until the cycle collector runs; Brian2's
    ``Network.run`` collects before every run. A full collection costs 30 to 120 ms in
    a process that has imported Brian2 and sympy, more than a short program takes, so
    it runs only once the runs since the last one have recorded or read
    :data:`GC_THRESHOLD_BYTES` (the memory this can hold back).
    """
    if _GARBAGE["bytes"] >= GC_THRESHOLD_BYTES:
        # objects a caller froze (as runtime runs do, to keep Brian2's own collection
        # short) would include that garbage: thaw them
        frozen = gc.get_freeze_count() > 0
        if frozen:
            gc.unfreeze()
        gc.collect()
        if frozen:
            gc.freeze()
        _GARBAGE["bytes"] = 0


def run_network(network, duration, namespace: dict, *, standalone: bool, what: str,
                threads: int = 0, warned: set | None = None) -> None:
    """Run a runtime ``Network``: as a generated program if ``standalone`` and possible.

    ``warned`` collects the reasons already reported for a fallback (one warning per
    reason and network).
    """
    if standalone:
        start = float(network.t)
        if run_objects(network.objects, duration, namespace, threads=threads, start=start):
            # the runtime network's time moves on as if it had run (its clocks follow it)
            network.t_ = start + float(duration)
            return
        kinds = "; ".join(sorted({f"{type(o).__name__} objects ({_reason(o)})"
                                  for o in unsupported(network.objects)}))
        if warned is None or kinds not in warned:
            if warned is not None:
                warned.add(kinds)
            warnings.warn(
                f"{what} runs on the runtime target, not as generated C++: it contains "
                f"{kinds}.", StandaloneFallbackWarning, stacklevel=4)
    namespace = runtime_namespace(namespace)
    # Brian2 calls gc.collect() at the start of every run; freezing the objects that
    # already exist keeps that scan short for the many short runs of training
    gc.freeze()
    try:
        network.run(duration, namespace=namespace)
    finally:
        gc.unfreeze()


_TRANSFERABLE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _transferable(obj) -> list[str]:
    """Names of the variables of ``obj`` whose values a run reads or changes."""
    if _kind(obj) not in ("group", "synapses"):
        return []
    names = _TRANSFERABLE.get(obj)
    if names is None:  # (an object's equations do not change)
        eqs = obj.equations
        names = _TRANSFERABLE[obj] = sorted(set(eqs.diff_eq_names)
                                            | set(eqs.parameter_names))
    return names


_ASSIGNED = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:[-+*/]?=)(?!=)")


def _written(ordered) -> list[list[str]]:
    """Per object, the variables handed in that the program's code may change.

    Integrated states, the targets of summed variables, and what a code runner's code
    assigns; the rest (parameters that no code writes) come back as they went in, and
    are not read back (at 10 nodes, a third of a short run's result files).
    """
    changed = {o.name: set(o.equations.diff_eq_names) for o in ordered
               if _kind(o) in ("group", "synapses")}
    for obj in ordered:
        if _kind(obj) == "synapses":
            for upd in obj.summed_updaters.values():
                changed[upd.target.name].add(upd.target_var.name)
        for runner in ([obj] if _kind(obj) == "runner" else []) + _regular(obj):
            for line in re.split(r"[\n;]", _code(runner)):
                match = _ASSIGNED.match(line)
                if not match:
                    continue
                name, group = match.group(1), runner.group
                if _kind(group) == "synapses" and name.endswith(("_pre", "_post")):
                    name, end = name.rsplit("_", 1)
                    group = group.source if end == "pre" else group.target
                if group.name in changed:
                    changed[group.name].add(name)
    return [[n for n in _transferable(o) if n in changed.get(o.name, ())] for o in ordered]


# the network loop of Brian2's generated main program reads the process's CPU clock
# after every time step (for maximum_run_time, which this module never sets): a system
# call, 0.2 µs on a virtual machine, a third of a 10-node circuit's step
_STEP_CLOCK = re.compile(
    r"(\n[ \t]*clock = next_clocks\(\);\n)\s*current = std::clock\(\);\n"
    r"\s*(elapsed_realtime = \(double\)\(current - start\)[^;\n]*;)\n")
_LOOP_END = "\n    Network::_globally_running = false;\n"


def clock_once(source: str) -> str:
    """Brian2's ``network.cpp`` with the CPU clock read once after the loop, not per step.

    The run's wall time (``last_run_info.txt``, reports) is unchanged; without a
    ``maximum_run_time`` nothing else reads the per-step value. Source that does not
    have the expected form (another Brian2 version, OpenMP, a run time limit) is
    returned as it is.
    """
    if "elapsed_realtime>" in source or source.count(_LOOP_END) != 1:
        return source
    found = _STEP_CLOCK.findall(source)
    if len(found) != 1:
        return source
    source = _STEP_CLOCK.sub(lambda m: m.group(1), source)
    return source.replace(_LOOP_END, "\n    current = std::clock();\n    "
                          + found[0][1] + _LOOP_END)


_WRITE_BLOCK = re.compile(
    r"    ofstream outfile_(\w+);\n.*?"
    r"Error writing output file for \1\.\" << endl;\n    \}\n", re.DOTALL)


def _write_arrays_span(source: str) -> tuple[int, int]:
    """Where Brian2's ``_write_arrays`` function is in ``objects.cpp`` (its start, and
    the start of its closing line); ``(-1, -1)`` if it is not there."""
    start = source.find("void _write_arrays()")
    return (start, source.find("\n}\n", start)) if start >= 0 else (-1, -1)


def only_results(source: str, names) -> str:
    """Brian2's ``objects.cpp`` with ``_write_arrays`` writing only the arrays ``names``.

    Brian2 writes every array of the program to a file at the end of every run (some
    sixty files for the benchmark circuit's forward program, most of a short run's
    end); Python reads back only what the run's code may change (:func:`_written`) and
    the recordings. Source of another form (another Brian2 version), or in which some
    of ``names`` has no block, is returned as it is.
    """
    start, end = _write_arrays_span(source)
    if start < 0:
        return source
    body = source[start:end]
    blocks = {m.group(1) for m in _WRITE_BLOCK.finditer(body)}
    if not blocks or not set(names) <= blocks:
        return source
    body = _WRITE_BLOCK.sub(lambda m: m.group(0) if m.group(1) in names else "", body)
    return source[:start] + body + source[end:]


#: whether a generated program writes the state it changed into one result file
#: (:func:`packed_results`) rather than a file per array
PACK_RESULTS = True
#: the name of that file in a run's results directory
PACK_FILE = "ephys_eqprop_results"
_WRITE_CALL = re.compile(
    r"\.write\(reinterpret_cast<char\*>\((?P<pointer>[^;]+?)\), (?P<size>[^;]+?)\);\n")


def packed_results(source: str, names) -> tuple[str, bool]:
    """Brian2's ``objects.cpp`` with ``_write_arrays`` writing the arrays ``names`` (in
    that order) into one file, :data:`PACK_FILE`, instead of a file each; and whether
    it does.

    The file holds the arrays' sizes in bytes (unsigned 64-bit integers, one per
    array, in the machine's byte order), then their bytes one after another, as
    Brian2 would write them to their own files. A run then writes and Python reads one
    file where there were some twenty (a file costs 15 to 30 µs to write or read
    here: at N = 100, T = 10³ in ``benchmarks/adjoint_vs_jax.py``, a tenth of a
    gradient). Source of another form, or in which some of ``names`` has no block, is
    returned as it is (with ``False``).
    """
    names = list(names)
    start, end = _write_arrays_span(source)
    if start < 0 or not names:
        return source, False
    body = source[start:end]
    calls = {}
    for m in _WRITE_BLOCK.finditer(body):
        found = _WRITE_CALL.findall(m.group(0))
        if m.group(1) in names and len(found) == 1:
            calls[m.group(1)] = found[0]
    if set(calls) != set(names):
        return source, False
    body = _WRITE_BLOCK.sub(lambda m: "" if m.group(1) in names else m.group(0), body)
    sizes = ",\n".join(f"            (uint64_t)({calls[n][1]})" for n in names)
    writes = "\n".join(f"        if (_sizes[{k}] > 0)\n"
                       f"            std::fwrite({calls[n][0]}, 1, _sizes[{k}], _pack);"
                       for k, n in enumerate(names))
    block = f"""
    // the changed state, in one file: the arrays' sizes in bytes, then their bytes
    const std::string _pack_path = results_dir + "{PACK_FILE}";
    FILE* _pack = std::fopen(_pack_path.c_str(), "wb");
    if (_pack == nullptr)
    {{
        std::cout << "Error writing output file " << _pack_path << "." << endl;
        std::exit(1);  // (a file of an earlier run would be read for this one's)
    }} else
    {{
        const uint64_t _sizes[{len(names)}] = {{
{sizes}}};
        std::fwrite(_sizes, sizeof(uint64_t), {len(names)}, _pack);
{writes}
        if (std::ferror(_pack) || std::fclose(_pack) != 0)
        {{
            std::cout << "Error writing output file " << _pack_path << "." << endl;
            std::exit(1);
        }}
    }}
"""
    head = "{\n    using namespace brian;\n"
    at = body.find(head)
    if at < 0:
        return source, False
    at += len(head)
    body = body[:at] + block + body[at:]
    source = source[:start] + body + source[end:]
    if source.count(_OBJECTS_INCLUDE) != 1:
        return source, False
    return source.replace(_OBJECTS_INCLUDE, _OBJECTS_INCLUDE
                          + "#include <cstdint>\n#include <cstdio>\n#include <cstdlib>\n"), True


def unpacked(path: str, count: int) -> list[np.ndarray]:
    """The ``count`` arrays of a file :func:`packed_results` made, as bytes (views of
    one buffer)."""
    buf = np.fromfile(path, dtype=np.uint8)
    head = 8 * count
    if buf.size < head:
        raise RuntimeError(f"{path}: {buf.size} bytes, fewer than its {count} sizes")
    sizes = buf[:head].view(np.uint64)
    ends = head + np.cumsum(sizes)
    if ends[-1] != buf.size:
        raise RuntimeError(f"{path}: {buf.size} bytes, not the {int(ends[-1])} its "
                           "sizes say")
    starts = np.concatenate(([head], ends[:-1]))
    return [buf[int(a):int(b)] for a, b in zip(starts, ends, strict=True)]


#: whether generated programs map the large files of ``TimedArray`` values they are
#: given (a recorded trajectory) into memory rather than read them (:func:`mapped_inputs`)
MAP_INPUTS = True
#: the size from which a given file is mapped rather than read (written into the source)
MAP_BYTES = 2**20

# what :func:`mapped_inputs` adds to Brian2's objects.cpp, after its file readers
_MAP_HELPERS = r"""
#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define EPHYS_EQPROP_MAP 1
#endif

// an array only read by the code (a TimedArray's values) given a file of at least
// EPHYS_EQPROP_MAP_BYTES is mapped into memory rather than read into its buffer; the
// buffer (untouched: it takes no memory) is put back before it is freed
#define EPHYS_EQPROP_MAP_BYTES {min_bytes}
struct _MappedInput {{ void** pointer; void* own; void* map; size_t size; }};
static std::vector<_MappedInput> _mapped_inputs;

static void _unmap_input(void** pointer)
{{
#ifdef EPHYS_EQPROP_MAP
    for (size_t k = 0; k < _mapped_inputs.size(); k++)
        if (_mapped_inputs[k].pointer == pointer)
        {{
            munmap(_mapped_inputs[k].map, _mapped_inputs[k].size);
            *pointer = _mapped_inputs[k].own;
            _mapped_inputs.erase(_mapped_inputs.begin() + k);
            return;
        }}
#endif
}}

static void _unmap_inputs()
{{
    while (!_mapped_inputs.empty())
        _unmap_input(_mapped_inputs.back().pointer);
}}

template<class T> void _map_from_file(std::string varname, T*& var_pointer, size_t data_size,
                                      std::string filename)
{{
    _unmap_input(reinterpret_cast<void**>(&var_pointer));
#ifdef EPHYS_EQPROP_MAP
    if (data_size >= EPHYS_EQPROP_MAP_BYTES)
    {{
        const int fd = open(filename.c_str(), O_RDONLY);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && (size_t)st.st_size == data_size)
        {{
            int flags = MAP_PRIVATE;
#ifdef MAP_POPULATE
            flags |= MAP_POPULATE;
#endif
            void* map = mmap(0, data_size, PROT_READ, flags, fd, 0);
            close(fd);
            if (map != MAP_FAILED)
            {{
                _mapped_inputs.push_back({{reinterpret_cast<void**>(&var_pointer),
                                          (void*)var_pointer, map, data_size}});
                var_pointer = reinterpret_cast<T*>(map);
                return;
            }}
        }}
        else if (fd >= 0)
            close(fd);
    }}
#endif
    set_variable_from_file(varname, var_pointer, data_size, filename);
}}
"""

_SETTERS = "//////////////// set arrays by name ///////\n"
_DEALLOC = "void _dealloc_arrays()\n{\n"


def mapped_inputs(source: str, names, min_bytes: int) -> str:
    """Brian2's ``objects.cpp`` with the arrays ``names`` (``TimedArray`` values, which
    every execution gives the program as files) neither loaded from the program's
    static arrays at the start of a run nor read from a given file of ``min_bytes`` or
    more, which is mapped into memory instead.

    Brian2's program reads every static array into a buffer of its own at the start of
    a run, then reads the files given as run arguments into the same buffers: for a
    recorded trajectory (80 MB at N = 1000, T = 10⁴ in ``benchmarks/adjoint_vs_jax.py``)
    two copies and the buffer's pages, a tenth of the adjoint program's time. Source
    of another form (another Brian2 version) is returned as it is.
    """
    names = sorted(names)
    if (not names or source.count(_SETTERS) != 1 or source.count(_DEALLOC) != 1
            or "_map_from_file" in source):
        return source
    out = source
    for name in names:
        load = re.compile(
            rf"    ifstream f{name};\n    f{name}\.open\(\"static_arrays/{name}\".*?"
            rf"Error opening static array {name}\.\" << endl;\n    \}}\n", re.DOTALL)
        setter = f"set_variable_from_file(name, {name}, data_size, s_value);"
        out, loads = load.subn("", out)
        if loads != 1 or out.count(setter) != 1:
            return source
        out = out.replace(setter, f"_map_from_file(name, {name}, data_size, s_value);")
    out = out.replace(_SETTERS, _MAP_HELPERS.format(min_bytes=int(min_bytes)) + _SETTERS)
    return out.replace(_DEALLOC, _DEALLOC + "    brian::_unmap_inputs();\n")


#: whether generated programs write their recordings straight into the result files
#: that Python reads, mapped into memory (:func:`recorded_objects`)
RECORD_IN_PLACE = True

#: A header included by the code of a program that records in place
#: (:data:`RECORD_IN_PLACE`). Brian2's ``StateMonitor`` appends a row to a
#: ``DynamicArray2D`` at every step (a vector allocated and zeroed per row), and the
#: program copies all rows to the result file at the end of its run; a recorded
#: trajectory (80 MB at N = 1000, T = 10⁴ in ``benchmarks/adjoint_vs_jax.py``) is then
#: allocated, written, and copied once more. Here the rows are written where the file
#: keeps them: the file is sized for the rows a run is expected to record (doubling if
#: it records more), mapped shared, and cut to the rows recorded at the end of the
#: run. The file's bytes are those Brian2 writes (rows of ``row_bytes``, one after
#: another).
RECORD_HEADER = """\
#ifndef EPHYS_EQPROP_RECORD_H
#define EPHYS_EQPROP_RECORD_H
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#ifndef MAP_POPULATE
#define MAP_POPULATE 0
#endif

// a recording's result file, written in place (one per recorded variable)
struct _RecordFile {
    const char* name;  // in the results directory
    size_t hint;       // rows a run is expected to record
    size_t capacity, rows, row_bytes;
    char* data;        // the file, mapped (capacity rows)
    int fd;            // -1: no file open
};

static inline void _record_fail(const _RecordFile& r, const char* what)
{
    std::fprintf(stderr, "recording %s: %s failed: %s\\n", r.name, what,
                 std::strerror(errno));
    std::exit(1);
}

static inline void _record_unmap(_RecordFile& r)
{
    if (r.data != nullptr)
        munmap(r.data, r.capacity * r.row_bytes);
    r.data = nullptr;
}

static inline void _record_map(_RecordFile& r, size_t capacity)
{
    _record_unmap(r);
    r.capacity = capacity;
    if (r.row_bytes == 0)
        return;
    if (ftruncate(r.fd, (off_t)(capacity * r.row_bytes)) != 0)
        _record_fail(r, "sizing the file");
    void* p = mmap(nullptr, capacity * r.row_bytes, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_POPULATE, r.fd, 0);
    if (p == MAP_FAILED)
        _record_fail(r, "mapping the file");
    r.data = static_cast<char*>(p);
}

static inline void _record_release(_RecordFile& r)
{
    _record_unmap(r);
    if (r.fd >= 0)
        close(r.fd);
    r.fd = -1;
    r.capacity = r.rows = 0;
}

// where row `row` (of `row_bytes`) goes; row 0 starts the run's file
static inline char* _record_row(_RecordFile& r, size_t row, size_t row_bytes,
                                const std::string& results_dir)
{
    if (row == 0 || r.fd < 0) {
        _record_release(r);  // (a run that did not end leaves its file open)
        const std::string path = results_dir + r.name;
        // (not emptied: the pages of the file an earlier run left are written over,
        // not freed and allocated again; every row up to the last is written, and
        // the end of the run cuts the file to them)
        r.fd = open(path.c_str(), O_RDWR | O_CREAT, 0644);
        if (r.fd < 0)
            _record_fail(r, "opening the file");
        r.row_bytes = row_bytes;
        _record_map(r, r.hint > row ? r.hint : row + 1);
    }
    if (row >= r.capacity)
        _record_map(r, 2 * r.capacity > row ? 2 * r.capacity : row + 1);
    if (row >= r.rows)
        r.rows = row + 1;
    return r.data + row * r.row_bytes;
}

// the end of a run: the file holds the rows recorded (none: an empty file)
static inline void _record_close(_RecordFile& r, const std::string& results_dir)
{
    if (r.fd < 0) {
        const std::string path = results_dir + r.name;
        r.fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (r.fd < 0)
            _record_fail(r, "opening the file");
    }
    _record_unmap(r);
    if (ftruncate(r.fd, (off_t)(r.rows * r.row_bytes)) != 0)
        _record_fail(r, "sizing the file");
    _record_release(r);
}
#endif
"""
_RECORD_FILE = "ephys_eqprop_record.h"
_OBJECTS_INCLUDE = '#include "objects.h"\n'


def _record_lines(array: str, ctype: str) -> tuple[re.Pattern, str, str, str]:
    """The lines of a monitor's code object that resize and fill the row of ``array``
    (a pattern and the text replacing it), and the assignment and its replacement."""
    resize = re.compile(rf"^([ \t]*){re.escape(array)}\.resize\(_new_size, _num_indices\);$",
                        re.MULTILINE)
    row = (rf"\1{ctype}* const _row{array} = reinterpret_cast<{ctype}*>(_record_row("
           rf"_record{array}, _new_size - 1, _num_indices * sizeof({ctype}), results_dir));")
    return resize, row, f"{array}(_new_size-1, _i) = ", f"_row{array}[_i] = "


def recordable(code: str, array: str, ctype: str) -> bool:
    """Whether the code object ``code`` (Brian2's ``StateMonitor`` template) touches
    the 2-D array ``array`` only by resizing it to the new row and assigning that
    row's elements, outside OpenMP: the form :func:`recorded_code` rewrites."""
    resize, _, assign, _ = _record_lines(array, ctype)
    return ("#pragma omp" not in code and len(resize.findall(code)) == 1
            and code.count(assign) == 1
            and len(re.findall(rf"\b{re.escape(array)}\b", code)) == 2)


def recorded_code(code: str, arrays: dict[str, str]) -> str:
    """A monitor's code object writing the rows of ``arrays`` (name -> C type, each
    :func:`recordable`) into their result files (:data:`RECORD_HEADER`)."""
    if not arrays:
        return code
    if code.count(_OBJECTS_INCLUDE) != 1:
        raise ValueError("a code object of another form: cannot record in place")
    for array, ctype in arrays.items():
        if not recordable(code, array, ctype):
            raise ValueError(f"{array} is not recorded in the form expected")
        resize, row, assign, into = _record_lines(array, ctype)
        code = resize.sub(row, code).replace(assign, into)
    decls = "".join(f"namespace brian {{ extern _RecordFile _record{a}; }}\n"
                    for a in sorted(arrays))
    return code.replace(_OBJECTS_INCLUDE,
                        _OBJECTS_INCLUDE + f'#include "{_RECORD_FILE}"\n' + decls)


def recorded_objects(source: str, arrays: dict[str, int]) -> tuple[str, set[str]]:
    """Brian2's ``objects.cpp`` with the 2-D arrays ``arrays`` (name -> the rows a run
    is expected to record) written in place by the code (:func:`recorded_code`): each
    has a record file, closed where ``_write_arrays`` would have written the array.
    Returns the source and the arrays it records in place (those whose block in
    ``_write_arrays`` has the expected form)."""
    start = source.find("void _write_arrays()")
    if (start < 0 or source.count(_SETTERS) != 1 or source.count(_OBJECTS_INCLUDE) != 1
            or _RECORD_FILE in source):
        return source, set()
    end = source.find("\n}\n", start)
    body = source[start:end]
    files, done = [], set()

    def close(m):
        name = m.group(1)
        file = re.search(rf'results_dir \+ "({re.escape(name)}_\d+)"', m.group(0))
        if name not in arrays or file is None:
            return m.group(0)
        files.append(f'_RecordFile _record{name} = {{"{file.group(1)}", '
                     f"{int(arrays[name])}, 0, 0, 0, nullptr, -1}};\n")
        done.add(name)
        return f"    _record_close(_record{name}, results_dir);\n"

    body = _WRITE_BLOCK.sub(close, body)
    if not done:
        return source, set()
    out = source[:start] + body + source[end:]
    out = out.replace(_OBJECTS_INCLUDE, _OBJECTS_INCLUDE + f'#include "{_RECORD_FILE}"\n')
    out = out.replace(_SETTERS, "// recordings written in place\n" + "".join(files) + _SETTERS)
    return out, done


#: whether summed variables with few targets (at most :data:`LANE_TARGETS`) are summed
#: in :data:`LANES` interleaved partial sums (:func:`lane_sums`)
LANE_SUMS = True
LANES = 8
LANE_TARGETS = 8

# the parts of Brian2's summed_variable template (cpp_standalone) that the functions
# below rewrite
_TARGET_SIZE = re.compile(r"^[ \t]*const int _target_size = (\w+);$", re.MULTILINE)
_TARGET_ZERO = re.compile(
    r"^[ \t]*for \(int _target_idx=0; _target_idx<(\w+); _target_idx\+\+\)\n"
    r"[ \t]*\{\n[ \t]*(_ptr_array_\w+)\[_target_idx \+ 0\] = 0;\n[ \t]*\}$", re.MULTILINE)
_SUM_LOOP = "    for(int _idx=0; _idx<"


def _constant(code: str, name: str) -> int | None:
    """The value of the integer constant ``name`` declared in ``code`` (or a literal)."""
    if name.isdigit():
        return int(name)
    if name == "_target_size":
        size = _TARGET_SIZE.search(code)
        return None if size is None else _constant(code, size.group(1))
    const = re.search(rf"^[ \t]*const (?:u?int\d+_t|size_t|int) {name} = (\d+);$", code,
                      re.MULTILINE)
    return None if const is None else int(const.group(1))


def lane_sums(code: str, lanes: int = LANES, max_targets: int = LANE_TARGETS) -> str:
    """A summed-variable code object (Brian2's ``summed_variable`` template, or two of
    them fused by :func:`fused_sums`) whose targets of at most ``max_targets`` elements
    are summed into ``lanes`` partial sums.

    Brian2 adds each synapse's term into its target in synapse order: when thousands
    of synapses end on two or three nodes (a readout layer), every addition waits for
    the one before it to the same node, through memory. Here synapse ``i`` adds into
    partial sum ``i mod lanes`` of its target (a local array), and the partial sums are
    added at the end: ``lanes`` times as many independent chains, the same terms summed
    in another order (the result differs by rounding). Targets of another form — a
    size not fixed in the code, a subgroup, a type other than ``double`` — and code
    with OpenMP are left as they are, and so is every code object that is not a
    summed variable's.
    """
    if "#pragma omp" in code or code.count(_SUM_LOOP) != 1 or lanes < 1 or lanes & (lanes - 1):
        return code
    end = code.rfind("\n}")  # the function's end, just after the summation loop
    if end < code.find(_SUM_LOOP):
        return code
    decls, totals = [], []
    for n, zero in enumerate(_TARGET_ZERO.finditer(code)):
        k, target = _constant(code, zero.group(1)), zero.group(2)
        add = re.compile(rf"^([ \t]*){re.escape(target)}\[(_ptr_array_\w+)\[_idx\]\] "
                         r"\+= _synaptic_var;$", re.MULTILINE)
        if (k is None or not 0 < k <= max_targets or len(add.findall(code)) != 1
                or not re.search(rf"\bdouble\* __restrict\s+{re.escape(target)} =", code)):
            continue
        lane = f"_lane_sums{n}"
        code = add.sub(rf"\1{lane}[_idx & {lanes - 1}][\2[_idx]] += _synaptic_var;", code)
        decls.append(f"    double {lane}[{lanes}][{k}] = {{}};\n")
        total = " + ".join(f"{lane}[{i}][_target_idx]" for i in range(lanes))
        totals.append(f"\n    for (int _target_idx=0; _target_idx<{k}; _target_idx++)\n"
                      f"        {target}[_target_idx] = {total};\n")
    if not decls:
        return code
    end = code.rfind("\n}")
    code = code[:end] + "".join(totals) + code[end:]
    return code.replace(_SUM_LOOP, "".join(decls) + _SUM_LOOP)


#: whether a two-dimensional ``TimedArray`` that a group's code reads at one time for
#: each of its elements, by the element's own index, is read as one row (:func:`row_reads`)
ROW_READS = True

# Brian2's C++ form of a two-dimensional TimedArray (``brian2.input.timedarray``)
_TIMED_2D = re.compile(
    r"static inline double (\w+)\(const double t, const int i\)\n"
    r"[ \t]*\{\n"
    r"[ \t]*const double epsilon = ([0-9.]+) / (\d+);\n"
    r"[ \t]*if \(i < 0 \|\| i >= (\d+)\)\n[ \t]*return NAN;\n"
    r"[ \t]*int timestep = \(int\)\(\(t/epsilon \+ 0\.5\)/\3\);\n"
    r"[ \t]*if\(timestep < 0\)\n[ \t]*timestep = 0;\n"
    r"[ \t]*else if\(timestep >= (\d+)\)\n[ \t]*timestep = \5-1;\n"
    r"[ \t]*return (_namespace\1_values)\[timestep\*\4 \+ i\];\n"
    r"[ \t]*\}\n")
_GROUP_LOOP = "    const int _N = N;\n    \n    for(int _idx=0; _idx<_N; _idx++)\n    {\n"
_SCALAR = "    // scalar code\n"


def row_reads(code: str, index_arrays) -> str:
    """A group's code object whose reads of a two-dimensional ``TimedArray`` at a time
    fixed for the step, at the element's own index, read one row.

    Brian2 reads ``ta(t, i)`` element by element: a bounds check on ``i`` (``NaN``
    outside), the time step from ``t``, then a load from the index array: a branch
    and an indirect load per element that keep GCC from vectorising the loop. When
    the time argument is a constant of the step (declared in the scalar code before
    the loop), ``i`` is read from one of ``index_arrays`` (a ``NeuronGroup``'s own
    indices ``0 .. N - 1``, so that ``i`` is the loop's ``_idx``) and the array has
    ``N`` columns (so no ``i`` is out of bounds), the row is found once, before the
    loop, by the same arithmetic, and read at ``_idx``: the same values. Code of any
    other form is returned as it is.
    """
    loop = code.find(_GROUP_LOOP)
    scalar = code.find(_SCALAR)
    n = _constant(code, "N")
    if loop < 0 or scalar < 0 or scalar > loop or n is None or "#pragma omp" in code:
        return code
    index = re.search(r"^[ \t]*const int32_t i = _ptr(_array_\w+)\[_idx\];$", code[loop:],
                      re.MULTILINE)
    if index is None or index.group(1) not in index_arrays:
        return code
    rows, scalar_code = [], code[scalar:loop]
    for fn in _TIMED_2D.finditer(code):
        name, dt, k, cols, steps, values = fn.groups()
        calls = re.compile(rf"\b{name}\((\w+), i\)")
        args = set(calls.findall(code, loop))
        if int(cols) != n or len(args) != 1 or calls.search(code, 0, loop):
            continue
        (arg,) = args
        if not re.search(rf"^[ \t]*const double {arg} = ", scalar_code, re.MULTILINE):
            continue
        row = f"_row_{name}"
        rows.append((calls, row, f"    int {row}_step = (int)(({arg}/({dt} / {k}) + 0.5)/{k});\n"
                     f"    if({row}_step < 0)\n        {row}_step = 0;\n"
                     f"    else if({row}_step >= {steps})\n        {row}_step = {steps}-1;\n"
                     f"    const double* __restrict {row} = {values} + "
                     f"(size_t){row}_step*{cols};\n"))
    if not rows:
        return code
    head, body = code[:loop], code[loop:]
    for calls, row, decl in rows:
        body = calls.sub(f"{row}[_idx]", body)
        head += decl
    return head + body


#: whether the summed variables of one ``Synapses`` object that run one after the other
#: are computed in one loop over its synapses (:func:`fused_sums`)
FUSE_SUMS = True

_SECTIONS = ("////// SUPPORT CODE ///////", "////// HASH DEFINES ///////", "void _run_",
             "    ///// CONSTANTS ///////////", "    ///// POINTERS ////////////",
             "    //// MAIN CODE ////////////")
_SUM_MAIN = re.compile(
    r"\A(?P<head>\s*const int _target_size = (?P<size>\w+);\n\s*"
    r"// Set all the target variable values to zero\n\s*)"
    r"(?P<zero>for \(int _target_idx=0; _target_idx<_target_size; _target_idx\+\+\)\n"
    r"[ \t]*\{\n[ \t]*(?P<target>_ptr_array_\w+)\[_target_idx \+ 0\] = 0;\n[ \t]*\}\n)"
    r"(?P<scalar>\s*// scalar code\n[ \t]*const size_t _vectorisation_idx = -1;\n"
    r"(?P<scalar_code>(?:.*\n)*?))"
    r"(?P<loop>    for\(int _idx=0; _idx<(?P<n>[^;]+); _idx\+\+\)\n    \{\n)"
    r"(?P<body>(?:.*\n)*?)    \}\n\s*\Z")
_DECLARED = re.compile(r"(\w+) =")


def _parts(code: str) -> list[str] | None:
    """``code`` cut at :data:`_SECTIONS` (None if they are not there, in that order)."""
    cuts, at = [], 0
    for mark in _SECTIONS:
        at = code.find(mark, at)
        if at < 0:
            return None
        cuts.append(at)
    end = code.rfind("\n}")
    if end < cuts[-1]:
        return None
    bounds = [0, *cuts, end]
    return [code[a:b] for a, b in zip(bounds, bounds[1:], strict=False)] + [code[end:]]


def _union(first: str, second: str) -> str | None:
    """The declarations of ``first`` and those of ``second`` it does not make (None if
    both declare a name differently)."""
    lines = first.rstrip("\n").split("\n")
    have = {}
    for line in lines:
        m = _DECLARED.search(line)
        if m:
            have[m.group(1)] = line.strip()
    for line in second.split("\n")[1:]:
        m = _DECLARED.search(line)
        if not line.strip() or line.strip() in (x.strip() for x in lines):
            continue
        if m is None or m.group(1) in have:
            return None
        lines.append(line)
    return "\n".join(lines) + "\n"


def fused_sums(first: str, second: str) -> str | None:
    """Two summed-variable code objects of one ``Synapses`` object (Brian2's
    ``summed_variable`` template), run one after the other, as one: ``first``'s code
    computing both targets in a single loop over the synapses, each synapse's two terms
    one after the other (an undirected branch adds its current into the node at either
    end: the indices, conductance and voltages it reads are read once).

    The result is what the two give run in turn, term for term, when neither reads the
    other's target; ``None`` when it could — or when the code is not of the template's
    form (support code, loop bounds or declarations that differ, scalar code in the
    second, OpenMP).
    """
    if "#pragma omp" in first or "#pragma omp" in second:
        return None
    a, b = _parts(first), _parts(second)
    if a is None or b is None or a[1:3] != b[1:3]:  # support code and hash defines
        return None
    skip = len(_SECTIONS[5])
    ma, mb = _SUM_MAIN.match(a[6][skip:]), _SUM_MAIN.match(b[6][skip:])
    if (ma is None or mb is None or ma["n"] != mb["n"] or mb["scalar_code"].strip()
            or ma["target"] == mb["target"]):
        return None
    ta, tb = ma["target"], mb["target"]
    if (re.search(rf"\b{tb}\b", a[6]) or len(re.findall(rf"\b{ta}\b", b[6]))
            or len(re.findall(rf"\b{ta}\b", a[6])) != 2
            or len(re.findall(rf"\b{tb}\b", b[6])) != 2):
        return None
    constants, pointers = _union(a[4], b[4]), _union(a[5], b[5])
    size_b = mb["size"]
    if constants is None or pointers is None or (
            not size_b.isdigit() and _constant(b[4], size_b) is None):
        return None
    if _constant(b[4], size_b) != _constant(constants, size_b):
        return None
    zero_b = mb["zero"].replace("_target_idx<_target_size", f"_target_idx<{size_b}")
    main = (_SECTIONS[5] + ma["head"] + ma["zero"] + "    " + zero_b + ma["scalar"]
            + ma["loop"] + "        {\n" + ma["body"] + "        }\n        {\n"
            + mb["body"] + "        }\n    }\n")
    return "".join(a[:4]) + constants + pointers + main + a[7]


_MAIN = "int main(int argc, char **argv)\n"

# what a serving program (:func:`serving`) adds to Brian2's main.cpp; {reset} clears
# every dynamic array (synapses, recordings) and frees its memory
_SERVE = r"""
#include <unistd.h>
#include <sstream>

static void _reset_dynamic_arrays()
{{
    using namespace brian;
{reset}
}}

int main(int argc, char **argv)
{{
    if (argc == 3 && std::string(argv[1]) == "--serve")
    {{
        // one run per line of standard input (its arguments separated by tabs), as
        // if the program had been started with them; each run's exit status is
        // written, as a line, to the file descriptor argv[2]
        const int reply = atoi(argv[2]);
        std::signal(SIGINT, SIG_IGN);
        std::string line;
        while (std::getline(std::cin, line))
        {{
            std::vector<std::string> words;
            std::stringstream split(line);
            std::string word;
            while (std::getline(split, word, '\t'))
                words.push_back(word);
            std::vector<char*> run_argv(1, argv[0]);
            for (auto& w : words)
                run_argv.push_back(&w[0]);
            run_argv.push_back(nullptr);
            _reset_dynamic_arrays();
            const int status = _run_once((int)words.size() + 1, run_argv.data());
            _reset_dynamic_arrays();
            // between runs a Ctrl-C is the caller's (Brian2's handler would end the program)
            std::signal(SIGINT, SIG_IGN);
            std::cout.flush();
            const std::string answer = std::to_string(status) + "\n";
            if (write(reply, answer.data(), answer.size()) != (ssize_t)answer.size())
                return 1;
        }}
        return 0;
    }}
    return _run_once(argc, argv);
}}
"""


def serving(source: str, dynamic=(), dynamic_2d=(), networks=()) -> str | None:
    """Brian2's ``main.cpp`` made a program that can also serve runs (``--serve FD``).

    Started with ``--serve FD``, the program reads one run per line of its standard
    input — the arguments it would otherwise be started with, separated by tabs — and
    executes it as a fresh start would: the dynamic arrays ``dynamic`` (name, C type)
    and ``dynamic_2d`` are emptied and the time of the networks ``networks`` set to
    zero before and after every run (the only state Brian2's code keeps from one
    ``main`` to the next; every other array is allocated anew and freed by each run).
    It writes the run's exit status on file descriptor ``FD`` and waits for the next
    line; it ends at the end of its input. Without ``--serve`` it is Brian2's program.
    A source of another form (another Brian2 version) gives ``None``.
    """
    if source.count(_MAIN) != 1 or "_run_once" in source:
        return None
    reset = [f"    std::vector<{dtype}>().swap({name});" for name, dtype in dynamic]
    reset += [f"    {name}.resize(0, 0);" for name in dynamic_2d]
    reset += [f"    {name}.t = 0.0;" for name in networks]
    return (source.replace(_MAIN, "static int _run_once(int argc, char **argv)\n")
            + _SERVE.format(reset="\n".join(reset)))


#: whether generated programs evaluate ``exp``, ``log``, ``sin``, ``cos`` and ``pow``
#: in loops four at a time with glibc's vector functions (:data:`VECTOR_MATH_HEADER`)
VECTOR_MATH = True

#: A header included by every code object of a program when :data:`VECTOR_MATH` is
#: set. Brian2 compiles with ``-ffast-math -fno-finite-math-only`` (so that infinities
#: and NaN keep their meaning); the second flag also undefines ``__FAST_MATH__``, the
#: macro under which glibc declares the vector forms of its math functions, and every
#: loop over neurons or synapses then calls the scalar form once per element (at
#: N = 1000 in ``benchmarks/adjoint_vs_jax.py``, half of a program's time). The header
#: makes the same declarations, so that GCC vectorises such loops, leaving the flags,
#: and with them the meaning of infinities and NaN, as they are. glibc documents its
#: vector functions as accurate to 4 ulp (its scalar ``exp``: < 1 ulp). Elsewhere
#: (another compiler or C library, a preference that already defines
#: ``__FAST_MATH__``) the header declares nothing.
VECTOR_MATH_HEADER = """\
#ifndef EPHYS_EQPROP_VECTOR_MATH_H
#define EPHYS_EQPROP_VECTOR_MATH_H
#include <math.h>
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) \\
    && !defined(__FAST_MATH__) && defined(__GLIBC__)
#if __GLIBC_PREREQ(2, 22)
extern "C" {
#define EPHYS_EQPROP_SIMD __attribute__((__simd__("notinbranch")))
EPHYS_EQPROP_SIMD double exp(double) __THROW;
EPHYS_EQPROP_SIMD double log(double) __THROW;
EPHYS_EQPROP_SIMD double sin(double) __THROW;
EPHYS_EQPROP_SIMD double cos(double) __THROW;
EPHYS_EQPROP_SIMD double pow(double, double) __THROW;
#undef EPHYS_EQPROP_SIMD
}
#endif
#endif
#endif
"""
_VECTOR_MATH_FILE = "ephys_eqprop_vector_math.h"


def _generator() -> str:
    """A hash of this module, which rewrites parts of Brian2's generated code
    (:func:`clock_once`, :func:`serving`, :func:`only_results`, the vector math
    header): another version of it makes other programs."""
    with open(__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


_GENERATOR = _generator()


def _compilation() -> tuple:
    """What besides the objects decides a compiled program: Brian2's compiler
    preferences, :data:`VECTOR_MATH`, :data:`MAP_INPUTS` with the size from which a given
    file is mapped (:data:`MAP_BYTES`), :data:`RECORD_IN_PLACE`, :data:`LANE_SUMS` with
    its sizes, :data:`FUSE_SUMS`, :data:`ROW_READS`, :data:`PACK_RESULTS` and the version
    of this module (part of a program's structure, so that a change compiles a new
    program rather than reusing one built otherwise)."""
    from brian2 import prefs

    names = ("codegen.cpp.compiler", "codegen.cpp.extra_compile_args",
             "codegen.cpp.extra_compile_args_gcc", "codegen.cpp.define_macros",
             "codegen.cpp.headers", "devices.cpp_standalone.extra_make_args_unix")
    return (*(repr(prefs[name]) for name in names), VECTOR_MATH,
            MAP_BYTES if MAP_INPUTS else None, RECORD_IN_PLACE,
            (LANES, LANE_TARGETS) if LANE_SUMS else None, FUSE_SUMS, ROW_READS, PACK_RESULTS,
            _GENERATOR)


def _device():
    """Brian2's C++ standalone device, with :func:`clock_once` applied to its network
    loop, and programs that can serve runs (:func:`serving`)."""
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

    class Device(CPPStandaloneDevice):
        #: whether the last generated program serves runs
        serves = False
        #: names of the arrays its runs write at their end (``None``: all, as Brian2's)
        results = None
        #: names of the arrays given as files at every run and only read by the code
        #: (:func:`mapped_inputs`)
        mapped = ()
        #: names of the arrays read back as one file, in its order (:func:`packed_results`)
        packed = ()
        #: whether the last generated program writes them so
        packs = False

        def __init__(self):
            super().__init__()
            if VECTOR_MATH:
                self.headers.append(f'"{_VECTOR_MATH_FILE}"')

        #: the 2-D arrays the program records in place (:func:`recorded_objects`)
        recorded = frozenset()
        #: the duration of the program's run (second), for the rows it records
        duration = 0.0
        # what :meth:`_recordable` found when the objects' source was generated
        _record_plan: dict = {}

        def copy_source_files(self, writer, directory):
            super().copy_source_files(writer, directory)
            headers = []
            if VECTOR_MATH:
                headers.append((_VECTOR_MATH_FILE, VECTOR_MATH_HEADER))
            if self.recorded:
                headers.append((_RECORD_FILE, RECORD_HEADER))
            for name, text in headers:
                path = os.path.join(directory, name)
                old = None
                if os.path.exists(path):
                    with open(path) as f:
                        old = f.read()
                if old != text:  # (unchanged: make has nothing to do)
                    with open(path, "w") as f:
                        f.write(text)
                writer.header_files.add(name)

        def _recordable(self) -> dict[str, tuple[str, str, int]]:
            """The recordings read back that the program can write in place: 2-D
            array -> (its code object, C type, rows a run records)."""
            from brian2.devices.cpp_standalone.codeobject import c_data_type

            out = {}
            arrays = {name: var for var, name in self.dynamic_arrays_2d.items()
                      if name in (self.results or ())}
            for codeobj in self.code_objects.values():
                code = str(codeobj.code.cpp_file)
                for name, var in arrays.items():
                    ctype = c_data_type(var.dtype)
                    if name in code and recordable(code, name, ctype):
                        rows = int(round(self.duration / float(codeobj.owner.clock.dt))) + 1
                        out[name] = (codeobj.name, ctype, rows)
            return out

        def _own_indices(self) -> set[str]:
            """Names of the index arrays ``i`` of the program's ``NeuronGroup`` objects
            (``0 .. N - 1``; not a subgroup's, not a ``Synapses`` object's)."""
            from brian2 import NeuronGroup

            out = set()
            for codeobj in self.code_objects.values():
                owner = getattr(codeobj, "owner", None)
                if isinstance(owner, NeuronGroup) and "i" in owner.variables:
                    out.add(self.get_array_name(owner.variables["i"]))
            return out

        def generate_codeobj_source(self, writer):
            edits: dict[str, dict[str, str]] = {}
            for name in self.recorded:
                codeobj, ctype, _ = self._record_plan[name]
                edits.setdefault(f"code_objects/{codeobj}.cpp", {})[name] = ctype

            files: dict[str, str] = {}

            class Writer:
                def write(self, filename, contents):
                    files[filename] = contents

            super().generate_codeobj_source(Writer())
            own_indices = self._own_indices()
            main = self._main_source
            if FUSE_SUMS and main is not None:
                for first, second in self._fusable(main):
                    a, b = (f"code_objects/{name}.cpp" for name in (first, second))
                    fused = fused_sums(str(files[a]), str(files[b]))
                    if fused is not None:
                        files[a] = fused
                        main = main.replace(self._scheduled(main, second), "", 1)
            for filename, contents in files.items():
                if filename in edits:
                    contents = recorded_code(str(contents), edits[filename])
                if LANE_SUMS and filename.endswith(".cpp"):
                    contents = lane_sums(str(contents))
                if ROW_READS and filename.endswith(".cpp"):
                    contents = row_reads(str(contents), own_indices)
                writer.write(filename, contents)
            if main is not None:
                writer.write("main.cpp", main)

        #: the program's main.cpp as generated (``None``: not of the expected form)
        _main_source: str | None = None
        _ADD = re.compile(r"^[ \t]*(\w+)\.add\(&(\w+), _run_(\w+)\);\n", re.MULTILINE)

        def _scheduled(self, main: str, name: str) -> str:
            """The line of ``main`` that adds code object ``name`` to its network."""
            return next(m.group(0) for m in self._ADD.finditer(main) if m.group(3) == name)

        def _fusable(self, main: str) -> list[tuple[str, str]]:
            """Pairs of summed-variable code objects of one ``Synapses`` object that
            ``main`` runs one right after the other, in the same network and clock,
            each code object once (:func:`fused_sums`)."""
            adds = [m.groups() for m in self._ADD.finditer(main)]
            count = {}
            for _, _, name in adds:
                count[name] = count.get(name, 0) + 1
            pairs, taken = [], set()
            for (net1, clock1, first), (net2, clock2, later) in zip(adds, adds[1:],
                                                                     strict=False):
                objs = [self.code_objects.get(first), self.code_objects.get(later)]
                if (net1 != net2 or clock1 != clock2 or first in taken or None in objs
                        or count[first] != 1 or count[later] != 1
                        or any(o.template_name != "summed_variable" for o in objs)
                        or objs[0].owner.name != objs[1].owner.name):
                    continue
                pairs.append((first, later))
                taken.update((first, later))
            return pairs

        def generate_main_source(self, writer):
            from brian2.devices.cpp_standalone.codeobject import c_data_type

            device = self
            dynamic = [(name, c_data_type(var.dtype))
                       for var, name in self.dynamic_arrays.items()]
            dynamic_2d = list(self.dynamic_arrays_2d.values())
            networks = sorted(net.name for net in self.networks)

            class Writer:
                def write(self, filename, contents):
                    if filename == "main.cpp":
                        served = serving(str(contents), dynamic, dynamic_2d, networks)
                        device.serves = served is not None
                        if served is not None:
                            contents = served
                        # written with the code objects, once the fused ones are known
                        # (written twice, an unchanged program would be linked again)
                        device._main_source = str(contents)
                        return None
                    return writer.write(filename, contents)

            super().generate_main_source(Writer())

        def generate_objects_source(self, writer, *args, **kwargs):
            device = self

            class Writer:
                def write(self, filename, contents):
                    if filename != "objects.*" or device.results is None:
                        return writer.write(filename, contents)
                    source = only_results(str(contents.cpp_file), device.results)
                    device.packs = False
                    if PACK_RESULTS and device.packed:
                        packed, device.packs = packed_results(source, device.packed)
                        source = packed if device.packs else source
                    if MAP_INPUTS:
                        source = mapped_inputs(source, device.mapped, MAP_BYTES)
                    if RECORD_IN_PLACE and os.name != "nt":
                        device._record_plan = device._recordable()
                        rows = {name: plan[2] for name, plan in device._record_plan.items()}
                        source, device.recorded = recorded_objects(source, rows)
                    writer.write("objects.cpp", source)
                    writer.write("objects.h", contents.h_file)

            super().generate_objects_source(Writer(), *args, **kwargs)

        def generate_network_source(self, writer, compiler):
            class Writer:
                def write(self, filename, contents):
                    if filename != "network.*":
                        return writer.write(filename, contents)
                    writer.write("network.cpp", clock_once(str(contents.cpp_file)))
                    writer.write("network.h", contents.h_file)

            super().generate_network_source(Writer(), compiler)

        def write_static_arrays(self, directory):
            # Brian2 rewrites every static array at every build (truncate, then write);
            # another process of the same circuit may be starting the program, which
            # reads them (synapse indices among them) at the start of every run, and a
            # half-written file made it crash. Unchanged files are left alone; changed
            # ones replaced whole.
            import filecmp
            import shutil

            final = os.path.join(directory, "static_arrays")
            staging = tempfile.mkdtemp(prefix="static_", dir=directory)
            try:
                os.makedirs(os.path.join(staging, "static_arrays"))
                super().write_static_arrays(staging)
                for name in os.listdir(os.path.join(staging, "static_arrays")):
                    new, old = (os.path.join(staging, "static_arrays", name),
                                os.path.join(final, name))
                    if not (os.path.exists(old) and filecmp.cmp(new, old, shallow=False)):
                        os.replace(new, old)
            finally:
                shutil.rmtree(staging, ignore_errors=True)

    return Device()


class _Program:
    """One generated, compiled standalone project (one run structure)."""

    def __init__(self, key, ordered, index, namespace, duration, threads):
        from brian2 import Network, prefs
        from brian2.devices.device import reset_device, set_device

        self.directory = os.path.join(cache_directory(), key)
        self.threads = threads
        #: wall time of the last execution of the compiled program (second)
        self.seconds = 0.0
        self.steps = int(round(float(duration) / float(ordered[0].clock.dt)))
        self.device = _device()
        old_threads = prefs.devices.cpp_standalone.openmp_threads
        prefs.devices.cpp_standalone.openmp_threads = threads
        set_device(self.device, build_on_run=False)
        try:
            self.clones = self._clone(ordered, index)
            self.timed = {}
            ns = {}
            for name, val in namespace.items():
                if name == RUN_START:
                    ns[name] = 0 * second
                elif _timed(val):
                    # zeros of the shape: every execution hands the program the values
                    # (and the program, kept for the process, keeps none of a run's:
                    # untouched zeros take no memory)
                    clone = TimedArray(Quantity(np.zeros(val.values.shape), dim=val.dim),
                                       dt=val.dt * second, name=f"ta_{len(self.timed):03d}")
                    self.timed[name] = clone
                    ns[name] = clone
                else:
                    ns[name] = val
            self.device.apply_run_args()
            net = Network(*self.clones)
            net.run(duration, namespace=ns)
            #: per object, the variables read back after a run (:func:`_written`)
            self.written = _written(ordered)
            self.device.results = self._results()
            #: (object, variable) of the state read back, in the order of the packed
            #: result file (:func:`packed_results`): the order in which it is read back
            self.packed = [(k, name) for k, written in enumerate(self.written)
                           for name in written]
            self.device.packed = [
                self.device.get_array_name(self.clones[k].variables[name], access_data=False)
                for k, name in self.packed]
            self.device.mapped = [f"{clone.name}_values" for clone in self.timed.values()]
            self.device.duration = float(duration)
            os.makedirs(self.directory, exist_ok=True)
            # one process at a time generates and compiles a program (Brian2's own file
            # lock, as for its cython cache); a process that waited finds the sources
            # unchanged (Brian2 rewrites only files whose contents differ), the binary
            # up to date
            with FileLock(self.directory + ".lock"):
                self.device.build(directory=self.directory, compile=True, run=False,
                                  with_output=False)
        finally:
            reset_device()
            prefs.devices.cpp_standalone.openmp_threads = old_threads
        #: whether the compiled program can serve runs (:func:`serving`, :class:`_Server`)
        self.serves = self.device.serves
        #: whether the program writes the state read back into one file
        self.packs = self.device.packs
        self._server: _Server | None = None
        self._scratch: str | None = None  # the program's own run directory
        self._bytes: int | None = None  # of an execution's files (:meth:`_traffic`)
        # per program variable, the bytes of its value in the last run (if small), the
        # argument that gave them and the input file written (None: none)
        self._given: dict[str, tuple] = {}
        # the kept run directory's large files, once found (:func:`_trim`)
        self._large: dict[int, list[str]] = {}  # by the size that counts as large
        self._filenames: dict[int, str] = {}  # id of a clone's variable -> result file
        # held while a run uses the program's server and directory
        self._busy = threading.Lock()
        _BUILDS["count"] += 1

    def _results(self) -> set[str]:
        """Names (in the generated code) of the arrays that Python reads after a run."""
        names = set()
        for clone, written in zip(self.clones, self.written, strict=True):
            read = list(written)
            if _kind(clone) == "monitor":
                read += ["t", *clone.record_variables]
            names |= {self.device.get_array_name(clone.variables[name], access_data=False)
                      for name in read}
        return names

    @staticmethod
    def _clone(ordered, index) -> list:
        from brian2 import Clock

        clones: dict[str, object] = {}
        out = []
        # one clock per time step, named by its rank: the generated code then lists its
        # clocks in the same order in every process (a clock per object would be
        # initialised in the order of a set, and the same program would recompile)
        steps = sorted({float(o.clock.dt) for o in ordered}
                       | {float(c.clock.dt) for o in ordered for c in _regular(o)})
        clocks = {dt: Clock(dt=dt * second, name=f"clock{k}") for k, dt in enumerate(steps)}
        for obj in ordered:
            kind = _kind(obj)
            name = f"{index[obj.name]}_{_base(obj.name)}"
            clock = clocks[float(obj.clock.dt)]
            if kind == "group":
                new = NeuronGroup(len(obj), _eq_string(obj), method=_method(obj),
                                  namespace=dict(obj.namespace), clock=clock, name=name)
            elif kind == "synapses":
                new = Synapses(clones[obj.source.name], clones[obj.target.name],
                               _eq_string(obj), method=_method(obj),
                               namespace=dict(obj.namespace), clock=clock, name=name)
                new.connect(i=np.asarray(obj.i[:]), j=np.asarray(obj.j[:]))
            elif kind == "monitor":
                new = StateMonitor(clones[obj.source.name], list(obj.record_variables),
                                   record=np.asarray(obj.record), clock=clock, when=obj.when,
                                   order=obj.order, name=name)
            else:
                new = CodeRunner(clones[obj.group.name], "stateupdate",
                                 code=_code(obj), clock=clock,
                                 when=obj.when, order=obj.order, name=name)
            if kind in ("group", "synapses"):
                new.when, new.order = obj.when, obj.order
                for c in _regular(obj):
                    new.run_regularly(_code(c), clock=clocks[float(c.clock.dt)],
                                      when=c.when, order=c.order,
                                      name=new.name + c.name[len(obj.name):])
                mine = {c.name[len(new.name):]: c for c in new.contained_objects}
                for c in obj.contained_objects:
                    twin = mine[c.name[len(obj.name):]]
                    twin.when, twin.order = c.when, c.order
            clones[obj.name] = new
            out.append(new)
        return out

    def execute(self, ordered, namespace, start: float = 0.0) -> None:
        """Run the program with the runtime objects' current values; copy the results back.

        Values go to the program as files named by position (not by a hash of their
        contents, which for a recorded trajectory costs as much as writing it) in a
        scratch directory (:func:`_scratch_root`), and results come back in the same
        directory. A program keeps its directory from run to run (each run rewrites
        the same files; making and removing a directory of a hundred result files
        costs a millisecond); a run while another thread runs the same program gets
        a directory of its own, and so do two processes.
        """
        import shutil

        root = _scratch_root(self._traffic(ordered, namespace)) or tempfile.gettempdir()
        if self._busy.acquire(blocking=False):
            large_inputs = None
            try:
                if self._scratch is None or os.path.dirname(self._scratch) != root:
                    self._drop_scratch()
                    self._scratch = _new_scratch(root)
                large_inputs = self._execute(ordered, namespace, start, self._scratch,
                                             serve=True, given=self._given)
            finally:
                if self._scratch is not None:
                    # (a run that failed may not have written all its files: look at all)
                    known = None if large_inputs is None else self._large.get(KEEP_BYTES)
                    self._large = {KEEP_BYTES: _trim(self._scratch, known, large_inputs or (),
                                                     self._given)}
                self._busy.release()
            return
        scratch = _new_scratch(root)
        try:
            self._execute(ordered, namespace, start, scratch, serve=False)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _drop_scratch(self) -> None:
        import shutil

        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        self._given.clear()
        self._large = {}

    def _traffic(self, ordered, namespace) -> int:
        """Bytes of one execution's files: every value handed in, every result back.

        Sizes are part of the structure, so this is the same for every execution of
        the program (counted once)."""
        if self._bytes is None:
            self._bytes = self._count_traffic(ordered, namespace)
        return self._bytes

    def _count_traffic(self, ordered, namespace) -> int:
        total = sum(namespace[name].values.nbytes for name in self.timed)
        for obj in ordered:
            total += 2 * sum(obj.variables[n].get_value().nbytes for n in _transferable(obj))
            if _kind(obj) == "monitor":
                total += 8 * self.steps * len(obj.record) * (len(obj.record_variables) + 1)
        return total

    def _command(self, args: list, results: str) -> tuple[list, dict]:
        """The command line and environment of one execution of the compiled program.

        As Brian2's ``device.run`` starts it: ``prefs.devices.cpp_standalone.run_cmd_unix``
        (``./main`` by default; ``main`` on Windows) with ``--results_dir`` and the
        ``run_args``, in the project directory, with the environment variables of
        ``prefs.devices.cpp_standalone.run_environment_variables`` and the device's own.
        """
        from brian2 import prefs

        if os.name == "nt":
            cmd = [os.path.join(self.directory, "main")]
        else:
            # (item access: attribute access renders the preference's documentation)
            cmd = prefs["devices.cpp_standalone.run_cmd_unix"]
            cmd = [cmd] if isinstance(cmd, str) else list(cmd)
        env = dict(os.environ)
        env.update(prefs["devices.cpp_standalone.run_environment_variables"])
        env.update(self.device.run_environment_variables)
        return [*cmd, "--results_dir", os.path.join(results, ""), *args], env

    def _call(self, cmd: list, env: dict, scratch: str, serve: bool) -> tuple[int, str]:
        """Execute the program once: its exit status and, if it failed, its output.

        A program that serves runs (:class:`_Server`) is started once and kept; each
        execution is then a line on its input rather than a new process (starting one
        takes 1 to 2 ms here, most of a short run). A program started by a command of
        the user's (``run_cmd_unix``), or already busy in another thread (``serve``
        false), runs as a process of its own.
        """
        import subprocess
        import time

        t0 = time.perf_counter()
        if serve and SERVE and self.serves and cmd[0] == "./main" and os.name != "nt":
            server = self._server
            if server is not None and (server.env != env
                                       or server.process.poll() is not None):
                server.close()  # (prefs changed; or it ended while idle)
                server = self._server = None
            if server is None:
                server = self._server = _Server.start(self, env)
            else:
                _SERVING[id(self)] = _SERVING.pop(id(self), self)
            code = server.call(cmd[1:])
            text = server.output() if code else ""
            if code is None:  # the program ended (killed, or failed and exited)
                code, text = server.returncode(), server.output()
                self._server = None
                server.close()
            self.seconds = time.perf_counter() - t0
            return code, text
        with open(os.path.join(scratch, "stdout.txt"), "w+") as out:
            code = subprocess.call(cmd, cwd=self.directory, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
            self.seconds = time.perf_counter() - t0
            out.seek(0)
            return code, out.read() if code else ""

    def _execute(self, ordered, namespace, start, scratch, serve: bool,
                 given: dict | None = None) -> list[str]:
        """One execution: values to files, the program, its result files back; returns
        the paths of the large input files it wrote.

        ``given`` (a kept run directory's) holds, per program variable, the bytes of
        its value in the last run (if small) and the argument that gave them: a value
        unchanged since (most of them: constants, parameters between updates, zero
        initial states) goes as the same argument, neither looked at again nor
        written again. An array of one value goes as a number (:func:`_uniform`).

        The program is started directly rather than through ``device.run``, which for
        every execution also matches each argument against every array it caches, and
        afterwards reads every state variable from disk to check it for NaN; the
        results read here are checked by the callers (``_check_not_diverged``).
        """
        from .interrupts import stop_requested

        inputs = os.path.join(scratch, "in")
        results = os.path.join(scratch, "out")
        os.makedirs(inputs, exist_ok=True)
        os.makedirs(results, exist_ok=True)
        args = []
        large_inputs = []

        def give(target: str, value, dtype) -> None:
            arr = np.ascontiguousarray(value, dtype=dtype)
            cached = given is not None and arr.nbytes < KEEP_BYTES  # (large: trimmed)
            if cached:
                data = arr.tobytes()
                last = given.get(target)
                if last is not None and last[0] == data:  # as in the run before
                    args.append(last[1])
                    return
            fname = None
            if _uniform(arr):  # (the program fills the array with the value)
                arg = f"{target}={arr.flat[0].item()!r}"
            elif (recorded := _file_of(arr)) is not None:
                arg = f"{target}={recorded}"  # a recording of an earlier program, as written
            else:
                fname = os.path.join(inputs, f"{len(args):04d}.dat")
                arg = f"{target}={fname}"
                if cached:
                    given.pop(target, None)  # (until written whole)
                    with open(fname, "wb") as f:
                        f.write(data)
                else:
                    arr.tofile(fname)
                    if arr.nbytes >= KEEP_BYTES:
                        large_inputs.append(fname)
            if cached:
                given[target] = (data, arg, fname)
            args.append(arg)

        for obj, clone in zip(ordered, self.clones, strict=True):
            for name in _transferable(obj):
                give(f"{clone.name}.{name}", obj.variables[name].get_value(),
                     clone.variables[name].dtype)
        for name, clone in self.timed.items():
            give(f"{clone.name}.values", namespace[name].values, clone.values.dtype)
        cmd, env = self._command(args, results)
        code, text = self._call(cmd, env, scratch, serve)
        if code:
            if stop_requested():
                raise KeyboardInterrupt("the simulation was stopped (Ctrl-C)")
            text = text[-2000:]
            raise RuntimeError(
                f"The generated program in {self.directory} failed (exit status "
                f"{code}){': ' + text if text.strip() else ''}")

        def path(var) -> str:
            name = self._filenames.get(id(var))
            if name is None:
                name = self._filenames[id(var)] = self.device.get_array_filename(var)
            return os.path.join(results, name)

        def result(var, rows: int | None = None) -> np.ndarray:
            data = np.fromfile(path(var), dtype=var.dtype)
            return data if rows is None else data.reshape(rows, -1)

        packed = (iter(unpacked(os.path.join(results, PACK_FILE), len(self.packed)))
                  if self.packs else None)
        for obj, clone, written in zip(ordered, self.clones, self.written, strict=True):
            for name in written:
                var = clone.variables[name]
                value = result(var) if packed is None else next(packed).view(var.dtype)
                obj.variables[name].set_value(value)
            if _kind(obj) != "monitor":
                continue
            if obj in _HANDED:  # the package's own recorders (times: not read)
                times = clone.variables["t"]
                rows = os.path.getsize(path(times)) // np.dtype(times.dtype).itemsize
                _HANDED[obj] = {var: _kept(path(clone.variables[var]), rows,
                                           clone.variables[var].dtype,
                                           os.path.dirname(scratch))
                                for var in obj.record_variables}
                continue
            t = result(clone.variables["t"])
            # appended, as a runtime run would
            old = int(np.asarray(obj.variables["N"].get_value()).item())
            obj.resize(old + t.size)
            obj.variables["N"].set_value(old + t.size)
            obj.variables["t"].get_value()[old:] = t + start
            for var in obj.record_variables:
                obj.variables[var].get_value()[old:] = result(clone.variables[var], t.size)
        return large_inputs


#: whether compiled programs serve runs (:class:`_Server`); ``False``: a process per run
SERVE = True
#: how many compiled programs a process keeps serving at once (:class:`_Server`); the
#: least recently used one ends when another starts
MAX_SERVERS = 8
_SERVING: dict = {}  # id of a program -> the program, least recently used first


class _Server:
    """A compiled program kept running to execute runs on request (:func:`serving`).

    Its standard input receives a run's arguments as a line; it answers with the run's
    exit status on a pipe of its own, so that what the program prints (to a log file,
    emptied before every run) cannot be taken for an answer. A program left idle holds
    no run's data. It ends when its input closes: when :meth:`close` is called, when
    more than :data:`MAX_SERVERS` programs serve, or with this process.
    """

    def __init__(self, program, env: dict):
        import subprocess

        self.env = env
        directory = _scratch_root(0) or tempfile.gettempdir()
        fd, self.log_path = tempfile.mkstemp(prefix=f"ephys_eqprop_p{os.getpid()}_",
                                             suffix=".log", dir=directory)
        os.close(fd)
        self.log = open(self.log_path, "a+")  # (appending: emptied between runs)
        self.answers, answer_fd = os.pipe()
        try:
            self.process = subprocess.Popen(
                [os.path.join(".", "main"), "--serve", str(answer_fd)],
                cwd=program.directory, env=env, stdin=subprocess.PIPE, stdout=self.log,
                stderr=subprocess.STDOUT, pass_fds=(answer_fd,))
        except BaseException:
            os.close(self.answers)
            self.log.close()
            _remove(self.log_path)
            raise
        finally:
            os.close(answer_fd)

    @classmethod
    def start(cls, program, env: dict) -> _Server:
        """A new server of ``program``, ending the least recently used one if need be."""
        while len(_SERVING) >= MAX_SERVERS:
            oldest = _SERVING.pop(next(iter(_SERVING)))
            if oldest._busy.acquire(blocking=False):  # (one in use ends when it is done)
                try:
                    if oldest._server is not None:
                        oldest._server.close()
                        oldest._server = None
                finally:
                    oldest._busy.release()
        server = cls(program, env)
        _SERVING[id(program)] = program
        return server

    def call(self, args: list) -> int | None:
        """One run with ``args``: its exit status, or ``None`` if the program ended."""
        if any("\t" in a or "\n" in a for a in args):
            raise ValueError(f"a run argument holds a tab or a newline: {args!r}")
        self.log.truncate(0)
        try:
            self.process.stdin.write(("\t".join(args) + "\n").encode())
            self.process.stdin.flush()
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = os.read(self.answers, 64)
                if not chunk:
                    return None
                answer += chunk
        except BrokenPipeError:
            return None
        except BaseException:  # (a Ctrl-C here): the run's answer would be the next one's
            self.close()
            raise
        return int(answer)

    def output(self) -> str:
        """What the program printed during the last run."""
        self.log.seek(0)
        return self.log.read()

    def returncode(self) -> int:
        """The exit status of a program that ended."""
        try:
            return self.process.wait(timeout=5)
        except Exception:
            return -1

    def close(self) -> None:
        """End the program (it ends at the end of its input) and remove its files."""
        import subprocess

        process = self.process
        if process.stdin is not None and not process.stdin.closed:
            try:
                process.stdin.close()
            except OSError:
                pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if self.answers is not None:
            os.close(self.answers)
            self.answers = None
        self.log.close()
        _remove(self.log_path)


def _uniform(arr: np.ndarray) -> bool:
    """Whether a run can hand ``arr`` to a program as one number rather than a file.

    So it can when every element equals the first and the first is finite: Brian2's
    generated ``set_variable_by_name`` fills the whole array with a value given as a
    number (``atof`` of Python's ``repr``, which reads back to the same double), and
    takes an argument that starts with neither a digit nor ``-`` (``nan``, ``inf``)
    for a file name. Most of a circuit's arrays are such (capacitances and leaks of
    one kind of node, zero initial states and accumulators): each is a file less to
    write, open and read in every run.
    """
    if arr.size == 0 or arr.dtype.kind not in "biuf":
        return False
    first = arr.flat[0]
    if arr.dtype.kind == "f" and not np.isfinite(first):
        return False
    if arr.dtype.kind in "iu" and abs(int(first)) > 2**53:  # (not exact as a double)
        return False
    # bit for bit (0.0 and -0.0 differ); the last element first: a varying array, most
    # of the large ones, then costs no pass
    bits = arr.reshape(-1).view(np.dtype(f"u{arr.itemsize}"))
    return bool(bits[-1] == bits[0] and (bits == bits[0]).all())


def _new_scratch(root: str) -> str:
    """A new run directory in ``root`` (named so that :func:`_sweep` knows its process)."""
    return tempfile.mkdtemp(prefix=f"ephys_eqprop_p{os.getpid()}_", dir=root)


def _trim(scratch: str, large: list[str] | None = None, inputs=(),
          given: dict | None = None) -> list[str]:
    """Remove the large files of a kept run directory (read; not to hold memory).

    ``large``: the paths of the large result files that an earlier trim of the same
    program's directory found (the sizes of a program's results are part of its
    structure), removed without looking at every file again; ``inputs``: the large
    input files just written; ``given``: the program's record of its input files
    (:meth:`_Program._execute`), from which removed files are dropped. Returns the
    large result files' paths.
    """
    if large is not None:
        for path in (*large, *inputs):
            _remove(path)
        return large
    found = []
    for sub in ("in", "out"):
        try:
            entries = list(os.scandir(os.path.join(scratch, sub)))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat().st_size >= KEEP_BYTES:
                    os.remove(entry.path)
                    if sub == "out":
                        found.append(entry.path)
                    elif given is not None:
                        for target in [t for t, e in given.items() if e[2] == entry.path]:
                            del given[target]
            except OSError:
                pass
    return found


def serving_cpu_seconds() -> float | None:
    """CPU time (user + system, second) used so far by the programs now serving runs.

    A program kept running (:class:`_Server`) is not a finished child process, so
    ``resource.getrusage(RUSAGE_CHILDREN)`` does not count it; this reads each one's
    ``/proc/<pid>/stat`` (clock ticks, usually 10 ms). ``None`` where there is no
    ``/proc`` (not Linux). Programs that ended before the call are not counted.
    """
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for program in list(_SERVING.values()):
        server = program._server
        if server is None or server.process.poll() is not None:
            continue
        try:
            with open(f"/proc/{server.process.pid}/stat") as f:
                # fields after the command name: state (0), ..., utime (11), stime (12)
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            if not os.path.isdir("/proc/self"):
                return None
            continue  # (it ended meanwhile)
        total += int(fields[11]) + int(fields[12])
    return total / tick


def _end_servers() -> None:
    """End every serving program and remove the programs' run directories."""
    for program in list(_SERVING.values()):
        if program._server is not None:
            program._server.close()
            program._server = None
    _SERVING.clear()
    for program in list(_PROGRAMS.values()):
        program._drop_scratch()


atexit.register(_end_servers)


def _scratch_root(needed: int) -> str | None:
    """Where a run's files go: memory (``/dev/shm``) if there is room for ``needed`` bytes.

    The files of a run live while it runs, and a large recording of the package's own
    while its trajectory is in use (:func:`_kept`: it goes from the forward program to
    the adjoint program as a file); in memory they cost half what they cost on disk. A
    container's ``/dev/shm`` may be small (64 MB by default in Docker): the run then uses
    the system's temporary directory (``None``), as it does where there is no
    ``/dev/shm``. What processes that were killed left there is removed
    (:func:`_sweep`).
    """
    root = "/dev/shm"
    if not (os.path.isdir(root) and os.access(root, os.W_OK | os.X_OK)):
        return None
    _sweep(root)
    try:
        st = os.statvfs(root)
    except OSError:
        return None
    free = st.f_bavail * st.f_frsize
    return root if free >= 2 * needed + 64 * 2**20 else None


_SWEPT: set = set()
_OWN_FILE = re.compile(r"^ephys_eqprop_p(\d+)_")


def _sweep(root: str) -> None:
    """Remove the run files in ``root`` of processes that no longer exist (once per
    process and directory): a process killed during a run, or while it held a
    recording as a file, cannot remove its own, and in ``/dev/shm`` they hold memory."""
    import shutil

    if root in _SWEPT:
        return
    _SWEPT.add(root)
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        match = _OWN_FILE.match(name)
        if match is None or _alive(int(match.group(1))):
            continue
        path = os.path.join(root, name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            _remove(path)


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # (os.kill would end a Windows process)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (or no way to tell): leave its files
        return True
    return True
