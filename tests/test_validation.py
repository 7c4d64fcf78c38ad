"""The validation suite (`ephys-eqprop validate`): the runner, its report, exit status,
skipping, and the closed forms the analytic cases rely on."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from brian2 import amp, nA, second, siemens, uS, volt
from helpers import assert_quantity_close

from ephys_eqprop import validation
from ephys_eqprop.cli import main

framework = validation.framework
registered_cases = validation.registered_cases
run_validation = validation.run_validation
CaseResult = validation.CaseResult
diode_resistor_voltage = validation.analytic.diode_resistor_voltage
euler_rc_error_bound = validation.analytic.euler_rc_error_bound
r2r_ladder_output = validation.analytic.r2r_ladder_output
wheatstone_voltages = validation.analytic.wheatstone_voltages

needs_ngspice = pytest.mark.skipif(
    shutil.which("ngspice") is None,
    reason="ngspice not found (apt-get install -y ngspice); the cross-check against an "
           "external simulator needs it.",
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One quick validation run through the command line, shared by the tests below."""
    out = tmp_path_factory.mktemp("validation")
    code = main(["validate", "--quick", "--out", str(out)])
    return code, out


def summary_rows(report: str) -> list[list[str]]:
    """Rows of the report's summary table: [case, figure, value, tolerance, result]."""
    section = report.split("## Summary", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if line.startswith("| [") and line.endswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows.append(cells)
    return rows


# ---------------------------------------------------------------------- the quick run
def test_quick_run_passes_and_reports_every_case(quick_run, capsys):
    code, out = quick_run
    assert code == 0, (out / "report.md").read_text()
    report = (out / "report.md").read_text()
    rows = summary_rows(report)
    cases = registered_cases()
    assert len(cases) >= 11
    for c in cases:
        assert f"### {c.title} (`{c.name}`" in report
        assert any(r[0] == f"[{c.name}](#{c.name})" for r in rows), c.name
    assert all(r[4] in ("pass", "skipped") for r in rows)
    assert re.search(r"brian2 2\.\d", report) and "- date: 20" in report
    assert "mode: quick" in report


def test_quick_run_writes_the_figures_it_links(quick_run):
    _, out = quick_run
    report = (out / "report.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", report)
    expected = {"rc_charge_discharge_waveforms.png", "rc_convergence_order_order.png",
                "diode_resistor_sweep.png", "ep_gradient_fidelity_error_vs_beta.png",
                "ep_gradient_fidelity_scatter.png"}
    if shutil.which("ngspice"):
        expected |= {"ngspice_dc_operating_points.png", "ngspice_transient_waveforms.png"}
    assert expected <= set(linked)
    for name in linked:
        png = out / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000


@needs_ngspice
def test_quick_run_compares_with_ngspice(quick_run):
    _, out = quick_run
    rows = [r for r in summary_rows((out / "report.md").read_text())
            if r[0].startswith("[ngspice_")]
    assert {r[0] for r in rows} == {"[ngspice_dc](#ngspice_dc)",
                                    "[ngspice_transient](#ngspice_transient)"}
    assert all(r[4] == "pass" for r in rows)
    dc = [float(r[2].split()[0]) for r in rows if "D diodes" in r[1] or "B diodes" in r[1]]
    assert dc and max(dc) <= 1e-6


# ---------------------------------------------------------------------- exit status
@pytest.fixture
def private_registry(monkeypatch):
    """A copy of the case registry, so that test cases do not leak into other tests."""
    registered_cases()  # import the built-in cases first
    monkeypatch.setattr(framework, "REGISTRY", dict(framework.REGISTRY))
    return framework.REGISTRY


def test_failing_case_makes_the_exit_status_nonzero(private_registry, tmp_path, capsys):
    @framework.case("always_fails", title="A figure above its tolerance", group="test")
    def always_fails(ctx):
        """Reports an error of 1 against a tolerance of 1e-6."""
        yield ctx.at_most("error", 1.0, 1e-6, note="test")
        yield ctx.within("slope", 1.0, 0.9, 1.1, note="test")

    assert main(["validate", "--case", "always_fails", "--out", str(tmp_path)]) == 1
    report = (tmp_path / "report.md").read_text()
    assert "| [always_fails](#always_fails) | error | 1.000 | ≤ 1.00e-06 | **FAIL** |" in report
    assert "**1 failed**" in report
    assert re.search(r"always_fails\s+error\s+1\.000\s+≤ 1\.00e-06\s+FAIL",
                     capsys.readouterr().out)


def test_case_that_raises_fails_with_its_message(private_registry, tmp_path):
    @framework.case("raises", title="A case that crashes", group="test")
    def raises(ctx):
        """Raises."""
        raise RuntimeError("the circuit exploded")

    @framework.case("empty", title="A case with no results", group="test")
    def empty(ctx):
        """Returns nothing."""
        return []

    results = run_validation(tmp_path, cases=["raises", "empty"])
    assert [r.status for r in results] == ["FAIL", "FAIL"]
    assert results[0].note == "RuntimeError: the circuit exploded"
    assert results[1].note == "the case returned no results"
    assert main(["validate", "--case", "raises", "--out", str(tmp_path)]) == 1


def test_missing_program_skips_without_failing(private_registry, tmp_path, monkeypatch):
    @framework.case("needs_tool", title="Needs a tool", group="test",
                    needs=("no-such-program-here",))
    def needs_tool(ctx):
        """Never called."""
        raise AssertionError("a case whose program is missing must not run")

    assert main(["validate", "--case", "needs_tool", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "skipped: no-such-program-here not found" in report
    assert "0 passed, 0 failed, 1 skipped" in report


def test_ngspice_cases_skip_when_ngspice_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    code = main(["validate", "--quick", "--case", "ngspice_dc", "--case", "ngspice_transient",
                 "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert out.count("skipped: ngspice not found") == 2
    assert "ngspice not found" in (tmp_path / "report.md").read_text()


def test_unknown_case_and_list(tmp_path, capsys):
    assert main(["validate", "--case", "nope", "--out", str(tmp_path)]) == 2
    assert "Unknown validation case(s) ['nope']" in capsys.readouterr().err
    assert main(["validate", "--list"]) == 0
    listed = capsys.readouterr().out
    for c in registered_cases():
        assert c.name in listed


# ---------------------------------------------------------------------- framework
def test_results_need_a_reason_and_fail_on_nan(private_registry, tmp_path):
    ctx = framework.CaseContext(
        framework.Case("x", "x", "test", lambda ctx: []), tmp_path, quick=True)
    with pytest.raises(ValueError, match="Every tolerance needs note="):
        ctx.at_most("error", 0.0, 1.0, note=" ")
    assert not ctx.at_most("error", float("nan"), 1.0, note="r").passed
    assert not ctx.within("slope", float("nan"), 0.0, 2.0, note="r").passed
    assert ctx.within("slope", 2.0, 1.9, 2.1, note="r").tolerance_text() == "[1.9, 2.1]"
    skipped = ctx.skipped("all", "skipped: reason")
    assert skipped.status == "skipped" and not skipped.failed
    assert CaseResult("x", "q", 3e-7, 1e-6, True, "r", unit="V").value_text() == "3.00e-07 V"
    with pytest.raises(ValueError, match="already registered"):
        framework.case("rc_charge_discharge", title="t", group="g")(lambda ctx: [])
    with pytest.raises(ValueError, match="must be an identifier"):
        framework.case("two words", title="t", group="g")


# ---------------------------------------------------------------------- closed forms
def nodal_solve(n_nodes, branches, sources):
    """Node voltages of a resistor network by plain nodal analysis (no package code).

    ``branches``: (a, b, g) with node indices, -1 for ground; ``sources``: (node, g, V):
    a conductance from node to an ideal source V.
    """
    A = np.zeros((n_nodes, n_nodes))
    b = np.zeros(n_nodes)
    for a, c, g in branches:
        for p, q in ((a, c), (c, a)):
            if p >= 0:
                A[p, p] += g
                if q >= 0:
                    A[p, q] -= g
    for node, g, V in sources:
        A[node, node] += g
        b[node] += g * V
    return np.linalg.solve(A, b)


def test_r2r_closed_form_matches_nodal_analysis(rng):
    N, G = 7, 1e-5
    x = rng.uniform(-1, 1, N)
    branches = [(k, k + 1, G) for k in range(N - 1)] + [(0, -1, G / 2)]
    sources = [(k, G / 2, x[k]) for k in range(N)]
    v = nodal_solve(N, branches, sources)
    assert_quantity_close(r2r_ladder_output(x * volt), v[-1] * volt, rtol=1e-13,
                          reason="a 7-node linear solve: rounding only")


def test_wheatstone_closed_form_matches_nodal_analysis(rng):
    G = rng.uniform(1e-6, 2e-5, 5)
    v = nodal_solve(2, [(0, -1, G[1]), (1, -1, G[3]), (0, 1, G[4])],
                    [(0, G[0], 1.5), (1, G[2], 1.5)])
    V_A, V_B = wheatstone_voltages(1.5 * volt, *(G * siemens))
    assert_quantity_close([float(V_A), float(V_B)] * volt, v * volt, rtol=1e-13,
                          reason="a 2-node linear solve: rounding only")


def test_diode_closed_form_satisfies_kirchhoff():
    p = {"G": 10 * uS, "g_leak": 0.1 * uS, "I_s": 1 * nA, "V_T": 0.05 * volt,
         "V_bias": 0.2 * volt}
    x = np.linspace(-2, 2, 41)
    v = np.asarray(diode_resistor_voltage(x * volt, **p))
    i_in = 10e-6 * (x - v) - 0.1e-6 * v
    i_diode = 1e-9 * (np.exp((v - 0.2) / 0.05) - 1)
    assert_quantity_close(i_in * amp, i_diode * amp, rtol=1e-12,
                          reason="Lambert W to double precision, currents up to ~18 µA")


@pytest.mark.parametrize("ratio", [100, 1000])
def test_euler_bound_is_the_measured_euler_error(ratio):
    h = 1.0 / ratio
    n = np.arange(int(6 * ratio))
    err = np.max(np.abs((1 - h) ** n - np.exp(-n * h)))
    bound = euler_rc_error_bound(h * second, 1 * second)
    assert bound == pytest.approx(err, rel=2 * h)  # next term O(h/tau) relative
