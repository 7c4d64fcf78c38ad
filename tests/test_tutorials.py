"""Run every numbered tutorial in its small-size mode and check what it reports.

Each ``tutorials/NN_*.py`` runs as a plain script in a subprocess with
``EPHYS_EQPROP_TUTORIAL_SMALL=1`` (fewer epochs and sweep points, Agg backend) and its
figures written to a temporary folder. A tutorial passes when it exits cleanly, every
figure it announces ("saved figure: <path>") exists and is non-empty, and the numbers
it prints are right — so that a wrong result fails the test, not only a crash.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
SCRIPTS = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))

#: figures each known tutorial must write (others are checked only for what they announce)
EXPECTED_FIGURES = {
    "01_first_circuit": ["01_rc_transient.png", "01_error_vs_beta.png", "01_ep_vs_exact.png"],
    "02_train_diode_network": ["02_learning_curves.png", "02_hidden_voltages.png",
                               "02_confusion_matrix.png"],
    "03_time_varying_learning": ["03_waveforms.png", "03_gradient_cosine.png",
                                 "03_learning_curves.png", "03_waveforms_after.png"],
    "04_hodgkin_huxley_in_the_circuit": ["04_step_responses.png", "04_fi_curve.png",
                                         "04_gap_junction.png", "04_gradients.png",
                                         "04_fit.png"],
    "05_training_hh_networks": ["05_synaptic_monitors.png", "05_training.png"],
}


def _number(pattern: str, text: str) -> float:
    """The float captured by ``pattern`` in ``text``; fails the test if it is missing."""
    m = re.search(pattern, text)
    if m is None:
        pytest.fail(f"the tutorial did not print a line matching {pattern!r}")
    return float(m.group(1))


def _check_01(out: str) -> None:
    # A 7-node linear circuit: symmetric EP at beta = 1e-3 has an O(beta^2) bias of
    # ~5e-9 relative to the exact gradient; 1e-5 leaves room for the settle tolerance
    # and still fails for a wrong sign, factor or missing term.
    assert _number(r"symmetric EP \(beta=[\d.e-]+\): max relative error ([\d.e+-]+)", out) < 1e-5
    # One-sided EP at beta = 1e-3: O(beta) bias, ~7e-5 measured.
    assert _number(r"one-sided EP \(beta=[\d.e-]+\): max relative error ([\d.e+-]+)", out) < 1e-3
    # Convergence orders from the log-log fit over beta: 1 and 2.
    assert _number(r"one-sided EP: fitted log-log slope ([\d.+-]+)", out) == pytest.approx(
        1.0, abs=0.15)
    assert _number(r"symmetric EP: fitted log-log slope ([\d.+-]+)", out) == pytest.approx(
        2.0, abs=0.15)
    # The physical (unrelaxed) run ends at the linear-algebra fixed point: 8 slowest time
    # constants leave e^-8 of a ~0.4 V step, ~1e-4 V.
    assert _number(r"physical circuit is within ([\d.e+-]+) V", out) < 1e-3


def _check_02(out: str) -> None:
    # Diode network: the EP gradient still matches implicit differentiation (~6e-8).
    assert _number(r"gradient check .*max relative error ([\d.e+-]+)", out) < 1e-5
    assert "resumed from" in out, "fit(..., resume=True) did not resume from the checkpoint"
    # Six epochs on Iris reach ~95 % (seed 0); chance is 33 %.
    assert _number(r"test accuracy after \d+ epochs: ([\d.]+) %", out) >= 70.0


def _check_03(out: str) -> None:
    # Adjoint against central finite differences on a linear RC circuit: both are the
    # gradient of the same discrete loss; FD's truncation error is O(h^2), ~2e-9 measured.
    assert _number(r"adjoint vs finite differences .*max relative error ([\d.e+-]+)", out) < 1e-5
    # Symmetric Lagrangian EP's own beta error is O(beta^2): beta = 1e-2 and 1e-3 agree
    # to ~5e-6, so what remains against the adjoint is its time bias, not a beta effect.
    assert _number(r"LagrangianEP beta=[\d.e-]+ vs beta=[\d.e-]+: max relative change "
                   r"([\d.e+-]+)", out) < 1e-3
    # Near the quasi-static limit (tau*omega = 0.1) Lagrangian EP points along the exact
    # gradient up to its O(tau*omega) time bias: the band's top (0.2/ms) times the slowest
    # mode (0.43 ms) is ~0.09, and the measured cosine is 0.9988; a wrong sign or a
    # missing term gives far less.
    assert _number(r"tau\*omega=0.1: cosine of LagrangianEP to the exact gradient ([\d.+-]+)",
                   out) > 0.99
    # Fast inputs (tau*omega = 5): the bias is large and the tutorial says so; the
    # measured cosine is -0.75, anything above 0.9 would contradict the text.
    assert _number(r"tau\*omega=5: cosine of LagrangianEP to the exact gradient ([\d.+-]+)",
                   out) < 0.9
    # Training with the exact gradient lowers the test loss (factor 13 measured in the
    # small run); no learning, or a wrong sign, leaves it near 1 or raises it.
    assert _number(r"tau\*omega=2 Adjoint: .*factor ([\d.]+)", out) > 1.5


def _check_04(out: str) -> None:
    # Against NEURON's hh at dt = 0.01 ms (Crank-Nicolson): forward Euler's own error is
    # ~0.02 ms of spike time (measured 0.018 ms); the aim is 0.1 ms.
    assert _number(r"spike times against NEURON: max difference ([\d.e+-]+) ms", out) < 0.1
    assert _number(r"f-I curve: max rate difference to NEURON ([\d.e+-]+) Hz", out) <= 1e-9
    # Both are the gradient of the same simulated loss: FD's O(eps^2) is ~1e-7.
    assert _number(r"adjoint vs finite differences on g_Na.*max relative error ([\d.e+-]+)",
                   out) < 1e-5
    # A spiking neuron is far from the quasi-static limit: Lagrangian EP points elsewhere
    # (cosine -0.78 measured); the tutorial says so, and a cosine near 1 would contradict it.
    assert _number(r"cosine of LagrangianEP to the exact gradient .*: ([\d.+-]+)", out) < 0.9
    # Six exact-gradient steps cut the trace loss by orders of magnitude (measured >1000).
    assert _number(r"voltage-trace loss .*\(factor ([\d.]+)\)", out) > 10
    # the junction carries enough current for the undriven neuron to fire too
    assert _number(r"gap junction: neuron 0 fires \d+ spikes, neuron 1 (\d+)", out) >= 1


def _check_05(out: str) -> None:
    # The monitor's adjoint integrand, summed in numpy, is the gradient Brian2 accumulated:
    # the same sum in two codes, ~1e-15.
    assert _number(r"equals the gradient: max relative difference ([\d.e+-]+)", out) < 1e-9
    # Two exact-gradient epochs lower the held-out loss (factor 2.0 measured).
    assert _number(r"Adjoint \(all parameters\): .*\(factor ([\d.]+)\)", out) > 1.2
    # Lagrangian EP on a spiking network points elsewhere (cosine -0.32 measured): the
    # tutorial says it is biased; a cosine near 1 would contradict it.
    assert _number(r"cosine of LagrangianEP to the exact gradient at the start: ([\d.+-]+)",
                   out) < 0.9


CHECKS = {"01_first_circuit": _check_01, "02_train_diode_network": _check_02,
          "03_time_varying_learning": _check_03, "04_hodgkin_huxley_in_the_circuit": _check_04,
          "05_training_hh_networks": _check_05}


def test_tutorials_found():
    assert SCRIPTS, f"no tutorials matching NN_*.py in {TUTORIALS}"
    missing = sorted(set(EXPECTED_FIGURES) - {p.stem for p in SCRIPTS})
    assert not missing, f"tutorials expected by this test are missing: {missing}"


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_tutorial_runs(script: Path, tmp_path: Path):
    out_dir = tmp_path / "figures"
    env = dict(os.environ, EPHYS_EQPROP_TUTORIAL_SMALL="1",
               EPHYS_EQPROP_TUTORIAL_OUT=str(out_dir), MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, (
        f"{script.name} exited with {proc.returncode}\n--- stdout ---\n{out[-3000:]}\n"
        f"--- stderr ---\n{proc.stderr[-3000:]}"
    )
    announced = [Path(p) for p in re.findall(r"^saved figure: (.+)$", out, re.MULTILINE)]
    expected = [out_dir / name for name in EXPECTED_FIGURES.get(script.stem, [])]
    missing = sorted(str(p) for p in expected if p not in announced)
    assert not missing, f"{script.name} did not announce the figures {missing}"
    for path in announced:
        assert path.parent == out_dir, f"{path} is not in EPHYS_EQPROP_TUTORIAL_OUT"
        assert path.is_file() and path.stat().st_size > 0, f"{path} missing or empty"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG file"
    check = CHECKS.get(script.stem)
    if check is not None:
        check(out)
