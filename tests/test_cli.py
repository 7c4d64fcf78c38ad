"""The ``ephys-eqprop`` command line."""

import re

import pytest

from ephys_eqprop.cli import main


def test_demo_quick_writes_figures_and_checks_gradients(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("gradient_check.png", "training.png"):
        assert (tmp_path / name).stat().st_size > 1000
    sym = float(re.search(r"symmetric EP: max relative error ([0-9.e+-]+)", out).group(1))
    one = float(re.search(r"one-sided EP: max relative error ([0-9.e+-]+)", out).group(1))
    # beta = 1e-3 on a diode network: symmetric bias O(beta^2), one-sided O(beta)
    assert sym < 1e-5
    assert one < 1e-2
    assert sym < one
    assert re.search(r"test accuracy [0-9.]+ %", out)


def test_unknown_command_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as ex:
        main(["nonsense"])
    assert ex.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_demo_hh_quick_checks_the_adjoint_and_trains(tmp_path, capsys):
    assert main(["demo", "hh", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("hh_gradient_check.png", "hh_training.png"):
        assert (tmp_path / name).stat().st_size > 1000
    # the adjoint and central differences differentiate the same simulated loss
    rel = float(re.search(r"max relative error ([0-9.e+-]+)", out).group(1))
    assert rel < 1e-4
    before, after = (float(v) for v in re.search(
        r"held-out loss ([0-9.e+-]+) J -> ([0-9.e+-]+) J", out).groups())
    assert after < before


def test_bench_quick_prints_static_throughput_with_agreeing_estimates(capsys):
    """Newton phases give the relaxed phases' estimate (to the settle tolerance) in a few
    iterations; the numbers themselves are machine-dependent and not asserted."""
    assert main(["bench", "--quick", "--targets", "numpy"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"\| SymmetricEP, (relax|newton) \| numpy \| (\d+) \| [0-9.]+ \| "
                      r"free (\d+), nudged (\d+), nudged_neg (\d+) \| ([0-9.e+-]+) \|", out)
    assert [r[0] for r in rows] == ["relax", "newton"]
    newton = rows[1]
    assert max(int(s) for s in newton[2:5]) <= 10
    assert float(newton[5]) < 1e-8
    assert "| ExactSteadyState" in out
