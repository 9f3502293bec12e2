"""Regenerate the README's demo block from a real `tprm demo` run of today's code.

    python scripts/readme_demo.py            # runs the demo (1-3 min on a CPU), rewrites README.md
    python scripts/readme_demo.py --check    # exit 1 if README.md's block differs from a fresh run

The block between ``<!-- readme-demo:begin -->`` and ``<!-- readme-demo:end -->`` is replaced by
a line saying where and when it ran, followed by the run's own output (the normalised test error,
mc and regime maps and the PASS/FAIL lines; the per-cell tables are left to the real command).
`make readme-demo` runs it. Run it whenever the science or the quickstart changes.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- readme-demo:begin -->", "<!-- readme-demo:end -->"
MAPS = ("normalized_test_error:", "mc:", "regimes ")


def run_demo(store: Path) -> tuple[str, float]:
    """stdout of `tprm demo` on a fresh store, and its wall time in seconds."""
    shutil.rmtree(store, ignore_errors=True)
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100", "PYTHONPATH": str(ROOT)}
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "tprm", "demo", "--store", str(store)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.time() - t0
    if proc.returncode not in (0, 1):  # 1: a PASS line failed, still worth showing
        sys.exit(f"tprm demo failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc.stdout, wall


def extract(stdout: str) -> list[str]:
    """The header, the run summary, the three maps (without their number tables), the checks."""
    lines = stdout.splitlines()
    keep = [ln for ln in lines[:3] if ln.startswith(("tprm demo:", "run "))]
    blocks, cur = [], []
    for ln in lines + [""]:
        if ln.strip():
            cur.append(ln)
        elif cur:
            blocks.append(cur)
            cur = []
    for block in blocks:
        if block[0].startswith(MAPS):
            metric = block[0].split(":")[0].split(" ")[0]
            body = [block[0]]
            for ln in block[1:]:
                if ln.startswith(f"{metric}: mean±std") or ln.startswith(f"{metric}: label"):
                    break
                body.append(ln)
            keep += ["...", *body]
        elif block[0].startswith(("PASS", "FAIL")):
            keep += ["...", *block]
    return keep


def render(stdout: str, wall: float) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        import torch
        torch_v = torch.__version__
    except ImportError:
        torch_v = "?"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    head = (f"Produced by `make readme-demo` (scripts/readme_demo.py) from a real run on {stamp}, "
            f"host {socket.gethostname()} ({cpu}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}, torch {torch_v}); the demo took {wall:.0f} s (load average "
            f"{os.getloadavg()[0]:.1f} at the end):")
    return "\n".join([BEGIN, head, "", "```", "$ tprm demo", *extract(stdout), "```", END])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--store", type=Path, default=None, help="Store for the run (default: a temp dir).")
    ap.add_argument("--check", action="store_true", help="Only compare the maps and checks.")
    ap.add_argument("--raw", type=Path, default=None, help="Also save the demo's whole stdout here.")
    args = ap.parse_args()
    text = args.readme.read_text()
    if BEGIN not in text or END not in text:
        sys.exit(f"{args.readme}: no {BEGIN} ... {END} markers")
    with tempfile.TemporaryDirectory() as tmp:
        stdout, wall = run_demo(args.store or Path(tmp) / "store")
    if args.raw:
        args.raw.write_text(stdout)
    block = render(stdout, wall)
    if args.check:
        old = text[text.index(BEGIN):text.index(END)]
        same = [ln for ln in extract(stdout) if not ln.startswith(("tprm demo:", "run "))]
        missing = [ln for ln in same if ln not in old.splitlines()]
        print("README demo block is current" if not missing else
              f"README demo block is stale: {len(missing)} line(s) differ, e.g. {missing[0]!r}")
        sys.exit(1 if missing else 0)
    new = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    args.readme.write_text(new)
    print(f"rewrote the demo block of {args.readme} ({len(block.splitlines())} lines, demo {wall:.0f} s)")


if __name__ == "__main__":
    main()
