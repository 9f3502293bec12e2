"""Wall time and peak RSS of read-only CLI commands on a finished store, for two code trees.

Each command runs as a fresh `python -m tprm ...` process (as a user or a polling script would),
`--repeat` times; the median wall time and the child's peak RSS (ru_maxrss) are printed, plus
whether the command imported torch. A second tree (`--baseline`, e.g. an unpacked older commit)
is measured in the same run, interleaved, so the ratio is fair on a busy machine.

    python benchmarks/cli_startup.py --store STORE [--baseline /tmp/old-tree] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = ("import runpy, sys\n"
         "sys.argv = ['tprm'] + sys.argv[1:]\n"
         "try:\n"
         "    runpy.run_module('tprm', run_name='__main__')\n"
         "except SystemExit:\n"
         "    pass\n"
         "sys.stderr.write('\\nTORCH=%s\\n' % ('torch' in sys.modules))\n")


def measure(tree: Path, args: list[str], cwd: Path) -> tuple[float, float, bool]:
    """One fresh process: (wall seconds, its peak RSS in MB, did it import torch?)."""
    import tempfile

    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.TemporaryFile() as errf:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", PROBE, *args], cwd=cwd, env=env,
                                stdout=subprocess.DEVNULL, stderr=errf)
        _, _, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = 0
        errf.seek(0)
        return wall, ru.ru_maxrss / 1024, b"TORCH=True" in errf.read()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, help="A store in which a recipe ran to the end.")
    ap.add_argument("--recipe", default="tiny")
    ap.add_argument("--baseline", help="Another code tree (an unpacked commit) to compare with.")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    store = Path(a.store).resolve()
    cwd = store.parent
    bad = cwd / "cli-startup-bad.yaml"
    bad.write_text("name: bad\ndensities: [2]\n")
    commands = {
        "status --json": ["status", "--json", "--store", str(store)],
        "results --json": ["results", a.recipe, "--json", "--store", str(store)],
        "recipes list": ["recipes", "list", "--store", str(store)],
        "recipes validate": ["recipes", "validate", a.recipe, "--store", str(store)],
        "plot": ["plot", a.recipe, "--store", str(store), "--no-table"],
        "validate (bad)": ["recipes", "validate", str(bad), "--store", str(store)],
    }
    trees = {"this": ROOT}
    if a.baseline:
        trees["baseline"] = Path(a.baseline).resolve()
    print(f"{'command':18s} {'tree':9s} {'median s':>9s} {'min s':>7s} {'peak MB':>8s} torch")
    for name, args in commands.items():
        walls: dict[str, list[float]] = {t: [] for t in trees}
        rss: dict[str, float] = {}
        torch: dict[str, bool] = {}
        for _ in range(a.repeat):
            for t, tree in trees.items():  # interleaved: both trees see the same load
                wall, rss[t], torch[t] = measure(tree, args, cwd)
                walls[t].append(wall)
        rows = {}
        for t in trees:
            rows[t] = statistics.median(walls[t])
            print(f"{name:18s} {t:9s} {rows[t]:9.3f} {min(walls[t]):7.3f} {rss[t]:8.0f} {torch[t]}")
        if "baseline" in rows:
            print(f"{name:18s} ratio baseline/this: {rows['baseline'] / rows['this']:.1f}x")


if __name__ == "__main__":
    main()
