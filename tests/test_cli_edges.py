"""The CLI's edges (issue 15): start-up without torch, literal printing of user text, inputs that
cannot hang or escape, model settings checked before a run, diverged parents, help texts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, prepare_tiny_store

# Runs the CLI's entry point in a fresh interpreter, then says whether torch was imported.
PROBE = ("import sys\n"
         "sys.argv = ['tprm'] + sys.argv[1:]\n"
         "from tprm.cli import main\n"
         "try:\n"
         "    main()\n"
         "except SystemExit as exc:\n"
         "    code = exc.code or 0\n"
         "else:\n"
         "    code = 0\n"
         "sys.stderr.write('\\nEXIT=%s TORCH=%s\\n' % (code, 'torch' in sys.modules))\n")


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory) -> Path:
    return prepare_tiny_store(tmp_path_factory.mktemp("finished"))


def probe(*args: str, cwd: Path) -> tuple[int, bool, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                       cwd=cwd, env=env, timeout=120)
    tail = p.stderr.strip().splitlines()[-1]
    assert tail.startswith("EXIT="), p.stderr
    code, torch = tail.split()
    return int(code.split("=")[1]), torch == "TORCH=True", p.stdout


@pytest.mark.parametrize("args", [
    ("status", "--json"), ("status",), ("results", "tiny", "--json"), ("results", "tiny"),
    ("recipes", "list"), ("recipes", "validate", "tiny"), ("plot", "tiny", "--no-table"),
    ("plot", "tiny", "--metric", "mc", "--json"),
])
def test_read_only_commands_do_not_import_torch(finished_store, args):
    code, torch, out = probe(*args, "--store", str(finished_store), cwd=finished_store.parent)
    assert code == 0 and out.strip()
    assert not torch, f"`tprm {' '.join(args)}` imported torch"


def test_a_rejected_recipe_does_not_import_torch(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndensities: [2]\n")
    code, torch, _ = probe("recipes", "validate", str(bad), cwd=tmp_path)
    assert code == 2 and not torch
