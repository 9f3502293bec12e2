"""engine/cpumemory.py: a CPU worker keeps freed tensor memory, so the same large activations
allocated every step do not page-fault in again (the numbers it computes do not change)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import TINY_RECIPE

CHILD = """
import resource, sys, torch
if sys.argv[1] == "keep":
    from tprm.engine.cpumemory import keep_freed_memory
    assert keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = torch.ones(128, 1920, 20)       # 20 MB, a quickstart layer's activations
for _ in range(2):                  # the first steps grow the heap
    ys = [x * k for k in range(6)]; del ys
before = faults()
for _ in range(20):                 # 20 steps, each holding 6 activations at once, then freeing them
    ys = [x * k for k in range(6)]; del ys
print(faults() - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_activations_are_reused_without_page_faults():
    default, kept = _faults("default"), _faults("keep")
    # glibc's default gives the freed 120 MB back and faults it in again: ~5,000 faults per block
    assert default > 20 * 6 * 5000 / 2
    assert kept < default / 20


def test_a_cpu_run_turns_it_on(tmp_path):
    """A real run on the CPU sets the thresholds in the process that trains (a child, to see the
    first call)."""
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    code = f"""
from tprm.engine import cpumemory
from tprm.service import Service
assert cpumemory._done is None
assert Service({str(tmp_path / "store")!r}).runs.run({str(recipe)!r})["state"] == "done"
print(cpumemory._done)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split()[-1:] == [str(sys.platform.startswith("linux"))], out.stderr[-2000:]
