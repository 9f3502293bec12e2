"""benchmarks/gpu_case_studies.sh runs its whole code path on the CPU with the tiny override."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_case_studies_script_tiny_on_cpu(tmp_path):
    env = {**os.environ, "TPRM_GPU_CASES_TINY": "1", "STORE": str(tmp_path / "store")}
    r = subprocess.run(["bash", "benchmarks/gpu_case_studies.sh", sys.executable], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = r.stdout
    assert "writing FAKE data (64/32" in out and "FAKE DATA: timing only" in out
    assert "2 temperatures x 2 densities x 2 dense seeds x 2 retrain seeds" in out
    assert "plan: 2 dense jobs = 4 model-epochs, 16 retrainings = 16 model-epochs, 8 LMC/CKA pairs" in out
    assert "regimes (metrics averaged over dense seeds)" in out and "Direction rule on epochs" in out
    assert "always keep" in out and "verdict:" in out and "summary: device cpu, data FAKE" in out
    assert (tmp_path / "store" / "data" / "FAKE-DATA").is_file()


def test_gpu_case_studies_script_stops_at_its_budget_and_resumes(tmp_path):
    env = {**os.environ, "TPRM_GPU_CASES_TINY": "1", "STORE": str(tmp_path / "store"), "BUDGET_S": "2"}
    cmd = ["bash", "benchmarks/gpu_case_studies.sh", sys.executable]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 3, r.stdout[-2000:] + r.stderr[-2000:]
    assert "PARTIAL: stopped after" in r.stdout and "run the same command again to resume" in r.stdout
    assert "Direction rule" not in r.stdout  # case study 1 would train the rest: not on a partial run
    env["BUDGET_S"] = "600"
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "done (done 34;" in again.stdout and "Direction rule on epochs" in again.stdout
