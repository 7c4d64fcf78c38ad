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
                                    "[ngspice_transient](#ngspice_transient)",
                                    "[ngspice_rlc_transient](#ngspice_rlc_transient)"}
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


def test_quick_run_maps_the_lagrangian_ep_bias(quick_run):
    _, out = quick_run
    report = (out / "report.md").read_text()
    rows = [r for r in summary_rows(report) if r[0] == "[bias_map](#bias_map)"]
    assert any("LagrangianEP symmetric" in r[1] and "τω = 0.01" in r[1] for r in rows)
    assert any("Adjoint vs central differences" in r[1] for r in rows)
    assert rows and all(r[4] == "pass" for r in rows)
    for name in ("bias_map_cosine.png", "bias_map_relative_error.png"):
        assert f"({name})" in report
    table = (out / "bias_map_table.md").read_text()
    assert table.count("| RC |") >= 8 and table.count("| RLC |") >= 8


# ---------------------------------------------------------------------- dynamic elements
DYNAMIC_CASES = ("rl_branch", "series_rlc_step", "lossless_lc", "nonlinear_capacitor_charge",
                 "rlc_convergence_order")


def test_quick_run_checks_inductors_and_nonlinear_capacitors(quick_run):
    _, out = quick_run
    report = (out / "report.md").read_text()
    rows = summary_rows(report)
    for name in DYNAMIC_CASES:
        mine = [r for r in rows if r[0] == f"[{name}](#{name})"]
        assert mine and all(r[4] == "pass" for r in mine), name
    order = [r for r in rows if r[0] == "[rlc_convergence_order](#rlc_convergence_order)"]
    assert {r[1] for r in order} == {"order (log-log slope), scheme='euler'",
                                     "order (log-log slope), scheme='symplectic'"}
    waveform = [r for r in rows if r[0] == "[series_rlc_step](#series_rlc_step)"
                and "max relative error over the waveform" in r[1]]
    assert len(waveform) == 3 and all(float(r[2]) <= 1e-4 for r in waveform)
    for png in ("rl_branch_waveforms.png", "series_rlc_step_waveforms.png",
                "lossless_lc_energy.png", "nonlinear_capacitor_charge_charge.png",
                "rlc_convergence_order_order.png"):
        assert f"({png})" in report and (out / png).stat().st_size > 10_000


@needs_ngspice
def test_quick_run_compares_rlc_networks_with_ngspice(quick_run):
    _, out = quick_run
    report = (out / "report.md").read_text()
    rows = [r for r in summary_rows(report)
            if r[0] == "[ngspice_rlc_transient](#ngspice_rlc_transient)"]
    assert len(rows) == 2 and all(r[4] == "pass" for r in rows)
    assert "22 nodes, 18 inductors" in rows[0][1] and float(rows[0][2]) <= 1e-3
    assert "(ngspice_rlc_transient_waveforms.png)" in report


def test_rlc_closed_forms_solve_the_circuit_equation():
    from brian2 import farad, ohm
    from brian2.units.allunits import henry

    dyn = validation.dynamic
    L, C, V0 = 10e-3, 1e-9, 0.7
    w0 = 1 / np.sqrt(L * C)
    t = np.linspace(0, 20 / w0, 20001)
    h = t[1] - t[0]
    for zeta in (0.25, 1.0, 2.0, 1.0 - 1e-6, 1.0 + 1e-6):
        R = 2 * zeta * np.sqrt(L / C)
        v, i = dyn.series_rlc_step(t * second, R * ohm, L * henry, C * farad, V0 * volt)
        v, i = np.asarray(v), np.asarray(i)
        assert v[0] == 0 and i[0] == 0
        # C v' = i and L i' = V0 - v - R i, by central differences (error O(h²))
        dv = (v[2:] - v[:-2]) / (2 * h)
        di = (i[2:] - i[:-2]) / (2 * h)
        assert_quantity_close(C * dv * amp, i[1:-1] * amp, rtol=1e-5, atol=0,
                              reason="central differences, (h ω0)² / 6 ~ 2e-7 of the largest term")
        assert_quantity_close(L * di * volt, (V0 - v - R * i)[1:-1] * volt, rtol=1e-5,
                              reason="central differences, (h ω0)² / 6 ~ 2e-7 of the largest term")
    tau = L / 1e3
    i_rl = np.asarray(dyn.rl_current(np.array([0, tau, 50 * tau]) * second, L * henry,
                                     1e3 * ohm, V0 * volt, 1e-4 * amp))
    assert i_rl == pytest.approx([1e-4, V0 / 1e3 + (1e-4 - V0 / 1e3) / np.e, V0 / 1e3],
                                 rel=1e-12)


def test_prony_and_zero_crossings_recover_known_rates():
    dyn = validation.dynamic
    h = 1e-3
    lam = np.array([-0.3 - 40j, -0.3 + 40j])
    n = np.arange(2000)
    z = 1 + h * lam  # a forward-Euler sequence: exactly two geometric modes
    u = np.real((0.4 - 0.1j) * z[0] ** n + (0.4 + 0.1j) * z[1] ** n)
    got = dyn.discrete_eigenvalues(u, h)
    assert np.allclose(got, np.log(z) / h, rtol=1e-9, atol=0)
    t = n * h
    w = dyn.zero_crossing_frequency(t, np.exp(-0.3 * t) * np.cos(40 * t + 0.2))
    assert w == pytest.approx(40, rel=1e-6)


def test_rlc_ngspice_case_skips_when_ngspice_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    assert main(["validate", "--quick", "--case", "ngspice_rlc_transient",
                 "--out", str(tmp_path)]) == 0
    assert "skipped: ngspice not found" in capsys.readouterr().out
