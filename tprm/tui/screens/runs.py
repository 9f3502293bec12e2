"""Run monitor: launch/resume a detached run, live job table, overall progress and ETA, log tail."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from textual.binding import Binding
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import DataTable, Log, ProgressBar, Static

from tprm.tui.screens.base import TaskScreen
from tprm.tui.screens.confirm import ConfirmModal
from tprm.tui.viewmodel import (
    active_runs, job_rows, latest_run, log_title, one_line, overall_progress, run_summary,
    state_counts,
)
from tprm.tui.widgets.tables import KeyLog, ListTable

LOG_LINES = 200


class RunsScreen(TaskScreen):
    """Polls the service about once a second (in a worker thread) while it is on screen."""

    MODE = "runs"
    HELP_TITLE = "2 Runs"
    BINDINGS = [
        Binding("r", "launch", "Run/resume", tooltip="launch or resume the recipe as a detached run"),
        Binding("c", "cancel", "Cancel run", tooltip="cancel the recipe's running run (asks first)"),
        Binding("l", "run_log", "Run log", tooltip="show the whole run's log instead of the job's"),
        Binding("f5", "poll", "Refresh", tooltip="refresh now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._timer: Timer | None = None
        self._polling = False
        self._rows: dict[str, tuple[str, ...]] = {}
        self._log_job: str | None = None
        self._log_text: str | None = None
        self._log_shown: str | None | bool = False  # the job whose log is shown (None: the run's)
        self._log_key: tuple[Any, ...] | None = None
        self._job_nodes: dict[str, str] = {}  # job hash -> node, for runs on a Ray cluster
        self._next_poll = 0.0
        self._status_failed = False
        self.last_status: dict[str, Any] = {}

    def compose_body(self) -> Iterable[Widget]:
        yield Static("", id="run-line", markup=False)
        with Horizontal(id="run-progress-row"):
            yield ProgressBar(total=1, show_eta=False, id="run-progress")
            yield Static("", id="run-eta", markup=False)
        table: DataTable[str] = ListTable(id="job-table", cursor_type="row")
        table.add_column("kind", key="kind", width=7)
        table.add_column("job", key="label", width=44)
        table.add_column("state", key="state", width=9)
        table.add_column("prog", key="progress", width=5)
        yield table
        yield Static("log: select a job (l: whole run)", id="log-title", markup=False)
        yield KeyLog(id="job-log", max_lines=LOG_LINES, auto_scroll=False)

    def on_mount(self) -> None:
        super().on_mount()
        self._timer = self.set_interval(self.tprm.poll_interval, self._timer_poll, pause=True)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self._timer is not None:
            self._timer.resume()

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def _recipe_changed(self, recipe: str | None) -> None:
        self._rows.clear()
        self._log_job, self._log_text, self._log_key = None, None, None
        self._log_shown = False
        if self.is_mounted:
            self.query_one("#job-table", DataTable).clear()
        super()._recipe_changed(recipe)

    # ---------------------------------------------------------------- polling

    def reload(self) -> None:
        self.action_poll()

    def action_poll(self, forced: bool = True) -> None:
        """One refresh: status (and the log tail when it can have changed), fetched off the event loop.

        Skipped while a poll is in flight. Timer polls back off on big stores: the next one waits
        at least twice as long as the last took, so polling never eats more than a third of a core.
        """
        recipe = self.tprm.recipe
        now = time.monotonic()
        if self._polling or recipe is None or (not forced and now < self._next_poll):
            return
        self._polling = True
        log_job, log_key = self._log_job, self._log_key
        svc = self.tprm.svc

        def fetch() -> tuple[dict[str, Any], str | None, tuple[Any, ...]]:
            status = svc.runs.status(recipe)
            key = _log_key(status, recipe, log_job)
            if key == log_key and key[-1] not in ("running", "stale"):
                return status, None, key  # the log cannot have changed: do not read it again
            try:
                log = svc.runs.logs(recipe, job=log_job)
            except Exception as exc:  # a missing log is not worth a modal every second
                log = f"(no log: {one_line(exc)})"
            return status, log, key

        def done(result: tuple[dict[str, Any], str | None, tuple[Any, ...]]) -> None:
            elapsed = time.monotonic() - now
            self._next_poll = time.monotonic() + max(self.tprm.poll_interval, 2 * elapsed)
            self._apply(recipe, *result)

        self.tprm.call_service(fetch, done=done, on_error=self._poll_failed, group="runs-poll")

    def _timer_poll(self) -> None:
        self.action_poll(forced=False)

    def _poll_failed(self, exc: BaseException) -> None:
        """Say why there is no status, and show none: never the previous recipe's progress."""
        self._polling = False
        if not self.is_mounted:
            return
        self.query_one("#run-line", Static).update("no status to show: the error above says why")
        self.query_one("#run-progress", ProgressBar).update(total=1, progress=0)
        self.query_one("#run-eta", Static).update("")
        self.query_one("#job-table", DataTable).clear()
        self._rows.clear()
        self.query_one("#job-log", Log).clear()
        self._log_text, self._log_shown = None, False
        self._status_failed = True
        self.show_problem(exc, "Cannot read the run status")

    def _apply(self, recipe: str, status: dict[str, Any], log: str | None = None,
               log_key: tuple[Any, ...] | None = None) -> None:
        self._polling = False
        if recipe != self.tprm.recipe or not self.is_mounted:
            return
        if self._status_failed:  # the status reads again: its problem is gone (others stay)
            self._status_failed = False
            self.clear_problem()
        self.last_status = status
        jobs = [j for j in status.get("jobs") or [] if j.get("recipe") in (None, recipe)]
        run = latest_run(status, recipe)
        summary, stale = run_summary(run)
        line = self.query_one("#run-line", Static)
        line.update(summary)
        line.set_class(stale, "stale")
        fraction, done, total = overall_progress({"jobs": jobs})
        bar = self.query_one("#run-progress", ProgressBar)
        bar.update(total=1, progress=fraction)
        running = bool(active_runs({"runs": [run] if run else []}))
        eta = (status.get("recipes") or {}).get(recipe, {}).get("eta") if running else None
        if eta:  # measured throughput in model-steps (tprm.engine.eta), not job counts
            bar.update(total=1, progress=eta["fraction"])
        counts = " ".join(f"{n} {s}" for s, n in state_counts(jobs).items())
        eta_text = (f"ETA {eta['text'] if eta else 'estimating'}" if running
                    else ("finished" if total and done == total else "idle"))
        self.query_one("#run-eta", Static).update(f"{done}/{total} jobs  {eta_text}  {counts}".strip())
        self._update_table(jobs)
        self._job_nodes = ({str(j.get("hash")): j["node"] for j in jobs if j.get("node")}
                       if run and run.get("backend") == "ray" else {})
        if self._log_job is not None and self._log_job in self._rows:
            self.query_one("#log-title", Static).update(
                log_title(self._rows[self._log_job][1], self._job_nodes.get(self._log_job)))
        if log is not None:
            self._log_key = log_key
            self._update_log(log)

    def _update_table(self, jobs: list[dict[str, Any]]) -> None:
        """Incremental: only changed cells are rewritten, so a 1 s poll of thousands of jobs stays cheap."""
        table = self.query_one("#job-table", DataTable)
        rows = job_rows(jobs)
        keys = [k for k, _ in rows]
        if list(self._rows) != keys:
            table.clear()
            for key, cells in rows:
                table.add_row(*cells, key=key)
            self._rows = dict(rows)
            return
        columns = ("kind", "label", "state", "progress")
        for key, cells in rows:
            old = self._rows[key]
            if old != cells:
                for col, a, b in zip(columns, old, cells):
                    if a != b:
                        table.update_cell(key, col, b)
                self._rows[key] = cells

    def _update_log(self, text: str) -> None:
        """Show a log's tail: a log opens at its end and follows new lines, unless the user
        scrolled up in the same log (then the view stays where it is)."""
        if text == self._log_text:
            return
        log = self.query_one("#job-log", Log)
        follow = self._log_shown != self._log_job or log.is_vertical_scroll_end
        y = log.scroll_y
        self._log_text, self._log_shown = text, self._log_job
        log.clear()
        log.write_lines(text.splitlines()[-LOG_LINES:] or ["(log is empty)"])
        if follow:  # now, and once the new size is laid out (a log shown before it is sized)
            log.scroll_end(animate=False, immediate=True)
            self.call_after_refresh(log.scroll_end, animate=False, immediate=True)
        else:
            log.scroll_to(y=y, animate=False, immediate=True)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if event.data_table.id != "job-table" or key is None or key == self._log_job:
            return
        self._log_job = str(key)
        label = self._rows.get(self._log_job, ("", self._log_job))[1]
        self.query_one("#log-title", Static).update(log_title(label, self._job_nodes.get(self._log_job)))
        self.action_poll()

    def action_run_log(self) -> None:
        self._log_job = None
        self.query_one("#log-title", Static).update("log of the whole run")
        self.action_poll()

    # ---------------------------------------------------------------- actions

    def action_launch(self) -> None:
        recipe = self.tprm.recipe
        if recipe is None:
            self.tprm.show_error("no recipe selected: pick one on the Recipes screen (1)")
            return
        if active_runs({"runs": [latest_run(self.last_status, recipe)] if self.last_status.get("runs") else []}):
            self.app.notify(f"{recipe} is already running", title="Run")
            return

        def started(info: dict[str, Any]) -> None:
            self.app.notify(f"{recipe}: run started (pid {info.get('pid', '?')}); detached, so it keeps "
                            "running if you quit the UI or lose SSH.", title="Run started", timeout=8)
            self.action_poll()

        self.call_service(self.tprm.svc.runs.start_detached, recipe, done=started)

    def action_cancel(self) -> None:
        recipe = self.tprm.recipe
        if recipe is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.call_service(self.tprm.svc.runs.cancel, recipe, done=cancelled)

        def cancelled(count: int) -> None:
            msg = (f"asked {count} run(s) of {recipe} to stop; finished jobs are kept, r resumes"
                   if count else f"{recipe} has no running run to cancel")
            self.app.notify(msg, title="Cancel")
            self.action_poll()

        self.app.push_screen(ConfirmModal(
            f"Cancel the running run of {recipe}? Finished jobs are kept; r resumes later.",
            title="Cancel run", yes="Cancel run", no="Keep running"), confirmed)


def _log_key(status: dict[str, Any], recipe: str, job: str | None) -> tuple[Any, ...]:
    """What decides whether a log can have changed: the job's (or the latest run's) identity and state."""
    if job is None:
        run = latest_run(status, recipe) or {}
        return (run.get("run_id"), run.get("state"))
    state = next((j.get("state") for j in status.get("jobs") or [] if j.get("hash") == job), None)
    return (job, state)
