"""Damage a real finished tiny store in known ways and record what every command says.

    python scripts/damage_corpus.py [--out docs/store-corpus.md]

Builds the tiny test recipe's store once (about 15 s), then for every damage shape works on a
fresh copy: runs the real CLI entry point in-process (status, results, export, run, store check,
store gc, store repair, then results again) and prints a Markdown table of exit codes and the
first line each command printed. Used for the corpus table in docs/store.md.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import TINY_RECIPE  # noqa: E402

from tprm.cli import main as cli_main  # noqa: E402


def db_edit(fn):
    def apply(store: Path) -> None:
        db = store / "tprm.db.json"
        data = json.loads(db.read_text())
        fn(data)
        db.write_text(json.dumps(data))
    return apply


def first(table: dict) -> dict:
    return table[sorted(table, key=int)[0]]


def dense_file(store: Path, suffix: str) -> Path:
    data = json.loads((store / "tprm.db.json").read_text())
    h = next(j["hash"] for j in data["jobs"].values() if j["kind"] == "dense")
    return store / "artifacts" / h[:2] / f"{h}{suffix}"


def flip(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


SHAPES = [
    ("issue: `{\"jobs\": {\"1\": {}}}`", lambda s: (s / "tprm.db.json").write_text('{"jobs": {"1": {}}}')),
    ("issue: `{\"jobs\": {\"1\": {\"hash\": \"abc\", \"state\": \"done\"}}}`",
     lambda s: (s / "tprm.db.json").write_text('{"jobs": {"1": {"hash": "abc", "state": "done"}}}')),
    ("issue: `{\"runs\": {\"1\": {\"state\": \"running\", \"pid\": \"x\"}}}`",
     lambda s: (s / "tprm.db.json").write_text('{"runs": {"1": {"state": "running", "pid": "x"}}}')),
    ("db deleted", lambda s: (s / "tprm.db.json").unlink()),
    ("db deleted and backups deleted",
     lambda s: ((s / "tprm.db.json").unlink(), shutil.rmtree(s / "backups"))),
    ("db truncated to half", lambda s: (s / "tprm.db.json").write_bytes(
        (s / "tprm.db.json").read_bytes()[:(s / "tprm.db.json").stat().st_size // 2])),
    ("db is binary garbage", lambda s: (s / "tprm.db.json").write_bytes(b"\x00\x01\xffgarbage")),
    ("db is an empty file", lambda s: (s / "tprm.db.json").write_text("")),
    ("db is `[1, 2, 3]`", lambda s: (s / "tprm.db.json").write_text("[1, 2, 3]")),
    ("jobs table is a list", db_edit(lambda d: d.__setitem__("jobs", [1]))),
    ("one run lost run_id, pid 'x'", db_edit(lambda d: first(d["runs"]).update(
        pid="x") or first(d["runs"]).pop("run_id"))),
    ("one job's state 'exploded'", db_edit(lambda d: first(d["jobs"]).update(state="exploded"))),
    ("one job's attempts 'x'", db_edit(lambda d: first(d["jobs"]).update(attempts="x"))),
    ("one job record is a list", db_edit(lambda d: d["jobs"].__setitem__(
        sorted(d["jobs"], key=int)[0], [1, 2]))),
    ("a job record duplicated", db_edit(lambda d: d["jobs"].__setitem__("999", first(d["jobs"])))),
    ("jobs table emptied (valid, index lost)", db_edit(lambda d: d.__setitem__("jobs", {}))),
    ("results table deleted (valid)", db_edit(lambda d: d.pop("results"))),
    ("meta.schema_version 'two'", db_edit(lambda d: first(d["meta"]).update(schema_version="two"))),
    ("meta.schema_version 99 (newer)", db_edit(lambda d: first(d["meta"]).update(schema_version=99))),
    ("dense checkpoint file deleted", lambda s: dense_file(s, ".checkpoints.pt").unlink()),
    ("dense checkpoint: one byte flipped", lambda s: flip(dense_file(s, ".checkpoints.pt"))),
    ("dense job's metadata file deleted", lambda s: dense_file(s, ".job.json").unlink()),
]


def call(*args: str) -> tuple[int, str]:
    """(exit code, the first line that matters) of one in-process CLI call."""
    out, err = io.StringIO(), io.StringIO()
    old = sys.argv
    sys.argv = ["tprm", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli_main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old
    text = [ln for ln in (err.getvalue() + out.getvalue()).splitlines()
            if ln.strip() and not ln.startswith(("store:", "tiny: jobs", "{", "["))]
    picks = [[ln for ln in text if ln.startswith(("error:", "Traceback"))],
             [ln for ln in text if ln.startswith(("repaired", "PROBLEMS", "ok:", "run ", "moved"))],
             [ln for ln in text if ln.startswith("warning:")], text, [""]]
    line = next(p for p in picks if p)[0]
    if "Traceback" in err.getvalue():
        line = "TRACEBACK " + line
    return code, line


def cells_done(store: Path) -> str:
    code, _ = 0, None
    out = io.StringIO()
    old = sys.argv
    sys.argv = ["tprm", "results", "tiny", "--json", "--store", str(store)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            try:
                cli_main()
            except SystemExit as exc:
                code = exc.code or 0
    finally:
        sys.argv = old
    if code:
        return f"exit {code}"
    cells = json.loads(out.getvalue())
    return f"{sum(c['state'] == 'done' for c in cells)}/{len(cells)} cells done"


def short(text: str, n: int = 140) -> str:
    from tprm.engine.store import REPAIR_HINT

    text = text.replace(REPAIR_HINT, "[check/repair hint]").replace("|", "\\|")
    return text if len(text) <= n else text[:n - 3] + "..."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    warnings.simplefilter("always")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.chdir(work)
        (work / "recipes").mkdir()
        (work / "recipes" / "tiny.yaml").write_text(TINY_RECIPE)
        code, line = call("run", "tiny", "--store", "base")
        assert code == 0, line
        rows = ["| damage | status | results | export | run | store check | store gc | store repair "
                "| results after repair |", "|" + "---|" * 9]
        for name, damage in SHAPES:
            shutil.rmtree(work / "s", ignore_errors=True)
            shutil.copytree(work / "base", work / "s", ignore=shutil.ignore_patterns("*.lock"))
            damage(work / "s")
            cols = [name]
            for cmd in (["status"], ["results", "tiny"], ["export", "tiny", str(work / "b.tar.gz")]):
                c, ln = call(*cmd, "--store", "s")
                cols.append(f"{c}: {short(ln)}")
            shutil.rmtree(work / "r", ignore_errors=True)  # run on a copy: it may recompute
            shutil.copytree(work / "s", work / "r", ignore=shutil.ignore_patterns("*.lock"))
            c, ln = call("run", "tiny", "--store", "r")
            cols.append(f"{c}: {short(ln)}")
            for cmd in (["store", "check"], ["store", "gc"], ["store", "repair"]):
                c, ln = call(*cmd, "--store", "s")
                cols.append(f"{c}: {short(ln)}")
            cols.append(cells_done(work / "s"))
            rows.append("| " + " | ".join(cols) + " |")
            print(rows[-1], file=sys.stderr)
    table = "\n".join(rows) + "\n"
    if args.out:
        args.out.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
