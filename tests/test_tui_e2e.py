"""End to end in a real terminal: `python -m tprm tui --store DIR` inside tmux at 80x24.

Keys go in with `tmux send-keys`, the screen comes back with `tmux capture-pane -p`: this is
what a user sees over SSH. tmux is required (CI installs it); without it the test fails.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, TINY_RECIPE, prepare_tiny_store



@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A working directory and a store where the tiny recipe ran to the end."""
    work = tmp_path_factory.mktemp("tui-e2e")
    return work, prepare_tiny_store(work)


class Terminal:
    """One tmux session running a command at a fixed size."""

    def __init__(self, tmux: str, name: str, command: str, cwd: Path, size: tuple[int, int] = (80, 24)):
        self.tmux, self.name = tmux, name
        subprocess.run([tmux, "kill-session", "-t", name], capture_output=True)
        subprocess.run([tmux, "new-session", "-d", "-s", name, "-x", str(size[0]), "-y", str(size[1]),
                        "-c", str(cwd), command], check=True)

    def keys(self, *keys: str) -> None:
        subprocess.run([self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def screen(self) -> str:
        out = subprocess.run([self.tmux, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
        return out.stdout

    def alive(self) -> bool:
        return subprocess.run([self.tmux, "has-session", "-t", self.name], capture_output=True).returncode == 0

    def wait_for(self, pattern: str, timeout: float = 60.0) -> str:
        """The screen once `pattern` (a regex) shows on it; fail with the last screen after `timeout`."""
        deadline, text = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            text = self.screen()
            if re.search(pattern, text):
                return text
            time.sleep(0.3)
        pytest.fail(f"{pattern!r} did not show within {timeout:.0f}s; the screen was:\n{text}")

    def close(self) -> None:
        subprocess.run([self.tmux, "kill-session", "-t", self.name], capture_output=True)


def test_tui_in_tmux_plot_regimes_and_a_case(prepared) -> None:
    """Navigate with keys only: pick the recipe, read its regime map and inspector, get a decision, quit."""
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.fail("tmux is not installed (apt-get install -y tmux); the end-to-end test needs a real terminal")
    work, store = prepared
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    command = (f"env PYTHONPATH={shlex.quote(pythonpath)} TERM=xterm-256color "
               f"{shlex.quote(sys.executable)} -m tprm tui --store {shlex.quote(str(store))}")
    term = Terminal(tmux, f"tprm-e2e-{os.getpid()}", command, work)
    try:
        term.wait_for(r"1 Recipes.*recipe: \S+", 60)
        term.wait_for(r"plan: \d+/\d+ jobs done", 60)  # the list and the selected recipe are loaded
        term.keys("g")  # g: the first row; tiny is listed first (the store's own recipes come first)
        term.wait_for(r"tiny\s+epochs\s+2x2\s+17/17", 60)  # the list, with the finished run's counts
        term.wait_for(r"recipe: tiny", 20)

        term.keys("4")  # the phase plot: regime map with real ticks, and the inspector
        plot = term.wait_for(r"density\s+│\s+2\s+1", 60)
        assert re.search(r"^\s+80% │", plot, re.M) and re.search(r"^\s+20% │", plot, re.M), plot
        assert "epochs (fewer = hotter)" in plot
        inspector = term.wait_for(r"regime (I|II-A|II-B)\b", 30)
        cell = re.search(r"T=(\S+) density=(\S+) regime (I|II-A|II-B)\b", inspector)
        assert cell, inspector
        term.keys("Right")  # the inspector's cursor moves to the next temperature
        term.wait_for(rf"T=(?!{re.escape(cell.group(1))} )\S+ density={re.escape(cell.group(2))} regime", 10)

        term.keys("5", "r")  # case study 1 on the finished store: a decision with its evidence
        decision = term.wait_for(r"Decision: .+\(regime (I|II-A|II-B)", 120)
        assert "thresholds" in term.wait_for(r"thresholds", 10), decision

        term.keys("q")  # nothing is running: the UI quits at once
        deadline = time.monotonic() + 20
        while term.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not term.alive(), term.screen()
    finally:
        term.close()


# A run that trains for a while (one dense job of 4000 epochs, a minute or more; the test cancels
# it), so the screen can be read while it runs.
SLOW = (TINY_RECIPE.replace("name: tiny", "name: slow").replace("num_samples: 500", "num_samples: 2000")
        .replace("dense: {epochs: 2,", "dense: {epochs: 4000,").replace("values: [1, 2]", "values: [2000, 4000]"))


def test_tui_in_tmux_logs_stream_while_a_run_runs(tmp_path) -> None:
    """r launches a detached run; while it runs, the job log and the run log (l) show its lines."""
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.fail("tmux is not installed (apt-get install -y tmux); the end-to-end test needs a real terminal")
    store = tmp_path / "store"
    (store / "recipes").mkdir(parents=True)
    (store / "recipes" / "slow.yaml").write_text(SLOW)
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = f"env PYTHONPATH={shlex.quote(pythonpath)} TERM=xterm-256color"
    command = f"{env} {shlex.quote(sys.executable)} -m tprm tui --store {shlex.quote(str(store))}"
    term = Terminal(tmux, f"tprm-e2e-log-{os.getpid()}", command, tmp_path)
    try:
        term.wait_for(r"recipe: \S+", 60)
        term.wait_for(r"plan: \d+/\d+ jobs done", 60)  # the list and the selected recipe are loaded
        term.keys("g")  # g: the first row; the store's own recipe is listed first
        term.wait_for(r"slow\s+epochs\s+2x2", 60)  # the list is in
        term.wait_for(r"recipe: slow", 20)
        term.wait_for(r"plan: 0/\d+ jobs done", 60)
        term.keys("2")
        term.wait_for(r"no run yet", 30)
        term.keys("r")
        term.wait_for(r"running \(pid \d+", 60)
        # the job log of the highlighted (running) dense job: its start line, then epoch lines
        # (a fast CPU may have scrolled the start line out of the pane already)
        job = term.wait_for(r"dense seed=0: started on cpu|epoch \d+: train loss", 60)
        assert "running (pid" in job and "(log is empty)" not in job, job
        epochs = term.wait_for(r"epoch \d+: train loss \d\.\d+ err \d\.\d+, test loss", 90)
        assert "running (pid" in epochs, epochs
        term.keys("l")  # the whole run's log, while the run still runs
        run_log = term.wait_for(r"log of the whole run", 10)
        run_log = term.wait_for(r"run \d{8}-\d{6}-\w+ of slow: \d+ jobs", 20)
        assert "start dense x1" in run_log and "running (pid" in run_log, run_log
        assert re.search(r"ETA (estimating|\d+[smh])", run_log), run_log
    finally:
        subprocess.run([sys.executable, "-m", "tprm", "cancel", "slow", "--store", str(store)],
                       capture_output=True, env={**os.environ, "PYTHONPATH": pythonpath}, timeout=120)
        term.close()
