"""Run the validation cases, print the table as it goes, write the report."""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from pathlib import Path

from .framework import CaseContext, CaseResult, registered_cases
from .report import console_header, console_rows, environment, write_report

__all__ = ["run_validation"]


@contextlib.contextmanager
def _brian2_numpy():
    """Pin Brian2's global code-generation target to numpy while the cases run.

    `CircuitNetwork` runs with its own target, but Brian2 objects created while
    building (synapse creation code) follow the global preference, which by default
    may compile Cython extensions: slow for dozens of small networks and
    dependent on a C compiler.
    """
    import brian2

    old = brian2.prefs.codegen.target
    brian2.prefs.codegen.target = "numpy"
    try:
        yield
    finally:
        brian2.prefs.codegen.target = old


def _run_case(case, ctx) -> list[CaseResult]:
    missing = case.missing_programs()
    if missing:
        return [ctx.skipped("all figures of this case",
                            f"skipped: {', '.join(missing)} not found")]
    from ephys_eqprop.phases import SettleWarning

    try:
        with warnings.catch_warnings():
            # a figure computed from a phase that never settled is meaningless: fail it
            warnings.simplefilter("error", SettleWarning)
            results = list(case.function(ctx))
    except Exception as ex:  # the case failed to run: that is a failure, not a crash
        return [CaseResult(case.name, "ran to completion", None, None, False,
                           f"{type(ex).__name__}: {ex}")]
    if not results:
        return [CaseResult(case.name, "ran to completion", None, None, False,
                           "the case returned no results")]
    return results


def run_validation(out_dir, *, quick: bool = False, cases=None,
                   stream=None) -> list[CaseResult]:
    """Run the validation suite and write ``report.md`` and PNG figures into ``out_dir``.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        Output folder (created if needed).
    quick : bool
        Smaller circuits and fewer sweep points (what CI runs).
    cases : iterable of str, optional
        Names of the cases to run (default: every registered case, in order).
    stream : file-like, optional
        Where the progress table is printed (default ``sys.stdout``).

    Returns
    -------
    list of CaseResult
        Every measured figure; a case that raised contributes one failed result
        with the error as its note, a case whose external program is missing one
        skipped result.

    Raises
    ------
    ValueError
        If ``cases`` names a case that is not registered.
    """
    stream = sys.stdout if stream is None else stream
    available = registered_cases()
    by_name = {c.name: c for c in available}
    if cases is not None:
        cases = list(cases)
        unknown = [n for n in cases if n not in by_name]
        if unknown:
            raise ValueError(f"Unknown validation case(s) {unknown}; registered cases are "
                             f"{sorted(by_name)}.")
        selected = [by_name[n] for n in cases]
    else:
        selected = available
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path = out_dir / "report.md"
    env = environment()
    t_start = time.perf_counter()
    print(f"ephys_eqprop validation ({'quick' if quick else 'full'}): {len(selected)} cases, "
          f"output in {out_dir}", file=stream)
    print(console_header(), file=stream, flush=True)
    runs = []
    for k, case in enumerate(selected, start=1):
        ctx = CaseContext(case, out_dir, quick)
        t0 = time.perf_counter()
        with _brian2_numpy():
            results = _run_case(case, ctx)
        secs = time.perf_counter() - t0
        runs.append((case, results, list(ctx.figures), secs))
        print(console_rows(results), file=stream)
        print(f"{'':<24} [{k}/{len(selected)}] {case.name}: {secs:.1f} s", file=stream,
              flush=True)
        # rewritten after every case, so that an interrupted run leaves a report
        write_report(report_path, runs, quick=quick, seconds=time.perf_counter() - t_start,
                     env=env)
    all_results = [r for _, rs, _, _ in runs for r in rs]
    n_fail = sum(r.failed for r in all_results)
    n_skip = sum(r.skipped for r in all_results)
    total = time.perf_counter() - t_start
    print(f"{len(all_results) - n_fail - n_skip} passed, {n_fail} failed, {n_skip} skipped "
          f"in {total:.0f} s; report: {report_path}", file=stream, flush=True)
    return all_results
