"""Wall time of a recipe run with 1 vs more torch threads per worker (execution.threads).

Each setting runs the same jobs in a fresh store (threads are not part of a job's key), in one
process, one after the other; the ratio to threads=1 is printed. By default a slice of the
quickstart (2 temperatures x 2 densities: 1 dense + 4 prune + 8 retrain + 4 pair jobs).

    python benchmarks/threads.py [--recipe quickstart] [--threads 1 2] [--jobs 1] [--full]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tprm.service import Service  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="quickstart")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--jobs", type=int, default=1, help="parallel workers")
    ap.add_argument("--full", action="store_true", help="the whole recipe, not a 2x2 slice")
    a = ap.parse_args()
    base = Service(tempfile.mkdtemp(prefix="tprm-threads-")).recipes.resolve(a.recipe).recipe
    over = {} if a.full else {"temperature": {"values": list(base.temperature.values[:2])},
                              "densities": list(base.densities[:2])}
    print(f"recipe {a.recipe} ({'full' if a.full else '2x2 slice'}), jobs {a.jobs}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    walls = {}
    for t in a.threads:
        recipe = base.with_overrides({**over, "execution": {"threads": t, "jobs": a.jobs, "device": "cpu"}})
        with tempfile.TemporaryDirectory(prefix="tprm-threads-") as store:
            t0 = time.perf_counter()
            summary = Service(store).runs.run(recipe)
            walls[t] = time.perf_counter() - t0
        print(f"threads {t}: {walls[t]:7.1f} s  ({summary['state']}, {summary['executed']} jobs)  "
              f"ratio to threads {a.threads[0]}: {walls[t] / walls[a.threads[0]]:.2f}")


if __name__ == "__main__":
    main()
