"""A bare-machine rehearsal of benchmarks/gpu_check.sh (issue 24), on the CPU, in seconds.

The device machine has torch, torchvision, numpy, typer, rich, pyyaml, filelock, scipy and matplotlib,
and NOT pytest, tinydb, mnist1d, plotext (nor their dependencies): whatever the script needs of those
must come from the wheels it carries (benchmarks/gpu_wheels.txt). Here a sitecustomize hook makes
this venv such a machine: importing a missing package fails unless it comes from the carried site
folder. The carried wheels are made from this venv's own installed files (no index needed). Then
``gpu_check.sh --dry`` runs every step: the offline install, the preflight, the CUDA tests' own step
(skipped on the CPU, but collected with --noconftest), every benchmark row (DataLoader workers under
spawn: the dataset class must unpickle in a fresh process), and the final table.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# what the device machine lacks (the carried wheels bring the first ones; the rest never reach it)
MISSING = ("pytest", "_pytest", "pluggy", "iniconfig", "py", "tinydb", "mnist1d", "requests", "urllib3", "idna",
           "certifi", "charset_normalizer", "plotext", "textual", "hypothesis", "syrupy", "ray")

SITECUSTOMIZE = '''\
"""This interpreter as the bare device machine: a missing package is found only in the carried site.

The path finder is wrapped, not preceded by a finder that raises: code that probes with find_spec
(torch._dynamo does, for hypothesis) must get None, as on a machine without the package."""
import importlib.machinery
import os
import sys

_MISSING = set(os.environ["TPRM_BARE_MISSING"].split(","))
_CARRIED = os.environ["TPRM_SITE"]
_PathFinder = importlib.machinery.PathFinder


class _BarePathFinder:
    invalidate_caches = _PathFinder.invalidate_caches
    find_distributions = _PathFinder.find_distributions

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if "." not in name and name in _MISSING:
            return _PathFinder.find_spec(name, [_CARRIED])
        return _PathFinder.find_spec(name, path, target)


sys.meta_path[:] = [_BarePathFinder if f is _PathFinder else f for f in sys.meta_path]
'''


def carried_names() -> list[str]:
    lines = (ROOT / "benchmarks" / "gpu_wheels.txt").read_text().splitlines()
    return [line.split("==")[0].strip() for line in lines if line.strip() and not line.startswith("#")]


def wheel_of(name: str, dest: Path) -> Path:
    """An installed distribution's files as a wheel (what `pip download` would fetch for the device)."""
    dist = importlib.metadata.distribution(name)
    base = Path(str(dist.locate_file("")))
    path = dest / f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        for f in dist.files or []:
            if str(f).startswith("..") or "__pycache__" in str(f):
                continue
            whl.write(base / f, str(f))
    return path


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("whl")
    for name in carried_names():
        wheel_of(name, dest)
    return dest


def bare_run(tmp_path: Path, wheels: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    hook = tmp_path / "bare"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(hook), PYTHON=sys.executable, TPRM_BARE_MISSING=",".join(MISSING),
               TPRM_SITE=str(tmp_path / "site"), TPRM_WHEELS=str(wheels), TPRM_CHECK_DIR=str(tmp_path / "check"))
    return subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_the_hook_makes_a_bare_machine(tmp_path):
    """The rehearsal's premise: under the hook a missing package does not import, a device one does."""
    hook = tmp_path / "bare"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ, PYTHONPATH=str(hook), TPRM_BARE_MISSING=",".join(MISSING), TPRM_SITE=str(tmp_path))
    code = ("import importlib.util as u; print(u.find_spec('yaml') is not None, u.find_spec('hypothesis') is None)\n"
            "import tinydb")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "True True" and "No module named 'tinydb'" in run.stderr, run.stdout + run.stderr


def test_gpu_check_dry_runs_every_step_on_a_bare_machine(tmp_path, wheels):
    run = bare_run(tmp_path, wheels)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    site = str(tmp_path / "site")
    for name in ("pytest", "tinydb", "mnist1d", "plotext", "requests"):  # each from the carried wheels
        line = next(line for line in out.splitlines() if line.startswith(f"PREFLIGHT: {name} "))
        assert site in line, line
    assert "PREFLIGHT ok" in out and "CUDA TESTS: exit 0" in out, out[-4000:]
    assert "skipped" in out and "error" not in out.split("PREFLIGHT ok")[1].split("CUDA TESTS")[0].lower()
    assert "] COMPILED ROWS: exit 0" in out and "] ROWS: exit 0" in out, out[-4000:]
    table = out[out.index("| what (gpu_check.sh --dry)"):]
    for row in ("eager vs compiled", "bf16 NCHW", "bf16 NHWC", "vmap vs grouped conv", "dense epoch, batch 64",
                "LMC 11 points + CKA", "grid row"):
        assert row in table, (row, table)


def test_gpu_check_stops_before_anything_runs_when_a_wheel_is_missing(tmp_path, wheels):
    """Without pytest's wheel the preflight names what is missing and nothing else runs (exit 2)."""
    partial = tmp_path / "partial"
    partial.mkdir()
    for whl in wheels.iterdir():
        if not whl.name.startswith("pytest-"):
            (partial / whl.name).write_bytes(whl.read_bytes())
    run = bare_run(tmp_path, partial)
    out = run.stdout + run.stderr
    assert run.returncode == 2, out[-3000:]
    assert "PREFLIGHT: missing pytest" in out and "CUDA TESTS" not in out and "ROWS" not in out, out[-3000:]
