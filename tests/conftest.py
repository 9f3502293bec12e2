"""Shared fixtures: a tiny real recipe (MNIST-1D, a few hundred samples, 1-2 epochs) and stores.

The tiny recipe pins `execution.threads: 1`: tests compare runs bit for bit and must not depend on
how busy the machine is (`threads: auto` picks the thread count from the load, and CPU sums over 2
threads round differently; tests/test_cputhreads.py covers auto)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TINY_RECIPE = """\
name: tiny
description: a seconds-long recipe for tests
dataset: {name: mnist1d, seed: 3, num_samples: 500}
model: {name: conv1d, kwargs: {widths: [8, 8, 8]}}
dense: {epochs: 2, batch_size: 50, lr: 0.05, checkpoint_every: 1}
temperature: {knob: epochs, values: [1, 2]}
densities: [0.2, 0.8]
retrain: {epochs: 1, batch_size: 50, lr: 0.05, seeds: [0, 1], last_epochs: 1}
dense_seeds: [0]
metrics: {lmc: {points: 5}, cka: {samples: 200}}
execution: {device: cpu, threads: 1}
"""


@pytest.fixture
def tiny_recipe(tmp_path) -> Path:
    path = tmp_path / "recipes" / "tiny.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TINY_RECIPE)
    return path


@pytest.fixture
def store_dir(tmp_path) -> Path:
    d = tmp_path / "store"
    d.mkdir()
    return d


def prepare_tiny_store(work: Path) -> Path:
    """A store under `work` in which the tiny recipe (kept in the store's recipes/) ran to the end."""
    from tprm.service import Service

    store = work / "store"
    (store / "recipes").mkdir(parents=True)
    (store / "recipes" / "tiny.yaml").write_text(TINY_RECIPE)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        assert Service(store).runs.run("tiny")["state"] == "done"
    return store


def tprm_cmd(*args: str) -> list[str]:
    """The real CLI, as a new process (the venv's interpreter)."""
    return [sys.executable, "-m", "tprm", *args]


def run_tprm(*args: str, timeout: float = 300, env: dict | None = None, cwd=None):
    return subprocess.run(tprm_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def call(capsys, monkeypatch, *args):
    """Run the real entry point in-process; returns (exit code, stdout, stderr)."""
    from tprm.cli import main

    monkeypatch.setattr(sys, "argv", ["tprm", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


@pytest.fixture
def snap_compare(snap_compare, request):
    """pytest-textual-snapshot's fixture, printing what differs as text when a snapshot mismatches."""
    import pickle

    from pytest_textual_snapshot import node_to_report_path
    from snapdiff import describe

    def compare(*args, **kwargs) -> bool:
        same = snap_compare(*args, **kwargs)
        if not same:
            data = pickle.loads(node_to_report_path(request.node).read_bytes())
            print(describe(data[1], data[2]))
        return same
    return compare
