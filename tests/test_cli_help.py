"""Every `--help` of the CLI, shell completion, case-report wrapping and the shared results CSV."""

from __future__ import annotations

import csv
import io
import re
import sys

import pytest
import typer

from tprm.cli import app, main, wrap_lines
from tprm.service import RESULT_COLUMNS, Service, rows_csv

from conftest import prepare_tiny_store, run_tprm


def commands():
    """(path, click command) of every command and group, the root included."""
    root = typer.main.get_command(app)
    out, todo = [], [([], root)]
    while todo:
        path, cmd = todo.pop()
        out.append((path, cmd))
        todo += [(path + [name], sub) for name, sub in getattr(cmd, "commands", {}).items()]
    return out


def call(capsys, monkeypatch, *args, columns: int = 100):
    monkeypatch.setattr(sys, "argv", ["tprm", *args])
    monkeypatch.setenv("COLUMNS", str(columns))
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


def test_every_help_is_clean_and_every_parameter_has_help_text(capsys, monkeypatch):
    cmds = commands()
    assert len(cmds) > 15  # the walk found the sub-commands
    for path, cmd in cmds:
        code, out, err = call(capsys, monkeypatch, *path, "--help")
        assert code == 0, (path, err)
        assert "<bool>" not in out, (path, out)
        assert not re.search(r"\{\w+\}", out), (path, out)  # no `{recipe}` in usage
        usage = next(line for line in out.splitlines() if "Usage:" in line)
        required = [p for p in cmd.params if p.param_type_name == "argument" and p.required]
        for arg in required:
            assert arg.name.upper() in usage, (path, usage)
        for p in cmd.params:
            if not getattr(p, "hidden", False):
                assert (getattr(p, "help", None) or "").strip(), (path, p.opts)  # -t included


def test_shell_completion_is_available(capsys, monkeypatch, tmp_path):
    code, out, _ = call(capsys, monkeypatch, "--help")
    assert "--install-completion" in out and "--show-completion" in out
    env = {"HOME": str(tmp_path), "SHELL": "/bin/bash", "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    shown = run_tprm("--show-completion", "bash", env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "_TPRM_COMPLETE=complete_bash" in shown.stdout
    installed = run_tprm("--install-completion", "bash", env=env, timeout=120)
    assert installed.returncode == 0, installed.stderr
    assert "completion installed" in installed.stdout.lower()
    assert "tprm.sh" in (tmp_path / ".bashrc").read_text()
    script = (tmp_path / ".bash_completions" / "tprm.sh").read_text()
    assert "_TPRM_COMPLETE=complete_bash" in script
    # what bash asks when the user types `tprm ca<TAB>`
    asked = run_tprm(env={**env, "COMP_WORDS": "tprm ca", "COMP_CWORD": "1",
                          "_TPRM_COMPLETE": "complete_bash"}, timeout=120)
    assert asked.stdout.split() == ["cancel", "case"], asked.stdout + asked.stderr


def test_wrap_lines_keeps_words_and_indent():
    line = "  Decision: lower the temperature (regime II-A: well connected, dissimilar) " * 2
    wrapped = wrap_lines("short\n" + line.rstrip(), 40).splitlines()
    assert wrapped[0] == "short" and all(len(w) <= 40 for w in wrapped)
    assert wrapped[1].startswith("  Decision:") and all(w.startswith("    ") for w in wrapped[2:])
    assert " ".join(" ".join(wrapped[1:]).split()) == " ".join(line.split())  # no word lost
    assert wrap_lines("a" * 50, 40) == "a" * 50  # a word longer than the line is not cut


def test_csv_rounds_and_matches_the_tui_export(tmp_path, monkeypatch):
    from tprm.tui.screens.results import fetch_results
    from tprm.tui.viewmodel import export_rows

    store = prepare_tiny_store(tmp_path)
    monkeypatch.chdir(tmp_path)
    svc = Service(store)
    cli = run_tprm("results", "tiny", "--store", str(store), "--csv", cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    rows, _ = fetch_results(svc, "tiny")
    exported = export_rows(rows, tmp_path / "out.csv").read_text()
    assert cli.stdout == exported  # the same columns, rows and rounding
    table = list(csv.reader(io.StringIO(cli.stdout)))
    assert tuple(table[0]) == RESULT_COLUMNS and len(table) == 5
    for row in table[1:]:
        for value in row:
            if re.fullmatch(r"-?\d+\.\d+", value):
                assert len(value.split(".")[1]) <= 6, value
    assert rows_csv([{"test_error": 0.46599999999999997, "mc": None}]).splitlines()[1].split(",")[5] == "0.466"
    assert "\\r" not in cli.stdout
