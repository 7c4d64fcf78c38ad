"""The README's example runs as printed and its claimed accuracy holds."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def _run(*codes, namespace=None) -> str:
    """Execute README code blocks in one namespace; return what they printed."""
    namespace = {} if namespace is None else namespace
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        for code in codes:
            exec(compile(code, "README.md", "exec"), namespace)
    return buf.getvalue()


def test_readme_example_runs_and_matches_exact_gradient():
    out = _run(_blocks()[0])
    # the README claims ~1e-8 for symmetric EP at beta = 1e-3 on this diode circuit
    assert float(out.split()[-1]) < 1e-6


def test_readme_time_varying_example_runs_and_matches_finite_differences():
    out = _run(_blocks()[1])
    # the README prints the adjoint's error against finite differences (~1e-8)
    assert float(out.split()[-1]) < 1e-6


def test_readme_elements_example_runs_and_its_optimizer_builds():
    blocks = _blocks()
    namespace: dict = {}
    out = _run(blocks[2], blocks[3], namespace=namespace)
    assert "['x->n', 'n->y', 'n.R_rec', 'n.E_rec']" in out
    # the README prints the adjoint's error against finite differences
    assert float(out.split()[-1]) < 1e-6
    assert isinstance(namespace["opt"], namespace["eq"].Adam)


def test_readme_hodgkin_huxley_example_runs_and_matches_finite_differences():
    out = _run(next(b for b in _blocks() if "HHNeuron" in b))
    assert "['gap', 'soma.g_L', 'soma.g_Na', 'soma.g_K']" in out
    assert float(out.split()[-1]) < 1e-6


def test_readme_hh_network_example_monitors_add_up_and_gradient_matches_fd():
    lines = _run(next(b for b in _blocks() if "SynapticMonitor" in b)).splitlines()
    assert lines[0] == "['adjoint'] V²"
    # the monitor's time sum is the gradient up to round-off of the sum
    assert float(lines[1].split()[-1]) < 1e-12
    # central differences (relative step 1e-4) on a spiking network: ~1e-6 measured
    assert float(lines[2].split()[-1]) < 1e-4


def test_ci_runs_exactly_the_readmes_test_command():
    setup = re.search(r"## Set up\n\n```bash\n(.*?)```", README.read_text(), re.S).group(1)
    command = setup.splitlines()[1].split("#")[0].strip()
    assert command.startswith("pytest")
    ci = (README.parent / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1].strip() == command
