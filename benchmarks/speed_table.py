"""The benchmark's rows as one markdown table: paper_speed.py appends each measured row to a JSON-lines
file as it finishes (``--rows-file``), so rows measured by several processes (gpu_check.sh runs the
compiled rows apart, under their own time limit) and rows measured before a timeout end up in one
table. No torch import: it prints at once, whatever state the device is in.

    python benchmarks/speed_table.py ROWS.jsonl [TITLE]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row_line(name: str, base: float, ours: float, note: str = "") -> str:
    """One row as the benchmark prints it while running."""
    return f"  {name}: baseline {base:.2f} s, tprm {ours:.2f} s, ratio {base / ours:.2f} {note}"


def append_row(path: str | None, name: str, base: float, ours: float, note: str = "") -> None:
    """Append one measured row to the rows file (when one is given)."""
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"name": name, "base": base, "ours": ours, "note": note}) + "\n")


def table(rows: list[dict], title: str) -> str:
    """The rows as a markdown table of seconds and ratios (> 1: the second column is faster)."""
    lines = [f"| {title} | baseline s | tprm s | ratio |", "| --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['name']} {r['note']} | {r['base']:.2f} | {r['ours']:.2f} | {r['base'] / r['ours']:.2f} |")
    return "\n".join(lines)


def read_rows(path: str) -> list[dict]:
    """The rows of a rows file (none when it does not exist)."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


if __name__ == "__main__":
    rows = read_rows(sys.argv[1])
    print(table(rows, sys.argv[2] if len(sys.argv) > 2 else "what") if rows else "(no rows were measured)")
