"""Which Brian2 code-generation target a network runs on.

Brian2 users choose how code is generated with ``prefs.codegen.target`` (``"auto"``,
``"numpy"``, ``"cython"``) and with the device (``set_device("cpp_standalone")``).
:meth:`Circuit.build(target=None) <ephys_eqprop.Circuit.build>` follows them:

* an explicit ``target`` (``"numpy"``, ``"cython"`` or ``"cpp_standalone"``) wins;
* otherwise ``prefs.codegen.target`` decides: ``"numpy"`` or ``"cython"`` as set,
  ``"auto"`` (Brian2's default) the numpy target. Cython compiles every code object
  the first time it meets it (about two and a half minutes for a Hodgkin–Huxley network
  on 2 cores, cached on disk afterwards), which is longer than most runs take on
  numpy; set ``prefs.codegen.target = "cython"`` (or pass ``target="cython"``) for
  long trainings.

``"cpp_standalone"`` keeps the network's objects on Brian2's runtime device and runs
each time-varying run as a generated C++ program (:mod:`ephys_eqprop.standalone`). The
estimators read and write state variables between runs, which Brian2's standalone
device itself cannot do before its single ``run``: building while
``set_device("cpp_standalone")`` is active stops with a
:class:`~ephys_eqprop.CircuitError` that says so and what to do instead.
"""

from __future__ import annotations

import os

from .errors import CircuitError

__all__ = ["RUNTIME_TARGETS", "TARGETS", "cpp_standalone_available", "cython_available",
           "resolve_target"]

#: The Brian2 runtime code-generation targets a network can run on.
RUNTIME_TARGETS = ("numpy", "cython")
#: Every target a network can be built for.
TARGETS = (*RUNTIME_TARGETS, "cpp_standalone")


def cython_available() -> bool:
    """Whether Brian2's cython target works here (Cython and a C compiler)."""
    from brian2.codegen.runtime.cython_rt import CythonCodeObject

    try:
        return bool(CythonCodeObject.is_available())
    except Exception:  # noqa: BLE001 - any failure to compile means "not available"
        return False


def cpp_standalone_available() -> bool:
    """Whether generated C++ programs can be compiled here (a C++ compiler and make)."""
    import shutil

    compiler = os.environ.get("CXX") or "g++"
    return shutil.which("make") is not None and shutil.which(compiler) is not None


def resolve_target(target: str | None = None) -> str:
    """The target to build with, from ``target`` or Brian2's preferences and device.

    Parameters
    ----------
    target : {"numpy", "cython", "cpp_standalone"}, optional
        An explicit choice; ``None`` follows ``prefs.codegen.target``.

    Returns
    -------
    str
        ``"numpy"``, ``"cython"`` or ``"cpp_standalone"``.

    Raises
    ------
    CircuitError
        Under a device other than Brian2's runtime device, for an unknown target, or
        for a compiled target that cannot compile here.
    """
    from brian2 import get_device, prefs
    from brian2.devices.device import RuntimeDevice

    device = get_device()
    if not isinstance(device, RuntimeDevice):
        raise CircuitError(
            f"ephys_eqprop networks run on Brian2's runtime device, but the active device is "
            f"{type(device).__name__} (set_device({_device_name(device)!r})). The estimators "
            "read and write state variables between runs, which a standalone device cannot "
            "do before its single run. Call brian2.set_device('runtime') (or remove the "
            "set_device call) and choose the code with prefs.codegen.target = 'cython', "
            "build(target='cython') or build(target='cpp_standalone'): the last generates "
            "C++ programs from the same objects and runs them through run_args.")
    if target == "cpp_standalone":
        if not cpp_standalone_available():
            raise CircuitError(
                "target 'cpp_standalone' needs a C++ compiler and make, and Brian2 found "
                "none here; install them (e.g. apt-get install g++ make), or use "
                "target='numpy' or 'cython'.")
        return target
    if target is None:
        pref = prefs.codegen.target
        if not isinstance(pref, str):
            raise CircuitError(
                f"prefs.codegen.target is a code-object class ({getattr(pref, '__name__', pref)})"
                f"; ephys_eqprop builds on the targets {list(RUNTIME_TARGETS)} by name: set "
                "prefs.codegen.target to one of them or to 'auto', or pass build(target=...).")
        target = "numpy" if pref == "auto" else pref
    if target not in RUNTIME_TARGETS:
        raise CircuitError("target must be 'numpy', 'cython' or 'cpp_standalone'; got "
                           f"{target!r}.")
    if target == "cython" and not cython_available():
        raise CircuitError(
            "target 'cython' cannot compile here (Brian2 found no working Cython or C "
            "compiler); install Cython and a C compiler, or use target='numpy'.")
    return target


def _device_name(device) -> str:
    from brian2.devices.device import all_devices

    for name, dev in all_devices.items():
        if dev is device:
            return name
    return type(device).__name__
