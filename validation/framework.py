"""The validation framework: measured figures, the case registry, the per-case context.

A *case* is a function ``case(ctx) -> iterable of CaseResult`` registered with the
:func:`case` decorator. It simulates a circuit with the package, computes an
independent reference (a closed form, ngspice, an exact gradient), and reports one
or more measured figures, each with the tolerance it is held to and why. The
runner (:func:`ephys_eqprop.validation.run_validation`) calls every registered case
in registration order and writes the report.

Adding a case::

    from ephys_eqprop.validation import case

    @case("my_circuit", title="My circuit against its closed form", group="analytic")
    def my_circuit(ctx):
        '''One paragraph saying what is simulated and what it is compared with.'''
        err = ...
        yield ctx.at_most("max relative error", err, 1e-6,
                          note="why 1e-6: ...")
"""

from __future__ import annotations

import inspect
import math
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "REGISTRY",
    "Case",
    "CaseContext",
    "CaseResult",
    "case",
    "registered_cases",
]


@dataclass
class CaseResult:
    """One measured figure of a validation case.

    Attributes
    ----------
    case : str
        Name of the case that measured it.
    quantity : str
        What was measured (the "figure" column of the report), e.g.
        ``"max relative error, charge"``.
    value : float or None
        The measured value (``None`` if the case was skipped or failed to run).
    tolerance : float, tuple of (float, float), or None
        An upper bound (``value <= tolerance``) or an interval
        ``lo <= value <= hi``; ``None`` for skipped cases.
    passed : bool
        Whether the value met its tolerance. Skipped results count as passed
        (they are listed, but never fail a run).
    note : str
        The reason for the tolerance, or for the skip, or the error message.
    unit : str
        Unit of ``value`` and ``tolerance`` as text ("" for dimensionless).
    skipped : bool
        The case could not run here (e.g. ngspice not installed).
    """

    case: str
    quantity: str
    value: float | None
    tolerance: float | tuple[float, float] | None
    passed: bool
    note: str = ""
    unit: str = ""
    skipped: bool = False

    @property
    def status(self) -> str:
        """``"pass"``, ``"FAIL"`` or ``"skipped"``."""
        if self.skipped:
            return "skipped"
        return "pass" if self.passed else "FAIL"

    @property
    def failed(self) -> bool:
        """Whether this result fails the run."""
        return not self.skipped and not self.passed

    def value_text(self) -> str:
        """The value formatted for a table (four significant digits, zeros kept)."""
        if self.value is None:
            return "—"
        return _fmt(self.value, digits="#.4g") + (f" {self.unit}" if self.unit else "")

    def tolerance_text(self) -> str:
        """The tolerance formatted for a table (``≤ 1e-06``, ``[0.95, 1.05]``)."""
        tol = self.tolerance
        if tol is None:
            return "—"
        unit = f" {self.unit}" if self.unit else ""
        if isinstance(tol, tuple):
            return f"[{_fmt(tol[0])}, {_fmt(tol[1])}]{unit}"
        return f"≤ {_fmt(tol)}{unit}"


def _fmt(x: float, digits: str = ".4g") -> str:
    """Scientific notation (3 digits) for small and large numbers, else format ``digits``."""
    x = float(x)
    if not math.isfinite(x) or x == 0:
        return str(x) if x != 0 else "0"
    if abs(x) < 1e-2 or abs(x) >= 1e4:
        return f"{x:.2e}"
    return f"{x:{digits}}"


@dataclass(frozen=True)
class Case:
    """A registered validation case.

    Attributes
    ----------
    name : str
        Identifier (used on the command line and in the report's anchors).
    title : str
        Heading in the report.
    group : str
        Section of the report ("analytic circuits", "ngspice", "gradients", ...).
    function : callable
        ``function(ctx: CaseContext) -> iterable of CaseResult``.
    needs : tuple of str
        External programs the case needs (checked with :func:`shutil.which`
        before it runs; ``"python:<module>"`` names a Python package, checked by
        importing it); if one is missing the case is reported as skipped.
    """

    name: str
    title: str
    group: str
    function: Callable[[CaseContext], Iterable[CaseResult]]
    needs: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        """The case function's docstring, one line per paragraph (Markdown)."""
        doc = inspect.getdoc(self.function) or ""
        return "\n\n".join(" ".join(line.strip() for line in para.splitlines())
                           for para in doc.split("\n\n"))

    def missing_programs(self) -> list[str]:
        """The external programs (and Python packages) of :attr:`needs` not found here."""
        import importlib.util

        missing = []
        for prog in self.needs:
            if prog.startswith("python:"):
                if importlib.util.find_spec(prog.split(":", 1)[1]) is None:
                    missing.append(f"the Python package {prog.split(':', 1)[1]!r}")
            elif shutil.which(prog) is None:
                missing.append(prog)
        return missing


#: All registered cases by name, in registration (= report) order.
REGISTRY: dict[str, Case] = {}


def case(name: str, *, title: str, group: str, needs: Iterable[str] = ()):
    """Register a validation case (decorator).

    Parameters
    ----------
    name : str
        Unique identifier: letters, digits and underscores.
    title : str
        Heading of the case in the report.
    group : str
        Report section the case belongs to.
    needs : iterable of str
        External programs the case runs (e.g. ``("ngspice",)``); when one is
        missing, the case is reported as skipped instead of being called.

    Returns
    -------
    callable
        The decorator; it returns the function unchanged.

    Raises
    ------
    ValueError
        If the name is not an identifier or is already registered.
    """
    if not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(f"A case name must be an identifier (letters, digits, underscores); "
                         f"got {name!r}.")

    def register(function):
        if name in REGISTRY and REGISTRY[name].function is not function:
            raise ValueError(f"A validation case named {name!r} is already registered "
                             f"({REGISTRY[name].function.__module__}); choose another name.")
        REGISTRY[name] = Case(name, title, group, function, tuple(needs))
        return function

    return register


#: The built-in case modules, in report order; cases registered elsewhere come after them.
_CASE_MODULES = ("analytic", "dynamic", "spice", "gradients", "bias_map", "neurons")


def registered_cases() -> list[Case]:
    """The registered cases in report order.

    The built-in case modules are imported first (they register their cases on
    import). Built-in cases are ordered by module (analytic circuits, dynamic
    circuits, ngspice, gradients, bias map), then any other registered case; within a
    module, in registration order.
    """
    import importlib

    for module in _CASE_MODULES:
        importlib.import_module(f"{__package__}.{module}")
    rank = {f"{__package__}.{m}": k for k, m in enumerate(_CASE_MODULES)}
    return sorted(REGISTRY.values(),
                  key=lambda c: rank.get(c.function.__module__, len(rank)))


@dataclass
class Figure:
    """A figure written by a case: file name (relative to the output folder) and caption."""

    filename: str
    caption: str


@dataclass
class CaseContext:
    """What a case function receives: options, the output folder, result helpers.

    Attributes
    ----------
    case : Case
        The case being run.
    out_dir : pathlib.Path
        Folder for figures (and the report).
    quick : bool
        Smaller circuits and fewer sweep points (for CI).
    figures : list of Figure
        Figures saved so far by this case (filled by :meth:`save_figure`).
    """

    case: Case
    out_dir: Path
    quick: bool
    figures: list = field(default_factory=list)

    # -------------------------------------------------------------- randomness
    def rng(self, seed: int = 0) -> np.random.Generator:
        """A random source, seeded per case and ``seed``: the same circuits on every run."""
        digest = sum((k + 1) * ord(ch) for k, ch in enumerate(self.case.name))
        return np.random.default_rng([digest, seed])

    # -------------------------------------------------------------- results
    def at_most(self, quantity: str, value: float, tolerance: float, *, note: str,
                unit: str = "") -> CaseResult:
        """A result that passes when ``value <= tolerance`` (NaN fails).

        Parameters
        ----------
        quantity : str
            What was measured.
        value : float
            The measured value.
        tolerance : float
            Upper bound.
        note : str
            Why this tolerance (required: a tolerance without a reason is a guess).
        unit : str
            Unit of value and tolerance, as text.
        """
        _require_note(note)
        value = float(value)
        return CaseResult(self.case.name, quantity, value, float(tolerance),
                          bool(value <= tolerance), note, unit)

    def within(self, quantity: str, value: float, low: float, high: float, *, note: str,
               unit: str = "") -> CaseResult:
        """A result that passes when ``low <= value <= high`` (NaN fails)."""
        _require_note(note)
        value = float(value)
        return CaseResult(self.case.name, quantity, value, (float(low), float(high)),
                          bool(low <= value <= high), note, unit)

    def skipped(self, quantity: str, reason: str) -> CaseResult:
        """A result that could not be measured here (listed, never failing)."""
        return CaseResult(self.case.name, quantity, None, None, True, reason, skipped=True)

    # -------------------------------------------------------------- figures
    def save_figure(self, fig, stem: str, caption: str) -> Path:
        """Write a Matplotlib figure as ``<case name>_<stem>.png`` into the output folder.

        Parameters
        ----------
        fig : matplotlib.figure.Figure
        stem : str
            Short name of the figure within the case.
        caption : str
            One sentence shown under the figure in the report.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        filename = f"{self.case.name}_{stem}.png"
        path = self.out_dir / filename
        fig.savefig(path, dpi=110)
        self.figures.append(Figure(filename, caption))
        return path


def _require_note(note) -> None:
    if not isinstance(note, str) or not note.strip():
        raise ValueError("Every tolerance needs note=: say why the value must be this small.")


def new_figure(*args, **kwargs):
    """A Matplotlib figure drawn with the Agg canvas (no GUI backend, no global state).

    Takes the arguments of :meth:`matplotlib.figure.Figure.subplots` plus ``figsize``.

    Returns
    -------
    tuple (Figure, axes)
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    figsize = kwargs.pop("figsize", (6.4, 4.2))
    fig = MplFigure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(*args, **kwargs)
    return fig, axes
