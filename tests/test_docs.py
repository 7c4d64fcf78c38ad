"""The guides in docs/ run as printed and say what they claim."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def run_blocks(path: Path) -> str:
    """Execute a document's python blocks in order, in one namespace; return the output."""
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), re.S)
    assert blocks, f"{path.name} has no python examples"
    namespace: dict = {"__name__": "docs_example"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for k, code in enumerate(blocks):
            exec(compile(code, f"{path.name}[block {k}]", "exec"), namespace)
    return out.getvalue()


def test_adding_an_element_worked_example():
    out = run_blocks(DOCS / "adding_an_element.md")
    assert "['x->h', 'h->y', 'h.g_M']" in out
    # the gate starts at its steady state at the initial voltage (0 V): 1/(1 + e^0)
    assert "[0.5 0.5]" in out
    # the adjoint is the exact gradient of the simulated loss: central differences
    # agree to their own O(eps^2) error, ~1e-9 here
    err = float(re.search(r"adjoint vs finite differences: ([\d.e+-]+)", out).group(1))
    assert err < 1e-6
    assert "MCurrent with states of its own (w); static phases" in out
    assert "C_h_0_0_w" in out and "B_h_0_0_w" in out
    g = re.search(r"\[([^\]]*)\] .?S\s*$", out.strip().splitlines()[-1])
    assert g is not None and all(float(v) >= 0 for v in g.group(1).split())
