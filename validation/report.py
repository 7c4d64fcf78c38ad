"""Console table and Markdown report of validation results."""

from __future__ import annotations

import datetime
import platform
import shutil
import subprocess
from pathlib import Path

from .framework import Case, CaseResult

__all__ = ["console_header", "console_rows", "environment", "write_report"]

_COLS = (24, 64, 13, 20)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def console_header() -> str:
    """Header line of the console table."""
    names = ("case", "figure", "value", "tolerance")
    head = " ".join(f"{n:<{w}}" for n, w in zip(names, _COLS, strict=True)) + " result"
    return head + "\n" + "-" * len(head)


def console_rows(results: list[CaseResult]) -> str:
    """One console line per result: case, figure, value, tolerance, pass/FAIL/skipped."""
    lines = []
    for r in results:
        cells = (r.case, r.quantity, r.value_text(), r.tolerance_text())
        line = " ".join(f"{_clip(c, w):<{w}}" for c, w in zip(cells, _COLS, strict=True))
        lines.append(f"{line} {r.status}")
        if r.skipped or r.failed:
            lines.append(f"{'':<{_COLS[0]}} {r.note}")
    return "\n".join(lines)


def _ngspice_version() -> str:
    exe = shutil.which("ngspice")
    if exe is None:
        return "not found"
    try:
        out = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=20,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return "found, version unknown"
    for line in out.splitlines():
        if "ngspice-" in line:  # "** ngspice-39 : Circuit level simulation program"
            return line.strip(" *").split(":")[0].strip().removeprefix("ngspice-")
    return "found, version unknown"


def _neuron_version() -> str:
    import importlib.util

    if importlib.util.find_spec("neuron") is None:
        return "not installed"
    from .neuron_reference import neuron_version

    return neuron_version()


def environment() -> dict[str, str]:
    """Versions of the software the validation ran with."""
    import brian2
    import numpy
    import scipy

    import ephys_eqprop

    return {
        "ephys_eqprop": ephys_eqprop.__version__,
        "brian2": brian2.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "Python": platform.python_version(),
        "ngspice": _ngspice_version(),
        "NEURON": _neuron_version(),
    }


def _md(text: str) -> str:
    """Escape a table cell (pipes separate Markdown table columns)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_report(path, runs: list[tuple[Case, list[CaseResult], list, float]], *, quick: bool,
                 seconds: float, env: dict[str, str] | None = None) -> Path:
    """Write the Markdown report.

    Parameters
    ----------
    path : str or pathlib.Path
        The report file (``report.md``); figures are linked relative to its folder.
    runs : list of tuple (Case, results, figures, seconds)
        Each case run, its results, the figures it saved and its wall-clock time.
    quick : bool
        Whether this was a quick run.
    seconds : float
        Total wall-clock time.
    env : dict, optional
        Software versions (default: :func:`environment`).

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    env = environment() if env is None else env
    results = [r for _, rs, _, _ in runs for r in rs]
    n_fail = sum(r.failed for r in results)
    n_skip = sum(r.skipped for r in results)
    n_pass = len(results) - n_fail - n_skip
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    verdict = "**all passed**" if n_fail == 0 else f"**{n_fail} failed**"
    out = [
        "# ephys_eqprop validation report",
        "",
        f"- date: {now}",
        f"- mode: {'quick (`--quick`)' if quick else 'full'}; wall-clock time {seconds:.0f} s",
        "- software: " + ", ".join(f"{k} {v}" for k, v in env.items()),
        "- Brian2 code-generation target: numpy (runtime)",
        f"- result: {verdict} — {n_pass} passed, {n_fail} failed, {n_skip} skipped "
        f"({len(results)} figures from {len(runs)} cases)",
        "",
        "Relative errors are norm-wise: max |simulated − reference| over all entries (every "
        "node, every time step), divided by the largest |reference| (or by the signal range "
        "where stated), so that entries near zero do not dominate. Every tolerance carries "
        "its reason in the case sections below.",
        "",
        "## Summary",
        "",
        "| case | figure | value | tolerance | result |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        status = r.status if r.status != "FAIL" else "**FAIL**"
        out.append(f"| [{r.case}](#{r.case}) | {_md(r.quantity)} | {_md(r.value_text())} | "
                   f"{_md(r.tolerance_text())} | {status} |")
    group = None
    for case, rs, figures, secs in runs:
        if case.group != group:
            group = case.group
            out += ["", f"## {group}"]
        out += ["", f'<a id="{case.name}"></a>', "",
                f"### {case.title} (`{case.name}`, {secs:.1f} s)", "", case.description, "",
                "| figure | value | tolerance | result | reason for the tolerance / note |",
                "|---|---|---|---|---|"]
        for r in rs:
            out.append(f"| {_md(r.quantity)} | {_md(r.value_text())} | "
                       f"{_md(r.tolerance_text())} | {r.status} | {_md(r.note)} |")
        for fig in figures:
            out += ["", f"![{_md(fig.caption)}]({fig.filename})", "", f"*{fig.caption}*"]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path
