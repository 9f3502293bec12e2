"""What the command line draws beyond plain lines: the run's progress bars and case reports
wrapped to the terminal's width."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from rich.progress import TaskID


class ProgressBars:
    """A rich Progress of labelled bars (description, bar, right-hand text, elapsed), started and
    stopped as a context manager: what the run and exploration displays share."""

    def __init__(self, console: Console):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[right]}"), TimeElapsedColumn(),
                                 console=console, transient=False)

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()


class RunDisplay(ProgressBars):
    """Rich progress: an overall bar (share of the work in model-steps, ETA from the measured
    throughput, see tprm.engine.eta) plus one bar per running (fused) job group."""

    def __init__(self, console: Console):
        super().__init__(console)
        self.overall: TaskID | None = None
        self.groups: dict[str, int] = {}

    def __call__(self, snap: dict) -> None:
        for note in snap.get("notes") or ():  # an event to tell (a lost Ray node): above the bars
            self.progress.console.print(escape(note), highlight=False)
        done = snap["counts"].get("done", 0)
        finished = done + sum(snap["counts"].get(s, 0) for s in ("failed", "diverged", "skipped"))
        eta = snap.get("eta") or {}
        if self.overall is None:
            self.overall = self.progress.add_task("", total=1000, right="")
        self.progress.update(self.overall, completed=round(1000 * eta.get("fraction", 0.0)),
                             description=f"[bold]{escape(snap['recipe'])}: jobs {finished}/{snap['total']}",
                             right=f"ETA {eta.get('text', 'estimating')}")
        live = set()
        for g in snap["running"]:
            key = g["hashes"][0]
            live.add(key)
            if key not in self.groups:
                self.groups[key] = self.progress.add_task("  " + escape(g["label"][:48]), total=g["total"],
                                                          right="")
            self.progress.update(self.groups[key], completed=g["done"], total=g["total"],
                                 right=f"{g['done']}/{g['total']} steps")
        for key in list(self.groups):
            if key not in live:
                self.progress.remove_task(self.groups.pop(key))


def wrap_lines(text: str, width: int) -> str:
    """Lines longer than ``width`` broken at spaces, continuations indented under their line
    (case reports, an exploration's text: the terminal's width, 80 columns when piped)."""
    import textwrap

    lines = []
    for line in text.splitlines():
        if len(line) <= width or "\x1b[" in line:  # coloured map rows are drawn to fit already
            lines.append(line)
            continue
        indent = " " * (len(line) - len(line.lstrip()))
        lines += textwrap.wrap(line, width=width, subsequent_indent=indent + "  ",
                               break_long_words=False, break_on_hyphens=False) or [line]
    return "\n".join(lines)
